"""The binlog oracle, proven against the workload's own record before anything is held
against it: a private server with server_audit and a ROW binlog, a seeded concurrent
workload, and three accounts of one run that must agree.

The figures of the run (transactions committed and rolled back, row changes, statements,
failures) are printed, and shown in the test summary.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pytest
from binlog import BinlogTransaction, RowChange, Value, check_against, parse_binlog
from oracle import Observation, observe
from private_mariadb import PORTS, PrivateMariaDB
from shipping import audit_records, kinesis_events
from workload import DATABASE, TABLES, Transaction, WorkloadRecord

from auditsync import AuditEvent, Pipeline, parse_line
from auditsync.aws import handle_kinesis_event

#: A private server of this module's own; the tests of the parser and builders need none.
server = pytest.mark.mariadb(private=True)
SEED = 20261206


@pytest.fixture(scope="module")
def run(private_server: PrivateMariaDB) -> Observation:
    return observe(private_server, SEED)


def show(title: str, figures: dict[str, Any]) -> None:
    print(f"\n{title}:")
    for name, value in figures.items():
        print(f"  {name}: {value}")


# --- the server ---------------------------------------------------------------------------------


@server
def test_the_private_server_is_its_own(private_server: PrivateMariaDB) -> None:
    with private_server.connect() as admin, admin.cursor() as cursor:
        cursor.execute(
            "SELECT @@port, @@socket, @@datadir, @@log_bin, @@binlog_format,"
            " @@server_audit_logging, @@server_audit_events, @@server_audit_file_path"
        )
        port, socket, datadir, log_bin, binlog_format, logging, events, path = cursor.fetchone()
    assert port in PORTS
    assert port != 3306
    directory = str(private_server.directory)
    assert socket.startswith(directory)
    assert datadir.startswith(directory)
    assert (log_bin, binlog_format, logging) == (1, "ROW", 1)
    assert set(events.split(",")) >= {"CONNECT", "QUERY", "TABLE"}
    assert path == str(private_server.audit_path)


@server
def test_a_stopped_server_leaves_nothing_behind() -> None:
    other = PrivateMariaDB()
    other.start()
    directory, process = other.directory, other.process
    assert directory is not None
    assert process is not None
    other.stop()
    assert process.poll() is not None
    assert not directory.exists()


# --- the workload's record ----------------------------------------------------------------------


@server
def test_the_workload_did_what_it_claims(run: Observation) -> None:
    record = run.record
    figures = record.figures()
    errors = {k: v for k, v in sorted(record.counts.items()) if k.startswith("error:")}
    scenes = {k: v for k, v in sorted(record.counts.items()) if not k.startswith("error:")}
    show(
        f"workload (seed {record.seed}, {record.elapsed:.1f} s)",
        {**figures, "errors": errors, "scenes": scenes},
    )
    assert not record.unexpected, record.unexpected
    assert record.elapsed < 30, "the workload is meant to be small"
    # Without these, agreement with the binlog proves less than it seems to.
    assert figures["committed with writes"]
    assert figures["rolled back with writes"]
    assert figures["undone to a savepoint"]
    assert figures["committed, no row changed"]
    assert figures["deadlocks"] >= 1
    assert errors.get("error:1062")
    assert errors.get("error:1064")
    assert all(t.outcome != "open" for t in record.transactions)
    endings = Counter(t.ended_by for t in record.transactions)
    assert {"COMMIT", "ROLLBACK", "autocommit", "implicit commit", "disconnect"} <= set(endings)
    sent = [s.sql for t in record.transactions for s in t.statements]
    for needle in ("SET autocommit=0", "SAVEPOINT", "WHERE id IN (", "SET id = ", "REPLACE INTO"):
        assert any(needle in sql for sql in sent), needle


@server
def test_after_a_deadlock_the_next_statement_is_autocommitted(run: Observation) -> None:
    """The forced deadlock: the loser's transaction is rolled back whole, BEGIN with it,
    and the INSERT it sends next is a transaction of its own."""
    losers = [
        (session, index)
        for session in run.record.sessions
        for index, t in enumerate(session.transactions)
        if t.ended_by == "deadlock"
    ]
    assert losers
    autocommitted = 0
    for session, index in losers:
        lost = session.transactions[index]
        assert lost.outcome == "rolled back"
        assert lost.statements[-1].error == 1213
        following = session.transactions[index + 1 : index + 2]
        for after in following:
            if after.statements[0].autocommit and after.statements[0].write:
                # an autocommitted statement: a transaction of one, committed on its own
                assert (after.ended_by, len(after.statements)) == ("autocommit", 1)
                autocommitted += 1
    assert autocommitted


# --- the binlog against the record ----------------------------------------------------------------


def binlog_figures(run: Observation) -> dict[str, Any]:
    ours = run.workload_binlog()
    kinds = Counter(change.kind for t in ours for change in t.changes)
    return {
        "transactions": f"{len(run.binlog)} ({len(ours)} of workload sessions)",
        "with row changes": sum(1 for t in ours if t.changes),
        "without (Query events only)": sum(1 for t in ours if not t.changes),
        "row changes": dict(kinds),
        "statements with rows": sum(len(t.statements()) for t in ours),
        "domains": len({t.domain for t in ours}),
    }


@server
def test_the_binlog_agrees_with_the_record(run: Observation) -> None:
    show("binlog", binlog_figures(run))
    problems = run.problems()
    assert not problems, "\n".join(problems[:10])
    record = run.record
    committed_rows = sum(t.rows for t in record.transactions if t.committed)
    assert sum(len(t.changes) for t in run.workload_binlog()) == committed_rows
    # Row events carry no connection id; only Query events (SAVEPOINT, DDL) do.
    for transaction in run.workload_binlog():
        assert set(transaction.thread_ids) <= {transaction.domain}
        assert "trans" in transaction.flags


def lie(record: WorkloadRecord, pick: Callable[[Transaction], bool]) -> Transaction:
    return next(t for t in record.transactions if pick(t))


@server
def test_the_check_catches_a_record_that_lies(run: Observation) -> None:
    """The check has teeth: any one change to the truth is reported."""
    changes: dict[str, Callable[[WorkloadRecord], None]] = {
        "a rolled-back transaction said committed": lambda r: setattr(
            lie(r, lambda t: not t.committed and t.rows > 0), "outcome", "committed"
        ),
        "a committed one said rolled back": lambda r: setattr(
            lie(r, lambda t: t.committed and t.rows > 0), "outcome", "rolled back"
        ),
        "an undone statement said kept": lambda r: setattr(
            next(
                s
                for t in r.transactions
                if t.committed
                for s in t.statements
                if s.undone and s.rows
            ),
            "undone",
            False,
        ),
        "one row fewer": lambda r: setattr(
            next(s for t in r.transactions if t.committed for s in t.writes), "rows", 0
        ),
    }
    for name, change in changes.items():
        record = copy.deepcopy(run.record)
        change(record)
        assert check_against(run.binlog, record), name


def apply(tables: dict[str, dict[tuple[Value, ...], dict[str, Value]]], change: RowChange) -> None:
    rows = tables.setdefault(change.table, {})
    key = TABLES[change.table].key
    if change.before is not None:
        old = change.key(key, "before")
        assert rows.pop(old, None) == change.before, f"{change} changed a row not there"
    if change.after is not None:
        new = change.key(key, "after")
        assert new not in rows, f"{change} inserted a row already there"
        rows[new] = dict(change.after)


@server
def test_the_row_images_rebuild_every_table(
    run: Observation, private_server: PrivateMariaDB
) -> None:
    """Every change applied in binlog order, each before image equal to the row it
    replaces, gives the tables the server holds: the values are read back exactly
    (quotes, backslashes, NUL, newlines, non-ASCII, bytes, decimals)."""
    rebuilt: dict[str, dict[tuple[Value, ...], dict[str, Value]]] = {}
    for transaction in run.binlog:
        for change in transaction.changes:
            apply(rebuilt, change)
    with private_server.connect() as admin, admin.cursor() as cursor:
        for name, table in TABLES.items():
            cursor.execute(f"SELECT * FROM {name}")
            columns = [c.name for c in table.columns]
            held = {}
            for values in cursor.fetchall():
                row = dict(zip(columns, values, strict=True))
                held[tuple(row[c] for c in table.key)] = row
            assert rebuilt.get(name, {}) == held, name
    texts = {
        value
        for rows in rebuilt.values()
        for row in rows.values()
        for value in row.values()
        if isinstance(value, str)
    }
    for tricky in ("it's", "trailing\\", "nul\x00byte", "new\nline", "cr\rlf", "日本語テキスト"):
        assert any(tricky in text for text in texts), tricky
    assert any(
        isinstance(v, bytes) and b"\x00" in v
        for r in rebuilt[f"{DATABASE}.blobs"].values()
        for v in r.values()
    )
    assert any(
        isinstance(v, Decimal) for r in rebuilt[f"{DATABASE}.blobs"].values() for v in r.values()
    )


@server
def test_what_the_binlog_shows_of_each_kind_of_statement(run: Observation) -> None:
    by_text: dict[str, list[str]] = {}
    for transaction in run.workload_binlog():
        for text, changes in transaction.statements():
            by_text.setdefault(text.split(" ", 1)[0], []).extend(c.kind for c in changes)
    # REPLACE shows as the insert or the update it did, never as a delete and an insert.
    assert set(by_text["REPLACE"]) == {"INSERT", "UPDATE"}
    # INSERT … ON DUPLICATE KEY UPDATE likewise.
    assert set(by_text["INSERT"]) == {"INSERT", "UPDATE"}
    # A key-changing UPDATE is one UPDATE row with the old key before and the new after.
    rekeyed = [
        c
        for t in run.workload_binlog()
        for c in t.changes
        if c.kind == "UPDATE" and c.before and c.after and c.before.get("id") != c.after.get("id")
    ]
    assert rekeyed
    # An UPDATE that matched a row and changed nothing left no row.
    noops = [
        s
        for t in run.record.transactions
        if t.committed
        for s in t.statements
        if s.error is None and "SET note = note" in s.sql
    ]
    assert noops
    assert all(s.rows == 0 for s in noops)
    texts = {text for t in run.workload_binlog() for text, _ in t.statements()}
    assert not any("SET note = note" in text for text in texts)


# --- the audit log against the record -------------------------------------------------------------


def logged_as(sql: str, event: AuditEvent, limit: int) -> bool:
    """The statement as the plugin logged it: whole, or cut at the limit (counted in
    escaped bytes, so a statement of at least half the limit may be cut)."""
    sent = sql.encode("utf-8", "surrogateescape")
    logged = event.object.encode("utf-8", "surrogateescape")
    return logged == sent or (len(sent) >= limit // 2 and sent.startswith(logged))


@server
def test_the_audit_log_holds_every_statement_of_the_record(run: Observation) -> None:
    logged = run.logged()  # raises if a connection's count of QUERY records is off
    limit = run.query_log_limit
    for item in logged.values():
        assert logged_as(item.statement.sql, item.event, limit), item
        assert item.event.retcode == (item.statement.error or 0), item
    sessions = {s.connection_id for s in run.record.sessions}
    others = {
        e.username
        for line in run.audit_log.splitlines()
        if (e := parse_line(line)).connection_id not in sessions
    }
    assert others <= {"root"}, others  # the harness's own look at the server
    cut = sum(1 for item in logged.values() if item.event.object != item.statement.sql)
    # Commit order: the place in the log of each commit, in the binlog's order.
    last = {id(item.transaction): item.place for item in logged.values()}
    places = [
        last[id(transaction)]
        for transaction, _ in run.matched()
        if transaction.ended_by in ("COMMIT", "autocommit")
    ]
    out_of_order = sum(1 for a, b in itertools.pairwise(places) if b < a)
    show(
        "audit log",
        {
            "records": len(run.audit_log.splitlines()),
            "QUERY records of workload sessions": len(logged),
            f"cut at the query log limit ({limit})": cut,
            "commits logged before the previous binlog commit's": (
                f"{out_of_order} of {len(places)}"
            ),
        },
    )
    assert cut, "no statement was longer than the query log limit"


# --- the audit log as Lambda sees it --------------------------------------------------------------


class Collect:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def write(self, events: Sequence[AuditEvent]) -> None:
        self.events.extend(events)

    def close(self) -> None:
        pass


def begin_commit_splits(events: list[dict[str, Any]], records: list[str]) -> int:
    """How many explicit transactions have their BEGIN and their COMMIT in different events."""
    invocation_of: list[int] = []
    for number, event in enumerate(events):
        pipeline = Pipeline(collected := Collect())
        handle_kinesis_event(event, pipeline)
        invocation_of += [number] * len(collected.events)
    assert len(invocation_of) == len(records)
    opened: dict[int, int] = {}
    splits = 0
    for place, record in enumerate(records):
        event = parse_line(record)
        if event.operation != "QUERY":
            continue
        word = event.object.split(" ", 1)[0].upper()
        if word in ("BEGIN", "START"):
            opened[event.connection_id] = invocation_of[place]
        elif word == "COMMIT" and event.connection_id in opened:
            splits += opened.pop(event.connection_id) != invocation_of[place]
    return splits


@server
def test_the_kinesis_events_carry_the_log_whole_and_in_order(run: Observation) -> None:
    records = run.audit_records()
    events = run.kinesis_events(seed=SEED)
    collected = Collect()
    pipeline = Pipeline(collected)
    for event in events:
        assert handle_kinesis_event(event, pipeline) == {"batchItemFailures": []}
    assert [e.object for e in collected.events] == [parse_line(r).object for r in records]
    assert len({e.key for e in collected.events}) == len(records)  # CloudWatch ids
    numbers = [r["kinesis"]["sequenceNumber"] for e in events for r in e["Records"]]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == len(numbers)
    assert max(len(e["Records"]) for e in events) > 1
    splits = begin_commit_splits(events, records)
    show("Kinesis", {"events": len(events), "records": len(numbers), "BEGIN/COMMIT split": splits})
    assert splits


def test_the_builders_need_no_server() -> None:
    log = (
        b"20261206 06:54:33,db,app,localhost,7,20,QUERY,shop,'BEGIN',0\n"
        b"20261206 06:54:33,db,app,localhost,7,21,QUERY,shop,"
        b"'INSERT INTO t VALUES (1, \\'a\\')',0\n"
        b"20261206 06:54:33,db,app,localhost,7,22,QUERY,shop,'COMMIT',0\n"
    )
    records = audit_records(log)
    events = kinesis_events(records, seed=1, per_message=(1, 1), per_event=(1, 1))
    assert [len(e["Records"]) for e in events] == [1, 1, 1]


def test_parse_binlog_reads_what_mariadb_binlog_prints() -> None:
    """A hand-made sample of the printed form: quotes and backslashes as themselves,
    control bytes as \\xNN, a negative integer with its unsigned reading."""
    head = "#261206  6:48:53 server id 1  end_log_pos 1010 CRC32 0x2de09dc5 \t"
    sample = [
        f"{head}GTID 7-1-2 cid=9 trans",
        "START TRANSACTION",
        f"{head}Annotate_rows:",
        "#Q> UPDATE t SET s='x',",
        "#Q> n = -2 WHERE id=1",
        f"{head}Update_rows: table id 18 flags: STMT_END_F",
        "### UPDATE `feedshop`.`blobs`",
        "### WHERE",
        "###   @1=1",
        "###   @2='a'b\\c,d\\x0ae\\x00'",
        "###   @3=1.50",
        "###   @4=NULL",
        "### SET",
        "###   @1=1",
        "###   @2='x'",
        "###   @3=-0.50",
        "###   @4=-2 (4294967294)",
        "# Number of rows: 1",
        f"{head}Query\tthread_id=5\texec_time=0\terror_code=0\txid=0",
        "SET TIMESTAMP=1796539733/*!*/;",
        "SAVEPOINT `a`",
        "/*!*/;",
        f"{head}Xid = 10",
        "COMMIT/*!*/;",
    ]
    text = "\n".join(sample).encode()
    (transaction,) = parse_binlog(text)
    assert isinstance(transaction, BinlogTransaction)
    assert (transaction.gtid, transaction.flags, transaction.xid) == (
        "7-1-2",
        ("cid=9", "trans"),
        10,
    )
    assert (transaction.queries, transaction.thread_ids) == (("SAVEPOINT `a`",), (5,))
    (change,) = transaction.changes
    assert (change.table, change.kind, change.statement) == (
        "feedshop.blobs",
        "UPDATE",
        "UPDATE t SET s='x',\nn = -2 WHERE id=1",
    )
    assert change.before == {
        "id": 1,
        "data": b"a'b\\c,d\ne\x00",
        "amount": Decimal("1.50"),
        "version": None,
    }
    assert change.after == {"id": 1, "data": b"x", "amount": Decimal("-0.50"), "version": -2}
    assert change.printed_after is not None
    assert change.printed_after["version"] == "-2 (4294967294)"
