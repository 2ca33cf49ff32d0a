"""The Lambda adapters, driven the way Lambda drives them: a simulated Kinesis shard with
poison records and a sink that fails at random, re-invoked from the lowest reported
sequence number until the shard drains."""

from __future__ import annotations

import base64
import gzip
import json
import logging
import os
import random
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from hypothesis import given

from auditsync import AuditEvent, DeadLetter, Dialect, LogEvent, SubscriptionMessage, format_line
from auditsync._errors import DeliveryError, EnvelopeError
from auditsync._pipeline import Payload, Pipeline
from auditsync.aws import (
    FIREHOSE_MAX_RESPONSE,
    handle_firehose_event,
    handle_kinesis_event,
    handle_subscription_event,
    lambda_handler,
)
from auditsync.testing import firehose_events, kinesis_event, kinesis_events, to_payload

GROUP = "/aws/rds/cluster/prod/audit"


class StoreSink:
    """An idempotent sink keyed by AuditEvent.key that fails when told to."""

    def __init__(self, failure_rate: float = 0.0, seed: int = 0):
        self.rows: dict[str, AuditEvent] = {}
        self.writes = 0
        self.failure_rate = failure_rate
        self.random = random.Random(seed)

    def write(self, events: Sequence[AuditEvent]) -> None:
        self.writes += 1
        if self.random.random() < self.failure_rate:
            raise ConnectionError("database is down")
        for event in events:
            self.rows.setdefault(event.key, event)

    def close(self) -> None:
        pass


class LetterBox:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    def write(self, letters: Sequence[DeadLetter]) -> None:
        self.letters.extend(letters)

    def close(self) -> None:
        pass


def audit_line(rng: random.Random, number: int) -> str:
    query = rng.choice(
        [
            "insert into orders values (1, 'a,b', 'it''s')",
            "update t set c = 'x\\\\' where id = 3",
            'select \'}{"messageType"\', "q" from dual',
            "delete from t where note = 'tab\there\nnewline'",
        ]
    )
    escaped = (
        query.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\t", "\\t")
    )
    head = f"20240131 14:02:{number % 60:02d},db1,app,10.0.0.{number % 9},{number},{number * 3}"
    return f"{head},QUERY,shop,'{escaped}',0"


class Shard:
    """Records of one shard, with what each one should end as."""

    def __init__(self, size: int, seed: int):
        rng = random.Random(seed)
        self.payloads: list[str] = []
        self.good_ids: set[str] = set()
        self.poison: dict[int, str] = {}
        self.controls: set[int] = set()
        counter = 0
        for index in range(size):
            kind = rng.choices(
                [
                    "good",
                    "bad-base64",
                    "truncated-gzip",
                    "not-a-message",
                    "bad-lines",
                    "control",
                    "empty",
                ],
                weights=[70, 4, 4, 4, 8, 5, 2],
            )[0]
            if kind == "good" or kind == "bad-lines":
                events = []
                for _ in range(rng.randint(1, 6)):
                    counter += 1
                    event_id = f"{counter:056d}"
                    if kind == "bad-lines" and rng.random() < 0.5:
                        events.append(LogEvent(event_id, 1, "this is not an audit line"))
                        self.poison[index] = "line"
                    else:
                        events.append(LogEvent(event_id, 1, audit_line(rng, counter)))
                        self.good_ids.add(event_id)
                message = SubscriptionMessage(
                    "DATA_MESSAGE",
                    "123456789012",
                    GROUP,
                    "prod-1.audit.log.0",
                    ("f",),
                    tuple(events),
                )
                self.payloads.append(to_payload(message))
            elif kind == "control":
                control = SubscriptionMessage(
                    "CONTROL_MESSAGE",
                    "CloudwatchLogs",
                    "",
                    "",
                    (),
                    (LogEvent("0", 1, "CWL CONTROL MESSAGE: Checking health of destination"),),
                )
                self.payloads.append(to_payload(control))
                self.controls.add(index)
            elif kind == "bad-base64":
                self.payloads.append("H4sIA!!!not base64")
                self.poison[index] = "payload"
            elif kind == "truncated-gzip":
                whole = gzip.compress(orjson.dumps({"messageType": "DATA_MESSAGE"}) * 20)
                self.payloads.append(base64.b64encode(whole[:-12]).decode())
                self.poison[index] = "payload"
            elif kind == "not-a-message":
                self.payloads.append(to_payload(b'{"hello": "world"}'))
                self.poison[index] = "envelope"
            else:
                self.payloads.append("")
                self.poison[index] = "payload"


def drain(shard: Shard, pipeline: Pipeline, batch_size: int, max_invocations: int = 2000) -> int:
    """Invoke like the event source mapping: retry from the reported sequence number."""
    event = kinesis_event(shard.payloads)
    records = event["Records"]
    position = 0
    invocations = 0
    while position < len(records):
        invocations += 1
        assert invocations <= max_invocations, "the shard stalled"
        batch = records[position : position + batch_size]
        response = handle_kinesis_event({"Records": batch}, pipeline)
        failures = response["batchItemFailures"]
        if not failures:
            position += len(batch)
            continue
        assert len(failures) == 1
        sequence = failures[0]["itemIdentifier"]
        assert sequence
        position = next(
            i for i, r in enumerate(records) if r["kinesis"]["sequenceNumber"] == sequence
        )
    return invocations


@pytest.mark.parametrize(
    ("seed", "failure_rate", "batch_size"), [(1, 0.0, 100), (2, 0.3, 50), (3, 0.5, 7)]
)
def test_simulated_shard_drains_exactly_once(
    seed: int, failure_rate: float, batch_size: int
) -> None:
    shard = Shard(300, seed)
    sink = StoreSink(failure_rate, seed)
    letters = LetterBox()
    pipeline = Pipeline(sink, dead_letter=letters, batch_size=25)
    invocations = drain(shard, pipeline, batch_size)
    assert set(sink.rows) == shard.good_ids
    for event in sink.rows.values():
        assert event.origin is not None
        assert event.origin.log_group == GROUP
        assert event.origin.shard_id == "shardId-000000000000"
        assert event.key == event.origin.event_id
    sequences = [r["kinesis"]["sequenceNumber"] for r in kinesis_event(shard.payloads)["Records"]]
    lettered = {
        (letter.origin.sequence_number, letter.stage) for letter in letters.letters if letter.origin
    }
    for index, stage in shard.poison.items():
        assert (sequences[index], stage) in lettered
    assert all(letter.raw is not None for letter in letters.letters)
    if failure_rate:
        assert invocations > len(shard.payloads) / batch_size


def test_reports_balance_and_control_messages_are_skipped() -> None:
    shard = Shard(200, 7)
    pipeline = Pipeline(StoreSink(), dead_letter=LetterBox())
    report = pipeline.process([Payload(p) for p in shard.payloads])
    assert report.balanced
    assert report.control == len(shard.controls)
    assert report.delivered == len(shard.good_ids)
    assert report.failed == 0


def test_sink_failure_reports_only_the_first_undelivered_record() -> None:
    class DownAfterFirstRecord(StoreSink):
        """Takes the events of the first record it sees (one at a time), then is down."""

        def write(self, events: Sequence[AuditEvent]) -> None:
            assert len(events) == 1
            [taken] = events
            sequences = {event.origin.sequence_number for event in self.rows.values()}
            if sequences and taken.origin.sequence_number not in sequences:
                raise ConnectionError("gone")
            super().write(events)

    shard = Shard(10, 11)
    good = [i for i in range(10) if i not in shard.poison and i not in shard.controls]
    pipeline = Pipeline(DownAfterFirstRecord(), batch_size=1)
    event = kinesis_event(shard.payloads)
    response = handle_kinesis_event(event, pipeline)
    failed = response["batchItemFailures"]
    assert len(failed) == 1
    second_good = event["Records"][good[1]]["kinesis"]["sequenceNumber"]
    assert failed[0]["itemIdentifier"] == second_good


def test_poison_only_batch_reports_no_failure() -> None:
    pipeline = Pipeline(StoreSink(), dead_letter=LetterBox())
    response = handle_kinesis_event(kinesis_event(["%%%", "", to_payload(b"[1,2]")]), pipeline)
    assert response == {"batchItemFailures": []}


@given(kinesis_events())
def test_generated_kinesis_events_are_accounted_for(event: dict[str, Any]) -> None:
    sink = StoreSink()
    letters = LetterBox()
    pipeline = Pipeline(sink, dead_letter=letters)
    assert handle_kinesis_event(event, pipeline) == {"batchItemFailures": []}
    for stored in sink.rows.values():
        assert format_line(stored)
    # None, unless a failed change of user came: the lines its name can hold are suspect
    # (docs/security.md; tests/test_splits.py).
    changes = [row for row in sink.rows.values() if row.operation == "CHANGEUSER" and row.retcode]
    assert [letter.stage for letter in letters.letters] == (
        [letter.stage for letter in letters.letters if letter.stage == "suspect"] if changes else []
    )


def test_subscription_event_delivers_and_raises_on_sink_failure() -> None:
    line = audit_line(random.Random(1), 5)
    message = SubscriptionMessage(
        "DATA_MESSAGE", "1", GROUP, "s", ("f",), (LogEvent("42", 1, line),)
    )
    event = {"awslogs": {"data": to_payload(message)}}
    sink = StoreSink()
    report = handle_subscription_event(event, Pipeline(sink))
    assert report.delivered == 1
    assert list(sink.rows) == ["42"]
    with pytest.raises(DeliveryError, match="database is down"):
        handle_subscription_event(event, Pipeline(StoreSink(failure_rate=1.0)))
    letters = LetterBox()
    poisoned = handle_subscription_event(
        {"awslogs": {"data": "%%"}}, Pipeline(sink, dead_letter=letters)
    )
    assert poisoned.dead_lettered == 1
    assert letters.letters[0].stage == "payload"
    with pytest.raises(EnvelopeError):
        handle_subscription_event({"nothing": 1}, Pipeline(sink))


def test_firehose_results_per_record() -> None:
    rng = random.Random(3)
    good = SubscriptionMessage(
        "DATA_MESSAGE",
        "1",
        GROUP,
        "s",
        ("f",),
        (LogEvent("1", 1, audit_line(rng, 1)), LogEvent("2", 1, audit_line(rng, 2))),
    )
    control = SubscriptionMessage(
        "CONTROL_MESSAGE", "CloudwatchLogs", "", "", (), (LogEvent("0", 1, "CWL CONTROL MESSAGE"),)
    )
    event = {
        "deliveryStreamArn": "arn:aws:firehose:eu-west-1:1:deliverystream/x",
        "records": [
            {"recordId": "r1", "data": to_payload(good)},
            {"recordId": "r2", "data": to_payload(control)},
            {"recordId": "r3", "data": "not base64!"},
        ],
    }
    letters = LetterBox()
    response = handle_firehose_event(event, Pipeline(StoreSink(), dead_letter=letters))
    results = {r["recordId"]: r for r in response["records"]}
    assert [r["recordId"] for r in response["records"]] == ["r1", "r2", "r3"]
    assert results["r1"]["result"] == "Ok"
    lines = base64.b64decode(results["r1"]["data"]).decode().splitlines()
    assert [orjson.loads(line)["key"] for line in lines] == ["1", "2"]
    assert results["r2"]["result"] == "Dropped"
    assert results["r3"]["result"] == "ProcessingFailed"
    # Firehose keeps a failed record as it came (rawData under its error prefix): echoing
    # it back would only take room in the response.
    assert results["r3"]["data"] == ""
    assert [letter.stage for letter in letters.letters] == ["payload"]


@given(firehose_events())
def test_generated_firehose_events_answer_every_record(event: dict[str, Any]) -> None:
    response = handle_firehose_event(event, Pipeline(StoreSink()))
    assert [r["recordId"] for r in response["records"]] == [r["recordId"] for r in event["records"]]
    assert {r["result"] for r in response["records"]} <= {"Ok", "Dropped"}


def test_lambda_handler_recognises_each_event_and_builds_the_pipeline_once() -> None:
    made: list[Pipeline] = []

    def make() -> Pipeline:
        made.append(Pipeline(StoreSink()))
        return made[-1]

    handler = lambda_handler(make)
    line = audit_line(random.Random(2), 9)
    payload = to_payload(
        SubscriptionMessage("DATA_MESSAGE", "1", GROUP, "s", ("f",), (LogEvent("7", 1, line),))
    )
    assert handler(kinesis_event([payload]), None) == {"batchItemFailures": []}
    assert "1 delivered" in handler({"awslogs": {"data": payload}}, None)
    firehose = handler(
        {"deliveryStreamArn": "x", "records": [{"recordId": "a", "data": payload}]}, None
    )
    assert firehose["records"][0]["result"] == "Ok"
    assert len(made) == 1
    with pytest.raises(EnvelopeError):
        handler({"something": "else"}, None)


def test_dialect_and_tz_reach_the_parser() -> None:
    line = audit_line(random.Random(4), 1)
    payload = to_payload(
        SubscriptionMessage("DATA_MESSAGE", "1", GROUP, "s", ("f",), (LogEvent("9", 1, line),))
    )
    sink = StoreSink()
    handle_kinesis_event(kinesis_event([payload]), Pipeline(sink, dialect="rds-mysql"))
    assert sink.rows["9"].dialect is Dialect.RDS_MYSQL


def test_firehose_raises_when_the_dead_letter_sink_fails() -> None:
    class Broken(LetterBox):
        def write(self, letters: Sequence[DeadLetter]) -> None:
            raise ConnectionError("dead-letter store is down")

    event = {"records": [{"recordId": "r1", "data": "not base64!"}]}
    with pytest.raises(DeliveryError, match="dead-letter store is down"):
        handle_firehose_event(event, Pipeline(StoreSink(), dead_letter=Broken()))


@pytest.mark.parametrize("event", [5, None, [1], "text"])
def test_a_lambda_event_that_is_no_object_is_an_envelope_error(event: object) -> None:
    from auditsync._sources import lambda_inputs

    with pytest.raises(EnvelopeError, match="JSON object"):
        lambda_inputs(event)  # type: ignore[arg-type]


# --- hostile and unlucky events (issue 16) ----------------------------------------------------


@pytest.mark.parametrize("event", [None, 5, [1], "text"])
def test_the_handler_refuses_an_event_that_is_no_object_with_an_envelope_error(
    event: object,
) -> None:
    handler = lambda_handler(Pipeline(StoreSink()))
    with pytest.raises(EnvelopeError, match="JSON object"):
        handler(event, None)  # type: ignore[arg-type]


def test_a_kinesis_record_without_its_kinesis_object_is_dead_lettered_with_its_position() -> None:
    line = audit_line(random.Random(5), 3)
    payload = to_payload(
        SubscriptionMessage("DATA_MESSAGE", "1", GROUP, "s", ("f",), (LogEvent("7", 1, line),))
    )
    event = kinesis_event([payload, payload])
    broken = event["Records"][1]
    del broken["kinesis"]
    store, letters = StoreSink(), LetterBox()
    pipeline = Pipeline(store, dead_letter=letters)
    assert handle_kinesis_event(event, pipeline) == {"batchItemFailures": []}
    assert list(store.rows) == ["7"]
    [letter] = letters.letters
    assert letter.stage == "source"
    assert "Records[1]" in letter.error
    assert "no kinesis object" in letter.error
    assert orjson.loads(letter.raw) == broken
    assert letter.origin is not None
    assert letter.origin.shard_id == broken["eventID"].partition(":")[0]


def firehose_batch(records: int, lines: int, seed: int = 7) -> dict[str, Any]:
    """A Firehose event of ``records`` records, each a message of ``lines`` audit lines."""
    rng = random.Random(seed)
    batch = []
    for number in range(records):
        events = tuple(
            LogEvent(f"{number:06d}{line:06d}", 1, audit_line(rng, number * lines + line))
            for line in range(lines)
        )
        message = SubscriptionMessage("DATA_MESSAGE", "1", GROUP, "s", ("f",), events)
        batch.append({"recordId": f"record-{number}", "data": to_payload(message)})
    return {"deliveryStreamArn": "arn:aws:firehose:eu-west-1:1:deliverystream/x", "records": batch}


def test_a_firehose_response_stays_within_lambdas_limit(caplog: pytest.LogCaptureFixture) -> None:
    event = firehose_batch(300, 40)
    given_bytes = len(orjson.dumps(event))
    with caplog.at_level(logging.ERROR, logger="auditsync"):
        response = handle_firehose_event(event, Pipeline(StoreSink()))
    # What Lambda's Python runtime sends back (json.dumps, default separators).
    sent = len(json.dumps(response))
    assert given_bytes < 1_000_000
    assert sent <= FIREHOSE_MAX_RESPONSE
    results = response["records"]
    assert [r["recordId"] for r in results] == [r["recordId"] for r in event["records"]]
    kinds = [r["result"] for r in results]
    assert "Ok" in kinds
    failed = [r["recordId"] for r in results if r["result"] == "ProcessingFailed"]
    assert failed
    assert all(r["data"] == "" for r in results if r["result"] == "ProcessingFailed")
    assert failed[0] in caplog.text
    assert "past 6000000 bytes" in caplog.text


@pytest.mark.parametrize("limit", [3_000, 20_000, 200_000])
def test_every_record_is_answered_within_any_response_limit(limit: int) -> None:
    event = firehose_batch(30, 5)
    event["records"].append({"recordId": "poison", "data": "not base64!"})
    response = handle_firehose_event(event, Pipeline(StoreSink()), max_response_size=limit)
    assert len(json.dumps(response)) <= limit
    results = response["records"]
    assert [r["recordId"] for r in results] == [r["recordId"] for r in event["records"]]
    delivered = [
        orjson.loads(line)["key"]
        for r in results
        if r["result"] == "Ok"
        for line in base64.b64decode(r["data"]).splitlines()
    ]
    assert len(delivered) == 5 * sum(r["result"] == "Ok" for r in results)
    assert results[-1]["result"] == "ProcessingFailed"


#: One Kinesis record holding 100 messages of 10,000 events each (1,000,000 events, as a
#: Firehose-style concatenation); prints the largest write and the peak RSS (VmHWM, KiB).
_MILLION_EVENTS = """
import base64, zlib
import orjson
from auditsync import Pipeline
from auditsync.aws import handle_kinesis_event
from auditsync.testing import kinesis_event

class Count:
    def __init__(self):
        self.count, self.most = 0, 0
    def write(self, events):
        self.count += len(events)
        self.most = max(self.most, len(events))
    def close(self):
        pass

head = {"messageType": "DATA_MESSAGE", "owner": "1", "logGroup": "g", "logStream": "s",
        "subscriptionFilters": ["f"]}
line = "1706709727000000,prod-1,app,10.0.0.7,42,{0},QUERY,shop,'select {0}',0"
packer = zlib.compressobj(6, zlib.DEFLATED, 31)
parts = []
for m in range(100):
    events = [{"id": str(m * 10000 + i), "timestamp": 0, "message": line.format(i)}
              for i in range(10000)]
    parts.append(packer.compress(orjson.dumps(head | {"logEvents": events})))
parts.append(packer.flush())
payload = base64.b64encode(b"".join(parts)).decode()
del parts, events
sink = Count()
assert handle_kinesis_event(kinesis_event([payload]), Pipeline(sink)) == {"batchItemFailures": []}
assert sink.count == 1_000_000, sink.count
with open("/proc/self/status") as status:
    peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
print(sink.most, peak)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_a_million_events_in_one_record_stream_out_in_bounded_memory() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _MILLION_EVENTS], capture_output=True, check=True, timeout=300
    )
    most, peak_kib = map(int, result.stdout.split())
    assert most == 1000
    # The payload inflates to 100 MB and is held whole; its events are not (held all at
    # once, they took about 1 GiB).
    assert peak_kib < 400 * 1024


#: One Kinesis record of 0.2 MB whose message holds 2,000,000 empty log events (74 MB of
#: JSON); prints the dead letters' stages and errors, and the peak RSS (VmHWM, KiB).
_EMPTY_EVENTS_BOMB = """
import base64, zlib
from auditsync import Pipeline
from auditsync.aws import handle_kinesis_event
from auditsync.testing import kinesis_event

class Letters:
    def __init__(self):
        self.items = []
    def write(self, letters):
        self.items.extend(letters)
    def close(self):
        pass

packer = zlib.compressobj(9, zlib.DEFLATED, 31)
head = (b'{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s",'
        b'"subscriptionFilters":["f"],"logEvents":[')
parts = [packer.compress(head)]
chunk = b'{"id":"","timestamp":0,"message":""},' * 10_000
for _ in range(200):
    parts.append(packer.compress(chunk))
parts.append(packer.compress(b'{"id":"","timestamp":0,"message":""}]}'))
parts.append(packer.flush())
payload = base64.b64encode(b"".join(parts)).decode()
del parts, chunk
letters = Letters()
assert handle_kinesis_event(kinesis_event([payload]), Pipeline(Letters(), dead_letter=letters)) == {
    "batchItemFailures": []
}
with open("/proc/self/status") as status:
    peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
print(len(payload), len(letters.items), letters.items[0].stage, len(letters.items[0].raw), peak)
print(letters.items[0].error)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_a_small_record_of_two_million_empty_log_events_takes_bounded_memory() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _EMPTY_EVENTS_BOMB], capture_output=True, check=True, timeout=300
    )
    numbers, error = result.stdout.decode().splitlines()
    size, letters, stage, kept, peak_kib = numbers.split()
    assert int(size) < 300_000
    # One dead letter for the whole message (it took 4.3 GiB and 37 s, one per event).
    assert (int(letters), stage, int(kept)) == (1, "envelope", 4096)
    assert "runs past" in error
    assert int(peak_kib) < 256 * 1024
