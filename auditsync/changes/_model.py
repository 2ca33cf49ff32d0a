"""What a committed statement changed, as far as its text decides: :class:`Change`.

The feed's policy (:class:`FeedPolicy`) answers the session machine about each write:
which tables it follows, and where the statement writes. What the statement's text
decides about rows (:func:`read_changes`) is read when its transaction commits, from the
event and the place the policy noted, so that a transaction held across invocations is
read the same way as one seen whole.
"""

from __future__ import annotations

import base64
import fnmatch
import itertools
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import attrs

from .._events import AuditEvent
from .._json import event_to_dict, iso_timestamp
from ..sql import DDL_KINDS, Statement
from ..sql._lexer import Lexed
from ..sql._values import (
    NOT_LITERAL,
    NotLiteral,
    Value,
    assignments,
    insert_shape,
    literal,
    where_pins,
)
from ..transactions import (
    LEXICAL_MODES,
    SYSTEM_DATABASES,
    Refuse,
    Session,
    Skip,
    Take,
    Verdict,
    escaped_length,
)

__all__ = [
    "MAX_KEYS",
    "Change",
    "FeedPolicy",
    "Transaction",
    "Write",
    "read_changes",
    "transaction_to_dict",
    "value_to_json",
]

#: More key tuples than this (``a IN (…1000 values…) AND b IN (…1000…)``) decide nothing:
#: a change keeps ``keys=None`` rather than a list too long to be of use.
MAX_KEYS: Final = 10_000

_DML: Final = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})
_LOADS: Final = frozenset({"LOAD_DATA", "LOAD_XML"})

Key = tuple[Value, ...]


@attrs.frozen(slots=True)
class Change:
    """What one committed statement did to one table, and what its text decides.

    ``table`` is ``db.table``; ``operation`` the statement's kind (``INSERT``, ``UPDATE``,
    ``DELETE``, ``REPLACE``, ``TRUNCATE``, ``LOAD_DATA``, or a DDL kind such as
    ``ALTER_TABLE``). ``rows``, ``where``, ``assignments`` and ``keys`` are ``None`` when
    the text does not decide them (see docs/changes.md): values are read as the server
    reads the literals, never guessed.
    """

    table: str
    operation: str
    event: AuditEvent = attrs.field(eq=False, repr=False)
    #: INSERT/REPLACE with a column list: each row, column -> value (literal values only).
    rows: tuple[Mapping[str, Value], ...] | None = None
    #: UPDATE/DELETE whose WHERE is a conjunction: each pinned column -> its values.
    where: Mapping[str, tuple[Value, ...]] | None = None
    #: UPDATE: the columns the SET clause assigns a literal, with it.
    assignments: Mapping[str, Value] | None = None
    #: The key tuples of the rows targeted (old and new, for an UPDATE of the key), when
    #: ``keys=`` names the table's key columns and the text decides every one of them.
    keys: tuple[Key, ...] | None = None


@attrs.frozen(slots=True)
class Transaction:
    """A committed transaction that wrote something the feed follows.

    ``key`` is stable across redeliveries (the key of the event that committed it, with
    ``/n`` for a second transaction the same event ended): a handler that may be offered
    a transaction again deduplicates by it. ``events`` are the statements, for audit: the
    writes, in order, then the statement that committed them when it is another one.
    """

    key: str
    serverhost: str
    connection_id: int
    username: str
    host: str
    committed_at: datetime
    changes: tuple[Change, ...]
    events: tuple[AuditEvent, ...] = attrs.field(repr=False)


@attrs.frozen(slots=True)
class Write:
    """A write the policy took: the event, the tables it writes that the feed follows, and
    the session's ``sql_mode`` when it ran (which decides how its text reads)."""

    event: AuditEvent
    tables: tuple[str, ...]
    sql_mode: str = ""


class FeedPolicy:
    """The change feed's answers to :class:`~auditsync.transactions.SessionMachine`.

    A write is taken when it writes a followed table (``tables`` and ``databases`` are
    globs; the server's own databases are never followed); DDL only with ``ddl``. A write
    whose table cannot be told (an unqualified name and no current database, text the
    scanner finds no table in) is refused: delivering its transaction without it would
    hide a change.
    """

    def __init__(
        self,
        *,
        tables: Sequence[str] | None = None,
        databases: Sequence[str] | None = None,
        ddl: bool = False,
    ):
        self.tables = None if tables is None else tuple(tables)
        self.databases = None if databases is None else tuple(databases)
        self.ddl = ddl

    def follows(self, database: str, table: str) -> bool:
        if database in SYSTEM_DATABASES:
            return False
        if self.databases is not None and not _matches(database, self.databases):
            return False
        return self.tables is None or _matches(f"{database}.{table}", self.tables)

    def judge(self, session: Session, event: AuditEvent, statement: Statement) -> Verdict[Write]:
        kind = statement.kind
        if kind in DDL_KINDS and kind != "TRUNCATE" and not self.ddl:
            return Skip("DDL (ddl=False)")
        if session.lost is not None:
            return Refuse(f"connection state unknown: {session.lost}")
        if (event.truncated or Lexed.of(event.object).cut) and _cut_in_name(event, statement):
            return Refuse("truncated: the log cut the statement inside a table's name")
        places = [session.place(name) for name in statement.writes]
        if any(place is None for place in places):
            return Refuse("table unknown: an unqualified table and no current database")
        if not places:
            if (kind in _DML or kind in _LOADS) and (event.truncated or Lexed.of(event.object).cut):
                return Refuse("truncated: the log cut the statement before its table")
            if kind in _DML or kind in _LOADS:
                return Refuse("table unknown: auditsync finds no table in the statement")
            return Skip("DDL of no table (a routine, a trigger, an event)")
        ours = tuple(
            f"{db}.{table}"
            for db, table in dict.fromkeys(place for place in places if place is not None)
            if f"{db}.{table}" not in session.temporary and self.follows(db, table)
        )
        if not ours:
            return Skip("not followed")
        return Take(Write(event, ours, _sql_mode(session)))


_NAME_ROOM: Final = 512
#: The word a text ends with: a name, maybe qualified, maybe in an unclosed backquote.
_LAST_WORD: Final = re.compile(r"(?:`(?:[^`]|``)*`?|[0-9A-Za-z_$\u0080-\uffff.])+\Z")


def _cut_in_name(event: AuditEvent, statement: Statement) -> bool:
    """Whether a cut text ends in the name of a table it writes: that name may be longer."""
    # A name is at most a few hundred characters: searching a bounded tail keeps a long
    # run of name characters from costing the square of its length.
    tail = event.object[-_NAME_ROOM:]
    last = _LAST_WORD.search(tail)
    if last is None:
        return False
    word = last.group().replace("`", "").rsplit(".", 1)[-1]
    # A word that fills the whole tail may be the end of a longer name.
    longer = last.start() == 0 and len(tail) == _NAME_ROOM
    parts = [name.rsplit(".", 1)[-1] for name in statement.writes]
    return bool(word) and any(part == word or (longer and part.endswith(word)) for part in parts)


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _sql_mode(session: Session) -> str:
    return session.settings.get("sql_mode", "").strip("'\"").upper()


# --- What a statement's text decides ---------------------------------------------------------


def read_changes(
    write: Write, keys: Mapping[str, Sequence[str]], query_log_limit: int | None
) -> tuple[Change, ...]:
    """The changes of one write, one per table it writes that the feed follows."""
    event = write.event
    statement = event.statement
    kind = statement.kind if statement is not None else "OTHER"
    lexed = Lexed.of(event.object)
    decided = not (
        event.truncated
        or event.retcode is None
        or lexed.cut
        or (query_log_limit and escaped_length(event.object) >= query_log_limit - 1)
        or LEXICAL_MODES.search(write.sql_mode)
        or "\ufffd" in event.object  # bytes that were not UTF-8, replaced on the way
    )
    if not decided or kind not in _DML or len(write.tables) != 1:
        return tuple(Change(table, kind, event) for table in write.tables)
    table = write.tables[0]
    key_columns = _key_columns(keys, table)
    if kind in ("INSERT", "REPLACE"):
        return (_insert(table, kind, event, lexed, key_columns),)
    return (_targeted(table, kind, event, lexed, key_columns),)


def _key_columns(keys: Mapping[str, Sequence[str]], table: str) -> tuple[str, ...] | None:
    for name, columns in keys.items():
        if name == table or fnmatch.fnmatchcase(table, name):
            return tuple(column.lower() for column in columns)
    return None


def _insert(
    table: str, kind: str, event: AuditEvent, lexed: Lexed, key_columns: tuple[str, ...] | None
) -> Change:
    shape = insert_shape(lexed)
    if shape is None or shape.columns is None or shape.spans is None:
        return Change(table, kind, event)
    rows: list[dict[str, Value]] = []
    for spans in shape.spans:
        if len(spans) != len(shape.columns):
            return Change(table, kind, event)
        row: dict[str, Value] = {}
        for column, (start, end) in zip(shape.columns, spans, strict=True):
            value = literal(lexed.text[start:end])
            if not isinstance(value, NotLiteral):
                row[column] = value
        rows.append(row)
    found: tuple[Key, ...] | None = None
    if key_columns is not None and not set(key_columns) & set(shape.updates):
        found = _row_keys(rows, key_columns)
    return Change(table, kind, event, rows=tuple(rows), keys=found)


def _row_keys(rows: list[dict[str, Value]], key_columns: tuple[str, ...]) -> tuple[Key, ...] | None:
    """Every row's key, or ``None`` when a row leaves a key column to the server.

    NULL, 0, ``DEFAULT``, an expression or no value let an auto-increment column choose
    (0 unless ``NO_AUTO_VALUE_ON_ZERO``): the log does not show what it chose.
    """
    found: list[Key] = []
    for row in rows:
        if any(row.get(column) is None or _zero(row[column]) for column in key_columns):
            return None
        found.append(tuple(row[column] for column in key_columns))
    return tuple(dict.fromkeys(found))


def _zero(value: object) -> bool:
    return type(value) is int and value == 0


def _targeted(
    table: str, kind: str, event: AuditEvent, lexed: Lexed, key_columns: tuple[str, ...] | None
) -> Change:
    pins = where_pins(lexed)
    assigned: dict[str, Value] | None = None
    assigns: list[tuple[str, Any]] = []
    if kind == "UPDATE" and pins is not None:
        assigns = assignments(lexed)
        assigned = {c: v for c, v in assigns if not isinstance(v, NotLiteral)}
    found: tuple[Key, ...] | None = None
    if key_columns is not None and pins is not None and all(c in pins for c in key_columns):
        choices = [tuple(v for v in pins[column] if v is not None) for column in key_columns]
        count = 1
        for values in choices:
            count *= len(values)
        if count <= MAX_KEYS:
            old = tuple(dict.fromkeys(itertools.product(*choices)))
            found = _after_update(old, key_columns, assigns)
    return Change(
        table,
        kind,
        event,
        where=None if pins is None else dict(pins),
        assignments=assigned,
        keys=found,
    )


def _after_update(
    old: tuple[Key, ...], key_columns: tuple[str, ...], assigns: list[tuple[str, Any]]
) -> tuple[Key, ...] | None:
    """The old keys, then the new ones when the UPDATE assigns a key column a literal."""
    new: dict[str, Value] = {}
    for column, value in assigns:
        if column in key_columns:
            if value is NOT_LITERAL or value is None:
                return None  # ``SET id = id + 1000``: the new key is not in the text
            new[column] = value
    if not new:
        return old
    moved = [
        tuple(new.get(column, value) for column, value in zip(key_columns, key, strict=True))
        for key in old
    ]
    return tuple(dict.fromkeys([*old, *moved]))


# --- The JSON form ---------------------------------------------------------------------------


def value_to_json(value: Value) -> Any:
    """A value as JSON: numbers and strings as they are, exact decimals and bytes tagged.

    ``Decimal("1.50")`` is ``{"decimal": "1.50"}`` and ``b"AB"`` ``{"base64": "QUI="}``, so
    that no reader takes them for a float or a string.
    """
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    return value


def _change_to_dict(change: Change) -> dict[str, Any]:
    return {
        "table": change.table,
        "operation": change.operation,
        "event_key": change.event.key,
        "rows": None
        if change.rows is None
        else [{c: value_to_json(v) for c, v in row.items()} for row in change.rows],
        "where": None
        if change.where is None
        else {c: [value_to_json(v) for v in values] for c, values in change.where.items()},
        "assignments": None
        if change.assignments is None
        else {c: value_to_json(v) for c, v in change.assignments.items()},
        "keys": None
        if change.keys is None
        else [[value_to_json(v) for v in key] for key in change.keys],
    }


def transaction_to_dict(transaction: Transaction) -> dict[str, Any]:
    """The transaction as a JSON-ready dict: ``auditsync changes`` writes one per line."""
    return {
        "key": transaction.key,
        "serverhost": transaction.serverhost,
        "connection_id": transaction.connection_id,
        "username": transaction.username,
        "host": transaction.host,
        "committed_at": iso_timestamp(transaction.committed_at),
        "changes": [_change_to_dict(change) for change in transaction.changes],
        "events": [event_to_dict(event) for event in transaction.events],
    }
