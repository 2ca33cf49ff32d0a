"""Plain builders of what AWS hands a Lambda function: payloads and events from lines.

They need only auditsync's runtime dependencies, so benchmarks, examples and tools use
them without Hypothesis; the strategies in :mod:`auditsync.testing` are built on them.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Sequence
from typing import Any

import orjson

from .._envelope import DATA_MESSAGE, LogEvent, SubscriptionMessage

#: Kinesis sequence numbers are 56-digit decimals; real ones start about here.
FIRST_SEQUENCE = 49_590_338_271_490_256_608_559_692_538_361_571_095_921_575_989_136_588_898


def data_message(
    lines: Sequence[str],
    *,
    log_group: str = "/aws/rds/instance/db-primary/audit",
    log_stream: str = "db-primary.audit.log",
    first_id: int = 0,
    first_timestamp: int = 0,
) -> SubscriptionMessage:
    """A DATA_MESSAGE carrying ``lines`` as log events with rising ids and timestamps."""
    return SubscriptionMessage(
        message_type=DATA_MESSAGE,
        owner="123456789012",
        log_group=log_group,
        log_stream=log_stream,
        subscription_filters=("to-kinesis",),
        log_events=tuple(
            LogEvent(id=f"{first_id + index:056d}", timestamp=first_timestamp + index, message=line)
            for index, line in enumerate(lines)
        ),
    )


def to_payload(message: SubscriptionMessage | bytes) -> str:
    """Base64 of gzip of the message JSON: what Kinesis and subscription filters carry."""
    raw = message if isinstance(message, bytes) else orjson.dumps(message.to_dict())
    return base64.b64encode(gzip.compress(raw, mtime=0)).decode("ascii")


def kinesis_event(payloads: Sequence[str], shard: str = "shardId-000000000000") -> dict[str, Any]:
    """A Lambda Kinesis event carrying ``payloads`` in order, with rising sequence numbers."""
    return {
        "Records": [
            _kinesis_record(payload, shard, f"{FIRST_SEQUENCE + index:056d}")
            for index, payload in enumerate(payloads)
        ]
    }


def _kinesis_record(payload: str, shard: str, number: str) -> dict[str, Any]:
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "a" * 32,
            "sequenceNumber": number,
            "data": payload,
            "approximateArrivalTimestamp": 1668093033.744,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard}:{number}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/auditsync",
        "awsRegion": "eu-west-1",
        "eventSourceARN": "arn:aws:kinesis:eu-west-1:123456789012:stream/audit",
    }


def subscription_event(payload: str) -> dict[str, Any]:
    """The event a subscription filter invokes a Lambda function with."""
    return {"awslogs": {"data": payload}}


def firehose_event(payloads: Sequence[str]) -> dict[str, Any]:
    """A Firehose data-transformation event, one record per payload."""
    return {
        "invocationId": "00540a87-5050-496a-84e4-e7d92bbaf5e2",
        "deliveryStreamArn": "arn:aws:firehose:eu-west-1:123456789012:deliverystream/audit",
        "region": "eu-west-1",
        "records": [
            {
                "recordId": f"4963{index:052d}",
                "approximateArrivalTimestamp": 1668093033744,
                "data": payload,
            }
            for index, payload in enumerate(payloads)
        ],
    }
