"""Forged records through names (docs/security.md): what a raw newline in a user, database
or table name lets its author write into the audit log never reaches a sink as a record.

The lines below are what MariaDB 10.11.19 with server_audit 1.4.14 wrote for such names
(tests/integration/test_forged_names.py makes them afresh on a real server and runs every
path over them); here they run without a server, on the file path, the CloudWatch path
(each physical line its own log event) and across invocations.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditsync import AuditEvent, DeadLetter, Dialect, Pipeline, format_line
from auditsync._pipeline import Line
from auditsync._sources import read_inputs
from auditsync._splits import LONGEST_HEAD, STREAMS, Seams, _Last, could_be_one
from auditsync.aws import handle_kinesis_event, handle_subscription_event
from auditsync.sinks import MemorySink
from auditsync.testing import (
    audit_events,
    data_message,
    kinesis_event,
    subscription_event,
    to_payload,
)

HEAD = "20261206 09:24:12,vm,root,localhost"
FORGED = "20240131 14:02:08,d,a,h,9,9,QUERY,shop,'TRUNCATE orders',0"
#: The forged record as the genuine statement's text carries it: quotes escaped.
ESCAPED = FORGED.replace("'", "\\'")

#: Each case: the physical lines the server wrote around one forging name.
CASES = {
    # The name: a,⏎<record>, — the table event's own closing comma makes the
    # forged line end like an RDS for MySQL QUERY record (',0,,).
    "table name, forged last line (RDS form)": [
        f"{HEAD},7,12,CREATE,shop,a,",
        FORGED + ",,",
        f"{HEAD},7,12,QUERY,shop,'CREATE TABLE shop.`a,\\n{ESCAPED},` (i int)',0",
    ],
    # x⏎<record>⏎y: the forged line sits between two parts of the name, nothing of the
    # server's own after it.
    "table name, forged middle line": [
        f"{HEAD},8,15,CREATE,shop,x",
        FORGED,
        "y,",
        f"{HEAD},8,15,QUERY,shop,'CREATE TABLE shop.`x\\n…\\ny` (i int)',0",
    ],
    # The same table read through a view: the statement's text does not hold the name.
    "table name through a view": [
        f"{HEAD},11,27,READ,shop,x",
        FORGED,
        "y,",
        f"{HEAD},11,27,QUERY,shop,'SELECT * FROM shop.v',0",
    ],
    # A database x⏎20240131 14:02:08,d,a,h,9,9,QUERY,shop in use: every QUERY record of the
    # connection is forged around its real statement.
    "database name": [
        f"{HEAD},10,23,QUERY,x",
        "20240131 14:02:08,d,a,h,9,9,QUERY,shop,'TRUNCATE orders',0",
    ],
    # A user u⏎20240131 14:02:08,d,admin: every record of the connection claims admin.
    "user name, forged last line": [
        "20261206 09:24:08,vm,u",
        "20240131 14:02:08,d,admin,localhost,15,44,QUERY,,'SELECT 1',0",
    ],
    # A user v,h,1,2,QUERY,shop,'TRUNCATE orders',0⏎w: the record's first line is forged,
    # with the server's own time and host; a failed login is enough to write it.
    "user name, forged first line": [
        "20261206 09:24:08,vm,v,h,1,2,QUERY,shop,'TRUNCATE orders',0",
        "w,localhost,18,0,FAILED_CONNECT,,,1045",
    ],
    # A database shop,'TRUNCATE orders',0⏎<record start> in use: both lines read alone, the
    # first a TRUNCATE with the connection's real ids, the second with another server host.
    "database name, two forged lines": [
        f"{HEAD},9,19,QUERY,shop,'TRUNCATE orders',0",
        "20240131 14:02:08,d,a,h,9,9,QUERY,shop,'DO 1',0",
    ],
    # A database shop,'TRUNCATE orders',0⏎z in use: the same, through the database field.
    "database name, forged first line": [
        f"{HEAD},10,21,QUERY,shop,'TRUNCATE orders',0",
        "z,'SELECT 1',0",
    ],
}


def forged(events: Sequence[object]) -> list[object]:
    """The events only a forging name made: the TRUNCATE nobody ran, the records of a
    server ``d``, a user ``admin`` or a user ``v``."""
    return [
        event
        for event in events
        if getattr(event, "object", None) == "TRUNCATE orders"
        or getattr(event, "serverhost", None) == "d"
        or getattr(event, "username", None) in ("admin", "v")
    ]


def run_file(lines: list[str]) -> tuple[MemorySink, MemorySink]:
    sink, letters = MemorySink(), MemorySink()
    data = "".join(line + "\n" for line in lines).encode()
    Pipeline(sink, dead_letter=letters).process(read_inputs(io.BytesIO(data), "server_audit.log"))
    return sink, letters


@pytest.mark.parametrize("case", CASES)
def test_the_file_path_delivers_no_forged_record(case: str) -> None:
    sink, letters = run_file(CASES[case])
    assert forged(sink.events) == []
    assert [letter.stage for letter in letters.items if letter.stage == "suspect"]


@pytest.mark.parametrize("case", CASES)
def test_the_cloudwatch_path_delivers_no_forged_record(case: str) -> None:
    sink, letters = MemorySink(), MemorySink()
    pipeline = Pipeline(sink, dead_letter=letters)
    report = handle_subscription_event(
        subscription_event(to_payload(data_message(CASES[case]))), pipeline
    )
    assert forged(sink.events) == []
    assert report.balanced
    assert any(letter.stage == "suspect" for letter in letters.items)


@pytest.mark.parametrize("case", [c for c in CASES if "first line" not in c and "two" not in c])
def test_a_split_over_two_invocations_is_judged_with_the_line_before(case: str) -> None:
    """The forged line arrives in the next invocation of a warm container: the pipeline
    remembers the last line of the stream and judges it with that."""
    lines = CASES[case]
    cut = next(i for i, line in enumerate(lines) if line.startswith("20240131"))
    sink, letters = MemorySink(), MemorySink()
    pipeline = Pipeline(sink, dead_letter=letters)
    first = data_message(lines[:cut])
    second = data_message(lines[cut:], first_id=cut)
    handle_subscription_event(subscription_event(to_payload(first)), pipeline)
    handle_subscription_event(subscription_event(to_payload(second)), pipeline)
    assert forged(sink.events) == []
    assert any(letter.stage == "suspect" for letter in letters.items)


def test_a_split_over_two_kinesis_records_of_one_stream() -> None:
    lines = CASES["table name, forged last line (RDS form)"]
    sink, letters = MemorySink(), MemorySink()
    payloads = [
        to_payload(data_message(lines[:1])),
        to_payload(data_message(lines[1:], first_id=1)),
    ]
    response = handle_kinesis_event(kinesis_event(payloads), Pipeline(sink, dead_letter=letters))
    assert response == {"batchItemFailures": []}
    assert forged(sink.events) == []
    [letter] = [letter for letter in letters.items if letter.stage == "suspect"]
    assert isinstance(letter, DeadLetter)
    assert letter.raw == lines[1].encode()
    assert letter.origin is not None
    assert letter.origin.event_id == f"{1:056d}"


def test_other_streams_do_not_count_as_neighbours() -> None:
    """The line before is the stream's own: a table event of another log stream says
    nothing about this one's first line."""
    table, rds = CASES["table name, forged last line (RDS form)"][:2]
    sink = MemorySink()
    pipeline = Pipeline(sink)
    pipeline.process_payload(to_payload(data_message([table], log_stream="one")))
    pipeline.process_payload(to_payload(data_message([rds], log_stream="two")))
    assert len(sink.events) == 2


def test_one_line_at_a_time_is_judged_too() -> None:
    sink, letters = MemorySink(), MemorySink()
    lines = CASES["user name, forged last line"]
    Pipeline(sink, dead_letter=letters).process([Line(line) for line in lines])
    assert forged(sink.events) == []
    assert [letter.stage for letter in letters.items] == ["line", "suspect"]


def test_the_genuine_neighbours_of_a_forged_record_still_arrive() -> None:
    """Only what the name could have made is held back: the table event before it (its
    name cut, but its fields before the name the server's own) and the statement after it
    arrive."""
    sink, _ = run_file(CASES["table name, forged last line (RDS form)"])
    assert [(event.operation, event.connection_id) for event in sink.events] == [
        ("CREATE", 7),
        ("QUERY", 7),
    ]


def test_junk_after_a_table_event_does_not_spoil_it() -> None:
    sink, letters = run_file([f"{HEAD},7,12,WRITE,shop,orders,", "THIS IS,junk,"])
    assert [(event.database, event.object) for event in sink.events] == [("shop", "orders")]
    assert [letter.stage for letter in letters.items] == ["line"]


def test_could_be_one_respects_the_servers_name_limits() -> None:
    table = f"{HEAD},7,12,CREATE,shop,a,"
    assert could_be_one(table, FORGED + ",,")
    # The same shape, with a table name longer than 64 characters: no server writes it.
    assert not could_be_one(table, FORGED.replace("shop,", "s" * 80 + ",") + ",,")
    # A user name of more than 128 characters neither.
    assert could_be_one("20261206 09:24:08,vm,u", "x,localhost,15,44,QUERY,,'SELECT 1',0")
    assert not could_be_one("20261206 09:24:08,vm," + "u" * 130, "x,localhost,15,44,QUERY,,'',0")


def test_the_memory_of_streams_is_bounded() -> None:
    seams = Seams()
    for number in range(STREAMS + 10):
        seams.remember(("group", str(number)), _Last("x" * (LONGEST_HEAD + 1), None))
    assert len(seams.last) == STREAMS
    assert seams.before(("group", "0")) is None
    last = seams.before(("group", str(STREAMS + 9)))
    assert last is not None
    assert (last.text, last.event) == ("", None)


@given(st.lists(audit_events(Dialect.MARIADB), min_size=1, max_size=20))
def test_what_one_server_writes_is_never_suspect(events: list[AuditEvent]) -> None:
    """Lines of one server, each reading alone, are never held back: only a line that
    does not read, or a shape a server writes in no stream with table events, is judged."""
    lines = [format_line(attrs.evolve(event, serverhost="db1")) for event in events]
    # CloudWatch carries UTF-8: bytes that are not arrive replaced.
    lines = [line.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for line in lines]
    sink = MemorySink()
    report = Pipeline(sink).process_payload(to_payload(data_message(lines)))
    assert report.delivered == len(lines) == len(sink.events)


@pytest.mark.parametrize("case", [c for c in CASES if "first line" in c or "two" in c])
def test_a_forged_first_line_is_taken_back_within_one_invocation(case: str) -> None:
    """The forged line is the first of the pair, the pair cut between two Kinesis records
    of one invocation: the first was taken into the batch, and is taken back out of it
    when the second shows what it was, before the batch reaches the sink."""
    lines = CASES[case]
    sink, letters = MemorySink(), MemorySink()
    payloads = [
        to_payload(data_message(lines[:1])),
        to_payload(data_message(lines[1:], first_id=1)),
    ]
    handle_kinesis_event(kinesis_event(payloads), Pipeline(sink, dead_letter=letters))
    assert forged(sink.events) == []
    assert letters.items[0].stage == "suspect"
    assert letters.items[0].raw == lines[0].encode()
