"""ReplaySink without a server: SQLite through the DB-API plays the target.

Events are made the way the server writes them (one connection's records in order, table
events before their statement, query ids from a global counter), and every test checks
the target's rows, the bookkeeping, or the refusals, never the sink's insides.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from auditsync import AuditEvent, DeadLetter, Dialect, Line, Origin, Pipeline, format_line
from auditsync.replay import (
    MySQLTarget,
    ReplayRefused,
    ReplaySink,
    SQLiteTarget,
    Target,
    unsafe_reason,
)

SCHEMA = (
    "CREATE TABLE t (id INT PRIMARY KEY, v TEXT)",
    "CREATE TABLE u (id INT PRIMARY KEY, v TEXT)",
    # A lone INTEGER PRIMARY KEY is SQLite's rowid: the database picks it when omitted.
    "CREATE TABLE serial (id INTEGER PRIMARY KEY, what TEXT)",
    "CREATE TABLE stamped (id INT PRIMARY KEY, at TEXT DEFAULT CURRENT_TIMESTAMP)",
    "CREATE VIEW t_view AS SELECT id, v FROM t",
)
DATA = Path(__file__).resolve().parent / "data"


class Server:
    """Writes events as the server would: ids, a global query counter, table events."""

    def __init__(self, dialect: Dialect = Dialect.MARIADB, first_id: int = 1) -> None:
        self.ids = itertools.count(first_id)
        self.query_ids = itertools.count(1000)
        self.clock = datetime(2024, 1, 31, 14, 2, 7, tzinfo=UTC)
        self.dialect = dialect

    def event(
        self,
        connection: int,
        operation: str,
        text: str = "",
        *,
        database: str = "shop",
        query_id: int = 0,
        retcode: int | None = 0,
        truncated: bool = False,
    ) -> AuditEvent:
        number = next(self.ids)
        return AuditEvent(
            timestamp=self.clock,
            serverhost="db1",
            username="app",
            host="10.0.0.7",
            connection_id=connection,
            query_id=query_id,
            operation=operation,
            database=database,
            object=text,
            retcode=retcode,
            truncated=truncated,
            dialect=self.dialect,
            origin=Origin(event_id=f"{number:056d}"),
        )

    def connect(self, connection: int, database: str = "shop") -> AuditEvent:
        return self.event(connection, "CONNECT", database=database)

    def disconnect(self, connection: int) -> AuditEvent:
        return self.event(connection, "DISCONNECT")

    def query(self, connection: int, text: str, retcode: int = 0, **fields: Any) -> AuditEvent:
        fields.setdefault("query_id", next(self.query_ids))
        return self.event(connection, "QUERY", text, retcode=retcode, **fields)

    def table(self, connection: int, operation: str, name: str, query_id: int) -> AuditEvent:
        database, _, table = name.rpartition(".")
        return self.event(connection, operation, table, database=database, query_id=query_id)

    def session(self, connection: int, *texts: str, database: str = "shop") -> list[AuditEvent]:
        return [self.query(connection, text, database=database) for text in texts]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "replica.db"
    with sqlite3.connect(path) as connection:
        for statement in SCHEMA:
            connection.execute(statement)
    return path


@pytest.fixture
def server() -> Server:
    return Server()


def sink(path: Path, **options: Any) -> ReplaySink:
    """A new sink on a new connection: what a new Lambda container makes."""
    options.setdefault("databases", {"shop": "main"})
    connection = sqlite3.connect(path)
    # MariaDB logs a procedure's parameters as NAME_CONST(name, value); teach SQLite.
    connection.create_function("NAME_CONST", 2, lambda name, value: value, deterministic=True)
    return ReplaySink(connection, **options)


def write(path: Path, events: Sequence[AuditEvent], **options: Any) -> dict[str, str]:
    """Deliver one batch to a new sink; the reasons it refused, by statement."""
    replay = sink(path, **options)
    try:
        replay.write(events)
    except ReplayRefused as refusal:
        texts = {event.key: event.object or event.operation for event in events}
        return {texts[key]: reason for key, reason in refusal.reasons.items()}
    finally:
        replay.connection.close()
    return {}


def rows(path: Path, table: str = "t") -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as connection:
        return connection.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


def count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as connection:
        return int(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


# --- what is applied ---------------------------------------------------------------------------


def test_successful_writes_are_applied_and_failed_ones_are_not(path: Path, server: Server) -> None:
    events = [
        server.connect(1),
        *server.session(1, "INSERT INTO t VALUES (1, 'a,b')", "INSERT INTO t VALUES (2, 'x')"),
        server.query(1, "INSERT INTO t VALUES (1, 'duplicate')", retcode=1062),
        server.query(1, "UPDATE t SET v = 'it''s' WHERE id = 2"),
        server.query(1, "DELETE FROM t WHERE id = 1"),
        server.query(1, "SELECT * FROM t"),
        server.query(1, "REPLACE INTO t VALUES (3, 'new\nline')"),
    ]
    assert write(path, events) == {}
    assert rows(path) == [(2, "it's"), (3, "new\nline")]


def test_a_transaction_is_applied_at_its_commit_and_never_when_rolled_back(
    path: Path, server: Server
) -> None:
    events = [
        *server.session(1, "INSERT INTO t VALUES (1, 'before')", "BEGIN"),
        server.query(1, "UPDATE t SET v = 'from the transaction' WHERE id = 1"),
        # Committed before the transaction: the transaction's write comes after it.
        server.query(2, "UPDATE t SET v = 'autocommitted' WHERE id = 1"),
        server.query(1, "INSERT INTO t VALUES (2, 'committed')"),
    ]
    write(path, events)
    assert rows(path) == [(1, "autocommitted")]
    write(path, [server.query(1, "COMMIT")])
    assert rows(path) == [(1, "from the transaction"), (2, "committed")]
    write(
        path,
        [
            *server.session(1, "START TRANSACTION", "DELETE FROM t", "ROLLBACK"),
            *server.session(3, "BEGIN WORK", "INSERT INTO t VALUES (9, 'lost')"),
            server.disconnect(3),  # an open transaction at the end of a connection rolls back
        ],
    )
    assert rows(path) == [(1, "from the transaction"), (2, "committed")]
    assert count(path, "auditsync_replay_pending") == 0


@pytest.mark.parametrize(
    ("statements", "committed"),
    [
        (["BEGIN", "INSERT INTO t VALUES (1, 'x')", "BEGIN", "ROLLBACK"], True),
        (
            ["SET autocommit=0", "INSERT INTO t VALUES (1, 'x')", "SET autocommit=1", "ROLLBACK"],
            True,
        ),
        (["SET autocommit=0", "INSERT INTO t VALUES (1, 'x')", "SET @@autocommit = ON"], True),
        (["BEGIN", "INSERT INTO t VALUES (1, 'x')", "SET autocommit=1", "ROLLBACK"], False),
        (["BEGIN", "INSERT INTO t VALUES (1, 'x')", "CREATE TABLE v (a INT)", "ROLLBACK"], True),
        (["BEGIN", "INSERT INTO t VALUES (1, 'x')", "LOCK TABLES t WRITE", "ROLLBACK"], True),
        (["BEGIN", "INSERT INTO t VALUES (1, 'x')", "GRANT SELECT ON x.* TO y", "ROLLBACK"], True),
        (
            [
                "BEGIN",
                "INSERT INTO t VALUES (1, 'x')",
                "CREATE TEMPORARY TABLE tmp (a INT)",
                "ROLLBACK",
            ],
            False,
        ),
        (
            ["SET autocommit=0", "INSERT INTO t VALUES (1, 'x')", "COMMIT AND CHAIN", "ROLLBACK"],
            True,
        ),
        (["SET autocommit=0", "INSERT INTO t VALUES (1, 'x')"], False),
        (["SET SESSION autocommit = OFF", "INSERT INTO t VALUES (1, 'x')", "COMMIT"], True),
        (["SET GLOBAL autocommit = 0", "INSERT INTO t VALUES (1, 'x')", "ROLLBACK"], True),
    ],
)
def test_what_ends_a_transaction(
    path: Path, server: Server, statements: list[str], committed: bool
) -> None:
    write(path, server.session(1, *statements))
    assert rows(path) == ([(1, "x")] if committed else [])


def test_commit_and_chain_begins_the_next_transaction(path: Path, server: Server) -> None:
    write(
        path,
        server.session(
            1,
            "BEGIN",
            "INSERT INTO t VALUES (1, 'committed')",
            "COMMIT AND CHAIN",
            "INSERT INTO t VALUES (2, 'in the chained transaction')",
            "ROLLBACK AND NO CHAIN",
            "INSERT INTO t VALUES (3, 'autocommitted')",
            "ROLLBACK",
        ),
    )
    assert rows(path) == [(1, "committed"), (3, "autocommitted")]


def test_a_failed_statement_commits_implicitly_unless_the_parser_rejected_it(
    path: Path, server: Server
) -> None:
    write(
        path,
        [
            *server.session(1, "BEGIN", "INSERT INTO t VALUES (1, 'x')"),
            server.query(1, "CREATE TABLE", retcode=1064),  # never parsed: commits nothing
            server.query(1, "ROLLBACK"),
            *server.session(1, "BEGIN", "INSERT INTO t VALUES (2, 'y')"),
            server.query(1, "CREATE TABLE t (a INT)", retcode=1050),  # commits, then fails
            server.query(1, "ROLLBACK"),
        ],
    )
    assert rows(path) == [(2, "y")]


def test_a_deadlock_rolls_back_the_transaction_and_ends_begin(path: Path, server: Server) -> None:
    write(
        path,
        [
            *server.session(1, "BEGIN", "INSERT INTO t VALUES (1, 'x')"),
            server.query(1, "UPDATE t SET v = 'y' WHERE id = 1", retcode=1213),
            server.query(1, "INSERT INTO t VALUES (2, 'after the deadlock')"),  # autocommitted
            server.query(1, "ROLLBACK"),
        ],
    )
    assert rows(path) == [(2, "after the deadlock")]


def test_savepoints(path: Path, server: Server) -> None:
    write(
        path,
        server.session(
            1,
            "BEGIN",
            "INSERT INTO t VALUES (1, 'kept')",
            "SAVEPOINT a",
            "INSERT INTO t VALUES (2, 'undone')",
            "SAVEPOINT b",
            "INSERT INTO t VALUES (3, 'undone')",
            "ROLLBACK TO SAVEPOINT a",
            "INSERT INTO t VALUES (4, 'kept')",
            "ROLLBACK WORK TO b",  # gone with a: the server refuses it, but say it succeeded
            "COMMIT",
        ),
    )
    assert rows(path) == [(1, "kept"), (4, "kept")]


# --- nothing lives only in memory --------------------------------------------------------------


def test_a_transaction_spanning_invocations_is_applied_once_and_whole(
    path: Path, server: Server
) -> None:
    first = sink(path)
    first.write(server.session(1, "BEGIN", "INSERT INTO t VALUES (1, 'one')"))
    first.connection.close()
    second = sink(path)
    second.write(server.session(1, "INSERT INTO t VALUES (2, 'two')"))
    second.connection.close()
    assert rows(path) == []
    assert count(path, "auditsync_replay_pending") == 2
    third = sink(path)
    third.write([server.query(1, "COMMIT")])
    assert rows(path) == [(1, "one"), (2, "two")]
    assert (third.stats.committed, third.stats.resumed, third.stats.applied) == (1, 1, 2)
    assert count(path, "auditsync_replay_pending") == 0


def test_sessions_stored_in_format_1_are_read_once_and_written_back_in_format_2(
    path: Path,
) -> None:
    """State auditsync 0.1 left on a replica: an open transaction with a savepoint, a
    statement whose QUERY record had not come, a temporary table, a refused transaction."""
    stored = json.loads((DATA / "replay_state_format1.json").read_text())
    sink(path).connection.close()  # the bookkeeping tables exist
    with sqlite3.connect(path) as connection:
        for table in (
            "auditsync_replay_state",
            "auditsync_replay_pending",
            "auditsync_replay_applied",
        ):
            columns = stored[table]["columns"]
            blobs = [name in ("serverhost", "target_db", "statement") for name in columns]
            marks = ", ".join("?" * len(columns))
            connection.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                [
                    [
                        value.encode() if blob else value
                        for value, blob in zip(row, blobs, strict=True)
                    ]
                    for row in stored[table]["rows"]
                ],
            )
    server = Server(first_id=100)
    server.query_ids = itertools.count(2000)
    events = [
        *server.session(1, "ROLLBACK TO SAVEPOINT a", "COMMIT"),
        server.query(2, "INSERT INTO tmp VALUES (1)"),
        server.query(2, "INSERT INTO u VALUES (9, 'ran inside 5000')", query_id=5001),
        server.query(2, "INSERT INTO t VALUES (5, 'five')", query_id=5000),
        server.query(3, "COMMIT"),
    ]
    refused = write(path, events)
    assert refused == {
        "COMMIT": "transaction refused: it holds a statement not replayed"
        " (not deterministic: RAND())"
    }
    assert rows(path) == [(1, "one"), (5, "five")]
    assert rows(path, "u") == []
    assert count(path, "auditsync_replay_pending") == 0
    with sqlite3.connect(path) as connection:
        sessions = dict(
            connection.execute("SELECT connection_id, session FROM auditsync_replay_state")
        )
    assert all(json.loads(text)["format"] == 2 for text in sessions.values())
    second = json.loads(sessions[2])
    assert (second["stack"], second["popped"], second["temporary"]) == ([], 5000, ["shop.tmp"])


def test_redelivery_changes_nothing_and_refusals_come_again(path: Path, server: Server) -> None:
    events = [
        server.connect(1),
        *server.session(1, "INSERT INTO t VALUES (1, 'x')", "UPDATE t SET v = v || 'y'"),
        *server.session(1, "BEGIN", "INSERT INTO t VALUES (2, 'z')", "COMMIT"),
        server.query(1, "INSERT INTO t VALUES (3, RAND())"),
        server.disconnect(1),
    ]
    first = write(path, events)
    assert rows(path) == [(1, "xy"), (2, "z")]
    replay = sink(path)
    with pytest.raises(ReplayRefused) as again:
        replay.write(events[2:] + events)  # from the middle on, then all, in one batch
    assert [event.object for event in again.value.events] == list(first) * 2
    assert list(again.value.reasons.values()) == list(first.values())
    assert rows(path) == [(1, "xy"), (2, "z")]
    assert replay.stats.duplicates == len(events) * 2 - 2
    assert replay.stats.applied == 0


def test_a_failed_write_changes_nothing_and_is_retried(path: Path, server: Server) -> None:
    events = [
        *server.session(
            1, "INSERT INTO t VALUES (1, 'x')", "BEGIN", "INSERT INTO t VALUES (2, 'y')"
        )
    ]
    sink(path).connection.close()  # the bookkeeping tables exist
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the database
    replay = ReplaySink(sqlite3.connect(path, timeout=0), databases={"shop": "main"}, create=False)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        replay.write(events)
    holder.execute("ROLLBACK")
    assert rows(path) == []
    assert count(path, "auditsync_replay_applied") == 0
    replay.write(events)
    assert rows(path) == [(1, "x")]
    assert count(path, "auditsync_replay_pending") == 1


def test_a_connection_of_the_sinks_own_is_opened_again_after_a_failure(
    path: Path, server: Server
) -> None:
    opened: list[sqlite3.Connection] = []

    def connect() -> sqlite3.Connection:
        opened.append(sqlite3.connect(path, timeout=0))
        return opened[-1]

    replay = ReplaySink(connect, databases={"shop": "main"})
    replay.write([server.query(1, "INSERT INTO t VALUES (1, 'x')")])
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        replay.write([server.query(1, "INSERT INTO t VALUES (2, 'y')")])
    holder.execute("ROLLBACK")
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        opened[0].execute("SELECT 1")
    replay.write([server.query(1, "INSERT INTO t VALUES (3, 'z')")])
    replay.close()
    assert len(opened) == 2
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        opened[1].execute("SELECT 1")
    assert rows(path) == [(1, "x"), (3, "z")]


def test_a_statement_the_target_rejects_is_refused_and_the_rest_applied(
    path: Path, server: Server
) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO t VALUES (1, 'already there')")
    refused = write(
        path,
        [
            *server.session(1, "INSERT INTO t VALUES (1, 'x')", "INSERT INTO t VALUES (2, 'y')"),
            *server.session(
                2, "BEGIN", "INSERT INTO t VALUES (3, 'z')", "INSERT INTO t VALUES (1, 'w')"
            ),
            server.query(2, "COMMIT"),
        ],
    )
    assert refused["INSERT INTO t VALUES (1, 'x')"].startswith("failed on target: UNIQUE")
    assert refused["COMMIT"].startswith("transaction refused: failed on target: UNIQUE")
    assert rows(path) == [(1, "already there"), (2, "y")]  # the transaction applied as a unit


# --- what is refused ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("INSERT INTO t VALUES (1, NOW())", "not deterministic: NOW()"),
        ("insert into t values (1, now ( ))", "not deterministic: NOW()"),
        ("UPDATE t SET v = CURRENT_TIMESTAMP", "not deterministic: CURRENT_TIMESTAMP"),
        ("UPDATE t SET v = current_user", "not deterministic: CURRENT_USER"),
        ("INSERT INTO t VALUES (1, UUID_SHORT())", "not deterministic: UUID_SHORT()"),
        ("INSERT INTO t SELECT LAST_INSERT_ID(), 'x'", "not deterministic: LAST_INSERT_ID()"),
        ("INSERT INTO t VALUES (NEXT VALUE FOR s, 'x')", "not deterministic: a sequence"),
        ("INSERT INTO t VALUES (NEXTVAL(s), 'x')", "not deterministic: NEXTVAL()"),
        ("UPDATE t SET v = UNIX_TIMESTAMP()", "not deterministic: a sequence value or the current"),
        ("UPDATE t SET v = @x", "not deterministic: uses a user variable"),
        ("UPDATE t SET v = @@server_id", "not deterministic: reads a system variable"),
        ("UPDATE t SET v = ROW_COUNT()", "not deterministic: ROW_COUNT()"),
        ("UPDATE t SET v = FOUND_ROWS()", "not deterministic: FOUND_ROWS()"),
        ("UPDATE t SET v = CONNECTION_ID()", "not deterministic: CONNECTION_ID()"),
        ("UPDATE t SET v = DATABASE()", "not deterministic: DATABASE()"),
        ("/*!50001 UPDATE t SET v = SYSDATE() */", "not deterministic: SYSDATE()"),
        ("LOAD DATA INFILE '/tmp/x' INTO TABLE t", "LOAD DATA"),
        ("DELETE FROM t LIMIT 1", "unordered LIMIT"),
        ("UPDATE t SET v = 'x' WHERE v IS NULL LIMIT 10", "unordered LIMIT"),
        ("INSERT INTO t SELECT * FROM u LIMIT 2", "unordered LIMIT"),
        ("INSERT IGNORE INTO t SELECT * FROM u", "unordered SELECT"),
        ("REPLACE INTO t SELECT * FROM u", "unordered SELECT"),
        ("INSERT INTO t SELECT * FROM u ON DUPLICATE KEY UPDATE v = 1", "unordered SELECT"),
        ("UPDATE IGNORE t SET id = id + 1", "unordered UPDATE IGNORE"),
        ("INSERT INTO t VALUES (?, ?)", "placeholders"),
        ("INSERT INTO t VALUES (1, PASSWORD(*****))", "masked password"),
        ("INSERT INTO t VALUES (1, 'caf\ufffd')", "replaced bytes"),
        ("INSERT INTO t VALUES (1, 'a'); DELETE FROM t", "multi-statement"),
        ("INSERT INTO t VALUES (1, 'cut here", "truncated"),
        ("INSERT INTO t VALUES (1, 'x'), (2, ", "truncated"),
        ("INSERT INTO t VALUES (1, 'x') /* cut", "truncated"),
        # Safe: in literals, names and comments, none of it is code; ORDER BY fixes the rows.
        ("INSERT INTO t VALUES (1, 'NOW() @x ? ; LIMIT 1 *****')", None),
        ('INSERT INTO t VALUES (1, "RAND() \\" @@x")', None),
        ("INSERT INTO `now` (`rand`) VALUES (1) -- NOW()", None),
        ("INSERT INTO t VALUES (1, x'00ff'), (2, _binary'\\0'), (3, 'it''s;')", None),
        ("INSERT INTO t VALUES (1, 'x');  ", None),
        ("DELETE FROM t ORDER BY id LIMIT 1", None),
        ("INSERT IGNORE INTO t SELECT * FROM u ORDER BY id", None),
        ("UPDATE t SET v = db.now()", None),
        ("INSERT INTO t VALUES (NAME_CONST('p', 3), 'procedure parameter')", None),
        ("CREATE TABLE s (at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)", None),
        ("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.v = NOW()", None),
        ("CREATE TABLE s AS SELECT NOW() AS at", "not deterministic: NOW()"),
        ("ALTER TABLE t ADD COLUMN at TIMESTAMP DEFAULT CURRENT_TIMESTAMP", "not deterministic"),
    ],
)
def test_unsafe_reason(query: str, reason: str | None) -> None:
    found = unsafe_reason(query)
    assert (found if reason is None else (found or "")[: len(reason)]) == reason, found


def test_a_refused_statement_refuses_its_whole_transaction(path: Path, server: Server) -> None:
    refused = write(
        path,
        server.session(
            1,
            "BEGIN",
            "INSERT INTO t VALUES (1, 'before')",
            "INSERT INTO t VALUES (2, RAND())",
            "INSERT INTO t VALUES (3, 'after')",
            "COMMIT",
            "INSERT INTO t VALUES (4, 'outside')",
        ),
    )
    assert refused == {
        "INSERT INTO t VALUES (2, RAND())": "not deterministic: RAND()",
        "INSERT INTO t VALUES (3, 'after')": (
            "transaction refused: it holds a statement not replayed (not deterministic: RAND())"
        ),
        "COMMIT": (
            "transaction refused: it holds a statement not replayed (not deterministic: RAND())"
        ),
    }
    assert rows(path) == [(4, "outside")]
    assert count(path, "auditsync_replay_pending") == 0


def test_rolling_back_past_a_refused_statement_clears_the_refusal(
    path: Path, server: Server
) -> None:
    refused = write(
        path,
        server.session(
            1,
            "BEGIN",
            "INSERT INTO t VALUES (1, 'kept')",
            "SAVEPOINT s",
            "INSERT INTO t VALUES (2, UUID())",
            "ROLLBACK TO SAVEPOINT s",
            "INSERT INTO t VALUES (3, 'kept')",
            "COMMIT",
        ),
    )
    assert list(refused) == ["INSERT INTO t VALUES (2, UUID())"]
    assert rows(path) == [(1, "kept"), (3, "kept")]


def test_values_the_server_would_generate_are_refused(path: Path, server: Server) -> None:
    statements = {
        "INSERT INTO serial (what) VALUES ('omitted')": "auto-increment: omits serial.id",
        "INSERT INTO serial VALUES (NULL, 'null')": "auto-increment: serial.id = NULL",
        "INSERT INTO serial (id, what) VALUES (0, 'zero')": "auto-increment: serial.id = 0",
        "INSERT INTO serial (id, what) VALUES (5, 'a'), (6 + 1, 'b')": "auto-increment: serial.id",
        "INSERT INTO serial (id, what) SELECT id, v FROM t": "auto-increment: serial.id comes",
        "INSERT INTO serial VALUES (DEFAULT, 'default')": "auto-increment: serial.id = DEFAULT",
        "INSERT INTO stamped (id) VALUES (1)": "column default: stamped.at",
        "INSERT INTO stamped VALUES (2, DEFAULT)": "column default: stamped.at",
        "INSERT INTO t_view VALUES (3, 'x')": "view: writes through t_view",
        "INSERT INTO serial (id, what) VALUES (7, 'explicit'), (-8, 'negative')": None,
        "INSERT INTO serial VALUES (9, 'positional')": None,
        "INSERT INTO stamped (id, at) VALUES (3, '2024-01-31 14:02:07')": None,
        "INSERT INTO stamped VALUES (4, '2024-01-31 14:02:07')": None,
    }
    refused = write(path, server.session(1, *statements))
    assert refused == {
        text: reason for text, reason in refused.items() if statements[text] is not None
    }
    for text, reason in statements.items():
        if reason is not None:
            assert refused[text].startswith(reason), (text, refused[text])
    assert rows(path, "serial") == [(-8, "negative"), (7, "explicit"), (9, "positional")]
    assert len(rows(path, "stamped")) == 2


def test_statements_as_long_as_the_log_limit_may_have_been_cut(path: Path, server: Server) -> None:
    # The limit counts the log's bytes, where quotes and newlines take two. A statement one
    # byte short of it may be a cut one (the server never splits an escape pair).
    at_the_limit = "INSERT INTO t VALUES (1, 'it''s\nlong')"
    below = "INSERT INTO t VALUES (2, 'it''s\nlon')"
    assert len(at_the_limit) + at_the_limit.count("'") + at_the_limit.count("\n") == 43
    refused = write(path, server.session(1, at_the_limit, below), query_log_limit=44)
    assert refused == {
        at_the_limit: "truncated: as long as server_audit_query_log_limit (44 bytes)"
    }
    refused = write(path, [server.query(1, "INSERT INTO t VALUES (3, 'x')", truncated=True)])
    assert list(refused.values()) == ["truncated: the server logged part of the statement"]
    assert rows(path) == [(2, "it's\nlon")]


# --- databases, tables, connections ------------------------------------------------------------


def test_databases_are_mapped_and_others_left_alone(path: Path, server: Server) -> None:
    refused = write(
        path,
        [
            server.query(1, "INSERT INTO shop.t VALUES (1, 'qualified')", database=""),
            server.query(1, "INSERT INTO `shop` . `t` VALUES (2, 'quoted')", database=""),
            server.query(1, "INSERT INTO t VALUES (3, 'shop.t stays in a string')"),
            server.query(1, "UPDATE t SET v = 'joined' WHERE t.id = 1"),
            server.query(1, "INSERT INTO other.t VALUES (4, 'not replicated')"),
            server.query(2, "INSERT INTO t VALUES (5, 'in other')", database="other"),
            server.query(1, "INSERT INTO t SELECT id, v FROM other.u"),
            server.query(1, "UPDATE t, other.u SET t.v = 'x', u.v = 'y'"),
            server.query(1, "INSERT INTO mysql.user VALUES (1)"),
        ],
    )
    assert rows(path) == [(1, "joined"), (2, "quoted"), (3, "shop.t stays in a string")]
    assert refused == {
        "INSERT INTO t SELECT id, v FROM other.u": "not replicated: reads other.u",
        "UPDATE t, other.u SET t.v = 'x', u.v = 'y'": "not replicated: also writes other.u",
    }


def test_a_table_filter_selects_tables(path: Path, server: Server) -> None:
    write(
        path,
        server.session(1, "INSERT INTO t VALUES (1, 'x')", "INSERT INTO u VALUES (1, 'y')"),
        tables=["shop.u*"],
    )
    assert (rows(path, "t"), rows(path, "u")) == ([], [(1, "y")])


def test_the_current_database_follows_use_and_the_plugins_field(path: Path, server: Server) -> None:
    write(
        path,
        [
            server.connect(1, database=""),
            server.query(1, "USE shop", database="shop"),
            server.query(1, "INSERT INTO t VALUES (1, 'after USE')"),
            # The plugin misses a USE followed by a newline: its field stays shop while the
            # connection is in other.
            server.query(1, "USE\nother", database="shop"),
            server.query(1, "INSERT INTO t VALUES (2, 'in other')", database="shop"),
            # COM_INIT_DB is not logged, but the field follows it: to other, back to shop.
            server.query(1, "INSERT INTO t VALUES (3, 'in other')", database="other"),
            server.query(1, "INSERT INTO t VALUES (4, 'back in shop')", database="shop"),
        ],
    )
    assert rows(path) == [(1, "after USE"), (4, "back in shop")]


def test_connection_state_the_log_cannot_tell_refuses_writes(path: Path, server: Server) -> None:
    refused = write(
        path,
        [
            *server.session(
                1, "SET sql_mode = CONCAT(@@sql_mode, ',ANSI')", "INSERT INTO t VALUES (1, 'a')"
            ),
            *server.session(2, "SET NAMES latin1", "INSERT INTO t VALUES (2, 'b')"),
            *server.session(3, "SET autocommit = @x", "INSERT INTO t VALUES (3, 'c')"),
            *server.session(4, "SET sql_mode = 'ANSI_QUOTES'", "INSERT INTO t VALUES (4, 'd')"),
            *server.session(5, "XA START 'x'", "INSERT INTO t VALUES (5, 'e')"),
            *server.session(6, "SET NAMES utf8mb4", "SET @x = 1", "INSERT INTO t VALUES (6, 'f')"),
            server.connect(1),
            server.query(1, "INSERT INTO t VALUES (7, 'a new connection, a known state')"),
        ],
    )
    reasons = [refused[f"INSERT INTO t VALUES ({n}, '{v}')"] for n, v in enumerate("abcde", 1)]
    assert reasons[0] == (
        "connection state unknown: SET sql_mode to an expression auditsync cannot evaluate"
    )
    assert reasons[1] == (
        "connection state unknown: character set latin1: auditsync replays UTF-8 text only"
    )
    assert reasons[2].startswith("connection state unknown: SET autocommit")
    assert reasons[3] == "sql_mode: 'ANSI_QUOTES' changes how the text reads"
    assert reasons[4] == "connection state unknown: XA transactions are not replayed"
    assert [row[0] for row in rows(path)] == [6, 7]


def test_temporary_tables_stay_on_the_source(path: Path, server: Server) -> None:
    refused = write(
        path,
        server.session(
            1,
            "CREATE TEMPORARY TABLE tmp (id INT, v TEXT)",
            "INSERT INTO tmp VALUES (1, 'x')",
            "INSERT INTO t SELECT id, v FROM tmp",
            "DROP TEMPORARY TABLE tmp",
            "INSERT INTO t VALUES (2, 'y')",
        ),
        apply_ddl=True,
    )
    assert refused == {"INSERT INTO t SELECT id, v FROM tmp": "temporary table: reads tmp"}
    assert rows(path) == [(2, "y")]


def test_ddl_is_applied_only_when_asked(path: Path, server: Server) -> None:
    create = "CREATE TABLE extra (id INT PRIMARY KEY)"
    write(path, server.session(1, create, "DROP TABLE u"))
    assert count(path, "u") == 0  # DROP TABLE u was skipped: u is still there, empty
    with pytest.raises(sqlite3.OperationalError):
        count(path, "extra")
    write(
        path,
        server.session(1, create, "INSERT INTO extra VALUES (1)", "DROP TABLE u"),
        apply_ddl=True,
    )
    assert rows(path, "extra") == [(1,)]
    with pytest.raises(sqlite3.OperationalError):
        count(path, "u")


# --- statements that run inside others -------------------------------------------------------


def test_a_triggers_statements_are_left_to_the_targets_trigger(path: Path, server: Server) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO u VALUES (0, 0)")
        connection.execute(
            "CREATE TRIGGER count_t AFTER INSERT ON t BEGIN UPDATE u SET v = v + 1; END"
        )
    outer, inner = 2000, 2001  # the trigger's statement gets the next id, and comes first
    write(
        path,
        [
            server.table(1, "WRITE", "shop.t", outer),
            server.table(1, "WRITE", "shop.u", outer),
            server.query(1, "UPDATE u SET v = v + 1", query_id=inner),
            server.query(1, "INSERT INTO t VALUES (1, 'x')", query_id=outer),
        ],
    )
    assert rows(path, "u") == [(0, "1")]  # once, by the target's trigger


def test_a_procedures_statements_are_applied_and_its_call_is_not(
    path: Path, server: Server
) -> None:
    call, first, second = 3000, 3001, 3002
    events = [
        server.table(1, "READ", "mysql.proc", call),  # loading the routine
        server.table(1, "WRITE", "shop.t", first),
        server.query(1, "INSERT INTO t VALUES (NAME_CONST('n',1), 'from p')", query_id=first),
        server.table(1, "READ", "shop.t", second),
        server.query(1, "SELECT COUNT(*) FROM t", query_id=second),
        server.query(1, "CALL p(1)", query_id=call),
        # Cached: no table events for the CALL this time.
        server.table(1, "WRITE", "shop.t", 3004),
        server.query(1, "INSERT INTO t VALUES (NAME_CONST('n',2), 'again')", query_id=3004),
        server.query(1, "CALL p(2)", query_id=3003),
    ]
    assert write(path, events) == {}
    assert rows(path) == [(1, "from p"), (2, "again")]


def test_writes_through_functions_of_statements_not_replayed_are_refused(
    path: Path, server: Server
) -> None:
    # As MariaDB logs them: the caller opens the function's tables, under its own id.
    select, function_insert = 6000, 6001
    other, trigger_insert = 6002, 6003
    refused = write(
        path,
        [
            server.table(1, "READ", "mysql.proc", select),
            server.table(1, "WRITE", "shop.t", select),
            server.query(1, "INSERT INTO t VALUES (NAME_CONST('x',7))", query_id=function_insert),
            server.query(1, "SELECT f(7)", query_id=select),
            server.table(1, "WRITE", "other.x", other),
            server.table(1, "WRITE", "shop.u", other),
            server.query(1, "INSERT INTO u VALUES (1, 'by a trigger')", query_id=trigger_insert),
            server.query(1, "INSERT INTO other.x VALUES (1)", query_id=other),
            server.table(1, "WRITE", "shop.t", 6004),  # LOCK TABLES t WRITE logs a write
            server.query(1, "LOCK TABLES t WRITE", query_id=6004),
            server.query(1, "UNLOCK TABLES", query_id=6005),
        ],
    )
    reason = (
        "stored function or trigger: wrote replicated tables inside a statement that is not"
        " replayed"
    )
    assert refused == {"SELECT f(7)": reason, "INSERT INTO other.x VALUES (1)": reason}


def test_unlock_tables_commits_only_under_lock_tables(path: Path, server: Server) -> None:
    write(
        path,
        server.session(
            1,
            "SET autocommit=0",
            "INSERT INTO t VALUES (1, 'committed by LOCK TABLES')",
            "LOCK TABLES t WRITE",
            "INSERT INTO t VALUES (2, 'committed by UNLOCK TABLES')",
            "UNLOCK TABLES",
            "INSERT INTO t VALUES (3, 'rolled back')",
            "UNLOCK TABLES",
            "ROLLBACK",
        ),
    )
    assert [row[0] for row in rows(path)] == [1, 2]


def test_without_table_events_a_statement_after_its_own_nested_ones_is_refused(
    path: Path, server: Server
) -> None:
    refused = write(
        path,
        [
            server.query(1, "INSERT INTO u VALUES (1, 'by a trigger')", query_id=4001),
            server.query(1, "INSERT INTO t VALUES (1, 'x')", query_id=4000),
        ],
    )
    assert list(refused.values()) == [
        "nested order: statements it ran (triggers, stored functions) were applied on their"
        " own; log TABLE events so that auditsync can tell"
    ]


def test_redelivered_table_events_do_not_nest_later_statements(path: Path, server: Server) -> None:
    events = [
        server.table(1, "WRITE", "shop.t", 5000),
        server.query(1, "INSERT INTO t VALUES (1, 'x')", query_id=5000),
    ]
    write(path, events)
    later = server.query(1, "INSERT INTO t VALUES (2, 'y')", query_id=5001)
    write(path, [*events, later])  # a redelivery from the start, then something new
    assert rows(path) == [(1, "x"), (2, "y")]


# --- ordering, pipeline, bookkeeping --------------------------------------------------------


def test_aurora_batches_are_sorted_by_time_and_mariadb_batches_are_not(path: Path) -> None:
    for dialect, expected in ((Dialect.AURORA, "second"), (Dialect.MARIADB, "first")):
        server = Server(dialect, first_id=100 if dialect is Dialect.MARIADB else 1)
        late = server.query(1, f"REPLACE INTO t VALUES (1, 'second') -- {dialect}")
        early = server.query(2, f"REPLACE INTO t VALUES (1, 'first') -- {dialect}")
        early = attrs.evolve(early, timestamp=server.clock - timedelta(seconds=1))
        with sqlite3.connect(path) as connection:
            connection.execute("DELETE FROM t")
        write(path, [late, early])
        assert rows(path) == [(1, expected)], dialect


def test_refusals_reach_the_dead_letter_sink_through_the_pipeline(
    path: Path, server: Server
) -> None:
    letters: list[DeadLetter] = []

    class Box:
        def write(self, batch: Sequence[DeadLetter]) -> None:
            letters.extend(batch)

        def close(self) -> None:
            pass

    events = server.session(1, "INSERT INTO t VALUES (1, NOW())", "INSERT INTO t VALUES (2, 'x')")
    pipeline = Pipeline(sink(path), dead_letter=Box())
    report = pipeline.process([Line(format_line(event)) for event in events])
    assert (report.delivered, report.dead_lettered, report.balanced) == (1, 1, True)
    assert [(x.stage, x.error, x.event and x.event.object) for x in letters] == [
        ("sink", "not deterministic: NOW()", "INSERT INTO t VALUES (1, NOW())")
    ]
    assert rows(path) == [(2, "x")]


def test_keys_are_recorded_with_what_became_of_each_event_and_can_be_pruned(
    path: Path, server: Server
) -> None:
    write(
        path,
        [
            server.connect(1),
            *server.session(1, "BEGIN", "INSERT INTO t VALUES (1, 'x')", "COMMIT"),
            *server.session(1, "BEGIN", "INSERT INTO t VALUES (2, 'y')", "ROLLBACK"),
            server.query(1, "INSERT INTO t VALUES (3, NOW())"),
            server.query(1, "SELECT 1"),
        ],
    )
    with sqlite3.connect(path) as connection:
        outcomes = connection.execute(
            "SELECT outcome, COUNT(*) FROM auditsync_replay_applied GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert outcomes == [
        ("applied", 1),
        ("committed", 1),
        ("refused", 1),
        ("rolled back", 2),
        ("state", 4),
    ]
    replay = sink(path)
    assert replay.prune(server.clock) == 0
    assert replay.prune(server.clock + timedelta(microseconds=1)) == 9
    assert count(path, "auditsync_replay_applied") == 0


class RecordingTarget(SQLiteTarget):
    """SQLite has no session variables: record what MySQL would have been told."""

    def __init__(self) -> None:
        super().__init__()
        self.variables: list[tuple[str, str | None]] = []

    def set_variable(self, cursor: Any, name: str, value: str | None) -> None:
        self.variables.append((name, value))


def test_session_variables_follow_each_connection(path: Path, server: Server) -> None:
    target = RecordingTarget()
    replay = sink(path, target=target)
    replay.write(
        [
            *server.session(
                1, "SET time_zone = '+02:00', @@session.sql_mode = 'STRICT_ALL_TABLES'"
            ),
            server.query(1, "INSERT INTO t VALUES (1, 'x')"),
            server.query(2, "INSERT INTO t VALUES (2, 'y')"),
            *server.session(1, "SET GLOBAL time_zone = '+05:00'", "SET time_zone = DEFAULT"),
            server.query(1, "INSERT INTO t VALUES (3, 'z')"),
        ]
    )
    assert target.variables == [
        ("time_zone", "'+02:00'"),
        ("sql_mode", "'STRICT_ALL_TABLES'"),
        ("time_zone", None),
        ("sql_mode", None),
        ("sql_mode", "'STRICT_ALL_TABLES'"),
    ]


def test_targets_are_told_from_the_connection_and_checked(path: Path) -> None:
    connection = sqlite3.connect(path)
    assert isinstance(Target.for_connection(connection), SQLiteTarget)
    with pytest.raises(ValueError, match="map each database to 'main'"):
        ReplaySink(connection)
    with pytest.raises(TypeError, match="pass target="):
        Target.for_connection(object())
    with pytest.raises(ValueError, match="paramstyle"):
        MySQLTarget("named")
    mysql = MySQLTarget()
    assert mysql.permanent(_error(1062))  # a duplicate key comes again on every retry
    assert not mysql.permanent(_error(1213))  # a deadlock does not
    assert not mysql.permanent(_error(2013))  # nor a lost connection
    assert not mysql.permanent(_error(1049))  # nor a database the operator has yet to create
    assert not mysql.permanent(OSError())


def _error(code: int) -> Exception:
    return Exception(code, "message")


def test_comments_do_not_hide_transaction_control(path: Path, server: Server) -> None:
    write(
        path,
        server.session(
            1,
            "/* app */ BEGIN",
            "INSERT INTO t VALUES (1, 'kept')",
            "SAVEPOINT /* named */ `s p`",
            "INSERT INTO t VALUES (2, 'undone')",
            "/* app */ ROLLBACK TO `s p`",
            "/* app */ USE other",
            "INSERT INTO t VALUES (3, 'in other: not replicated')",
            "COMMIT -- done",
        ),
    )
    assert rows(path) == [(1, "kept")]
