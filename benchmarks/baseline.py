"""The contenders auditsync is measured against.

1. **By hand**: what users write today. The decoding half reimplements what AWS Lambda
   Powertools for Python does in ``extract_cloudwatch_logs_from_record``
   (aws-powertools/powertools-lambda-python,
   ``aws_lambda_powertools/utilities/data_classes/kinesis_stream_event.py``:
   ``KinesisStreamRecordPayload.data_zlib_compressed_as_json`` is
   ``base64.b64decode`` → ``zlib.decompress(data, zlib.MAX_WBITS | 32)`` → ``json.loads``,
   wrapped in ``CloudWatchLogsDecodedData``; and
   ``aws_lambda_powertools/utilities/data_classes/cloud_watch_logs_event.py``, whose
   ``log_events`` property wraps each event dict in a ``CloudWatchLogsLogEvent``). Every
   class there is a ``DictWrapper``: it keeps the dict and reads keys through properties.
   The line half is the "split on commas outside quotes" regex found in blog posts and
   Stack Overflow answers, zipped with the ten field names into a dict of strings. (It is
   also wrong: the plugin escapes a quote inside the query as ``\\'``, which the regex
   counts, so a query holding an odd number of quotes is split in the wrong places; and
   it is quadratic, because the look-ahead rescans the rest of the line at every comma.)
2. **Decode-only floor**: base64 → zlib → orjson and nothing else: no line is parsed. No
   decoder of these payloads can be faster in Python; it bounds what parsing may cost.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections.abc import Iterator
from typing import Any

import orjson

__all__ = [
    "FIELDS",
    "by_hand",
    "decode_only",
    "extract_cloudwatch_logs_from_record",
    "split_line",
]


# --- a faithful miniature of Powertools' data classes ---------------------------------------


class DictWrapper:
    """Read-only access to a wrapped dict (Powertools' ``common.DictWrapper``)."""

    def __init__(self, data: dict[str, Any]):
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)


class KinesisStreamRecordPayload(DictWrapper):
    @property
    def data(self) -> str:
        value: str = self["data"]
        return value

    def data_as_bytes(self) -> bytes:
        return base64.b64decode(self.data)

    def data_zlib_compressed_as_json(self) -> dict[str, Any]:
        decompressed = zlib.decompress(self.data_as_bytes(), zlib.MAX_WBITS | 32)
        document: dict[str, Any] = json.loads(decompressed)
        return document


class KinesisStreamRecord(DictWrapper):
    @property
    def kinesis(self) -> KinesisStreamRecordPayload:
        return KinesisStreamRecordPayload(self["kinesis"])


class KinesisStreamEvent(DictWrapper):
    @property
    def records(self) -> Iterator[KinesisStreamRecord]:
        for record in self["Records"]:
            yield KinesisStreamRecord(record)


class CloudWatchLogsLogEvent(DictWrapper):
    @property
    def get_id(self) -> str:
        value: str = self["id"]
        return value

    @property
    def timestamp(self) -> int:
        value: int = self["timestamp"]
        return value

    @property
    def message(self) -> str:
        value: str = self["message"]
        return value


class CloudWatchLogsDecodedData(DictWrapper):
    @property
    def log_group(self) -> str:
        value: str = self["logGroup"]
        return value

    @property
    def log_stream(self) -> str:
        value: str = self["logStream"]
        return value

    @property
    def message_type(self) -> str:
        value: str = self["messageType"]
        return value

    @property
    def log_events(self) -> list[CloudWatchLogsLogEvent]:
        return [CloudWatchLogsLogEvent(item) for item in self["logEvents"]]


def extract_cloudwatch_logs_from_record(record: KinesisStreamRecord) -> CloudWatchLogsDecodedData:
    """Powertools' ``extract_cloudwatch_logs_from_record``."""
    return CloudWatchLogsDecodedData(record.kinesis.data_zlib_compressed_as_json())


# --- the line half: the comma-outside-quotes regex --------------------------------------------

FIELDS = (
    "timestamp",
    "serverhost",
    "username",
    "host",
    "connectionid",
    "queryid",
    "operation",
    "database",
    "object",
    "retcode",
)
#: A comma followed by an even number of quotes up to the end of the line.
_OUTSIDE_QUOTES = re.compile(r",(?=(?:[^']*'[^']*')*[^']*$)")


def split_line(line: str) -> dict[str, str]:
    """One audit line as a dict of strings, the way a by-hand handler splits it."""
    return dict(zip(FIELDS, _OUTSIDE_QUOTES.split(line), strict=False))


def by_hand(event: dict[str, Any]) -> int:
    """A by-hand Kinesis handler: Powertools' decoding, then the regex per line.

    Returns the number of lines it split (the rows it would hand on).
    """
    count = 0
    for record in KinesisStreamEvent(event).records:
        logs = extract_cloudwatch_logs_from_record(record)
        if logs.message_type != "DATA_MESSAGE":
            continue
        rows = [split_line(log_event.message) for log_event in logs.log_events]
        count += len(rows)
    return count


def decode_only(event: dict[str, Any]) -> int:
    """The floor: base64 → zlib → orjson for every record, the log events counted."""
    count = 0
    for record in event["Records"]:
        raw = zlib.decompress(base64.b64decode(record["kinesis"]["data"]), zlib.MAX_WBITS | 32)
        count += len(orjson.loads(raw)["logEvents"])
    return count
