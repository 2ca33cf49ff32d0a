"""What each compiled part buys: every path timed with the part on, and with it off so
that its Python twin does the work, interleaved in one process.

    python benchmarks/parts.py [--rounds 9] [--file-mb 10]

The parts: the C line reader (``auditsync/_c_reader.c``) as a whole and its batch entry
points (``read_log_events``, ``read_lines``: without them a Python loop makes each
origin and calls its ``parse_line`` for each line); the C JSON writer
(``auditsync/_c_json.c``) as a whole and its batch writer (``json_lines``: without it
each event is one call of its ``event_json``). The paths: the standard Kinesis batch
(``handle_kinesis_event``, a counting sink), and what ``auditsync decode FILE --to
jsonl:/dev/null`` runs, in this process. A part's gain is the time it saves as a share
of its path's time with it on.
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

import attrs
import stages
import workloads

from auditsync import Origin, Pipeline, _auditlog, _json
from auditsync.aws import handle_kinesis_event
from auditsync.sinks import JsonLinesSink

c_parse_line = _auditlog._c_parse_line


def read_log_events_by_line(
    items: list[Any], fields: tuple[Any, ...], dialect: Any, tz: Any
) -> tuple[list[Any], int] | None:
    """What the C batch reader answers, by a Python loop calling the C parse_line."""
    read = _auditlog._log_event_origins(items, fields)
    if read is None or c_parse_line is None:
        return None
    results: list[Any] = []
    misses = 0
    for item, origin in zip(items, read[0], strict=True):
        event = c_parse_line(item["message"], dialect, tz, origin)
        misses += event is None
        results.append(origin if event is None else event)
    return results, misses


def read_lines_by_line(
    texts: list[Any], numbers: list[Any], fields: tuple[Any, ...], dialect: Any, tz: Any
) -> tuple[list[Any], int] | None:
    """What the C batch reader answers for a file's lines, by a Python loop."""
    if c_parse_line is None:
        return None
    base = Origin(*fields)
    results: list[Any] = []
    misses = 0
    for text, number in zip(texts, numbers, strict=True):
        origin = attrs.evolve(base, line_number=number)
        line = text.decode("utf-8", "surrogateescape") if isinstance(text, bytes) else text
        event = c_parse_line(line, dialect, tz, origin)
        misses += event is None
        results.append(origin if event is None else event)
    return results, misses


#: Each part: the module globals that turn it off, and what stands in for them.
PARTS: dict[str, list[tuple[Any, str, Any]]] = {
    "none": [],
    "the C reader": [
        (_auditlog, "_c_parse_line", None),
        (_auditlog, "_c_read_lines", None),
        (_auditlog, "_c_read_log_events", None),
    ],
    "its batch entry points": [
        (_auditlog, "_c_read_lines", read_lines_by_line),
        (_auditlog, "_c_read_log_events", read_log_events_by_line),
    ],
    "the C writer": [(_json, "_c_event_json", None), (_json, "_c_json_lines", None)],
    "its batch writer": [(_json, "_c_json_lines", None)],
}


@contextlib.contextmanager
def without(part: str) -> Iterator[None]:
    saved = [(module, name, getattr(module, name)) for module, name, _ in PARTS[part]]
    for module, name, stand_in in PARTS[part]:
        setattr(module, name, stand_in)
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
    if _auditlog._c_parse_line is None or _json._c_event_json is None:
        print("the C extensions are not built (or AUDITSYNC_PURE_PYTHON is set)")
        return 1
    batch(arguments.rounds)
    print()
    file(arguments.file_mb, arguments.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
