"""The built-in sinks: the JSON form of events, JSON Lines, SQLite, memory, callback, fan-out."""

from __future__ import annotations

import base64
import io
import json
import multiprocessing
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import orjson
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from auditsync import AuditEvent, Dialect, Origin, parse_line
from auditsync._errors import AuditSyncError
from auditsync._events import DeadLetter
from auditsync._json import iso_timestamp
from auditsync._pipeline import Events
from auditsync._stored import database_events
from auditsync.sinks import (
    CallbackSink,
    DeadLetterSink,
    FanOutSink,
    JsonLinesSink,
    MemorySink,
    PostgresSink,
    Refused,
    Sink,
    SQLiteSink,
    Stored,
    dead_letter_from_dict,
    dead_letter_to_dict,
    event_from_dict,
    event_to_dict,
    to_json,
)
from auditsync.sinks._postgres import redact_conninfo
from auditsync.sinks._sqlite import (
    _SQLITE_EVENT_TYPES,
    DEAD_LETTER_COLUMNS,
    EVENT_COLUMNS,
    INDEXED_COLUMNS,
    event_from_row,
    migration,
    sql_refusal,
)
from auditsync.testing import audit_events

LINE = r"20240131 14:02:07,db1,root,localhost,5,12,QUERY,shop,'insert into t values (\'a,b\')',0"
#: A query holding bytes that are not UTF-8 (0xff 0xfe) beside UTF-8 (é) and an escape.
NON_UTF8_LINE = (
    b"20240131 14:02:07,db1,root,localhost,5,13,QUERY,shop,"
    b"'select \xff\xfe from t where a = \\'caf\xc3\xa9\\'',0"
)
#: A table event whose database and table names are not UTF-8.
NON_UTF8_NAMES = b"20240131 14:02:07,db1,r\xf6ot,localhost,5,15,WRITE,sh\xf6p,t\xe4ble,"
NUL_LINE = b"20240131 14:02:07,db1,root,localhost,5,16,QUERY,shop,'select \x00 from t',0"
AURORA_LINE = "1653053459680124,c731-instance-1,admin,52.94.133.136,35,698024,WRITE,testdb,test2,0"
SYSLOG_LINE = (
    "Jan 31 14:02:07 ip-10-0-0-1 mysql-server_auditing:  "
    "db1,root,localhost,5,12,QUERY,shop,'select 1',0"
)
HUGE_ID_LINE = (
    "20240131 14:02:07,db1,root,localhost,99999999999999999999,12,QUERY,shop,'select 1',0"
)
#: MariaDB Enterprise 12.3 connection records: the TLS version, and an empty eleventh field.
ES_TLS = "20260731 09:14:22,mdbe123,root,192.168.1.24:54312,7,0,CONNECT,mysql,,0,TLSv1.3"
ES_SOCKET = "20260731 09:15:03,mdbe123,app,localhost:unavailable,8,0,CONNECT,,,0,"


def run_at_once(
    target: Callable[..., None], arguments: list[tuple[Any, ...]], timeout: float
) -> None:
    """``target`` in a spawned process for each tuple of ``arguments``, with an event last
    that releases them all at once; each must exit 0 within ``timeout`` seconds."""
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [context.Process(target=target, args=(*args, start)) for args in arguments]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout)
        assert worker.exitcode == 0


def event(number: int = 1, line: str | bytes = LINE, **origin: Any) -> AuditEvent:
    """The event of ``line`` at line ``number`` of a file: distinct numbers, distinct keys."""
    where = Origin(path="/var/log/mysql/server_audit.log", line_number=number, **origin)
    return parse_line(line, origin=where)


def events(count: int, start: int = 1) -> list[AuditEvent]:
    return [event(number) for number in range(start, start + count)]


def letter(
    stage: str = "line", raw: bytes = b"not \xff an audit line", **kwargs: Any
) -> DeadLetter:
    return DeadLetter(
        stage=stage,
        error="not a server_audit record: no comma",
        raw=raw,
        origin=Origin(path="/var/log/mysql/server_audit.log", line_number=7),
        **kwargs,
    )


# --- the JSON form ------------------------------------------------------------------------


def test_event_to_dict_holds_every_field_in_plain_json_types() -> None:
    item = event(3)
    document = event_to_dict(item)
    assert document == {
        "key": item.key,
        "timestamp": "2024-01-31T14:02:07.000000Z",
        "serverhost": "db1",
        "username": "root",
        "host": "localhost",
        "connection_id": 5,
        "query_id": 12,
        "operation": "QUERY",
        "database": "shop",
        "object": "insert into t values ('a,b')",
        "retcode": 0,
        "connection_type": None,
        "truncated": False,
        "dialect": "mariadb",
        "prefix": None,
        "suffix": None,
        "tls_version": None,
        "origin": {
            "log_group": None,
            "log_stream": None,
            "event_id": None,
            "shard_id": None,
            "sequence_number": None,
            "path": "/var/log/mysql/server_audit.log",
            "line_number": 3,
            "rds_instance": None,
            "rds_cluster": None,
        },
    }
    assert json.loads(orjson.dumps(document)) == document


def test_timestamps_are_utc_with_microseconds_and_dialect_is_its_name() -> None:
    document = event_to_dict(parse_line(AURORA_LINE))
    assert document["timestamp"] == "2022-05-20T13:30:59.680124Z"
    assert document["dialect"] == "aurora"
    assert document["origin"] is None
    assert document["retcode"] == 0


def test_prefix_and_connection_type_are_kept() -> None:
    syslog = event_to_dict(parse_line(SYSLOG_LINE, year=2024))
    assert syslog["prefix"] == "Jan 31 14:02:07 ip-10-0-0-1 mysql-server_auditing:  "
    rds = event_to_dict(parse_line("20240131 14:02:07,db1,root,10.0.0.9,5,0,CONNECT,shop,,0,SSL"))
    assert (rds["connection_type"], rds["dialect"]) == ("SSL", "rds-mysql")


def test_key_is_the_cloudwatch_event_id_where_there_is_one() -> None:
    assert event_to_dict(event(1, event_id="3195310660696698337880"))["key"] == (
        "3195310660696698337880"
    )


#: Keys as the first release computed them. Idempotent sinks store keys: a change in how
#: they are derived would store every event again, so these must never change.
PINNED_KEYS = {
    "file": (LINE, Origin(path="/var/log/mysql/server_audit.log", line_number=5)),
    "no origin": (LINE, None),
    "empty origin": (LINE, Origin()),
    "stream": (LINE, Origin(log_group="/aws/rds/instance/db1/audit", log_stream="db1.audit.log.0")),
    "empty event id": (LINE, Origin(log_group="g", log_stream="s", event_id="")),
    "kinesis": (
        LINE,
        Origin(
            shard_id="shardId-000000000000",
            sequence_number="49590338271490256608559692538361571095921575989136588898",
        ),
    ),
    "quoted path": (LINE, Origin(path='caf\u00e9 "it\'s" \udc80.log')),
    "aurora": (AURORA_LINE, Origin(path="a.log", line_number=1)),
    "non-utf8": (NON_UTF8_LINE, Origin(path="b.log", line_number=2)),
}
PINNED_KEY_VALUES = {
    "file": "a2ff22a9f1b50f34c7fe1138fe6b2962",
    "no origin": "a3c8dc00e54e2ef92503ce84ee9d5540",
    "empty origin": "a3c8dc00e54e2ef92503ce84ee9d5540",
    "stream": "2cf0cb0ca61f6c0f90da1b9f6a861b3d",
    "empty event id": "3d6f2e0c05011f71cd8a1f03984dc29a",
    "kinesis": "239fa2cf4870fb93affe8429b3bda430",
    "quoted path": "d81b630afaa0dd6039449426fe39a552",
    "aurora": "1b311b5f95059fd69c0f534eed10aba3",
    "non-utf8": "9e18b49704a40adedfe92eef6cf9ca9b",
}


@pytest.mark.parametrize("name", sorted(PINNED_KEYS))
def test_keys_never_change(name: str) -> None:
    line, where = PINNED_KEYS[name]
    item = parse_line(line, origin=where)
    assert item.key == PINNED_KEY_VALUES[name]
    assert event_to_dict(item)["key"] == PINNED_KEY_VALUES[name]
    assert item.key == item.key  # the cached timestamp text gives the same key again


def test_keys_of_other_zones_and_dead_letters_never_change() -> None:
    item = parse_line(LINE, origin=Origin(path="x.log", line_number=1))
    plus_one = timezone(timedelta(hours=1))
    # The same instant in another zone is another record text (isoformat keeps the zone):
    # a cache keyed by the datetime, which compares equal, must not mix them up.
    for _ in range(2):
        assert item.key == "6052f768e7f3958b1fa2ddd6d4b6ff62"
        later = attrs.evolve(item, timestamp=item.timestamp.astimezone(plus_one))
        assert later.timestamp == item.timestamp
        assert later.key == "69df0b834140df7f49b15c1f01498138"
        naive = attrs.evolve(item, timestamp=item.timestamp.replace(tzinfo=None))
        assert naive.key == "84bdd00ab49a3ff9d8f85dc1bd94bbaf"
    with_id = Origin(log_group="g", log_stream="s", event_id="42")
    assert DeadLetter("line", "x", b"garbage\xff", with_id).key == (
        "298c5ead4fb5fda3d40dfb4afc287271"
    )
    assert DeadLetter("sink", "x", b"{}", item.origin, item).key == (
        "b3970021415737d08aedb223c732b2a6"
    )


def test_iso_timestamp_is_the_same_text_for_every_zone_and_call() -> None:
    utc = datetime(2024, 1, 31, 14, 2, 7, tzinfo=UTC)
    paris = utc.astimezone(ZoneInfo("Europe/Paris"))
    for _ in range(2):  # the second time from the cache
        assert iso_timestamp(utc) == "2024-01-31T14:02:07.000000Z"
        assert iso_timestamp(paris) == "2024-01-31T14:02:07.000000Z"
        assert iso_timestamp(utc.replace(tzinfo=None)) == "2024-01-31T14:02:07.000000Z"
        assert iso_timestamp(utc.replace(microsecond=5)) == "2024-01-31T14:02:07.000005Z"
        assert iso_timestamp(utc.replace(year=999)) == "0999-01-31T14:02:07.000000Z"
    # An hour that comes twice: fold tells the two apart, though they compare equal.
    first = datetime(2024, 11, 3, 1, 30, tzinfo=ZoneInfo("America/New_York"))
    second = first.replace(fold=1)
    assert first == second
    assert iso_timestamp(first) == "2024-11-03T05:30:00.000000Z"
    assert iso_timestamp(second) == "2024-11-03T06:30:00.000000Z"


def test_a_surrogate_in_the_origin_alone_is_caught() -> None:
    where = Origin(log_group="gr\udc80", log_stream="s")
    document = event_to_dict(parse_line(LINE, origin=where))
    assert base64.b64decode(document["origin"]["log_group_base64"]) == b"gr\x80"
    assert not any(name.endswith("_base64") for name in document)
    keyed = event_to_dict(parse_line(LINE, origin=attrs.evolve(where, event_id="1\udcff")))
    assert base64.b64decode(keyed["key_base64"]) == b"1\xff"
    assert base64.b64decode(keyed["origin"]["event_id_base64"]) == b"1\xff"


def test_events_read_their_fields_the_fast_way() -> None:
    # attrs implements cached_property on slotted classes with a class __getattr__, which
    # slows every attribute read down; statement keeps its value in a plain slot instead.
    assert "__getattr__" not in vars(AuditEvent)
    query = parse_line(LINE)
    assert query.statement is query.statement is not None
    assert parse_line(AURORA_LINE).statement is None
    assert attrs.evolve(query, query_id=13).statement == query.statement


def test_non_utf8_query_becomes_readable_text_and_exact_base64() -> None:
    item = parse_line(NON_UTF8_LINE)
    document = event_to_dict(item)
    data = orjson.dumps(document)
    data.decode("utf-8")  # strict: valid UTF-8
    assert document["object"] == "select \ufffd\ufffd from t where a = 'café'"
    assert base64.b64decode(document["object_base64"]) == item.object_bytes
    assert item.object_bytes == b"select \xff\xfe from t where a = 'caf\xc3\xa9'"
    assert not any(name.endswith("_base64") for name in document if name != "object_base64")


def test_non_utf8_names_get_their_own_base64_members() -> None:
    item = parse_line(NON_UTF8_NAMES)
    document = orjson.loads(orjson.dumps(event_to_dict(item)))
    assert document["username"] == "r\ufffdot"
    assert base64.b64decode(document["username_base64"]) == b"r\xf6ot"
    assert base64.b64decode(document["database_base64"]) == b"sh\xf6p"
    assert base64.b64decode(document["object_base64"]) == b"t\xe4ble"
    assert "host_base64" not in document


def test_non_utf8_origin_path_is_kept_exactly() -> None:
    where = Origin(path=b"/logs/caf\xe9.log".decode("utf-8", "surrogateescape"), line_number=1)
    document = orjson.loads(orjson.dumps(event_to_dict(parse_line(LINE, origin=where))))
    assert base64.b64decode(document["origin"]["path_base64"]) == b"/logs/caf\xe9.log"
    assert event_from_dict(document).origin == where


def test_nul_in_a_query_is_plain_json() -> None:
    document = event_to_dict(parse_line(NUL_LINE))
    assert document["object"] == "select \x00 from t"
    assert "object_base64" not in document
    assert b"\\u0000" in orjson.dumps(document)


@pytest.mark.parametrize(
    ("log_group", "instance", "cluster"),
    [
        ("/aws/rds/instance/db-1/audit", "db-1", None),
        ("/aws/rds/cluster/prod/audit", None, "prod"),
        ("/aws/rds/instance/db-1", None, None),  # no log after the name: not RDS's
        ("/custom/audit", None, None),
        (None, None, None),
    ],
)
def test_the_origin_names_its_database_in_every_json_line(
    log_group: str | None, instance: str | None, cluster: str | None
) -> None:
    item = event(2, log_group=log_group)
    origin = orjson.loads(to_json(item))["origin"]
    assert (origin["rds_instance"], origin["rds_cluster"]) == (instance, cluster)
    assert list(origin)[-2:] == ["rds_instance", "rds_cluster"]  # after the fields
    assert event_from_dict(orjson.loads(to_json(item))) == item
    refused = DeadLetter("sink", "refused", b"x", origin=item.origin, event=item)
    letter_origin = orjson.loads(to_json(refused))["origin"]
    assert (letter_origin["rds_instance"], letter_origin["rds_cluster"]) == (instance, cluster)


def test_derived_members_are_recomputed_not_read() -> None:
    """They follow from the log group: a document without them (written before they
    existed) or with other values reads back as the event the log group says."""
    item = event(2, log_group="/aws/rds/cluster/prod/audit")
    document = event_to_dict(item)
    older = {**document, "origin": {**document["origin"]}}
    del older["origin"]["rds_instance"], older["origin"]["rds_cluster"]
    assert event_from_dict(older) == item
    document["origin"]["rds_cluster"] = "other"
    assert event_from_dict(document) == item
    assert event_to_dict(event_from_dict(document))["origin"]["rds_cluster"] == "prod"


def test_a_derived_member_that_is_not_unicode_keeps_its_bytes() -> None:
    item = event(2, log_group="/aws/rds/instance/caf\udce9/audit")
    document = orjson.loads(to_json(item))
    assert document["origin"]["rds_instance"] == "caf\ufffd"
    assert base64.b64decode(document["origin"]["rds_instance_base64"]) == b"caf\xe9"
    assert event_from_dict(document) == item


@pytest.mark.parametrize(
    "line",
    [LINE, NON_UTF8_LINE, NON_UTF8_NAMES, NUL_LINE, AURORA_LINE, HUGE_ID_LINE, ES_TLS, ES_SOCKET],
)
def test_event_from_dict_reverses_event_to_dict(line: str | bytes) -> None:
    item = event(9, line)
    back = event_from_dict(json.loads(to_json(item)))
    assert back == item
    assert back.key == item.key
    assert back.object_bytes == item.object_bytes


def test_ids_beyond_64_bits_are_written_as_full_json_integers() -> None:
    item = event(1, HUGE_ID_LINE)
    stream = io.StringIO()
    JsonLinesSink(stream).write([item, event(2)])
    first, second = stream.getvalue().splitlines()
    assert json.loads(first)["connection_id"] == 99999999999999999999
    assert event_from_dict(json.loads(first)) == item
    assert orjson.loads(second)["connection_id"] == 5
    with pytest.raises(ValueError, match="'connection_id' should be int"):
        event_from_dict(orjson.loads(first))  # orjson reads it as a float: no silent loss


def test_to_json_is_compact_utf8_without_newline() -> None:
    data = to_json(parse_line(NON_UTF8_LINE))
    assert data == orjson.dumps(event_to_dict(parse_line(NON_UTF8_LINE)))
    assert b"\n" not in data
    assert orjson.loads(to_json(letter()))["stage"] == "line"


def test_syslog_event_reads_back_with_its_prefix() -> None:
    item = parse_line(SYSLOG_LINE, year=2024)
    assert event_from_dict(orjson.loads(orjson.dumps(event_to_dict(item)))) == item


@given(audit_events(), st.one_of(st.none(), st.integers(0, 10**6)))
def test_every_event_survives_the_json_form(item: AuditEvent, number: int | None) -> None:
    if number is not None:
        item = attrs.evolve(item, origin=Origin(path="server_audit.log", line_number=number))
    data = orjson.dumps(event_to_dict(item))
    data.decode("utf-8")
    back = event_from_dict(orjson.loads(data))
    # Bytes are the truth: the strategy may escape bytes that together are UTF-8
    # ("\udcc2\udc80" for U+0080), which read back as the character they spell.
    assert back.object_bytes == item.object_bytes
    assert attrs.evolve(back, object=item.object) == item


def test_event_from_dict_reads_what_an_older_auditsync_wrote() -> None:
    """JSON written before ``tls_version`` joined the event has no such member: a member
    that may be null may be missing, and the others may not."""
    for line in (LINE, ES_TLS):
        document = event_to_dict(event(1, line))
        del document["tls_version"]
        assert event_from_dict(document) == attrs.evolve(event(1, line), tls_version=None)
    document = event_to_dict(event(1))
    del document["tls_version"], document["retcode"]
    with pytest.raises(AuditSyncError, match="no member 'retcode'"):
        event_from_dict(document)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("timestamp"), "no member 'timestamp'"),
        (lambda d: d.update(connection_id="5"), "'connection_id' should be int"),
        (lambda d: d.update(truncated=0), "'truncated' should be bool"),
        (lambda d: d.update(query_id=True), "'query_id' should be int"),
        (lambda d: d.update(object=None), "'object' should be str"),
        (lambda d: d.update(object_base64="!!"), "not an auditsync event"),
        (lambda d: d.update(dialect="oracle"), "not an auditsync event"),
    ],
)
def test_event_from_dict_says_what_is_wrong(change: Any, message: str) -> None:
    document = event_to_dict(event())
    change(document)
    with pytest.raises(ValueError, match=message):
        event_from_dict(document)


def test_dead_letter_to_dict_keeps_raw_bytes_and_the_refused_event() -> None:
    refused = parse_line(NON_UTF8_LINE)
    item = letter("sink", raw=NON_UTF8_LINE, event=refused)
    document = orjson.loads(orjson.dumps(dead_letter_to_dict(item)))
    assert document["stage"] == "sink"
    assert document["error"] == "not a server_audit record: no comma"
    assert base64.b64decode(document["raw_base64"]) == NON_UTF8_LINE
    assert document["origin"]["line_number"] == 7
    assert document["event"] == orjson.loads(orjson.dumps(event_to_dict(refused)))
    assert dead_letter_from_dict(document) == item


def test_dead_letter_without_event_or_origin() -> None:
    item = DeadLetter(stage="payload", error="bad base64", raw=b"\x00\x01")
    document = dead_letter_to_dict(item)
    assert (document["event"], document["origin"]) == (None, None)
    assert dead_letter_from_dict(document) == item


def test_dead_letter_keys_follow_stage_raw_and_origin_not_the_message() -> None:
    first = letter()
    assert dead_letter_to_dict(first)["key"] == dead_letter_to_dict(letter())["key"]
    reworded = DeadLetter("line", "another message", first.raw, first.origin)
    assert dead_letter_to_dict(reworded)["key"] == dead_letter_to_dict(first)["key"]
    others = [
        letter(stage="payload"),
        letter(raw=b"other"),
        DeadLetter("line", first.error, first.raw, Origin(path="x", line_number=7)),
        DeadLetter("line", first.error, first.raw),
        letter(event=event()),
    ]
    keys = {dead_letter_to_dict(item)["key"] for item in [first, *others]}
    assert len(keys) == len(others) + 1


def test_dead_letter_from_dict_rejects_what_is_not_one() -> None:
    with pytest.raises(ValueError, match="no member 'raw_base64'"):
        dead_letter_from_dict({"stage": "line", "error": "x", "origin": None, "event": None})


# --- JsonLinesSink ------------------------------------------------------------------------


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_json_lines_to_a_path_appends_one_object_a_line(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "events.jsonl"
    path.parent.mkdir()
    batch = events(3)
    with JsonLinesSink(path) as sink:
        sink.write(batch[:2])
        sink.write([])
        sink.write(batch[2:])
    with JsonLinesSink(str(path)) as again:
        again.write([letter()])
    lines = read_lines(path)
    assert [line.get("key") for line in lines[:3]] == [item.key for item in batch]
    assert lines[3]["stage"] == "line"
    assert "stage" not in lines[0]
    assert path.read_bytes().endswith(b"\n")


def test_json_lines_is_readable_after_each_write(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = JsonLinesSink(path)
    sink.write(events(2))
    assert len(read_lines(path)) == 2
    sink.close()


def test_json_lines_round_trips_non_utf8_bytes_through_a_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    written = [parse_line(NON_UTF8_LINE), parse_line(NON_UTF8_NAMES), parse_line(NUL_LINE)]
    with JsonLinesSink(path) as sink:
        sink.write(written)
    path.read_bytes().decode("utf-8")
    lines = read_lines(path)
    assert base64.b64decode(lines[0]["object_base64"]) == written[0].object_bytes
    assert [event_from_dict(line) for line in lines] == written


class CountingStream(io.StringIO):
    flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def test_json_lines_to_a_text_stream_flushes_and_never_closes_it() -> None:
    stream = CountingStream()
    sink = JsonLinesSink(stream)
    sink.write(events(2))
    assert stream.flushes == 1
    sink.write([letter()])
    assert stream.flushes == 2
    sink.close()
    sink.close()
    assert not stream.closed
    assert len(stream.getvalue().splitlines()) == 3


def test_json_lines_to_a_binary_stream() -> None:
    stream = io.BytesIO()
    JsonLinesSink(stream).write([parse_line(NON_UTF8_LINE)])
    assert event_from_dict(orjson.loads(stream.getvalue())) == parse_line(NON_UTF8_LINE)


def test_json_lines_close_closes_only_its_own_file(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path / "events.jsonl")
    sink.close()
    sink.close()
    with pytest.raises(ValueError, match="closed"):
        sink.write(events(1))
    assert sink._stream.closed


def test_json_lines_writes_nothing_of_a_batch_it_cannot_serialise() -> None:
    stream = io.StringIO()
    sink = JsonLinesSink(stream)
    with pytest.raises(TypeError, match="AuditEvent or a DeadLetter"):
        sink.write([event(), "not an event"])  # type: ignore[list-item]
    assert stream.getvalue() == ""


def _append_lines(path: str, worker: int, start: Any) -> None:
    start.wait()
    sink = JsonLinesSink(path)
    for batch in range(20):
        sink.write(events(50, start=worker * 10_000 + batch * 50))
    sink.close()


def test_json_lines_processes_appending_to_one_file_do_not_interleave(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    run_at_once(_append_lines, [(str(path), n) for n in range(3)], timeout=60)
    lines = read_lines(path)
    assert len(lines) == 3 * 20 * 50
    assert len({line["key"] for line in lines}) == len(lines)


# --- MemorySink, CallbackSink, FanOutSink --------------------------------------------------


def test_memory_sink_keeps_everything_in_order() -> None:
    sink = MemorySink()
    first, second = events(2)
    sink.write([first])
    sink.write([letter(), second])
    sink.write([first])
    assert sink.items == [first, letter(), second, first]
    assert sink.events == [first, second, first]
    assert sink.dead_letters == [letter()]
    sink.close()
    sink.close()
    with pytest.raises(ValueError, match="closed"):
        sink.write([first])
    assert len(sink.items) == 4


def test_callback_sink_calls_the_function_with_each_batch() -> None:
    batches: list[Sequence[AuditEvent]] = []
    closings: list[bool] = []
    with CallbackSink(batches.append, on_close=lambda: closings.append(True)) as sink:
        sink.write(events(2))
        sink.write(events(1, start=3))
    sink.close()
    assert [len(batch) for batch in batches] == [2, 1]
    assert closings == [True]
    with pytest.raises(ValueError, match="closed"):
        sink.write(events(1))


def test_callback_sink_passes_the_function_s_errors_on() -> None:
    def fail(batch: Sequence[AuditEvent]) -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        CallbackSink(fail).write(events(1))


def refusing(wanted: set[int], reason: str, log: list[str], name: str) -> CallbackSink:
    """A sink that refuses the events at the line numbers in ``wanted``."""

    def write(batch: Sequence[AuditEvent]) -> None:
        log.append(name)
        refused = [e for e in batch if e.origin and e.origin.line_number in wanted]
        if refused:
            raise Refused(refused, reason)

    return CallbackSink(write)


def test_fan_out_writes_each_sink_in_order() -> None:
    log: list[str] = []
    first, second = MemorySink(), MemorySink()
    fan = FanOutSink(refusing(set(), "", log, "a"), first, refusing(set(), "", log, "b"), second)
    batch = events(3)
    fan.write(batch)
    assert log == ["a", "b"]
    assert first.items == batch
    assert second.items == batch


def test_fan_out_gathers_refusals_after_every_sink_ran() -> None:
    log: list[str] = []
    memory = MemorySink()
    fan = FanOutSink(
        refusing({3, 1}, "too big", log, "a"),
        refusing({1, 4}, "no room", log, "b"),
        memory,
    )
    batch = events(5)
    with pytest.raises(Refused) as raised:
        fan.write(batch)
    assert log == ["a", "b"]
    assert memory.items == batch
    assert list(raised.value.events) == [batch[0], batch[2], batch[3]]
    assert raised.value.reason == "too big; no room"


def test_fan_out_stops_at_any_other_error_and_propagates_it() -> None:
    first, last = MemorySink(), MemorySink()

    def down(batch: Sequence[AuditEvent]) -> None:
        raise ConnectionError("database down")

    fan = FanOutSink(first, CallbackSink(down), last)
    with pytest.raises(ConnectionError):
        fan.write(events(2))
    assert len(first.items) == 2
    assert last.items == []


def test_fan_out_closes_every_sink_even_when_one_fails() -> None:
    closed: list[str] = []

    def broken() -> None:
        closed.append("broken")
        raise OSError("cannot close")

    last = MemorySink()
    fan = FanOutSink(CallbackSink(print, on_close=broken), last)
    with pytest.raises(OSError, match="cannot close"):
        fan.close()
    assert closed == ["broken"]
    assert last.closed
    fan.close()
    with pytest.raises(ValueError, match="closed"):
        fan.write(events(1))


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp: JsonLinesSink(tmp / "e.jsonl"),
        lambda tmp: SQLiteSink(tmp / "e.db"),
        lambda tmp: MemorySink(),
        lambda tmp: CallbackSink(print),
    ],
)
def test_sinks_satisfy_both_protocols_and_close_twice(make: Any, tmp_path: Path) -> None:
    sink = make(tmp_path)
    assert isinstance(sink, Sink)
    assert isinstance(sink, DeadLetterSink)
    sink.close()
    sink.close()
    assert isinstance(FanOutSink(sink), Sink)


# --- SQLiteSink ---------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "audit.db"


def rows(sink: SQLiteSink, table: str = "audit_events") -> list[sqlite3.Row]:
    connection = sink.connection
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(f'SELECT * FROM "{table}" ORDER BY rowid').fetchall()
    finally:
        connection.row_factory = None


def test_sqlite_schema_has_typed_columns_indexes_and_wal(db: Path) -> None:
    with SQLiteSink(db) as sink:
        info = sink.connection.execute("PRAGMA table_info(audit_events)").fetchall()
        assert tuple(column[1] for column in info) == EVENT_COLUMNS
        types = {column[1]: column[2] for column in info}
        assert types["connection_id"] == types["query_id"] == types["retcode"] == "INTEGER"
        assert types["truncated"] == "INTEGER"
        assert types["object_bytes"] == "BLOB"
        assert {column[1] for column in info if column[5]} == {"key"}
        indexed = {
            row[0]
            for row in sink.connection.execute(
                "SELECT ii.name FROM sqlite_master m, pragma_index_list(m.name) il, "
                "pragma_index_info(il.name) ii WHERE m.name = 'audit_events' AND il.origin = 'c'"
            )
        }
        assert indexed == set(INDEXED_COLUMNS)
        letters = sink.connection.execute("PRAGMA table_info(dead_letters)").fetchall()
        assert tuple(column[1] for column in letters) == DEAD_LETTER_COLUMNS
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    check.close()


def test_sqlite_stores_each_field_in_its_column(db: Path) -> None:
    item = event(4, event_id=None, log_group="/aws/rds/cluster/prod/audit", shard_id="shard-1")
    with SQLiteSink(db) as sink:
        sink.write([item, parse_line(AURORA_LINE)])
        first, aurora = rows(sink)
    assert dict(first) == {
        "key": item.key,
        "timestamp": "2024-01-31T14:02:07.000000Z",
        "serverhost": "db1",
        "username": "root",
        "host": "localhost",
        "connection_id": 5,
        "query_id": 12,
        "operation": "QUERY",
        "database": "shop",
        "object": "insert into t values ('a,b')",
        "object_bytes": None,
        "retcode": 0,
        "connection_type": None,
        "truncated": 0,
        "dialect": "mariadb",
        "prefix": None,
        "suffix": None,
        "tls_version": None,
        "origin_log_group": "/aws/rds/cluster/prod/audit",
        "origin_log_stream": None,
        "origin_event_id": None,
        "origin_shard_id": "shard-1",
        "origin_sequence_number": None,
        "origin_path": "/var/log/mysql/server_audit.log",
        "origin_line_number": 4,
        "origin_rds_instance": None,
        "origin_rds_cluster": "prod",
        "raw_fields": None,
    }
    assert aurora["timestamp"] == "2022-05-20T13:30:59.680124Z"
    assert aurora["origin_path"] is None
    assert aurora["origin_rds_cluster"] is None


def test_sqlite_keeps_the_eleventh_field_apart_from_its_absence(db: Path) -> None:
    """The TLS version of MariaDB Enterprise 12.3: ``""`` (present, not encrypted) is not
    NULL (no such field), and each row reads back as its event."""
    written = [event(1, ES_TLS), event(2, ES_SOCKET), event(3, LINE)]
    with SQLiteSink(db) as sink:
        sink.write(written)
        stored = rows(sink)
    assert [row["tls_version"] for row in stored] == ["TLSv1.3", "", None]
    assert [row["dialect"] for row in stored] == [
        "mariadb-enterprise",
        "mariadb-enterprise",
        "mariadb",
    ]
    assert [event_from_row(row) for row in stored] == written
    assert [json.loads(to_json(item))["tls_version"] for item in written] == ["TLSv1.3", "", None]


def test_a_database_made_before_the_eleventh_field_reads_back(db: Path) -> None:
    """``auditsync decode`` of an SQLite file an older auditsync wrote: no tls_version column."""
    written = [event(1), event(2, AURORA_LINE)]
    with SQLiteSink(db) as sink:
        sink.write(written)
    with sqlite3.connect(db) as connection:
        connection.execute("ALTER TABLE audit_events DROP COLUMN tls_version")
    read = [item for block in database_events(str(db)) for item in block.events]  # type: ignore[union-attr]
    assert read == written


def test_sqlite_timestamps_sort_and_work_with_date_functions(db: Path) -> None:
    later = parse_line(LINE.replace("20240131 14:02:07", "20240201 00:00:00"))
    with SQLiteSink(db) as sink:
        sink.write([later, parse_line(AURORA_LINE), parse_line(LINE)])
        ordered = sink.connection.execute(
            "SELECT timestamp, unixepoch(timestamp) FROM audit_events ORDER BY timestamp"
        ).fetchall()
    assert [row[0][:10] for row in ordered] == ["2022-05-20", "2024-01-31", "2024-02-01"]
    assert ordered[1][1] == int(parse_line(LINE).timestamp.timestamp())


def test_sqlite_writing_the_same_events_again_adds_no_rows(db: Path) -> None:
    batch = events(10)
    with SQLiteSink(db) as sink:
        sink.write(batch)
        sink.write(batch)
        sink.write([*batch[5:], *events(3, start=11), batch[0]])
        keys = [row["key"] for row in rows(sink)]
    assert keys == [item.key for item in [*batch, *events(3, start=11)]]
    with SQLiteSink(db) as reopened:
        reopened.write(batch)
        assert len(rows(reopened)) == 13


def test_sql_sinks_say_what_was_new_and_what_was_there(db: Path) -> None:
    batch = events(10)
    with SQLiteSink(db) as sink:
        assert sink.write(batch) == Stored(10, 0)
        assert sink.write([*batch[5:], *events(3, start=11), batch[0]]) == Stored(3, 6)
        assert sink.write([letter()]) == Stored(0, 0)
        with pytest.raises(Refused) as refused:
            sink.write([parse_line(HUGE_ID_LINE), *events(2, start=13)])
        assert refused.value.stored == Stored(1, 1)


def test_a_pipeline_counts_new_and_present_where_the_sink_says(db: Path) -> None:
    from auditsync import Pipeline

    lines = [LINE, LINE.replace(",12,", ",13,")]
    with SQLiteSink(db) as sink:
        first = Pipeline(sink).process_lines(lines)
        second = Pipeline(sink).process_lines([*lines, LINE.replace(",12,", ",14,")])
    assert (first.delivered, first.new, first.present) == (2, 2, 0)
    assert (second.delivered, second.new, second.present) == (3, 1, 2)
    assert "3 delivered (1 new, 2 already present), " in second.summary()
    unknown = Pipeline(MemorySink()).process_lines(lines)
    assert (unknown.new, unknown.present) == (0, 0)
    assert "2 delivered, " in unknown.summary()


def test_sqlite_identical_lines_from_different_places_are_different_rows(db: Path) -> None:
    line = "20240131 14:02:07,db1,root,localhost,5,12,WRITE,mysql,table_stats,"
    with SQLiteSink(db) as sink:
        sink.write([event(1, line), event(2, line), event(2, line)])
        assert len(rows(sink)) == 2


def test_sqlite_keeps_non_utf8_query_bytes_exactly(db: Path) -> None:
    written = [parse_line(NON_UTF8_LINE), parse_line(LINE)]
    with SQLiteSink(db) as sink:
        sink.write(written)
        lossy, exact = rows(sink)
    assert lossy["object"] == "select \ufffd\ufffd from t where a = 'café'"
    assert lossy["object_bytes"] == written[0].object_bytes
    assert exact["object_bytes"] is None
    recovered = [row["object_bytes"] or row["object"].encode() for row in (lossy, exact)]
    assert recovered == [item.object_bytes for item in written]


@given(audit_events())
def test_sqlite_rows_give_back_every_byte(item: AuditEvent) -> None:
    with SQLiteSink(sqlite3.connect(":memory:")) as sink:
        sink.write([item])
        (row,) = rows(sink)
    exact = {name: base64.b64decode(v) for name, v in json.loads(row["raw_fields"] or "{}").items()}
    assert (row["object_bytes"] or row["object"].encode()) == item.object_bytes
    for name in ("serverhost", "username", "host", "database"):
        expected = getattr(item, name).encode("utf-8", "surrogateescape")
        assert exact.get(name, row[name].encode()) == expected
    assert (row["connection_id"], row["query_id"]) == (item.connection_id, item.query_id)


def test_sqlite_keeps_other_non_utf8_fields_in_raw_fields(db: Path) -> None:
    item = parse_line(NON_UTF8_NAMES)
    with SQLiteSink(db) as sink:
        sink.write([item])
        (row,) = rows(sink)
    assert (row["username"], row["database"], row["object"]) == (
        "r\ufffdot",
        "sh\ufffdp",
        "t\ufffdble",
    )
    assert row["object_bytes"] == b"t\xe4ble"
    raw = {name: base64.b64decode(value) for name, value in json.loads(row["raw_fields"]).items()}
    assert raw == {"username": b"r\xf6ot", "database": b"sh\xf6p"}


def test_sqlite_keeps_nul_in_text(db: Path) -> None:
    with SQLiteSink(db) as sink:
        sink.write([parse_line(NUL_LINE)])
        (row,) = rows(sink)
    assert row["object"] == "select \x00 from t"
    assert row["object_bytes"] is None


def test_sqlite_stores_dead_letters_idempotently(db: Path) -> None:
    refused = parse_line(NON_UTF8_LINE)
    items = [letter(), letter("sink", raw=NON_UTF8_LINE, event=refused)]
    with SQLiteSink(db) as sink:
        sink.write(items)
        sink.write([*items, event()])
        stored = rows(sink, "dead_letters")
        assert len(rows(sink)) == 1
    assert [row["raw"] for row in stored] == [items[0].raw, NON_UTF8_LINE]
    assert [row["stage"] for row in stored] == ["line", "sink"]
    assert stored[0]["event"] is None
    assert stored[1]["event_key"] == refused.key
    assert event_from_dict(json.loads(stored[1]["event"])) == refused
    assert stored[0]["origin_line_number"] == 7


def test_sqlite_refuses_ids_beyond_64_bits_and_stores_the_rest(db: Path) -> None:
    huge = event(2, HUGE_ID_LINE)
    batch = [event(1), huge, event(3)]
    with SQLiteSink(db) as sink:
        with pytest.raises(Refused) as raised:
            sink.write(batch)
        assert raised.value.events == (huge,)
        assert "connection_id" in raised.value.reason
        assert [row["key"] for row in rows(sink)] == [batch[0].key, batch[2].key]


def test_sqlite_a_failing_write_stores_nothing_of_its_batch(db: Path) -> None:
    with SQLiteSink(db) as sink:
        sink.connection.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON audit_events WHEN NEW.query_id = 99 "
            "BEGIN SELECT RAISE(ABORT, 'boom'); END"
        )
        bad = parse_line(LINE.replace(",12,", ",99,"))
        with pytest.raises(sqlite3.IntegrityError, match="boom"):
            sink.write([*events(3), bad, letter()])
        assert rows(sink) == []
        assert rows(sink, "dead_letters") == []
        assert not sink.connection.in_transaction
        sink.write(events(3))
        assert len(rows(sink)) == 3


def test_sqlite_waits_for_another_writer_then_writes(db: Path) -> None:
    with SQLiteSink(db, timeout=10) as sink:
        other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.5, other.execute, args=("COMMIT",))
        release.start()
        began = time.monotonic()
        sink.write(events(2))
        assert time.monotonic() - began >= 0.4
        release.join()
        other.close()
        assert len(rows(sink)) == 2


def test_sqlite_gives_up_after_its_timeout(db: Path) -> None:
    with SQLiteSink(db, timeout=0.2) as sink:
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            sink.write(events(2))
        other.execute("ROLLBACK")
        other.close()
        sink.write(events(2))
        assert len(rows(sink)) == 2


def test_sqlite_leaves_a_connection_it_was_given_open(db: Path) -> None:
    connection = sqlite3.connect(db)
    with SQLiteSink(connection) as sink:
        sink.write(events(2))
    assert connection.execute("SELECT count(*) FROM audit_events").fetchone() == (2,)
    connection.close()


def test_sqlite_writes_inside_the_caller_s_transaction_as_a_savepoint(db: Path) -> None:
    connection = sqlite3.connect(db, isolation_level=None)
    sink = SQLiteSink(connection)
    connection.execute("BEGIN")
    sink.write(events(2))
    assert connection.in_transaction
    connection.execute("ROLLBACK")
    assert connection.execute("SELECT count(*) FROM audit_events").fetchone() == (0,)
    sink.write(events(2))
    assert not connection.in_transaction
    connection.close()


def test_sqlite_table_names_are_quoted(db: Path) -> None:
    with SQLiteSink(db, table='my "events"; --', dead_letter_table="letters") as sink:
        sink.write([event(), letter()])
        assert len(rows(sink, 'my ""events""; --')) == 1
        assert len(rows(sink, "letters")) == 1


def test_sqlite_sink_can_be_shared_between_threads(
    db: Path, write_concurrently: Callable[..., list[BaseException]]
) -> None:
    with SQLiteSink(db) as sink:
        errors = write_concurrently(sink, 8, events)
        assert errors == []
        assert len(rows(sink)) == 8 * 25 + 25


def test_sqlite_sink_rejects_writes_after_close(db: Path) -> None:
    sink = SQLiteSink(db)
    sink.close()
    with pytest.raises(ValueError, match="closed"):
        sink.write(events(1))


def _write_overlapping(path: str, worker: int, start: Any) -> None:
    """One writer process: its own sink, batches overlapping the other workers' events."""
    start.wait()
    numbers = list(range(worker * 60, worker * 60 + 150))
    random.Random(worker).shuffle(numbers)
    with SQLiteSink(path) as sink:
        for index in range(0, len(numbers), 10):
            sink.write([event(number) for number in numbers[index : index + 10]])


def test_sqlite_concurrent_processes_store_exactly_the_union(db: Path) -> None:
    run_at_once(_write_overlapping, [(str(db), n) for n in range(4)], timeout=120)
    expected = {event(number).key for number in range(0, 3 * 60 + 150)}
    with SQLiteSink(db) as sink:
        keys = [row["key"] for row in rows(sink)]
    assert len(keys) == len(expected)
    assert set(keys) == expected


# --- SQL tables of earlier versions ----------------------------------------------------------

#: A SQLite database made by auditsync before the origin's derived members, and its
#: inputs (make.py there says how).
BEFORE_DERIVED = Path(__file__).parent / "data" / "sqlite-before-derived"
_DERIVED = ("origin_rds_instance", "origin_rds_cluster")


def _columns(connection: sqlite3.Connection, table: str) -> tuple[str, ...]:
    return tuple(row[1] for row in connection.execute(f"PRAGMA table_info({table})"))


def _old_database(tmp_path: Path) -> Path:
    for name in ("audit.db", "input.log", "kinesis-event.json"):
        shutil.copy(BEFORE_DERIVED / name, tmp_path / name)
    return tmp_path / "audit.db"


def _stored(path: Path) -> list[AuditEvent]:
    from auditsync._stored import database_events

    stored: list[AuditEvent] = []
    for block in database_events(str(path)):
        assert isinstance(block, Events), block
        stored += block.events
    return stored


def test_an_old_sqlite_table_gains_the_columns_it_lacks(tmp_path: Path) -> None:
    database = _old_database(tmp_path)
    old = sqlite3.connect(database)
    old.row_factory = sqlite3.Row
    old_columns = _columns(old, "audit_events")
    # Made before the derived members and before the eleventh field (tls_version).
    assert not {*_DERIVED, "tls_version"} & set(old_columns)
    old_rows = [dict(row) for row in old.execute("SELECT * FROM audit_events ORDER BY rowid")]
    old.close()
    read_before = _stored(database)  # read-only: the derived columns are not needed
    assert len(read_before) == len(old_rows) == 8

    with SQLiteSink(database) as sink:
        # Added at the end, as ALTER TABLE adds them: the sink names its columns.
        assert _columns(sink.connection, "audit_events") == (
            *old_columns,
            *(column for column in EVENT_COLUMNS if column not in old_columns),
        )
        assert _columns(sink.connection, "dead_letters")[-2:] == _DERIVED
        assert set(_columns(sink.connection, "dead_letters")) == set(DEAD_LETTER_COLUMNS)
        new_rows = rows(sink)
        letters = rows(sink, "dead_letters")
    # Each old row keeps its cells; the derived ones follow from its log group.
    assert [{k: row[k] for k in old_rows[0]} for row in map(dict, new_rows)] == old_rows
    derived = {row["key"]: (row[_DERIVED[0]], row[_DERIVED[1]]) for row in new_rows}
    cloudwatch = {int(key): value for key, value in derived.items() if key.isdigit()}
    assert cloudwatch == {
        100: ("shop", None),
        101: ("shop", None),
        200: (None, "prod"),
        300: (None, None),
    }
    assert [v for k, v in derived.items() if not k.isdigit()] == [(None, None)] * 4  # files
    assert [(row[_DERIVED[0]], row[_DERIVED[1]]) for row in letters] == [("shop", None)]
    assert _stored(database) == read_before

    # Opened again: nothing to add; the same input again: every event already there.
    SQLiteSink(database).close()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "auditsync",
            "decode",
            "--to",
            "sqlite:audit.db",
            "input.log",
            "kinesis-event.json",
        ],
        cwd=tmp_path,
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert "8 delivered (0 new, 8 already present)" in result.stderr.decode()
    assert _stored(database) == read_before


def _open_old_table(path: str, start: Any) -> None:
    start.wait()
    SQLiteSink(path).close()


def test_processes_opening_an_old_sqlite_table_at_once_all_succeed(tmp_path: Path) -> None:
    database = _old_database(tmp_path)
    run_at_once(_open_old_table, [(str(database),)] * 4, timeout=60)
    check = sqlite3.connect(database)
    assert sorted(_columns(check, "audit_events")) == sorted(EVENT_COLUMNS)
    check.close()


def _made_without(connection: sqlite3.Connection, missing: Collection[str]) -> list[str]:
    """Table ``t`` made again as a version without the ``missing`` columns made it, its
    rows kept; the columns it has."""
    kept = [column for column in EVENT_COLUMNS if column not in missing]
    definitions = ", ".join(f"{column} {_SQLITE_EVENT_TYPES[column]}" for column in kept)
    connection.execute(f"CREATE TABLE older ({definitions})")
    connection.execute(f"INSERT INTO older SELECT {', '.join(kept)} FROM t")
    connection.execute("DROP TABLE t")
    connection.execute("ALTER TABLE older RENAME TO t")
    connection.commit()
    return kept


#: The columns a table is made without, to stand for fields added later: one of each
#: form that may be NOT NULL (given the field's default), and optional ones.
_LATER = ("truncated", "dialect", "suffix", "connection_type", "origin_line_number", *_DERIVED)


def test_columns_of_any_form_are_added_with_their_fields_defaults(tmp_path: Path) -> None:
    item = parse_line(LINE, origin=Origin("/aws/rds/instance/db-1/audit", "db-1.log", "7"))
    assert not item.truncated
    assert item.dialect is Dialect.MARIADB
    assert item.suffix is None
    connection = sqlite3.connect(tmp_path / "older.db")
    with SQLiteSink(connection, table="t", dead_letter_table="d") as sink:
        sink.write([item])
    kept = _made_without(connection, _LATER)
    with SQLiteSink(connection, table="t", dead_letter_table="d"):
        pass
    assert _columns(connection, "t") == (*kept, *(c for c in EVENT_COLUMNS if c in _LATER))
    types = {row[1]: (row[2], row[3], row[4]) for row in connection.execute("PRAGMA table_info(t)")}
    assert types["truncated"] == ("INTEGER", 1, "0")
    assert types["dialect"] == ("TEXT", 1, "'mariadb'")
    assert types["suffix"] == ("TEXT", 0, None)
    connection.row_factory = sqlite3.Row
    [row] = connection.execute("SELECT * FROM t").fetchall()
    assert event_from_row(row) == item
    assert (row["origin_rds_instance"], row["origin_rds_cluster"]) == ("db-1", None)
    connection.close()


#: The event's fields with a default: what a field added later has (AuditEvent's rule).
_DEFAULTS = {
    field.name: field.default
    for field in attrs.fields(AuditEvent)
    if field.default is not attrs.NOTHING and field.name != "origin"
}


@settings(max_examples=60, deadline=None)
@given(st.sets(st.sampled_from([*_DEFAULTS, *_DERIVED]), min_size=1), audit_events())
def test_any_columns_of_fields_added_later_are_added_and_old_rows_read_back(
    missing: set[str], item: AuditEvent
) -> None:
    """A table made without some columns (as by a version before their fields) gains
    them on open, whatever their forms; its rows read back with each such field's
    default, as the version that stored them knew the event."""
    assume(sql_refusal(item) is None)
    connection = sqlite3.connect(":memory:")
    with SQLiteSink(connection, table="t", dead_letter_table="d") as sink:
        sink.write([item])
    _made_without(connection, missing)
    with SQLiteSink(connection, table="t", dead_letter_table="d") as sink:
        assert sorted(_columns(connection, "t")) == sorted(EVENT_COLUMNS)
        assert sink.write([item]) == Stored(0, 1)  # its key, unchanged, already there
    connection.row_factory = sqlite3.Row
    [row] = connection.execute("SELECT * FROM t").fetchall()
    defaults = {name: value for name, value in _DEFAULTS.items() if name in missing}
    assert event_from_row(row) == attrs.evolve(item, **defaults)
    connection.close()


def test_outputs_of_a_version_before_a_field_read_back_with_its_default(tmp_path: Path) -> None:
    """JSON without the members, and a SQLite table without the columns, of fields with
    a default (as a version before them wrote): the fields take their defaults. Read-only,
    the table is not migrated."""
    item = attrs.evolve(event(3), connection_type="SSL", truncated=True, prefix="<13>")
    later = {"connection_type": None, "truncated": False, "prefix": None}
    document = event_to_dict(item)
    for name in later:
        del document[name]
    del document["origin"]["line_number"]
    expected = attrs.evolve(item, origin=attrs.evolve(item.origin, line_number=None), **later)
    assert event_from_dict(document) == expected
    without = event_to_dict(item)
    del without["timestamp"]  # no default: still an error
    with pytest.raises(AuditSyncError, match="no member 'timestamp'"):
        event_from_dict(without)

    connection = sqlite3.connect(tmp_path / "older.db")
    with SQLiteSink(connection, table="t", dead_letter_table="d") as sink:
        sink.write([item])
    _made_without(connection, [*later, "origin_line_number", *_DERIVED])
    connection.execute("ALTER TABLE t RENAME TO audit_events")
    connection.commit()
    connection.close()
    assert _stored(tmp_path / "older.db") == [expected]


def test_a_column_without_a_default_cannot_be_added_and_says_which() -> None:
    columns = [column for column in EVENT_COLUMNS if column != "serverhost"]
    with pytest.raises(AuditSyncError, match=r"audit_events.*serverhost.*no default"):
        migration("audit_events", columns, EVENT_COLUMNS, _SQLITE_EVENT_TYPES)
    optional = {**_SQLITE_EVENT_TYPES, "serverhost": "TEXT"}
    plan = migration("audit_events", columns, EVENT_COLUMNS, optional)
    assert plan.columns == (("serverhost", "TEXT", None),)
    plan = migration("audit_events", EVENT_COLUMNS, EVENT_COLUMNS, _SQLITE_EVENT_TYPES)
    assert plan.columns == plan.derived == ()


# --- PostgresSink without a server --------------------------------------------------------


def test_sinks_import_without_psycopg() -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "import auditsync.sinks as s\n"
        "try:\n"
        "    s.PostgresSink('dbname=x')\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'auditsync[postgres]'" in done.stdout


@pytest.mark.parametrize("name", ["", "a.b.c", ".t", "s."])
def test_postgres_sink_rejects_bad_table_names(name: str) -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(ValueError, match=r"'schema\.table'"):
        PostgresSink("dbname=unused", table=name, create=False)


@pytest.mark.parametrize("replace", [False, True])
def test_sqlite_sink_fails_when_its_file_is_deleted_or_replaced(
    tmp_path: Path, replace: bool
) -> None:
    path = tmp_path / "audit.db"
    sink = SQLiteSink(path)
    sink.write([event(1)])
    path.unlink()
    if replace:
        SQLiteSink(path).close()
    with pytest.raises(sqlite3.OperationalError, match="deleted or replaced"):
        sink.write([event(2)])
    sink.close()


def test_sqlite_sink_in_memory_or_on_a_given_connection_is_not_checked() -> None:
    for sink in (SQLiteSink(":memory:"), SQLiteSink(sqlite3.connect(":memory:"))):
        sink.write([event(1)])
        sink.write([event(2)])
        assert sink.connection.execute("SELECT count(*) FROM audit_events").fetchone() == (2,)
        sink.close()


# --- no password from a conninfo in what is printed or raised (issue 16) -----------------------

#: Each form of conninfo libpq reads, holding the password ``S3cr3t-pw``.
CONNINFOS = [
    "postgresql://alice:S3cr3t-pw@127.0.0.1:1/audit",
    "postgres://alice:S3cr3t-pw@127.0.0.1:1/audit",
    "postgresql://alice:S3cr3t%2Dpw@127.0.0.1:1/audit",
    "postgresql://127.0.0.1:1/audit?user=alice&password=S3cr3t-pw&sslmode=disable",
    "postgresql://127.0.0.1:1/audit?user=alice&pass%77ord=S3cr3t%2dpw",
    "host=127.0.0.1 port=1 user=alice password=S3cr3t-pw dbname=audit",
    "host=127.0.0.1 port=1 user=alice password='S3cr3t-pw' dbname=audit",
    "host=127.0.0.1 port=1 user=alice sslpassword=S3cr3t-pw dbname=audit",
]


@pytest.mark.parametrize("conninfo", CONNINFOS)
def test_redact_conninfo_hides_the_password_of_every_form(conninfo: str) -> None:
    redacted = redact_conninfo(conninfo)
    assert "S3cr3t" not in redacted
    assert "***" in redacted
    assert "alice" in redacted


@given(
    st.text(st.characters(codec="utf-8", exclude_characters="\n"), min_size=4, max_size=20),
    st.sampled_from(["url", "parameter", "keyword"]),
)
@settings(max_examples=500)
@example("000'", "keyword")  # found by Hypothesis: an escaped quote stripped as the closing one
def test_redact_conninfo_hides_any_password(password: str, form: str) -> None:
    from urllib.parse import quote

    if form == "url":
        conninfo = f"postgresql://alice:{quote(password, safe='')}@db.internal:5432/audit"
    elif form == "parameter":
        conninfo = f"postgresql://db.internal/audit?password={quote(password, safe='')}&x=1"
    else:
        escaped = password.replace("\\", "\\\\").replace("'", "\\'")
        conninfo = f"host=db.internal password='{escaped}' dbname=audit"
    mention = f"cannot connect to {conninfo}: server said {password!r}"
    redacted = redact_conninfo(mention, conninfo)
    assert "db.internal" in redacted
    assert password not in redacted.replace("***", "") or password in mention.replace(password, "")


def test_a_connection_error_of_postgres_sink_holds_no_password() -> None:
    psycopg = pytest.importorskip("psycopg")
    # libpq quotes the whole URI back in this error.
    with pytest.raises(psycopg.Error) as caught:
        PostgresSink("postgresql://alice:S3cr3t-pw@[::1:5432/audit")
    assert "S3cr3t" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
