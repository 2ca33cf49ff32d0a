"""AWS Lambda adapters: the plain event dicts in, the responses Lambda expects out.

No AWS SDK: Lambda hands a handler a dict, and these functions read it. The semantics are
Lambda's (docs/lambda.md): a Kinesis record that can never be processed is dead-lettered
and *not* reported, because a reported record is retried until it expires and blocks
its shard; a sink failure *is* reported, from the failing record on, so Lambda retries
exactly what was not delivered.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from ._errors import DeliveryError
from ._events import AuditEvent, Origin
from ._json import to_json
from ._pipeline import Pipeline, Report
from ._sources import firehose_inputs, kinesis_inputs, lambda_event_kind, subscription_inputs

__all__ = [
    "FIREHOSE_MAX_RESPONSE",
    "handle_firehose_event",
    "handle_kinesis_event",
    "handle_subscription_event",
    "lambda_handler",
]

Event = dict[str, Any]
logger = logging.getLogger("auditsync")


def handle_kinesis_event(event: Event, pipeline: Pipeline) -> dict[str, list[dict[str, str]]]:
    """Process a Kinesis batch; return the partial batch response.

    Needs ``ReportBatchItemFailures`` on the event source mapping. Only a sink failure is
    reported: the sequence number of the first record not delivered, so Lambda retries
    from there (records before it were delivered; records after it are retried too, which
    the sinks' idempotency makes harmless).
    """
    inputs = kinesis_inputs(event)
    report = pipeline.process(inputs)
    if report.failed_input is None:
        return {"batchItemFailures": []}
    failed = inputs[report.failed_input].origin
    sequence = failed.sequence_number if failed is not None else None
    if not sequence:
        raise DeliveryError("the sink failed on a record with no sequence number") from (
            report.error
        )
    return {"batchItemFailures": [{"itemIdentifier": sequence}]}


def handle_subscription_event(event: Event, pipeline: Pipeline) -> Report:
    """Process ``{"awslogs": {"data": ...}}`` from a subscription filter.

    A poison payload is dead-lettered; a sink failure raises :class:`DeliveryError`, so
    Lambda's own retry of asynchronous invocations applies.
    """
    report = pipeline.process(subscription_inputs(event))
    if report.error is not None:
        raise DeliveryError(f"sink failed: {report.error!r}") from report.error
    return report


#: Lambda refuses a response of more than 6 MB: a Firehose transformation whose response
#: is larger fails as a whole, and Firehose retries it, failing again, until it gives
#: every record up. The default leaves a margin below 6 MiB for the runtime's own bytes.
FIREHOSE_MAX_RESPONSE = 6_000_000
#: What one record's answer takes beside its id and data, as Lambda's runtime writes it:
#: ``{"recordId": "", "result": "ProcessingFailed", "data": ""}`` and ", " before the next.
_ANSWER_BYTES = len('{"recordId": "", "result": "ProcessingFailed", "data": ""}, ')


def handle_firehose_event(
    event: Event, pipeline: Pipeline, *, max_response_size: int = FIREHOSE_MAX_RESPONSE
) -> dict[str, list[dict[str, str]]]:
    """Transform a Firehose batch: each record's events become JSON Lines in its ``data``.

    ``Ok`` with the events, ``Dropped`` when nothing is left (control messages, all
    filtered), ``ProcessingFailed`` for a record of which nothing could be read (Firehose
    keeps those under its error prefix; the pipeline's dead-letter sink gets them too). The
    pipeline's own sink is not used: Firehose delivers the returned data.

    The whole response stays within ``max_response_size``: a record whose events no longer
    fit is answered ``ProcessingFailed`` (and logged), and Firehose keeps it, as it came,
    under its ``processing-failed`` prefix — nothing is lost, and the records that fit
    are delivered. A failed record's ``data`` is empty: Firehose keeps the original itself.
    """
    inputs = firehose_inputs(event)
    ids = [(item.origin or Origin()).sequence_number or "" for item in inputs]
    # The room for data: what is left once every record's answer is counted.
    room = max_response_size - len('{"records": []}')
    room -= sum(_ANSWER_BYTES + len(orjson.dumps(record_id)) for record_id in ids)
    results = []
    for item, record_id in zip(inputs, ids, strict=True):
        collected = _RecordData(room)
        report = pipeline.with_sink(collected).process([item])
        if isinstance(report.error, _ResponseFull):
            logger.error(
                "Firehose record %s: its events would take the response past %d bytes; "
                "answered ProcessingFailed, so Firehose keeps it under its error prefix "
                "(a smaller processor buffer avoids this: docs/lambda.md)",
                record_id,
                max_response_size,
            )
            results.append({"recordId": record_id, "result": "ProcessingFailed", "data": ""})
        elif report.error is not None:
            # The dead-letter sink failed: fail the invocation so Firehose retries it.
            raise DeliveryError(f"dead-letter sink failed: {report.error!r}") from report.error
        elif collected.lines:
            data = base64.b64encode(b"".join(collected.lines)).decode("ascii")
            room -= len(data)
            results.append({"recordId": record_id, "result": "Ok", "data": data})
        elif report.dead_lettered:
            results.append({"recordId": record_id, "result": "ProcessingFailed", "data": ""})
        else:
            results.append({"recordId": record_id, "result": "Dropped", "data": ""})
    return {"records": results}


class _ResponseFull(Exception):
    """A record's events do not fit in what is left of a Firehose response."""


class _RecordData:
    """A Firehose record's events as JSON Lines, refusing (as a failing sink, so the
    pipeline stops reading the record) as soon as they would not fit in ``room`` bytes of
    base64: a record never holds more than the response has room for."""

    def __init__(self, room: int):
        self.room = room
        self.lines: list[bytes] = []
        self.size = 0

    def write(self, events: Sequence[AuditEvent]) -> None:
        lines = [to_json(event) + b"\n" for event in events]
        self.size += sum(map(len, lines))
        if _base64_size(self.size) > self.room:
            self.lines = []
            raise _ResponseFull(f"more than {self.room} bytes")
        self.lines += lines

    def close(self) -> None:
        pass


def _base64_size(size: int) -> int:
    return (size + 2) // 3 * 4


def lambda_handler(pipeline: Pipeline | Callable[[], Pipeline]) -> Callable[[Event, Any], Any]:
    """A Lambda handler for Kinesis, subscription-filter and Firehose events alike.

    Pass a pipeline, or a function making one: it is called on the first invocation and
    the pipeline kept for the warm ones (connections are opened once per container).
    """
    made: list[Pipeline] = []

    def get() -> Pipeline:
        if not made:
            made.append(pipeline if isinstance(pipeline, Pipeline) else pipeline())
        return made[0]

    def handler(event: Event, context: Any) -> Any:
        kind = lambda_event_kind(event)
        if kind == "subscription":
            return handle_subscription_event(event, get()).summary()
        if kind == "firehose":
            return handle_firehose_event(event, get())
        return handle_kinesis_event(event, get())

    return handler
