"""What auditsync wrote, read back as input: the JSON Lines of its events and the SQLite
database of its SQLite sink. ``stats audit.db`` after ``decode --to sqlite:audit.db`` is
the natural next step, and a store of events is worth filtering and converting again.
Each event comes back byte for byte as it was written, its origin (and so its key) too.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

from ._errors import AuditSyncError
from ._events import AuditEvent, Origin
from ._json import event_from_dict
from ._payload import KEPT_OF_TOO_LONG as _KEPT
from ._payload import LONGEST_RECORD
from ._pipeline import LINES_PER_BLOCK, Events, Unreadable
from .sinks._sqlite import event_from_row

__all__ = [
    "EVENT_MEMBERS",
    "EVENT_TABLE",
    "SQLITE_MAGIC",
    "database_events",
    "is_event",
    "json_events",
]

#: The first bytes of every SQLite database file.
SQLITE_MAGIC = b"SQLite format 3\x00"
#: The table the SQLite sink writes events to by default.
EVENT_TABLE = "audit_events"
#: Members every event of auditsync's JSON form has, and no AWS document has together.
EVENT_MEMBERS = frozenset({"key", "timestamp", "serverhost", "operation", "dialect", "origin"})


def is_event(document: bytes) -> bool:
    """Whether a JSON document is an event as auditsync writes it (``decode``'s output)."""
    try:
        value = orjson.loads(document)
    except orjson.JSONDecodeError:
        return False
    return isinstance(value, dict) and value.keys() >= EVENT_MEMBERS


def json_events(documents: Iterable[tuple[int, bytes]], path: str) -> Iterator[Events | Unreadable]:
    """Events of auditsync's JSON Lines (its documents, numbered), in blocks; a document
    that is not one is a dead letter with its bytes and number."""
    block: list[AuditEvent] = []
    for number, document in documents:
        try:
            if len(document) > LONGEST_RECORD:
                raise AuditSyncError(f"a document of {len(document)} bytes")
            block.append(event_from_dict(orjson.loads(document)))
        except (orjson.JSONDecodeError, AuditSyncError) as error:
            if block:
                yield Events(block)
                block = []
            where = Origin(path=path, line_number=number)
            yield Unreadable(f"{path}: document {number}: {error}", document[:_KEPT], where)
            continue
        if len(block) >= LINES_PER_BLOCK:
            yield Events(block)
            block = []
    if block:
        yield Events(block)


def database_events(path: str) -> Iterator[Events | Unreadable]:
    """The events of an SQLite database the SQLite sink wrote, in the order it stored them.

    Opened read-only by its path (SQLite reads files, not streams): a database on
    standard input or compressed is refused, as is one without the sink's table.
    """
    where = Origin(path=path)
    if path == "-" or not Path(path).is_file():
        yield Unreadable(f"{path}: an SQLite database is read from a file", b"", where)
        return
    try:
        connection = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        yield Unreadable(f"cannot open {path} as an SQLite database: {error}", b"", where)
        return
    number = 0
    try:
        connection.row_factory = sqlite3.Row
        try:
            rows = connection.execute(f"SELECT * FROM {EVENT_TABLE} ORDER BY rowid")
        except sqlite3.Error as error:
            message = f"{path}: an SQLite database without auditsync's {EVENT_TABLE} table"
            yield Unreadable(f"{message} ({error})", b"", where)
            return
        while block := rows.fetchmany(LINES_PER_BLOCK):
            events: list[AuditEvent] = []
            for row in block:
                number += 1
                try:
                    events.append(event_from_row(row))
                except (AuditSyncError, KeyError, IndexError, ValueError) as error:
                    place = Origin(path=path, line_number=number)
                    yield Unreadable(f"{path}: row {number}: {error}", b"", place)
            yield Events(events)
    except sqlite3.Error as error:
        yield Unreadable(f"cannot read {path} to its end: {error}", b"", where)
    finally:
        connection.close()
