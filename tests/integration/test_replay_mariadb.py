"""ReplaySink against the real server: database A, written by a concurrent workload and
audited, is replayed through CloudWatch, Kinesis and Lambda (all simulated, byte for byte)
into database B; then ``CHECKSUM TABLE`` must agree for every table.

The simulated event source mapping fails at random (before the sink, after it committed,
and in the middle of its transaction), redelivers from the reported sequence number, and
gives every invocation a new ReplaySink on a new connection, so that nothing the replay
needs can live only in memory. Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import itertools
import random
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mariadb_audit
import pymysql
import pytest
from pymysql.constants import ER

from auditsync import (
    AuditEvent,
    DeadLetter,
    LogEvent,
    SubscriptionMessage,
    format_line,
    parse_line,
)
from auditsync._pipeline import Line, Lines, Pipeline
from auditsync._sources import open_input, read_inputs
from auditsync.aws import handle_kinesis_event
from auditsync.replay import MySQLTarget, ReplaySink, ReplayStats
from auditsync.testing import kinesis_event, to_payload

pytestmark = pytest.mark.mariadb

A = "auditsync_replay_a"
B = "auditsync_replay_b"
C = "auditsync_replay_c"  # written and read by the workload, never replicated
BOOKKEEPING = "auditsync_replay_bk"
USERS = ("auditsync_rp_app", "auditsync_rp_batch")
PASSWORD = "Replay-pw-1"
LOG_LIMIT = 65536
TABLES = ("accounts", "documents", "tags", "counters", "notes", "serial", "stamped")
SCHEMA = (
    "CREATE TABLE accounts (id INT PRIMARY KEY, owner VARCHAR(100) NOT NULL,"
    " balance BIGINT NOT NULL DEFAULT 0, note TEXT, UNIQUE KEY owner (owner))",
    "CREATE TABLE documents (id BIGINT PRIMARY KEY, title VARCHAR(200) NOT NULL, body TEXT,"
    " digest VARBINARY(64), updated INT NOT NULL DEFAULT 0)",
    "CREATE TABLE tags (doc_id BIGINT NOT NULL, tag VARCHAR(60) NOT NULL,"
    " PRIMARY KEY (doc_id, tag))",
    "CREATE TABLE counters (name VARCHAR(20) PRIMARY KEY, n BIGINT NOT NULL)",
    "INSERT INTO counters VALUES ('updates', 0), ('c0', 0), ('c1', 0), ('c2', 0), ('c3', 0)",
    "CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(300))",
    "CREATE TABLE serial (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(50))",
    "CREATE TABLE stamped (id INT PRIMARY KEY, at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    # Run on both sides: the replay must skip the statement the trigger logs on its own.
    "CREATE TRIGGER accounts_au AFTER UPDATE ON accounts FOR EACH ROW"
    " UPDATE counters SET n = n + 1 WHERE name = 'updates'",
    # Run on the source only: the replay applies the statement it logs, not the CALL.
    "CREATE PROCEDURE add_tag(IN d BIGINT, IN t VARCHAR(60)) INSERT INTO tags VALUES (d, t)",
)
#: Text that parsers, lexers and escapers get wrong; in string literals none of it is code.
TRICKY = (
    "a,b",
    "it's",
    'say "hi"',
    "back\\slash",
    "trailing\\",
    "new\nline",
    "tab\there",
    "cr\rlf",
    "nul\x00byte",
    "ctrl-z \x1a",
    "ünïcödé",
    "日本語テキスト",
    "emoji 🎉🚀",
    "semi;colon; DELETE FROM accounts",
    "per%cent %s",
    "-- not a comment",
    "/* not a comment */",
    "#hash",
    "`tick`",
    "question?",
    "@not_a_variable @@neither",
    "NOW() RAND() UUID() LIMIT 1",
    "\\'",
    "''",
    "\b\f",
    "db.t auditsync_replay_a.accounts",
    "x" * 150,
)
TABLE_OPERATIONS = {"READ", "WRITE", "CREATE", "DROP", "ALTER", "RENAME"}
EXPECTED_ERRORS = {
    ER.DUP_ENTRY,
    ER.PARSE_ERROR,
    ER.BAD_FIELD_ERROR,
    ER.LOCK_DEADLOCK,
    ER.LOCK_WAIT_TIMEOUT,
}


# --- the environment ---------------------------------------------------------------------------


def root() -> pymysql.connections.Connection[Any]:
    return mariadb_audit.connect()


def as_user(user: str, **params: Any) -> pymysql.connections.Connection[Any]:
    return mariadb_audit.connect(user=user, password=PASSWORD, **params)


def run(connection: Any, *statements: str) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


@pytest.fixture(scope="module")
def users() -> Iterator[None]:
    """The workload's users, allowed A and C; dropped with the databases afterwards."""
    admin = root()
    try:
        for user in USERS:
            run(
                admin,
                f"DROP USER IF EXISTS '{user}'@'localhost'",
                f"CREATE USER '{user}'@'localhost' IDENTIFIED BY '{PASSWORD}'",
                f"GRANT ALL ON `{A}`.* TO '{user}'@'localhost'",
                f"GRANT ALL ON `{C}`.* TO '{user}'@'localhost'",
            )
        yield
    finally:
        for database in (A, B, C, BOOKKEEPING):
            run(admin, f"DROP DATABASE IF EXISTS `{database}`")
        for user in USERS:
            run(admin, f"DROP USER IF EXISTS '{user}'@'localhost'")
        admin.close()


@pytest.fixture
def fresh(users: None) -> None:
    """A and B with the same schema and rows, C apart, and no bookkeeping yet (unlogged)."""
    admin = root()
    try:
        for database in (A, B, C, BOOKKEEPING):
            run(admin, f"DROP DATABASE IF EXISTS `{database}`")
        for database in (A, B):
            run(admin, f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4", f"USE `{database}`")
            run(admin, *SCHEMA if database == A else SCHEMA[:-1])
        run(
            admin,
            f"CREATE DATABASE `{C}`",
            f"CREATE TABLE `{C}`.other (id INT PRIMARY KEY, name VARCHAR(50))",
            f"INSERT INTO `{C}`.other VALUES (1, 'elsewhere')",
        )
    finally:
        admin.close()


@pytest.fixture
def log_dir() -> Iterator[Path]:
    """A directory the server's own user can write its log to."""
    path = Path(tempfile.mkdtemp(prefix="auditsync-replay-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def audited(log: Path, **settings: Any) -> Any:
    """Log the workload users' connections, queries and table events, without a cut."""
    return mariadb_audit.audit_logging(
        log,
        events="CONNECT,QUERY,TABLE",
        query_log_limit=LOG_LIMIT,
        settings={"incl_users": ",".join(USERS), **settings},
    )


# --- the log, wrapped as CloudWatch and Kinesis wrap it ------------------------------------------


def log_lines(path: Path) -> list[str]:
    """The records of the log (split records rejoined), as CloudWatch stores them: UTF-8."""
    with path.open("rb") as raw:
        blocks = list(read_inputs(open_input(raw), str(path)))
    assert all(isinstance(item, Lines) for item in blocks)
    return [
        text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        for item in blocks
        if isinstance(item, Lines)
        for text in item.texts
    ]


def kinesis_records(lines: Sequence[str], rng: random.Random) -> list[dict[str, Any]]:
    """Subscription messages of 1..25 log events each, with rising ids, one per record."""
    ids = itertools.count(1)
    payloads = []
    start = 0
    while start < len(lines):
        size = rng.randint(1, 25)
        events = tuple(
            LogEvent(f"{next(ids):056d}", 1_700_000_000_000 + index, line)
            for index, line in enumerate(lines[start : start + size], start)
        )
        message = SubscriptionMessage(
            "DATA_MESSAGE",
            "123456789012",
            "/aws/rds/instance/replay-test/audit",
            "replay-test.audit.log.0",
            ("to-kinesis",),
            events,
        )
        payloads.append(to_payload(message))
        start += size
    return list(kinesis_event(payloads)["Records"])


class LetterBox:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    def write(self, letters: Sequence[DeadLetter]) -> None:
        self.letters.extend(letters)

    def close(self) -> None:
        pass


class Injected(ConnectionError):
    """A failure the test made up."""


class FlakySink:
    """Fails at random before the sink writes, or after it committed (a lost response).

    ``force`` fails the first write so, whatever the dice say.
    """

    def __init__(
        self, sink: ReplaySink, rng: random.Random, before: float, after: float, force: str | None
    ):
        self.sink, self.rng, self.before, self.after = sink, rng, before, after
        self.force = force
        self.injected = Counter[str]()

    def write(self, events: Sequence[AuditEvent]) -> None:
        force, self.force = self.force, None
        if force == "before" or self.rng.random() < self.before:
            self.injected["before"] += 1
            raise Injected("injected before the write")
        self.sink.write(events)
        if force == "after" or self.rng.random() < self.after:
            self.injected["after"] += 1
            raise Injected("injected after the write committed")

    def close(self) -> None:
        self.sink.close()


class FlakyCursor:
    """A cursor whose statements fail at random with 'lost connection', before they run."""

    def __init__(self, cursor: Any, fail: Callable[[], bool]):
        self._cursor, self._fail = cursor, fail

    def execute(self, *args: Any) -> Any:
        if self._fail():
            raise pymysql.err.OperationalError(2013, "injected: lost connection during query")
        return self._cursor.execute(*args)

    def executemany(self, *args: Any) -> Any:
        if self._fail():
            raise pymysql.err.OperationalError(2013, "injected: lost connection during query")
        return self._cursor.executemany(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class FlakyConnection:
    """A connection whose cursors fail mid-transaction, as a target that goes away does.

    ``at`` fails that statement (counted from 1) so, whatever the dice say.
    """

    def __init__(self, connection: Any, rng: random.Random, rate: float, at: int | None = None):
        self._connection, self._rng, self._rate, self._at = connection, rng, rate, at
        self._statements = 0
        self.injected = 0

    def _fail(self) -> bool:
        self._statements += 1
        if self._statements == self._at or self._rng.random() < self._rate:
            self.injected += 1
            return True
        return False

    def cursor(self) -> FlakyCursor:
        return FlakyCursor(self._connection.cursor(), self._fail)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


@dataclass
class Figures:
    invocations: int = 0
    lambda_errors: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    stats: ReplayStats = field(default_factory=ReplayStats)


def replay(
    records: Sequence[dict[str, Any]],
    letters: LetterBox,
    rng: random.Random,
    *,
    before: float = 0.0,
    after: float = 0.0,
    mid: float = 0.0,
    batch: tuple[int, int] = (5, 40),
    pipeline_batch: tuple[int, int] = (10, 80),
    **options: Any,
) -> Figures:
    """Drive the shard like Lambda's event source mapping, a new sink per invocation.

    A reported failure re-invokes from its sequence number; a function error (the sink
    could not even be made) re-invokes the whole batch. With failures asked for, each way
    of failing happens at least once: after the write, before it, in the middle.
    """
    figures = Figures()
    forced = ["after", "before", "mid"] if before or after or mid else []
    sequences = {r["kinesis"]["sequenceNumber"]: i for i, r in enumerate(records)}
    position = 0
    while position < len(records):
        figures.invocations += 1
        assert figures.invocations < 3000, "the shard stalled"
        chunk = records[position : position + rng.randint(*batch)]
        force = forced[0] if forced else None
        raw = root()
        raw.autocommit(False)
        connection = FlakyConnection(raw, rng, mid, at=20 if force == "mid" else None)
        try:
            sink = new_sink(connection, **options)
            flaky = FlakySink(sink, rng, before, after, force)
            pipeline = Pipeline(flaky, dead_letter=letters, batch_size=rng.randint(*pipeline_batch))
            response = handle_kinesis_event({"Records": chunk}, pipeline)
            figures.stats.add(sink.stats)
            figures.injected.update(flaky.injected)
        except pymysql.err.OperationalError as error:
            if "injected" not in str(error):
                raise
            figures.lambda_errors += 1  # the sink could not even be made: Lambda retries all
            continue
        finally:
            figures.injected["mid"] += connection.injected
            raw.close()
            if force is not None and figures.injected[force]:
                forced.pop(0)
        failures = response["batchItemFailures"]
        if failures:
            position = sequences[failures[0]["itemIdentifier"]]
        else:
            position += len(chunk)
    return figures


def new_sink(connection: Any, **options: Any) -> ReplaySink:
    """A sink into B, as a new Lambda container would make it."""
    settings = {
        "target": MySQLTarget(),
        "databases": {A: B},
        "bookkeeping": BOOKKEEPING,
        "query_log_limit": LOG_LIMIT,
        **options,
    }
    return ReplaySink(connection, **settings)


def feed(events: Sequence[AuditEvent], **options: Any) -> tuple[ReplayStats, list[DeadLetter]]:
    """Events straight into a new sink on a new connection, one write each: one reason each."""
    letters = LetterBox()
    connection = root()
    connection.autocommit(False)
    try:
        sink = new_sink(connection, **options)
        pipeline = Pipeline(sink, dead_letter=letters, batch_size=1)
        report = pipeline.process([Line(format_line(event)) for event in events])
        assert report.failed == 0, report.error
        return sink.stats, letters.letters
    finally:
        connection.close()


def rows(database: str, table: str) -> list[tuple[Any, ...]]:
    admin = root()
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"SELECT * FROM `{database}`.`{table}` ORDER BY 1")
            return list(cursor.fetchall())
    finally:
        admin.close()


def checksums(database: str) -> dict[str, int]:
    admin = root()
    try:
        with admin.cursor() as cursor:
            names = ", ".join(f"`{database}`.`{table}`" for table in TABLES)
            cursor.execute(f"CHECKSUM TABLE {names}")
            return {name.split(".")[-1]: value for name, value in cursor.fetchall()}
    finally:
        admin.close()


def differences(table: str) -> str:
    """What A and B disagree on in ``table``, for a failure message."""
    admin = root()
    try:
        with admin.cursor() as cursor:
            rows = {}
            for database in (A, B):
                cursor.execute(f"SELECT * FROM `{database}`.`{table}`")
                rows[database] = set(cursor.fetchall())
        only_a = sorted(rows[A] - rows[B], key=repr)[:5]
        only_b = sorted(rows[B] - rows[A], key=repr)[:5]
        return f"{table}: only in A {only_a!r}; only in B {only_b!r}"
    finally:
        admin.close()


# --- the workload -------------------------------------------------------------------------------


class Worker:
    """One client: its own rows (ids from ``base``), shared counters, every way to commit.

    The rows are partitioned so that the result does not depend on how the threads
    interleave; the shared counters only ever get increments, which commute.
    """

    def __init__(self, number: int, seed: int, scenes: int):
        self.number = number
        self.rng = random.Random(seed * 1000 + number)
        self.scenes = scenes
        self.base = (number + 1) * 100_000
        self.next_id = self.base
        self.accounts: list[int] = []
        self.documents: list[int] = []
        self.connection: Any = None
        self.autocommit = True
        self.unexpected: list[str] = []
        self.counts: Counter[str] = Counter()

    # connections

    def connect(self) -> None:
        user = USERS[self.number % 2]
        how = self.rng.randrange(3)
        if how == 0:
            connection = as_user(user, database=A)
        elif how == 1:
            connection = as_user(user)
            run(connection, f"USE {A}")
        else:  # COM_INIT_DB, which the log shows only in the database field
            connection = as_user(user, autocommit=False)
            connection.select_db(A)
        run(connection, "SET SESSION innodb_lock_wait_timeout = 5")
        self.connection = connection
        self.autocommit = how != 2
        self.counts[f"connect:{how}"] += 1

    def sql(self, statement: str, args: Any = None) -> None:
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(statement, args)
        except pymysql.err.MySQLError as error:
            code = error.args[0] if error.args else None
            self.counts[f"error:{code}"] += 1
            if code not in EXPECTED_ERRORS:
                self.unexpected.append(f"{error!r} on {statement[:120]!r}")
            if code == ER.LOCK_DEADLOCK:
                raise

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def text(self, limit: int = 60) -> str:
        return self.rng.choice(TRICKY)[:limit]

    # single statements, safe to replay

    def insert_account(self) -> None:
        number = self.new_id()
        owner = f"{self.text(40)}-{self.number}-{number}"
        args = (number, owner, self.rng.randint(-500, 500), self.text(200))
        self.sql("INSERT INTO accounts (id, owner, balance, note) VALUES (%s, %s, %s, %s)", args)
        self.accounts.append(number)

    def insert_documents(self) -> None:
        rows, args = [], []
        for _ in range(self.rng.randint(1, 3)):
            number = self.new_id()
            digest = self.rng.randbytes(self.rng.randint(0, 16)).hex()
            rows.append(f"(%s, %s, %s, X'{digest}', 0)")
            args += [number, self.text(), self.text(200) * self.rng.randint(0, 3)]
            self.documents.append(number)
        self.sql(
            f"INSERT INTO documents (id, title, body, digest, updated) VALUES {', '.join(rows)}",
            args,
        )

    def update_account(self) -> None:
        if self.accounts:  # fires the trigger: its statement is logged on its own
            args = (self.rng.randint(-50, 50), self.text(200), self.rng.choice(self.accounts))
            self.sql("UPDATE accounts SET balance = balance + %s, note = %s WHERE id = %s", args)

    def update_document_raw(self) -> None:
        if self.documents:  # raw control characters in the statement, quotes doubled
            title = self.text().replace("\\", "\\\\").replace("'", "''")
            number = self.rng.choice(self.documents)
            self.sql(f"UPDATE documents SET title = '{title}',\n\tbody = NULL WHERE id = {number}")

    def delete_document(self) -> None:
        if self.documents:
            number = self.documents.pop(self.rng.randrange(len(self.documents)))
            self.sql("DELETE FROM documents WHERE id = %s", (number,))

    def delete_tags(self) -> None:
        low = self.rng.randint(self.base, self.next_id)
        self.sql("DELETE FROM tags WHERE doc_id BETWEEN %s AND %s", (low, low + 5))

    def bump_counter(self) -> None:
        name = f"c{self.rng.randrange(4)}"
        self.sql(
            "INSERT INTO counters (name, n) VALUES (%s, 1) ON DUPLICATE KEY UPDATE n = n + 1",
            (name,),
        )

    def replace_document(self) -> None:
        number = self.rng.choice(self.documents) if self.documents else self.new_id()
        args = (number, self.text(), self.text(100))
        self.sql(
            "REPLACE INTO documents (id, title, body, digest, updated)"
            " VALUES (%s, %s, %s, _binary'bin\\0ary', 7)",
            args,
        )

    def tag(self) -> None:
        if self.documents:
            first, second = self.rng.choice(self.documents), self.rng.choice(self.documents)
            args = (first, self.text(50), second, "tag,2")
            self.sql("INSERT IGNORE INTO tags (doc_id, tag) VALUES (%s, %s), (%s, %s)", args)

    def copy_tags(self) -> None:
        low = self.rng.randint(self.base, self.next_id)
        self.sql(
            "INSERT IGNORE INTO tags (doc_id, tag) SELECT id, %s FROM documents"
            " WHERE id BETWEEN %s AND %s ORDER BY id",
            (self.text(50), low, low + 20),
        )

    def touch_tagged(self) -> None:
        low = self.rng.randint(self.base, self.next_id)
        self.sql(
            "UPDATE documents d JOIN tags t ON t.doc_id = d.id SET d.updated = d.updated + 1"
            " WHERE d.id BETWEEN %s AND %s",
            (low, low + 20),
        )

    def qualified(self) -> None:
        if self.documents:
            number = self.rng.choice(self.documents)
            self.sql(
                f"INSERT IGNORE INTO {A}.tags (doc_id, tag) VALUES (%s, 'qualified')", (number,)
            )
            self.sql(f"UPDATE `{A}`.`documents` SET updated = updated + 1 WHERE id = %s", (number,))

    def call(self) -> None:
        if self.documents:  # a duplicate fails inside the procedure, and is logged so
            self.sql("CALL add_tag(%s, %s)", (self.rng.choice(self.documents), self.text(50)))

    def fail(self) -> None:
        choice = self.rng.randrange(3)
        if choice == 0 and self.accounts:
            self.sql("INSERT INTO accounts (id, owner) VALUES (%s, 'dup')", (self.accounts[0],))
        elif choice == 1:
            self.sql("INSERT INTO accounts VALUES (")
        else:
            self.sql("UPDATE documents SET no_such_column = 1 WHERE id = %s", (self.base,))

    STATEMENTS = (
        (insert_account, 6),
        (insert_documents, 6),
        (update_account, 5),
        (update_document_raw, 3),
        (delete_document, 2),
        (delete_tags, 1),
        (bump_counter, 3),
        (replace_document, 2),
        (tag, 3),
        (copy_tags, 1),
        (touch_tagged, 1),
        (qualified, 2),
        (call, 2),
        (fail, 2),
    )

    def statement(self) -> None:
        chosen = self.rng.choices(
            [f for f, _ in self.STATEMENTS], weights=[w for _, w in self.STATEMENTS]
        )[0]
        chosen(self)

    # scenes: how statements are grouped into transactions

    def scene(self) -> None:
        kind = self.rng.choices(
            ["plain", "transaction", "toggle", "deadlock", "disconnect"], weights=[8, 5, 2, 2, 1]
        )[0]
        self.counts[f"scene:{kind}"] += 1
        try:
            getattr(self, f"scene_{kind}")()
        except pymysql.err.MySQLError as error:
            if error.args[0] != ER.LOCK_DEADLOCK:
                raise
            self.sql("ROLLBACK")  # the server rolled back already

    def scene_plain(self) -> None:
        for _ in range(self.rng.randint(1, 3)):
            self.statement()
        if not self.autocommit and self.rng.random() < 0.5:
            self.sql(self.rng.choice(["COMMIT", "ROLLBACK", "COMMIT WORK"]))

    def scene_transaction(self) -> None:
        self.sql(self.rng.choice(["BEGIN", "START TRANSACTION", "BEGIN WORK"]))
        for _ in range(self.rng.randint(1, 4)):
            self.statement()
        if self.rng.random() < 0.3:
            self.sql("SAVEPOINT sp1")
            self.statement()
            self.sql("ROLLBACK TO SAVEPOINT sp1")
            self.statement()
        self.sql(self.rng.choices(["COMMIT", "ROLLBACK"], weights=[7, 3])[0])

    def scene_toggle(self) -> None:
        if self.autocommit:
            self.sql(
                self.rng.choice(
                    ["SET autocommit=0", "SET @@autocommit = 0", "SET SESSION autocommit = OFF"]
                )
            )
            self.autocommit = False
            self.statement()
            return
        self.statement()
        ending = self.rng.choice([[], ["COMMIT"], ["ROLLBACK"]])
        for statement in [
            *ending,
            self.rng.choice(["SET autocommit=1", "SET @@session.autocommit = ON"]),
        ]:
            self.sql(statement)  # SET autocommit=1 commits what is open
        self.autocommit = True

    def scene_deadlock(self) -> None:
        first, second = self.rng.sample(["c0", "c1", "c2", "c3"], 2)
        self.sql("BEGIN")
        self.sql("UPDATE counters SET n = n + 1 WHERE name = %s", (first,))
        self.statement()
        self.sql("UPDATE counters SET n = n + 10 WHERE name = %s", (second,))
        self.sql("COMMIT")

    def scene_disconnect(self) -> None:
        if self.rng.random() < 0.6:
            self.sql("BEGIN")
            self.statement()  # still open when the connection goes: rolled back
        self.connection.close()
        self.connect()

    def __call__(self, start: threading.Barrier) -> None:
        try:
            self.connect()
        except Exception as error:
            self.unexpected.append(repr(error))
        start.wait(timeout=60)
        if self.connection is None:
            return
        try:
            for _ in range(self.scenes):
                self.scene()
            if not self.autocommit:
                self.sql("COMMIT")
            self.connection.close()
        except Exception as error:  # reported by the test, not lost in a thread
            self.unexpected.append(repr(error))


def workload(seed: int, threads: int, scenes: int) -> list[Worker]:
    workers = [Worker(number, seed, scenes) for number in range(threads)]
    start = threading.Barrier(threads)
    running = [threading.Thread(target=worker, args=(start,)) for worker in workers]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return workers


def events_of(lines: Sequence[str]) -> list[AuditEvent]:
    return [parse_line(line) for line in lines]


# --- the proof -----------------------------------------------------------------------------------


def test_replica_converges_through_failures_and_redelivery(
    fresh: None, log_dir: Path, record_property: Callable[[str, object], None]
) -> None:
    started = time.monotonic()
    seed = 20240131
    with audited(log_dir / "audit.log"):
        workers = workload(seed, threads=6, scenes=45)
    unexpected = [problem for worker in workers for problem in worker.unexpected]
    assert not unexpected, unexpected
    lines = log_lines(log_dir / "audit.log")
    events = events_of(lines)
    rng = random.Random(seed)
    records = kinesis_records(lines, rng)
    letters = LetterBox()

    first = replay(records, letters, rng, before=0.08, after=0.08, mid=0.004)
    source, replica = checksums(A), checksums(B)
    second = replay(records, letters, random.Random(seed + 1))
    again = checksums(B)

    operations = Counter(event.operation for event in events)
    failed = sum(1 for event in events if event.operation == "QUERY" and event.retcode)
    # Every record but table events is handled once and recorded by its key.
    keyed = sum(1 for event in events if event.operation not in TABLE_OPERATIONS)
    scenes = sum((worker.counts for worker in workers), Counter())
    figures = {
        "log": f"{len(lines)} records, {len(records)} Kinesis records, {dict(operations)}",
        "source": f"{failed} failed statements; {dict(sorted(scenes.items()))}",
        "pass 1": (
            f"{first.invocations} invocations, {first.lambda_errors} function errors,"
            f" injected {dict(first.injected)}; {first.stats.summary()}"
        ),
        "pass 2": f"{second.invocations} invocations; {second.stats.summary()}",
        "checksums": f"A {source}; B {replica}",
        "elapsed": f"{time.monotonic() - started:.1f} s",
    }
    summary = "\n".join(f"  {name}: {value}" for name, value in figures.items())
    print(f"\nreplay proof:\n{summary}")
    for name, value in figures.items():
        record_property(f"replay {name}", value)

    assert not letters.letters, f"dead letters: {letters.letters[:3]}\n{summary}"
    mismatched = [table for table in TABLES if source[table] != replica[table]]
    detail = "; ".join(differences(table) for table in mismatched)
    assert not mismatched, f"A and B differ: {detail}\n{summary}"
    assert again == replica, f"a second delivery changed B\n{summary}"
    # The run exercised what it claims to: without these, a pass proves less.
    stats = first.stats
    assert stats.committed, summary
    assert stats.rolled_back, summary
    assert stats.resumed, f"no transaction spanned two invocations\n{summary}"
    assert stats.nested, f"no trigger statement was seen nested\n{summary}"
    assert stats.duplicates, f"no redelivery reached the sink\n{summary}"
    for place in ("before", "after", "mid"):
        assert first.injected[place], f"no failure injected {place} the write\n{summary}"
    assert failed, summary
    assert second.stats.applied == 0, summary
    assert second.stats.duplicates == keyed, summary


def test_refusals_reach_the_dead_letter_sink_with_their_reasons(
    fresh: None, log_dir: Path, record_property: Callable[[str, object], None]
) -> None:
    expected: list[tuple[str, str]] = []
    with audited(log_dir / "audit.log") as session:
        app = as_user(USERS[0], database=A)

        def refused(statement: str, reason: str) -> None:
            run(app, statement)
            expected.append((statement, reason))

        run(app, "INSERT INTO notes VALUES (100, 'kept before')")
        refused("INSERT INTO notes VALUES (1, NOW())", "not deterministic: NOW()")
        refused("INSERT INTO notes VALUES (2, CONCAT('r', RAND()))", "not deterministic: RAND()")
        refused("INSERT INTO notes VALUES (3, UUID())", "not deterministic: UUID()")
        refused("UPDATE notes SET body = USER() WHERE id = 100", "not deterministic: USER()")
        refused("INSERT INTO notes VALUES (6, LAST_INSERT_ID())", "not deterministic")
        run(app, "SET @v = 'from a variable'")
        refused("INSERT INTO notes VALUES (4, @v)", "not deterministic: uses a user variable")
        refused("INSERT INTO notes VALUES (5, @@hostname)", "not deterministic: reads a system")
        refused("INSERT INTO serial (what) VALUES ('generated id')", "auto-increment: omits")
        refused("INSERT INTO serial VALUES (NULL, 'null id')", "auto-increment: serial.id = NULL")
        refused("INSERT INTO stamped (id) VALUES (1)", "column default: stamped.at")
        refused("DELETE FROM notes WHERE id > 1000 LIMIT 1", "unordered LIMIT")
        refused(f"INSERT INTO notes SELECT id + 1000, name FROM {C}.other", "not replicated: reads")
        run(app, f"INSERT INTO {C}.other VALUES (2, 'not replicated: skipped, not refused')")
        run(app, "PREPARE ins FROM 'INSERT INTO notes VALUES (?, ?)'", "SET @i = 7")
        run(app, "EXECUTE ins USING @i, @v")
        expected.append(("INSERT INTO notes VALUES (?, ?)", "placeholders"))
        session.set("query_log_limit", 48)
        refused(
            "INSERT INTO notes VALUES (8, 'a statement longer than the log limit')", "truncated"
        )
        session.set("query_log_limit", LOG_LIMIT)
        run(app, "BEGIN", "INSERT INTO notes VALUES (20, 'in a refused transaction')")
        refused("INSERT INTO notes VALUES (21, SYSDATE())", "not deterministic: SYSDATE()")
        refused("INSERT INTO notes VALUES (22, 'after the refused one')", "transaction refused")
        refused("COMMIT", "transaction refused: it holds a statement not replayed")
        run(app, "INSERT INTO notes VALUES (101, 'kept after')")
        app.close()
    events = events_of(log_lines(log_dir / "audit.log"))
    stats, letters = feed(events)

    found = {}
    for statement, reason in expected:
        letter = next(
            (x for x in letters if x.event and statement.startswith(x.event.object)), None
        )
        assert letter is not None, f"no dead letter for {statement!r}: {stats.summary()}"
        assert letter.stage == "sink"
        assert letter.error.startswith(reason), (statement, letter.error)
        found[statement] = letter.error
    assert len(letters) == len(expected), [x.error for x in letters]
    assert rows(B, "notes") == [(100, "kept before"), (101, "kept after")]
    assert rows(B, "serial") == rows(B, "stamped") == []
    print("\nrefusals:\n" + "\n".join(f"  {s[:60]!r}: {r}" for s, r in found.items()))
    print(f"  {stats.summary()}")
    record_property("replay refusals", stats.summary())


def wait_for_lock_wait(timeout: float = 10.0) -> None:
    """Until a transaction of the server waits for a row lock."""
    admin = root()
    try:
        deadline = time.monotonic() + timeout
        with admin.cursor() as cursor:
            while time.monotonic() < deadline:
                cursor.execute(
                    "SELECT COUNT(*) FROM information_schema.INNODB_TRX"
                    " WHERE trx_state = 'LOCK WAIT'"
                )
                if cursor.fetchone()[0]:
                    return
                time.sleep(0.01)
        raise AssertionError("the statement never waited for the lock")
    finally:
        admin.close()


def test_a_statement_that_waited_for_a_lock_is_applied_after_the_commit_it_waited_for(
    fresh: None, log_dir: Path
) -> None:
    with audited(log_dir / "audit.log"):
        first = as_user(USERS[0], database=A)
        second = as_user(USERS[1], database=A)
        run(first, "INSERT INTO notes VALUES (1, 'initial')")
        run(first, "BEGIN", "UPDATE notes SET body = 'from the transaction' WHERE id = 1")
        waiting = threading.Thread(
            target=run, args=(second, "UPDATE notes SET body = 'from the waiter' WHERE id = 1")
        )
        waiting.start()
        wait_for_lock_wait()
        run(first, "COMMIT")
        waiting.join()
        first.close()
        second.close()
    events = [e for e in events_of(log_lines(log_dir / "audit.log")) if e.operation == "QUERY"]
    commit = next(e for e in events if e.object == "COMMIT")
    waiter = next(e for e in events if "from the waiter" in e.object)
    # It started first (a lower query id) and finished after (a later line).
    assert waiter.query_id < commit.query_id
    assert events.index(waiter) > events.index(commit)
    assert rows(A, "notes") == [(1, "from the waiter")]

    feed(events)
    assert rows(B, "notes") == rows(A, "notes")

    # What ordering by query id would have done: the transaction's older write wins.
    admin = root()
    run(admin, f"DELETE FROM `{B}`.notes", f"DROP DATABASE `{BOOKKEEPING}`")
    admin.close()
    feed(sorted(events, key=lambda e: e.query_id))
    assert rows(B, "notes") == [(1, "from the transaction")]


def test_a_transaction_split_across_invocations_is_applied_once_and_whole(
    fresh: None, log_dir: Path
) -> None:
    with audited(log_dir / "audit.log"):
        app = as_user(USERS[0], database=A)
        run(
            app,
            "BEGIN",
            "INSERT INTO notes VALUES (1, 'one')",
            "INSERT INTO notes VALUES (2, 'two')",
            "UPDATE notes SET body = 'one, then updated' WHERE id = 1",
            "COMMIT",
        )
        app.close()
    events = events_of(log_lines(log_dir / "audit.log"))
    second = next(i for i, e in enumerate(events) if "'two'" in e.object)
    commit = next(i for i, e in enumerate(events) if e.object == "COMMIT")

    def pending() -> int:
        admin = root()
        try:
            with admin.cursor() as cursor:
                cursor.execute(f"SELECT COUNT(*) FROM `{BOOKKEEPING}`.auditsync_replay_pending")
                return int(cursor.fetchone()[0])
        finally:
            admin.close()

    feed(events[:second])  # BEGIN and the first INSERT
    assert (rows(B, "notes"), pending()) == ([], 1)
    feed(events[second:commit])  # a new sink, a new connection: the rest before COMMIT
    assert (rows(B, "notes"), pending()) == ([], 3)
    stats, _ = feed(events[commit:])
    assert (stats.committed, stats.resumed, stats.applied) == (1, 1, 3)
    assert rows(B, "notes") == rows(A, "notes") == [(1, "one, then updated"), (2, "two")]
    assert pending() == 0
    again, _ = feed(events)
    assert (again.applied, again.duplicates) == (
        0,
        len(events) - sum(1 for e in events if e.operation in TABLE_OPERATIONS),
    )
    assert rows(B, "notes") == rows(A, "notes")


def test_ddl_is_applied_when_asked(fresh: None, log_dir: Path) -> None:
    with audited(log_dir / "audit.log"):
        app = as_user(USERS[0], database=A)
        run(
            app,
            "CREATE TABLE extra (id INT PRIMARY KEY, name VARCHAR(20))",
            "INSERT INTO extra VALUES (1, 'one'), (2, 'two')",
            "BEGIN",
            "INSERT INTO extra VALUES (3, 'three')",
            "ALTER TABLE extra ADD COLUMN size INT NOT NULL DEFAULT 5",  # commits the INSERT
            "UPDATE extra SET size = id * 10 WHERE id > 1",  # BEGIN is over: autocommitted
            "ROLLBACK",  # nothing left to roll back
            "CREATE TABLE scratch (id INT PRIMARY KEY)",
            "TRUNCATE TABLE notes",
            "DROP TABLE scratch",
            "CREATE TEMPORARY TABLE temp_rows (id INT PRIMARY KEY)",
            "INSERT INTO temp_rows VALUES (1)",
            "INSERT INTO extra (id, name) VALUES (4, 'four')",
        )
        app.close()
    run(root(), f"INSERT INTO `{B}`.notes VALUES (1, 'truncated by the replay')")
    events = events_of(log_lines(log_dir / "audit.log"))
    stats, letters = feed(events, apply_ddl=True)
    assert not letters, letters
    assert (
        rows(B, "extra")
        == rows(A, "extra")
        == [(1, "one", 5), (2, "two", 20), (3, "three", 30), (4, "four", 5)]
    )
    assert rows(B, "notes") == []
    assert checksums(A) == checksums(B)
    assert stats.applied == 9, stats.summary()
