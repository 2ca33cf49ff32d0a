"""A seeded, concurrent workload that keeps its own record of what it did.

The change feed's proof compares the feed with the binlog, and the binlog with this
record before trusting it. So the record is written from the client's side only: every
statement each session sent, in order, with the error the server returned and the rows it
reported changed, grouped into the transactions the server ran. Where a transaction ends
is not guessed from the statement text alone: after each successful statement the
server's status flags (``SERVER_STATUS_IN_TRANS``, which pymysql keeps in
``server_status``) say whether a transaction is still open, so implicit commits and
autocommitted statements are the server's word.

Each session tags its binlog transactions with ``SET SESSION gtid_domain_id =
<connection id>``: MariaDB writes no connection id on row events, and the GTID's domain is
the one field of a transaction a session can set (it needs the ``BINLOG REPLAY``
privilege, which the workload's user has).

The rows are partitioned by worker (key ranges, a ``worker`` column) so that workers
rarely wait on each other; they meet on purpose in ``counters``, where deadlocks happen,
and one deadlock is forced at the end so that every run has one.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pymysql
from private_mariadb import PrivateMariaDB
from pymysql.constants import ER, SERVER_STATUS

__all__ = [
    "DATABASE",
    "KEYS",
    "TABLES",
    "USER",
    "Column",
    "Session",
    "Statement",
    "Table",
    "Transaction",
    "WorkloadRecord",
    "run_workload",
]

DATABASE = "feedshop"
USER = "auditsync_feed"
PASSWORD = "Feed-pw-1"


@dataclass(frozen=True)
class Column:
    name: str
    #: How the binlog prints it and how to read it back: ``int``, ``decimal``, ``text``
    #: (a string in the column's UTF-8 charset) or ``bytes``.
    kind: str


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    ddl: str

    @property
    def qualified(self) -> str:
        return f"{DATABASE}.{self.name}"


def _table(name: str, key: tuple[str, ...], ddl: str, /, **kinds: str) -> Table:
    return Table(name, tuple(Column(c, k) for c, k in kinds.items()), key, ddl)


#: The workload's tables, by ``db.table``; column order is the binlog's ``@1``, ``@2``…
TABLES: dict[str, Table] = {
    table.qualified: table
    for table in (
        _table(
            "accounts",
            ("id",),
            "CREATE TABLE accounts (id INT PRIMARY KEY, owner VARCHAR(120) NOT NULL,"
            " balance BIGINT NOT NULL DEFAULT 0, note TEXT, worker INT NOT NULL,"
            " KEY worker (worker))",
            id="int",
            owner="text",
            balance="int",
            note="text",
            worker="int",
        ),
        _table(
            "entries",
            ("id",),
            "CREATE TABLE entries (id BIGINT AUTO_INCREMENT PRIMARY KEY, worker INT NOT NULL,"
            " body VARCHAR(300), KEY worker (worker))",
            id="int",
            worker="int",
            body="text",
        ),
        _table(
            "tags",  # a string in the key, compared case-insensitively by the server
            ("doc", "tag"),
            "CREATE TABLE tags (doc INT NOT NULL, tag VARCHAR(60) NOT NULL,"
            " PRIMARY KEY (doc, tag))",
            doc="int",
            tag="text",
        ),
        _table(
            "blobs",
            ("id",),
            "CREATE TABLE blobs (id INT PRIMARY KEY, data VARBINARY(64),"
            " amount DECIMAL(12,2), version INT NOT NULL)",
            id="int",
            data="bytes",
            amount="decimal",
            version="int",
        ),
        _table(
            "counters",  # shared by every worker: where they deadlock
            ("name",),
            "CREATE TABLE counters (name VARCHAR(20) PRIMARY KEY, n BIGINT NOT NULL)",
            name="text",
            n="int",
        ),
    )
}
#: Key columns by table, as the change feed's ``keys=`` takes them.
KEYS: dict[str, tuple[str, ...]] = {name: table.key for name, table in TABLES.items()}
SHARED_COUNTERS = ("c0", "c1", "c2", "c3")

#: Text that quoting, escaping and splitting get wrong. None of it holds a backslash, an
#: ``x`` and two hex digits: the binlog prints control bytes as ``\xNN`` and a backslash as
#: itself, so such text would read back as a different string.
TRICKY = (
    "plain",
    "a,b",
    "it's",
    "''",
    'say "hi"',
    "back\\slash",
    "trailing\\",
    "\\'",
    "new\nline",
    "cr\rlf",
    "tab\there",
    "nul\x00byte",
    "ctrl-z \x1a",
    "ünïcödé",
    "日本語テキスト",
    "emoji 🎉",
    "semi;colon; DELETE FROM accounts",
    "per%cent %s",
    "-- not a comment",
    "/* not a comment */",
    "`tick`",
    "NOW() RAND()",
    "x" * 200,
)
#: Tag values: case variants collide under the column's collation (a duplicate key).
TAG_WORDS = ("north", "NORTH", "south", "ünï", "it's", "a,b", "new\nline", "back\\slash")
EXPECTED_ERRORS = {
    ER.DUP_ENTRY,
    ER.PARSE_ERROR,
    ER.BAD_FIELD_ERROR,
    ER.LOCK_DEADLOCK,
    ER.LOCK_WAIT_TIMEOUT,
    ER.SP_DOES_NOT_EXIST,  # ROLLBACK TO after a deadlock ended the transaction
}
_HEX_ESCAPE = re.compile(r"\\x[0-9a-fA-F]{2}")


# --- the record ---------------------------------------------------------------------------------


@dataclass
class Statement:
    """One statement as the session sent it (pymysql's escaping done: the bytes the server
    read, decoded as UTF-8 with ``surrogateescape``) and what the server answered."""

    sql: str
    error: int | None = None
    #: The affected-rows count of the OK packet (changed rows for UPDATE: no FOUND_ROWS).
    affected: int = 0
    #: Row changes the binlog holds for this statement if its transaction commits.
    rows: int = 0
    #: Rolled back to a savepoint: its rows vanish, its transaction goes on.
    undone: bool = False
    #: Sent to change rows (whether it did or not): INSERT, UPDATE, DELETE, REPLACE.
    write: bool = False
    #: The session's autocommit when it was sent, as the server last reported it.
    autocommit: bool = True

    @property
    def effective(self) -> bool:
        return self.error is None and not self.undone


@dataclass
class Transaction:
    """The statements of one server transaction, in order, and how it ended.

    Every statement belongs to one: an autocommitted statement is a transaction of one.
    """

    connection_id: int
    statements: list[Statement] = field(default_factory=list)
    #: ``committed``, ``rolled back``, or ``open`` while it runs.
    outcome: str = "open"
    #: What ended it: ``COMMIT``, ``ROLLBACK``, ``autocommit``, ``implicit commit``,
    #: ``deadlock``, ``disconnect``, ``failed``.
    ended_by: str = ""
    savepoints: dict[str, int] = field(default_factory=dict)

    @property
    def committed(self) -> bool:
        return self.outcome == "committed"

    @property
    def rows(self) -> int:
        """Row changes it left, had it committed (savepoint rollbacks and failures out)."""
        return sum(s.rows for s in self.statements if s.effective)

    @property
    def writes(self) -> list[Statement]:
        """Its statements that changed rows and stayed, in order."""
        return [s for s in self.statements if s.effective and s.rows]


@dataclass
class Session:
    """One connection: the GTID domain of its binlog transactions is its connection id."""

    worker: int
    connection_id: int
    transactions: list[Transaction] = field(default_factory=list)

    def statements(self) -> Iterator[Statement]:
        for transaction in self.transactions:
            yield from transaction.statements


@dataclass
class WorkloadRecord:
    seed: int
    sessions: list[Session]
    #: The audit log's offsets around the workload: its records are between them.
    audit_start: int
    audit_end: int
    elapsed: float
    #: Scenes played, errors seen; for the figures.
    counts: Counter[str]
    #: Anything the workload did not expect; a test asserts it is empty.
    unexpected: list[str]

    @property
    def transactions(self) -> list[Transaction]:
        return [t for s in self.sessions for t in s.transactions]

    def session(self, connection_id: int) -> Session:
        return next(s for s in self.sessions if s.connection_id == connection_id)

    def figures(self) -> dict[str, int]:
        transactions = self.transactions
        statements = [s for t in transactions for s in t.statements]
        writing = [t for t in transactions if any(s.write for s in t.statements)]
        return {
            "sessions": len(self.sessions),
            "statements": len(statements),
            "failed statements": sum(1 for s in statements if s.error is not None),
            "undone to a savepoint": sum(1 for s in statements if s.undone),
            "transactions": len(transactions),
            "transactions with writes": len(writing),
            "committed with writes": sum(1 for t in writing if t.committed),
            "rolled back with writes": sum(1 for t in writing if not t.committed),
            "committed, no row changed": sum(1 for t in writing if t.committed and not t.rows),
            "row changes committed": sum(t.rows for t in transactions if t.committed),
            "deadlocks": sum(1 for t in transactions if t.ended_by == "deadlock"),
        }


# --- one client --------------------------------------------------------------------------------


def _kind(sql: str) -> str:
    """What a statement does to the transaction, from its first words."""
    words = sql.split(None, 3)
    head = " ".join(words[:2]).upper() if words else ""
    first = head.split(" ")[0] if head else ""
    if first == "BEGIN" or head == "START TRANSACTION":
        return "begin"
    if first == "COMMIT":
        return "commit"
    if first == "ROLLBACK":
        return "rollback to" if " TO " in f" {sql.upper()} " else "rollback"
    if first == "SAVEPOINT":
        return "savepoint"
    return "other"


def _savepoint(sql: str) -> str:
    return sql.split()[-1].strip("`").lower()


def _same(affected: int) -> int:
    return affected


def _one(affected: int) -> int:
    """REPLACE and INSERT … ON DUPLICATE KEY UPDATE of one row: the server counts a
    replaced or updated row twice; the binlog holds one row event (an insert or an update)."""
    return 1 if affected else 0


class Worker:
    """One client thread: its own rows and sessions; statements chosen by its own seed."""

    def __init__(self, server: PrivateMariaDB, number: int, seed: int, scenes: int) -> None:
        self.server = server
        self.number = number
        self.rng = random.Random(seed * 1009 + number)
        self.scenes = scenes
        self.base = number * 1_000_000
        self.next_id = self.base
        self.account_ids: list[int] = []
        self.entry_ids: list[int] = []
        self.version = 0
        self.last_insert_id = 0
        self.connection: Any = None
        self.sessions: list[Session] = []
        self.current: Transaction | None = None
        #: The server's word after the last statement that succeeded (an error packet
        #: carries no status): is a transaction open? A deadlock closes it.
        self.in_transaction = False
        self.counts: Counter[str] = Counter()
        self.unexpected: list[str] = []

    # sessions

    @property
    def session(self) -> Session:
        return self.sessions[-1]

    def connect(self) -> None:
        how = self.rng.randrange(3)
        if how == 0:
            connection = self.server.connect(user=USER, password=PASSWORD, database=DATABASE)
        else:
            connection = self.server.connect(user=USER, password=PASSWORD)
        self.connection = connection
        self.sessions.append(Session(self.number, connection.thread_id()))
        self.current = None
        self.in_transaction = False
        # pymysql's first statement on every connection, sent before it returns one.
        names = Transaction(connection.thread_id(), [Statement("SET NAMES utf8mb4")])
        names.outcome, names.ended_by = "committed", "autocommit"
        self.session.transactions.append(names)
        self.sql(f"SET SESSION gtid_domain_id = {connection.thread_id()}")
        # Fewer lock waits between workers (no gap locks); the rows are theirs anyway.
        self.sql("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        if how == 1:
            self.sql(f"USE {DATABASE}")
        elif how == 2:  # COM_INIT_DB: the audit log shows it only in the database field
            connection.select_db(DATABASE)
        self.counts[f"connect:{how}"] += 1

    def disconnect(self) -> None:
        """The server rolls back what is open when a connection goes."""
        self.connection.close()
        if self.current is not None:
            self._end("rolled back", "disconnect")

    # statements

    def sql(
        self, text: str, args: Any = None, rows: Callable[[int], int] | None = None
    ) -> Statement:
        """Send one statement and record it; ``rows`` turns the affected count into the
        row changes it leaves (``None``: a statement that writes nothing)."""
        connection = self.connection
        if args is not None and not isinstance(args, tuple | list | dict):
            args = (args,)
        sent = connection.cursor().mogrify(text, args) if args is not None else text
        kind = _kind(sent)
        if kind == "begin" and self.current is not None and self.in_transaction:
            self._end("committed", "implicit commit")  # BEGIN commits what is open
        transaction = self.current
        if transaction is None:
            transaction = self.current = Transaction(self.session.connection_id)
            self.session.transactions.append(transaction)
        statement = Statement(sent, write=rows is not None, autocommit=connection.get_autocommit())
        transaction.statements.append(statement)
        was_open = self.in_transaction
        try:
            with connection.cursor() as cursor:
                affected = cursor.execute(sent)
                self.last_insert_id = cursor.lastrowid
        except pymysql.err.MySQLError as error:
            code = error.args[0] if error.args else -1
            statement.error = code
            self.counts[f"error:{code}"] += 1
            if code not in EXPECTED_ERRORS:
                self.unexpected.append(f"{error!r} on {sent[:120]!r}")
            if code == ER.LOCK_DEADLOCK:  # the whole transaction is gone, BEGIN with it
                self._end("rolled back", "deadlock")
                self.in_transaction = False
            elif not was_open and connection.get_autocommit():
                self._end("rolled back", "failed")
            return statement
        statement.affected = affected
        statement.rows = rows(affected) if rows is not None else 0
        status = connection.server_status or 0
        self.in_transaction = bool(status & SERVER_STATUS.SERVER_STATUS_IN_TRANS)
        if kind == "commit":
            self._end("committed", "COMMIT")
        elif kind == "rollback":
            self._end("rolled back", "ROLLBACK")
        elif kind == "savepoint":
            transaction.savepoints[_savepoint(sent)] = len(transaction.statements)
        elif kind == "rollback to":
            for undone in transaction.statements[transaction.savepoints[_savepoint(sent)] : -1]:
                undone.undone = True
        elif not self.in_transaction:
            self._end("committed", "autocommit" if not was_open else "implicit commit")
        return statement

    def write(self, text: str, args: Any = None, rows: Callable[[int], int] = _same) -> Statement:
        return self.sql(text, args, rows)

    def _end(self, outcome: str, how: str) -> None:
        if self.current is not None:
            self.current.outcome, self.current.ended_by = outcome, how
        self.current = None

    # values

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def text(self, limit: int = 120) -> str:
        chosen = self.rng.choice(TRICKY)[:limit]
        assert not _HEX_ESCAPE.search(chosen), chosen
        return chosen

    def some_accounts(self, count: int) -> list[int]:
        """Ids this worker made, present or not (deleted, rolled back, rekeyed): some
        statements match nothing, as they do in life. Never the anchor row."""
        pool = self.account_ids or [self.base + 1]
        return [self.rng.choice(pool) for _ in range(count)]

    # statements that write

    def insert_accounts(self) -> None:
        rows, args = [], []
        for _ in range(self.rng.randint(1, 4)):
            number = self.new_id()
            rows.append("(%s, %s, %s, %s, %s)")
            args += [number, f"{self.text(60)}#{number}", self.rng.randint(-500, 500)]
            args += [self.text(), self.number]
            self.account_ids.append(number)
        sql = f"INSERT INTO accounts (id, owner, balance, note, worker) VALUES {', '.join(rows)}"
        self.write(sql, args)

    def insert_entries(self) -> None:
        count = self.rng.randint(1, 4)
        args = [v for _ in range(count) for v in (self.number, self.text())]
        if self.rng.random() < 0.5:  # the key left to auto-increment
            rows = ", ".join(["(%s, %s)"] * count)
            statement = self.write(f"INSERT INTO entries (worker, body) VALUES {rows}", args)
        else:  # ... or asked for with NULL
            rows = ", ".join(["(NULL, %s, %s)"] * count)
            statement = self.write(f"INSERT INTO entries VALUES {rows}", args)
        if statement.error is None:
            # consecutive for a simple multi-row INSERT (auto-increment lock mode 1)
            first = self.last_insert_id
            self.entry_ids += range(first, first + count)

    def update_by_key(self) -> None:
        (number,) = self.some_accounts(1)
        args = (self.rng.randint(-50, 50), self.text(), number)
        self.write("UPDATE accounts SET balance = balance + %s, note = %s WHERE id = %s", args)

    def update_in(self) -> None:
        numbers = self.some_accounts(self.rng.randint(2, 4))
        self.write("UPDATE accounts SET note = %s WHERE id IN %s", (self.text(), numbers))

    def update_key(self) -> None:
        (old,) = self.some_accounts(1)
        new = self.new_id()
        self.write("UPDATE accounts SET id = %s WHERE id = %s", (new, old))
        self.account_ids.append(new)

    def update_nothing(self) -> None:
        """Matches a row and changes nothing, or matches nothing: no row event either way."""
        (number,) = self.some_accounts(1)
        if self.rng.random() < 0.5:
            self.write("UPDATE accounts SET note = note, balance = balance WHERE id = %s", number)
        else:
            self.write("UPDATE accounts SET balance = 0 WHERE id = %s", self.base + 999_999)

    def update_raw(self) -> None:
        """Quotes doubled by hand, a raw newline and tab in the statement, no client escaping."""
        note = self.text().replace("\\", "\\\\").replace("'", "''").replace("\x00", "\\0")
        (number,) = self.some_accounts(1)
        self.write(f"UPDATE accounts SET note = '{note}',\n\tbalance = -1 WHERE id = {number}")

    def delete_by_key(self) -> None:
        (number,) = self.some_accounts(1)
        self.write("DELETE FROM accounts WHERE id = %s", number)

    def delete_entries_in(self) -> None:
        pool = self.entry_ids or [0]
        numbers = [self.rng.choice(pool) for _ in range(self.rng.randint(1, 3))]
        self.write("DELETE FROM entries WHERE id IN %s", (numbers,))

    def update_undecided(self) -> None:
        """Statements whose WHERE names no key: which rows they touch, only the server knows."""
        choice = self.rng.randrange(3)
        if choice == 0:
            args = (self.number, self.rng.randint(-200, 200))
            self.write(
                "UPDATE accounts SET balance = balance - 1 WHERE worker = %s AND balance > %s", args
            )
        elif choice == 1:
            self.write("DELETE FROM entries WHERE worker = %s ORDER BY id LIMIT 2", self.number)
        else:
            self.write(
                "INSERT IGNORE INTO tags (doc, tag) SELECT id, %s FROM accounts"
                " WHERE worker = %s AND balance > 200",
                (self.rng.choice(TAG_WORDS), self.number),
            )

    def tag(self) -> None:
        docs = self.some_accounts(2)
        words = [self.rng.choice(TAG_WORDS) for _ in docs]
        rows = ", ".join(["(%s, %s)"] * len(docs))
        args = [v for pair in zip(docs, words, strict=True) for v in pair]
        self.write(f"INSERT INTO tags (doc, tag) VALUES {rows}", args)  # may be a duplicate

    def retag(self) -> None:
        """An UPDATE of a key column of a two-column key, matched case-insensitively."""
        (doc,) = self.some_accounts(1)
        old, new = self.rng.sample(TAG_WORDS, 2)
        self.write("UPDATE tags SET tag = %s WHERE doc = %s AND tag = %s", (new, doc, old))

    def untag(self) -> None:
        docs = self.some_accounts(2)
        self.write(
            "DELETE FROM tags WHERE doc IN %s AND tag = %s", (docs, self.rng.choice(TAG_WORDS))
        )

    def replace_blob(self) -> None:
        """A fresh version each time, so a REPLACE never writes the row it finds."""
        self.version += 1
        number = self.base + self.rng.randint(1, 8)
        data = self.rng.randbytes(self.rng.randint(0, 12)) + b"\x00\\'"
        amount = Decimal(self.rng.randint(-99_999_99, 99_999_99)).scaleb(-2)
        args = (number, data, amount, self.version)
        self.write(
            "REPLACE INTO blobs (id, data, amount, version) VALUES (%s, %s, %s, %s)", args, _one
        )

    def bump_own_counter(self) -> None:
        self.write(
            "INSERT INTO counters (name, n) VALUES (%s, 1) ON DUPLICATE KEY UPDATE n = n + 1",
            (f"w{self.number}",),
            _one,
        )

    def read(self) -> None:
        self.sql("SELECT COUNT(*) FROM accounts WHERE worker = %s", self.number)

    def insert_long(self) -> None:
        """A statement longer than the audit log's default limit (1024): its record is cut,
        and what it changed can only be learnt from the binlog."""
        number = self.new_id()
        note = "".join(self.rng.choice(TRICKY) for _ in range(12)).ljust(1200, "z")
        args = (number, f"long#{number}", note, self.number)
        self.write("INSERT INTO accounts (id, owner, note, worker) VALUES (%s, %s, %s, %s)", args)
        self.account_ids.append(number)

    def fail(self) -> None:
        choice = self.rng.randrange(3)
        if choice == 0:  # the anchor row is never deleted or rekeyed
            self.write(
                "INSERT INTO accounts (id, owner, worker) VALUES (%s, 'dup', %s)",
                (self.base, self.number),
            )
        elif choice == 1:
            self.write("INSERT INTO accounts VALUES (")
        else:
            self.write("UPDATE accounts SET no_such_column = 1 WHERE id = %s", self.base)

    STATEMENTS: tuple[tuple[Callable[[Worker], None], int], ...] = (
        (insert_accounts, 8),
        (insert_entries, 4),
        (update_by_key, 5),
        (update_in, 3),
        (update_key, 2),
        (update_nothing, 2),
        (update_raw, 2),
        (delete_by_key, 2),
        (delete_entries_in, 2),
        (update_undecided, 3),
        (tag, 3),
        (retag, 2),
        (untag, 1),
        (replace_blob, 3),
        (bump_own_counter, 2),
        (read, 1),
        (insert_long, 1),
        (fail, 2),
    )

    def statement(self) -> None:
        functions = [f for f, _ in self.STATEMENTS]
        chosen = self.rng.choices(functions, weights=[w for _, w in self.STATEMENTS])[0]
        chosen(self)

    # scenes: how statements group into transactions

    SCENES: tuple[tuple[str, int], ...] = (
        ("plain", 8),
        ("transaction", 6),
        ("toggle", 2),
        ("nested", 1),
        ("counters", 2),
        ("disconnect", 1),
    )

    def scene(self) -> None:
        kind = self.rng.choices([k for k, _ in self.SCENES], weights=[w for _, w in self.SCENES])[0]
        self.counts[f"scene:{kind}"] += 1
        getattr(self, f"scene_{kind}")()

    def scene_plain(self) -> None:
        for _ in range(self.rng.randint(1, 3)):
            self.statement()
        if not self.connection.get_autocommit() and self.rng.random() < 0.5:
            self.sql(self.rng.choice(["COMMIT", "ROLLBACK", "COMMIT WORK"]))

    def scene_transaction(self) -> None:
        self.sql(self.rng.choice(["BEGIN", "START TRANSACTION", "BEGIN WORK"]))
        for _ in range(self.rng.randint(1, 4)):
            self.statement()
        if self.rng.random() < 0.4:
            self.sql("SAVEPOINT sp1")
            self.statement()
            if self.rng.random() < 0.5:
                self.sql("SAVEPOINT `Sp2`")
                self.statement()
                self.sql("ROLLBACK TO SAVEPOINT sp2")
            self.statement()
            self.sql(self.rng.choice(["ROLLBACK TO SAVEPOINT sp1", "ROLLBACK WORK TO sp1"]))
            self.statement()
        self.sql(self.rng.choices(["COMMIT", "ROLLBACK"], weights=[7, 3])[0])

    def scene_toggle(self) -> None:
        if self.connection.get_autocommit():
            self.sql(
                self.rng.choice(
                    ["SET autocommit=0", "SET @@autocommit = 0", "SET SESSION autocommit = OFF"]
                )
            )
            self.statement()
            return
        self.statement()
        ending = self.rng.choice([[], ["COMMIT"], ["ROLLBACK"]])
        for statement in [
            *ending,
            self.rng.choice(["SET autocommit=1", "SET @@session.autocommit = ON"]),
        ]:
            self.sql(statement)  # SET autocommit=1 commits what is open

    def scene_nested(self) -> None:
        self.sql("BEGIN")
        self.statement()
        self.sql("BEGIN")  # commits the first transaction
        self.statement()
        self.sql("COMMIT")

    def scene_counters(self) -> None:
        """Two shared rows in random order: other workers do the same, deadlocks follow.
        After a deadlock the scene goes on, and its statements are autocommitted."""
        first, second = self.rng.sample(SHARED_COUNTERS, 2)
        self.sql("BEGIN")
        self.write("UPDATE counters SET n = n + 1 WHERE name = %s", (first,))
        self.statement()
        self.write("UPDATE counters SET n = n + 10 WHERE name = %s", (second,))
        self.statement()
        self.sql("COMMIT")

    def scene_disconnect(self) -> None:
        if self.rng.random() < 0.7:
            self.sql("BEGIN")
            self.statement()  # still open when the connection goes: rolled back
        self.disconnect()
        self.connect()

    def setup(self) -> None:
        self.connect()
        self.write(
            "INSERT INTO accounts (id, owner, worker) VALUES (%s, %s, %s)",
            (self.base, f"anchor {self.number}", self.number),
        )

    def finish(self) -> None:
        if not self.connection.get_autocommit():
            self.sql("COMMIT")
        self.disconnect()

    def __call__(self, start: threading.Barrier) -> None:
        try:
            self.setup()
            start.wait(timeout=60)
            for _ in range(self.scenes):
                self.scene()
            self.finish()
        except Exception as error:  # reported by the test, not lost in a thread
            start.abort()
            self.unexpected.append(f"worker {self.number}: {error!r}")


# --- the whole run -----------------------------------------------------------------------------


def prepare(server: PrivateMariaDB) -> None:
    """The database, its tables and the workload's user (with BINLOG REPLAY, for the tag)."""
    server.execute(
        f"DROP DATABASE IF EXISTS {DATABASE}",
        f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4",
        f"USE {DATABASE}",
        *(table.ddl for table in TABLES.values()),
        "INSERT INTO counters VALUES " + ", ".join(f"('{c}', 0)" for c in SHARED_COUNTERS),
        f"CREATE USER IF NOT EXISTS '{USER}'@'localhost' IDENTIFIED BY '{PASSWORD}'",
        f"GRANT ALL ON {DATABASE}.* TO '{USER}'@'localhost'",
        f"GRANT BINLOG REPLAY ON *.* TO '{USER}'@'localhost'",
    )


def _wait_for_lock_wait(server: PrivateMariaDB, timeout: float = 10.0) -> None:
    with server.connect() as admin, admin.cursor() as cursor:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the forced deadlock never waited for its lock")


def forced_deadlock(server: PrivateMariaDB, first: Worker, second: Worker) -> None:
    """Two sessions lock two counters crosswise: the server rolls one back whole, and the
    loser's next statement runs autocommitted, its COMMIT commits nothing."""
    first.setup()
    second.setup()
    first.sql("BEGIN")
    first.write("UPDATE counters SET n = n + 100 WHERE name = 'c0'")
    second.sql("START TRANSACTION")
    second.write("UPDATE counters SET n = n + 100 WHERE name = 'c1'")
    waiting = threading.Thread(
        target=first.write, args=("UPDATE counters SET n = n + 100 WHERE name = 'c1'",)
    )
    waiting.start()
    _wait_for_lock_wait(server)
    second.write("UPDATE counters SET n = n + 100 WHERE name = 'c0'")
    waiting.join()
    for worker in (first, second):
        worker.insert_accounts()  # the loser's: autocommitted
        worker.sql("COMMIT")
        worker.disconnect()


def run_workload(
    server: PrivateMariaDB, seed: int, workers: int = 6, scenes: int = 40
) -> WorkloadRecord:
    """Prepare the database, run ``workers`` concurrent clients of ``scenes`` scenes each,
    then the forced deadlock; return the record, the audit log offsets around it."""
    prepare(server)
    started = time.monotonic()
    audit_start = server.audit_settled()
    crowd = [Worker(server, number, seed, scenes) for number in range(1, workers + 1)]
    start = threading.Barrier(workers)
    threads = [threading.Thread(target=worker, args=(start,)) for worker in crowd]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pair = [Worker(server, number, seed, 0) for number in (workers + 1, workers + 2)]
    try:
        forced_deadlock(server, *pair)
    except Exception as error:
        pair[0].unexpected.append(f"forced deadlock: {error!r}")
    everyone = crowd + pair
    return WorkloadRecord(
        seed=seed,
        sessions=[session for worker in everyone for session in worker.sessions],
        audit_start=audit_start,
        audit_end=server.audit_settled(audit_start),
        elapsed=time.monotonic() - started,
        counts=sum((worker.counts for worker in everyone), Counter()),
        unexpected=[problem for worker in everyone for problem in worker.unexpected],
    )
