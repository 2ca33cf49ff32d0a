"""Golden tests: real server_audit records, checked against the client's own account.

The corpus in ``tests/data/golden/<server>/`` was written by ``tests/golden/capture.py``
against a live MariaDB: the audit files verbatim, the syslog datagrams, and
``expected.json``, which says from the client's side what each statement must parse to.
Every record must parse, format back to itself, and every expectation must be met by an
event of the right connection, in the order the client ran its statements.

A raw newline in a user, database or table name splits a record over several physical
lines; the corpus lists those names, and :func:`records` joins the pieces back. Table
records whose table name holds a comma cannot be split into database and table for
sure; their expectations are marked ambiguous and reported as expected failures.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from auditsync import AuditEvent, AuditSyncError, format_line, parse_line

GOLDEN_ROOT = Path(__file__).resolve().parents[1] / "data" / "golden"
CORPORA = sorted(p.parent for p in GOLDEN_ROOT.glob("*/expected.json"))
_SYSLOG_DATAGRAM = re.compile(rb"<\d{1,3}>([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) ")


@dataclass(frozen=True)
class Record:
    """One audit record and where it is: file and first physical line (1-based)."""

    file: str
    line: int
    raw: bytes

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Corpus:
    """A corpus directory: its manifest and its records, file by file."""

    directory: Path
    manifest: dict[str, Any]
    records: dict[str, list[Record]]

    @property
    def tz(self) -> tzinfo:
        """The server's zone, for timestamps that carry none."""
        name = self.manifest["server"]["time_zone"]
        if name in ("UTC", "+00:00", "SYSTEM"):
            return UTC
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return UTC

    def all_records(self) -> Iterable[Record]:
        for records in self.records.values():
            yield from records

    def expectations(self) -> list[dict[str, Any]]:
        return list(self.manifest["expectations"])


def records(name: str, data: bytes, newline_names: Sequence[str]) -> list[Record]:
    """Split a file into records, joining the lines a raw newline in a known name split.

    A complete record ends with its retcode, a comma or a quote, never inside a name, so
    a line ending with ``,<start of a name>`` followed by a line starting with
    ``<rest of the name>,`` is one record.
    """
    pieces = [n.encode().split(b"\n", 1) for n in newline_names]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out: list[Record] = []
    i = 0
    while i < len(lines):
        start, current = i, lines[i]
        while i + 1 < len(lines) and any(
            current.endswith(b"," + head) and lines[i + 1].startswith(tail + b",")
            for head, tail in pieces
        ):
            i += 1
            current += b"\n" + lines[i]
        out.append(Record(name, start + 1, current))
        i += 1
    return out


def load_corpus(directory: Path) -> Corpus:
    """Read a corpus directory written by ``capture.py``."""
    manifest = json.loads((directory / "expected.json").read_text(encoding="utf-8"))
    names = manifest["newline_names"]
    found: dict[str, list[Record]] = {}
    for name, info in manifest["files"].items():
        if info["kind"] == "syslog-datagrams":
            datagrams = [base64.b64decode(d) for d in info["datagrams_b64"]]
            found[name] = [Record(name, n, d) for n, d in enumerate(datagrams, 1)]
        else:
            found[name] = records(name, (directory / name).read_bytes(), names)
    return Corpus(directory, manifest, found)


def _clip(raw: bytes | str, keep: int = 160) -> str:
    """A long record shortened for messages: its start and its end."""
    if len(raw) <= 2 * keep:
        return repr(raw)
    return f"{raw[:keep]!r} ... {raw[-keep:]!r} ({len(raw)} long)"


def _text(raw: bytes) -> str:
    """The record as parse_line reads bytes: UTF-8 with surrogateescape, no final newline."""
    text = raw.decode("utf-8", "surrogateescape")
    return text[:-1] if text.endswith("\n") else text


def _object_bytes(event: AuditEvent) -> bytes:
    """The object as the server wrote it: surrogateescape gives back bytes that are not UTF-8."""
    return event.object.encode("utf-8", "surrogateescape")


def _show(event: AuditEvent) -> str:
    return (
        f"{event.operation} conn={event.connection_id} user={event.username!r} "
        f"db={event.database!r} object={_clip(_object_bytes(event))} retcode={event.retcode} "
        f"truncated={event.truncated}"
    )


# --------------------------------------------------------------------------- checks


def parse_problems(corpus: Corpus) -> tuple[dict[Record, AuditEvent], list[str]]:
    """Parse every record; return the events and a line for each record that failed."""
    events: dict[Record, AuditEvent] = {}
    problems = []
    for record in corpus.all_records():
        try:
            events[record] = parse_line(record.raw, tz=corpus.tz)
        except AuditSyncError as exc:
            problems.append(f"{record.where}: {exc}\n    line: {_clip(record.raw)}")
    return events, problems


def round_trip_problems(corpus: Corpus, events: dict[Record, AuditEvent]) -> list[str]:
    """``format_line(parse_line(x)) == x`` for every record that parsed."""
    problems = []
    for record, event in events.items():
        expected = _text(record.raw)
        written = format_line(event, tz=corpus.tz)
        if written != expected:
            problems.append(
                f"{record.where}: format_line gave\n    {_clip(written)}"
                f"\n  for\n    {_clip(expected)}"
            )
    return problems


def _expected_object(exp: dict[str, Any]) -> bytes | None:
    if "object_b64" in exp:
        return base64.b64decode(exp["object_b64"])
    obj = exp["object"]
    return None if obj is None else obj.encode("utf-8")


def _mismatches(exp: dict[str, Any], event: AuditEvent) -> list[str]:
    """The fields of ``event`` that differ from ``exp`` (empty when it matches)."""
    wrong = []
    if event.operation != exp["operation"]:
        return ["operation"]
    if event.username != exp["username"]:
        wrong.append("username")
    if exp["database"] is not None and event.database != exp["database"]:
        wrong.append("database")
    obj = _expected_object(exp)
    if obj is not None and _object_bytes(event) != obj:
        wrong.append("object")
    if event.retcode != exp["retcode"]:
        wrong.append("retcode")
    if event.truncated != exp["truncated"]:
        wrong.append("truncated")
    return wrong


def _describe(exp: dict[str, Any]) -> str:
    return (
        f"{exp['operation']} conn={exp['connection_id']} ({exp['client']}) "
        f"user={exp['username']!r} db={exp['database']!r} "
        f"object={_clip(_expected_object(exp) or b'')} "
        f"retcode={exp['retcode']} truncated={exp['truncated']}"
        + (f"  [{exp['note']}]" if exp.get("note") else "")
    )


def expectation_problems(
    corpus: Corpus,
    events: dict[Record, AuditEvent],
    expectations: Sequence[dict[str, Any]],
) -> list[str]:
    """Match each expectation to its own event, connection by connection, in order.

    Expectations of one statement (its table events and QUERY record) may come in any
    order among themselves; statements must come in the order the client ran them.
    Events nobody expected (the server's own table events, pymysql's ``SET NAMES``) are
    passed over.
    """
    streams: dict[tuple[str, int], list[tuple[Record, AuditEvent]]] = defaultdict(list)
    for record, event in events.items():
        streams[record.file, event.connection_id].append((record, event))
    for stream in streams.values():
        stream.sort(key=lambda pair: pair[0].line)
    plans: dict[tuple[str, int], list[list[dict[str, Any]]]] = defaultdict(list)
    for exp in expectations:
        plan = plans[exp["file"], exp["connection_id"]]
        if not plan or plan[-1][0]["group"] != exp["group"]:
            plan.append([])
        plan[-1].append(exp)

    problems: list[str] = []
    for key, plan in plans.items():
        stream = streams.get(key, [])
        position = 0
        for group in plan:
            start = position
            waiting = list(group)
            while waiting and position < len(stream):
                _, event = stream[position]
                position += 1
                for exp in waiting:
                    if not _mismatches(exp, event):
                        waiting.remove(exp)
                        break
            if waiting:
                problems.extend(_missing(exp, stream) for exp in waiting)
                position = start  # so one miss does not hide the groups after it
    return problems


def _missing(exp: dict[str, Any], stream: Sequence[tuple[Record, AuditEvent]]) -> str:
    """Say which expectation found no event, and the nearest event with its differences."""
    best: tuple[int, Record, AuditEvent, list[str]] | None = None
    for record, event in stream:
        wrong = _mismatches(exp, event)
        if wrong != ["operation"] and (best is None or len(wrong) < best[0]):
            best = (len(wrong), record, event, wrong)
    text = f"{exp['file']}: no event for\n    expected {_describe(exp)}"
    if best is None:
        return text + "\n    (no event of that operation on that connection)"
    _, record, event, wrong = best
    return (
        f"{text}\n    nearest    {record.where} differs in {', '.join(wrong)}:"
        f"\n    parsed to  {_show(event)}\n    line       {_clip(record.raw)}"
    )


def _syslog_file_form(raw: bytes, hostname: str) -> bytes:
    """A datagram as a syslog daemon writes it to a file: no <priority>, the host added."""
    return _SYSLOG_DATAGRAM.sub(lambda m: m.group(1) + b" " + hostname.encode() + b" ", raw, 1)


def newline_problems(corpus: Corpus, events: dict[Record, AuditEvent]) -> list[str]:
    """A record joined from several lines must carry each newline inside a known name."""
    names = set(corpus.manifest["newline_names"])
    problems = []
    joined = 0
    for record, event in events.items():
        if b"\n" not in record.raw.rstrip(b"\n"):
            continue
        joined += 1
        fields = {event.username, event.database}
        if event.operation != "QUERY":
            fields.update(event.object.replace(".", "|").split("|"))
            fields.add(event.object)
        if not fields & names:
            problems.append(f"{record.where}: newline outside a known name: {_show(event)}")
    if not joined:
        problems.append("no record is split by a raw newline, yet the corpus makes some")
    return problems


def syslog_problems(corpus: Corpus) -> list[str]:
    """The datagrams, as a syslog daemon writes them to a file, read the same."""
    hostname = corpus.manifest["server"]["hostname"]
    problems = []
    for record in corpus.records.get("syslog-datagrams.log", []):
        line = _syslog_file_form(record.raw, hostname)
        try:
            direct = parse_line(record.raw, tz=corpus.tz)
            via_file = parse_line(line, tz=corpus.tz)
        except AuditSyncError as exc:
            problems.append(f"{record.where}: {exc}\n    line: {_clip(line)}")
            continue
        if _show(direct) != _show(via_file):
            problems.append(f"{record.where}: {_show(direct)} != {_show(via_file)}")
        if format_line(via_file, tz=corpus.tz) != _text(line):
            problems.append(f"{record.where}: file form does not round-trip: {_clip(line)}")
    return problems


def timestamp_problems(corpus: Corpus, events: dict[Record, AuditEvent]) -> list[str]:
    """Read in the server's zone, every record's time lies inside the capture window.

    Syslog times carry no year, so for them only the month, day and time are compared.
    """
    start, end = (datetime.fromisoformat(t) for t in corpus.manifest["captured_between"])
    problems = []
    for record, event in events.items():
        stamp = event.timestamp
        if record.file == "syslog-datagrams.log":
            stamp = stamp.replace(year=start.year)
        if not start - timedelta(seconds=1) <= stamp <= end:
            problems.append(f"{record.where}: {stamp.isoformat()} not in {start} .. {end}")
    return problems


def all_problems(corpus: Corpus) -> list[str]:
    """Every check on one corpus; an empty list means it passed."""
    events, problems = parse_problems(corpus)
    problems += round_trip_problems(corpus, events)
    clear = [e for e in corpus.expectations() if not e.get("ambiguous")]
    problems += expectation_problems(corpus, events, clear)
    problems += newline_problems(corpus, events)
    problems += syslog_problems(corpus)
    problems += timestamp_problems(corpus, events)
    return problems


def _fail(problems: Sequence[str]) -> None:
    if problems:
        shown = "\n".join(problems[:40])
        more = f"\n... and {len(problems) - 40} more" if len(problems) > 40 else ""
        pytest.fail(f"{len(problems)} problem(s):\n{shown}{more}", pytrace=False)


# --------------------------------------------------------------------------- stored corpus


@pytest.fixture(scope="module", params=CORPORA, ids=lambda p: p.name)
def corpus(request: pytest.FixtureRequest) -> Corpus:
    return load_corpus(request.param)


def test_corpus_is_present() -> None:
    """The suite must not pass vacuously when the corpus has gone missing."""
    assert CORPORA, f"no golden corpus under {GOLDEN_ROOT}; run tests/golden/capture.py"


def test_every_record_parses(corpus: Corpus) -> None:
    _fail(parse_problems(corpus)[1])


def test_format_line_gives_back_every_record(corpus: Corpus) -> None:
    events, _ = parse_problems(corpus)
    _fail(round_trip_problems(corpus, events))


def test_every_expectation_is_met(corpus: Corpus) -> None:
    events, _ = parse_problems(corpus)
    clear = [e for e in corpus.expectations() if not e.get("ambiguous")]
    _fail(expectation_problems(corpus, events, clear))


def test_split_records_put_the_newline_in_its_name(corpus: Corpus) -> None:
    _fail(newline_problems(corpus, parse_problems(corpus)[0]))


def test_syslog_file_form_parses_the_same(corpus: Corpus) -> None:
    if not corpus.records.get("syslog-datagrams.log"):
        pytest.skip("this corpus holds no syslog datagrams")
    _fail(syslog_problems(corpus))


def test_timestamps_fall_within_the_capture(corpus: Corpus) -> None:
    _fail(timestamp_problems(corpus, parse_problems(corpus)[0]))


def _ambiguous_cases() -> list[Any]:
    cases = []
    for directory in CORPORA:
        manifest = json.loads((directory / "expected.json").read_text(encoding="utf-8"))
        for n, exp in enumerate(manifest["expectations"]):
            if exp.get("ambiguous"):
                cases.append(
                    pytest.param(
                        directory,
                        exp,
                        id=f"{directory.name}-{n}",
                        marks=pytest.mark.xfail(reason=exp["ambiguous"], strict=False),
                    )
                )
    return cases


@pytest.mark.parametrize(("directory", "exp"), _ambiguous_cases())
def test_ambiguous_record(directory: Path, exp: dict[str, Any]) -> None:
    """Records the server writes ambiguously: reported, not required."""
    corpus = load_corpus(directory)
    events, _ = parse_problems(corpus)
    _fail(expectation_problems(corpus, events, [exp]))


# --------------------------------------------------------------------------- live server


@pytest.mark.mariadb
def test_live_capture(tmp_path: Path) -> None:
    """Capture afresh from the live server and run every check on it."""
    _load_capture().capture(tmp_path)
    _fail(all_problems(load_corpus(tmp_path)))


def _load_capture() -> ModuleType:
    """``tests/golden/capture.py`` as a module (it is a script, not in a package)."""
    name = "auditsync_golden_capture"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "golden" / "capture.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
