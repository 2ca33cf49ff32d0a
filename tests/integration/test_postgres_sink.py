"""PostgresSink against the real local PostgreSQL server.

The server is ``AUDITSYNC_POSTGRES_DSN`` (default: 127.0.0.1:5432, user ``postgres``,
database ``test``, trust auth). Each test works in a schema of its own, dropped after it.
Outside CI an unreachable server skips these tests with the reason; in CI (``CI=true``)
the server is part of the job, so its absence fails them instead of hiding the gap.
"""

from __future__ import annotations

import base64
import os
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from hypothesis import example, given, settings

from auditsync import AuditEvent, Origin, parse_line
from auditsync._events import DeadLetter
from auditsync.sinks import PostgresSink, Refused, Stored, event_from_dict
from auditsync.sinks._sqlite import DEAD_LETTER_COLUMNS, EVENT_COLUMNS, INDEXED_COLUMNS
from auditsync.testing import query_texts

pytestmark = pytest.mark.postgres

DSN = os.environ.get("AUDITSYNC_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")
LINE = r"20240131 14:02:07,db1,root,localhost,5,12,QUERY,shop,'insert into t values (\'a,b\')',0"
NON_UTF8_LINE = (
    b"20240131 14:02:07,db1,root,localhost,5,13,QUERY,shop,"
    b"'select \xff\xfe from t where a = \\'caf\xc3\xa9\\'',0"
)
NON_UTF8_NAMES = b"20240131 14:02:07,db1,r\xf6ot,localhost,5,15,WRITE,sh\xf6p,t\xe4ble,"
NUL_LINE = b"20240131 14:02:07,db1,root,localhost,5,16,QUERY,shop,'select \x00, \xff from t',0"
HUGE_ID_LINE = (
    "20240131 14:02:07,db1,root,localhost,99999999999999999999,12,QUERY,shop,'select 1',0"
)


@pytest.fixture
def psycopg(postgres_dsn: str) -> Any:
    """The psycopg module, once the server is known to answer (else skip, or fail in CI)."""
    import psycopg

    return psycopg


@pytest.fixture
def schema(psycopg: Any) -> Iterator[str]:
    """A schema of the test's own, dropped with everything in it afterwards."""
    name = f"auditsync_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(DSN, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(DSN, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{name}" CASCADE')


@pytest.fixture
def sink(schema: str) -> Iterator[PostgresSink]:
    with PostgresSink(
        DSN, table=f"{schema}.audit_events", dead_letter_table=f"{schema}.dead_letters"
    ) as made:
        yield made


def event(number: int = 1, line: str | bytes = LINE) -> AuditEvent:
    return parse_line(line, origin=Origin(path="/var/log/server_audit.log", line_number=number))


def events(count: int, start: int = 1) -> list[AuditEvent]:
    return [event(number) for number in range(start, start + count)]


def select(psycopg: Any, query: str) -> list[dict[str, Any]]:
    """Rows as dicts, read through a connection of its own (what others see committed)."""
    with psycopg.connect(DSN) as connection:
        cursor = connection.cursor(row_factory=psycopg.rows.dict_row)
        return list(cursor.execute(query).fetchall())


def test_schema_has_typed_columns_and_indexes(
    psycopg: Any, sink: PostgresSink, schema: str
) -> None:
    columns = select(
        psycopg,
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        f"WHERE table_schema = '{schema}' ORDER BY table_name, ordinal_position",
    )
    types = {c["column_name"]: c["data_type"] for c in columns if c["table_name"] == "audit_events"}
    assert tuple(types) == EVENT_COLUMNS
    assert types["timestamp"] == "timestamp with time zone"
    assert types["connection_id"] == types["query_id"] == "bigint"
    assert types["truncated"] == "boolean"
    assert types["object_bytes"] == "bytea"
    assert types["raw_fields"] == "jsonb"
    letters = [c["column_name"] for c in columns if c["table_name"] == "dead_letters"]
    assert tuple(letters) == DEAD_LETTER_COLUMNS
    indexes = select(
        psycopg,
        f"SELECT indexdef FROM pg_indexes WHERE schemaname = '{schema}' "
        "AND tablename = 'audit_events'",
    )
    definitions = " ".join(row["indexdef"] for row in indexes)
    assert "UNIQUE INDEX audit_events_pkey ON" in definitions
    for column in INDEXED_COLUMNS:
        assert f"({column})" in definitions or f'("{column}")' in definitions


def test_stores_each_field_in_its_typed_column(
    psycopg: Any, sink: PostgresSink, schema: str
) -> None:
    item = event(4)
    sink.write([item])
    (row,) = select(psycopg, f"SELECT * FROM {schema}.audit_events")
    assert row["key"] == item.key
    assert row["timestamp"] == item.timestamp
    assert (row["connection_id"], row["query_id"], row["retcode"]) == (5, 12, 0)
    assert row["truncated"] is False
    assert row["object"] == "insert into t values ('a,b')"
    assert row["object_bytes"] is None
    assert (row["origin_path"], row["origin_line_number"]) == ("/var/log/server_audit.log", 4)
    assert row["dialect"] == "mariadb"


def test_the_eleventh_field_is_kept_apart_from_its_absence(
    psycopg: Any, sink: PostgresSink, schema: str
) -> None:
    """MariaDB Enterprise 12.3's TLS version: ``""`` (present, not encrypted) is not NULL."""
    es = "20260731 09:14:22,mdbe123,root"
    lines = [
        f"{es},10.0.0.7:5,7,0,CONNECT,mysql,,0,TLSv1.3",
        f"{es},h:unavailable,8,0,CONNECT,,,0,",
    ]
    sink.write([event(1, lines[0]), event(2, lines[1]), event(3)])
    stored = select(
        psycopg,
        f"SELECT tls_version, dialect FROM {schema}.audit_events ORDER BY origin_line_number",
    )
    assert [(row["tls_version"], row["dialect"]) for row in stored] == [
        ("TLSv1.3", "mariadb-enterprise"),
        ("", "mariadb-enterprise"),
        (None, "mariadb"),
    ]


def test_writing_the_same_events_again_adds_no_rows(
    psycopg: Any, sink: PostgresSink, schema: str
) -> None:
    batch = events(20)
    sink.write(batch)
    sink.write(batch)
    sink.write([*batch[10:], *events(5, start=21), batch[0], batch[0]])
    keys = [row["key"] for row in select(psycopg, f"SELECT key FROM {schema}.audit_events")]
    assert sorted(keys) == sorted(item.key for item in [*batch, *events(5, start=21)])


def test_non_utf8_query_bytes_round_trip_through_bytea(
    psycopg: Any, sink: PostgresSink, schema: str
) -> None:
    written = [event(1, NON_UTF8_LINE), event(2)]
    sink.write(written)
    lossy, exact = select(
        psycopg, f"SELECT * FROM {schema}.audit_events ORDER BY origin_line_number"
    )
    assert lossy["object"] == "select \ufffd\ufffd from t where a = 'café'"
    assert bytes(lossy["object_bytes"]) == written[0].object_bytes
    assert exact["object_bytes"] is None
    recovered = [bytes(row["object_bytes"] or row["object"].encode()) for row in (lossy, exact)]
    assert recovered == [item.object_bytes for item in written]


def test_nul_in_a_query_is_replaced_in_text_and_kept_in_bytea(
    psycopg: Any, sink: PostgresSink, schema: str
) -> None:
    item = event(1, NUL_LINE)
    assert "\x00" in item.object
    sink.write([item])
    (row,) = select(psycopg, f"SELECT object, object_bytes FROM {schema}.audit_events")
    assert row["object"] == "select \ufffd, \ufffd from t"
    assert bytes(row["object_bytes"]) == b"select \x00, \xff from t"


def test_any_query_text_round_trips(psycopg: Any, sink: PostgresSink, schema: str) -> None:
    written: list[AuditEvent] = []

    @settings(max_examples=60)
    @given(query_texts())
    @example("a\x00b\udcff\\'")
    def write(text: str) -> None:
        item = attrs.evolve(event(len(written)), object=text)
        sink.write([item])
        written.append(item)

    write()
    stored = select(
        psycopg,
        f"SELECT key, coalesce(object_bytes, convert_to(object, 'UTF8')) AS exact "
        f"FROM {schema}.audit_events",
    )
    by_key = {row["key"]: bytes(row["exact"]) for row in stored}
    assert len(by_key) == len(written)
    assert all(by_key[item.key] == item.object_bytes for item in written)
    assert any("\x00" in item.object for item in written)


def test_non_utf8_names_keep_their_bytes_in_raw_fields(
    psycopg: Any, sink: PostgresSink, schema: str
) -> None:
    sink.write([event(1, NON_UTF8_NAMES)])
    (row,) = select(psycopg, f"SELECT * FROM {schema}.audit_events")
    assert (row["username"], row["database"]) == ("r\ufffdot", "sh\ufffdp")
    assert bytes(row["object_bytes"]) == b"t\xe4ble"
    raw = {name: base64.b64decode(value) for name, value in row["raw_fields"].items()}
    assert raw == {"username": b"r\xf6ot", "database": b"sh\xf6p"}


def test_dead_letters_are_stored_once_with_exact_bytes(
    psycopg: Any, sink: PostgresSink, schema: str
) -> None:
    refused = event(3, NUL_LINE)
    letters = [
        DeadLetter("line", "not a server_audit record", b"junk \x00\xff", Origin(path="f")),
        DeadLetter("sink", "refused", NUL_LINE, refused.origin, refused),
    ]
    sink.write(letters)
    sink.write([*letters, event()])
    rows = select(psycopg, f"SELECT * FROM {schema}.dead_letters ORDER BY stage")
    assert [bytes(row["raw"]) for row in rows] == [b"junk \x00\xff", NUL_LINE]
    assert rows[1]["event_key"] == refused.key
    assert event_from_dict(rows[1]["event"]) == refused
    assert rows[0]["event"] is None
    assert len(select(psycopg, f"SELECT key FROM {schema}.audit_events")) == 1


def test_ids_beyond_64_bits_are_refused_and_the_rest_stored(
    psycopg: Any, sink: PostgresSink, schema: str
) -> None:
    huge = event(2, HUGE_ID_LINE)
    batch = [event(1), huge, event(3)]
    with pytest.raises(Refused) as raised:
        sink.write(batch)
    assert raised.value.events == (huge,)
    keys = {row["key"] for row in select(psycopg, f"SELECT key FROM {schema}.audit_events")}
    assert keys == {batch[0].key, batch[2].key}


def test_a_failing_write_stores_nothing_of_its_batch(
    psycopg: Any, sink: PostgresSink, schema: str
) -> None:
    sink.connection.execute(
        f"ALTER TABLE {schema}.audit_events ADD CONSTRAINT no_99 CHECK (query_id <> 99)"
    )
    bad = parse_line(LINE.replace(",12,", ",99,"))
    with pytest.raises(psycopg.errors.CheckViolation):
        sink.write([*events(3), bad])
    assert select(psycopg, f"SELECT key FROM {schema}.audit_events") == []
    sink.write(events(3))
    assert len(select(psycopg, f"SELECT key FROM {schema}.audit_events")) == 3


def _numbers(worker: int) -> list[int]:
    """Keys shared by every worker, in an order of its own, and some of its own alone."""
    numbers = [*range(300), *range(1000 * (worker + 1), 1000 * (worker + 1) + 100)]
    random.Random(worker).shuffle(numbers)
    return numbers


def test_concurrent_writers_store_exactly_the_union(psycopg: Any, schema: str) -> None:
    table = f"{schema}.audit_events"
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            start.wait()
            # Made together: the tables are created by racing sinks.
            with PostgresSink(DSN, table=table, dead_letter_table=f"{schema}.letters") as own:
                numbers = _numbers(worker)
                batches = [numbers[index : index + 100] for index in range(0, len(numbers), 100)]
                for batch in batches + batches[::-1]:  # the second round is all repeats
                    own.write([event(number) for number in batch])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    keys = [row["key"] for row in select(psycopg, f"SELECT key FROM {table}")]
    expected = {event(number).key for worker in range(4) for number in _numbers(worker)}
    assert len(keys) == len(expected) == 700
    assert set(keys) == expected


def test_a_sink_can_be_shared_between_threads(
    psycopg: Any,
    sink: PostgresSink,
    schema: str,
    write_concurrently: Callable[..., list[BaseException]],
) -> None:
    errors = write_concurrently(sink, 8, events)
    assert errors == []
    assert len(select(psycopg, f"SELECT key FROM {schema}.audit_events")) == 8 * 25 + 25


def test_an_owned_connection_is_opened_again_after_it_broke(
    psycopg: Any, sink: PostgresSink, schema: str
) -> None:
    sink.write(events(2))
    pid = sink.connection.info.backend_pid
    with psycopg.connect(DSN, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError):
        sink.write(events(2, start=3))
    sink.write(events(2, start=3))
    assert sink.connection.info.backend_pid != pid
    assert len(select(psycopg, f"SELECT key FROM {schema}.audit_events")) == 4


def test_a_connection_passed_in_stays_open_and_its_transaction_is_the_caller_s(
    psycopg: Any, schema: str
) -> None:
    table = f"{schema}.audit_events"
    connection = psycopg.connect(DSN)
    try:
        sink = PostgresSink(connection, table=table, dead_letter_table=f"{schema}.dead_letters")
        connection.commit()
        connection.execute("SELECT 1")  # the caller's own transaction is open
        sink.write(events(2))
        assert select(psycopg, f"SELECT key FROM {table}") == []
        connection.rollback()
        sink.write(events(3))  # no transaction open: the sink commits its own
        assert len(select(psycopg, f"SELECT key FROM {table}")) == 3
        sink.close()
        sink.close()
        assert not connection.closed
    finally:
        connection.close()


def test_create_false_leaves_the_schema_alone(psycopg: Any, schema: str) -> None:
    sink = PostgresSink(DSN, table=f"{schema}.missing", create=False)
    with pytest.raises(psycopg.errors.UndefinedTable):
        sink.write(events(1))
    sink.close()
    with pytest.raises(ValueError, match="closed"):
        sink.write(events(1))


# --- tables of earlier versions ------------------------------------------------------------

#: The event table's columns and types as auditsync made them before the origin's derived
#: members (main at 76ec3aa), frozen: a table of that version, made here by hand.
BEFORE_DERIVED = (
    ("key", "text PRIMARY KEY"),
    ("timestamp", "timestamptz NOT NULL"),
    ("serverhost", "text NOT NULL"),
    ("username", "text NOT NULL"),
    ("host", "text NOT NULL"),
    ("connection_id", "bigint NOT NULL"),
    ("query_id", "bigint NOT NULL"),
    ("operation", "text NOT NULL"),
    ("database", "text NOT NULL"),
    ("object", "text NOT NULL"),
    ("object_bytes", "bytea"),
    ("retcode", "bigint"),
    ("connection_type", "text"),
    ("truncated", "boolean NOT NULL"),
    ("dialect", "text NOT NULL"),
    ("prefix", "text"),
    ("suffix", "text"),
    ("origin_log_group", "text"),
    ("origin_log_stream", "text"),
    ("origin_event_id", "text"),
    ("origin_shard_id", "text"),
    ("origin_sequence_number", "text"),
    ("origin_path", "text"),
    ("origin_line_number", "bigint"),
    ("raw_fields", "jsonb"),
)
_DERIVED = ("origin_rds_instance", "origin_rds_cluster")


def _old_table(psycopg: Any, table: str, items: list[AuditEvent]) -> None:
    """``table`` as the earlier version made it, holding ``items`` as it stored them."""
    from auditsync.sinks._sqlite import event_row

    names = [name for name, _ in BEFORE_DERIVED]
    with psycopg.connect(DSN, autocommit=True) as connection:
        definitions = ", ".join(f'"{name}" {kind}' for name, kind in BEFORE_DERIVED)
        connection.execute(f"CREATE TABLE {table} ({definitions})")
        quoted = ", ".join(f'"{name}"' for name in names)
        for item in items:
            cells = dict(zip(EVENT_COLUMNS, event_row(item, nul_free=True), strict=True))
            connection.execute(
                f"INSERT INTO {table} ({quoted}) VALUES ({', '.join(['%s'] * len(names))})",
                [cells[name] for name in names],
            )


def _rds_items() -> list[AuditEvent]:
    groups = ["/aws/rds/instance/shop/audit", "/aws/rds/cluster/prod/audit", "/custom/audit", None]
    return [
        parse_line(LINE, origin=Origin(group, "s", f"{n}")) if group else event(n)
        for n, group in enumerate(groups, start=1)
    ]


def test_an_old_table_gains_the_columns_it_lacks(psycopg: Any, schema: str) -> None:
    table = f"{schema}.audit_events"
    items = _rds_items()
    _old_table(psycopg, table, items)
    before = select(psycopg, f"SELECT * FROM {table} ORDER BY key")
    with PostgresSink(DSN, table=table, dead_letter_table=f"{schema}.letters") as sink:
        after = select(psycopg, f"SELECT * FROM {table} ORDER BY key")
        assert [{name: row[name] for name in before[0]} for row in after] == before
        derived = {row["origin_event_id"]: tuple(row[name] for name in _DERIVED) for row in after}
        assert derived == {
            "1": ("shop", None),
            "2": (None, "prod"),
            "3": (None, None),
            None: (None, None),
        }
        assert sink.write(items) == Stored(0, len(items))  # every key already present
        sink.write([parse_line(LINE, origin=Origin("/aws/rds/instance/shop/audit", "s", "9"))])
    columns = select(
        psycopg,
        "SELECT column_name FROM information_schema.columns WHERE table_schema ="
        f" '{schema}' AND table_name = 'audit_events' ORDER BY ordinal_position",
    )
    old = [name for name, _ in BEFORE_DERIVED]
    # Added at the end in the field table's order: tls_version (the eleventh field of
    # MariaDB Enterprise 12.3), then the derived members.
    assert [row["column_name"] for row in columns] == [
        *old,
        *(name for name in EVENT_COLUMNS if name not in old),
    ]
    assert [name for name in EVENT_COLUMNS if name not in old] == ["tls_version", *_DERIVED]
    (new,) = select(psycopg, f"SELECT * FROM {table} WHERE origin_event_id = '9'")
    assert (new["origin_rds_instance"], new["origin_rds_cluster"]) == ("shop", None)
    # Opened again: nothing left to add.
    PostgresSink(DSN, table=table, dead_letter_table=f"{schema}.letters").close()


def test_sinks_opening_an_old_table_at_once_all_succeed(
    psycopg: Any, schema: str
) -> None:
    table = f"{schema}.audit_events"
    _old_table(psycopg, table, _rds_items())
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_it() -> None:
        try:
            start.wait()
            PostgresSink(DSN, table=table, dead_letter_table=f"{schema}.letters").close()
        except BaseException as error:  # handed to the test
            errors.append(error)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    rows = select(psycopg, f"SELECT origin_rds_instance FROM {table} ORDER BY key")
    assert sorted(filter(None, (row["origin_rds_instance"] for row in rows))) == ["shop"]
