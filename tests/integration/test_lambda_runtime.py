"""examples/lambda_function.py in the real Lambda runtime: AWS's Runtime Interface Emulator
(shipped in the aws-sam-cli wheel) runs it through awslambdaric, the runtime interface
client Lambda's Python images use, on the host and without Docker; the test invokes it
over HTTP as the Lambda service would.

The emulator is found through ``AUDITSYNC_RIE`` (the path of ``aws-lambda-rie-x86_64``
or ``-arm64``; ``.ci/run`` takes it out of the wheel as a user would). Without it, or
without awslambdaric, the test skips with the reason; in CI (``CI=true``) it fails.
The function writes to a PostgreSQL database of the test's own. The figures go to the
test output (conftest.py).
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
POISON = "poison: not base64!"


def unavailable(why: str) -> None:
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def database(postgres_dsn: str) -> Iterator[str]:
    """A database of the test's own, created and dropped: the function's conninfo."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"auditsync_rie_{uuid.uuid4().hex[:12]}"
    admin = make_conninfo(postgres_dsn, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(postgres_dsn, dbname=name)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Emulator:
    """The emulator running the example's handler, listening on 127.0.0.1 only."""

    def __init__(self, binary: str, conninfo: str, dead_letters: Path, log: Path):
        self.port = free_port()
        self.log = log
        environment = os.environ | {
            "AUDITSYNC_POSTGRES": conninfo,
            "AUDITSYNC_DEAD_LETTERS": str(dead_letters),
            "AWS_LAMBDA_FUNCTION_NAME": "auditsync-example",
            "LOG_LEVEL": "info",
        }
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [
                    binary,
                    "--runtime-interface-emulator-address",
                    f"127.0.0.1:{self.port}",
                    "--runtime-api-address",
                    f"127.0.0.1:{free_port()}",
                    sys.executable,
                    "-m",
                    "awslambdaric",
                    "lambda_function.handler",
                ],
                cwd=EXAMPLES,  # the example as it is, imported from its own directory
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped with its runtime
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"the emulator did not start:\n{log.read_text()}")

    def invoke(self, event: dict[str, Any]) -> tuple[Any, float]:
        """The function's response to ``event``, and how long the call took (seconds)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/2015-03-31/functions/function/invocations",
            data=json.dumps(event).encode(),
            method="POST",
        )
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=60) as response:
            body = response.read()
        return json.loads(body), time.monotonic() - started

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def emulator(database: str, tmp_path: Path) -> Iterator[Emulator]:
    binary = os.environ.get("AUDITSYNC_RIE", "")
    if not binary or not os.access(binary, os.X_OK):
        unavailable(
            "the Lambda Runtime Interface Emulator is not available: set AUDITSYNC_RIE to "
            "samcli/local/rapid/aws-lambda-rie-x86_64 from `pip download --no-deps "
            "aws-sam-cli` (.ci/run does)"
        )
    try:
        import awslambdaric  # noqa: F401
    except ImportError:
        unavailable("awslambdaric (a test dependency) is not installed")
    running = Emulator(binary, database, tmp_path / "dead-letters.jsonl", tmp_path / "rie.log")
    try:
        yield running
    finally:
        running.stop()


def rows(conninfo: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(conninfo) as connection:
        return connection.execute("SELECT key, operation FROM audit_events ORDER BY key").fetchall()


def test_the_example_function_in_the_lambda_runtime(
    emulator: Emulator, database: str, tmp_path: Path
) -> None:
    kinesis = json.loads((EXAMPLES / "kinesis-event.json").read_text())
    poisoned = json.loads(json.dumps(kinesis))
    poisoned["Records"].append(json.loads(json.dumps(kinesis["Records"][-1])))
    poisoned["Records"][-1]["kinesis"]["data"] = POISON
    poisoned["Records"][-1]["kinesis"]["sequenceNumber"] += "9"
    # The first record is CloudWatch's control message, the others data messages.
    payloads = [record["kinesis"]["data"] for record in kinesis["Records"]]
    subscription = {"awslogs": {"data": payloads[1]}}
    firehose = {
        "invocationId": str(uuid.uuid4()),
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/audit",
        "region": "us-east-1",
        "records": [
            {"recordId": f"record-{n}", "approximateArrivalTimestamp": 1764230993000, "data": data}
            for n, data in enumerate([*payloads[:3], base64.b64encode(b"junk").decode()])
        ],
    }
    dead_letters = tmp_path / "dead-letters.jsonl"
    timings = {}

    response, timings["kinesis, cold"] = emulator.invoke(poisoned)
    assert response == {"batchItemFailures": []}  # the poison is dead-lettered, not reported
    stored = rows(database)
    assert len(stored) == 346
    assert len(dead_letters.read_text().splitlines()) == 1

    response, timings["kinesis, again"] = emulator.invoke(poisoned)
    assert response == {"batchItemFailures": []}
    assert rows(database) == stored  # idempotent: the same keys, no new rows
    letters = [json.loads(line) for line in dead_letters.read_text().splitlines()]
    assert len(letters) == 2
    assert letters[0]["key"] == letters[1]["key"]  # the same dead letter, the same key
    assert base64.b64decode(letters[0]["raw_base64"]) == POISON.encode()

    summary, timings["subscription"] = emulator.invoke(subscription)
    assert re.search(r"\b(\d+) delivered", summary)
    assert rows(database) == stored  # the same CloudWatch ids as the Kinesis records

    response, timings["firehose"] = emulator.invoke(firehose)
    results = {record["recordId"]: record for record in response["records"]}
    assert [results[f"record-{n}"]["result"] for n in range(4)] == [
        "Dropped",  # the control message
        "Ok",
        "Ok",
        "ProcessingFailed",
    ]
    transformed = [
        json.loads(line)
        for n in (1, 2)
        for line in base64.b64decode(results[f"record-{n}"]["data"]).splitlines()
    ]
    assert {document["key"] for document in transformed} <= {key for key, _ in stored}
    assert len(dead_letters.read_text().splitlines()) == 3

    report = re.findall(r"REPORT RequestId: \S+\s+Init Duration: ([\d.]+) ms\s+Duration: ([\d.]+)",
                        emulator.log.read_text())  # fmt: skip
    print(
        f"Lambda runtime (RIE + awslambdaric): {len(stored)} rows in PostgreSQL after two "
        f"Kinesis invocations, {len(transformed)} events transformed by Firehose, "
        f"{len(dead_letters.read_text().splitlines())} dead letters; "
        + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in timings.items())
        + f"; emulator reports (init ms, duration ms): {report}"
    )
