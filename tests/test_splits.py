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
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditsync import AuditEvent, DeadLetter, Dialect, Pipeline, format_line, parse_line
from auditsync._pipeline import Line
from auditsync._sources import read_inputs
from auditsync._splits import LOGINS as LOGINS_HELD
from auditsync._splits import (
    LONGEST_HEAD,
    RUN,
    STREAMS,
    Seams,
    could_be_one,
    failed_login,
)
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
    """At most STREAMS streams, each its last RUN lines, a line too long to head a record
    kept as its reading alone."""
    seams = Seams()
    long_line = "x" * (LONGEST_HEAD + 1)
    for number in range(STREAMS + 10):
        seams.judge(("group", str(number)), [long_line] * (RUN + 3), [], [long_line] * (RUN + 3))
    assert len(seams.streams) == STREAMS
    assert ("group", "0") not in seams.streams
    last = seams.streams[("group", str(STREAMS + 9))]
    assert (last.texts, last.events) == ([""] * RUN, [None] * RUN)


def as_the_server_writes(events: list[AuditEvent]) -> list[AuditEvent]:
    """``events`` as one server writes them: every failed login a connection of its own,
    followed by its DISCONNECT (the server writes both with the name); a failed change of
    user, which has no second record, is tested on its own."""
    written: list[AuditEvent] = []
    for number, event in enumerate(events):
        if event.operation == "CHANGEUSER":
            event = attrs.evolve(event, retcode=0)
        if failed_login(event):
            event = attrs.evolve(event, connection_id=10**9 + number)
            closed = attrs.evolve(event, operation="DISCONNECT", retcode=0, object="")
            written += [event, closed]
        else:
            written.append(event)
    return written


@given(st.lists(audit_events(Dialect.MARIADB), min_size=1, max_size=20))
def test_what_one_server_writes_is_never_suspect(events: list[AuditEvent]) -> None:
    """Lines of one server, each reading alone, are never held back: only a line that
    does not read, a shape a server writes in no stream with table events, or the lines
    before a failed login whose DISCONNECT shows them again, are judged suspect."""
    lines = [
        format_line(attrs.evolve(event, serverhost="db1")) for event in as_the_server_writes(events)
    ]
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


# --- failed logins: a user name anyone may choose -------------------------------------------

#: What the server wrote around failed logins whose user names forge a DELETE with the
#: server's own host and time (tests/integration/test_forged_names.py makes them afresh):
#: the name is written twice, in the FAILED_CONNECT and in the DISCONNECT after it.
GENUINE = [
    "20261206 11:37:36,vm,root,localhost,6,9,QUERY,shop,'INSERT INTO shop.orders VALUES (1),(2)',0",
    "20261206 11:37:36,vm,root,localhost,6,0,DISCONNECT,,,0",
]
LOGINS = {
    # v,h,1,2,QUERY,shop,'DELETE FROM orders',0⏎20261206 11:37:36,vm,admin
    "first line": [
        "20261206 11:37:36,vm,v,h,1,2,QUERY,shop,'DELETE FROM orders',0",
        "20261206 11:37:36,vm,admin,localhost,7,0,FAILED_CONNECT,,,1045",
        "20261206 11:37:36,vm,v,h,1,2,QUERY,shop,'DELETE FROM orders',0",
        "20261206 11:37:36,vm,admin,localhost,7,0,DISCONNECT,,,0",
    ],
    # x⏎20261206 11:37:36,vm,a,h,1,3,QUERY,shop,'DELETE FROM orders',0⏎20261206 11:37:36,vm,w
    "middle line": [
        "20261206 11:37:36,vm,x",
        "20261206 11:37:36,vm,a,h,1,3,QUERY,shop,'DELETE FROM orders',0",
        "20261206 11:37:36,vm,w,localhost,8,0,FAILED_CONNECT,,,1045",
        "20261206 11:37:36,vm,x",
        "20261206 11:37:36,vm,a,h,1,3,QUERY,shop,'DELETE FROM orders',0",
        "20261206 11:37:36,vm,w,localhost,8,0,DISCONNECT,,,0",
    ],
    # u,localhost,7,0,DISCONNECT,,,0⏎20261206 12:06:11,vm,a,h,1,3,QUERY,shop,'DELETE…',0⏎
    # 20261206 12:06:11,vm,u — the name's first line a DISCONNECT of its own connection
    # (the id is in the server's greeting), so that one comes right after the failed login.
    "forged DISCONNECT": [
        "20261206 12:06:11,vm,u,localhost,7,0,DISCONNECT,,,0",
        "20261206 12:06:11,vm,a,h,1,3,QUERY,shop,'DELETE FROM orders',0",
        "20261206 12:06:11,vm,u,localhost,7,0,FAILED_CONNECT,,,1045",
        "20261206 12:06:11,vm,u,localhost,7,0,DISCONNECT,,,0",
        "20261206 12:06:11,vm,a,h,1,3,QUERY,shop,'DELETE FROM orders',0",
        "20261206 12:06:11,vm,u,localhost,7,0,DISCONNECT,,,0",
    ],
}


def deletes(events: Sequence[AuditEvent]) -> list[AuditEvent]:
    return [event for event in events if event.object == "DELETE FROM orders"]


@pytest.mark.parametrize("case", LOGINS)
def test_a_failed_logins_name_forges_nothing_on_the_file_path(case: str) -> None:
    sink, letters = run_file(GENUINE + LOGINS[case])
    assert deletes(sink.events) == []
    # The genuine records arrive, the failed login and its DISCONNECT included.
    failed = 8 if case == "middle line" else 7
    assert [(event.operation, event.connection_id) for event in sink.events] == [
        ("QUERY", 6),
        ("DISCONNECT", 6),
        ("FAILED_CONNECT", failed),
        ("DISCONNECT", failed),
    ]
    assert sum(letter.stage == "suspect" for letter in letters.items) == (
        4 if case == "forged DISCONNECT" else 2
    )


@pytest.mark.parametrize("case", LOGINS)
def test_a_failed_logins_name_forges_nothing_at_any_cut_between_invocations(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Each physical line a log event, the lines cut into two invocations of a warm
    function at every place but three: between a name's first line that reads and the
    DISCONNECT that shows it again, what came before the cut went as records before
    anything showed what they were (docs/security.md) — and the second invocation says
    so, with each one's place."""
    lines = GENUINE + LOGINS[case]
    # How many forged DELETEs went, by where the cut falls after the genuine lines. The
    # middle line follows one that does not read: that pair judges it.
    beyond_recall = {
        "first line": {1: 1, 2: 1, 3: 2},
        "middle line": {},
        "forged DISCONNECT": {2: 1, 3: 1, 4: 1, 5: 2},
    }[case]
    for cut in range(1, len(lines)):
        sink, letters = MemorySink(), MemorySink()
        pipeline = Pipeline(sink, dead_letter=letters)
        caplog.clear()
        for part, first in ((lines[:cut], 0), (lines[cut:], cut)):
            message = data_message(part, first_id=first)
            handle_subscription_event(subscription_event(to_payload(message)), pipeline)
        went = deletes(sink.events)
        assert len(went) == beyond_recall.get(cut - len(GENUINE), 0), cut
        assert len(sink.events) + len(letters.items) == len(lines)
        said = [record.getMessage() for record in caplog.records if "past recall" in record.message]
        for event in went:
            assert event.origin is not None
            assert any(event.origin.describe() in message for message in said), (cut, said)


def test_a_failed_login_without_a_name_that_holds_lines_is_no_suspect() -> None:
    """A client with a wrong password, a brute force, a database that does not exist: the
    lines before each failed login could be its name's, but its DISCONNECT does not
    repeat them, so every record arrives."""
    lines = [*GENUINE]
    for number in range(20, 30):
        lines += [
            f"20261206 11:37:37,vm,app,10.0.0.5,{number},0,FAILED_CONNECT,,,1045",
            f"20261206 11:37:37,vm,app,10.0.0.5,{number},0,DISCONNECT,,,0",
            f"20261206 11:37:37,vm,root,localhost,6,{number},QUERY,shop,'COMMIT',0",
        ]
    sink, letters = run_file(lines)
    assert len(sink.events) == len(lines)
    assert letters.items == []


def test_a_failed_login_whose_disconnect_never_comes_lets_its_lines_go() -> None:
    """Where the DISCONNECT has not come when the call ends, nothing shows the lines
    before the failed login to be its name's: they go as records. Its DISCONNECT, in a
    later call, is still judged: a name it repeats makes the lines before it suspect."""
    first = [*GENUINE, "20261206 11:37:37,vm,app,10.0.0.5,20,0,FAILED_CONNECT,,,1045"]
    sink, letters = MemorySink(), MemorySink()
    pipeline = Pipeline(sink, dead_letter=letters)
    pipeline.process([Line(line) for line in first])
    assert [event.operation for event in sink.events] == ["QUERY", "DISCONNECT", "FAILED_CONNECT"]
    again = [GENUINE[1], "20261206 11:37:37,vm,app,10.0.0.5,20,0,DISCONNECT,,,0"]
    pipeline.process([Line(line) for line in again])
    assert [letter.raw for letter in letters.items] == [GENUINE[1].encode()]


def test_a_batch_waits_for_the_disconnect_up_to_twice_its_size() -> None:
    """A batch fills up between the failed login and the DISCONNECT that gives its name
    away: it waits for the DISCONNECT rather than deliver the forged line. (Full before
    the failed login, it goes: the residual docs/security.md names.)"""
    padding = [
        f"20261206 11:37:35,vm,root,localhost,6,{number},QUERY,shop,'SELECT {number}',0"
        for number in range(100, 108)
    ]
    lines = padding + LOGINS["first line"]
    for batch_size in (10, 11):  # full after the failed login, after the copy
        sink, letters = MemorySink(), MemorySink()
        Pipeline(sink, dead_letter=letters, batch_size=batch_size).process(
            [Line(line) for line in lines]
        )
        assert deletes(sink.events) == [], batch_size
        assert len(letters.items) == 2


def test_a_failed_change_of_user_holds_back_what_its_name_can_be_at_once() -> None:
    """A change of user that failed is written once: its name is never repeated, so the
    lines it can hold are suspect (the server wrote this one for a name with a newline)."""
    lines = [
        "20261206 11:32:07,vm,root,localhost,11,16,QUERY,,'SET NAMES utf8mb4',0",
        "20261206 11:32:07,vm,v,h,1,2,QUERY,shop,'DELETE FROM orders',0",
        "20261206 11:32:07,vm,admin,localhost,11,0,CHANGEUSER,,,1047",
        "20261206 11:32:08,vm,root,localhost,11,0,DISCONNECT,,,0",
    ]
    sink, letters = run_file(lines)
    assert deletes(sink.events) == []
    assert [event.operation for event in sink.events] == ["QUERY", "CHANGEUSER", "DISCONNECT"]
    assert [letter.raw for letter in letters.items] == [lines[1].encode()]


@pytest.mark.parametrize("settings", [{"redact": True}, {"sort_window": 10}])
@pytest.mark.parametrize("lines", [LOGINS["first line"], CASES["database name, forged first line"]])
def test_a_line_taken_into_the_batch_is_taken_back_as_the_batch_holds_it(
    settings: dict[str, Any], lines: list[str]
) -> None:
    """Redaction makes a new event of each statement, a sort window holds events apart
    from the batch: the forged line read in an earlier Kinesis record is still taken
    back (before, both let it through)."""
    payloads = [
        to_payload(data_message(lines[:1])),
        to_payload(data_message(lines[1:], first_id=1)),
    ]
    sink, letters = MemorySink(), MemorySink()
    handle_kinesis_event(kinesis_event(payloads), Pipeline(sink, dead_letter=letters, **settings))
    assert [event.object for event in sink.events if "orders" in event.object] == []
    assert letters.items[0].stage == "suspect"
    assert letters.items[0].raw == lines[0].encode()


def test_the_memory_of_failed_logins_is_bounded() -> None:
    """LOGINS failed logins awaiting their DISCONNECT at most; one forgotten before it came
    leaves what it held suspect."""
    seams = Seams()
    found = []
    for number in range(LOGINS_HELD + 5):
        texts = [
            f"20261206 11:37:37,vm,root,localhost,6,{number + 9},QUERY,,'COMMIT',0",
            f"20261206 11:37:37,vm,app,localhost,{number},0,FAILED_CONNECT,,,1045",
        ]
        events = [parse_line(text) for text in texts]
        found += seams.judge("log", texts, events, [])
    assert len(seams.logins) == LOGINS_HELD
    # (Each run holds the failed login before it too: 128 characters reach it.)
    assert [event.query_id for _, event in found if event.query_id] == [9, 10, 11, 12, 13]
