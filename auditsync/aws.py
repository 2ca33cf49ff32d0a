"""AWS Lambda adapters: the plain event dicts in, the responses Lambda expects out.

No AWS SDK: Lambda hands a handler a dict, and these functions read it. The semantics are
Lambda's (docs/lambda.md): a Kinesis record that can never be processed is dead-lettered
and *not* reported, because a reported record is retried until it expires and blocks
its shard; a sink failure *is* reported, from the failing record on, so Lambda retries
exactly what was not delivered.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from ._errors import DeliveryError
from ._events import AuditEvent, Origin
from ._pipeline import Pipeline, Report
from ._sources import firehose_inputs, kinesis_inputs, lambda_event_kind, subscription_inputs
from .sinks._jsonlines import to_json
from .sinks._memory import MemorySink

__all__ = [
    "handle_firehose_event",
    "handle_kinesis_event",
    "handle_subscription_event",
    "lambda_handler",
]

Event = dict[str, Any]


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


def handle_firehose_event(event: Event, pipeline: Pipeline) -> dict[str, list[dict[str, str]]]:
    """Transform a Firehose batch: each record's events become JSON Lines in its ``data``.

    ``Ok`` with the events, ``Dropped`` when nothing is left (control messages, all
    filtered), ``ProcessingFailed`` for a record of which nothing could be read (Firehose
    keeps those under its error prefix; the pipeline's dead-letter sink gets them too). The
    pipeline's own sink is not used: Firehose delivers the returned data.
    """
    results = []
    for item in firehose_inputs(event):
        # firehose_inputs keeps each record's id where a Kinesis record keeps its sequence.
        record_id = (item.origin or Origin()).sequence_number or ""
        collected = MemorySink()
        report = pipeline.with_sink(collected).process([item])
        if report.error is not None:
            # The dead-letter sink failed: fail the invocation so Firehose retries it.
            raise DeliveryError(f"dead-letter sink failed: {report.error!r}") from report.error
        if collected.items:
            data = _json_lines(collected.events)
            results.append({"recordId": record_id, "result": "Ok", "data": data})
        elif report.dead_lettered:
            failed = {"recordId": record_id, "result": "ProcessingFailed"}
            results.append(failed | {"data": _as_text(item.data)})
        else:
            results.append({"recordId": record_id, "result": "Dropped", "data": ""})
    return {"records": results}


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


def _as_text(data: bytes | str) -> str:
    return data if isinstance(data, str) else data.decode("ascii", "replace")


def _json_lines(events: list[AuditEvent]) -> str:
    lines = b"".join(to_json(event) + b"\n" for event in events)
    return base64.b64encode(lines).decode("ascii")
