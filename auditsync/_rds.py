"""The RDS or Aurora database an event came from, read off its CloudWatch log group.

RDS publishes a database's logs to ``/aws/rds/instance/<instance>/<log>`` and Aurora a
cluster's to ``/aws/rds/cluster/<cluster>/<log>`` (``<log>`` is ``audit`` for the
server_audit log). The name is what users filter and group by, and no field of the line
carries it: ``serverhost`` is the host's own name, which RDS does not promise to match.

:attr:`auditsync.Origin.rds` reads it for every output form (Arrow, OCSF, ECS). It is
derived, not a stored field: the log group already holds it.
"""

from __future__ import annotations

import functools
import re
from typing import Literal

import attrs

__all__ = ["RdsResource", "rds_resource"]

# Identifiers are 1-63 letters, digits and hyphens; anything but a slash is accepted, so
# an unusual name still names its database rather than vanishing.
_LOG_GROUP = re.compile(r"/aws/rds/(instance|cluster)/([^/]+)/[^/]+")


@attrs.frozen(slots=True)
class RdsResource:
    """A DB instance (``kind="instance"``) or an Aurora DB cluster (``kind="cluster"``)."""

    kind: Literal["instance", "cluster"]
    identifier: str

    @property
    def instance(self) -> str | None:
        """The DB instance identifier, for a log group of an instance."""
        return self.identifier if self.kind == "instance" else None

    @property
    def cluster(self) -> str | None:
        """The DB cluster identifier, for a log group of a cluster."""
        return self.identifier if self.kind == "cluster" else None


@functools.lru_cache(maxsize=256)
def rds_resource(log_group: str | None) -> RdsResource | None:
    """The instance or cluster of an RDS log group; ``None`` for any other group or none.

    Cached: a batch holds thousands of events of one or two log groups.
    """
    if not log_group:
        return None
    match = _LOG_GROUP.fullmatch(log_group)
    if match is None:
        return None
    kind: Literal["instance", "cluster"] = "instance" if match[1] == "instance" else "cluster"
    return RdsResource(kind, match[2])
