"""Where the change feed keeps what outlives an invocation: the storage format, and stores.

Three tables (or three dicts, in memory), written together at each checkpoint:

- ``auditsync_feed_state``: one row per source connection with an open session: its
  :class:`~auditsync.transactions.Session` as :meth:`Session.dump` writes it.
- ``auditsync_feed_held``: the writes of open transactions, by connection and ``seq``.
- ``auditsync_feed_seen``: the key of every event handled, and why it was refused.

docs/changes.md describes the format field by field; :data:`FEED_FORMAT` is its version.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, NamedTuple, Protocol

from .._errors import AuditSyncError
from .._json import event_from_dict, event_to_dict
from ._model import Write

__all__ = [
    "FEED_FORMAT",
    "Checkpoint",
    "FeedFormatError",
    "MemoryStore",
    "SQLStore",
    "Store",
    "connection_key",
    "decode_write",
    "encode_write",
    "open_store",
]

#: The version of the feed's storage format (the held writes; sessions carry their own).
FEED_FORMAT: Final = 1

STATE: Final = "auditsync_feed_state"
HELD: Final = "auditsync_feed_held"
SEEN: Final = "auditsync_feed_seen"


class FeedFormatError(AuditSyncError):
    """A stored write this version cannot read: a newer format, or not a write at all."""


def connection_key(serverhost: str, connection_id: int) -> str:
    """A source connection as the stores key it: ASCII JSON, whatever the host's bytes."""
    return json.dumps([serverhost, connection_id], ensure_ascii=True, separators=(",", ":"))


def encode_write(write: Write) -> str:
    """A held write as ASCII JSON text, in storage format :data:`FEED_FORMAT`."""
    document = {
        "format": FEED_FORMAT,
        "event": event_to_dict(write.event),
        "tables": list(write.tables),
        "sql_mode": write.sql_mode,
    }
    return json.dumps(document, ensure_ascii=True, separators=(",", ":"))


def decode_write(text: str | bytes) -> Write:
    """The write :func:`encode_write` stored."""
    try:
        document = json.loads(text)
        version = document.get("format")
        if version != FEED_FORMAT:
            raise FeedFormatError(
                f"stored write in format {version!r}: this version reads format {FEED_FORMAT}"
            )
        return Write(
            event_from_dict(document["event"]),
            tuple(document["tables"]),
            document.get("sql_mode", ""),
        )
    except FeedFormatError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise FeedFormatError(f"stored write is not one: {error!r}") from error


class Seen(NamedTuple):
    """An event handled: its key, why it was refused (or ``None``), and its time."""

    event_key: str
    reason: str | None
    event_time: str


class Checkpoint(NamedTuple):
    """What one checkpoint writes, in one transaction of the store."""

    #: Connection -> its session's text, or ``None`` when the connection ended.
    sessions: Mapping[str, str | None]
    #: Writes newly held: (connection, seq, text).
    held: Sequence[tuple[str, int, str]]
    #: Held writes gone (committed or rolled back): (connection, seq).
    dropped: Sequence[tuple[str, int]]
    seen: Sequence[Seen]


class Store(Protocol):
    """What the feed asks of the place its state lives."""

    def load(self, connection: str) -> tuple[str | None, dict[int, str]]:
        """A connection's session text (``None``: none stored) and held writes by seq."""
        ...

    def seen(self, keys: Sequence[str]) -> dict[str, str | None]:
        """Which of ``keys`` were handled before, with the reason each was refused."""
        ...

    def save(self, checkpoint: Checkpoint, updated_at: str) -> None:
        """Write a checkpoint, all of it or nothing."""
        ...

    def rollback(self) -> None:
        """Give up what was read since the last save (a failed write)."""
        ...

    def prune(self, before: str) -> int:
        """Forget the keys of events older than ``before``; how many went."""
        ...

    def close(self) -> None: ...


class MemoryStore:
    """State in this process: a notebook, or one batch run over whole files."""

    def __init__(self) -> None:
        self.sessions: dict[str, str] = {}
        self.held: dict[str, dict[int, str]] = {}
        self.keys: dict[str, Seen] = {}

    def load(self, connection: str) -> tuple[str | None, dict[int, str]]:
        return self.sessions.get(connection), dict(self.held.get(connection, {}))

    def seen(self, keys: Sequence[str]) -> dict[str, str | None]:
        return {key: self.keys[key].reason for key in keys if key in self.keys}

    def save(self, checkpoint: Checkpoint, updated_at: str) -> None:
        for connection, text in checkpoint.sessions.items():
            if text is None:
                self.sessions.pop(connection, None)
            else:
                self.sessions[connection] = text
        for connection, seq in checkpoint.dropped:
            self.held.get(connection, {}).pop(seq, None)
        for connection, seq, text in checkpoint.held:
            self.held.setdefault(connection, {})[seq] = text
        for connection in [c for c, held in self.held.items() if not held]:
            del self.held[connection]
        for seen in checkpoint.seen:
            self.keys[seen.event_key] = seen

    def rollback(self) -> None:
        pass

    def prune(self, before: str) -> int:
        old = [key for key, seen in self.keys.items() if seen.event_time < before]
        for key in old:
            del self.keys[key]
        return len(old)

    def close(self) -> None:
        pass


#: Per kind of database: the column types of the three tables.
_TYPES: Final = {
    "sqlite": {
        "key": "TEXT",
        "text": "TEXT",
        "long": "TEXT",
        "int": "INTEGER",
        "suffix": "",
    },
    "postgresql": {
        "key": "TEXT",
        "text": "TEXT",
        "long": "TEXT",
        "int": "BIGINT",
        "suffix": "",
    },
    "mysql": {
        "key": "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        "text": "TEXT CHARACTER SET utf8mb4",
        "long": "LONGTEXT CHARACTER SET ascii COLLATE ascii_bin",
        "int": "BIGINT",
        "suffix": " ENGINE=InnoDB",
    },
}
_KINDS: Final = {
    "sqlite3": "sqlite",
    "psycopg": "postgresql",
    "psycopg2": "postgresql",
    "pymysql": "mysql",
    "MySQLdb": "mysql",
    "mysql": "mysql",
    "mariadb": "mysql",
}


class SQLStore:
    """State in a database, through a DB-API 2 connection: SQLite, PostgreSQL, MySQL/MariaDB.

    The tables live in the connection's current database (schema); ``create`` makes them
    if they are missing. A connection given is used and left open; a function that opens
    one makes the connection the store's, opened again after a failure and closed by
    :meth:`close`.
    """

    def __init__(self, connection: Any, *, create: bool = True):
        owned = callable(connection) and not hasattr(connection, "cursor")
        self._connect: Callable[[], Any] | None = connection if owned else None
        self._connection: Any = None if owned else connection
        package = type(self.connection).__module__.split(".")[0]
        kind = _KINDS.get(package)
        if kind is None:
            raise TypeError(
                f"cannot tell what database a {type(self.connection).__name__} speaks to:"
                " the change feed keeps its state in SQLite, PostgreSQL or MySQL/MariaDB"
            )
        self.kind = kind
        module = sys.modules.get(package)
        self.mark = "?" if getattr(module, "paramstyle", "qmark") == "qmark" else "%s"
        if create:
            self._create()

    @property
    def connection(self) -> Any:
        if self._connection is None:
            assert self._connect is not None
            self._connection = self._connect()
        if _autocommits(self._connection):
            # Each checkpoint must be one transaction: sessions, held writes and keys
            # together, or a crash between them delivers twice or loses a write.
            raise ValueError(
                "the change feed's state needs a connection that does not autocommit"
                f" (a {type(self._connection).__name__} with autocommit on)"
            )
        return self._connection

    def _create(self) -> None:
        t = _TYPES[self.kind]
        statements = [
            f"CREATE TABLE IF NOT EXISTS {STATE} (connection {t['key']} NOT NULL,"
            f" session {t['long']} NOT NULL, updated_at VARCHAR(40) NOT NULL,"
            f" PRIMARY KEY (connection)){t['suffix']}",
            f"CREATE TABLE IF NOT EXISTS {HELD} (connection {t['key']} NOT NULL,"
            f" seq {t['int']} NOT NULL, body {t['long']} NOT NULL,"
            f" PRIMARY KEY (connection, seq)){t['suffix']}",
            f"CREATE TABLE IF NOT EXISTS {SEEN} (event_key {t['key']} NOT NULL,"
            f" reason {t['text']}, event_time VARCHAR(40) NOT NULL,"
            f" PRIMARY KEY (event_key)){t['suffix']}",
        ]
        if self.kind == "mysql":
            has_index = (
                "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA ="
                f" DATABASE() AND TABLE_NAME = '{SEEN}' AND INDEX_NAME = '{SEEN}_time'"
            )
            index = f"CREATE INDEX {SEEN}_time ON {SEEN} (event_time)"
        else:
            has_index = None
            index = f"CREATE INDEX IF NOT EXISTS {SEEN}_time ON {SEEN} (event_time)"
        cursor = self.connection.cursor()
        try:
            for statement in statements:
                cursor.execute(statement)
            if has_index is not None:
                cursor.execute(has_index)
                row = cursor.fetchone()
                if row is None or not row[0]:
                    cursor.execute(index)
            else:
                cursor.execute(index)
            self.connection.commit()
        finally:
            cursor.close()

    def _run(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, tuple(parameters))
            return list(cursor.fetchall()) if cursor.description is not None else []
        finally:
            cursor.close()

    def load(self, connection: str) -> tuple[str | None, dict[int, str]]:
        p = self.mark
        rows = self._run(f"SELECT session FROM {STATE} WHERE connection = {p}", (connection,))
        session = None if not rows else _text(rows[0][0])
        held = self._run(f"SELECT seq, body FROM {HELD} WHERE connection = {p}", (connection,))
        return session, {int(seq): _text(body) for seq, body in held}

    def seen(self, keys: Sequence[str]) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ", ".join([self.mark] * len(chunk))
            sql = f"SELECT event_key, reason FROM {SEEN} WHERE event_key IN ({marks})"
            for key, reason in self._run(sql, chunk):
                found[_text(key)] = None if reason is None else _text(reason)
        return found

    def save(self, checkpoint: Checkpoint, updated_at: str) -> None:
        p = self.mark
        connection = self.connection
        cursor = connection.cursor()
        try:
            for key, text in checkpoint.sessions.items():
                cursor.execute(f"DELETE FROM {STATE} WHERE connection = {p}", (key,))
                if text is None:
                    cursor.execute(f"DELETE FROM {HELD} WHERE connection = {p}", (key,))
                else:
                    cursor.execute(
                        f"INSERT INTO {STATE} (connection, session, updated_at)"
                        f" VALUES ({p}, {p}, {p})",
                        (key, text, updated_at),
                    )
            _many(
                cursor,
                f"DELETE FROM {HELD} WHERE connection = {p} AND seq = {p}",
                checkpoint.dropped,
            )
            _many(
                cursor,
                f"INSERT INTO {HELD} (connection, seq, body) VALUES ({p}, {p}, {p})",
                checkpoint.held,
            )
            _many(
                cursor,
                f"INSERT INTO {SEEN} (event_key, reason, event_time) VALUES ({p}, {p}, {p})",
                checkpoint.seen,
            )
            connection.commit()
        except BaseException:
            self.rollback()
            raise
        finally:
            with contextlib.suppress(Exception):
                cursor.close()

    def rollback(self) -> None:
        if self._connection is None:
            return
        try:
            self._connection.rollback()
        except Exception:
            if self._connect is None:
                raise
            self._drop()  # broken: the next write opens a new one

    def prune(self, before: str) -> int:
        cursor = self.connection.cursor()
        try:
            cursor.execute(f"DELETE FROM {SEEN} WHERE event_time < {self.mark}", (before,))
            count = int(cursor.rowcount)
            self.connection.commit()
        finally:
            cursor.close()
        return count

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        with contextlib.suppress(Exception):
            connection.close()

    def close(self) -> None:
        if self._connect is not None and self._connection is not None:
            self._drop()


def _autocommits(connection: Any) -> bool:
    """Whether a DB-API connection commits each statement by itself."""
    value = getattr(connection, "autocommit", None)
    if isinstance(value, bool):  # psycopg, sqlite3 from Python 3.12
        return value
    getter = getattr(connection, "get_autocommit", None)  # pymysql, mysqlclient
    if callable(getter):
        return bool(getter())
    if type(connection).__module__.split(".")[0] == "sqlite3":
        return connection.isolation_level is None
    return False


def _many(cursor: Any, sql: str, rows: Iterable[Sequence[Any]]) -> None:
    rows = [tuple(row) for row in rows]
    if rows:
        cursor.executemany(sql, rows)


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes | bytearray) else value


def open_store(state: Any) -> Store:
    """The store for ``ChangeFeed(state=...)``: memory, a SQLite path, or a DB-API connection."""
    if state is None:
        return MemoryStore()
    if isinstance(state, str | Path):
        path = str(state)
        return SQLStore(lambda: sqlite3.connect(path, timeout=30.0))
    return SQLStore(state)
