"""The ``auditsync`` command, end to end: the real command in a subprocess, on every input
shape, built in a temporary directory.

The contract: every shape is recognised on its own (raw logs of every dialect, gzip and
rotated ``.1.gz``, directories, standard input, Firehose S3 objects, export objects, saved
Lambda events, files of messages); each event comes out once, in input order, as the
library's own JSON form; what cannot be read goes to the dead-letter file with its exact
bytes, the error and where it came from; the exit status says what happened (0 all
delivered or skipped, 1 dead letters, 2 usage, 3 the sink failed), usage errors are one
line and never a traceback; memory stays flat however large the input.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import importlib.metadata
import io
import os
import random
import re
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Generator, Iterator, Sequence
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import orjson
import pytest
from bombs import zero_bomb

import auditsync
from auditsync import AuditEvent, Origin, _native, parse_line
from auditsync import _cli as cli_module
from auditsync.sinks import event_to_dict
from auditsync.testing import kinesis_event, to_payload

CLI = [sys.executable, "-m", "auditsync"]
SUMMARY = re.compile(
    r"(?P<records>\d+) records, (?P<events>\d+) events: (?P<delivered>\d+) delivered"
    r"(?: \((?P<new>\d+) new, (?P<present>\d+) already present\))?, "
    r"(?P<filtered>\d+) filtered, (?P<control>\d+) control, "
    r"(?P<dead_lettered>\d+) dead-lettered, (?P<failed>\d+) failed in "
)

MARIADB = [
    "20240131 14:02:07,db1,app,10.0.0.7,42,1001,QUERY,shop,'insert into t values (\\'a,b\\')',0",
    "20240131 14:02:07,db1,app,10.0.0.7,42,1001,WRITE,shop,t,",
    "20240131 14:02:09,db1,bob,10.0.0.8,43,0,FAILED_CONNECT,,,1045",
    "20240131 14:02:10,db1,carol,10.0.0.9,44,1002,QUERY,hr,'select * from salaries',1142",
]
AURORA = [
    "1653053459680124,c731-instance-1,admin,52.94.133.136,35,698024,WRITE,testdb,test2,0",
    "1653053459680100,c731-instance-1,admin,52.94.133.136,35,698024,QUERY,testdb,"
    "'insert into test2 values (1)',0",
    "1653053460000000,c731-instance-1,rdsadmin,localhost,36,0,CONNECT,,,0",
]
RDS = [
    "20221201 14:07:05,ip-10-22-1-51,rdsadmin,localhost,821,0,CONNECT,,,0,SOCKET",
    "20221201 14:07:06,ip-10-22-1-51,rdsadmin,localhost,821,5,QUERY,mysql,'select 1',0,,",
    "20221201 14:07:07,ip-10-22-1-51,app,10.1.2.3,822,0,FAILED_CONNECT,,,1045,SSL",
]
SYSLOG = [
    "2024-01-31T14:02:07+00:00 dbhost mysql-server_auditing: prod "
    "db1,app,10.0.0.7,42,1001,QUERY,shop,'select 1',0",
    "Jan 31 14:02:08 dbhost mysql-server_auditing:  db1,app,10.0.0.7,42,1002,WRITE,shop,t,",
    "<14>Nov 27 05:43:16 mysql-server_auditing: prod db1,app,h,42,0,DISCONNECT,shop,,0",
]
JUNK = b"this is not an audit record"
GROUP = "/aws/rds/cluster/prod/audit"
STREAM = "prod-instance-1.audit.log.0"


# --- running the command ------------------------------------------------------------------


def run(
    cwd: Path, *args: str, stdin: bytes | None = None, stdout: Any = subprocess.PIPE
) -> subprocess.CompletedProcess[bytes]:
    """The real command, in ``cwd``, so that paths (and origins) are as a user types them."""
    return subprocess.run(
        [*CLI, *args],
        input=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def output(result: subprocess.CompletedProcess[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def summary(result: subprocess.CompletedProcess[bytes] | str) -> dict[str, int]:
    """The counts of the summary line on stderr (the last one, if there are several)."""
    text = result if isinstance(result, str) else result.stderr.decode()
    found = [SUMMARY.match(line) for line in text.splitlines()]
    counts = [match.groupdict() for match in found if match is not None]
    assert counts, f"no summary on stderr: {text!r}"
    return {name: int(value) for name, value in counts[-1].items() if value is not None}


def assert_clean(result: subprocess.CompletedProcess[bytes], status: int = 0) -> dict[str, int]:
    """Exit ``status`` with nothing on stderr but the summary (no progress bar, no log)."""
    text = result.stderr.decode()
    assert result.returncode == status, text
    assert len(text.splitlines()) == 1, text
    assert SUMMARY.match(text), text
    return summary(result)


def assert_usage_error(result: subprocess.CompletedProcess[bytes], *words: str) -> str:
    """Exit 2 with one line on stderr that says ``words``, and no traceback."""
    text = result.stderr.decode()
    assert result.returncode == 2, text
    assert "Traceback" not in text
    assert len(text.splitlines()) == 1, text
    assert text.startswith("auditsync: ")
    for word in words:
        assert word in text
    return text


def expected(
    line: str | bytes, path: str, number: int | None, tz: tzinfo = UTC, **origin: Any
) -> dict[str, Any]:
    """The JSON the command should write for ``line``: the library's own reading of it."""
    place = Origin(path=path, line_number=number, **origin)
    return event_to_dict(parse_line(line, origin=place, tz=tz))


def expected_log(lines: Sequence[str], path: str) -> list[dict[str, Any]]:
    return [expected(line, path, number) for number, line in enumerate(lines, 1)]


def write_log(path: Path, lines: Sequence[str | bytes], *, compress: bool = False) -> Path:
    data = b"".join((ln if isinstance(ln, bytes) else ln.encode()) + b"\n" for ln in lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def message(
    lines: Sequence[str], first_id: int = 0, *, control: bool = False, stream: str = STREAM
) -> bytes:
    """One CloudWatch Logs subscription message as compact JSON; ``stream`` names its log
    stream, one server's log."""
    if control:
        return orjson.dumps(
            {
                "messageType": "CONTROL_MESSAGE",
                "owner": "CloudwatchLogs",
                "logGroup": "",
                "logStream": "",
                "subscriptionFilters": [],
                "logEvents": [
                    {
                        "id": "",
                        "timestamp": 1432826855000,
                        "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose.",
                    }
                ],
            }
        )
    return orjson.dumps(
        {
            "messageType": "DATA_MESSAGE",
            "owner": "123456789012",
            "logGroup": GROUP,
            "logStream": stream,
            "subscriptionFilters": ["to-firehose"],
            "policyLevel": "ACCOUNT_LEVEL_POLICY",
            "logEvents": [
                {"id": event_id(first_id + n), "timestamp": 1706709727000, "message": line}
                for n, line in enumerate(lines)
            ],
        }
    )


def event_id(number: int) -> str:
    return f"{31953106606966983378809025079804211143289615424298221 + number:056d}"


def expected_messages(
    lines: Sequence[str], first_id: int, path: str, number: int | None = None, **origin: Any
) -> list[dict[str, Any]]:
    return [
        expected(
            line,
            path,
            number,
            **{"log_group": GROUP, "log_stream": STREAM, **origin},
            event_id=event_id(first_id + n),
        )
        for n, line in enumerate(lines)
    ]


# --- raw logs of every dialect ------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "dialect"),
    [(MARIADB, "mariadb"), (AURORA, "aurora"), (RDS, "rds-mysql"), (SYSLOG, "mariadb")],
    ids=["mariadb", "aurora", "rds-mysql", "syslog"],
)
def test_raw_log_of_each_dialect(tmp_path: Path, lines: list[str], dialect: str) -> None:
    write_log(tmp_path / "server_audit.log", lines)
    result = run(tmp_path, "decode", "server_audit.log")
    counts = assert_clean(result)
    events = output(result)
    assert events == expected_log(lines, "server_audit.log")
    assert {event["dialect"] for event in events} == {dialect}
    assert counts == {
        "records": len(lines),
        "events": len(lines),
        "delivered": len(lines),
        "filtered": 0,
        "control": 0,
        "dead_lettered": 0,
        "failed": 0,
    }


def test_json_lines_hold_every_field_as_documented(tmp_path: Path) -> None:
    write_log(tmp_path / "server_audit.log", MARIADB[:1] + RDS[:1])
    first, second = output(run(tmp_path, "decode", "server_audit.log"))
    assert first["timestamp"] == "2024-01-31T14:02:07.000000Z"
    assert (first["username"], first["host"], first["connection_id"]) == ("app", "10.0.0.7", 42)
    assert (first["operation"], first["database"]) == ("QUERY", "shop")
    assert first["object"] == "insert into t values ('a,b')"
    assert (first["retcode"], first["truncated"], first["prefix"]) == (0, False, None)
    assert first["origin"] == {
        "log_group": None,
        "log_stream": None,
        "event_id": None,
        "shard_id": None,
        "sequence_number": None,
        "path": "server_audit.log",
        "line_number": 1,
        "rds_instance": None,
        "rds_cluster": None,
    }
    assert re.fullmatch(r"[0-9a-f]{32}", first["key"])
    assert (second["connection_type"], second["dialect"]) == ("SOCKET", "rds-mysql")
    assert second["origin"]["line_number"] == 2
    assert first["key"] != second["key"]


def test_identical_lines_are_distinct_events_with_distinct_keys(tmp_path: Path) -> None:
    write_log(tmp_path / "server_audit.log", [MARIADB[1]] * 5)
    events = output(run(tmp_path, "decode", "server_audit.log"))
    assert len({event["key"] for event in events}) == 5


def test_syslog_line_keeps_its_header_as_prefix(tmp_path: Path) -> None:
    write_log(tmp_path / "syslog", SYSLOG[:1])
    (event,) = output(run(tmp_path, "decode", "syslog"))
    assert event["prefix"] == "2024-01-31T14:02:07+00:00 dbhost mysql-server_auditing: prod "
    assert (event["timestamp"], event["object"]) == ("2024-01-31T14:02:07.000000Z", "select 1")


def test_gzip_and_rotated_logs(tmp_path: Path) -> None:
    write_log(tmp_path / "server_audit.log", MARIADB)
    write_log(tmp_path / "server_audit.log.gz", MARIADB, compress=True)
    write_log(tmp_path / "server_audit.log.1.gz", AURORA, compress=True)
    result = run(tmp_path, "decode", "server_audit.log.1.gz", "server_audit.log.gz")
    assert_clean(result)
    assert output(result) == [
        *expected_log(AURORA, "server_audit.log.1.gz"),
        *expected_log(MARIADB, "server_audit.log.gz"),
    ]
    plain = output(run(tmp_path, "decode", "server_audit.log"))
    unzipped = output(run(tmp_path, "decode", "server_audit.log.gz"))
    drop = ("key", "origin")
    assert [{k: v for k, v in e.items() if k not in drop} for e in plain] == [
        {k: v for k, v in e.items() if k not in drop} for e in unzipped
    ]


def test_a_directory_tree_of_mixed_shapes_in_path_order(tmp_path: Path) -> None:
    write_log(tmp_path / "logs/b/server_audit.log", RDS)
    write_log(tmp_path / "logs/a/server_audit.log.1.gz", AURORA, compress=True)
    write_log(tmp_path / "logs/a/server_audit.log", MARIADB[:2])
    export = [f"2024-01-31T14:02:0{n}.000Z {line}" for n, line in enumerate(SYSLOG[:1])]
    write_log(tmp_path / "logs/c/export/000000.gz", export, compress=True)
    (tmp_path / "logs/d").mkdir()
    (tmp_path / "logs/d/firehose-object").write_bytes(gzip.compress(message(MARIADB[2:], 7)))
    result = run(tmp_path, "decode", "logs")
    assert_clean(result)
    assert output(result) == [
        *expected_log(MARIADB[:2], "logs/a/server_audit.log"),
        *expected_log(AURORA, "logs/a/server_audit.log.1.gz"),
        *expected_log(RDS, "logs/b/server_audit.log"),
        *expected_log(SYSLOG[:1], "logs/c/export/000000.gz"),
        *expected_messages(MARIADB[2:], 7, "logs/d/firehose-object", 1),
    ]


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_standard_input(tmp_path: Path, compress: bool) -> None:
    data = "".join(line + "\n" for line in AURORA).encode()
    stdin = gzip.compress(data) if compress else data
    implicit = run(tmp_path, "decode", stdin=stdin)
    assert_clean(implicit)
    assert output(implicit) == expected_log(AURORA, "-")
    explicit = run(tmp_path, "decode", "-", stdin=stdin)
    assert output(explicit) == output(implicit)


def test_standard_input_among_files(tmp_path: Path) -> None:
    write_log(tmp_path / "first.log", MARIADB[:1])
    write_log(tmp_path / "last.log", RDS[:1])
    stdin = (AURORA[0] + "\n").encode()
    result = run(tmp_path, "decode", "first.log", "-", "last.log", stdin=stdin)
    assert output(result) == [
        *expected_log(MARIADB[:1], "first.log"),
        *expected_log(AURORA[:1], "-"),
        *expected_log(RDS[:1], "last.log"),
    ]


def test_a_raw_newline_in_a_name_is_rejoined(tmp_path: Path) -> None:
    split = "20240131 14:02:08,db1,we\nird,10.0.0.7,45,1003,QUERY,sh\nop,'select 2',0"
    write_log(tmp_path / "server_audit.log", [MARIADB[0], split, MARIADB[2]])
    result = run(tmp_path, "decode", "server_audit.log")
    assert_clean(result)
    events = output(result)
    assert [(e["username"], e["database"]) for e in events] == [
        ("app", "shop"),
        ("we\nird", "sh\nop"),
        ("bob", ""),
    ]
    assert [e["origin"]["line_number"] for e in events] == [1, 2, 5]


# --- CloudWatch shapes ------------------------------------------------------------------------


def test_firehose_object_of_gzip_members_without_delimiter(tmp_path: Path) -> None:
    aurora = "c731-instance-1.audit.log.0"  # another server: a log stream of its own
    members = [
        message(MARIADB[:2], 0),
        message([], control=True),
        message(AURORA, 10, stream=aurora),
    ]
    path = tmp_path / "audit-1-2024-01-31-14-02-07-uuid"
    path.write_bytes(b"".join(gzip.compress(member) for member in members))
    result = run(tmp_path, "decode", path.name)
    counts = assert_clean(result)
    assert output(result) == [
        *expected_messages(MARIADB[:2], 0, path.name, 1),
        *expected_messages(AURORA, 10, path.name, 3, log_stream=aurora),
    ]
    assert (counts["records"], counts["delivered"], counts["control"]) == (6, 5, 1)


def test_firehose_gzip_around_cloudwatch_gzip(tmp_path: Path) -> None:
    inner = gzip.compress(message(RDS, 0)) + gzip.compress(message(MARIADB, 3))
    (tmp_path / "object.gz").write_bytes(gzip.compress(inner))
    result = run(tmp_path, "decode", "object.gz")
    assert_clean(result)
    assert output(result) == [
        *expected_messages(RDS, 0, "object.gz", 1),
        *expected_messages(MARIADB, 3, "object.gz", 2),
    ]


@pytest.mark.parametrize("separator", [b"\n", b""], ids=["newlines", "back-to-back"])
def test_file_of_messages(tmp_path: Path, separator: bytes) -> None:
    (tmp_path / "messages.json").write_bytes(
        separator.join([message(AURORA[:1], 0), message(AURORA[1:], 1)]) + separator
    )
    result = run(tmp_path, "decode", "messages.json")
    assert_clean(result)
    assert output(result) == [
        *expected_messages(AURORA[:1], 0, "messages.json", 1),
        *expected_messages(AURORA[1:], 1, "messages.json", 2),
    ]


def test_export_object(tmp_path: Path) -> None:
    lines = [*MARIADB, *AURORA]
    stamped = [f"2024-01-31T14:0{n}:19.000Z {line}" for n, line in enumerate(lines)]
    write_log(tmp_path / "exports/task/stream/000000.gz", stamped, compress=True)
    result = run(tmp_path, "decode", "exports/task/stream/000000.gz")
    assert_clean(result)
    assert output(result) == expected_log(lines, "exports/task/stream/000000.gz")


def test_saved_kinesis_event(tmp_path: Path) -> None:
    payloads = [to_payload(message(MARIADB[:2], 0)), to_payload(message(RDS, 2))]
    event = kinesis_event(payloads, shard="shardId-000000000003")
    (tmp_path / "kinesis.json").write_bytes(orjson.dumps(event, option=orjson.OPT_INDENT_2))
    sequences = [record["kinesis"]["sequenceNumber"] for record in event["Records"]]
    result = run(tmp_path, "decode", "kinesis.json")
    assert_clean(result)
    shard = "shardId-000000000003"
    assert output(result) == [
        *expected_messages(
            MARIADB[:2], 0, "kinesis.json", 1, shard_id=shard, sequence_number=sequences[0]
        ),
        *expected_messages(RDS, 2, "kinesis.json", 1, shard_id=shard, sequence_number=sequences[1]),
    ]


def test_saved_subscription_event(tmp_path: Path) -> None:
    event = {"awslogs": {"data": to_payload(message(AURORA, 0))}}
    (tmp_path / "event.json").write_bytes(orjson.dumps(event))
    result = run(tmp_path, "decode", "event.json")
    assert_clean(result)
    assert output(result) == expected_messages(AURORA, 0, "event.json", 1)


def test_saved_firehose_event(tmp_path: Path) -> None:
    event = {
        "invocationId": "00540a87-5050-496a-84e4-e7d92bbaf5e2",
        "deliveryStreamArn": "arn:aws:firehose:eu-west-1:123456789012:deliverystream/audit",
        "region": "eu-west-1",
        "records": [
            {"recordId": "rec-a", "data": to_payload(message(RDS, 0))},
            {"recordId": "rec-b", "data": to_payload(message([], control=True))},
        ],
    }
    (tmp_path / "firehose-event.json").write_bytes(orjson.dumps(event))
    result = run(tmp_path, "decode", "firehose-event.json")
    counts = assert_clean(result)
    assert output(result) == expected_messages(
        RDS, 0, "firehose-event.json", 1, sequence_number="rec-a"
    )
    assert counts["control"] == 1


def test_format_forces_the_shape(tmp_path: Path) -> None:
    # The first message of this export is junk, so it does not look like an export.
    stamped = [f"2024-01-31T14:02:19.000Z {JUNK.decode()}", f"2024-01-31T14:02:20.000Z {AURORA[0]}"]
    write_log(tmp_path / "000000.gz", stamped, compress=True)
    guessed = run(tmp_path, "decode", "000000.gz")
    assert (guessed.returncode, summary(guessed)["dead_lettered"]) == (1, 2)
    forced = run(tmp_path, "decode", "--format", "export", "000000.gz")
    assert forced.returncode == 1
    assert output(forced) == [expected(AURORA[0], "000000.gz", 2)]
    assert summary(forced)["dead_lettered"] == 1


def test_dialect_is_honoured_and_checked(tmp_path: Path) -> None:
    write_log(tmp_path / "rds.log", RDS)
    honoured = run(tmp_path, "decode", "--dialect", "rds-mysql", "rds.log")
    assert_clean(honoured)
    assert {event["dialect"] for event in output(honoured)} == {"rds-mysql"}
    # The RDS connection type and query trailer are no MariaDB structure.
    wrong = run(
        tmp_path, "decode", "--dialect", "mariadb", "--dead-letter", "dead.jsonl", "rds.log"
    )
    assert wrong.returncode == 1
    assert summary(wrong)["dead_lettered"] == len(RDS)
    assert wrong.stdout == b""
    assert len(read_json_lines(tmp_path / "dead.jsonl")) == len(RDS)


# --- dead letters -----------------------------------------------------------------------------


def test_dead_letters_keep_the_exact_bytes_the_error_and_the_place(tmp_path: Path) -> None:
    not_utf8 = b"\xff\xfe garbage \x00 with NUL"
    bad_id = MARIADB[0].replace(",42,", ",forty-two,").encode()
    write_log(tmp_path / "server_audit.log", [MARIADB[0], JUNK, MARIADB[1], not_utf8, bad_id])
    result = run(tmp_path, "decode", "--dead-letter", "dead.jsonl", "server_audit.log")
    assert result.returncode == 1
    assert len(output(result)) == 2
    letters = read_json_lines(tmp_path / "dead.jsonl")
    assert [base64.b64decode(letter["raw_base64"]) for letter in letters] == [
        JUNK,
        not_utf8,
        bad_id,
    ]
    assert [(letter["origin"]["path"], letter["origin"]["line_number"]) for letter in letters] == [
        ("server_audit.log", 2),
        ("server_audit.log", 4),
        ("server_audit.log", 5),
    ]
    assert {letter["stage"] for letter in letters} == {"line"}
    assert "not a server_audit record" in letters[0]["error"]
    assert "connection id" in letters[2]["error"]
    assert all(letter["event"] is None and letter["key"] for letter in letters)
    assert summary(result)["dead_lettered"] == 3


def test_dead_letters_of_a_kinesis_event_name_the_record(tmp_path: Path) -> None:
    payloads = [to_payload(message(AURORA[:1], 0)), "this is not base64 of anything!"]
    event = kinesis_event(payloads, shard="shardId-000000000009")
    (tmp_path / "kinesis.json").write_bytes(orjson.dumps(event))
    result = run(tmp_path, "decode", "--dead-letter", "dead.jsonl", "kinesis.json")
    assert result.returncode == 1
    (letter,) = read_json_lines(tmp_path / "dead.jsonl")
    assert base64.b64decode(letter["raw_base64"]) == payloads[1].encode()
    assert letter["stage"] == "payload"
    assert letter["origin"]["shard_id"] == "shardId-000000000009"
    assert letter["origin"]["sequence_number"] == event["Records"][1]["kinesis"]["sequenceNumber"]
    assert letter["origin"]["path"] == "kinesis.json"
    assert len(output(result)) == 1


def test_dead_letter_of_a_bad_line_inside_a_message(tmp_path: Path) -> None:
    (tmp_path / "messages.json").write_bytes(message([AURORA[0], "garbage line"], 0))
    result = run(tmp_path, "decode", "--dead-letter", "dead.jsonl", "messages.json")
    assert result.returncode == 1
    (letter,) = read_json_lines(tmp_path / "dead.jsonl")
    assert base64.b64decode(letter["raw_base64"]) == b"garbage line"
    assert letter["origin"]["event_id"] == event_id(1)
    assert (letter["origin"]["path"], letter["origin"]["line_number"]) == ("messages.json", 1)


def test_without_a_dead_letter_file_dead_letters_are_told(tmp_path: Path) -> None:
    """Where and why, on stderr; the bytes only in a ``--dead-letter`` file."""
    write_log(tmp_path / "server_audit.log", [MARIADB[0], JUNK])
    result = run(tmp_path, "decode", "server_audit.log")
    assert result.returncode == 1
    text = result.stderr.decode()
    assert "server_audit.log:2: line:" in text
    assert base64.b64encode(JUNK).decode() not in text
    assert "Traceback" not in text


# --- SQLite -----------------------------------------------------------------------------------


def test_sqlite_output_and_a_second_run_adds_nothing(tmp_path: Path) -> None:
    write_log(tmp_path / "server_audit.log", [*MARIADB, MARIADB[1], MARIADB[1]])
    (tmp_path / "firehose").write_bytes(gzip.compress(message(AURORA, 0)))
    args = ("decode", "--to", "sqlite:audit.db", "server_audit.log", "firehose")
    first = run(tmp_path, *args)
    assert_clean(first)
    assert first.stdout == b""

    def rows() -> list[tuple[Any, ...]]:
        with sqlite3.connect(tmp_path / "audit.db") as connection:
            return connection.execute(
                "SELECT key, timestamp, username, operation, object, origin_path,"
                " origin_line_number, origin_event_id FROM audit_events ORDER BY key"
            ).fetchall()

    stored = rows()
    assert len(stored) == len(MARIADB) + 2 + len(AURORA)
    assert ("2024-01-31T14:02:07.000000Z", "app", "QUERY", "insert into t values ('a,b')") in [
        row[1:5] for row in stored
    ]
    assert {row[5] for row in stored} == {"server_audit.log", "firehose"}
    assert (summary(first)["new"], summary(first)["present"]) == (len(stored), 0)
    second = run(tmp_path, *args)
    counts = summary(second)  # taken again, stored once, and said so
    assert (counts["delivered"], counts["new"], counts["present"]) == (len(stored), 0, len(stored))
    assert rows() == stored


# --- filters, time zones, ordering ------------------------------------------------------------

FILTERED = [
    "20240131 14:00:00,db1,app,10.0.0.7,42,1,QUERY,shop,'select 1',0",
    "20240131 14:00:01,db1,app,10.0.0.7,42,2,WRITE,shop,orders,",
    "20240131 14:00:02,db1,rdsadmin,localhost,43,3,QUERY,mysql,'select 2',0",
    "20240131 14:00:03,db1,bob,10.0.0.8,44,0,FAILED_CONNECT,,,1045",
    "20240131 14:00:04,db1,app_ro,10.0.0.9,45,4,QUERY,shop_archive,'select 3',0",
    "20240131 14:00:05,db1,carol,10.0.0.9,46,5,READ,hr,salaries,",
]


@pytest.mark.parametrize(
    ("args", "kept"),
    [
        (["--operation", "QUERY"], [1, 3, 5]),
        (["--operation", "write", "--operation", "READ"], [2, 6]),
        (["--database", "shop"], [1, 2]),
        (["--database", "shop*", "--database", "hr"], [1, 2, 5, 6]),
        (["--user", "app"], [1, 2]),
        (["--user", "app*"], [1, 2, 5]),
        (["--exclude-user", "rdsadmin", "--exclude-user", "app*"], [4, 6]),
        (["--since", "2024-01-31T14:00:02"], [3, 4, 5, 6]),
        (["--until", "2024-01-31T14:00:02Z"], [1, 2]),
        (["--since", "2024-01-31T15:00:01+01:00", "--until", "2024-01-31T14:00:04"], [2, 3, 4]),
        (["--operation", "QUERY", "--user", "app*", "--since", "2024-01-31T14:00:01"], [5]),
    ],
)
def test_filters(tmp_path: Path, args: list[str], kept: list[int]) -> None:
    write_log(tmp_path / "server_audit.log", FILTERED)
    result = run(tmp_path, "decode", *args, "server_audit.log")
    counts = assert_clean(result)
    assert [event["origin"]["line_number"] for event in output(result)] == kept
    assert (counts["delivered"], counts["filtered"]) == (len(kept), len(FILTERED) - len(kept))


def test_time_zone_of_dialects_without_one(tmp_path: Path) -> None:
    winter = "20240131 14:02:07,db1,app,h,42,1,QUERY,shop,'select 1',0"
    summer = "20240731 14:02:07,db1,app,h,42,2,QUERY,shop,'select 2',0"
    write_log(tmp_path / "server_audit.log", [winter, summer, AURORA[2]])
    result = run(tmp_path, "decode", "--tz", "Europe/Berlin", "server_audit.log")
    assert_clean(result)
    events = output(result)
    assert [event["timestamp"] for event in events] == [
        "2024-01-31T13:02:07.000000Z",
        "2024-07-31T12:02:07.000000Z",
        "2022-05-20T13:31:00.000000Z",  # epoch microseconds carry their zone
    ]
    berlin = ZoneInfo("Europe/Berlin")
    assert events[:2] == [
        expected(winter, "server_audit.log", 1, tz=berlin),
        expected(summer, "server_audit.log", 2, tz=berlin),
    ]


def aurora_line(micros: int, query_id: int, operation: str = "QUERY") -> str:
    tail = f"'select {query_id}',0" if operation == "QUERY" else f"t{query_id},0"
    return f"{1653053459000000 + micros},inst-1,admin,1.2.3.4,35,{query_id},{operation},db,{tail}"


def test_sort_orders_shuffled_aurora_lines(tmp_path: Path) -> None:
    lines = [aurora_line(micros=n * 1000, query_id=n) for n in range(800)]
    shuffled = lines[:]
    random.Random(7).shuffle(shuffled)
    write_log(tmp_path / "audit.log", shuffled)
    unsorted = output(run(tmp_path, "decode", "audit.log"))
    assert [event["query_id"] for event in unsorted] != list(range(800))
    result = run(tmp_path, "decode", "audit.log", "--sort")
    assert_clean(result)
    events = output(result)
    assert [event["query_id"] for event in events] == list(range(800))
    assert sorted(events, key=lambda event: event["key"]) == sorted(
        unsorted, key=lambda event: event["key"]
    )


def test_sort_breaks_ties_by_query_id_then_arrival(tmp_path: Path) -> None:
    same_time = [
        aurora_line(5, 9, "WRITE"),
        aurora_line(5, 9),
        aurora_line(5, 8, "READ"),
        aurora_line(5, 8),
        aurora_line(1, 10),
    ]
    write_log(tmp_path / "audit.log", same_time)
    events = output(run(tmp_path, "decode", "--sort", "--sort-window", "100", "audit.log"))
    assert [event["origin"]["line_number"] for event in events] == [5, 3, 4, 1, 2]


@pytest.mark.parametrize(("block", "in_order"), [(11, True), (1200, False)])
def test_sort_window_bounds_how_late_an_event_may_come(
    tmp_path: Path, block: int, in_order: bool
) -> None:
    # Blocks reversed: with a window of 10 an event up to 10 places late finds its place;
    # one of more than a window and a block of lines read together (1,000) later does not.
    count = block * 6
    lines = [
        aurora_line(micros=n, query_id=n)
        for start in range(0, count, block)
        for n in reversed(range(start, start + block))
    ]
    write_log(tmp_path / "audit.log", lines)
    events = output(run(tmp_path, "decode", "audit.log", "--sort", "--sort-window", "10"))
    ids = [event["query_id"] for event in events]
    assert sorted(ids) == list(range(count))
    assert (ids == list(range(count))) is in_order


def test_stats_prints_summary_tables(tmp_path: Path) -> None:
    # One file, one server's log (docs/security.md): the RDS lines and the others apart.
    write_log(tmp_path / "a.log", MARIADB)
    write_log(tmp_path / "b.log.gz", RDS, compress=True)
    write_log(tmp_path / "c.log", FILTERED)
    result = run(tmp_path, "stats", "--top", "3", "a.log", "b.log.gz", "c.log")
    counts = assert_clean(result)
    assert counts["delivered"] == len(MARIADB) + len(RDS) + len(FILTERED)
    text = result.stdout.decode()
    assert text.startswith("from 2022-12-01T14:07:05+00:00 to 2024-01-31T14:02:10+00:00\n")
    tables = {
        block.splitlines()[0].split()[0]: [line.split() for line in block.splitlines()[1:]]
        for block in text.split("\n\n")[1:]
    }
    assert tables["operation"] == [["QUERY", "6"], ["FAILED_CONNECT", "3"], ["WRITE", "2"]]
    assert tables["user"][0] == ["app", "5"]
    assert len(tables["database"]) == 3
    assert sorted(tables["failed"]) == [
        ["app@10.1.2.3", "1"],
        ["bob@10.0.0.8", "2"],
    ]
    assert tables["error"] == [["1142", "1"]]


def test_stats_with_dead_letters_exits_1(tmp_path: Path) -> None:
    write_log(tmp_path / "a.log", [MARIADB[0], JUNK])
    result = run(tmp_path, "stats", "a.log")
    assert result.returncode == 1
    assert summary(result)["dead_lettered"] == 1
    assert "QUERY" in result.stdout.decode()


# --- exit status --------------------------------------------------------------------------


def test_missing_file_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    write_log(tmp_path / "good.log", MARIADB)
    result = run(tmp_path, "decode", "good.log", "missing.log")
    assert_usage_error(result, "missing.log")
    assert result.stdout == b""  # every path is checked before anything is read
    assert_usage_error(run(tmp_path, "stats", "nowhere/"), "nowhere/")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    path = write_log(tmp_path / "secret.log", MARIADB)
    path.chmod(0)
    assert_usage_error(run(tmp_path, "decode", "secret.log"), "secret.log")


_LAKE = ["decode", "--to", "ocsf-parquet:lake", "--account-id"]
_LAKE_IE = [*_LAKE, "123456789012", "--region", "eu-west-1"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["decode", "--to", "kafka://broker/topic", "a.log"], ["unknown sink", "kafka"]),
        (["decode", "--to", "sqlite:", "a.log"], ["unknown sink"]),
        (["decode", "--tz", "Mars/Olympus_Mons", "a.log"], ["unknown time zone", "Mars"]),
        (["decode", "--since", "yesterday", "a.log"], ["ISO 8601", "yesterday"]),
        (["stats", "--until", "2024-13-01", "a.log"], ["ISO 8601"]),
        (["decode", "--to", "ocsf-parquet:lake", "a.log"], ["--account-id", "--region"]),
        ([*_LAKE, "1234", "--region", "eu-west-1"], ["12 digits", "1234"]),
        ([*_LAKE, "123456789012", "--region", "x"], ["region", "'x'"]),
        ([*_LAKE_IE, "--lake-source", "9999=ext/x", "a.log"], ["no OCSF class 9999", "3002"]),
        ([*_LAKE_IE, "--lake-source", "auth", "a.log"], ["CLASS=LOCATION", "auth"]),
        (["decode", "--to", "parquet:x", "--region", "eu-west-1", "a.log"], ["--region", "only"]),
    ],
)
def test_usage_errors_are_one_line(tmp_path: Path, args: list[str], words: list[str]) -> None:
    write_log(tmp_path / "a.log", MARIADB)
    result = run(tmp_path, *args)
    assert_usage_error(result, *words)
    assert result.stdout == b""


@pytest.mark.parametrize(
    "args",
    [
        ["decode", "--bogus", "a.log"],
        ["decode", "--format", "xml", "a.log"],
        ["decode", "--dialect", "oracle", "a.log"],
        ["decode", "--sort-window", "many", "a.log"],
        ["frobnicate"],
        [],
    ],
)
def test_bad_options_exit_2_without_a_traceback(tmp_path: Path, args: list[str]) -> None:
    write_log(tmp_path / "a.log", MARIADB)
    result = run(tmp_path, *args)
    text = result.stderr.decode()
    assert result.returncode == 2, text
    assert "Traceback" not in text
    assert text.splitlines()[-1].startswith("auditsync")
    assert result.stdout == b""


def test_postgres_that_does_not_answer_is_a_usage_error(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")  # without it the error is the missing extra's
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    write_log(tmp_path / "a.log", MARIADB)
    result = run(tmp_path, "decode", "--to", f"postgresql://postgres@127.0.0.1:{port}/x", "a.log")
    text = result.stderr.decode()
    assert result.returncode == 2, text
    assert "Traceback" not in text
    assert text.startswith("auditsync: ")
    assert f"127.0.0.1:{port}" in text.splitlines()[0]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize(
    "args",
    [["--to", "jsonl:/dev/full"], ["--dead-letter", "/dev/full"], []],
    ids=["jsonl-file", "dead-letter-file", "stdout"],
)
def test_a_sink_that_fails_mid_run_exits_3(tmp_path: Path, args: list[str]) -> None:
    write_log(tmp_path / "a.log", [*MARIADB, JUNK])
    with open("/dev/full", "wb") as full:
        stdout = full if not args else subprocess.PIPE
        result = run(tmp_path, "decode", *args, "a.log", stdout=stdout)
    text = result.stderr.decode()
    assert result.returncode == 3, text
    assert "Traceback" not in text
    assert "the sink failed" in text
    assert "No space left on device" in text
    assert summary(result)["failed"] > 0


class FailingSink:
    """Takes ``good`` batches, then fails as a database going away would."""

    def __init__(self, good: int):
        self.good = good
        self.taken: list[AuditEvent] = []

    def write(self, events: Sequence[AuditEvent]) -> None:
        if self.good == 0:
            raise ConnectionError("database went away")
        self.good -= 1
        self.taken.extend(events)

    def close(self) -> None:
        pass


def test_sink_failure_in_process_exits_3_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [aurora_line(micros=n, query_id=n) for n in range(2500)]
    first = write_log(tmp_path / "a.log", lines)
    second = write_log(tmp_path / "b.log", MARIADB)
    sink = FailingSink(good=1)
    monkeypatch.setattr(cli_module, "_open_sink", lambda spec, lake: sink)
    status = cli_module.main(["decode", str(first), str(second)])
    assert status == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "the sink failed: database went away" in err
    assert [event.query_id for event in sink.taken] == list(range(1000))
    counts = summary(err)  # stopped at the failed batch; the second file was never read
    assert (counts["records"], counts["delivered"], counts["failed"]) == (2000, 1000, 1000)


def test_sink_refusals_are_dead_letters_not_failures(tmp_path: Path) -> None:
    huge = "20240131 14:02:07,db1,app,h,99999999999999999999,1,QUERY,shop,'select 1',0"
    write_log(tmp_path / "a.log", [MARIADB[0], huge])
    result = run(tmp_path, "decode", "--to", "sqlite:a.db", "--dead-letter", "dead.jsonl", "a.log")
    assert result.returncode == 1, result.stderr.decode()
    (letter,) = read_json_lines(tmp_path / "dead.jsonl")
    assert letter["stage"] == "sink"
    assert base64.b64decode(letter["raw_base64"]) == huge.encode()
    assert (summary(result)["delivered"], summary(result)["failed"]) == (1, 0)


# --- the progress bar -----------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("tty", "threshold", "drawn"), [(True, 1, True), (False, 1, False), (True, 1 << 40, False)]
)
def test_progress_bar_only_on_a_terminal_for_large_inputs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tty: bool,
    threshold: int,
    drawn: bool,
) -> None:
    path = write_log(tmp_path / "server_audit.log", MARIADB * 50)
    err: io.StringIO = Terminal() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(cli_module, "_PROGRESS_MIN_BYTES", threshold)
    assert cli_module.main(["decode", str(path)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(MARIADB) * 50
    text = err.getvalue()
    assert ("\r" in text) is drawn
    if drawn:
        last = text.rsplit("\r", 1)[1]
        assert "server_audit.log" in last
        assert "100.0%" in last
    assert SUMMARY.match(text.splitlines()[-1])


# --- bugs found -----------------------------------------------------------------------------


def test_truncated_gzip_is_an_error_naming_the_file_not_a_traceback(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(line.encode() + b"\n" for line in MARIADB * 200))
    (tmp_path / "server_audit.log.1.gz").write_bytes(data[: len(data) // 2])
    result = run(tmp_path, "decode", "server_audit.log.1.gz")
    text = result.stderr.decode()
    assert "Traceback" not in text
    assert result.returncode in (1, 2)
    assert "server_audit.log.1.gz" in text


def test_junk_after_the_gzip_members_is_not_a_traceback(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(line.encode() + b"\n" for line in MARIADB))
    (tmp_path / "object.gz").write_bytes(data + b"trailing junk")
    result = run(tmp_path, "decode", "object.gz")
    assert "Traceback" not in result.stderr.decode()
    assert result.returncode in (1, 2)
    assert len(output(result)) == len(MARIADB)


def test_a_name_too_long_is_a_one_line_error(tmp_path: Path) -> None:
    assert_usage_error(run(tmp_path, "decode", "x" * 300), "x" * 20)


@pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="needs Linux /proc")
def test_a_file_that_fails_while_reading_is_a_dead_letter_naming_it(tmp_path: Path) -> None:
    # Opening works, reading at offset 0 fails with EIO: what was read is delivered, the
    # rest is one dead letter saying why, and the exit status says something was lost.
    result = run(tmp_path, "decode", "--dead-letter", "dead.jsonl", "/proc/self/mem")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr.decode()
    (letter,) = read_json_lines(tmp_path / "dead.jsonl")
    assert letter["stage"] == "source"
    assert "/proc/self/mem" in letter["error"]
    assert letter["origin"]["path"] == "/proc/self/mem"


@pytest.mark.parametrize(
    "args",
    [
        ["--to", "jsonl:no/such/dir/out.jsonl"],
        ["--to", "sqlite:no/such/dir/out.db"],
        ["--dead-letter", "no/such/dir/dead.jsonl"],
    ],
    ids=["jsonl", "sqlite", "dead-letter"],
)
def test_an_output_that_cannot_be_opened_is_a_usage_error(tmp_path: Path, args: list[str]) -> None:
    write_log(tmp_path / "a.log", MARIADB)
    assert_usage_error(run(tmp_path, "decode", *args, "a.log"), "no/such/dir")


def test_a_negative_sort_window_is_a_usage_error(tmp_path: Path) -> None:
    write_log(tmp_path / "a.log", AURORA)
    result = run(tmp_path, "decode", "--sort-window", "-5", "a.log")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr.decode()


def test_paths_may_follow_options(tmp_path: Path) -> None:
    write_log(tmp_path / "a.log", MARIADB)
    write_log(tmp_path / "b.log", AURORA)
    result = run(tmp_path, "decode", "a.log", "--operation", "QUERY", "b.log")
    assert result.returncode == 0, result.stderr.decode()
    assert [event["operation"] for event in output(result)] == ["QUERY", "QUERY", "QUERY"]


def test_sort_merges_files(tmp_path: Path) -> None:
    lines = [aurora_line(micros=n, query_id=n) for n in range(40)]
    write_log(tmp_path / "audit.log.0", lines[0::2])
    write_log(tmp_path / "audit.log.1", lines[1::2])
    events = output(
        run(tmp_path, "decode", "--sort", "--sort-window", "1000", "audit.log.0", "audit.log.1")
    )
    assert [event["query_id"] for event in events] == list(range(40))


# --- memory -------------------------------------------------------------------------------


NEEDS_PROC_STATUS = pytest.mark.skipif(
    not os.path.exists("/proc/self/status"), reason="measuring peak memory needs Linux /proc"
)
#: Runs the command in-process and leaves its own peak RSS (VmHWM, in KiB) in a file. The
#: rusage of a child is no good here: Linux starts a child's ru_maxrss at its parent's peak
#: when it execs, so a test run that grew large would be measured, not the command.
_MEASURED = (
    "import os, sys\n"
    "from auditsync._cli import main\n"
    "status = main(sys.argv[1:])\n"
    "with open('/proc/self/status') as own:\n"
    "    peak = next(line.split()[1] for line in own if line.startswith('VmHWM:'))\n"
    "with open(os.environ['AUDITSYNC_TEST_PEAK'], 'w') as out:\n"
    "    out.write(peak)\n"
    "sys.exit(status)\n"
)


def peak_rss_mib(
    cwd: Path, args: Sequence[str], check: Any = None
) -> tuple[float, int, dict[str, int]]:
    """Run the command, handing each stdout line to ``check``; its peak RSS in MiB, its exit
    status and its summary."""
    peak_file = cwd / "peak.txt"
    environment = {**os.environ, "AUDITSYNC_TEST_PEAK": str(peak_file)}
    with (cwd / "stderr.txt").open("w+b") as err:
        process = subprocess.Popen(
            [sys.executable, "-c", _MEASURED, *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=err,
            env=environment,
        )
        assert process.stdout is not None
        for line in process.stdout:
            if check is not None:
                check(line)
        process.wait()
        process.stdout.close()
        err.seek(0)
        text = err.read().decode()
    found = SUMMARY.match(text.splitlines()[-1]) if text else None
    assert found is not None, text
    counts = {name: int(value) for name, value in found.groupdict().items() if value}
    return int(peak_file.read_text()) / 1024, process.returncode, counts


class LargeLog:
    """A generated log of repeating blocks: long queries, short lines of every dialect and a
    junk line, so that what each line number must decode to is known without storing it."""

    def __init__(self) -> None:
        block: list[bytes] = []
        for n in range(8):
            query = ("select \\'" + "v,\\n" * (2000 + 300 * n) + f"\\' from t{n}").encode()
            block.append(b"20240131 14:02:07,db1,app,10.0.0.7,42,%d,QUERY,shop,'%s',0" % (n, query))
            block.extend(line.encode() for line in (*MARIADB, *AURORA, *RDS))
        block.append(JUNK)
        self.block = block
        self.chunk = b"".join(line + b"\n" for line in block)
        self.objects = [self._object(line) for line in block]

    @staticmethod
    def _object(line: bytes) -> int | None:
        try:
            return len(parse_line(line).object)
        except ValueError:
            return None

    def write(self, path: Path, mib: int) -> int:
        """Write about ``mib`` MiB of whole blocks to ``path``; the number of lines."""
        repeats = mib * 2**20 // len(self.chunk)
        with path.open("wb") as file:
            for _ in range(repeats):
                file.write(self.chunk)
        return repeats * len(self.block)

    def write_gzip(self, path: Path, mib: int) -> int:
        """The same content as gzip members back to back (one per block), as logrotate and
        Firehose write them; fast, since the member is compressed once."""
        repeats = mib * 2**20 // len(self.chunk)
        member = gzip.compress(self.chunk, compresslevel=1)
        with path.open("wb") as file:
            for _ in range(repeats):
                file.write(member)
        return repeats * len(self.block)

    def checker(self) -> Generator[None, bytes, None]:
        """A coroutine: send it each output line; it checks line numbers and objects."""
        number = 0
        while True:
            event = orjson.loads((yield))
            number += 1
            while self.objects[(number - 1) % len(self.block)] is None:
                number += 1  # the junk line: a dead letter, not an event
            assert event["origin"]["line_number"] == number
            assert len(event["object"]) == self.objects[(number - 1) % len(self.block)]


def run_large(tmp_path: Path, name: str, lines: int, log: LargeLog) -> float:
    checker = log.checker()
    next(checker)
    seen = 0

    def check(line: bytes) -> None:
        nonlocal seen
        seen += 1
        checker.send(line)

    dead = tmp_path / f"{name}.dead.jsonl"
    peak, status, counts = peak_rss_mib(
        tmp_path, ["decode", "--dead-letter", str(dead), name], check
    )
    junk = lines // len(log.block)
    assert status == 1
    assert counts["records"] == lines
    assert counts["delivered"] == seen == lines - junk
    assert counts["dead_lettered"] == junk
    with dead.open("rb") as letters:
        assert sum(1 for _ in letters) == junk
    return peak


@NEEDS_PROC_STATUS
def test_memory_stays_flat_however_large_the_input(tmp_path: Path) -> None:
    """N and 2N MiB of plain log, then 2N MiB as gzip members: every event checked, and the
    child's peak RSS under a fixed bound that does not grow with the input. No timing."""
    log = LargeLog()
    size = 64
    small = log.write(tmp_path / "n.log", size)
    peak_small = run_large(tmp_path, "n.log", small, log)
    (tmp_path / "n.log").unlink()
    large = log.write(tmp_path / "2n.log", 2 * size)
    peak_large = run_large(tmp_path, "2n.log", large, log)
    (tmp_path / "2n.log").unlink()
    compressed = log.write_gzip(tmp_path / "2n.log.gz", 2 * size)
    peak_gzip = run_large(tmp_path, "2n.log.gz", compressed, log)
    assert large == compressed
    assert large >= 2 * small - len(log.block)
    assert max(peak_small, peak_large, peak_gzip) < 150, (peak_small, peak_large, peak_gzip)
    assert peak_large < peak_small + 16, (peak_small, peak_large)
    assert peak_gzip < peak_small + 16, (peak_small, peak_gzip)


def write_bomb(path: Path, shape: str, mebibytes: int) -> tuple[int, int]:
    """A file inflating to ``mebibytes`` MiB in one line; the records it holds, and events."""
    bomb = zero_bomb(mebibytes)
    if shape == "gzip":
        path.write_bytes(bomb)
        return 1, 0
    if shape == "gzip-of-gzip":
        path.write_bytes(gzip.compress(bomb))
        return 1, 0
    # An endless line of text between two good records: gzip members back to back.
    endless = zero_bomb(mebibytes, fill=ord("x"))
    head, tail = (line.encode() + b"\n" for line in MARIADB[:2])
    path.write_bytes(gzip.compress(head) + endless + gzip.compress(b"\n" + tail))
    return 3, 2


@NEEDS_PROC_STATUS
@pytest.mark.parametrize("shape", ["gzip", "gzip-of-gzip", "endless-line"])
def test_a_gzip_bomb_or_an_endless_line_takes_bounded_memory(tmp_path: Path, shape: str) -> None:
    """128 and 512 MiB in one line (a 1 GiB gzip of NULs took 8.2 GiB): a dead letter of its
    first bytes and its length, and the child's peak RSS under 256 MiB, the same for both."""
    peaks = []
    for mebibytes in (128, 512):
        records, events = write_bomb(tmp_path / "bomb.gz", shape, mebibytes)
        dead = tmp_path / "dead.jsonl"
        dead.unlink(missing_ok=True)
        peak, status, counts = peak_rss_mib(
            tmp_path, ["decode", "--dead-letter", str(dead), "bomb.gz"]
        )
        assert peak < 256, (mebibytes, peak)
        (letter,) = read_json_lines(dead)
        line = 2 if events else 1
        assert (status, counts["records"], counts["delivered"]) == (1, records, events)
        assert f"line {line} is {mebibytes << 20} bytes long" in letter["error"]
        assert letter["origin"]["line_number"] == line
        assert base64.b64decode(letter["raw_base64"]) == (b"x" if events else b"\0") * 4096
        peaks.append(peak)
    assert peaks[1] < peaks[0] + 16, peaks


def test_junk_after_a_table_event_in_an_export_is_a_dead_letter(tmp_path: Path) -> None:
    # It was glued on: database='shop,orders,\nTHIS IS', exit 0, no dead letter.
    write_log(tmp_path / "000000", [f"2023-05-01T10:02:19.000Z {MARIADB[1]}", "THIS IS,junk,"])
    result = run(tmp_path, "decode", "000000")
    (event,) = output(result)
    assert (event["database"], event["object"]) == ("shop", "t")
    assert result.returncode == 1
    assert summary(result)["dead_lettered"] == 1


def test_a_raw_log_forced_as_an_export_gives_the_events_of_the_log(tmp_path: Path) -> None:
    # It was one event whose database was the whole 40 KB file, exit 0.
    example = Path(__file__).parents[1] / "examples" / "server_audit.log"
    (tmp_path / "server_audit.log").write_bytes(example.read_bytes())
    as_export = run(tmp_path, "decode", "--format", "export", "server_audit.log")
    as_log = run(tmp_path, "decode", "--format", "log", "server_audit.log")
    assert len(output(as_export)) > 300
    assert as_export.stdout == as_log.stdout
    assert as_export.returncode == as_log.returncode == 0


def test_a_line_the_writer_has_not_finished_is_not_stored_twice(tmp_path: Path) -> None:
    # It was read as a query the server truncated: run mid-line and again once the line was
    # finished, the database held one row more than the log has records.
    log = tmp_path / "server_audit.log"
    last = (
        "20240131 14:02:11,db1,app,10.0.0.7,42,1003,QUERY,shop,'delete from orders where id = 4',0"
    )
    write_log(log, MARIADB)
    with log.open("ab") as file:
        file.write(last.encode()[:-3])
    first = run(
        tmp_path, "decode", "--to", "sqlite:audit.db", "--dead-letter", "dead.jsonl", log.name
    )
    assert first.returncode == 1
    assert summary(first)["delivered"] == len(MARIADB)
    (letter,) = read_json_lines(tmp_path / "dead.jsonl")
    assert "no newline at its end" in letter["error"]
    assert letter["origin"]["line_number"] == len(MARIADB) + 1
    with log.open("ab") as file:
        file.write(last.encode()[-3:] + b"\n")
    assert run(tmp_path, "decode", "--to", "sqlite:audit.db", log.name).returncode == 0
    with sqlite3.connect(tmp_path / "audit.db") as connection:
        rows = connection.execute("SELECT object, truncated FROM audit_events").fetchall()
    assert len(rows) == len(MARIADB) + 1
    assert ("delete from orders where id = 4", 0) in rows


@NEEDS_PROC_STATUS
def test_sort_memory_is_bounded_by_the_window_not_by_one_huge_batch(tmp_path: Path) -> None:
    lines = [aurora_line(micros=n, query_id=n) for n in range(30_000)]
    write_log(tmp_path / "audit.log", lines)
    peak, status, counts = peak_rss_mib(tmp_path, ["decode", "audit.log", "--sort"])
    assert (status, counts["delivered"]) == (0, 30_000)
    assert peak < 150, peak


# --- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture
def postgres_url(postgres_dsn: str) -> Iterator[str]:
    """A database of the test's own, created and dropped; its URL for ``--to``."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"auditsync_cli_{uuid.uuid4().hex[:12]}"
    admin = make_conninfo(postgres_dsn, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        parts = conninfo_to_dict(postgres_dsn)
        user = parts.get("user", "postgres")
        password = f":{parts['password']}" if parts.get("password") else ""
        host = parts.get("host", "127.0.0.1")
        yield f"postgresql://{user}{password}@{host}:{parts.get('port', 5432)}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_postgres_output_and_a_second_run_adds_nothing(tmp_path: Path, postgres_url: str) -> None:
    import psycopg

    write_log(tmp_path / "server_audit.log", [*MARIADB, MARIADB[1], JUNK])
    (tmp_path / "firehose").write_bytes(gzip.compress(message(AURORA, 0)))
    args = ("decode", "--to", postgres_url, "--dead-letter", "dead.jsonl")
    first = run(tmp_path, *args, "server_audit.log", "firehose")
    assert first.returncode == 1, first.stderr.decode()
    assert first.stdout == b""

    def rows() -> list[tuple[Any, ...]]:
        with psycopg.connect(postgres_url) as connection:
            return connection.execute(
                "SELECT key, timestamp, operation, object, origin_path, origin_line_number"
                " FROM audit_events ORDER BY key"
            ).fetchall()

    stored = rows()
    assert len(stored) == len(MARIADB) + 1 + len(AURORA)
    moments = {row[1].astimezone(UTC).isoformat() for row in stored}
    assert "2024-01-31T14:02:07+00:00" in moments
    assert ("QUERY", "insert into t values ('a,b')", "server_audit.log", 1) in [
        row[2:] for row in stored
    ]
    assert (summary(first)["new"], summary(first)["present"]) == (len(stored), 0)
    second = run(tmp_path, *args, "server_audit.log", "firehose")
    assert second.returncode == 1
    assert (summary(second)["new"], summary(second)["present"]) == (0, len(stored))
    assert rows() == stored


# --- --version ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pure", "reader", "inflater"),
    [("1", "pure Python", "zlib"), ("", "C extension", None)],
)
def test_version_names_the_reader_and_inflater(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pure: str, reader: str, inflater: str | None
) -> None:
    monkeypatch.setenv("AUDITSYNC_PURE_PYTHON", pure)
    if not pure and _native.parse_line is None:
        pytest.skip("the C extension was not built here")
    result = run(tmp_path, "--version")
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    assert text.startswith(f"auditsync {auditsync.__version__} (line reader: {reader}; inflater: ")
    if inflater is not None:
        assert f"inflater: {inflater})" in text
    assert auditsync.__version__ == importlib.metadata.version("auditsync")


# --- hostile and unlucky use (issue 16) -------------------------------------------------------


def test_closed_standard_input_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "decode"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        cwd=tmp_path,
        check=False,
        preexec_fn=lambda: os.close(0),
    )
    assert_usage_error(result, "standard input is closed")


@pytest.mark.parametrize("option", [["--kind", "TYPO"], ["--kind", "insert", "--kind", "updat"]])
def test_an_unknown_statement_kind_is_a_usage_error(tmp_path: Path, option: list[str]) -> None:
    write_log(tmp_path / "a.log", MARIADB)
    assert_usage_error(run(tmp_path, "decode", "a.log", *option), "--kind", "unknown")


def test_what_is_not_a_file_below_a_directory_is_skipped_with_a_word(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write_log(logs / "a.log", MARIADB)
    (logs / "gone.log").symlink_to(logs / "nowhere.log")
    os.mkfifo(logs / "pipe.log")
    result = run(tmp_path, "decode", "logs")
    text = result.stderr.decode()
    assert result.returncode == 0, text
    assert "skipping logs/gone.log: a broken symbolic link" in text
    assert "skipping logs/pipe.log: a FIFO" in text
    assert summary(result)["delivered"] == len(MARIADB)


def test_a_saved_kinesis_record_without_its_kinesis_object_is_named(tmp_path: Path) -> None:
    event = kinesis_event([to_payload(message(MARIADB[:2], 0))] * 2)
    del event["Records"][0]["kinesis"]
    (tmp_path / "kinesis.json").write_bytes(orjson.dumps(event))
    letters = tmp_path / "letters.jsonl"
    result = run(tmp_path, "decode", "kinesis.json", "--dead-letter", str(letters))
    assert result.returncode == 1, result.stderr
    assert summary(result)["delivered"] == 2
    [letter] = read_json_lines(letters)
    assert "Records[0]" in letter["error"]
    assert "no kinesis object" in letter["error"]
    assert "logEvents" not in letter["error"]


def test_a_sqlite_database_deleted_mid_run_fails_the_run(tmp_path: Path) -> None:
    database = tmp_path / "audit.db"
    text = "".join(
        f"20240131 14:02:07,db1,app,10.0.0.7,42,{number},QUERY,shop,'select {number}',0\n"
        for number in range(1, 60_001)
    ).encode()
    half = text.index(b"\n", len(text) // 2) + 1
    process = subprocess.Popen(
        [*CLI, "decode", "--to", f"sqlite:{database}"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    assert process.stdin is not None
    assert process.stderr is not None
    # More than the reader's chunk, so that batches reach the database before the end.
    process.stdin.write(text[:half])
    process.stdin.flush()
    for _ in range(600):
        with (
            contextlib.suppress(sqlite3.Error),
            contextlib.closing(sqlite3.connect(database)) as db,
        ):
            if db.execute("SELECT count(*) FROM audit_events").fetchone()[0]:
                break
        time.sleep(0.05)
    else:
        pytest.fail("the first batch never arrived")
    for name in ("audit.db", "audit.db-wal", "audit.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    with contextlib.suppress(BrokenPipeError):  # it may have stopped at the deletion
        process.stdin.write(text[half:])
    with contextlib.suppress(BrokenPipeError):
        process.stdin.close()
    text = process.stderr.read().decode()
    assert process.wait(timeout=120) == 3, text
    assert "deleted or replaced" in text


@pytest.mark.parametrize(
    "target",
    [
        "postgresql://alice:S3cr3t-pw@127.0.0.1:1/audit",
        "postgres://alice:S3cr3t-pw@127.0.0.1:1/audit",
        "postgresql://alice:S3cr3t%2Dpw@127.0.0.1:1/audit",
        "postgresql://127.0.0.1:1/audit?user=alice&password=S3cr3t-pw",
        "postgresql://127.0.0.1:1/audit?user=alice&pass%77ord=S3cr3t-pw",
        "postgresql://alice:S3cr3t-pw@[::1:5432/audit",
        "host=127.0.0.1 port=1 user=alice password=S3cr3t-pw dbname=audit",
        "host=127.0.0.1 port=1 user=alice password='S3cr3t pw' dbname=audit",
        "postgresq://alice:S3cr3t-pw@127.0.0.1/audit",
    ],
)
def test_no_password_of_a_conninfo_is_printed(tmp_path: Path, target: str) -> None:
    pytest.importorskip("psycopg")
    write_log(tmp_path / "a.log", MARIADB)
    result = run(tmp_path, "decode", "a.log", "--to", target)
    text = assert_usage_error(result)
    assert "S3cr3t" not in text
    assert "***" in text


def test_redact_warns_that_dead_letters_keep_what_they_hold(tmp_path: Path) -> None:
    write_log(tmp_path / "a.log", [*MARIADB, JUNK])
    result = run(tmp_path, "decode", "a.log", "--redact", "--dead-letter", "letters.jsonl")
    text = result.stderr.decode()
    assert result.returncode == 1, text
    assert "warning: --redact does not reach letters.jsonl" in text


def test_redact_keeps_raw_bytes_out_of_the_log(tmp_path: Path) -> None:
    # Not a record (the ids are not numbers), so a dead letter: it still holds the query.
    secret = (
        b"20240131 14:02:07,db1,app,h,one,two,QUERY,shop,"
        b"'SET PASSWORD = PASSWORD(\\'Hunter22\\')',0"
    )
    write_log(tmp_path / "a.log", [*MARIADB, secret])
    result = run(tmp_path, "decode", "a.log", "--redact")
    text = result.stderr.decode()
    assert result.returncode == 1, text
    assert "a.log:5: line:" in text
    assert base64.b64encode(secret)[:20].decode() not in text
    assert "Hunter22" not in text


@NEEDS_PROC_STATUS
@pytest.mark.parametrize("kind", ["junk", "queries"])
def test_many_long_lines_take_bounded_memory(tmp_path: Path, kind: str) -> None:
    """500 lines of 256 KiB, junk (dead letters) or queries (events): neither a block of
    lines, nor a batch, nor the report holds them all (that peaked at 0.5 to 1 GiB)."""
    size = 256 * 1024
    with (tmp_path / "long.log").open("wb") as log:
        for number in range(500):
            if kind == "junk":
                log.write(b"20240131 14:02:07," + b"x" * size + b"\n")
            else:
                head = b"20240131 14:02:07,db1,app,h,1,%d,QUERY,shop,'" % number
                log.write(head + "é".encode() * (size // 2) + b"',0\n")
    peak, status, counts = peak_rss_mib(
        tmp_path, ["decode", "long.log", "--to", "jsonl:/dev/null", "--dead-letter", "/dev/null"]
    )
    assert counts["records"] == 500
    assert status == (1 if kind == "junk" else 0)
    assert peak < 160, f"peak {peak:.0f} MiB"


# --- what a user meets in the first hour ------------------------------------------------------


def test_redact_without_a_mode_before_a_path(tmp_path: Path) -> None:
    """``--redact logs/`` as docs/cli.md writes it: the path is not taken for a mode."""
    write_log(tmp_path / "logs" / "a.log", [MARIADB[0]])
    bare = run(tmp_path, "decode", "--redact", "logs/")
    assert_clean(bare)
    (event,) = output(bare)
    assert event["object"] == "insert into t values ('?')"
    explicit = run(tmp_path, "decode", "--redact", "passwords", "logs/")
    assert_clean(explicit)
    assert output(explicit)[0]["object"] == "insert into t values ('a,b')"
    assert output(run(tmp_path, "decode", "logs/", "--redact"))[0]["object"] == event["object"]


def test_dead_letters_on_stderr_are_a_summary(tmp_path: Path) -> None:
    """The wrong file, 500 lines of junk: a few lines saying what and where, no bytes."""
    junk = [b"20240131 14:02:07,db1,app,h,one,%d,QUERY,shop,'x',0" % n for n in range(500)]
    write_log(tmp_path / "a.log", [MARIADB[0], *junk])
    result = run(tmp_path, "decode", "a.log", "--to", "jsonl:/dev/null")
    text = result.stderr.decode()
    assert result.returncode == 1, text
    assert len(text.splitlines()) < 15, text
    assert "500 dead letters" in text
    assert "--dead-letter FILE" in text
    assert re.search(r"^auditsync: +500 +line: ", text, re.MULTILINE), text
    assert "a.log:2: line:" in text
    assert "a.log:6: line:" in text
    assert "a.log:7:" not in text
    assert base64.b64encode(junk[0]).decode()[:12] not in text
    assert summary(result)["dead_lettered"] == 500
    stats = run(tmp_path, "stats", "a.log")
    assert len(stats.stderr.decode().splitlines()) < 15, stats.stderr.decode()


def test_a_directory_skips_code_and_configuration_saying_so(tmp_path: Path) -> None:
    write_log(tmp_path / "logs" / "server_audit.log", MARIADB)
    (tmp_path / "logs" / "make_logs.py").write_text("print('hello')\n")
    (tmp_path / "logs" / "template.yaml").write_text("Resources: {}\n")
    result = run(tmp_path, "decode", "logs")
    text = result.stderr.decode()
    assert result.returncode == 0, text
    assert "skipping logs/make_logs.py: a .py file, not audit data" in text
    assert "skipping logs/template.yaml: a .yaml file, not audit data" in text
    assert summary(result)["records"] == len(MARIADB)
    named = run(tmp_path, "decode", "logs/template.yaml")  # named on its own: read
    assert summary(named)["dead_lettered"] == 1


def test_stats_shows_names_escaped(tmp_path: Path) -> None:
    lines = [
        b"20240131 14:02:07,db1,ev\x1b[2Jil,10.0.0.7,42,1001,WRITE,shop,t,",
        b"20240131 14:02:07,db1,app,10.0.0.7,42,1001,WRITE,sh\xffop,t,",
    ]
    write_log(tmp_path / "a.log", lines)
    result = run(tmp_path, "stats", "a.log")
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode()
    assert "\x1b" not in text
    assert "\ufffd" not in text
    assert "ev\\x1b[2Jil " in text
    assert "sh\\xffop " in text


def test_stats_escapes_a_newline_in_a_name(tmp_path: Path) -> None:
    from auditsync._cli import StatsSink

    event = parse_line(MARIADB[1])
    counter = StatsSink()
    counter.write([attrs.evolve(event, username="a\nb", database="x\ty")])
    out = io.StringIO()
    counter.print(out, 10)
    assert "a\\nb " in out.getvalue()
    assert "x\\ty " in out.getvalue()
    assert all("\t" not in line for line in out.getvalue().splitlines())


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("stats", "--top", "-1"), ("--top", "positive")),
        (("stats", "--top", "0"), ("--top", "positive")),
        (("decode", "--sort-window", "10"), ("--sort-window", "--sort")),
    ],
)
def test_options_that_would_do_nothing_are_refused(
    tmp_path: Path, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    write_log(tmp_path / "a.log", MARIADB)
    result = run(tmp_path, *args, "a.log")
    text = result.stderr.decode()
    assert result.returncode == 2, text
    assert "Traceback" not in text
    for word in words:
        assert word in text


def test_auditsync_output_reads_back_as_input(tmp_path: Path) -> None:
    """``stats audit.db`` after ``--to sqlite:audit.db``: the database (and decode's JSON
    Lines) are inputs too, and give the events the log gave, byte for byte."""
    not_utf8 = b"20240131 14:02:11,db1,app,10.0.0.7,42,1003,QUERY,sh\xffop,'select \xfe',0"
    write_log(tmp_path / "server_audit.log", [*MARIADB, not_utf8])
    (tmp_path / "firehose").write_bytes(gzip.compress(message(AURORA, 0)))
    inputs = ("server_audit.log", "firehose")
    assert_clean(run(tmp_path, "decode", "--to", "sqlite:audit.db", *inputs))
    from_logs = run(tmp_path, "decode", *inputs)
    (tmp_path / "events.jsonl").write_bytes(from_logs.stdout)
    for stored in ("audit.db", "events.jsonl"):
        again = run(tmp_path, "decode", stored)
        assert_clean(again)
        assert again.stdout == from_logs.stdout, stored
        stats = run(tmp_path, "stats", stored)
        assert_clean(stats)
        assert stats.stdout == run(tmp_path, "stats", *inputs).stdout
    filtered = run(tmp_path, "decode", "--user", "bob", "audit.db")
    assert [event["username"] for event in output(filtered)] == ["bob"]


def test_a_database_that_auditsync_did_not_write_is_a_dead_letter(tmp_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / "other.db")) as connection:
        connection.execute("CREATE TABLE t (x)")
        connection.commit()
    result = run(tmp_path, "stats", "other.db")
    assert result.returncode == 1
    assert "without auditsync's audit_events table" in result.stderr.decode()
