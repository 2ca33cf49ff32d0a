"""Rebuild the example inputs from the golden corpus (lines a real MariaDB server wrote).

The lines are the server's; the wrapping is what CloudWatch Logs, Kinesis and Firehose
do to them (gzip, base64, the subscription envelope), done here the same way.
Run from the repository root: ``python examples/make_examples.py``.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson

from auditsync import InputFormat, Lines, LogEvent, SubscriptionMessage, read_file
from auditsync.testing import kinesis_event, to_payload

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent / "tests" / "data" / "golden" / "mariadb-10.11" / "server_audit.log"
GROUP = "/aws/rds/instance/shop/audit"
CONTROL = SubscriptionMessage(
    "CONTROL_MESSAGE",
    "CloudwatchLogs",
    "",
    "",
    (),
    (
        LogEvent(
            "0",
            1764230993000,
            "CWL CONTROL MESSAGE: Checking health of destination Kinesis stream.",
        ),
    ),
)


def messages(lines: list[bytes], per_message: int = 40) -> list[SubscriptionMessage]:
    result = []
    for start in range(0, len(lines), per_message):
        events = tuple(
            LogEvent(
                f"{37_000_000_000 + start + offset:056d}",
                1764230993000 + start + offset,
                line.decode("utf-8", "replace"),
            )
            for offset, line in enumerate(lines[start : start + per_message])
        )
        result.append(
            SubscriptionMessage(
                "DATA_MESSAGE", "123456789012", GROUP, "shop.audit.log.0", ("to-kinesis",), events
            )
        )
    return result


def main() -> None:
    raw = CORPUS.read_bytes()
    (HERE / "server_audit.log").write_bytes(raw)
    with CORPUS.open("rb") as stream:
        inputs = read_file(stream, str(CORPUS), InputFormat.LOG)
        records = [text for item in inputs if isinstance(item, Lines) for text in item.texts]
    lines = [record if isinstance(record, bytes) else record.encode() for record in records]
    batch = messages(lines)
    event = kinesis_event([to_payload(CONTROL)] + [to_payload(message) for message in batch])
    (HERE / "kinesis-event.json").write_bytes(orjson.dumps(event, option=orjson.OPT_INDENT_2))
    members = b"".join(gzip.compress(orjson.dumps(message.to_dict()), mtime=0) for message in batch)
    (HERE / "firehose-object.gz").write_bytes(members)


if __name__ == "__main__":
    main()
