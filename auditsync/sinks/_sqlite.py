"""SQLiteSink: events and dead letters in a SQLite database, one row per key.

The columns, and how a value becomes a row, are shared with the PostgreSQL sink
(:mod:`auditsync.sinks._postgres`), so both databases hold the same rows:

* one column per event field; the origin flattened into ``origin_*`` columns;
* ``timestamp`` as ISO 8601 UTC text with microseconds (``2024-01-31T14:02:07.000000Z``):
  fixed width, so text order is time order and an index serves ranges; SQLite's date
  functions read it. PostgreSQL stores it as ``timestamptz``;
* text the database cannot hold exactly (bytes that are not UTF-8; on PostgreSQL also
  NUL) is stored readable, U+FFFD in place of what could not be kept, and the exact
  bytes go beside it: the object's in ``object_bytes``, any other field's in
  ``raw_fields``, a JSON object of column name to base64. Both are NULL when the text
  is exact, which is nearly always.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

import attrs
import orjson

from .._events import (
    EVENT_FIELDS,
    ORIGIN_FIELDS,
    AuditEvent,
    DeadLetter,
    Field,
    Form,
    compiled,
    exact_bytes,
    field_reads,
)
from .._json import (
    _b64,
    dead_letter_key,
    event_from_dict,
    event_to_dict,
    is_unicode,
    iso_timestamp,
)
from ._base import Refused, Stored

__all__ = [
    "DEAD_LETTER_COLUMNS",
    "EVENT_COLUMNS",
    "INDEXED_COLUMNS",
    "SQLiteSink",
    "dead_letter_row",
    "event_from_row",
    "event_row",
    "sql_refusal",
]

_ORIGIN_COLUMNS = tuple(f"origin_{field.name}" for field in ORIGIN_FIELDS)
#: The event's fields that are a column each; the origin is flattened into _ORIGIN_COLUMNS.
_FIELD_COLUMNS = tuple(field for field in EVENT_FIELDS if field.form is not Form.ORIGIN)
#: The event table's columns, in the order of :func:`event_row`: the key, the fields in
#: order (the object's exact bytes beside it), the origin, the exact bytes of the rest.
_FIELD_NAMES = tuple(field.name for field in _FIELD_COLUMNS)
_OBJECT_BYTES_AT = 1 + _FIELD_NAMES.index("object") + 1
EVENT_COLUMNS = (
    "key",
    *_FIELD_NAMES[: _OBJECT_BYTES_AT - 1],
    "object_bytes",
    *_FIELD_NAMES[_OBJECT_BYTES_AT - 1 :],
    *_ORIGIN_COLUMNS,
    "raw_fields",
)
#: The dead-letter table's columns, in the order of :func:`dead_letter_row`.
DEAD_LETTER_COLUMNS = ("key", "stage", "error", "raw", *_ORIGIN_COLUMNS, "event_key", "event")
#: The event columns the sinks index: what audit questions filter on.
INDEXED_COLUMNS = ("timestamp", "username", "database", "operation")


def column_types(
    forms: Mapping[Form, str], columns: Sequence[str], others: Mapping[str, str]
) -> dict[str, str]:
    """A database's type for each of ``columns``: a field's by its form (``forms``), an
    origin column's likewise, and ``others`` for the columns that are no field."""
    by_column = {field.name: field.form for field in _FIELD_COLUMNS}
    by_column |= {f"origin_{field.name}": field.form for field in ORIGIN_FIELDS}
    return {
        column: others[column] if column in others else forms[by_column[column]]
        for column in columns
    }


_SQLITE_FORMS = {
    Form.TEXT: "TEXT NOT NULL",
    Form.OPTIONAL_TEXT: "TEXT",
    Form.INTEGER: "INTEGER NOT NULL",
    Form.OPTIONAL_INTEGER: "INTEGER",
    Form.FLAG: "INTEGER NOT NULL",
    Form.TIMESTAMP: "TEXT NOT NULL",
    Form.DIALECT: "TEXT NOT NULL",
}
_SQLITE_EVENT_TYPES = column_types(
    _SQLITE_FORMS,
    EVENT_COLUMNS,
    {"key": "TEXT PRIMARY KEY NOT NULL", "object_bytes": "BLOB", "raw_fields": "TEXT"},
)
_SQLITE_DEAD_LETTER_TYPES = column_types(
    _SQLITE_FORMS,
    DEAD_LETTER_COLUMNS,
    {
        "key": "TEXT PRIMARY KEY NOT NULL",
        "stage": "TEXT NOT NULL",
        "error": "TEXT NOT NULL",
        "raw": "BLOB NOT NULL",
        "event_key": "TEXT",
        "event": "TEXT",
    },
)

# SQL integers are 64-bit; the grammar reads ids of any length.
_INT64 = range(-(2**63), 2**63)


# --- rows, shared with the PostgreSQL sink --------------------------------------------------


_INTEGER_FORMS = (Form.INTEGER, Form.OPTIONAL_INTEGER)
_EVENT_INTEGERS = tuple(field.name for field in _FIELD_COLUMNS if field.form in _INTEGER_FORMS)
_ORIGIN_INTEGERS = tuple(field.name for field in ORIGIN_FIELDS if field.form in _INTEGER_FORMS)


def sql_refusal(event: AuditEvent) -> str | None:
    """Why a SQL table can never hold ``event``, or ``None``: an id beyond 64 bits."""
    origin = event.origin
    named = [(name, getattr(event, name)) for name in _EVENT_INTEGERS]
    if origin is not None:
        named += [(f"origin {name}", getattr(origin, name)) for name in _ORIGIN_INTEGERS]
    for name, value in named:
        if value is not None and value not in _INT64:
            return f"{name} does not fit a 64-bit SQL integer"
    return None


class _Text:
    """Turns field values into column text, keeping the exact bytes of what it changes."""

    __slots__ = ("exact", "nul_free")

    def __init__(self, nul_free: bool):
        self.nul_free = nul_free
        self.exact: dict[str, bytes] = {}

    def __call__(self, column: str, value: str | None) -> str | None:
        if value is None or (is_unicode(value) and not (self.nul_free and "\x00" in value)):
            return value
        raw = exact_bytes(value)
        self.exact[column] = raw
        text = raw.decode("utf-8", "replace")
        return text.replace("\x00", "\ufffd") if self.nul_free else text


#: How a field's value of each form becomes its cell (``{v}`` the value, ``{n}`` the
#: column): text through ``text``, which keeps the exact bytes of what it must change.
_CELL: Final = {
    Form.TEXT: "text({n!r}, {v})",
    Form.OPTIONAL_TEXT: "text({n!r}, {v})",
    Form.INTEGER: "{v}",
    Form.OPTIONAL_INTEGER: "{v}",
    Form.FLAG: "{v}",
    Form.TIMESTAMP: "iso_timestamp({v})",
    Form.DIALECT: "{v}.value",
}


def _cells(value: str, fields: Sequence[Field], prefix: str) -> Callable[..., tuple[Any, ...]]:
    """``(text, value) -> cells``: the fields' cells, compiled from their forms."""
    reads = field_reads(value, (field.name for field in fields))
    cells = "".join(
        _CELL[field.form].format(v=read, n=prefix + field.name) + ", "
        for field, read in zip(fields, reads, strict=True)
    )
    return compiled(f"text, {value}", f"({cells})", {"iso_timestamp": iso_timestamp})


_field_cells = _cells("event", _FIELD_COLUMNS, "")
_origin_cells = _cells("origin", ORIGIN_FIELDS, "origin_")
_NO_ORIGIN = (None,) * len(_ORIGIN_COLUMNS)


def _origin_values(text: _Text, event_or_letter: AuditEvent | DeadLetter) -> tuple[Any, ...]:
    origin = event_or_letter.origin
    return _NO_ORIGIN if origin is None else _origin_cells(text, origin)


def event_row(event: AuditEvent, *, nul_free: bool = False) -> tuple[Any, ...]:
    """The event as a row of :data:`EVENT_COLUMNS`; ``nul_free`` for databases without NUL."""
    text = _Text(nul_free)
    key = text("key", event.key)
    cells = _field_cells(text, event)
    origin = _origin_values(text, event)
    object_bytes = text.exact.pop("object", None)
    raw_fields = None
    if text.exact:
        raw_fields = orjson.dumps({k: _b64(v) for k, v in text.exact.items()}).decode()
    at = _OBJECT_BYTES_AT - 1
    return (key, *cells[:at], object_bytes, *cells[at:], *origin, raw_fields)


def event_from_row(row: Mapping[str, Any]) -> AuditEvent:
    """The event :func:`event_row` stored, byte for byte: a row of :data:`EVENT_COLUMNS`
    (by name) made into the JSON form, which :func:`event_from_dict` reads. A column the
    row lacks (a table made before its field joined the event) is left out of the form,
    where it reads as null if its field may be."""
    present = set(row.keys())
    exact = dict(orjson.loads(row["raw_fields"])) if row["raw_fields"] else {}
    if row["object_bytes"] is not None:
        exact["object"] = _b64(bytes(row["object_bytes"]))
    document: dict[str, Any] = {}
    origin: dict[str, Any] = {}
    for column in EVENT_COLUMNS:
        if column in ("object_bytes", "raw_fields") or column not in present:
            continue
        into, name = (origin, column[7:]) if column in _ORIGIN_COLUMNS else (document, column)
        into[name] = row[column]
        if column in exact:
            into[f"{name}_base64"] = exact[column]
    document["truncated"] = bool(document["truncated"])
    document["origin"] = origin if any(value is not None for value in origin.values()) else None
    return event_from_dict(document)


def dead_letter_row(letter: DeadLetter, *, nul_free: bool = False) -> tuple[Any, ...]:
    """The dead letter as a row of :data:`DEAD_LETTER_COLUMNS`.

    ``raw`` keeps the input bytes and ``event`` the refused event as JSON
    (:func:`~auditsync._json.event_to_dict`), both exact; the message and the
    origin are stored readable.
    """
    text = _Text(nul_free)
    event = letter.event
    return (
        dead_letter_key(letter),
        text("stage", letter.stage),
        text("error", letter.error),
        letter.raw,
        *_origin_values(text, letter),
        None if event is None else text("event_key", event.key),
        None if event is None else orjson.dumps(event_to_dict(event)).decode(),
    )


# --- the sink -----------------------------------------------------------------------------


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@attrs.define
class RowBatch:
    """A batch split for an SQL sink: rows to store, and the events it must refuse."""

    event_rows: list[tuple[Any, ...]] = attrs.field(factory=list)
    letter_rows: list[tuple[Any, ...]] = attrs.field(factory=list)
    refused: list[AuditEvent] = attrs.field(factory=list)
    reasons: dict[str, None] = attrs.field(factory=dict)

    def raise_refusals(self, stored: Stored | None = None) -> None:
        """After the rows are stored: say which events never will be."""
        if self.refused:
            raise Refused(self.refused, "; ".join(self.reasons), stored=stored)


def split_batch(items: Sequence[AuditEvent | DeadLetter], *, nul_free: bool = False) -> RowBatch:
    """Rows for the events and dead letters of a batch, shared by the SQL sinks."""
    batch = RowBatch()
    for item in items:
        if isinstance(item, AuditEvent):
            reason = sql_refusal(item)
            if reason is None:
                batch.event_rows.append(event_row(item, nul_free=nul_free))
            else:
                batch.refused.append(item)
                batch.reasons[reason] = None
        elif isinstance(item, DeadLetter):
            batch.letter_rows.append(dead_letter_row(item, nul_free=nul_free))
        else:
            raise TypeError(f"expected an AuditEvent or a DeadLetter, got {type(item).__name__}")
    return batch


class SQLiteSink:
    """Events in ``table`` and dead letters in ``dead_letter_table`` of a SQLite database.

    Writes are idempotent: a key already stored is skipped, so a retried batch adds no
    rows. Each ``write`` is one transaction, begun with ``BEGIN IMMEDIATE`` so that
    writers queue on the busy timeout instead of failing on a lock upgrade: several
    processes can write one file. A path is opened in WAL mode (readers never block the
    writer) and closed by :meth:`close`. A connection you pass keeps its settings and
    stays open; if it is inside a transaction, each write is a savepoint in it and the
    commit is yours. The sink may be shared between threads.

    Events with an id beyond SQL's 64-bit integers are stored nowhere: ``write`` stores
    the rest of the batch, then raises :class:`~auditsync.sinks.Refused` naming them.
    """

    def __init__(
        self,
        path_or_connection: str | os.PathLike[str] | sqlite3.Connection,
        *,
        table: str = "audit_events",
        dead_letter_table: str = "dead_letters",
        timeout: float = 30.0,
    ):
        self._path: str | None = None
        self._file: tuple[int, int] | None = None
        if isinstance(path_or_connection, sqlite3.Connection):
            self._connection = path_or_connection
            self._owned = False
        else:
            self._connection = sqlite3.connect(
                path_or_connection, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._owned = True
            self._path = os.fspath(path_or_connection)
        self._lock = threading.Lock()
        self._closed = False
        self._insert_event = _insert(table, EVENT_COLUMNS)
        self._insert_dead_letter = _insert(dead_letter_table, DEAD_LETTER_COLUMNS)
        try:
            if self._owned:
                self._connection.execute("PRAGMA journal_mode=WAL")
            with self._transaction():
                self._connection.execute(_create_table(table, EVENT_COLUMNS, _SQLITE_EVENT_TYPES))
                for column in INDEXED_COLUMNS:
                    self._connection.execute(
                        f"CREATE INDEX IF NOT EXISTS {_quote(f'{table}_{column}_idx')} "
                        f"ON {_quote(table)} ({column})"
                    )
                self._connection.execute(
                    _create_table(dead_letter_table, DEAD_LETTER_COLUMNS, _SQLITE_DEAD_LETTER_TYPES)
                )
            self._file = _identity(self._path)
        except BaseException:
            self.close()
            raise

    @property
    def connection(self) -> sqlite3.Connection:
        """The connection the sink writes through, for reading the tables back."""
        return self._connection

    def write(self, events: Sequence[AuditEvent | DeadLetter]) -> Stored:
        """Store the batch in one transaction, skipping keys already stored; say how many
        events were new."""
        if self._closed:
            raise ValueError("write to a closed SQLiteSink")
        batch = split_batch(events)
        event_rows, letter_rows = batch.event_rows, batch.letter_rows
        new = 0
        if event_rows or letter_rows:
            with self._lock, self._transaction():
                self._check_file()
                if event_rows:
                    before = self._connection.total_changes
                    self._connection.executemany(self._insert_event, event_rows)
                    new = self._connection.total_changes - before
                if letter_rows:
                    self._connection.executemany(self._insert_dead_letter, letter_rows)
        stored = Stored(new, len(event_rows) - new)
        batch.raise_refusals(stored)
        return stored

    def _check_file(self) -> None:
        """Fail the batch if the database file was deleted or replaced since it was opened.

        SQLite keeps writing to the file it has open, so rows sent to a deleted database
        would vanish with its last handle while every write succeeded. One ``stat`` per
        batch, made while the write lock is held.
        """
        if self._file is not None and _identity(self._path) != self._file:
            raise sqlite3.OperationalError(
                f"{self._path}: the database file was deleted or replaced after it was opened"
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        connection = self._connection
        if connection.in_transaction:
            connection.execute("SAVEPOINT auditsync")
            try:
                yield
            except BaseException:
                connection.execute("ROLLBACK TO auditsync")
                connection.execute("RELEASE auditsync")
                raise
            connection.execute("RELEASE auditsync")
            return
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            connection.rollback()
            raise
        connection.commit()

    def close(self) -> None:
        """Close the connection the sink opened; one passed in stays open."""
        if self._closed:
            return
        self._closed = True
        if self._owned:
            self._connection.close()

    def __enter__(self) -> SQLiteSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _identity(path: str | None) -> tuple[int, int] | None:
    """The device and inode of a database file; None in memory, or when there is none."""
    if path is None or path in ("", ":memory:"):
        return None
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino


def _create_table(table: str, columns: Sequence[str], types: dict[str, str]) -> str:
    definitions = ", ".join(f"{column} {types[column]}" for column in columns)
    return f"CREATE TABLE IF NOT EXISTS {_quote(table)} ({definitions})"


def _insert(table: str, columns: Sequence[str]) -> str:
    # ON CONFLICT (key) rather than INSERT OR IGNORE: only a repeated key is skipped,
    # any other constraint failure still raises.
    return (
        f"INSERT INTO {_quote(table)} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' * len(columns))}) ON CONFLICT (key) DO NOTHING"
    )
