"""The ``auditsync`` command: decode audit-log artefacts from files into a sink.

Exit status: 0 when every record was delivered or deliberately skipped, 1 when anything
was dead-lettered, 2 for usage errors (a bad option, a missing or unreadable file),
3 when a sink failed to take events.
"""

from __future__ import annotations

import argparse
import functools
import logging
import operator
import os
import re
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import IO, Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import _gzip, _native, filters
from ._events import AuditEvent, DeadLetter, Dialect, Origin
from ._pipeline import Events, Lines, Payload, Pipeline, Report, Unreadable
from ._sources import InputFormat, iter_paths, read_file
from .sinks._base import DeadLetterSink, Sink

__all__ = ["main"]

EXIT_OK, EXIT_DEAD_LETTERS, EXIT_USAGE, EXIT_DELIVERY = 0, 1, 2, 3
#: Events ``--sort`` holds back unless ``--sort-window`` says otherwise.
_SORT_WINDOW = 100_000
_PROGRESS_MIN_BYTES = 32 * 1024 * 1024


class UsageError(Exception):
    """A problem with how the command was called: one line on stderr, exit 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser, commands = _parser()
    words = _redact_mode(list(sys.argv[1:] if argv is None else argv))
    if words and words[0] in commands:
        # Options and paths may come in any order: "decode a.log --user x b.log".
        arguments = commands[words[0]].parse_intermixed_args(words[1:])
    else:
        arguments = parser.parse_args(words)
    logging.basicConfig(format="auditsync: %(message)s", stream=sys.stderr)
    try:
        return int(arguments.run(arguments))
    except UsageError as error:
        print(f"auditsync: {' '.join(str(error).split())}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("auditsync: interrupted", file=sys.stderr)
        return 130


#: The modes ``--redact`` takes; a bare ``--redact`` means the first.
_REDACT_MODES = ("literals", "passwords")


def _redact_mode(words: list[str]) -> list[str]:
    """``--redact`` followed by a word that is not a mode is the bare flag: argparse would
    take the word (a path, ``logs/``) as the flag's optional value and refuse it."""
    shown = list(words)
    for index, word in enumerate(words[:-1]):
        if word == "--redact" and words[index + 1] not in _REDACT_MODES:
            shown[index] = f"--redact={_REDACT_MODES[0]}"
    return shown


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="auditsync",
        description="Decode MariaDB/MySQL server_audit logs as AWS and MariaDB write them.",
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    decode = commands.add_parser(
        "decode",
        help="decode logs, S3 objects and saved Lambda events into a sink",
        description="Decode every event of the inputs into a sink (JSON Lines by default).",
    )
    _add_input_options(decode)
    decode.add_argument(
        "--to",
        default="jsonl",
        metavar="SINK",
        help="jsonl (standard output), jsonl:PATH, sqlite:PATH, parquet:DIR, ocsf[:PATH],"
        " ocsf-parquet:DIR, ecs[:PATH] or postgresql://… (default: jsonl)",
    )
    lake = decode.add_argument_group("Security Lake (--to ocsf-parquet:DIR)")
    lake.add_argument(
        "--account-id", metavar="ID", help="the AWS account id of the accountId= partitions"
    )
    lake.add_argument("--region", help="the AWS region of the region= partitions")
    lake.add_argument(
        "--lake-source",
        action="append",
        metavar="CLASS=LOCATION",
        help="where an OCSF class goes under DIR: the custom source's location"
        " (e.g. 3002=ext/rds-audit-auth; default ext/auditsync-…)",
    )
    decode.add_argument(
        "--dead-letter",
        metavar="PATH",
        help="write what cannot be decoded to PATH as JSON Lines (raw bytes in base64)",
    )
    decode.add_argument(
        "--redact",
        nargs="?",
        const=_REDACT_MODES[0],
        choices=_REDACT_MODES,
        help="rewrite queries before they are written: literals (default) or passwords only",
    )
    decode.add_argument(
        "--sort",
        action="store_true",
        help="order events by time within a window (Aurora writes lines out of order)",
    )
    decode.add_argument(
        "--sort-window",
        type=_positive,
        metavar="EVENTS",
        help="how many events --sort holds back at most (default 100000)",
    )
    decode.set_defaults(run=_decode)
    stats = commands.add_parser(
        "stats",
        help="summarise what is in the logs",
        description="Count events by operation, user and database; failed logins; error codes.",
    )
    _add_input_options(stats)
    stats.add_argument(
        "--top", type=_positive, default=10, metavar="N", help="rows per table (default 10)"
    )
    stats.set_defaults(run=_stats)
    changes = commands.add_parser(
        "changes",
        help="committed transactions and what they changed, as JSON Lines",
        description="Follow each connection's transactions and write each committed one"
        " that changed rows as a line of JSON (docs/changes.md).",
    )
    _add_input_options(changes)
    changes.add_argument(
        "--to", default="jsonl", metavar="SINK", help="jsonl (standard output) or jsonl:PATH"
    )
    changes.add_argument(
        "--dead-letter",
        metavar="PATH",
        help="write what cannot be decoded or placed in a table to PATH as JSON Lines",
    )
    changes.add_argument(
        "--keys",
        action="append",
        default=[],
        metavar="DB.TABLE=COL[,COL…]",
        help="a table's key columns, so that changes carry the keys of the rows they target",
    )
    changes.add_argument(
        "--query-log-limit",
        type=int,
        metavar="BYTES",
        help="the source's server_audit_query_log_limit: statements that long decide nothing",
    )
    changes.add_argument("--ddl", action="store_true", help="deliver DDL changes too")
    changes.add_argument(
        "--state",
        metavar="PATH",
        help="keep open transactions in this SQLite file, for a later run to finish",
    )
    changes.set_defaults(run=_changes)
    return parser, {"decode": decode, "stats": stats, "changes": changes}


def _version() -> str:
    """The version, and which line reader and inflater run: a build without a compiler
    falls back to pure Python, about five times slower, and this is where a user sees it."""
    reader = "C extension" if _native.parse_line is not None else "pure Python"
    inflater = "ISA-L" if _gzip.new_inflater.__module__.startswith("isal") else "zlib"
    from . import __version__  # here, not at import: importlib.metadata is slow to load

    return f"auditsync {__version__} (line reader: {reader}; inflater: {inflater})"


def _add_input_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "paths", nargs="*", metavar="PATH", help="files or directories; - for stdin"
    )
    command.add_argument(
        "--format",
        choices=[form.value for form in InputFormat],
        default="auto",
        help="force the input shape (default: recognise each file)",
    )
    command.add_argument(
        "--dialect", choices=[d.value for d in Dialect], default="auto", help="line dialect"
    )
    command.add_argument(
        "--tz", default="UTC", help="time zone of timestamps that carry none (default UTC)"
    )
    command.add_argument(
        "--year", type=int, help="year of BSD syslog times, which carry none (default: this year)"
    )
    filtering = command.add_argument_group("filters")
    filtering.add_argument("--operation", action="append", help="keep these operations")
    filtering.add_argument("--database", action="append", help="keep these databases (globs)")
    filtering.add_argument("--user", action="append", help="keep these users (globs)")
    filtering.add_argument("--exclude-user", action="append", help="drop these users (globs)")
    filtering.add_argument(
        "--table", action="append", help="keep statements writing these db.table globs"
    )
    filtering.add_argument(
        "--kind", action="append", help="keep statements of these kinds (INSERT, UPDATE, …)"
    )
    filtering.add_argument(
        "--writes-only", action="store_true", help="keep statements that change rows or schema"
    )
    filtering.add_argument(
        "--failed", action="store_true", help="keep what the server logged with an error"
    )
    filtering.add_argument("--since", help="keep events at or after this ISO 8601 time")
    filtering.add_argument("--until", help="keep events before this ISO 8601 time")


# --- commands -------------------------------------------------------------------------------


def _decode(arguments: argparse.Namespace) -> int:
    settings = _settings(arguments)
    sink = _open_sink(arguments.to, _lake(arguments))
    dead_letter, letters = _dead_letters(arguments.dead_letter)
    if arguments.dead_letter and arguments.redact:
        print(
            f"auditsync: warning: --redact does not reach {arguments.dead_letter}: a dead "
            "letter keeps what could not be read byte for byte, queries and their literals "
            "included; guard it like the audit log itself",
            file=sys.stderr,
        )
    window = 0
    if arguments.sort:
        window = arguments.sort_window or _SORT_WINDOW
    elif arguments.sort_window is not None:
        raise UsageError("--sort-window is the window of --sort: give --sort too")
    pipeline = Pipeline(
        sink,
        dead_letter=dead_letter,
        sort_window=window,
        redact=arguments.redact or False,
        **settings,
    )
    try:
        report = _run(pipeline, arguments)
    finally:
        pipeline.close()
    _finish(report, letters)
    if report.error is not None:
        from .sinks._postgres import redact_conninfo

        problem = redact_conninfo(str(report.error), arguments.to)
        print(f"auditsync: the sink failed: {problem}", file=sys.stderr)
        return EXIT_DELIVERY
    return EXIT_DEAD_LETTERS if report.dead_lettered else EXIT_OK


def _stats(arguments: argparse.Namespace) -> int:
    counter = StatsSink()
    letters = DeadLetterSummary()
    pipeline = Pipeline(counter, dead_letter=letters, **_settings(arguments))
    report = _run(pipeline, arguments)
    counter.print(sys.stdout, arguments.top)
    _finish(report, letters)
    return EXIT_DEAD_LETTERS if report.dead_lettered else EXIT_OK


def _changes(arguments: argparse.Namespace) -> int:
    from .changes._command import open_feed

    settings = _settings(arguments)
    # --database and --table choose what the feed follows: as event filters they would
    # drop the BEGIN and COMMIT that decide what committed.
    settings["filter"] = _filter(arguments, skip=("database", "table"))
    try:
        feed = open_feed(arguments)
    except (OSError, ValueError, sqlite3.Error) as error:
        raise UsageError(str(error)) from None
    dead_letter, letters = _dead_letters(arguments.dead_letter)
    pipeline = Pipeline(feed, dead_letter=dead_letter, **settings)
    try:
        report = _run(pipeline, arguments)
    finally:
        pipeline.close()
    _finish(report, letters)
    if report.error is not None:
        print(f"auditsync: the sink failed: {report.error}", file=sys.stderr)
        return EXIT_DELIVERY
    return EXIT_DEAD_LETTERS if report.dead_lettered else EXIT_OK


def _dead_letters(path: str | None) -> tuple[DeadLetterSink, DeadLetterSummary | None]:
    """Where dead letters go: the file ``--dead-letter`` names, else a summary on stderr."""
    if path:
        return _open_dead_letter(path), None
    summary = DeadLetterSummary()
    return summary, summary


def _finish(report: Report, letters: DeadLetterSummary | None) -> None:
    """What a run says on stderr at its end: the dead letters in brief, then its books."""
    if letters is not None:
        letters.print(sys.stderr)
    print(report.summary(), file=sys.stderr)


def _run(pipeline: Pipeline, arguments: argparse.Namespace) -> Report:
    """Feed every file through the pipeline as one stream (so ``--sort`` spans files)."""
    form = InputFormat(arguments.format)
    files = [name for given in (arguments.paths or ["-"]) for name in _expand(given)]
    return pipeline.process(_inputs(files, form))


def _inputs(files: list[str], form: InputFormat) -> Iterator[Payload | Lines | Events | Unreadable]:
    for name in files:
        try:
            raw, size = _open(name)
        except OSError as error:
            yield Unreadable(
                f"cannot open {name}: {error.strerror or error}", b"", Origin(path=name)
            )
            continue
        try:
            progress = _Progress(raw, name, size)
            yield from read_file(progress, name, form)
            progress.done()
        finally:
            if raw is not sys.stdin.buffer:
                raw.close()


def _expand(name: str) -> Iterator[str]:
    """The files a name stands for, checked readable now so a typo fails before any work.

    Paths stay as given: an event's key holds its file's path, so name a file the same
    way on every run (docs/cli.md).
    """
    if name == "-":
        if sys.stdin is None:
            raise UsageError("-: standard input is closed")
        yield name
        return
    try:
        path = Path(name)
        if not path.exists():
            raise UsageError(f"{name}: no such file or directory")
        for found in iter_paths([name], _skipping):
            with found.open("rb"):
                pass
            yield str(found)
    except OSError as error:
        raise UsageError(f"{name}: {error.strerror or error}") from None


def _skipping(path: Path, reason: str) -> None:
    print(f"auditsync: skipping {path}: {reason}", file=sys.stderr)


def _open(name: str) -> tuple[IO[bytes], int | None]:
    if name == "-":
        return sys.stdin.buffer, None
    file = open(name, "rb")  # noqa: SIM115 - closed by _inputs
    return file, os.fstat(file.fileno()).st_size


# --- settings -------------------------------------------------------------------------------


def _settings(arguments: argparse.Namespace) -> dict[str, Any]:
    return {
        "dialect": Dialect(arguments.dialect),
        "tz": _zone(arguments.tz),
        "year": arguments.year,
        "filter": _filter(arguments),
    }


def _zone(name: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"unknown time zone {name!r}") from None


#: Command-line options that name values for the filter of the same name.
_VALUE_FILTERS = ("operation", "database", "user", "exclude_user", "table", "kind")
#: Flags that switch on the filter of the same name.
_FLAG_FILTERS = ("writes_only", "failed")


def _filter(arguments: argparse.Namespace, skip: tuple[str, ...] = ()) -> filters.Predicate | None:
    parts: list[filters.Predicate] = []
    for name in _VALUE_FILTERS:
        if name in skip:
            continue
        values = getattr(arguments, name)
        if values:
            try:
                parts.append(getattr(filters, name)(*values))
            except ValueError as error:
                raise UsageError(f"--{name.replace('_', '-')}: {error}") from None
    parts.extend(getattr(filters, name)() for name in _FLAG_FILTERS if getattr(arguments, name))
    if arguments.since or arguments.until:
        parts.append(filters.between(_time(arguments.since), _time(arguments.until)))
    return functools.reduce(operator.and_, parts) if parts else None


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


#: An AWS account id, and a region name (``eu-west-1``, ``us-gov-west-1``).
_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]+")


def _lake(arguments: argparse.Namespace) -> dict[str, Any] | None:
    """The Security Lake options of ``--to ocsf-parquet:DIR``, checked; ``None`` for any
    other sink, which must not be given them."""
    given = [
        option
        for option, value in (
            ("--account-id", arguments.account_id),
            ("--region", arguments.region),
            ("--lake-source", arguments.lake_source),
        )
        if value
    ]
    if not arguments.to.startswith("ocsf-parquet:"):
        if given:
            raise UsageError(f"{', '.join(given)}: only for --to ocsf-parquet:DIR")
        return None
    if not arguments.account_id or not arguments.region:
        raise UsageError(
            "--to ocsf-parquet:DIR writes Security Lake's region=…/accountId=… partitions:"
            " give --account-id and --region"
        )
    if not _ACCOUNT_ID.fullmatch(arguments.account_id):
        raise UsageError(f"--account-id {arguments.account_id!r}: an AWS account id is 12 digits")
    if not _REGION.fullmatch(arguments.region):
        raise UsageError(f"--region {arguments.region!r}: not an AWS region name (eu-west-1)")
    sources: dict[int, str] = {}
    for text in arguments.lake_source or ():
        number, equals, location = text.partition("=")
        location = location.strip("/")
        if not (equals and number.isdigit() and location):
            raise UsageError(f"--lake-source {text!r}: write CLASS=LOCATION, e.g. 3002=ext/auth")
        sources[int(number)] = location
    return {"account_id": arguments.account_id, "region": arguments.region, "sources": sources}


def _open_sink(spec: str, lake: dict[str, Any] | None = None) -> Sink:
    """The sink ``--to`` names; whatever goes wrong is told without a password in it."""
    from .sinks._postgres import redact_conninfo

    try:
        return _sink_for(spec, lake)
    except UsageError as error:
        problem = str(error)
    except OSError as error:
        problem = f"cannot open {spec}: {error.strerror or error}"
    except sqlite3.Error as error:
        problem = f"cannot open {spec}: {error}"
    raise UsageError(redact_conninfo(problem, spec))


def _sink_for(spec: str, lake: dict[str, Any] | None) -> Sink:
    from .sinks import JsonLinesSink, SQLiteSink

    if spec == "jsonl":
        return JsonLinesSink(sys.stdout)
    kind, _, target = spec.partition(":")
    if kind == "jsonl" and target:
        return JsonLinesSink(target)
    if kind == "sqlite" and target:
        return SQLiteSink(target)
    if kind in ("ocsf", "ecs"):
        from . import ecs, ocsf
        from .sinks import FormSink

        form = ocsf.to_ocsf if kind == "ocsf" else ecs.to_ecs
        return FormSink(form, target or None)
    if kind == "parquet" and target:
        from .sinks import ParquetSink

        try:
            return ParquetSink(target)
        except ImportError as error:
            raise UsageError(str(error)) from None
    if kind == "ocsf-parquet" and target and lake is not None:
        from .sinks import OcsfParquetSink

        unknown = sorted(set(lake["sources"]) - set(OcsfParquetSink.SOURCES))
        if unknown:
            classes = ", ".join(map(str, OcsfParquetSink.SOURCES))
            raise UsageError(f"--lake-source: no OCSF class {unknown[0]} written, only {classes}")
        try:
            return OcsfParquetSink(target, **lake)
        except ImportError as error:
            raise UsageError(str(error)) from None
    if kind in ("postgresql", "postgres"):
        from .sinks import PostgresSink

        try:
            return PostgresSink(spec)
        except ImportError as error:
            raise UsageError(str(error)) from None
        except Exception as error:  # a connection refused is a usage problem here
            raise UsageError(f"cannot connect to {spec}: {error}") from None
    raise UsageError(
        f"unknown sink {spec!r}: use jsonl, jsonl:PATH, sqlite:PATH, parquet:DIR, ocsf, ecs,"
        " ocsf-parquet:DIR or postgresql://…"
    )


def _open_dead_letter(path: str) -> DeadLetterSink:
    from .sinks import JsonLinesSink

    try:
        return JsonLinesSink(path)
    except OSError as error:
        raise UsageError(f"cannot open {path}: {error.strerror or error}") from None


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, not {text!r}")
    return number


# --- sinks of the command line ----------------------------------------------------------------


class StatsSink:
    """Counts what ``auditsync stats`` shows."""

    def __init__(self) -> None:
        self.operations: Counter[str] = Counter()
        self.users: Counter[str] = Counter()
        self.databases: Counter[str] = Counter()
        self.failed_logins: Counter[str] = Counter()
        self.errors: Counter[int] = Counter()
        self.statements: Counter[str] = Counter()
        self.examples: dict[str, str] = {}
        self.first: datetime | None = None
        self.last: datetime | None = None

    def write(self, events: Sequence[AuditEvent]) -> None:
        for event in events:
            self.operations[event.operation] += 1
            self.users[event.username] += 1
            self.databases[event.database] += 1
            if event.operation == "FAILED_CONNECT":
                self.failed_logins[f"{event.username}@{event.host}"] += 1
            elif event.retcode:
                self.errors[event.retcode] += 1
            statement = event.statement
            if statement is not None:
                self.statements[statement.fingerprint] += 1
                if statement.fingerprint not in self.examples:
                    self.examples[statement.fingerprint] = _shape(event.object)
            if self.first is None or event.timestamp < self.first:
                self.first = event.timestamp
            if self.last is None or event.timestamp > self.last:
                self.last = event.timestamp

    def close(self) -> None:
        pass

    def print(self, out: TextIO, top: int) -> None:
        if self.first is not None:
            last = self.last.isoformat() if self.last else ""
            print(f"from {self.first.isoformat()} to {last}", file=out)
        tables: list[tuple[str, Counter[Any]]] = [
            ("operation", self.operations),
            ("user", self.users),
            ("database", self.databases),
            ("failed login", self.failed_logins),
            ("error code", self.errors),
        ]
        for title, counts in tables:
            print(f"\n{title:<40} {'events':>10}", file=out)
            for value, count in counts.most_common(top):
                print(f"{_escaped(str(value)) or '(none)':<40} {count:>10}", file=out)
            if not counts:
                print(f"{'(none)':<40} {0:>10}", file=out)
        print(f"\n{'statement (redacted, by fingerprint)':<70} {'events':>10}", file=out)
        for fingerprint, count in self.statements.most_common(top):
            print(f"{self.examples[fingerprint][:70]:<70} {count:>10}", file=out)


class DeadLetterSummary:
    """Dead letters on a terminal: a count per stage and kind of error, and the first few
    with their place; never their bytes. A run over the wrong file dead-letters every
    line of it, and a screen of base64 hides the one line that says so; the bytes are for
    ``--dead-letter FILE``."""

    #: The dead letters shown one by one, with their place.
    FIRST = 5
    #: The kinds of error shown with their counts; the rest are summed up in one line.
    KINDS = 10
    #: What of an error message is shown.
    LONGEST = 200

    def __init__(self) -> None:
        self.kinds: Counter[tuple[str, str]] = Counter()
        self.first: list[DeadLetter] = []

    def write(self, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            self.kinds[letter.stage, _kind(letter.error)] += 1
            if len(self.first) < self.FIRST:
                self.first.append(letter)

    def close(self) -> None:
        pass

    def print(self, out: TextIO) -> None:
        total = sum(self.kinds.values())
        if not total:
            return
        lines = [
            f"{total} dead letter{'s' if total > 1 else ''}, by stage and error"
            " (--dead-letter FILE keeps them whole, with their bytes):"
        ]
        for (stage, error), count in self.kinds.most_common(self.KINDS):
            lines.append(f"  {count:>8}  {stage}: {_clipped(error, self.LONGEST)}")
        rest = len(self.kinds) - self.KINDS
        if rest > 0:
            lines.append(f"  and {rest} other kinds of error")
        lines.append(f"the first {len(self.first)}:" if total > 1 else "where:")
        for letter in self.first:
            place = letter.origin.describe() if letter.origin else "unknown origin"
            error = _clipped(letter.error, self.LONGEST)
            lines.append(f"  {_clipped(place, self.LONGEST)}: {letter.stage}: {error}")
        for line in lines:
            print(f"auditsync: {line}", file=out)


def _kind(error: str) -> str:
    """An error without what differs from one record to the next (an offset, a quoted
    value), so that letters with the same fault count together."""
    return _QUOTED.sub("'…'", _OFFSET.sub("", error))


_OFFSET = re.compile(r" ?\(at offset \d+\)")
_QUOTED = re.compile(r"'[^']*'")


def _clipped(text: str, longest: int) -> str:
    shown = _escaped(text)
    return shown if len(shown) <= longest else shown[: longest - 1] + "…"


class _Progress:
    """Counts the bytes read from a file and draws a bar on a terminal for large inputs."""

    def __init__(self, raw: IO[bytes], name: str, size: int | None):
        self.raw = raw
        self.name = name
        self.size = size
        self.read_bytes = 0
        self.shown = 0.0
        self.enabled = bool(size and size >= _PROGRESS_MIN_BYTES and sys.stderr.isatty())

    def read(self, size: int = -1, /) -> bytes:
        data = self.raw.read(size)
        self.read_bytes += len(data)
        if self.enabled:
            now = time.monotonic()
            if now - self.shown > 0.2:
                self.shown = now
                self._draw()
        return data

    def _draw(self) -> None:
        total = self.size or 1
        share = min(1.0, self.read_bytes / total)
        bar = "#" * int(share * 30)
        print(
            f"\r{self.name[-30:]:<30} [{bar:<30}] {share:6.1%} "
            f"{self.read_bytes / 2**20:,.0f}/{total / 2**20:,.0f} MiB",
            end="",
            file=sys.stderr,
        )

    def done(self) -> None:
        if self.enabled:
            self.read_bytes = self.size or self.read_bytes
            self._draw()
            print(file=sys.stderr)


def _shape(query: str) -> str:
    """A statement's redacted, one-line form: what ``stats`` shows for a fingerprint."""
    from .sql import redact

    return _escaped(" ".join(redact(query).split()))


def _escaped(text: str) -> str:
    """``text`` on one line of a table: a newline, a control character or a byte that is
    not UTF-8 (a surrogate escape) shown as its escape, and a backslash doubled, so a
    name can neither break the table nor pass for another name."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_ESCAPES.get(char) or _escape(char) for char in text)


_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char.isprintable():
        return char
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    return repr(char)[1:-1]
