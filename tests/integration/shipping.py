"""The audit log as AWS ships it: CloudWatch Logs events, subscription messages, Kinesis
records, and the Lambda events that carry them.

The change feed's proof feeds the log that the private server wrote through
``handle_kinesis_event`` as Lambda would see it: the records of the file as log events
(CloudWatch stores text, so bytes that are not UTF-8 arrive as U+FFFD), a random number
of them per subscription message, one message per Kinesis record with sequence numbers
rising along the shard, and a random number of records per Lambda invocation — so a
transaction's BEGIN and its COMMIT often land in different invocations.
"""

from __future__ import annotations

import io
import itertools
import random
from collections.abc import Sequence
from typing import Any

from auditsync import Lines, read_file
from auditsync.testing import data_message, kinesis_event, to_payload

__all__ = ["LOG_GROUP", "LOG_STREAM", "audit_records", "kinesis_events"]

LOG_GROUP = "/aws/rds/instance/feed-proof/audit"
LOG_STREAM = "feed-proof.audit.log.0"
#: CloudWatch event timestamps: any fixed start will do, they only rise.
FIRST_TIMESTAMP = 1_700_000_000_000


def audit_records(log: bytes) -> list[str]:
    """The records of a server_audit log (a record split over lines rejoined, as
    ``auditsync decode`` reads files), as the UTF-8 text CloudWatch stores."""
    blocks = list(read_file(io.BytesIO(log), "server_audit.log"))
    if not all(isinstance(block, Lines) for block in blocks):
        raise ValueError(f"not a plain server_audit log: {blocks[:1]!r}")
    return [
        text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        for block in blocks
        if isinstance(block, Lines)
        for text in block.texts
    ]


def kinesis_events(
    records: Sequence[str],
    *,
    seed: int,
    per_message: tuple[int, int] = (1, 25),
    per_event: tuple[int, int] = (1, 6),
    log_group: str = LOG_GROUP,
    log_stream: str = LOG_STREAM,
) -> list[dict[str, Any]]:
    """Lambda Kinesis events carrying ``records`` in order, split at random (by ``seed``).

    ``per_message`` bounds the log events of one subscription message (one Kinesis
    record), ``per_event`` the Kinesis records of one Lambda event. Log event ids and
    sequence numbers rise across the whole shard, as a redelivery from a sequence number
    needs them to.
    """
    rng = random.Random(seed)
    payloads = []
    start = 0
    while start < len(records):
        size = rng.randint(*per_message)
        message = data_message(
            records[start : start + size],
            log_group=log_group,
            log_stream=log_stream,
            first_id=start,
            first_timestamp=FIRST_TIMESTAMP + start,
        )
        payloads.append(to_payload(message))
        start += size
    shard = iter(kinesis_event(payloads)["Records"])
    events = []
    while batch := list(itertools.islice(shard, rng.randint(*per_event))):
        events.append({"Records": batch})
    return events
