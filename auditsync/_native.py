"""The optional compiled part, chosen once: the C extension.

The C extension (auditsync/_speedups.c) reads the common server_audit line shapes and
writes the JSON form of plain events, and declines everything else — then the Python
code, the reference, does the work; its functions are None where it was not built.
``AUDITSYNC_PURE_PYTHON=1`` turns it off (and ISA-L's inflater, chosen in ``_gzip``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any

import attrs

from ._events import AuditEvent, Dialect, Origin

__all__ = [
    "event_json",
    "json_lines",
    "parse_line",
    "read_lines",
    "read_log_events",
]

ParseLine = Callable[
    [str, Dialect | None, tzinfo, dict[str, datetime], Origin | None], AuditEvent | None
]
ReadLogEvents = Callable[
    [list[Any], tuple[Any, ...], Dialect, tzinfo, dict[str, datetime]],
    tuple[list[AuditEvent | Origin], int] | None,
]
ReadLines = Callable[
    [list[str | bytes], list[int | None], tuple[Any, ...], Dialect, tzinfo, dict[str, datetime]],
    tuple[list[AuditEvent | Origin], int] | None,
]
EventJson = Callable[[AuditEvent], bytes | None]
JsonLines = Callable[[list[Any]], bytes | None]

#: The fields the C code reads and writes, in its order (and attrs' order, checked here).
EVENT_FIELDS = (
    "timestamp",
    "serverhost",
    "username",
    "host",
    "connection_id",
    "query_id",
    "operation",
    "database",
    "object",
    "retcode",
    "connection_type",
    "truncated",
    "dialect",
    "origin",
    "prefix",
    "suffix",
)
ORIGIN_FIELDS = (
    "log_group",
    "log_stream",
    "event_id",
    "shard_id",
    "sequence_number",
    "path",
    "line_number",
)


def _wanted() -> bool:
    return os.environ.get("AUDITSYNC_PURE_PYTHON", "") in ("", "0")


def _load() -> tuple[ParseLine, ReadLogEvents, ReadLines, EventJson, JsonLines] | None:
    if not _wanted():
        return None
    try:
        from . import _speedups
    except ImportError:
        return None
    for kind, expected in ((AuditEvent, EVENT_FIELDS), (Origin, ORIGIN_FIELDS)):
        names = tuple(field.name for field in attrs.fields(kind))
        if names != expected:
            raise RuntimeError(f"auditsync._speedups knows {kind.__name__} as {expected}")
    _speedups.configure(
        AuditEvent,
        tuple(AuditEvent.__dict__[name] for name in EVENT_FIELDS),
        Origin,
        tuple(Origin.__dict__[name] for name in ORIGIN_FIELDS),
        (Dialect.AUTO, Dialect.MARIADB, Dialect.AURORA, Dialect.RDS_MYSQL),
        UTC,
    )
    return (
        _speedups.parse_line,
        _speedups.read_log_events,
        _speedups.read_lines,
        _speedups.event_json,
        _speedups.json_lines,
    )


parse_line, read_log_events, read_lines, event_json, json_lines = _load() or (None,) * 5
