"""The pipeline's books: every record in exactly one column, batches, refusals, ordering."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from auditsync import (
    AuditEvent,
    DeadLetter,
    EnvelopeError,
    Line,
    Lines,
    LogEvent,
    Origin,
    Payload,
    Pipeline,
    Report,
    SubscriptionMessage,
    parse_line,
    parse_message,
)
from auditsync._pipeline import KEPT_DEAD_LETTER_BYTES
from auditsync._splits import failed_login, reads
from auditsync.filters import operation
from auditsync.sinks import MemorySink, Refused
from auditsync.testing import audit_lines, subscription_messages, to_payload

HEAD = "20240131 14:02:07,db1,app,h"


def query(number: int, text: str = "select 1", second: int = 7) -> str:
    return f"20240131 14:02:{second:02d},db1,app,h,{number},{number},QUERY,shop,'{text}',0"


class FailingSink:
    """Takes ``good_writes`` batches, then fails every write."""

    def __init__(self, good_writes: int):
        self.good_writes = good_writes
        self.taken: list[AuditEvent] = []

    def write(self, events: Sequence[AuditEvent]) -> None:
        if self.good_writes <= 0:
            raise ConnectionError("down")
        self.good_writes -= 1
        self.taken.extend(events)

    def close(self) -> None:
        pass


def test_lines_are_numbered_and_keyed_by_place() -> None:
    sink = MemorySink()
    report = Pipeline(sink).process_lines([query(1), query(1)], Origin(path="a.log"))
    events = sink.events
    assert [e.origin.line_number for e in events if e.origin] == [1, 2]
    assert events[0].key != events[1].key
    assert report.delivered == 2
    assert report.balanced


def test_batches_and_failure_attribution() -> None:
    sink = FailingSink(good_writes=2)
    inputs = [Line(query(n)) for n in range(10)]
    report = Pipeline(sink, batch_size=3).process(inputs)
    assert len(sink.taken) == 6
    assert report.failed_input == 6
    assert isinstance(report.error, ConnectionError)
    assert (report.records, report.delivered, report.failed) == (9, 6, 3)
    assert report.balanced


def test_dead_letters_of_a_failed_batch_are_not_written() -> None:
    letters = MemorySink()
    report = Pipeline(FailingSink(0), dead_letter=letters).process([Line(query(1)), Line("junk")])
    assert letters.items == []
    assert (report.failed, report.dead_lettered) == (2, 0)
    assert report.balanced


def test_refused_events_become_dead_letters_with_the_reason() -> None:
    class RefuseOdd:
        def __init__(self) -> None:
            self.rows: list[AuditEvent] = []

        def write(self, events: Sequence[AuditEvent]) -> None:
            odd = [e for e in events if e.connection_id % 2]
            self.rows += [e for e in events if not e.connection_id % 2]
            if odd:
                raise Refused(odd, "odd connections are not welcome")

        def close(self) -> None:
            pass

    sink, letters = RefuseOdd(), MemorySink()
    report = Pipeline(sink, dead_letter=letters).process([Line(query(n)) for n in range(5)])
    assert (report.delivered, report.dead_lettered, report.failed) == (3, 2, 0)
    refused = letters.dead_letters
    assert [letter.event.connection_id for letter in refused if letter.event] == [1, 3]
    assert {letter.stage for letter in refused} == {"sink"}
    assert refused[0].error == "odd connections are not welcome"
    assert refused[0].raw == query(1).encode()
    assert report.balanced


def test_without_a_dead_letter_sink_dead_letters_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="auditsync"):
        report = Pipeline(MemorySink()).process([Line("junk", Origin(path="x.log", line_number=3))])
    assert report.dead_lettered == 1
    assert "x.log:3" in caplog.text
    assert "anVuaw==" in caplog.text  # base64 of b"junk"


def test_filter_and_transform() -> None:
    sink = MemorySink()
    login = f"{HEAD},9,0,CONNECT,shop,,0"

    def shout(event: AuditEvent) -> AuditEvent:
        return parse_line(query(event.connection_id, event.object.upper()))

    report = Pipeline(sink, filter=operation("QUERY"), transform=shout).process(
        [Line(query(1)), Line(login)]
    )
    assert [e.object for e in sink.events] == ["SELECT 1"]
    assert (report.filtered, report.delivered) == (1, 1)


def test_sort_window_orders_events_across_inputs() -> None:
    seconds = [5, 3, 9, 1, 7, 2]
    sink = MemorySink()
    report = Pipeline(sink, sort_window=10, batch_size=2).process(
        [Line(query(n, second=s)) for n, s in enumerate(seconds)]
    )
    assert [e.timestamp.second for e in sink.events] == sorted(seconds)
    assert report.delivered == len(seconds)


def test_sort_window_is_bounded() -> None:
    seconds = [5, 4, 3, 2, 1, 0]
    sink = MemorySink()
    Pipeline(sink, sort_window=2).process([Line(query(n, second=s)) for n, s in enumerate(seconds)])
    assert [e.timestamp.second for e in sink.events] == [3, 2, 1, 0, 4, 5]


def test_held_events_count_as_failed_when_the_sink_fails() -> None:
    report = Pipeline(FailingSink(0), sort_window=100, batch_size=1).process(
        [Line(query(n)) for n in range(5)]
    )
    assert report.balanced
    assert report.failed == 5
    assert report.failed_input == 0


def test_empty_payload_and_payload_without_messages_are_dead_letters() -> None:
    letters = MemorySink()
    report = Pipeline(MemorySink(), dead_letter=letters).process([Payload(""), Payload(b"   ")])
    assert report.dead_lettered == 2
    assert all(letter.stage == "payload" for letter in letters.dead_letters)


def test_bad_document_between_good_ones_is_its_own_dead_letter() -> None:
    import orjson

    good = orjson.dumps(
        {
            "messageType": "DATA_MESSAGE",
            "owner": "1",
            "logGroup": "g",
            "logStream": "s",
            "subscriptionFilters": [],
            "logEvents": [{"id": "1", "timestamp": 0, "message": query(1)}],
        }
    )
    sink, letters = MemorySink(), MemorySink()
    report = Pipeline(sink, dead_letter=letters).process_payload(good + b'{"oops": 1}' + good)
    assert report.delivered == 2
    assert letters.dead_letters[0].stage == "envelope"
    assert letters.dead_letters[0].raw == b'{"oops": 1}'


def test_pipeline_validates_its_settings() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        Pipeline(MemorySink(), batch_size=0)
    with pytest.raises(ValueError, match="oracle"):
        Pipeline(MemorySink(), dialect="oracle")


@given(st.lists(st.one_of(audit_lines(), st.text(max_size=30)), max_size=20), st.integers(1, 7))
def test_books_balance_for_any_lines(lines: list[str], batch_size: int) -> None:
    sink, letters = MemorySink(), MemorySink()
    report = Pipeline(sink, dead_letter=letters, batch_size=batch_size).process(
        [Line(text) for text in lines]
    )
    assert report.balanced
    assert report.records == len(lines)
    assert len(sink.events) == report.delivered
    assert len(letters.dead_letters) == report.dead_lettered


@given(st.lists(subscription_messages(), min_size=1, max_size=4))
def test_every_log_event_of_generated_messages_is_delivered(
    messages: list[SubscriptionMessage],
) -> None:
    """Every one, unless a failed change of user follows: the lines its name can hold are
    suspect (docs/security.md; tests/test_splits.py)."""
    assume(
        not any(
            (event := reads(log_event.message)) is not None
            and event.operation == "CHANGEUSER"
            and failed_login(event)
            for message in messages
            for log_event in message.log_events
        )
    )
    sink = MemorySink()
    report = Pipeline(sink).process([Payload(to_payload(m)) for m in messages])
    expected = [event.id for message in messages for event in message.log_events]
    assert [e.key for e in sink.events] == expected
    assert report.balanced


def test_report_summary_and_add() -> None:
    first = Pipeline(MemorySink()).process([Line(query(1))])
    second = Pipeline(MemorySink(), dead_letter=MemorySink()).process([Line("junk")])
    first.add(second)
    assert (first.records, first.delivered, first.dead_lettered) == (2, 1, 1)
    assert "2 records" in first.summary()
    assert isinstance(first.dead_letters[0], DeadLetter)


def test_timestamps_are_aware_utc() -> None:
    sink = MemorySink()
    Pipeline(sink).process([Line(query(1))])
    assert sink.events[0].timestamp == datetime(2024, 1, 31, 14, 2, 7, tzinfo=UTC)


def test_redaction_happens_before_the_sink_and_the_refusal_letters() -> None:
    head = "20240131 14:02:07,db1,app,h,5,16,QUERY"
    secret = f"{head},shop,'insert into cards values (\\'4111 1111\\', 42)',0"
    password = f"{head},,'CREATE USER u IDENTIFIED BY *****\\'s-Secret2\\'',0"
    sink = MemorySink()
    Pipeline(sink, redact=True).process([Line(secret), Line(password)])
    texts = [event.object for event in sink.events]
    assert texts[0] == "insert into cards values ('?', ?)"
    assert "Secret2" not in texts[1]
    passwords_only = MemorySink()
    Pipeline(passwords_only, redact="passwords").process([Line(secret), Line(password)])
    assert passwords_only.events[0].object == "insert into cards values ('4111 1111', 42)"
    assert "Secret2" not in passwords_only.events[1].object
    with pytest.raises(ValueError, match="redact"):
        Pipeline(MemorySink(), redact="everything")


def test_each_refused_event_gets_its_own_reason_when_the_sink_gives_one() -> None:
    class Picky:
        def write(self, events: Sequence[AuditEvent]) -> None:
            reasons = {event.key: f"connection {event.connection_id}" for event in events}
            raise Refused(events, "refused in bulk", reasons)

        def close(self) -> None:
            pass

    letters = MemorySink()
    Pipeline(Picky(), dead_letter=letters).process([Line(query(1)), Line(query(2))])
    assert [letter.error for letter in letters.dead_letters] == ["connection 1", "connection 2"]


# --- bounded batches (issue 16) -----------------------------------------------------------------


class Recorder:
    """Keeps what it is given and the size of each write."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.sizes: list[int] = []

    def write(self, items: Sequence[Any]) -> None:
        self.sizes.append(len(items))
        self.items.extend(items)

    def close(self) -> None:
        pass


def message_of(lines: Sequence[str], first_id: int = 0) -> SubscriptionMessage:
    events = tuple(LogEvent(str(first_id + n), 0, line) for n, line in enumerate(lines))
    return SubscriptionMessage("DATA_MESSAGE", "1", "g", "s", ("f",), events)


def payload_of(*messages: SubscriptionMessage) -> str:
    """One payload holding several messages back to back, as a Firehose object does."""
    return to_payload(b"".join(orjson.dumps(message.to_dict()) for message in messages))


@pytest.mark.parametrize(("batch_size", "count"), [(10, 1_000), (25, 10_000), (1, 30)])
def test_a_sink_never_takes_more_than_batch_size_events_at_once(
    batch_size: int, count: int
) -> None:
    sink = Recorder()
    lines = [query(n) for n in range(count)]
    report = Pipeline(sink, batch_size=batch_size).process([Payload(payload_of(message_of(lines)))])
    assert report.delivered == count
    assert max(sink.sizes) == batch_size
    assert len(sink.items) == count


@pytest.mark.parametrize("sort_window", [0, 50])
def test_lines_and_dead_letters_also_go_in_batches_of_at_most_batch_size(
    sort_window: int,
) -> None:
    sink, letters = Recorder(), Recorder()
    texts: list[str | bytes] = [query(n) if n % 3 else "junk" for n in range(1_000)]
    pipeline = Pipeline(sink, dead_letter=letters, batch_size=7, sort_window=sort_window)
    report = pipeline.process([Lines(texts, Origin(path="a.log"), list(range(1, 1_001)))])
    assert report.balanced
    assert (report.delivered, report.dead_lettered) == (666, 334)
    assert max(sink.sizes) <= 7
    assert max(letters.sizes) <= 7


@given(
    st.lists(st.lists(st.one_of(audit_lines(), st.just("junk")), max_size=12), max_size=5),
    st.integers(1, 5),
    st.sampled_from([0, 4]),
)
def test_batch_size_bounds_every_write_of_any_payloads(
    messages: list[list[str]], batch_size: int, sort_window: int
) -> None:
    sink, letters = Recorder(), Recorder()
    pipeline = Pipeline(sink, dead_letter=letters, batch_size=batch_size, sort_window=sort_window)
    payloads = [
        Payload(payload_of(message_of(lines, 100 * n), message_of(lines, 100 * n + 50)))
        for n, lines in enumerate(messages)
        if lines
    ]
    report = pipeline.process(payloads)
    assert report.balanced
    assert report.records == 2 * sum(len(lines) for lines in messages)
    assert all(size <= batch_size for size in sink.sizes + letters.sizes)
    assert len(sink.items) == report.delivered


def test_events_stream_out_of_a_payload_in_bounded_batches() -> None:
    """The sink is written to while a payload of many messages is still being read."""
    made: list[int] = []
    taken_before_first_write: list[int] = []

    def count(event: AuditEvent) -> AuditEvent:
        made.append(1)
        return event

    class Watcher(Recorder):
        def write(self, items: Sequence[Any]) -> None:
            if not self.sizes:
                taken_before_first_write.append(len(made))
            super().write(items)

    messages = [message_of([query(n) for n in range(1_000)], 1_000 * m) for m in range(30)]
    sink = Watcher()
    report = Pipeline(sink, transform=count, batch_size=100).process(
        [Payload(payload_of(*messages))]
    )
    assert report.delivered == 30_000
    # One message (1,000 events) read when the first batch filled, not all 30.
    assert taken_before_first_write == [1_000]
    assert max(sink.sizes) == 100


def test_a_message_of_more_than_10000_log_events_is_refused_whole() -> None:
    junk = message_of(["junk"] * 10_001)
    letters = Recorder()
    report = Pipeline(Recorder(), dead_letter=letters).process([Payload(payload_of(junk))])
    assert (report.records, report.dead_lettered, report.events) == (1, 1, 0)
    [letter] = letters.items
    assert letter.stage == "envelope"
    assert "10,001 log events" in letter.error
    assert "at most 10,000" in letter.error
    with pytest.raises(EnvelopeError, match="at most 10,000") as caught:
        parse_message(junk.to_dict())
    assert caught.value.field == "logEvents"


def test_a_message_of_10000_log_events_is_read() -> None:
    sink = Recorder()
    lines = [query(n) for n in range(10_000)]
    report = Pipeline(sink).process([Payload(payload_of(message_of(lines)))])
    assert report.delivered == 10_000


# --- what a report keeps (issue 16) -------------------------------------------------------------

#: Runs a pipeline over 1,000 dead letters of 256 KiB each, made one at a time, into a
#: dead-letter sink that keeps nothing, in batches of 10; prints the process's own peak
#: RSS (VmHWM, KiB) and how many letters the report kept.
_MANY_LARGE_LETTERS = """
import sys
from auditsync import Line, Pipeline
from auditsync.sinks import Refused

class Nowhere:
    def write(self, items):
        pass
    def close(self):
        pass

class Refuses(Nowhere):
    def write(self, items):
        raise Refused(items, "refused")

big = "x" * (256 * 1024)
if sys.argv[1] == "refused":
    lines = (f"20240131 14:02:07,db1,app,h,1,{n},QUERY,shop,'{big}',0" for n in range(1000))
else:
    lines = (big for _ in range(1000))
sink = Refuses() if sys.argv[1] == "refused" else Nowhere()
pipeline = Pipeline(sink, dead_letter=Nowhere(), batch_size=10)
report = pipeline.process(Line(line) for line in lines)
assert report.dead_lettered == 1000, report.summary()
with open("/proc/self/status") as status:
    print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
print(len(report.dead_letters))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
@pytest.mark.parametrize("kind", ["line", "refused"])
def test_a_report_keeps_dead_letters_within_a_bound_in_bytes(kind: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _MANY_LARGE_LETTERS, kind],
        capture_output=True,
        check=True,
        timeout=300,
    )
    peak_kib, kept = map(int, result.stdout.split())
    # 1,000 letters of 256 KiB would hold 250 MiB (and, refused, twice that).
    assert peak_kib < 100 * 1024
    assert kept * 256 * 1024 <= KEPT_DEAD_LETTER_BYTES
    assert kept >= 1


def test_a_report_keeps_the_first_dead_letters_that_fit() -> None:
    small = [Line(f"junk {n}") for n in range(5_000)]
    report = Pipeline(MemorySink(), dead_letter=MemorySink()).process(small)
    assert report.dead_lettered == 5_000
    kept = len(report.dead_letters)
    assert 1_000 <= kept < 5_000
    assert [letter.raw for letter in report.dead_letters] == [
        f"junk {n}".encode() for n in range(kept)
    ]
    merged = Report()
    merged.add(report)
    merged.add(report)
    assert merged.dead_letters == report.dead_letters


def test_a_batch_of_large_dead_letters_is_delivered_before_it_is_full() -> None:
    letters = Recorder()
    big = [Line("x" * (1 << 20)) for _ in range(40)]
    report = Pipeline(MemorySink(), dead_letter=letters).process(big)
    assert report.dead_lettered == 40
    assert max(letters.sizes) <= 8


def test_a_batch_of_long_statements_is_delivered_before_it_is_full() -> None:
    sink = Recorder()
    long_query = "select " + "x" * (1 << 20)
    inputs = [Lines([query(n, long_query)], Origin(path="a.log")) for n in range(40)]
    report = Pipeline(sink).process(inputs)
    assert report.delivered == 40
    assert max(sink.sizes) <= 8


def test_process_lines_makes_blocks_of_at_most_8_mib() -> None:
    from auditsync._pipeline import BLOCK_BYTES, _blocks

    long_line = "x" * (1 << 20)
    blocks = list(_blocks([long_line] * 40, Origin(path="a.log")))
    assert all(sum(map(len, block.texts)) <= BLOCK_BYTES for block in blocks)
    assert [n for block in blocks for n in block.numbers or []] == list(range(1, 41))
