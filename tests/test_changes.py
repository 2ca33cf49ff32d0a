"""The change feed: literals read as the server reads them, what decides keys, the
transactions the machine lets through, delivery across failures and processes, the
router, the state stores and the Lambda adapters."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import auditsync
from auditsync import AuditEvent, Dialect, LogEvent, Pipeline, SubscriptionMessage
from auditsync.aws import handle_kinesis_event
from auditsync.changes import (
    Change,
    ChangeFeed,
    FeedFormatError,
    HandlerError,
    Transaction,
    transaction_to_dict,
)
from auditsync.sinks import MemorySink, Refused
from auditsync.sql._lexer import Lexed
from auditsync.sql._values import (
    NOT_LITERAL,
    assignments,
    insert_shape,
    literal,
    where_pins,
)
from auditsync.testing import kinesis_event, to_payload

# --- events -------------------------------------------------------------------------------------

_query_ids = itertools.count(1000)
_event_ids = itertools.count(1)


def event(
    text: str = "",
    *,
    connection: int = 1,
    operation: str = "QUERY",
    retcode: int = 0,
    database: str = "shop",
    truncated: bool = False,
) -> AuditEvent:
    """A record as the server writes it, with a CloudWatch event id (its key)."""
    from auditsync import Origin

    return AuditEvent(
        timestamp=datetime(2024, 1, 31, 14, 2, 7, tzinfo=UTC),
        serverhost="db1",
        username="app",
        host="10.0.0.7",
        connection_id=connection,
        query_id=next(_query_ids) if operation == "QUERY" else 0,
        operation=operation,
        database=database,
        object=text,
        retcode=retcode,
        truncated=truncated,
        dialect=Dialect.MARIADB,
        origin=Origin(event_id=f"{next(_event_ids):056d}"),
    )


def queries(*texts: str, connection: int = 1) -> list[AuditEvent]:
    return [event(text, connection=connection) for text in texts]


class Collect:
    def __init__(self) -> None:
        self.transactions: list[Transaction] = []

    def __call__(self, transaction: Transaction) -> None:
        self.transactions.append(transaction)

    def changes(self) -> list[Change]:
        return [change for t in self.transactions for change in t.changes]


def feed_of(*texts: str, keys: dict[str, tuple[str, ...]] | None = None, **options: Any) -> Collect:
    collect = Collect()
    ChangeFeed(collect, keys=keys or {"shop.*": ("id",)}, **options).write(queries(*texts))
    return collect


def one_change(text: str, **options: Any) -> Change:
    (change,) = feed_of(text, **options).changes()
    return change


# --- literals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        ("-7", -7),
        ("- 7", -7),
        ("+3", 3),
        ("1.50", Decimal("1.50")),
        (".5", Decimal("0.5")),
        ("-0.25", Decimal("-0.25")),
        ("1e3", 1000.0),
        ("NULL", None),
        ("null", None),
        ("TRUE", 1),
        ("false", 0),
        ("'plain'", "plain"),
        ("'it\\'s'", "it's"),
        ("'it''s'", "it's"),
        ('"say ""hi"""', 'say "hi"'),
        ("'back\\\\slash'", "back\\slash"),
        ("'new\\nline'", "new\nline"),
        ("'nul\\0byte'", "nul\x00byte"),
        ("'tab\\tcr\\rbs\\bz\\Z'", "tab\tcr\rbs\bz\x1a"),
        ("'100\\%'", "100\\%"),
        ("'a\\_b'", "a\\_b"),
        ("'\\q'", "q"),
        ("'a,b'", "a,b"),
        ("'日本語'", "日本語"),
        ("_utf8mb4'x\\'y'", "x'y"),
        ("N'national'", "national"),
        ("'a' 'b' \"c\"", "abc"),
        ("'x' COLLATE utf8mb4_bin", "x"),
        ("_binary'AB'", b"AB"),
        ("X'4142'", b"AB"),
        ("x''", b""),
        ("0x4142", b"AB"),
        ("b'0100000101000010'", b"AB"),
        ("0b101", b"\x05"),
        ("/* why */ 5 -- note\n", 5),
    ],
)
def test_a_literal_reads_as_the_server_reads_it(text: str, value: object) -> None:
    read = literal(text)
    assert read == value
    assert type(read) is type(value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "NOW()",
        "id + 1",
        "col",
        "DEFAULT",
        "@v",
        "?",
        "'unclosed",
        "X'414'",
        "-NULL",
        "-'5'",
        "1 2",
        "'a' b",
        "(1)",
        "/*!50001 5 */",
        "_latin1",
    ],
)
def test_what_is_not_one_literal_decides_nothing(text: str) -> None:
    assert literal(text) is NOT_LITERAL


@given(st.text())
def test_arbitrary_text_never_raises(text: str) -> None:
    literal(text)
    lexed = Lexed.of(text)
    where_pins(lexed)
    insert_shape(lexed)
    assignments(lexed)
    for statement in (
        f"UPDATE t SET a = {text} WHERE id = {text}",
        f"INSERT INTO t (a) VALUES ({text})",
    ):
        lexed = Lexed.of(statement)
        where_pins(lexed)
        insert_shape(lexed)
        assignments(lexed)


def server_string(text: str, style: str) -> str:
    """``text`` as a client writes it: escaped with backslashes (pymysql), with doubled
    quotes, in double quotes, with an introducer, or cut in two adjacent strings."""
    if style == "doubled":
        return "'" + text.replace("'", "''").replace("\\", "\\\\") + "'"
    if style == "double quotes":
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    escaped = (
        text.replace("\\", "\\\\")
        .replace("\0", "\\0")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\x1a", "\\Z")
        .replace("'", "\\'")
    )
    if style == "introducer":
        return f"_utf8mb4'{escaped}'"
    if style == "adjacent":
        half = len(escaped) // 2
        while (
            half
            and escaped[half - 1] == "\\"
            and escaped[:half].endswith("\\")
            and (len(escaped[:half]) - len(escaped[:half].rstrip("\\"))) % 2
        ):
            half -= 1
        return f"'{escaped[:half]}' '{escaped[half:]}'"
    return f"'{escaped}'"


values = st.one_of(
    st.none(),
    st.integers(),
    st.decimals(allow_nan=False, allow_infinity=False).filter(lambda d: "E" not in str(d)),
    st.text(),
    st.binary(),
)


def sql_literal(value: object, style: str) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"X'{value.hex()}'" if style != "0x" or not value else f"0x{value.hex()}"
    if isinstance(value, str):
        return server_string(value, style)
    if isinstance(value, Decimal):
        text = format(value, "f")
        return text if "." in text else text + ".0"  # without a point it is an integer
    return str(value)


@given(
    values,
    st.sampled_from(["backslash", "doubled", "double quotes", "introducer", "adjacent", "0x"]),
)
def test_values_written_as_literals_read_back(value: object, style: str) -> None:
    text = sql_literal(value, style)
    read = literal(text)
    assert read == value, text
    assert type(read) is type(value)
    lexed = Lexed.of(f"INSERT INTO t (a, b) VALUES (1, {text})")
    shape = insert_shape(lexed)
    assert shape is not None
    assert shape.spans is not None
    (_, (start, end)) = shape.spans[0]
    assert literal(lexed.text[start:end]) == value


def test_long_hostile_statements_take_time_linear_in_their_length() -> None:
    import time

    where = " AND ".join(f"c{n} IN ({n}, {n + 1})" for n in range(20_000))
    long_name = "x" * 200_000
    started = time.perf_counter()
    assert len(where_pins(Lexed.of(f"DELETE FROM t WHERE {where}")) or {}) == 20_000
    assert one_change(f"INSERT INTO orders (id) VALUES (1), ({long_name}").keys is None
    with pytest.raises(Refused, match="truncated"):
        ChangeFeed(None).write([event(f"INSERT INTO {long_name}", truncated=True)])
    assert time.perf_counter() - started < 10


# --- what a statement's text decides ------------------------------------------------------------


def test_insert_rows_and_keys() -> None:
    change = one_change("INSERT INTO orders (ID, note) VALUES (1, 'a,b'), (2, NULL)")
    assert (change.table, change.operation) == ("shop.orders", "INSERT")
    assert change.rows == ({"id": 1, "note": "a,b"}, {"id": 2, "note": None})
    assert change.keys == ((1,), (2,))
    assert (change.where, change.assignments) == (None, None)


def test_insert_set_is_a_row_too() -> None:
    change = one_change("INSERT INTO orders SET id = 5, note = 'x'")
    assert change.rows == ({"id": 5, "note": "x"},)
    assert change.keys == ((5,),)


def test_a_value_that_is_no_literal_is_left_out_of_its_row() -> None:
    change = one_change("INSERT INTO orders (id, at) VALUES (3, NOW())")
    assert change.rows == ({"id": 3},)
    assert change.keys == ((3,),)


@pytest.mark.parametrize(
    "text",
    [
        "INSERT INTO orders (id, note) VALUES (NULL, 'auto')",
        "INSERT INTO orders (id, note) VALUES (0, 'auto')",
        "INSERT INTO orders (id, note) VALUES (DEFAULT, 'auto')",
        "INSERT INTO orders (note) VALUES ('auto')",
        "INSERT INTO orders (id, note) VALUES (1, 'a'), (NULL, 'b')",
        "INSERT INTO orders VALUES (1, 'positional')",
        "INSERT INTO orders (id) SELECT id FROM drafts",
        "INSERT INTO orders (id, n) VALUES (1, 1) ON DUPLICATE KEY UPDATE id = id + 1",
    ],
)
def test_an_insert_that_leaves_a_key_to_the_server_has_no_keys(text: str) -> None:
    change = one_change(text)
    assert change.keys is None


def test_upsert_keys_when_the_update_leaves_the_key_alone() -> None:
    change = one_change(
        "INSERT INTO counters (id, n) VALUES (7, 1) ON DUPLICATE KEY UPDATE n = n + 1"
    )
    assert change.keys == ((7,),)


def test_update_where_assignments_and_keys() -> None:
    change = one_change("UPDATE orders SET note = 'x', n = n + 1 WHERE Id IN (1, 2) AND n > 3")
    assert change.where == {"id": (1, 2)}
    assert change.assignments == {"note": "x"}
    assert change.keys == ((1,), (2,))


def test_an_update_of_the_key_gives_old_and_new() -> None:
    change = one_change("UPDATE orders SET id = 10 WHERE id = 1")
    assert change.keys == ((1,), (10,))


@pytest.mark.parametrize(
    "text",
    [
        "UPDATE orders SET id = id + 1000 WHERE id = 1",
        "UPDATE orders SET id = NULL WHERE id = 1",
        "UPDATE orders SET note = 'x' WHERE id = 1 OR id = 2",
        "UPDATE orders SET note = 'x' WHERE id > 5",
        "UPDATE orders SET note = 'x' WHERE id = 1 + 1",
        "UPDATE orders SET note = 'x'",
        "DELETE FROM orders WHERE id = 1 || id = 2",
        "DELETE FROM orders WHERE note = 'x'",
        "DELETE FROM orders",
        "UPDATE orders JOIN items ON items.order_id = orders.id SET orders.note = 'x'"
        " WHERE orders.id = 1",
        "DELETE orders FROM orders JOIN items ON items.order_id = orders.id WHERE orders.id = 1",
        "UPDATE orders SET note = 'x' WHERE x BETWEEN 1 AND id = 5",
    ],
)
def test_what_does_not_pin_every_key_column_decides_no_keys(text: str) -> None:
    for change in feed_of(text).changes():
        assert change.keys is None


def test_other_conjuncts_only_narrow_and_the_keys_stay_decided() -> None:
    change = one_change(
        "DELETE FROM orders WHERE (note = 'a' OR note = 'b') AND id = 4 AND x BETWEEN 1 AND 9"
    )
    assert change.where == {"id": (4,)}
    assert change.keys == ((4,),)


def test_composite_keys_and_null_never_make_a_key() -> None:
    keys = {"shop.tags": ("doc", "tag")}
    change = one_change("DELETE FROM tags WHERE doc IN (1, 2) AND tag IN ('a', NULL)", keys=keys)
    assert change.where == {"doc": (1, 2), "tag": ("a", None)}
    assert change.keys == ((1, "a"), (2, "a"))
    change = one_change("DELETE FROM tags WHERE doc = 1 AND tag = NULL", keys=keys)
    assert change.keys == ()
    change = one_change("INSERT INTO tags (doc, tag) VALUES (1, NULL)", keys=keys)
    assert change.keys is None


def test_keys_are_the_literals_as_written() -> None:
    """Comparing them under the column's collation is the consumer's business."""
    change = one_change("UPDATE tags SET n = 1 WHERE `TAG` = 'NORTH'", keys={"shop.tags": ("tag",)})
    assert change.keys == (("NORTH",),)


def test_a_truncated_statement_decides_nothing() -> None:
    collect = Collect()
    feed = ChangeFeed(collect, keys={"shop.*": ("id",)}, query_log_limit=40)
    marked = event("INSERT INTO orders (id) VALUES (1), (2", truncated=True)
    long = event("INSERT INTO orders (id, note) VALUES (1, 'abcdefghij')")
    cut = event("INSERT INTO orders (id, note) VALUES (1, 'abc")
    feed.write([marked, long, cut])
    assert [(c.table, c.keys, c.rows) for c in collect.changes()] == [
        ("shop.orders", None, None)
    ] * 3


def test_a_statement_cut_before_its_table_is_refused_with_the_reason() -> None:
    events = [event("INSERT INTO `orders", truncated=True)]
    with pytest.raises(Refused) as refused:
        ChangeFeed(None).write(events)
    assert refused.value.reasons[events[0].key].startswith("truncated:")


def test_the_feed_is_a_sink() -> None:
    from auditsync.sinks import Sink

    assert isinstance(ChangeFeed(None), Sink)


def test_a_write_whose_table_is_unknown_is_refused() -> None:
    collect = Collect()
    events = [event("INSERT INTO orders VALUES (1)", database=""), event("COMMIT")]
    with pytest.raises(Refused) as refused:
        ChangeFeed(collect).write(events)
    assert refused.value.reasons[events[0].key].startswith("table unknown:")
    assert collect.transactions == []


def test_a_statement_that_writes_several_tables_gives_a_change_each() -> None:
    changes = feed_of(
        "UPDATE orders, items SET orders.n = 1, items.n = 2 WHERE orders.id = 1"
    ).changes()
    assert [(c.table, c.keys) for c in changes] == [("shop.orders", None), ("shop.items", None)]


def test_truncate_and_ddl_when_asked_for() -> None:
    changes = feed_of("TRUNCATE orders", "ALTER TABLE orders ADD c INT").changes()
    assert [(c.operation, c.keys) for c in changes] == [("TRUNCATE", None)]
    changes = feed_of("ALTER TABLE orders ADD c INT", ddl=True).changes()
    assert [c.operation for c in changes] == ["ALTER_TABLE"]


# --- what reaches the handler -------------------------------------------------------------------


def test_only_committed_transactions_reach_the_handler() -> None:
    collect = feed_of(
        "BEGIN",
        "INSERT INTO orders (id) VALUES (1)",
        "ROLLBACK",
        "INSERT INTO orders (id) VALUES (2)",  # autocommitted
        "START TRANSACTION",
        "INSERT INTO orders (id) VALUES (3)",
        "SAVEPOINT s",
        "INSERT INTO orders (id) VALUES (4)",
        "ROLLBACK TO SAVEPOINT s",
        "SELECT * FROM orders",
        "COMMIT",
    )
    assert [[c.keys for c in t.changes] for t in collect.transactions] == [[((2,),)], [((3,),)]]
    assert [e.object for e in collect.transactions[1].events] == [
        "INSERT INTO orders (id) VALUES (3)",
        "COMMIT",
    ]


def test_failed_statements_never_reach_the_handler() -> None:
    collect = Collect()
    feed = ChangeFeed(collect)
    feed.write(
        [
            event("BEGIN"),
            event("INSERT INTO orders (id) VALUES (1)", retcode=1062),
            event("INSERT INTO orders (id) VALUES (2)"),
            event("COMMIT"),
        ]
    )
    assert [c.rows for c in collect.changes()] == [({"id": 2},)]


def test_an_implicit_commit_delivers_what_was_held() -> None:
    collect = feed_of(
        "SET autocommit = 0", "INSERT INTO orders (id) VALUES (1)", "CREATE TABLE t2 (a INT)"
    )
    assert [c.rows for c in collect.changes()] == [({"id": 1},)]
    collect = feed_of(
        "SET autocommit = 0", "INSERT INTO orders (id) VALUES (1)", "SET autocommit = 1"
    )
    assert len(collect.transactions) == 1


def test_disconnect_and_deadlock_roll_back() -> None:
    collect = Collect()
    feed = ChangeFeed(collect)
    feed.write(
        [
            event("BEGIN"),
            event("INSERT INTO orders (id) VALUES (1)"),
            event(operation="DISCONNECT"),
            event("BEGIN", connection=2),
            event("UPDATE orders SET n = 1 WHERE id = 2", connection=2),
            event("UPDATE counters SET n = 1 WHERE id = 3", connection=2, retcode=1213),
            event("INSERT INTO orders (id) VALUES (5)", connection=2),  # autocommitted now
        ]
    )
    assert [c.rows for c in collect.changes()] == [({"id": 5},)]
    assert feed.stats.rolled_back == 2


def test_transactions_come_in_the_order_of_their_commits() -> None:
    collect = Collect()
    ChangeFeed(collect).write(
        [
            event("BEGIN", connection=1),
            event("INSERT INTO orders (id) VALUES (1)", connection=1),
            event("INSERT INTO orders (id) VALUES (2)", connection=2),
            event("COMMIT", connection=1),
        ]
    )
    assert [t.connection_id for t in collect.transactions] == [2, 1]


def test_an_aurora_batch_is_put_in_time_order() -> None:
    import attrs

    begin, insert, commit = (
        attrs.evolve(e, dialect=Dialect.AURORA, timestamp=e.timestamp.replace(microsecond=n))
        for n, e in enumerate(queries("BEGIN", "INSERT INTO orders (id) VALUES (1)", "COMMIT"))
    )
    collect = Collect()
    ChangeFeed(collect).write([commit, begin, insert])
    assert [c.rows for c in collect.changes()] == [({"id": 1},)]
    arrival = Collect()
    ChangeFeed(arrival, order="arrival").write([commit, begin, insert])
    assert arrival.transactions == []
    with pytest.raises(ValueError, match="order must be"):
        ChangeFeed(None, order="query id")  # type: ignore[arg-type]


def test_tables_and_databases_select_what_is_followed() -> None:
    collect = feed_of(
        "INSERT INTO orders (id) VALUES (1)",
        "INSERT INTO other.t (id) VALUES (2)",
        "INSERT INTO mysql.user (id) VALUES (3)",
        tables=["shop.ord*", "other.*"],
        databases="shop",
    )
    assert [c.table for c in collect.changes()] == ["shop.orders"]


def test_the_json_form() -> None:
    (transaction,) = feed_of("INSERT INTO orders (id, d, b) VALUES (1, 1.50, X'00ff')").transactions
    document = json.loads(json.dumps(transaction_to_dict(transaction)))
    change = document["changes"][0]
    assert change["rows"] == [{"id": 1, "d": {"decimal": "1.50"}, "b": {"base64": "AP8="}}]
    assert change["keys"] == [[1]]
    assert document["committed_at"] == "2024-01-31T14:02:07.000000Z"
    assert document["events"][0]["object"].startswith("INSERT")


# --- delivery -----------------------------------------------------------------------------------


def test_a_redelivered_batch_is_not_handed_again() -> None:
    collect = Collect()
    feed = ChangeFeed(collect)
    events = queries("BEGIN", "INSERT INTO orders (id) VALUES (1)", "COMMIT")
    feed.write(events)
    feed.write(events)
    assert len(collect.transactions) == 1
    assert feed.stats.duplicates == 3


def test_a_handler_that_raises_makes_write_raise_and_the_transaction_comes_again() -> None:
    offered: list[str] = []

    def handler(transaction: Transaction) -> None:
        offered.append(transaction.key)
        if len(offered) == 2:
            raise ConnectionError("the cache is down")

    feed = ChangeFeed(handler)
    events = queries(
        "INSERT INTO orders (id) VALUES (1)",
        "BEGIN",
        "INSERT INTO orders (id) VALUES (2)",
        "COMMIT",
        "INSERT INTO orders (id) VALUES (3)",
    )
    with pytest.raises(HandlerError) as failed:
        feed.write(events)
    assert isinstance(failed.value.__cause__, ConnectionError)
    assert failed.value.transaction.key == events[3].key
    feed.write(events)  # Lambda redelivers from the first record not delivered
    assert offered == [events[0].key, events[3].key, events[3].key, events[4].key]


def test_the_lambda_adapter_reports_a_handler_failure_and_dead_letters_poison() -> None:
    calls: list[str] = []

    def handler(transaction: Transaction) -> None:
        calls.append(transaction.key)
        if len(calls) == 1:
            raise TimeoutError("downstream")

    def message(first: int, *texts: str) -> str:
        lines = [
            f"20240131 14:02:07,db1,app,10.0.0.7,42,{first + n},QUERY,shop,'{text}',0"
            for n, text in enumerate(texts)
        ]
        events = tuple(LogEvent(str(first + n), 0, line) for n, line in enumerate(lines))
        return to_payload(SubscriptionMessage("DATA_MESSAGE", "1", "g", "s", ("f",), events))

    lambda_event = kinesis_event(
        [
            message(1, "BEGIN", "INSERT INTO orders (id) VALUES (1)"),
            message(3, "COMMIT"),
            "poison: not base64!",
        ]
    )
    letters = MemorySink()
    feed = ChangeFeed(handler)
    response = handle_kinesis_event(lambda_event, Pipeline(feed, dead_letter=letters))
    first = lambda_event["Records"][0]["kinesis"]["sequenceNumber"]
    assert response == {"batchItemFailures": [{"itemIdentifier": first}]}
    response = handle_kinesis_event(lambda_event, Pipeline(feed, dead_letter=letters))
    assert response == {"batchItemFailures": []}
    assert calls == ["3", "3"]
    assert [letter.stage for letter in letters.items] == ["payload"]


# --- state between invocations ------------------------------------------------------------------

_SECOND_PROCESS = """
import json, sys
from auditsync import parse_line
from auditsync.changes import ChangeFeed, transaction_to_dict

got = []
feed = ChangeFeed(got.append, state=sys.argv[1], keys={"shop.orders": ("id",)})
feed.write([parse_line(line) for line in sys.argv[2:]])
feed.close()
print(json.dumps([transaction_to_dict(t) for t in got]))
"""


def test_a_transaction_begun_in_one_process_is_delivered_whole_by_another(tmp_path: Path) -> None:
    state = tmp_path / "feed.sqlite"
    first = [
        "20240131 14:02:07,db1,app,10.0.0.7,42,1,QUERY,shop,'BEGIN',0",
        "20240131 14:02:07,db1,app,10.0.0.7,42,2,QUERY,shop,'INSERT INTO orders (id) VALUES (1)',0",
        "20240131 14:02:07,db1,app,10.0.0.7,42,3,QUERY,shop,'SAVEPOINT s',0",
    ]
    second = [
        "20240131 14:02:08,db1,app,10.0.0.7,42,4,QUERY,shop,"
        "'UPDATE orders SET id = 2 WHERE id = 1',0",
        "20240131 14:02:08,db1,app,10.0.0.7,42,5,QUERY,shop,'INSERT INTO orders (id) VALUES (9)',0",
        "20240131 14:02:08,db1,app,10.0.0.7,42,6,QUERY,shop,'ROLLBACK TO s',0",
        "20240131 14:02:09,db1,app,10.0.0.7,42,7,QUERY,shop,'COMMIT',0",
    ]
    # The auditsync this test imported, whether the source tree or an installed one.
    environment = {**os.environ, "PYTHONPATH": str(Path(auditsync.__file__).parent.parent)}

    def process(lines: list[str]) -> list[dict[str, Any]]:
        done = subprocess.run(
            [sys.executable, "-c", _SECOND_PROCESS, str(state), *lines],
            capture_output=True,
            text=True,
            check=True,
            env=environment,
        )
        result: list[dict[str, Any]] = json.loads(done.stdout)
        return result

    assert process(first) == []
    (transaction,) = process(second)
    assert [change["keys"] for change in transaction["changes"]] == [[[1]]]
    assert [e["query_id"] for e in transaction["events"]] == [2, 7]
    assert process(first + second) == []  # all of it again: nothing twice


@pytest.fixture
def postgres_state(postgres_dsn: str) -> Iterator[Any]:
    import psycopg

    schema = f"feed_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield lambda: psycopg.connect(postgres_dsn, options=f"-c search_path={schema}")
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def mariadb_state() -> Iterator[Any]:
    import pymysql

    settings: dict[str, Any] = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
    try:
        admin = pymysql.connect(**settings, autocommit=True, connect_timeout=3)
    except pymysql.Error as error:
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"MariaDB not reachable: {error}", pytrace=False)
        pytest.skip(f"MariaDB not reachable at 127.0.0.1:3306: {error}")
    database = f"auditsync_feed_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {database}")
    try:
        yield lambda: pymysql.connect(**settings, database=database, charset="utf8mb4")
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE {database}")
        admin.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "mariadb"])
def test_state_in_a_database_carries_a_transaction_across_feeds(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "sqlite":
        path = tmp_path / "state.sqlite"

        def state() -> Any:
            return path

    else:
        factory = request.getfixturevalue(f"{kind}_state")

        def state() -> Any:
            return factory

    collect = Collect()
    events = queries(
        "BEGIN",
        "INSERT INTO orders (id, note) VALUES (1, 'it\\'s'), (2, X'00')",
        "INSERT INTO orders (id) VALUES (3)",
        "COMMIT",
        "INSERT INTO orders (id) VALUES (4)",
    )
    with ChangeFeed(collect, state=state(), keys={"shop.orders": ("id",)}) as feed:
        feed.write(events[:2])
    with ChangeFeed(collect, state=state(), keys={"shop.orders": ("id",)}) as feed:
        feed.write(events[1:])  # the INSERT again: a redelivery
        assert feed.stats.resumed == 1
    with ChangeFeed(collect, state=state(), keys={"shop.orders": ("id",)}) as feed:
        feed.write(events)
        assert feed.stats.duplicates == len(events)
        assert feed.prune(datetime(2100, 1, 1, tzinfo=UTC)) == len(events)
    assert [[c.keys for c in t.changes] for t in collect.transactions] == [
        [((1,), (2,)), ((3,),)],
        [((4,),)],
    ]
    assert collect.transactions[0].changes[0].rows == (
        {"id": 1, "note": "it's"},
        {"id": 2, "note": b"\x00"},
    )


def test_a_connection_that_autocommits_cannot_keep_the_state(tmp_path: Path) -> None:
    import sqlite3

    connection = sqlite3.connect(tmp_path / "state.sqlite", isolation_level=None)
    with pytest.raises(ValueError, match="does not autocommit"):
        ChangeFeed(None, state=connection)


def test_a_stored_write_of_another_format_is_an_error(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "state.sqlite"
    ChangeFeed(None, state=path).write(queries("BEGIN", "INSERT INTO orders (id) VALUES (1)"))
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE auditsync_feed_held SET body = '{\"format\": 99}'")
    with pytest.raises(FeedFormatError, match="format 99"):
        ChangeFeed(None, state=path).write(queries("COMMIT"))


# --- the router ---------------------------------------------------------------------------------


def test_routes_by_table_glob_and_operation() -> None:
    feed = ChangeFeed(None)
    seen: list[tuple[str, str, str]] = []

    @feed.on("shop.orders", "INSERT", "update")
    def orders(change: Change, transaction: Transaction) -> None:
        seen.append(("orders", change.operation, transaction.key))

    @feed.on("shop.*")
    def everything(change: Change, transaction: Transaction) -> None:
        seen.append(("shop", change.operation, transaction.key))

    events = queries(
        "INSERT INTO orders (id) VALUES (1)",
        "DELETE FROM orders WHERE id = 1",
        "UPDATE items SET n = 1 WHERE id = 2",
    )
    feed.write(events)
    assert seen == [
        ("orders", "INSERT", events[0].key),
        ("shop", "INSERT", events[0].key),
        ("shop", "DELETE", events[1].key),
        ("shop", "UPDATE", events[2].key),
    ]


# --- the command line ---------------------------------------------------------------------------

LOG = [
    "20240131 14:02:07,db1,app,10.0.0.7,42,1,QUERY,shop,'BEGIN',0",
    "20240131 14:02:07,db1,app,10.0.0.7,42,2,QUERY,shop,'INSERT INTO orders (id) VALUES (1)',0",
    "20240131 14:02:07,db1,app,10.0.0.9,43,3,QUERY,shop,'DELETE FROM orders WHERE id IN (7, 8)',0",
    "20240131 14:02:07,db1,app,10.0.0.9,43,4,QUERY,other,'DELETE FROM t WHERE id = 9',0",
    "20240131 14:02:08,db1,app,10.0.0.7,42,5,QUERY,shop,'COMMIT',0",
    "20240131 14:02:08,db1,app,10.0.0.7,44,6,QUERY,,'INSERT INTO orders (id) VALUES (2)',0",
    "not an audit line",
]


def test_the_command_writes_a_line_per_committed_transaction(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from auditsync import _cli

    log = tmp_path / "server_audit.log"
    log.write_text("\n".join(LOG[:5]) + "\n")
    status = _cli.main(["changes", str(log), "--keys", "shop.orders=id", "--database", "shop"])
    assert status == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [[c["keys"] for c in line["changes"]] for line in lines] == [[[[7], [8]]], [[[1]]]]
    assert [line["connection_id"] for line in lines] == [43, 42]


def test_the_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from auditsync import _cli

    log = tmp_path / "server_audit.log"
    log.write_text("\n".join(LOG) + "\n")
    out = tmp_path / "changes.jsonl"
    letters = tmp_path / "letters.jsonl"
    arguments = ["changes", str(log), "--to", f"jsonl:{out}", "--dead-letter", str(letters)]
    assert _cli.main(arguments) == 1  # a line that is no record, a table that is unknown
    assert len(out.read_text().splitlines()) == 3
    assert len(letters.read_text().splitlines()) == 2
    assert _cli.main(["changes", str(log), "--keys", "orders"]) == 2
    assert _cli.main(["changes", str(tmp_path / "missing.log")]) == 2
    assert _cli.main(["changes", str(log), "--to", "sqlite:x"]) == 2
    assert "DB.TABLE=COLUMN" in capsys.readouterr().err


def test_the_command_keeps_open_transactions_in_a_state_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from auditsync import _cli

    first, second = tmp_path / "1.log", tmp_path / "2.log"
    first.write_text("\n".join(LOG[:2]) + "\n")
    second.write_text(LOG[4] + "\n")
    state = str(tmp_path / "state.sqlite")
    assert _cli.main(["changes", str(first), "--state", state]) == 0
    assert capsys.readouterr().out == ""
    assert _cli.main(["changes", str(second), "--state", state]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["changes"][0]["rows"] == [{"id": 1}]


# --- properties of the keys rules ---------------------------------------------------------------

_key_names = st.sampled_from(["id", "ID", "`id`", "orders.id", "`orders`.`Id`"])
_numbers = st.integers(min_value=-5, max_value=50)
_pins = st.one_of(
    st.tuples(st.just("pin"), _key_names, _numbers.map(str)),
    st.tuples(st.just("pin"), _key_names, st.just("NULL")),
    st.tuples(
        st.just("pin-in"),
        _key_names,
        st.lists(st.one_of(_numbers.map(str), st.just("NULL")), min_size=1, max_size=4).map(
            ", ".join
        ),
    ),
)
_others = st.sampled_from(
    [
        "note = 'a'",
        "n > 3",
        "(id = 1 OR id = 2)",
        "x BETWEEN 1 AND 5",
        "id > 5",
        "id = 1 + 1",
        "id <=> 3",
        "NOT id = 4",
        "id IN (SELECT id FROM drafts)",
        "id = n",
    ]
)


@given(
    st.lists(st.one_of(_pins, _others), min_size=1, max_size=5),
    st.lists(st.sampled_from([" AND ", " AND ", " && ", " OR ", " || "]), min_size=4, max_size=4),
    st.sampled_from(["DELETE FROM orders WHERE ", "UPDATE orders SET note = 'x' WHERE "]),
)
def test_keys_are_decided_only_by_a_conjunction_that_pins_the_key(
    items: list[Any], joiners: list[str], head: str
) -> None:
    texts = []
    pinned: list[set[object]] = []
    for item in items:
        if isinstance(item, str):
            texts.append(item)
            continue
        kind, name, values = item
        texts.append(f"{name} = {values}" if kind == "pin" else f"{name} IN ({values})")
        read = {None if v.strip() == "NULL" else int(v) for v in values.split(",")}
        pinned.append(read)
    where = texts[0] + "".join(j + t for j, t in zip(joiners, texts[1:], strict=False))
    used = joiners[: len(texts) - 1]
    change = one_change(head + where)
    if any(j.strip() in ("OR", "||") for j in used) or not pinned:
        assert change.keys is None
        return
    assert change.keys is not None
    assert all(len(key) == 1 and key[0] is not None for key in change.keys)
    found = {key[0] for key in change.keys}
    assert any(found == values - {None} for values in pinned)


_key_values = st.one_of(
    st.integers(min_value=1, max_value=10**6).map(str),
    st.sampled_from(["0", "NULL", "DEFAULT", "1 + 1", "NOW()", "'7'"]),
)


@given(st.lists(_key_values, min_size=1, max_size=5), st.booleans())
def test_an_insert_has_keys_only_when_every_row_gives_its_key(
    keys: list[str], id_first: bool
) -> None:
    rows = [f"({key}, 'n')" if id_first else f"('n', {key})" for key in keys]
    columns = "(id, note)" if id_first else "(note, id)"
    change = one_change(f"INSERT INTO orders {columns} VALUES {', '.join(rows)}")
    given_keys = [literal(key) for key in keys]
    if any(value in (None, 0) or value is NOT_LITERAL for value in given_keys):
        assert change.keys is None
    else:
        assert change.keys == tuple(dict.fromkeys((value,) for value in given_keys))
    assert change.keys is None or all(None not in key for key in change.keys)


@given(
    st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=4, unique=True),
    st.sampled_from(["500", "id + 1000", "NULL", "'x'", "DEFAULT"]),
)
def test_an_update_of_the_key_gives_the_new_key_only_when_it_is_a_literal(
    old: list[int], new: str
) -> None:
    listed = ", ".join(map(str, old))
    change = one_change(f"UPDATE orders SET id = {new}, note = 'moved' WHERE id IN ({listed})")
    value = literal(new)
    if value is None or value is NOT_LITERAL:
        assert change.keys is None
    else:
        assert change.keys == (*((key,) for key in old), (value,))
