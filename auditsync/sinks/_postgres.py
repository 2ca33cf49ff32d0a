"""PostgresSink: events and dead letters in PostgreSQL, through psycopg 3.

The rows are the SQLite sink's (:func:`~auditsync.sinks._sqlite.event_row`), in proper
types: ``timestamptz``, ``bigint``, ``boolean``, ``bytea``, ``jsonb``. PostgreSQL text
cannot hold NUL, which queries in the audit log can: such text is stored with U+FFFD in
place of each NUL, and its exact bytes beside it, as for bytes that are not UTF-8.

psycopg is an optional extra (``pip install 'auditsync[postgres]'``), imported when a
sink is made, so ``import auditsync.sinks`` works without it.
"""

from __future__ import annotations

import hashlib
import importlib
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import unquote

from .._events import AuditEvent, DeadLetter, Form
from ._base import Stored
from ._sqlite import (
    DEAD_LETTER_COLUMNS,
    EVENT_COLUMNS,
    INDEXED_COLUMNS,
    column_types,
    derived_updates,
    migration,
    split_batch,
)

__all__ = ["PostgresSink", "redact_conninfo"]

_FORMS = {
    Form.TEXT: "text NOT NULL",
    Form.OPTIONAL_TEXT: "text",
    Form.INTEGER: "bigint NOT NULL",
    Form.OPTIONAL_INTEGER: "bigint",
    Form.FLAG: "boolean NOT NULL",
    Form.TIMESTAMP: "timestamptz NOT NULL",
    Form.DIALECT: "text NOT NULL",
}
_EVENT_TYPES = column_types(
    _FORMS,
    EVENT_COLUMNS,
    {"key": "text PRIMARY KEY", "object_bytes": "bytea", "raw_fields": "jsonb"},
)
_DEAD_LETTER_TYPES = column_types(
    _FORMS,
    DEAD_LETTER_COLUMNS,
    {
        "key": "text PRIMARY KEY",
        "stage": "text NOT NULL",
        "error": "text NOT NULL",
        "raw": "bytea NOT NULL",
        "event_key": "text",
        # json, not jsonb: the event's text may hold NUL, which json keeps as \u0000.
        "event": "json",
    },
)


#: The password of a URL: ``scheme://user:PASSWORD@``, up to the last ``@`` before the
#: path, so that a password holding a raw ``@`` goes whole.
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)([^/?#\s]*)@")
#: A URL's query parameter; libpq decodes names too (``pass%77ord=`` is ``password=``).
_URL_PARAMETER = re.compile(r"([?&])([^=&#\s]*)=([^&#\s]*)")
#: ``password=value`` of a key/value conninfo: quoted, or everything up to the next
#: ``keyword=`` or the end of the line (an unquoted password with a space goes whole).
_KEYWORD_PASSWORD = re.compile(
    r"(?<![?&])\b((?:ssl)?password\s*=\s*)"
    r"('(?:[^'\\\n]|\\.)*'?|[^\n]*?)(?=\s+[A-Za-z_]\w*\s*=|[ \t]*(?:\n|$))",
    re.IGNORECASE,
)
#: A quoted keyword value: what is inside its quotes, escapes and all.
_QUOTED_VALUE = re.compile(r"'((?:[^'\\\n]|\\.)*)'?")
_SECRET_NAMES = frozenset({"password", "sslpassword"})
_HIDDEN = "***"


def redact_conninfo(text: str, conninfo: str | None = None) -> str:
    """``text`` with every password of a PostgreSQL conninfo in it replaced by ``***``.

    Both forms: URLs (``postgresql://user:pw@host/db``, ``?password=pw``, percent-encoded
    or not) and key/value strings (``password=pw``, ``password='p w'``). With
    ``conninfo``, also every piece of *its* passwords wherever it appears in ``text``:
    libpq's own errors quote fragments of the conninfo they could not read (``missing
    "=" after "pw"``). For what the command line prints and what a sink raises.
    """
    secrets = sorted(set(_passwords(conninfo)) if conninfo else (), key=len, reverse=True)
    text = _URL_PASSWORD.sub(rf"\1{_HIDDEN}@", text)
    text = _URL_PARAMETER.sub(_hide_parameter, text)
    text = _KEYWORD_PASSWORD.sub(rf"\1{_HIDDEN}", text)
    for secret in secrets:
        text = text.replace(secret, _HIDDEN)
        for piece in secret.split():
            # A short piece is hidden where libpq quotes it, not inside every word.
            text = text.replace(f'"{piece}"', f'"{_HIDDEN}"')
            if len(piece) >= 4:
                text = text.replace(piece, _HIDDEN)
    return text


def _passwords(conninfo: str) -> Iterator[str]:
    """The passwords a conninfo holds, as written and as libpq reads them."""
    found: list[str] = [match.group(2) for match in _URL_PASSWORD.finditer(conninfo)]
    found += [
        match.group(3)
        for match in _URL_PARAMETER.finditer(conninfo)
        if unquote(match.group(2)).lower() in _SECRET_NAMES
    ]
    for match in _KEYWORD_PASSWORD.finditer(conninfo):
        value = match.group(2)
        quoted = _QUOTED_VALUE.fullmatch(value)  # its closing quote, if any, is no escape's
        inner = quoted.group(1) if quoted else value
        found += [value, re.sub(r"\\(.)", r"\1", inner)]
    for value in found:
        if value:
            yield value
            yield unquote(value)


def _hide_parameter(match: re.Match[str]) -> str:
    if unquote(match.group(2)).lower() in _SECRET_NAMES:
        return f"{match.group(1)}{match.group(2)}={_HIDDEN}"
    return match.group(0)


def _import_psycopg() -> Any:
    # Imported by name, so that neither importing auditsync nor type-checking it needs
    # the extra installed.
    try:
        return importlib.import_module("psycopg")
    except ImportError as missing:
        raise ImportError(
            "PostgresSink needs psycopg 3: pip install 'auditsync[postgres]'"
        ) from missing


class _Table:
    """A table's name, columns and the statements that fill it."""

    def __init__(self, sql: Any, name: str, columns: Sequence[str], types: dict[str, str]):
        parts = name.split(".")
        if not 1 <= len(parts) <= 2 or not all(parts):
            raise ValueError(f"table name {name!r} should be 'table' or 'schema.table'")
        self.name = name
        self.columns = tuple(columns)
        self.types = types
        self.identifier = sql.Identifier(*parts)
        # A temporary twin per target: COPY fills it, one INSERT moves new keys across.
        digest = hashlib.blake2b(name.encode(), digest_size=6).hexdigest()
        stage = sql.Identifier(f"auditsync_stage_{digest}")
        names = sql.SQL(", ").join(map(sql.Identifier, self.columns))
        self.create = [
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
                self.identifier,
                sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(types[column]))
                    for column in self.columns
                ),
            )
        ]
        self.stage = [
            sql.SQL(
                "CREATE TEMPORARY TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DELETE ROWS"
            ).format(stage, self.identifier),
            # Empty already, unless the caller's own transaction spans several writes.
            sql.SQL("DELETE FROM {}").format(stage),
        ]
        self.copy = sql.SQL("COPY {} ({}) FROM STDIN").format(stage, names)
        # Keys in order: concurrent writers then wait on each other's keys in the same
        # order and cannot deadlock.
        self.insert = sql.SQL(
            "INSERT INTO {} ({}) SELECT {} FROM {} ORDER BY {} ON CONFLICT ({}) DO NOTHING"
        ).format(
            self.identifier,
            names,
            names,
            stage,
            sql.Identifier("key"),
            sql.Identifier("key"),
        )

    def index(self, sql: Any, column: str) -> Any:
        return sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
            sql.Identifier(f"{self.name.split('.')[-1]}_{column}_idx"),
            self.identifier,
            sql.Identifier(column),
        )


class PostgresSink:
    """Events in ``table`` and dead letters in ``dead_letter_table`` of a PostgreSQL database.

    ``table`` may name a schema: ``"audit.events"``. With ``create`` (the default) the
    tables and indexes are made if missing, under an advisory lock so that writers
    starting together do not collide. Each ``write`` is one transaction: the rows are
    COPied to a temporary table, then one ``INSERT ... ON CONFLICT (key) DO NOTHING``
    stores the keys not yet stored, so a retried batch adds no rows, and concurrent
    writers of overlapping batches store each key once.

    A conninfo string opens a connection the sink owns: closed by :meth:`close`, and
    opened again by the next write after it broke. A connection you pass stays yours;
    if it is inside a transaction, each write is a savepoint in it and the commit is
    yours. The sink may be shared between threads.

    Events with an id beyond 64-bit integers are refused
    (:class:`~auditsync.sinks.Refused`) after the rest of the batch is stored.
    """

    def __init__(
        self,
        conninfo_or_connection: Any,
        *,
        table: str = "audit_events",
        dead_letter_table: str = "dead_letters",
        create: bool = True,
    ):
        self._psycopg = _import_psycopg()
        sql = self._psycopg.sql
        self._events = _Table(sql, table, EVENT_COLUMNS, _EVENT_TYPES)
        self._dead_letters = _Table(sql, dead_letter_table, DEAD_LETTER_COLUMNS, _DEAD_LETTER_TYPES)
        self._lock = threading.Lock()
        self._closed = False
        self._conninfo: str | None = None
        if isinstance(conninfo_or_connection, str):
            self._conninfo = conninfo_or_connection
            self._connection = self._connect()
        else:
            self._connection = conninfo_or_connection
        if create:
            try:
                self._create(sql)
            except BaseException:
                self.close()
                raise

    def _connect(self) -> Any:
        """Connect; an error says what went wrong without the conninfo's password, which
        libpq may quote (and not as the error's cause either, which would carry it)."""
        psycopg = self._psycopg
        try:
            return psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.Error as error:
            failure = type(error)(redact_conninfo(str(error), self._conninfo))
        raise failure

    def _create(self, sql: Any) -> None:
        with self._connection.transaction(), self._connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("auditsync",))
            for table in (self._events, self._dead_letters):
                for statement in table.create:
                    cursor.execute(statement)
                _migrate(sql, cursor, table)
            for column in INDEXED_COLUMNS:
                cursor.execute(self._events.index(sql, column))

    @property
    def connection(self) -> Any:
        """The psycopg connection the sink writes through."""
        return self._connection

    def write(self, events: Sequence[AuditEvent | DeadLetter]) -> Stored:
        """Store the batch in one transaction, skipping keys already stored; say how many
        events were new."""
        if self._closed:
            raise ValueError("write to a closed PostgresSink")
        batch = split_batch(events, nul_free=True)
        event_rows, letter_rows = batch.event_rows, batch.letter_rows
        new = 0
        if event_rows or letter_rows:
            with self._lock:
                connection = self._live_connection()
                with connection.transaction(), connection.cursor() as cursor:
                    if event_rows:
                        new = _store(cursor, self._events, event_rows)
                    if letter_rows:
                        _store(cursor, self._dead_letters, letter_rows)
        stored = Stored(new, len(event_rows) - new)
        batch.raise_refusals(stored)
        return stored

    def _live_connection(self) -> Any:
        """The connection, opened again if the sink owns it and it broke since."""
        if self._conninfo is not None and self._connection.closed:
            self._connection = self._connect()
        return self._connection

    def close(self) -> None:
        """Close the connection the sink opened; one passed in stays open."""
        if self._closed:
            return
        self._closed = True
        if self._conninfo is not None:
            self._connection.close()

    def __enter__(self) -> PostgresSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _migrate(sql: Any, cursor: Any, table: _Table) -> None:
    """Add the columns a table of an earlier version lacks, and fill in derived ones
    (docs/sinks.md); run under the sink's advisory lock, in the creating transaction."""
    cursor.execute(
        "SELECT attname FROM pg_attribute"
        " WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        (table.identifier.as_string(cursor),),
    )
    plan = migration(table.name, {row[0] for row in cursor.fetchall()}, table.columns, table.types)
    for column, kind, default in plan.columns:
        fallback = sql.SQL("") if default is None else sql.SQL(" DEFAULT {}")
        cursor.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}{}").format(
                table.identifier,
                sql.Identifier(column),
                sql.SQL(kind),
                fallback.format(sql.Literal(default)),
            )
        )
    if plan.derived:
        source = sql.Identifier(plan.source)
        cursor.execute(
            sql.SQL("SELECT DISTINCT {} FROM {} WHERE {} IS NOT NULL").format(
                source, table.identifier, source
            )
        )
        sources = [row[0] for row in cursor.fetchall()]
        updates = derived_updates(plan.derived, sources, nul_free=True)
        if updates:
            assignments = sql.SQL(", ").join(
                sql.SQL("{} = %s").format(sql.Identifier(column)) for column in plan.derived
            )
            cursor.executemany(
                sql.SQL("UPDATE {} SET {} WHERE {} = %s").format(
                    table.identifier, assignments, source
                ),
                updates,
            )


def _store(cursor: Any, table: _Table, rows: Sequence[tuple[Any, ...]]) -> int:
    """Store ``rows`` whose keys ``table`` lacks; how many that was."""
    for statement in table.stage:
        cursor.execute(statement)
    with cursor.copy(table.copy) as copy:
        for row in rows:
            copy.write_row(row)
    cursor.execute(table.insert)
    return int(cursor.rowcount)
