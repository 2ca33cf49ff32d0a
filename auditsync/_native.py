"""The optional compiled parts, chosen once: the C line reader and the C JSON writer.

The C line reader (auditsync/_c_reader.c) reads the common server_audit line shapes, and
the C JSON writer (auditsync/_c_json.c) writes the JSON form of plain events; each
declines everything else, and the Python code, the reference, does the work. Both follow
the event's table (auditsync/_events.py): the reader is handed it here, the writer by
the JSON module that owns the JSON form. Their functions are None where they were not
built. ``AUDITSYNC_PURE_PYTHON=1`` turns them off (and ISA-L's inflater, chosen in
``_gzip``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, tzinfo
from types import ModuleType
from typing import Any

import attrs

from ._events import ORIGIN_FIELDS, AuditEvent, Dialect, Origin
from ._gzip import compiled_parts_wanted

__all__ = [
    "c_json",
    "parse_line",
    "read_lines",
    "read_log_events",
]

ParseLine = Callable[[str, Dialect | None, tzinfo, Origin | None], AuditEvent | None]
ReadLogEvents = Callable[
    [list[Any], tuple[Any, ...], Dialect, tzinfo],
    tuple[list[AuditEvent | Origin], int] | None,
]
ReadLines = Callable[
    [list[str | bytes], list[int | None], tuple[Any, ...], Dialect, tzinfo],
    tuple[list[AuditEvent | Origin], int] | None,
]

#: The dialects as the C code is handed them, in this order.
DIALECTS = (Dialect.AUTO, Dialect.MARIADB, Dialect.AURORA, Dialect.RDS_MYSQL)


def _reader_defaults(read: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    """The default of each field the C reader does not read; it sets them as they are."""
    names = {field.name for field in attrs.fields(AuditEvent)}
    unknown = [name for name in read if name not in names]
    if unknown:
        raise RuntimeError(f"auditsync._c_reader reads fields AuditEvent lacks: {unknown}")
    defaults = []
    for field in attrs.fields(AuditEvent):
        if field.name in read:
            continue
        if field.default is attrs.NOTHING or isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            raise RuntimeError(
                f"auditsync._c_reader does not read AuditEvent.{field.name}, "
                "which has no plain default to give it"
            )
        defaults.append((field.name, field.default))
    return tuple(defaults)


def _load_reader() -> tuple[ParseLine, ReadLogEvents, ReadLines] | None:
    if not compiled_parts_wanted():
        return None
    try:
        from . import _c_reader
    except ImportError:
        return None
    _c_reader.configure(
        AuditEvent,
        _reader_defaults(_c_reader.READ_FIELDS),
        Origin,
        tuple(field.name for field in ORIGIN_FIELDS),
        DIALECTS,
        UTC,
    )
    return _c_reader.parse_line, _c_reader.read_log_events, _c_reader.read_lines


def _load_json() -> ModuleType | None:
    if not compiled_parts_wanted():
        return None
    try:
        from . import _c_json
    except ImportError:
        return None
    return _c_json


parse_line, read_log_events, read_lines = _load_reader() or (None,) * 3
#: The C JSON writer's module, to be configured by auditsync._json; or None.
c_json = _load_json()
