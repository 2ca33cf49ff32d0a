"""auditsync's benchmark: the by-hand approach, the decode-only floor and auditsync, side by side.

    python benchmarks/run.py            # the full run (a 300 MB file for the CLI part)
    python benchmarks/run.py --quick    # a smoke run, well under a minute

Everything runs in this one process except the command-line part, which starts
``python -m auditsync decode`` as a child. Contenders are interleaved — every round runs
each of them once, in a rotating order — and the best round of each counts, so a noisy
neighbour or a frequency change hurts all of them alike and the best reflects the code.
The garbage collector stays on (it is on in a Lambda), and is emptied before each timing.
See benchmarks/README.md for what each part measures and docs/performance.md for results.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baseline
import workloads

from auditsync import AuditEvent, Pipeline, parse_line
from auditsync.aws import handle_kinesis_event

SIZES_KB = (1, 2, 4, 8, 16, 32, 64)


# --- timing ---------------------------------------------------------------------------------


@attrs.define
class Contender:
    """One thing to time: ``run()`` does ``units`` units of work (events, bytes) per call."""

    name: str
    run: Callable[[], object]
    units: int
    number: int = 1
    times: list[float] = attrs.field(factory=list)

    def measure(self) -> None:
        gc.collect()
        started = time.perf_counter()
        for _ in range(self.number):
            self.run()
        self.times.append((time.perf_counter() - started) / self.number)

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def rate(self) -> float:
        """Units per second in the best round."""
        return self.units / self.best


def calibrate(contender: Contender, target: float) -> None:
    """Repeat short calls so one timing lasts about ``target`` seconds (one call warms up)."""
    started = time.perf_counter()
    contender.run()
    once = time.perf_counter() - started
    contender.number = max(1, int(target / max(once, 1e-9)))


def interleave(contenders: Sequence[Contender], rounds: int) -> None:
    """Each round runs every contender once, starting one further along each time."""
    count = len(contenders)
    for round_ in range(rounds):
        for offset in range(count):
            contenders[(round_ + offset) % count].measure()


# --- the contenders -------------------------------------------------------------------------


class CountingSink:
    """A sink that only counts, so the measurement is auditsync's own work."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, events: Sequence[AuditEvent]) -> None:
        self.count += len(events)

    def close(self) -> None:
        pass


def auditsync_run(event: dict[str, Any], expected: int) -> Callable[[], object]:
    """``handle_kinesis_event`` with a counting sink; checked once to read every line."""
    sink = CountingSink()
    pipeline = Pipeline(sink)
    response = handle_kinesis_event(event, pipeline)
    if response != {"batchItemFailures": []} or sink.count != expected:
        raise SystemExit(
            f"auditsync delivered {sink.count} of {expected} events ({response}): "
            "the benchmark input no longer parses; fix that first"
        )
    return lambda: handle_kinesis_event(event, pipeline)


def checked(name: str, run: Callable[[], int], expected: int) -> Callable[[], object]:
    got = run()
    if got != expected:
        raise SystemExit(f"{name} counted {got} events, expected {expected}")
    return run


def batch_contenders(
    event: dict[str, Any], events: int, hand_event: dict[str, Any], hand_events: int
) -> list[Contender]:
    return [
        Contender(
            "by hand (Powertools + regex)",
            checked("by hand", lambda: baseline.by_hand(hand_event), hand_events),
            hand_events,
        ),
        Contender(
            "decode-only floor",
            checked("floor", lambda: baseline.decode_only(event), events),
            events,
        ),
        Contender("auditsync end to end", auditsync_run(event, events), events),
    ]


# --- the parts ------------------------------------------------------------------------------


@attrs.define
class Results:
    """Everything measured, for the table, the targets and ``--json``."""

    machine: dict[str, Any] = attrs.field(factory=dict)
    batches: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    per_byte: list[dict[str, Any]] = attrs.field(factory=list)
    cli: dict[str, Any] = attrs.field(factory=dict)
    targets: list[dict[str, Any]] = attrs.field(factory=list)


def run_batches(arguments: argparse.Namespace, results: Results) -> None:
    say("building the standard batch and the 4 KB batch …")
    records, per_record = arguments.records, 50
    standard = workloads.standard_event(records, per_record)
    big_records = arguments.records
    big = workloads.big_statement_event(big_records, 10, 4096)
    # The regex is quadratic in the line length: time it on a few records and scale.
    hand_records = arguments.big_hand_records
    big_hand = {"Records": big["Records"][:hand_records]}
    groups = {
        "standard": (
            f"standard batch: 1 Kinesis event, {records} records x {per_record} mixed lines",
            batch_contenders(standard, records * per_record, standard, records * per_record),
            "",
        ),
        "4kb": (
            f"4 KB batch: 1 Kinesis event, {big_records} records x 10 QUERY lines of 4 KB",
            batch_contenders(big, big_records * 10, big_hand, hand_records * 10),
            f"by hand timed on the first {hand_records} records ({hand_records * 10} lines) "
            "and scaled per event: its regex is quadratic in the line length",
        ),
    }
    everyone = [contender for _, group, _ in groups.values() for contender in group]
    say(f"timing {len(everyone)} contenders, {arguments.rounds} rounds, interleaved …")
    interleave(everyone, arguments.rounds)
    for key, (title, group, note) in groups.items():
        hand, floor, ours = group
        results.batches[key] = {
            "title": title,
            "note": note,
            "rows": [
                {"name": c.name, "events": c.units, "best_s": c.best, "events_per_s": c.rate}
                for c in group
            ],
            "auditsync_vs_by_hand": ours.rate / hand.rate,
            "auditsync_vs_floor": ours.rate / floor.rate,
            "floor_over_auditsync": floor.rate / ours.rate,
        }


def run_per_byte(arguments: argparse.Namespace, results: Results) -> None:
    say("timing parse_line and the regex per statement size …")
    ours: list[Contender] = []
    theirs: list[Contender] = []
    for size in arguments.sizes:
        line = workloads.statement_line(size * 1024)
        length = len(line.encode("utf-8"))
        parse = Contender(f"parse_line {size} KB", _bind(parse_line, line), length)
        calibrate(parse, 0.02)
        regex = Contender(f"regex {size} KB", _bind(baseline.split_line, line), length)
        calibrate(regex, 0.02)
        ours.append(parse)
        theirs.append(regex)
    interleave(ours + theirs, arguments.rounds)
    # parse_line timings are short and cheap: more rounds make its best steadier.
    interleave(ours, 2 * arguments.rounds)
    previous: Contender | None = None
    for size, parse, regex in zip(arguments.sizes, ours, theirs, strict=True):
        # The cost of the bytes this line has over the one before: the slope of time
        # against length, with the fixed cost of a call taken out.
        marginal = None
        if previous is not None:
            marginal = (parse.best - previous.best) / (parse.units - previous.units) * 1e9
        results.per_byte.append(
            {
                "kb": size,
                "bytes": parse.units,
                "auditsync_ns_per_byte": parse.best / parse.units * 1e9,
                "auditsync_marginal_ns_per_byte": marginal,
                "auditsync_us_per_line": parse.best * 1e6,
                "regex_ns_per_byte": regex.best / regex.units * 1e9,
                "regex_us_per_line": regex.best * 1e6,
            }
        )
        previous = parse


def _bind(function: Callable[[str], object], line: str) -> Callable[[], object]:
    return lambda: function(line)


def run_cli(arguments: argparse.Namespace, results: Results) -> None:
    problem = cli_problem()
    if problem is not None:
        results.cli = {"skipped": problem}
        return
    block = workloads.log_block(20_000)
    lines_per_block = block.count(b"\n")
    cli_runs = 1 if arguments.quick else 3
    runs = []
    with tempfile.TemporaryDirectory(prefix="auditsync-bench-") as directory:
        for factor in (1, 2):
            megabytes = arguments.file_mb * factor
            path = Path(directory) / f"server_audit_{megabytes}mb.log"
            say(f"writing a {megabytes} MB server_audit log …")
            lines = write_log(path, block, lines_per_block, megabytes * 1_000_000)
            # Like every contender, the best of several runs: one run of a shared machine
            # can lose a third of its speed to a neighbour.
            say(f"running the CLI on {megabytes} MB ({lines:,} lines), {cli_runs} times …")
            outcomes = [time_cli(path) for _ in range(cli_runs)]
            path.unlink()
            skipped = [outcome for outcome in outcomes if "skipped" in outcome]
            if skipped:
                results.cli = skipped[0]
                return
            best = min(outcomes, key=lambda outcome: outcome["seconds"])
            peak = max(outcome["peak_rss_mb"] for outcome in outcomes)
            runs.append({"mb": megabytes, "lines": lines} | best | {"peak_rss_mb": peak})
    for run in runs:
        run["lines_per_s"] = run["lines"] / run["seconds"]
    results.cli = {"runs": runs, "rss_ratio": runs[1]["peak_rss_mb"] / runs[0]["peak_rss_mb"]}


def cli_problem() -> str | None:
    """Why the command line cannot be measured yet, or None: a one-line file must decode."""
    with tempfile.TemporaryDirectory(prefix="auditsync-bench-") as directory:
        path = Path(directory) / "one.log"
        path.write_bytes(workloads.log_block(3))
        child = subprocess.run(
            [sys.executable, "-m", "auditsync", "decode", str(path), "--to", "jsonl:/dev/null"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    if child.returncode != 0:
        last = (child.stderr.strip().splitlines() or ["no output"])[-1]
        return f"`python -m auditsync decode` exited {child.returncode}: {last}"
    return None


def write_log(path: Path, block: bytes, lines_per_block: int, size: int) -> int:
    """Write whole blocks of lines until ``size`` bytes; return the number of lines."""
    blocks = max(1, round(size / len(block)))
    with open(path, "wb") as file:
        for _ in range(blocks):
            file.write(block)
    return blocks * lines_per_block


def time_cli(path: Path) -> dict[str, Any]:
    """Run the CLI on ``path``; its wall time and its own peak RSS (from ``wait4``)."""
    command = [sys.executable, "-m", "auditsync", "decode", str(path), "--to", "jsonl:/dev/null"]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    stderr = child.stderr.read().decode("utf-8", "replace") if child.stderr else ""
    if child.stderr:
        child.stderr.close()
    if child.returncode != 0:
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        return {"skipped": f"the CLI exited {child.returncode}: {last}"}
    return {
        "seconds": seconds,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports KiB
        "summary": stderr.strip().splitlines()[-1] if stderr.strip() else "",
    }


# --- targets and output ---------------------------------------------------------------------


def judge(results: Results, arguments: argparse.Namespace) -> None:
    def target(name: str, value: float | None, goal: str, ok: bool | None) -> None:
        results.targets.append({"target": name, "value": value, "goal": goal, "pass": ok})

    standard = results.batches.get("standard")
    if standard:
        ratio = standard["auditsync_vs_by_hand"]
        target("end to end vs by hand, standard batch", ratio, "≥ 2x", ratio >= 2)
        floor = standard["floor_over_auditsync"]
        target("floor / auditsync, standard batch", floor, "≤ 3x", floor <= 3)
    big = results.batches.get("4kb")
    if big:
        ratio = big["auditsync_vs_by_hand"]
        target("end to end vs by hand, 4 KB batch", ratio, "≥ 100x", ratio >= 100)
    if len(results.per_byte) >= 6:
        # Linear time: a byte costs as much in the largest lines as in the smallest. The
        # marginal cost is the test -- the slope of time against length, fitted over the
        # three smallest and the three largest lines; the plain cost per byte also carries
        # the fixed cost of a call (about 0.7 µs), which a 1 KB line cannot amortise.
        rows = results.per_byte
        small, large = _slope(rows[:3]), _slope(rows[-3:])
        growth = large / small if small > 0 and large > 0 else None
        span = f"{rows[-3]['kb']}-{rows[-1]['kb']} KB over {rows[0]['kb']}-{rows[2]['kb']} KB"
        target(
            f"parse_line marginal ns/byte, {span}",
            growth,
            "≤ 1.5 (linear)",
            growth is not None and growth <= 1.5,
        )
    cli = results.cli
    if "runs" in cli:
        rate = cli["runs"][0]["lines_per_s"]
        target("CLI lines/s", rate, "≥ 300,000", rate >= 300_000)
        growth = cli["rss_ratio"]
        target("CLI peak RSS, 2x file / 1x file", growth, "≤ 1.2 (flat)", growth <= 1.2)
    elif "skipped" in cli:
        target("CLI lines/s and flat memory", None, "≥ 300,000, flat", None)
    if arguments.quick:
        for row in results.targets:
            row["goal"] += " (quick run: indicative only)"


def _slope(rows: list[dict[str, Any]]) -> float:
    """ns per byte: the least-squares slope of parse_line's time against the line length."""
    xs = [row["bytes"] for row in rows]
    ys = [row["auditsync_us_per_line"] * 1000 for row in rows]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "orjson": orjson.__version__,
        "attrs": attrs.__version__,
        "inflater": _inflater(),
        "platform": platform.platform(),
    }


def _inflater() -> str:
    """Which inflater auditsync uses: ISA-L's (the ``fast`` extra) or zlib's."""
    from auditsync import _gzip

    if _gzip.new_inflater is zlib.decompressobj:
        return f"zlib {zlib.ZLIB_RUNTIME_VERSION}"
    from isal import __version__ as isal_version

    return f"isal {isal_version}"


def report(results: Results, arguments: argparse.Namespace) -> str:
    m = results.machine
    out = [
        f"auditsync benchmark — {m['cpu']}, {m['cores']} cores, {m['implementation']} "
        f"{m['python']}, orjson {m['orjson']}, attrs {m['attrs']}; auditsync inflates with "
        f"{m['inflater']}, the other contenders with zlib",
        f"{arguments.rounds} rounds, contenders interleaved, best round of each"
        + (" — QUICK RUN: small inputs, indicative only" if arguments.quick else ""),
    ]
    for key, batch in results.batches.items():
        label = "(a)" if key == "standard" else "(b)"
        out += ["", f"{label} {batch['title']}"]
        out.append(f"    {'contender':<30} {'events':>8} {'best ms':>10} {'events/s':>12}")
        for row in batch["rows"]:
            out.append(
                f"    {row['name']:<30} {row['events']:>8,} {row['best_s'] * 1e3:>10.2f} "
                f"{row['events_per_s']:>12,.0f}"
            )
        out.append(
            f"    auditsync / by hand = {batch['auditsync_vs_by_hand']:.2f}x   "
            f"auditsync / floor = {batch['auditsync_vs_floor']:.2f}x "
            f"(floor / auditsync = {batch['floor_over_auditsync']:.2f})"
        )
        if batch["note"]:
            out.append(f"    note: {batch['note']}")
    if results.per_byte:
        out += ["", "(c) one QUERY line of a long multi-row INSERT: cost per byte of the line"]
        out.append(
            f"    {'size':>6} {'bytes':>7} {'parse_line ns/B':>16} {'marginal':>9}"
            f" {'µs/line':>9} {'regex ns/B':>11} {'µs/line':>10}"
        )
        for row in results.per_byte:
            marginal = row["auditsync_marginal_ns_per_byte"]
            out.append(
                f"    {row['kb']:>4} KB {row['bytes']:>7,} {row['auditsync_ns_per_byte']:>16.2f} "
                + (f"{marginal:>9.2f}" if marginal is not None else f"{'':>9}")
                + f" {row['auditsync_us_per_line']:>9.1f} {row['regex_ns_per_byte']:>11.1f}"
                f" {row['regex_us_per_line']:>10,.0f}"
            )
    cli = results.cli
    if cli:
        out += [
            "",
            "(d) python -m auditsync decode FILE --to jsonl:/dev/null (raw MariaDB log):"
            " best of 3 runs (1 in a quick run), peak RSS the highest",
        ]
        if "skipped" in cli:
            out.append(f"    skipped: {cli['skipped']}")
        else:
            out.append(
                f"    {'file':>8} {'lines':>11} {'seconds':>9} {'lines/s':>10} {'peak RSS':>10}"
            )
            for run in cli["runs"]:
                out.append(
                    f"    {run['mb']:>5} MB {run['lines']:>11,} {run['seconds']:>9.2f} "
                    f"{run['lines_per_s']:>10,.0f} {run['peak_rss_mb']:>7.1f} MB"
                )
    if results.targets:
        out += ["", "targets"]
        for row in results.targets:
            verdict = {True: "PASS", False: "FAIL", None: "SKIP"}[row["pass"]]
            value = "—" if row["value"] is None else f"{row['value']:,.2f}"
            out.append(f"    {verdict}  {row['target']:<44} {value:>10}   goal {row['goal']}")
    return "\n".join(out)


def say(text: str) -> None:
    print(f"… {text}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small inputs, 2 rounds: a smoke run")
    parser.add_argument("--rounds", type=int, help="rounds per contender (default 5, quick 2)")
    parser.add_argument("--file-mb", type=int, help="CLI input size in MB (default 300, quick 20)")
    parser.add_argument(
        "--only",
        action="append",
        choices=["batch", "bytes", "cli"],
        help="run only these parts (repeatable)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    arguments = parser.parse_args(argv)
    arguments.rounds = arguments.rounds or (2 if arguments.quick else 5)
    arguments.file_mb = arguments.file_mb or (20 if arguments.quick else 300)
    arguments.records = 200
    arguments.big_hand_records = 2 if arguments.quick else 10
    arguments.sizes = SIZES_KB
    parts = set(arguments.only or ["batch", "bytes", "cli"])

    results = Results(machine=machine())
    if "batch" in parts:
        run_batches(arguments, results)
    if "bytes" in parts:
        run_per_byte(arguments, results)
    if "cli" in parts:
        run_cli(arguments, results)
    judge(results, arguments)
    print(report(results, arguments))
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(attrs.asdict(results), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
