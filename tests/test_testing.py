"""auditsync.testing: the builders work without Hypothesis, the strategies say what they need."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from auditsync import Pipeline, decode_payload, iter_messages
from auditsync.aws import handle_kinesis_event
from auditsync.sinks import MemorySink
from auditsync.testing import (
    data_message,
    firehose_event,
    kinesis_event,
    subscription_event,
    to_payload,
)

LINE = "20240101 10:00:00,db1,app,10.0.0.1,7,42,QUERY,shop,'SELECT 1',0"


def test_builders_make_what_the_adapters_read() -> None:
    message = data_message([LINE, LINE], first_id=5, first_timestamp=1000)
    payload = to_payload(message)
    assert list(iter_messages(decode_payload(payload))) == [message]
    assert [event.id for event in message.log_events] == [f"{5:056d}", f"{6:056d}"]
    sink = MemorySink()
    event = kinesis_event([payload, payload])
    assert handle_kinesis_event(event, Pipeline(sink)) == {"batchItemFailures": []}
    assert len(sink.events) == 4
    sequences = [record["kinesis"]["sequenceNumber"] for record in event["Records"]]
    assert int(sequences[1]) == int(sequences[0]) + 1
    assert subscription_event(payload) == {"awslogs": {"data": payload}}
    assert [record["data"] for record in firehose_event([payload])["records"]] == [payload]


def test_builders_import_without_hypothesis() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["hypothesis"] = None  # as if it were not installed
        from auditsync.testing import kinesis_event, to_payload, data_message
        kinesis_event([to_payload(data_message(["x"]))])
        try:
            from auditsync.testing import audit_lines
        except ImportError as error:
            print(error)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == (
        "auditsync.testing.audit_lines is a Hypothesis strategy: pip install hypothesis"
    )


def test_strategies_load_on_first_use() -> None:
    import auditsync.testing as testing

    assert callable(testing.audit_lines)
    assert set(testing.__all__) >= {"audit_lines", "kinesis_event", "mutations"}
