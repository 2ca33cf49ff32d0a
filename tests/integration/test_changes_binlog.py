"""The change feed's proof: the audit log, shipped as Lambda would get it, through a fresh
``ChangeFeed`` per invocation with failures and redeliveries, held against the binlog.

A private server (server_audit and a ROW binlog) runs the seeded concurrent workload; the
binlog is first checked against the workload's own record (:mod:`oracle`). Then the audit
log goes through ``handle_kinesis_event`` one Lambda event at a time, into a new feed
whose state is in a SQLite file or in a database; a handler fails now and then, and Lambda
redelivers from the record it names, and sometimes a whole event comes twice. Per source
connection, against the binlog:

- nothing missed: each row change of a committed transaction is covered by a key of the
  delivered transaction that holds its statement, or by a ``keys=None`` change of its table;
- nothing invented: each delivered change is a statement that succeeded, was not undone
  by a rollback to a savepoint, in a transaction that committed;
- exactly once: each committed transaction that wrote is delivered under one key, and no
  key is delivered twice in the end state;
- exact values: what an INSERT's rows and an UPDATE's assignments read from the text is
  what the binlog's row images hold (quotes, backslashes, NUL, newlines, non-ASCII text,
  bytes, decimals).

The figures are printed, and shown in the test summary.
"""

from __future__ import annotations

import os
import random
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from binlog import BinlogTransaction, RowChange, Value, normalize_statement
from oracle import KEYS, Observation, observe
from private_mariadb import PrivateMariaDB

from auditsync import Pipeline
from auditsync.aws import handle_kinesis_event
from auditsync.changes import Change, ChangeFeed, Transaction
from auditsync.sinks import MemorySink

server = pytest.mark.mariadb(private=True)
#: Another seed, another workload: ``AUDITSYNC_FEED_SEED=7 pytest tests/integration/…``.
SEED = int(os.environ.get("AUDITSYNC_FEED_SEED", "20261214"))
#: A handler fails on about one transaction in this many.
FAILURE_ODDS = 12


@pytest.fixture(scope="module")
def run(private_server: PrivateMariaDB) -> Observation:
    observation = observe(private_server, SEED)
    assert not observation.problems(), observation.problems()
    return observation


class Failing(Exception):
    """The injected failure of a handler."""


class Consumer:
    """The handler of every invocation's feed: fails at random, keeps what it took."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.delivered: dict[str, Transaction] = {}
        self.calls = 0
        self.failures = 0
        self.again: Counter[str] = Counter()

    def __call__(self, transaction: Transaction) -> None:
        self.calls += 1
        if self.rng.randrange(FAILURE_ODDS) == 0:
            self.failures += 1
            raise Failing(f"injected failure on {transaction.key}")
        if transaction.key in self.delivered:
            self.again[transaction.key] += 1
        self.delivered[transaction.key] = transaction


def feed_through_lambda(
    run: Observation, state: Callable[[], Any], seed: int
) -> tuple[Consumer, dict[str, int]]:
    """Every Kinesis event through a fresh feed and pipeline, retried as Lambda does."""
    consumer = Consumer(seed)
    rng = random.Random(seed)
    letters = MemorySink()
    figures: Counter[str] = Counter()
    for event in run.kinesis_events(seed=seed):
        pending: dict[str, Any] | None = event
        while pending is not None:
            figures["invocations"] += 1
            feed = ChangeFeed(
                consumer, state=state(), keys=KEYS, query_log_limit=run.query_log_limit
            )
            response = handle_kinesis_event(pending, Pipeline(feed, dead_letter=letters))
            feed.close()
            failures = response["batchItemFailures"]
            if failures:
                figures["handler failures reported"] += 1
                first = failures[0]["itemIdentifier"]
                records = pending["Records"]
                numbers = [record["kinesis"]["sequenceNumber"] for record in records]
                pending = {"Records": records[numbers.index(first) :]}
            elif rng.randrange(6) == 0:
                figures["whole events delivered twice"] += 1
                again = ChangeFeed(
                    consumer, state=state(), keys=KEYS, query_log_limit=run.query_log_limit
                )
                assert handle_kinesis_event(pending, Pipeline(again)) == {"batchItemFailures": []}
                again.close()
                pending = None
            else:
                pending = None
    figures["dead letters"] = len(letters.items)
    return consumer, dict(figures)


def collated(value: Value) -> Value:
    """A key as the server compares it: utf8mb4_general_ci folds case and accents, and
    PAD SPACE ignores trailing spaces."""
    if not isinstance(value, str):
        return value
    stripped = "".join(
        c for c in unicodedata.normalize("NFKD", value) if not unicodedata.combining(c)
    )
    return stripped.casefold().rstrip(" ")


def covers(change: Change, row: RowChange) -> bool:
    if change.table != row.table:
        return False
    if change.keys is None:
        return True
    columns = KEYS[row.table]
    keys = {tuple(collated(v) for v in key) for key in change.keys}
    images = [
        row.key(columns, image)
        for image, values in (("before", row.before), ("after", row.after))
        if values is not None
    ]
    return all(tuple(collated(v) for v in image) in keys for image in images if image)


def same_statement(change: Change, text: str) -> bool:
    """Whether a change is of the binlog's statement ``text``: the same text, or, for a
    statement the log cut (which decides nothing), the start of it."""
    logged = normalize_statement(change.event.object)
    if logged == text:
        return True
    undecided = change.rows is None and change.where is None and change.keys is None
    return undecided and text.startswith(logged.rstrip("\\"))


def stored_as(value: Value, stored: Value) -> bool:
    """Whether a literal's value is what the column stores: numbers by value (``5`` in a
    DECIMAL column is ``5.00``), text in a binary column as its UTF-8 bytes."""
    if isinstance(stored, bytes) and isinstance(value, str):
        return stored == value.encode("utf-8", "surrogateescape")
    return stored == value and isinstance(stored, str) == isinstance(value, str)


def values_agree(delivered: Transaction, binlogged: BinlogTransaction) -> tuple[int, list[str]]:
    """The values a change read from its statement against the rows the binlog holds:
    an INSERT's rows (in order) and an UPDATE's literal assignments. How many compared."""
    compared = 0
    problems: list[str] = []
    unused = list(delivered.changes)
    for text, rows in binlogged.statements():
        # In order: the binlog's statements are those of the transaction that left rows.
        # A statement the log cut is a prefix of the binlog's text.
        change = next(
            (c for c in unused if c.table == rows[0].table and same_statement(c, text)),
            None,
        )
        if change is None:
            problems.append(f"{delivered.key}: no change of {text[:60]!r}")
            continue
        del unused[: unused.index(change) + 1]
        pairs: list[tuple[RowChange, dict[str, Value]]] = []
        if change.rows is not None and all(row.kind == "INSERT" for row in rows):
            if len(change.rows) == len(rows):
                pairs = [(row, dict(given)) for row, given in zip(rows, change.rows, strict=True)]
        elif change.assignments:
            pairs = [(row, dict(change.assignments)) for row in rows if row.kind == "UPDATE"]
        for row, given in pairs:
            after = row.after or {}
            for column, value in given.items():
                compared += 1
                if not stored_as(value, after.get(column)):
                    problems.append(
                        f"{delivered.key}: {row.table}.{column} read {value!r},"
                        f" the binlog has {after.get(column)!r}"
                    )
    return compared, problems


def check(run: Observation, consumer: Consumer) -> dict[str, Any]:
    """The three properties, per connection; the figures of the run."""
    logged = run.logged()
    owner: dict[int, str] = {}  # record transaction (by id) -> the delivered key holding it
    problems: list[str] = []
    changes = keyed = 0
    for key, transaction in consumer.delivered.items():
        for change in transaction.changes:
            changes += 1
            keyed += change.keys is not None
            entry = logged.get((change.event.connection_id, change.event.query_id))
            if entry is None:
                problems.append(f"{key}: invented: {change.event.object[:80]!r} is no statement")
                continue
            if not entry.transaction.committed or not entry.statement.effective:
                problems.append(
                    f"{key}: invented: {change.event.object[:80]!r} did not stay"
                    f" ({entry.transaction.outcome}, error {entry.statement.error},"
                    f" undone {entry.statement.undone})"
                )
            previous = owner.setdefault(id(entry.transaction), key)
            if previous != key:
                problems.append(f"{key} and {previous}: one transaction delivered twice")
    missed_rows = covered_rows = values_compared = 0
    for recorded, binlogged in run.matched():
        holder = owner.get(id(recorded))
        delivered = consumer.delivered.get(holder) if holder is not None else None
        if delivered is None:
            problems.append(
                f"connection {recorded.connection_id}: missed a committed transaction"
                f" of {len(binlogged.changes)} row change(s): {binlogged.changes[0].statement!r}"
            )
            missed_rows += len(binlogged.changes)
            continue
        compared, wrong = values_agree(delivered, binlogged)
        values_compared += compared
        problems += wrong
        for row in binlogged.changes:
            if any(covers(change, row) for change in delivered.changes):
                covered_rows += 1
            else:
                missed_rows += 1
                problems.append(
                    f"connection {recorded.connection_id}: row {row.kind} {row.table}"
                    f" {row.before or ''} -> {row.after or ''} not covered by {delivered.key}"
                )
    for session in run.record.sessions:
        for recorded in session.transactions:
            wrote = [s for s in recorded.statements if s.write and s.effective]
            if recorded.committed and wrote and id(recorded) not in owner:
                problems.append(
                    f"connection {session.connection_id}: committed transaction of"
                    f" {wrote[0].sql[:60]!r} not delivered"
                )
    assert not problems, "\n".join(problems[:30])
    record = run.record.figures()
    return {
        "transactions committed with writes (record)": record["committed with writes"],
        "transactions rolled back with writes (record)": record["rolled back with writes"],
        "binlog transactions held against the feed": len(run.matched()),
        "binlog row changes covered": covered_rows,
        "values read from statements, equal to the binlog's": values_compared,
        "transactions delivered (by key)": len(consumer.delivered),
        "changes delivered": changes,
        "changes with decided keys": f"{keyed} ({keyed / max(changes, 1):.0%})",
        "handler calls": consumer.calls,
        "injected handler failures": consumer.failures,
        "transactions offered again after being taken": sum(consumer.again.values()),
    }


def show(title: str, figures: dict[str, Any]) -> None:
    print(f"\n{title}:")
    for name, value in figures.items():
        print(f"  {name}: {value}")


@pytest.fixture(params=["sqlite file", "mariadb"])
def state(
    request: pytest.FixtureRequest, tmp_path: Path, private_server: PrivateMariaDB
) -> Iterator[Callable[[], Any]]:
    """A new process's view of the state, for each invocation: a path, or a connection
    factory to a database of the private server's."""
    if request.param == "sqlite file":
        path = tmp_path / "feed.sqlite"
        yield lambda: path
        return
    private_server.execute("CREATE DATABASE IF NOT EXISTS auditsync_feed_state")
    yield lambda: lambda: private_server.connect(database="auditsync_feed_state", autocommit=False)
    private_server.execute("DROP DATABASE auditsync_feed_state")


@server
def test_the_feed_delivers_what_the_binlog_committed(
    run: Observation, state: Callable[[], Any], request: pytest.FixtureRequest
) -> None:
    consumer, figures = feed_through_lambda(run, state, SEED)
    results = check(run, consumer)
    show(f"change feed against the binlog ({request.node.callspec.id})", {**results, **figures})
    assert figures["dead letters"] == 0
    assert consumer.failures
    assert figures["whole events delivered twice"]
    assert results["transactions offered again after being taken"] == 0
