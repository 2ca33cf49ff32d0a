"""Where auditsync's end-to-end time goes, stage by stage: the standard Kinesis batch, and
the command line's path through a raw log file.

    python benchmarks/stages.py [--rounds 7] [--file-mb 20]

A profiler's per-call overhead inflates small functions, so this measures by subtraction
instead: each variant below runs the Kinesis path up to one more stage, exactly as the
pipeline does, and the difference between neighbours is that stage's cost. The last line
is the real ``handle_kinesis_event``; what it costs beyond the sum of the stages is the
pipeline's own bookkeeping (report, filter/transform checks, batches, the sink call).
The file breakdown does the same for what ``auditsync decode FILE --to jsonl:/dev/null``
runs, in this process: reading lines, making pipeline inputs, parsing, writing JSON.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads

from auditsync import AuditEvent, Dialect, Origin, Pipeline, decode_payload
from auditsync._auditlog import parse_log_events
from auditsync._envelope import data_message_parts, iter_json
from auditsync._sources import InputFormat, kinesis_inputs, open_input, read_inputs
from auditsync.aws import handle_kinesis_event
from auditsync.sinks import JsonLinesSink

Event = dict[str, Any]


def inputs_only(event: Event) -> int:
    return len(kinesis_inputs(event))


def decoded(event: Event) -> int:
    total = 0
    for item in kinesis_inputs(event):
        total += len(decode_payload(item.data))
    return total


def documents(event: Event) -> int:
    """Up to orjson: each decoded payload's JSON documents, as the pipeline finds them."""
    count = 0
    for item in kinesis_inputs(event):
        for _start, _end, document in iter_json(decode_payload(item.data)):
            count += len(document["logEvents"])
    return count


def parsed(event: Event) -> int:
    """Up to the line reader, as the pipeline's fast path runs it: a data message's checks,
    then every log event of it at once (origins, lines, events)."""
    count = 0
    for item in kinesis_inputs(event):
        base = item.origin or Origin()
        for _start, _end, document in iter_json(decode_payload(item.data)):
            parts = data_message_parts(document)
            assert parts is not None
            group, stream, items = parts
            origin = Origin(group, stream, None, base.shard_id, base.sequence_number)
            read = parse_log_events(items, origin, dialect=Dialect.AUTO, tz=UTC)
            assert read is not None
            count += len(read[0])
    return count


class CountingSink:
    def __init__(self) -> None:
        self.count = 0

    def write(self, events: Sequence[AuditEvent]) -> None:
        self.count += len(events)

    def close(self) -> None:
        pass


def file_lines(path: Path) -> int:
    with open(path, "rb") as file:
        return sum(1 for _ in file)


def file_inputs(path: Path) -> int:
    with open(path, "rb") as file:
        return sum(1 for _ in read_inputs(open_input(file), str(path), InputFormat.AUTO))


def file_pipeline(path: Path, sink: Any) -> int:
    pipeline = Pipeline(sink)
    with open(path, "rb") as file:
        report = pipeline.process(read_inputs(open_input(file), str(path), InputFormat.AUTO))
    pipeline.close()
    return report.delivered


def print_table(title: str, steps: Sequence[str], best: Sequence[float], count: int) -> None:
    total = best[-1]
    print(title)
    print(f"  {'cumulative variant':<58} {'ms':>8} {'stage ms':>9} {'µs/item':>8} {'share':>6}")
    previous = 0.0
    for name, seconds in zip(steps, best, strict=True):
        stage = seconds - previous
        print(
            f"  {name:<58} {seconds * 1e3:>8.1f} {stage * 1e3:>9.1f} "
            f"{stage / count * 1e6:>8.3f} {stage / total:>6.1%}"
        )
        previous = seconds


def run_steps(steps: Sequence[Callable[[], object]], rounds: int) -> list[float]:
    """Best time of each step; every round runs them all, starting one further along."""
    best = [float("inf")] * len(steps)
    for round_ in range(rounds):
        for offset in range(len(steps)):
            index = (round_ + offset) % len(steps)
            gc.collect()
            started = time.perf_counter()
            steps[index]()
            best[index] = min(best[index], time.perf_counter() - started)
    return best


def file_breakdown(megabytes: int, rounds: int) -> None:
    block = workloads.log_block(20_000)
    with tempfile.TemporaryDirectory(prefix="auditsync-stages-") as directory:
        path = Path(directory) / "server_audit.log"
        with open(path, "wb") as file:
            for _ in range(max(1, round(megabytes * 1_000_000 / len(block)))):
                file.write(block)
        lines = file_lines(path)
        steps: list[tuple[str, Callable[[], object]]] = [
            ("reading the file's lines (for line in file)", lambda: file_lines(path)),
            ("+ read_inputs (record joining, blocks of Lines)", lambda: file_inputs(path)),
            (
                "+ Pipeline, parse_lines, a counting sink",
                lambda: file_pipeline(path, CountingSink()),
            ),
            (
                "+ JsonLinesSink to /dev/null (to_json, key digest)",
                lambda: file_pipeline(path, JsonLinesSink("/dev/null")),
            ),
        ]
        best = run_steps([step for _, step in steps], rounds)
    print_table(
        f"a {megabytes} MB raw MariaDB log, {lines:,} lines; best of {rounds} rounds, "
        f"interleaved; {lines / best[-1]:,.0f} lines/s in all",
        [name for name, _ in steps],
        best,
        lines,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="auditsync's cost per stage, by subtraction")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--file-mb", type=int, default=20, help="size of the log file part")
    parser.add_argument("--only", choices=["batch", "file"], help="one of the two breakdowns")
    parser.add_argument("--4kb", dest="big", action="store_true", help="the 4 KB batch instead")
    arguments = parser.parse_args(argv)
    if arguments.only != "file":
        batch_breakdown(arguments.rounds, arguments.big)
    if arguments.only != "batch":
        if arguments.only is None:
            print()
        file_breakdown(arguments.file_mb, max(2, arguments.rounds // 2))
    return 0


def batch_breakdown(rounds: int, big: bool = False) -> None:
    if big:
        event, events = workloads.big_statement_event(200, 10, 4096), 200 * 10
        title = f"the 4 KB batch, {events:,} events"
    else:
        event, events = workloads.standard_event(), 200 * 50
        title = f"the standard batch, {events:,} events"
    pipeline = Pipeline(CountingSink())
    steps: list[tuple[str, Callable[[Event], object]]] = [
        ("kinesis_inputs (the Lambda event -> Payloads)", inputs_only),
        ("+ decode_payload (base64, gzip)", decoded),
        ("+ iter_json (orjson, the documents of a payload)", documents),
        ("+ parse_log_events (origins, lines, AuditEvents)", parsed),
        (
            "handle_kinesis_event (+ Pipeline bookkeeping)",
            lambda e: handle_kinesis_event(e, pipeline),
        ),
    ]
    best = run_steps([_bind(step, event) for _, step in steps], rounds)
    print_table(
        f"{title}; best of {rounds} rounds, interleaved",
        [name for name, _ in steps],
        best,
        events,
    )


def _bind(step: Callable[[Event], object], event: Event) -> Callable[[], object]:
    return lambda: step(event)


if __name__ == "__main__":
    raise SystemExit(main())
