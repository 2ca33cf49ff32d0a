"""One run of the proof's other half: what the change feed will be held against.

:func:`observe` runs the seeded workload on a private server and collects the three
accounts of it: the workload's own record, the binlog's committed transactions, and the
audit log the server wrote meanwhile (bytes, and as Lambda Kinesis events on request).
The feed's proof calls it once per module, feeds :attr:`Observation.audit_log` through
``handle_kinesis_event``, and compares what the feed delivered with
:attr:`Observation.binlog` per connection (``BinlogTransaction.domain`` is the audit
log's connection id).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from binlog import BinlogTransaction, check_against, parse_binlog
from private_mariadb import PrivateMariaDB
from shipping import audit_records, kinesis_events
from workload import KEYS, TABLES, WorkloadRecord, run_workload

__all__ = ["KEYS", "TABLES", "Observation", "observe"]


@dataclass(frozen=True)
class Observation:
    record: WorkloadRecord
    #: Every committed transaction of the binlog, in commit order; the workload's are
    #: those whose ``domain`` is the connection id of one of ``record.sessions``.
    binlog: list[BinlogTransaction]
    #: The audit log between the settled points around the workload, as the file holds it.
    audit_log: bytes
    #: mariadb-binlog's output, for a failure message or a look by hand.
    binlog_text: bytes
    #: What the feed must be told: ``server_audit_query_log_limit``, the server's host.
    query_log_limit: int
    serverhost: str
    version: str

    def workload_binlog(self) -> list[BinlogTransaction]:
        """The binlog transactions of workload sessions (the setup's are left out)."""
        ids = {session.connection_id for session in self.record.sessions}
        return [t for t in self.binlog if t.domain in ids]

    def problems(self) -> list[str]:
        """Where the binlog and the record disagree: the proof trusts neither unless empty."""
        return check_against(self.binlog, self.record)

    def audit_records(self) -> list[str]:
        return audit_records(self.audit_log)

    def kinesis_events(self, seed: int, **options: Any) -> list[dict[str, Any]]:
        """The audit log as Lambda Kinesis events (see :func:`shipping.kinesis_events`)."""
        return kinesis_events(self.audit_records(), seed=seed, **options)


def observe(server: PrivateMariaDB, seed: int, workers: int = 6, scenes: int = 40) -> Observation:
    """Run the workload on ``server`` and read back its binlog and its audit log."""
    record = run_workload(server, seed, workers=workers, scenes=scenes)
    text = server.binlog_text()
    return Observation(
        record=record,
        binlog=parse_binlog(text, TABLES),
        audit_log=server.audit_log(record.audit_start, record.audit_end),
        binlog_text=text,
        query_log_limit=server.query_log_limit,
        serverhost=server.hostname,
        version=server.version,
    )
