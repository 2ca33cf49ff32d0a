"""auditsync: the MariaDB/MySQL server_audit log, as it travels through AWS, as typed events.

The public names below are the stable contract (docs/index.md); the modules behind them
are an implementation detail.
"""

from .auditlog import format_line, parse_line
from .envelope import LogEvent, SubscriptionMessage, iter_messages, parse_message
from .errors import AuditSyncError, EnvelopeError, LineError, PayloadError
from .events import AuditEvent, Dialect, Origin
from .payload import decode_payload

__all__ = [
    "AuditEvent",
    "AuditSyncError",
    "Dialect",
    "EnvelopeError",
    "LineError",
    "LogEvent",
    "Origin",
    "PayloadError",
    "SubscriptionMessage",
    "decode_payload",
    "format_line",
    "iter_messages",
    "parse_line",
    "parse_message",
]
