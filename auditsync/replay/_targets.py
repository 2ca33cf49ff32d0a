"""How :class:`~auditsync.replay.ReplaySink` speaks to a target database: :class:`Target`.

Each kind of database quotes names, begins transactions, sets session variables, says what
it knows of a table and tells errors a retry can fix from errors it cannot in its own way;
a :class:`Target` subclass says it for one kind. The bookkeeping tables' definitions live
here too, in each database's types.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, Final

from ..sql._lexer import quote_name as quote
from ._analysis import TableInfo, volatile_default

__all__ = ["APPLIED", "PENDING", "STATE", "MySQLTarget", "SQLiteTarget", "Target", "decoded"]

STATE: Final = "auditsync_replay_state"
PENDING: Final = "auditsync_replay_pending"
APPLIED: Final = "auditsync_replay_applied"

#: MySQL errors a retry or an operator can fix: connections, locks, read-only mode, access,
#: resources. Any other error of a replayed statement is the statement's: it would fail again.
_MYSQL_TRANSIENT: Final = frozenset(
    {
        *range(1040, 1046),  # connections, memory, handshake, access denied
        1049,  # unknown database: the mapping names one not created yet
        1053, 1077, 1080, 1081, 1129, 1130, 1135, 1142, 1143, 1152, 1153, 1154, 1155, 1156,
        1157, 1158, 1159, 1160, 1161, 1180, 1181, 1203, 1205, 1213, 1223, 1226, 1290, 1317,
        1614, 1615, 1792, 1836, 1927, 1969, 3024, 4031,
    }
)  # fmt: skip
_TRANSACTIONAL_ENGINES: Final = frozenset({"innodb", "xtradb", "rocksdb", "tokudb", "ndbcluster"})
_SQLITE_TRANSIENT: Final = ("locked", "busy", "disk i/o", "unable to open", "interrupted")


class Target:
    """How :class:`ReplaySink` speaks to one kind of target database.

    Subclass it for a database other than MySQL/MariaDB and SQLite. ``paramstyle`` is the
    DB-API module's (``qmark`` or ``format``); the bookkeeping statements use it, while
    replayed statements are executed without parameters, as the source ran them.
    """

    default_schema = ""
    #: Whether DDL is transactional (SQLite) or commits by itself (MySQL).
    transactional_ddl = False
    #: Appended to the SELECT of a connection's state, to serialise concurrent sinks.
    lock_rows = ""

    def __init__(self, paramstyle: str = "format"):
        if paramstyle not in ("qmark", "format", "pyformat"):
            raise ValueError(f"unsupported paramstyle {paramstyle!r}: use qmark or format")
        self.mark = "?" if paramstyle == "qmark" else "%s"

    @staticmethod
    def for_connection(connection: Any) -> Target:
        """The target for a DB-API connection, told by the module that made it."""
        package = type(connection).__module__.split(".")[0]
        if package == "sqlite3":
            return SQLiteTarget()
        if package in ("pymysql", "MySQLdb", "mysql", "mariadb"):
            module = sys.modules.get(package)
            return MySQLTarget(getattr(module, "paramstyle", "format"))
        raise TypeError(
            f"cannot tell what database a {type(connection).__name__} speaks to:"
            " pass target=MySQLTarget() or a Target subclass"
        )

    def check(self, databases: Mapping[str, str] | None) -> None:
        """Refuse a database mapping this target cannot follow."""

    def quote(self, name: str) -> str:
        raise NotImplementedError

    def table(self, schema: str, name: str) -> str:
        return f"{self.quote(schema)}.{self.quote(name)}"

    def create(self, schema: str) -> list[str]:
        """The statements that make the bookkeeping tables, if they are missing."""
        raise NotImplementedError

    def begin(self, connection: Any, cursor: Any) -> None:
        cursor.execute("BEGIN")

    def use(self, cursor: Any, database: str) -> None:
        raise NotImplementedError

    def set_variable(self, cursor: Any, name: str, value: str | None) -> None:
        """Set a mirrored session variable (``None``: back to the server's default)."""

    def statement(self, text: str) -> str | bytes:
        """What to hand the driver: text, or bytes where the text holds non-UTF-8 bytes."""
        return text

    def table_info(self, cursor: Any, database: str, table: str) -> TableInfo | None:
        return None

    def permanent(self, error: BaseException) -> bool:
        """Whether a replayed statement's error would come again on every retry."""
        return False


class MySQLTarget(Target):
    """MySQL and MariaDB, through pymysql, mysqlclient, mysql-connector or MariaDB's own.

    The bookkeeping tables live in their own database (``auditsync_replay`` unless told),
    InnoDB, so they commit with the change. DDL commits by itself: the sink commits what
    came before it, runs it, and records it at once.
    """

    default_schema = "auditsync_replay"
    lock_rows = " FOR UPDATE"

    def quote(self, name: str) -> str:
        return quote(name)

    def create(self, schema: str) -> list[str]:
        binary = "VARBINARY(255) NOT NULL"
        key = "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"
        ascii_text = "CHARACTER SET ascii COLLATE ascii_bin NOT NULL"
        return [
            f"CREATE DATABASE IF NOT EXISTS {self.quote(schema)}",
            f"CREATE TABLE IF NOT EXISTS {self.table(schema, STATE)} ("
            f" serverhost {binary}, connection_id BIGINT UNSIGNED NOT NULL,"
            f" session MEDIUMTEXT {ascii_text}, updated_at VARCHAR(40) {ascii_text},"
            " PRIMARY KEY (serverhost, connection_id)) ENGINE=InnoDB",
            f"CREATE TABLE IF NOT EXISTS {self.table(schema, PENDING)} ("
            f" serverhost {binary}, connection_id BIGINT UNSIGNED NOT NULL,"
            f" seq BIGINT UNSIGNED NOT NULL, event_key {key}, target_db VARBINARY(255),"
            f" settings TEXT {ascii_text}, statement LONGBLOB NOT NULL,"
            " PRIMARY KEY (serverhost, connection_id, seq)) ENGINE=InnoDB",
            f"CREATE TABLE IF NOT EXISTS {self.table(schema, APPLIED)} ("
            f" event_key {key}, serverhost {binary}, connection_id BIGINT UNSIGNED NOT NULL,"
            f" outcome VARCHAR(16) {ascii_text}, reason TEXT CHARACTER SET utf8mb4,"
            f" event_time VARCHAR(40) {ascii_text},"
            " PRIMARY KEY (event_key), KEY event_time (event_time)) ENGINE=InnoDB",
        ]

    def begin(self, connection: Any, cursor: Any) -> None:
        cursor.execute("START TRANSACTION")

    def use(self, cursor: Any, database: str) -> None:
        cursor.execute(f"USE {self.quote(database)}")

    def set_variable(self, cursor: Any, name: str, value: str | None) -> None:
        # ``value`` is one literal token the source itself ran (see _LITERAL).
        cursor.execute(f"SET SESSION {name} = {'DEFAULT' if value is None else value}")

    def statement(self, text: str) -> str | bytes:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # bytes that were not UTF-8, kept as surrogates
            return text.encode("utf-8", "surrogateescape")
        return text

    def table_info(self, cursor: Any, database: str, table: str) -> TableInfo | None:
        cursor.execute(
            "SELECT TABLE_TYPE, ENGINE FROM information_schema.TABLES"
            f" WHERE TABLE_SCHEMA = {self.mark} AND TABLE_NAME = {self.mark}",
            (database, table),
        )
        found = cursor.fetchone()
        if found is None:
            return None
        kind, engine = found
        cursor.execute(
            "SELECT COLUMN_NAME, EXTRA, COLUMN_DEFAULT FROM information_schema.COLUMNS"
            f" WHERE TABLE_SCHEMA = {self.mark} AND TABLE_NAME = {self.mark}"
            " ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        columns, auto, volatile, on_update = [], None, set(), set()
        for name, extra, default in cursor.fetchall():
            name, extra = decoded(name).lower(), decoded(extra or "").lower()
            columns.append(name)
            if "auto_increment" in extra:
                auto = name
            if "on update" in extra:
                on_update.add(name)
            if default is not None and volatile_default(decoded(default)):
                volatile.add(name)
        view = decoded(kind or "").upper() == "VIEW"
        return TableInfo(
            columns=tuple(columns),
            auto_increment=auto,
            volatile_defaults=frozenset(volatile),
            on_update=frozenset(on_update),
            transactional=view or decoded(engine or "").lower() in _TRANSACTIONAL_ENGINES,
            view=view,
        )

    def permanent(self, error: BaseException) -> bool:
        code = getattr(error, "errno", None)
        if not isinstance(code, int):
            args = getattr(error, "args", ())
            code = args[0] if args and isinstance(args[0], int) else None
        if code is None:
            return False
        return code not in _MYSQL_TRANSIENT and not 2000 <= code < 3000


class SQLiteTarget(Target):
    """SQLite, through :mod:`sqlite3`: a target for tests and small replicas.

    SQLite has one current database, ``main``, so every replicated database must map to
    it; it has no session variables to mirror. Its DDL is transactional.
    """

    default_schema = "main"
    transactional_ddl = True

    def __init__(self) -> None:
        super().__init__("qmark")

    def check(self, databases: Mapping[str, str] | None) -> None:
        if databases is None or any(value != "main" for value in databases.values()):
            raise ValueError("a SQLite target replays into main: map each database to 'main'")

    def quote(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def create(self, schema: str) -> list[str]:
        applied = self.table(schema, APPLIED)
        return [
            f"CREATE TABLE IF NOT EXISTS {self.table(schema, STATE)} ("
            " serverhost BLOB NOT NULL, connection_id INTEGER NOT NULL,"
            " session TEXT NOT NULL, updated_at TEXT NOT NULL,"
            " PRIMARY KEY (serverhost, connection_id))",
            f"CREATE TABLE IF NOT EXISTS {self.table(schema, PENDING)} ("
            " serverhost BLOB NOT NULL, connection_id INTEGER NOT NULL, seq INTEGER NOT NULL,"
            " event_key TEXT NOT NULL, target_db BLOB, settings TEXT NOT NULL,"
            " statement BLOB NOT NULL, PRIMARY KEY (serverhost, connection_id, seq))",
            f"CREATE TABLE IF NOT EXISTS {applied} ("
            " event_key TEXT PRIMARY KEY NOT NULL, serverhost BLOB NOT NULL,"
            " connection_id INTEGER NOT NULL, outcome TEXT NOT NULL, reason TEXT,"
            " event_time TEXT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {self.table(schema, APPLIED + '_time')}"
            f" ON {self.quote(APPLIED)} (event_time)",
        ]

    def begin(self, connection: Any, cursor: Any) -> None:
        if not connection.in_transaction:
            cursor.execute("BEGIN")

    def use(self, cursor: Any, database: str) -> None:
        if database != "main":
            raise ValueError(f"a SQLite target cannot switch to database {database!r}")

    def table_info(self, cursor: Any, database: str, table: str) -> TableInfo | None:
        cursor.execute(
            f"SELECT type FROM {self.quote(database)}.sqlite_master WHERE name = ?", (table,)
        )
        found = cursor.fetchone()
        if found is None:
            return None
        cursor.execute(f"PRAGMA {self.quote(database)}.table_info({self.quote(table)})")
        rows = cursor.fetchall()
        keys = [row for row in rows if row[5]]
        # A lone INTEGER PRIMARY KEY is the rowid: omitted, NULL, the server picks it.
        auto = keys[0][1].lower() if len(keys) == 1 and keys[0][2].upper() == "INTEGER" else None
        volatile = {row[1].lower() for row in rows if row[4] and volatile_default(row[4])}
        columns = tuple(row[1].lower() for row in rows)
        return TableInfo(
            columns=columns,
            auto_increment=auto,
            volatile_defaults=frozenset(volatile),
            view=found[0] == "view",
        )

    def permanent(self, error: BaseException) -> bool:
        import sqlite3

        if isinstance(error, sqlite3.IntegrityError | sqlite3.DataError):
            return True
        if isinstance(error, sqlite3.OperationalError):
            message = str(error).lower()
            return not any(word in message for word in _SQLITE_TRANSIENT)
        return False


def decoded(value: str | bytes) -> str:
    """A value the driver returned as bytes or text, as text (bytes not UTF-8 kept)."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
