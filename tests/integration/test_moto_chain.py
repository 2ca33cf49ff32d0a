"""CloudWatch Logs as boto3 sees it, through moto: put_log_events on an RDS audit log group
with a subscription filter to Kinesis, get_records from the stream, and the records, in
a Lambda Kinesis event, through handle_kinesis_event into SQLite.

moto writes real gzip payloads in the subscription envelope, with one difference from
AWS: logEvents[].id is a JSON integer. The figures go to the test output (conftest.py).
"""

from __future__ import annotations

import base64
import gzip
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from auditsync import Pipeline, format_line, read_file
from auditsync.aws import handle_kinesis_event
from auditsync.sinks import MemorySink, SQLiteSink

moto = pytest.importorskip("moto", reason="moto (a test dependency) is not installed")
boto3 = pytest.importorskip("boto3", reason="boto3 (a test dependency) is not installed")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "server_audit.log"
GROUP = "/aws/rds/instance/shop/audit"
STREAM = "shop.audit.log.0"


def example_records() -> list[str]:
    """The example's audit records, one string each (a raw newline in a name included).

    CloudWatch Logs takes UTF-8 only: bytes that are not are U+FFFD, as examples/ has them.
    """
    sink = MemorySink()
    with EXAMPLE.open("rb") as raw:
        Pipeline(sink).process(read_file(raw, str(EXAMPLE)))
    return [
        format_line(event).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        for event in sink.events
    ]


def lambda_event(records: list[dict[str, Any]], shard: str, arn: str) -> dict[str, Any]:
    """The event Lambda's Kinesis event source mapping makes of ``get_records``' records."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": record["PartitionKey"],
                    "sequenceNumber": record["SequenceNumber"],
                    "data": base64.b64encode(record["Data"]).decode("ascii"),
                    "approximateArrivalTimestamp": record[
                        "ApproximateArrivalTimestamp"
                    ].timestamp(),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard}:{record['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "awsRegion": "us-east-1",
                "eventSourceARN": arn,
            }
            for record in records
        ]
    }


def test_cloudwatch_logs_to_kinesis_to_the_lambda_handler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    lines = example_records()
    with moto.mock_aws():
        logs = boto3.client("logs", region_name="us-east-1")
        kinesis = boto3.client("kinesis", region_name="us-east-1")
        kinesis.create_stream(StreamName="audit", ShardCount=1)
        description = kinesis.describe_stream(StreamName="audit")["StreamDescription"]
        arn, shard = description["StreamARN"], description["Shards"][0]["ShardId"]
        logs.create_log_group(logGroupName=GROUP)
        logs.create_log_stream(logGroupName=GROUP, logStreamName=STREAM)
        logs.put_subscription_filter(
            logGroupName=GROUP,
            filterName="to-kinesis",
            filterPattern="",
            destinationArn=arn,
            roleArn="arn:aws:iam::123456789012:role/CWLtoKinesis",
        )
        now = int(time.time() * 1000)
        for start in range(0, len(lines), 50):  # one subscription message per call
            logs.put_log_events(
                logGroupName=GROUP,
                logStreamName=STREAM,
                logEvents=[
                    {"timestamp": now + n, "message": line}
                    for n, line in enumerate(lines[start : start + 50], start)
                ],
            )
        iterator = kinesis.get_shard_iterator(
            StreamName="audit", ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = kinesis.get_records(ShardIterator=iterator, Limit=10_000)["Records"]

    # What moto wrote: real gzip, the subscription envelope, integer ids.
    first = json.loads(gzip.decompress(records[0]["Data"]))
    assert first["logGroup"] == GROUP
    assert type(first["logEvents"][0]["id"]) is int
    ids = [
        str(item["id"])
        for record in records
        for item in json.loads(gzip.decompress(record["Data"]))["logEvents"]
    ]

    event = lambda_event(records, shard, arn)
    database = tmp_path / "audit.db"
    letters = MemorySink()
    with SQLiteSink(database) as sink:
        pipeline = Pipeline(sink, dead_letter=letters)
        response = handle_kinesis_event(event, pipeline)
        again = handle_kinesis_event(event, pipeline)  # Lambda delivers a batch again
    assert response == again == {"batchItemFailures": []}
    assert letters.items == []
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT key, origin_event_id, origin_log_group, origin_shard_id FROM audit_events"
        ).fetchall()
    assert len(rows) == len(lines) == len(ids)
    assert sorted(row[0] for row in rows) == sorted(ids)  # the key is the CloudWatch id
    assert {row[2] for row in rows} == {GROUP}
    assert {row[3] for row in rows} == {shard}
    print(
        f"moto chain: {len(lines)} log events put, {len(records)} Kinesis records, "
        f"{len(rows)} rows in SQLite after two invocations, {len(letters.items)} dead letters, "
        f"ids {ids[0]}..{ids[-1]} (JSON integers)"
    )
