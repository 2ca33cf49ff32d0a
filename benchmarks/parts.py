"""What each compiled part buys: every path timed with the part on, and with it off so
that its Python twin does the work, interleaved in one process.

    python benchmarks/parts.py [--rounds 9] [--file-mb 10]

The parts: the C line reader (``auditsync/_c_reader.c``) as a whole and its batch entry
points (``read_log_events``, ``read_lines``: without them each line is one call of its
``parse_line``); the C JSON writer (``auditsync/_c_json.c``) as a whole and its batch
writer (``json_lines``: without it each event is one call of its ``event_json``). The
paths: the standard Kinesis batch (``handle_kinesis_event``, a counting sink), and what
``auditsync decode FILE --to jsonl:/dev/null`` runs, in this process. A part's gain is
the time it saves as a share of its path's time with it on.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stages
import workloads

from auditsync import Pipeline, _auditlog
from auditsync.aws import handle_kinesis_event
from auditsync.sinks import JsonLinesSink, _jsonlines

#: Each part: the module globals that turn it off when set to None.
PARTS: dict[str, list[tuple[Any, str]]] = {
    "none": [],
    "the C reader": [
        (_auditlog, "_c_parse_line"),
        (_auditlog, "_c_read_lines"),
        (_auditlog, "_c_read_log_events"),
    ],
    "its batch entry points": [(_auditlog, "_c_read_lines"), (_auditlog, "_c_read_log_events")],
    "the C writer": [(_jsonlines, "_c_event_json"), (_jsonlines, "_c_json_lines")],
    "its batch writer": [(_jsonlines, "_c_json_lines")],
}


@contextlib.contextmanager
def without(part: str) -> Iterator[None]:
    saved = [(module, name, getattr(module, name)) for module, name in PARTS[part]]
    for module, name, _ in saved:
        setattr(module, name, None)
    try:
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


def switched(part: str, run: Callable[[], object]) -> Callable[[], object]:
    def step() -> object:
        with without(part):
            return run()

    return step


def report(title: str, count: int, parts: Sequence[str], best: Sequence[float]) -> None:
    print(title)
    print(f"  {'turned off':<28} {'ms':>8} {'µs/item':>8} {'its gain':>9}")
    for part, seconds in zip(parts, best, strict=True):
        gain = "" if part == "none" else f"{(seconds - best[0]) / best[0]:>9.1%}"
        print(f"  {part:<28} {seconds * 1e3:>8.1f} {seconds / count * 1e6:>8.3f} {gain:>9}")


def batch(rounds: int) -> None:
    event, events = workloads.standard_event(), 200 * 50
    pipeline = Pipeline(stages.CountingSink())
    parts = ["none", "the C reader", "its batch entry points"]
    steps = [switched(part, lambda: handle_kinesis_event(event, pipeline)) for part in parts]
    report(
        f"the standard batch, {events:,} events, handle_kinesis_event; best of {rounds} rounds",
        events,
        parts,
        stages.run_steps(steps, rounds),
    )


def file(megabytes: int, rounds: int) -> None:
    block = workloads.log_block(20_000)
    with tempfile.TemporaryDirectory(prefix="auditsync-parts-") as directory:
        path = Path(directory) / "server_audit.log"
        with open(path, "wb") as out:
            for _ in range(max(1, round(megabytes * 1_000_000 / len(block)))):
                out.write(block)
        lines = stages.file_lines(path)
        parts = list(PARTS)
        steps = [
            switched(part, lambda: stages.file_pipeline(path, JsonLinesSink("/dev/null")))
            for part in parts
        ]
        best = stages.run_steps(steps, rounds)
    report(
        f"a {megabytes} MB raw MariaDB log, {lines:,} lines, to JSON Lines on /dev/null; "
        f"best of {rounds} rounds",
        lines,
        parts,
        best,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="what each compiled part of auditsync buys")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--file-mb", type=int, default=10)
    arguments = parser.parse_args(argv)
    if _auditlog._c_parse_line is None or _jsonlines._c_event_json is None:
        print("the C extensions are not built (or AUDITSYNC_PURE_PYTHON is set)")
        return 1
    batch(arguments.rounds)
    print()
    file(arguments.file_mb, arguments.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
