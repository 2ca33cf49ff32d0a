"""Small timeit experiments behind the profile findings in docs/performance.md.

    python benchmarks/micro.py

Each experiment times the way auditsync does a thing today against a cheaper way, on the
same input, in this process. The "today" variants that are private to auditsync are
copied here (as of commit 0bbbc09), so this file keeps running while the library
changes; the last experiment, ``ceiling``, is a lean end-to-end decoder with no
validation at all, to show what pure Python can reach on the standard batch.
None of this is library code.
"""

from __future__ import annotations

import argparse
import base64
import gc
import sys
import time
import timeit
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baseline
import workloads

from auditsync import AuditEvent, Dialect, Origin, Pipeline, parse_line, parse_message
from auditsync.aws import handle_kinesis_event
from auditsync.sinks import event_to_dict, to_json


def timed(label: str, function: Callable[[], object], *, per: int = 1) -> float:
    """Best of 11 timeit repeats, in nanoseconds per call (per ``per`` items)."""
    timer = timeit.Timer(function)
    number, _ = timer.autorange()
    best = min(timer.repeat(repeat=11, number=number)) / number / per
    print(f"    {label:<70} {best * 1e9:>10,.0f} ns")
    return best


# --- value classes ----------------------------------------------------------------------------


#: The comparison classes mirror AuditEvent's fields, whatever they are today.
EVENT_FIELDS = tuple(field.name for field in attrs.fields(AuditEvent))


def slots_class(name: str, fields: Sequence[str]) -> type:
    """A ``__slots__`` class whose ``__init__`` takes ``fields`` positionally, plainly."""
    body = "".join(f"    self.{field} = {field}\n" for field in fields) or "    pass\n"
    namespace: dict[str, Any] = {}
    exec(f"def __init__(self, {', '.join(fields)}):\n{body}", namespace)
    return type(name, (), {"__slots__": tuple(fields), "__init__": namespace["__init__"]})


def _refuse_set(self: object, name: str, value: object) -> None:
    raise AttributeError(f"{type(self).__name__} is immutable: cannot set {name}")


def _refuse_delete(self: object, name: str) -> None:
    raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name}")


#: Not frozen: attrs, slotted; and a plain __slots__ class.
MutableAttrs = attrs.make_class("MutableAttrs", list(EVENT_FIELDS), slots=True)
PlainSlots = slots_class("PlainSlots", EVENT_FIELDS)
#: Immutable: every setattr raises. Instances are made as an unsealed twin (same slots,
#: same layout, plain __init__) and then have their class switched.
Sealed = type(
    "Sealed",
    (PlainSlots,),
    {"__slots__": (), "__setattr__": _refuse_set, "__delattr__": _refuse_delete},
)
_Unsealed = type("_Unsealed", (PlainSlots,), {"__slots__": ()})


def sealed(*args: Any) -> Any:
    made: Any = _Unsealed(*args)
    made.__class__ = Sealed
    return made


def value_classes() -> None:
    event = parse_line(workloads.mixed_lines(1, Dialect.MARIADB)[0])
    args = tuple(getattr(event, field.name) for field in attrs.fields(AuditEvent))
    timed("an empty lambda call (included in every figure)", lambda: None)
    print(f"  AuditEvent construction, {len(args)} positional arguments:")
    timed("attrs.frozen(slots=True)  — AuditEvent today", lambda: AuditEvent(*args))
    timed("attrs.define(slots=True), not frozen", lambda: MutableAttrs(*args))
    timed("__slots__ + plain __init__, not frozen", lambda: PlainSlots(*args))
    timed("__slots__ + plain __init__, then __class__ = sealed twin", lambda: sealed(*args))
    made = sealed(*args)
    try:
        made.serverhost = "x"
    except AttributeError:
        pass
    else:  # pragma: no cover - the experiment is wrong if this happens
        raise AssertionError("Sealed is not immutable")
    origin = ("/aws/rds/instance/db/audit", "db.audit.log", "3789" * 14, "shardId-0", "4959" * 14)
    print("  Origin construction, 7 positional arguments:")
    timed("attrs.frozen(slots=True)  — Origin today", lambda: Origin(*origin, None, None))
    timed(
        "attrs.frozen(slots=True)  — Origin today, keywords",
        lambda: Origin(
            log_group=origin[0],
            log_stream=origin[1],
            event_id=origin[2],
            shard_id=origin[3],
            sequence_number=origin[4],
        ),
    )
    timed("for scale: a 7-tuple", lambda: (*origin, None, None))


# --- the envelope -----------------------------------------------------------------------------


def envelope() -> None:
    event = workloads.standard_event()
    documents = [
        orjson.loads(zlib.decompress(base64.b64decode(r["kinesis"]["data"]), 47))
        for r in event["Records"]
    ]
    count = sum(len(d["logEvents"]) for d in documents)
    raw = [orjson.dumps(d) for d in documents]
    print(f"  the standard batch's {len(documents)} decoded messages, per log event:")
    timed("orjson.loads of the message JSON", lambda: [orjson.loads(r) for r in raw], per=count)
    timed(
        "parse_message(dict): SubscriptionMessage + a LogEvent per event",
        lambda: [parse_message(d) for d in documents],
        per=count,
    )
    timed(
        "walking the dicts: id and message, type-checked",
        lambda: [
            [
                (item["id"], item["message"])
                for item in d["logEvents"]
                if type(item["id"]) is str and type(item["message"]) is str
            ]
            for d in documents
        ],
        per=count,
    )


# --- timestamps and call overhead -------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamps_and_calls() -> None:
    stamp = "1710408413274702"
    print("  Aurora epoch-µs timestamp → aware datetime:")
    timed(
        "_EPOCH + timedelta(microseconds=int(s))  — today",
        lambda: _EPOCH + timedelta(microseconds=int(stamp)),
    )
    timed(
        "_EPOCH + timedelta(0, 0, int(s))  — positional",
        lambda: _EPOCH + timedelta(0, 0, int(stamp)),
    )
    assert _EPOCH + timedelta(0, 0, int(stamp)) == _EPOCH + timedelta(microseconds=int(stamp))
    table = {d: d for d in Dialect} | {d.value: d for d in Dialect}
    forms = frozenset({("date", Dialect.MARIADB), ("epoch", Dialect.AURORA)})
    print(
        "  Dialect members (hashing one is str's hash; looking one up on the class is not cheap):"
    )
    auto, mariadb = Dialect.AUTO, Dialect.MARIADB
    timed("dict.get(auto)  (hashing the member)", lambda: table.get(auto))
    timed("dict.get('auto')", lambda: table.get("auto"))
    timed("('date', mariadb) in frozenset of tuples", lambda: ("date", mariadb) in forms)
    timed("Dialect.AUTO  (a member looked up on the Enum class)", lambda: Dialect.AUTO)
    timed("auto  (the member kept in a variable)", lambda: auto)
    line = workloads.mixed_lines(3, Dialect.MARIADB)[2]
    print(f"  parse_line on a {len(line)}-character READ line:")
    timed("parse_line(line)", lambda: parse_line(line))
    timed(
        "parse_line(line, dialect=, tz=, origin=, year=)  — as the Pipeline calls it",
        lambda: parse_line(line, dialect=Dialect.AUTO, tz=UTC, origin=None, year=None),
    )
    timed("line.split(',', 7)  — for scale", lambda: line.split(",", 7))


# --- the quoted query -------------------------------------------------------------------------


def _unescaped(text: str, position: int) -> bool:
    run = position
    while run > 0 and text[run - 1] == "\\":
        run -= 1
    return (position - run) % 2 == 0


def opening_quote_loop(text: str, close: int) -> int:
    """auditsync._auditlog._opening_quote as of 0bbbc09: a Python step per escaped quote."""
    position = close
    while True:
        position = text.rfind("'", 0, position)
        if position == -1:
            return -1
        if _unescaped(text, position):
            return position if position > 0 and text[position - 1] == "," else -1


def opening_quote_masked(text: str, close: int) -> int:
    """Mask escape pairs with same-length filler, left to right, then one rfind."""
    masked = text.replace("\\\\", "\0\0").replace("\\'", "\0\0") if "\\" in text else text
    position = masked.rfind("'", 0, close)
    return position if position > 0 and text[position - 1] == "," else -1


_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    "\n": "\\n",
    "\t": "\\t",
    "\r": "\\r",
    "\b": "\\b",
    "\f": "\\f",
}
_UNESCAPES = tuple((escaped, char) for char, escaped in _ESCAPES.items() if char != "\\")


def unescape_replace(text: str) -> str:
    """auditsync._auditlog._unescape as of 0bbbc09."""
    if "\\" not in text:
        return text
    pieces = text.split("\\\\")
    for index, piece in enumerate(pieces):
        if "\\" in piece:
            for escaped, char in _UNESCAPES:
                piece = piece.replace(escaped, char)
            pieces[index] = piece
    return "\\".join(pieces)


def unescape_codec(text: str) -> str:
    """Every backslash the plugin writes starts one of \\\\ \\' \\n \\t \\r \\b \\f, all of
    which are Python escapes too; other characters pass through ``backslashreplace``."""
    if "\\" not in text:
        return text
    return text.encode("latin-1", "backslashreplace").decode("unicode_escape")


def quoted_query() -> None:
    small = workloads.mixed_lines(4, Dialect.MARIADB)[3]
    big = workloads.statement_line(4096)
    for name, line in (("a standard QUERY line", small), ("a 4 KB INSERT line", big)):
        quoted = line.split(",", 7)[7].rpartition(",")[0]
        close = len(quoted) - 1
        opening = opening_quote_loop(quoted, close)
        assert opening == opening_quote_masked(quoted, close)
        inner = quoted[opening + 1 : close]
        assert unescape_replace(inner) == unescape_codec(inner)
        print(f"  {name} ({len(line):,} characters, {quoted.count(chr(39)):,} quotes):")
        timed(
            "opening quote: rfind + backslash count per quote  — today",
            partial(opening_quote_loop, quoted, close),
        )
        timed(
            "opening quote: mask escape pairs, one rfind",
            partial(opening_quote_masked, quoted, close),
        )
        timed(
            "unescape: split on \\\\, six replaces per piece  — today",
            partial(unescape_replace, inner),
        )
        timed("unescape: latin-1/backslashreplace → unicode_escape", partial(unescape_codec, inner))
        timed("parse_line(line) whole, for scale", partial(parse_line, line))


# --- garbage collection and the ceiling -------------------------------------------------------


class CountingSink:
    def __init__(self) -> None:
        self.count = 0

    def write(self, events: Sequence[object]) -> None:
        self.count += len(events)

    def close(self) -> None:
        pass


_KNOWN_CONNECTION = frozenset(
    {"CONNECT", "FAILED_CONNECT", "DISCONNECT", "CHANGEUSER", "PROXY_CONNECT"}
)
_dates: dict[str, datetime] = {}


def _date(stamp: str) -> datetime:
    moment = _dates.get(stamp)
    if moment is None:
        moment = _dates[stamp] = datetime(
            int(stamp[:4]),
            int(stamp[4:6]),
            int(stamp[6:8]),
            int(stamp[9:11]),
            int(stamp[12:14]),
            int(stamp[15:17]),
            tzinfo=UTC,
        )
    return moment


def lean_line(text: str, origin: object) -> Any:
    """The common shapes only, no validation: an estimate of the least a line can cost."""
    stamp, serverhost, username, host, connection, query, operation, tail = text.split(",", 7)
    if len(stamp) == 16:
        moment, dialect = _EPOCH + timedelta(0, 0, int(stamp)), Dialect.AURORA
    else:
        moment, dialect = _date(stamp), Dialect.MARIADB
    head, _, status = tail.rpartition(",")
    if operation == "QUERY":
        close = len(head) - 1
        opening = opening_quote_masked(head, close)
        database, obj = head[: opening - 1], unescape_codec(head[opening + 1 : close])
    else:
        database, _, obj = head.rpartition(",")
    retcode = int(status) if status else None
    return sealed(
        moment,
        serverhost,
        username,
        host,
        int(connection),
        int(query),
        operation,
        database,
        obj,
        retcode,
        None,
        False,
        dialect,
        origin,
        *_LEAN_PADDING,
    )


#: Fields after ``origin`` (``prefix`` and whatever came since) are None on this path.
_LEAN_PADDING = (None,) * (len(EVENT_FIELDS) - EVENT_FIELDS.index("origin") - 1)


def lean_handler(event: dict[str, Any], sink: CountingSink) -> None:
    batch: list[Any] = []
    for record in event["Records"]:
        kinesis = record["kinesis"]
        document = orjson.loads(zlib.decompress(base64.b64decode(kinesis["data"]), 47))
        if document["messageType"] != "DATA_MESSAGE":
            continue
        group, stream = document["logGroup"], document["logStream"]
        shard, sequence = record["eventID"].partition(":")[0], kinesis["sequenceNumber"]
        for item in document["logEvents"]:
            origin = (group, stream, item["id"], shard, sequence)  # stands in for a sealed Origin
            batch.append(lean_line(item["message"], origin))
            if len(batch) >= 1000:
                sink.write(batch)
                batch = []
    if batch:
        sink.write(batch)


def best_of(function: Callable[[], object], rounds: int = 7) -> float:
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def ceiling() -> None:
    event = workloads.standard_event()
    pipeline = Pipeline(CountingSink())
    check = CountingSink()
    lean_handler(event, check)
    assert check.count == 10_000
    contenders: list[tuple[str, Callable[[], object]]] = [
        ("by hand (Powertools + regex)", lambda: baseline.by_hand(event)),
        ("decode-only floor", lambda: baseline.decode_only(event)),
        ("auditsync today", lambda: handle_kinesis_event(event, pipeline)),
        (
            "lean prototype (no validation, sealed events)",
            lambda: lean_handler(event, CountingSink()),
        ),
    ]
    best = {name: float("inf") for name, _ in contenders}
    for round_ in range(7):
        for offset in range(len(contenders)):
            name, function = contenders[(round_ + offset) % len(contenders)]
            best[name] = min(best[name], best_of(function, 1))
    hand, floor = best["by hand (Powertools + regex)"], best["decode-only floor"]
    print("  the standard batch, 10,000 events, interleaved, best of 7:")
    for name, seconds in best.items():
        print(
            f"    {name:<48} {seconds * 1e3:7.2f} ms   vs by hand {hand / seconds:5.2f}x   "
            f"floor/this {seconds / floor:5.2f}"
        )
    gc.disable()
    try:
        off = best_of(lambda: handle_kinesis_event(event, pipeline))
    finally:
        gc.enable()
    on = best_of(lambda: handle_kinesis_event(event, pipeline))
    print(
        f"    auditsync today, gc on {on * 1e3:.2f} ms, gc off {off * 1e3:.2f} ms "
        f"({(on - off) / on:.0%} in the collector)"
    )


def json_lines() -> None:
    line = workloads.mixed_lines(4, Dialect.MARIADB)[3]
    event = parse_line(line, origin=Origin(path="/var/log/mysql/server_audit.log", line_number=7))
    document = event_to_dict(event)
    print(f"  one file event (QUERY, {len(line)} characters) to a JSON line, as the CLI writes it:")
    timed("to_json(event)  — the whole line", lambda: to_json(event))
    timed("event_to_dict(event)", lambda: event_to_dict(event))
    timed("event.key  (no CloudWatch id: a blake2b digest)", lambda: event.key)
    timed("event.timestamp.isoformat()", lambda: event.timestamp.isoformat())
    timed("orjson.dumps(the dict)", lambda: orjson.dumps(document))


def _bounded_reads(stream: Any, limit: int = 256 << 20) -> bytes:
    """A GzipFile read a MiB at a time up to ``limit``: how it would refuse a bomb."""
    chunks, size = [], 0
    while chunk := stream.read(1 << 20):
        size += len(chunk)
        if size > limit:
            raise ValueError("decompression bomb")
        chunks.append(chunk)
    return b"".join(chunks)


def _drain(stream: Any) -> int:
    size = 0
    while chunk := stream.read1(1 << 20):
        size += len(chunk)
    return size


def gzip_readers() -> None:
    """auditsync's gzip member reader against ``GzipFile`` (the standard library's and
    ISA-L's), on whole payloads and on a file streamed, before choosing one."""
    import gzip
    import io

    from auditsync import decode_payload
    from auditsync._sources import open_input

    event = workloads.standard_event()
    payloads = [base64.b64decode(record["kinesis"]["data"]) for record in event["Records"]]
    print(f"  the standard batch's {len(payloads)} gzip payloads, whole, per payload:")
    timed("decode_payload (auditsync's reader)", lambda: [*map(decode_payload, payloads)], per=200)
    timed(
        "gzip.GzipFile, read a MiB at a time",
        lambda: [_bounded_reads(gzip.GzipFile(fileobj=io.BytesIO(p))) for p in payloads],
        per=200,
    )
    timed(
        "gzip.decompress (no bound: a bomb is inflated whole)",
        lambda: [*map(gzip.decompress, payloads)],
        per=200,
    )
    block = workloads.log_block(2000)
    data = block * (20 * 2**20 // len(block))
    members = b"".join(gzip.compress(data[at : at + 2**20], 6) for at in range(0, len(data), 2**20))
    print(f"  a {len(data) >> 20} MiB log in 1 MiB gzip members, streamed, per MiB:")
    per = len(data) >> 20
    timed(
        "open_input (auditsync's reader)", lambda: _drain(open_input(io.BytesIO(members))), per=per
    )
    timed("gzip.GzipFile", lambda: _drain(gzip.GzipFile(fileobj=io.BytesIO(members))), per=per)
    try:
        from isal import igzip
    except ImportError:
        print("    (isal is not installed: no ISA-L GzipFile)")
        return
    timed(
        "isal igzip.GzipFile", lambda: _drain(igzip.GzipFile(fileobj=io.BytesIO(members))), per=per
    )
    print("  the payloads again:")
    timed(
        "isal igzip.GzipFile, read a MiB at a time",
        lambda: [_bounded_reads(igzip.GzipFile(fileobj=io.BytesIO(p))) for p in payloads],
        per=200,
    )


EXPERIMENTS: dict[str, Callable[[], None]] = {
    "classes": value_classes,
    "envelope": envelope,
    "calls": timestamps_and_calls,
    "query": quoted_query,
    "json": json_lines,
    "ceiling": ceiling,
    "gzip": gzip_readers,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="timeit experiments behind docs/performance.md")
    parser.add_argument("only", nargs="*", help=f"experiments to run: {', '.join(EXPERIMENTS)}")
    arguments = parser.parse_args(argv)
    unknown = set(arguments.only) - set(EXPERIMENTS)
    if unknown:
        parser.error(f"unknown experiment {', '.join(sorted(unknown))}")
    for name, experiment in EXPERIMENTS.items():
        if not arguments.only or name in arguments.only:
            print(f"[{name}]")
            experiment()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
