"""auditsync: the MariaDB/MySQL server_audit log, as it travels through AWS, as typed events.

The public names below are the stable contract (docs/index.md); the modules behind them
are an implementation detail. The Lambda adapters live in :mod:`auditsync.aws`, the
sinks in :mod:`auditsync.sinks`, the Hypothesis strategies in :mod:`auditsync.testing`.
"""

from typing import Any

from ._auditlog import format_line, parse_line
from ._envelope import LogEvent, SubscriptionMessage, iter_messages, parse_message
from ._errors import AuditSyncError, DeliveryError, EnvelopeError, LineError, PayloadError
from ._events import AuditEvent, DeadLetter, Dialect, Origin
from ._payload import decode_payload
from ._pipeline import Line, Lines, Payload, Pipeline, Report
from ._sources import InputFormat, read_file


def __getattr__(name: str) -> Any:
    """``__version__``, read from the installed metadata when asked: importing
    :mod:`importlib.metadata` costs a Lambda cold start about 25 ms."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("auditsync")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


__all__ = [
    "AuditEvent",
    "AuditSyncError",
    "DeadLetter",
    "DeliveryError",
    "Dialect",
    "EnvelopeError",
    "InputFormat",
    "Line",
    "LineError",
    "Lines",
    "LogEvent",
    "Origin",
    "Payload",
    "PayloadError",
    "Pipeline",
    "Report",
    "SubscriptionMessage",
    "__version__",
    "decode_payload",
    "format_line",
    "iter_messages",
    "parse_line",
    "parse_message",
    "read_file",
]
