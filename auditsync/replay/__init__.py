"""Apply the writes an audit log records to another database: :class:`ReplaySink`."""

from ._sink import (
    MIRRORED_VARIABLES,
    MySQLTarget,
    ReplayRefused,
    ReplaySink,
    ReplayStats,
    SQLiteTarget,
    TableInfo,
    Target,
    unsafe_reason,
)

__all__ = [
    "MIRRORED_VARIABLES",
    "MySQLTarget",
    "ReplayRefused",
    "ReplaySink",
    "ReplayStats",
    "SQLiteTarget",
    "TableInfo",
    "Target",
    "unsafe_reason",
]
