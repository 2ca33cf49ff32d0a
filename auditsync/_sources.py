"""Where inputs come from: Lambda events and files, turned into pipeline inputs with origins.

Lambda events are dicts; files are streamed, never read whole, so a multi-gigabyte log
goes through in constant memory. A file's shape is recognised from its first bytes:

- a raw server_audit log (any dialect, syslog included), plain or gzip;
- a CloudWatch Logs export object: ``<ISO-8601 time> <line>`` per line, gzip;
- CloudWatch subscription messages, one or many back to back — a Firehose S3 object
  (gzip members, no delimiter), or a file of decoded messages;
- a saved Lambda event: Kinesis, subscription filter or Firehose;
- what auditsync wrote itself: the JSON Lines of its events, or its SQLite database.
"""

from __future__ import annotations

import enum
import io
import itertools
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import attrs
import orjson

from ._envelope import next_document
from ._errors import EnvelopeError
from ._events import Origin
from ._gzip import GZIP_MAGIC, MemberReader
from ._payload import KEPT_OF_TOO_LONG as _KEPT
from ._payload import LONGEST_RECORD
from ._pipeline import BLOCK_BYTES, LINES_PER_BLOCK, Events, Lines, Payload, Unreadable
from ._splits import reads
from ._stored import SQLITE_MAGIC, database_events, is_event, json_events

__all__ = [
    "InputFormat",
    "detect_format",
    "firehose_inputs",
    "kinesis_inputs",
    "open_input",
    "read_file",
    "read_inputs",
    "subscription_inputs",
]

_PEEK = 64 * 1024
_CHUNK = 1 << 20
#: The most physical lines a record is rejoined from (see :meth:`_Records.continues`).
_MAX_CONTINUATIONS = 3
_WHITESPACE = frozenset(b" \t\r\n")

#: How a physical line that starts a record begins: a timestamp of some dialect, or a
#: syslog header. Anything else continues the record before it (a raw newline in a name).
_RECORD_START = re.compile(
    rb"\d{8} \d\d:\d\d:\d\d,|\d{10,16},|\d{4}-?\d\d-?\d\d[T ]\d\d:|<\d{1,3}>"
    rb"|[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d "
)
#: A CloudWatch Logs export line: the event's ingestion time, a space, the message.
_EXPORT_TIME = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z ")


class InputFormat(enum.StrEnum):
    """The shapes of file the command line reads."""

    AUTO = "auto"
    LOG = "log"
    EXPORT = "export"
    MESSAGES = "messages"
    LAMBDA = "lambda"
    #: auditsync's own output: JSON Lines of events, or an SQLite database of its sink.
    EVENTS = "events"


# --- Lambda events --------------------------------------------------------------------------


def kinesis_inputs(event: dict[str, Any]) -> list[Payload | Unreadable]:
    """One payload per Kinesis record, with its shard and sequence number.

    A record without its ``kinesis`` object is one :class:`Unreadable` (the record as
    JSON, its position in the error): one bad record must not fail the batch around it.
    """
    inputs: list[Payload | Unreadable] = []
    for index, record in enumerate(_records(event, "Records")):
        kinesis = record.get("kinesis") if isinstance(record, dict) else None
        event_id = record.get("eventID") if isinstance(record, dict) else None
        shard = event_id.partition(":")[0] if isinstance(event_id, str) else None
        if not isinstance(kinesis, dict):
            raw = orjson.dumps(record, default=repr)
            error = f"Records[{index}] of the Kinesis event has no kinesis object"
            inputs.append(Unreadable(error, raw, Origin(shard_id=shard or None)))
            continue
        data = kinesis.get("data")
        sequence = kinesis.get("sequenceNumber")
        origin = Origin(shard_id=shard or None, sequence_number=sequence)
        inputs.append(Payload(data if isinstance(data, (str, bytes)) else b"", origin))
    return inputs


def subscription_inputs(event: dict[str, Any]) -> list[Payload]:
    """The one payload of a subscription-filter event, ``{"awslogs": {"data": ...}}``."""
    awslogs = event.get("awslogs") if isinstance(event, dict) else None
    data = awslogs.get("data") if isinstance(awslogs, dict) else None
    if not isinstance(data, str):
        raise EnvelopeError("not a subscription filter event: no awslogs.data", field="awslogs")
    return [Payload(data)]


def firehose_inputs(event: dict[str, Any]) -> list[Payload]:
    """One payload per Firehose record; the record id stands in the sequence number."""
    inputs = []
    for index, record in enumerate(_records(event, "records")):
        record_id = record.get("recordId") if isinstance(record, dict) else None
        if not isinstance(record_id, str):
            raise EnvelopeError(f"records[{index}] has no recordId", field="recordId")
        data = record.get("data")
        origin = Origin(sequence_number=record_id)
        inputs.append(Payload(data if isinstance(data, (str, bytes)) else b"", origin))
    return inputs


def lambda_event_kind(event: object) -> str:
    """Which of the three Lambda events auditsync handles ``event`` is: ``"subscription"``,
    ``"firehose"`` or ``"kinesis"``; an :class:`EnvelopeError` for anything else."""
    if not isinstance(event, dict):
        raise EnvelopeError(f"a Lambda event is a JSON object, not {type(event).__name__}")
    if "awslogs" in event:
        return "subscription"
    if "records" in event or "deliveryStreamArn" in event:
        return "firehose"
    if "Records" in event:
        return "kinesis"
    raise EnvelopeError("not a Kinesis, subscription filter or Firehose event")


def lambda_inputs(event: dict[str, Any]) -> Sequence[Payload | Unreadable]:
    """The inputs of any of the three Lambda events auditsync handles."""
    kind = lambda_event_kind(event)
    if kind == "subscription":
        return subscription_inputs(event)
    if kind == "firehose":
        return firehose_inputs(event)
    return kinesis_inputs(event)


def _records(event: dict[str, Any], name: str) -> list[Any]:
    records = event.get(name) if isinstance(event, dict) else None
    if not isinstance(records, list):
        raise EnvelopeError(f"not a Lambda batch: no {name} list", field=name)
    return records


# --- files ----------------------------------------------------------------------------------


class Readable(Protocol):
    """What a file source needs of a stream: ``read``."""

    def read(self, size: int = -1, /) -> bytes: ...


def open_input(raw: Readable, layers: list[_GzipMembers] | None = None) -> io.BufferedReader:
    """The decompressed content of a file: gzip (every member, and gzip inside gzip, as
    Firehose writes when its own compression wraps CloudWatch's) or plain."""
    stream = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(_Raw(raw))
    for _ in range(3):
        if stream.peek(2)[:2] != GZIP_MAGIC:
            break
        layer = _GzipMembers(stream)
        if layers is not None:
            layers.append(layer)
        stream = io.BufferedReader(_Raw(layer), _CHUNK)
    return stream


class _GzipMembers:
    """A file's gzip members inflated as a stream, like ``gzip.GzipFile`` — except that
    damage (junk after the last member, a cut or corrupt member) ends the stream quietly
    and is kept in :attr:`failure`: the reader first gets every good byte, then the
    source says what was lost (:func:`read_file`). The rules are :class:`MemberReader`'s,
    in its tolerant mode."""

    def __init__(self, raw: Readable):
        self.raw = raw
        self.reader = MemberReader("gzip", strict=False)

    @property
    def failure(self) -> str | None:
        """What ended the stream early, with its offset; ``None`` if nothing did."""
        failure = self.reader.failure
        return None if failure is None else str(failure)

    def read(self, size: int = -1, /) -> bytes:
        reader = self.reader
        want = size if size > 0 else _CHUNK
        while True:
            data = reader.read(want)
            if data or reader.finished:
                return data
            more = self.raw.read(_CHUNK)
            if more:
                reader.feed(more)
            else:
                reader.feed_eof()


class _Raw(io.RawIOBase):
    """Any binary stream as a raw stream, so that a BufferedReader can sit on it and peek."""

    def __init__(self, inner: Readable):
        self.inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def detect_format(head: bytes) -> InputFormat:
    """The shape of a (decompressed) file from its first bytes.

    JSON is told apart later, from its first document (see :func:`read_inputs`): a
    Lambda event holds a batch key, a subscription message a ``messageType``.
    """
    if head.startswith(SQLITE_MAGIC):
        return InputFormat.EVENTS
    start = head.lstrip()
    if start[:1] in (b"{", b"["):
        return InputFormat.MESSAGES
    stamp = _EXPORT_TIME.match(start)
    if stamp is not None and _RECORD_START.match(start, stamp.end()):
        return InputFormat.EXPORT
    return InputFormat.LOG


def read_inputs(
    stream: IO[bytes], path: str, form: InputFormat = InputFormat.AUTO
) -> Iterator[Payload | Lines | Events | Unreadable]:
    """Stream a decompressed file as pipeline inputs, each with its origin.

    A file that cannot be read to its end (a cut or corrupt gzip stream, an I/O error)
    yields what it could read, then one :class:`Unreadable` saying why and where.
    """
    return _read_inputs(stream, path, form, lambda: False)


def _read_inputs(
    stream: IO[bytes], path: str, form: InputFormat, damaged: Callable[[], bool]
) -> Iterator[Payload | Lines | Events | Unreadable]:
    """:func:`read_inputs`, told by ``damaged`` whether a layer below ended the stream
    early (a gzip member cut short ends it quietly)."""
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(_Raw(stream))
    try:
        head = buffered.peek(_PEEK)[:_PEEK]
        if form is InputFormat.AUTO:
            form = detect_format(head)
        if form is InputFormat.EVENTS and head.startswith(SQLITE_MAGIC):
            yield from database_events(path)
        elif form is InputFormat.EVENTS:
            yield from json_events(enumerate(_documents(buffered), 1), path)
        elif form is InputFormat.LOG:
            yield from _log_lines(buffered, path, export=False, damaged=damaged)
        elif form is InputFormat.EXPORT:
            yield from _log_lines(buffered, path, export=True, damaged=damaged)
        else:
            yield from _json_inputs(buffered, path, lambda_events=form is InputFormat.LAMBDA)
    except (OSError, EOFError, zlib.error) as error:
        yield Unreadable(f"cannot read {path} to its end: {error}", b"", Origin(path=path))


def read_file(
    raw: Readable, path: str, form: InputFormat = InputFormat.AUTO
) -> Iterator[Payload | Lines | Events | Unreadable]:
    """A file as it lies on disk, gzip or not: :func:`open_input`, then :func:`read_inputs`,
    then one :class:`Unreadable` for any damage the gzip layers met on the way."""
    layers: list[_GzipMembers] = []
    try:
        stream = open_input(raw, layers)
    except OSError as error:
        yield Unreadable(f"cannot read {path}: {error}", b"", Origin(path=path))
        return
    yield from _read_inputs(stream, path, form, lambda: any(layer.failure for layer in layers))
    for layer in layers:
        if layer.failure is not None:
            yield Unreadable(f"{path}: {layer.failure}", b"", Origin(path=path))


def _json_inputs(
    stream: IO[bytes], path: str, *, lambda_events: bool
) -> Iterator[Payload | Events | Unreadable]:
    """Documents of a JSON file: subscription messages, or Lambda events to take apart."""
    documents = enumerate(_documents(stream), 1)
    for number, document in documents:
        if len(document) > LONGEST_RECORD:
            yield _too_long(path, "document", number, document, len(document))
            continue
        if number == 1 and not lambda_events and is_event(document):
            yield from json_events(itertools.chain([(number, document)], documents), path)
            return
        if number == 1 and not lambda_events:
            lambda_events = _is_lambda_event(document)
        if not lambda_events:
            yield Payload(document, Origin(path=path, line_number=number))
            continue
        try:
            inputs = lambda_inputs(orjson.loads(document))
        except (orjson.JSONDecodeError, EnvelopeError):
            yield Payload(document, Origin(path=path, line_number=number))
            continue
        for item in inputs:
            where = _at(item.origin or Origin(), path, number)
            if isinstance(item, Unreadable):
                yield Unreadable(item.error, item.raw, where)
            else:
                yield Payload(item.data, where)


def _is_lambda_event(document: bytes) -> bool:
    try:
        value = orjson.loads(document)
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(value, dict)
        and "messageType" not in value
        and ("Records" in value or "records" in value or "awslogs" in value)
    )


def _at(origin: Origin, path: str, document: int) -> Origin:
    """A Lambda record's origin, in the file (and document) it was saved in."""
    return Origin(
        origin.log_group,
        origin.log_stream,
        origin.event_id,
        origin.shard_id,
        origin.sequence_number,
        path,
        document,
    )


def _log_lines(
    stream: io.BufferedIOBase,
    path: str,
    *,
    export: bool,
    chunk: int = _CHUNK,
    damaged: Callable[[], bool] = lambda: False,
) -> Iterator[Lines | Unreadable]:
    """Records of a log, in blocks of :data:`LINES_PER_BLOCK`, read a chunk at a time:
    up to ``chunk`` bytes, or what a pipe holds now if less, so that lines written to a
    pipe go on without waiting for a full chunk.

    A chunk whose lines all start a record, none empty, none ending in CR — nearly every
    chunk of a real log — is cut into records by ``bytes.split`` alone; any other chunk
    goes line by line through :class:`_Records`, which rejoins what a raw newline split.
    Three kinds of line are no record and go on as an :class:`Unreadable` instead: a line
    longer than :data:`LONGEST_RECORD` (only its first bytes are kept, and its length), a
    last line the input failed in the middle of (a read error, or ``damaged`` below), and
    a last line without its newline — the server writes whole lines, so one without its
    end is incomplete input (a writer mid-line, a copy cut short), which could otherwise
    read as a query the server truncated.
    """
    origin = Origin(path=path)
    records = _Records(export)
    number = 1  # the number of the first physical line not yet taken
    tail = _Tail()  # a line longer than a chunk, read so far
    failure: Exception | None = None
    chunk = min(chunk, LONGEST_RECORD)
    while True:
        try:
            data = stream.read1(chunk)
        except (OSError, EOFError, zlib.error) as error:
            # What was read before the failure goes on; read_inputs then reports it.
            failure = error
            break
        if not data:
            break
        end = data.rfind(b"\n")
        if end < 0:
            tail.add(data)
            continue
        if tail.length:
            first = data.find(b"\n")
            tail.add(data[:first])
            if tail.too_long:
                yield from records.flush(origin)
                yield _too_long(path, "line", number, tail.head, tail.length)
                number += 1
                body = data[first + 1 : end] if first < end else None
            else:
                body = b"".join((*tail.pieces, data[first:end]))
            tail = _Tail()
        else:
            body = data[:end]
        if end + 1 < len(data):
            tail.add(data[end + 1 :])
        if body is not None:
            number += records.take(body, number)
            yield from records.blocks(origin)
    yield from records.flush(origin)
    where = Origin(path=path, line_number=number)
    if tail.too_long:
        yield _too_long(path, "line", number, tail.head, tail.length)
    elif failure is not None or damaged():
        if tail.length:
            yield Unreadable(f"{path}: line {number} ends where the input fails", tail.head, where)
    elif tail.head.rstrip(b"\r"):
        yield Unreadable(
            f"{path}: line {number} has no newline at its end: incomplete, not a record",
            tail.head,
            where,
        )
    if failure is not None:
        raise failure


@attrs.define
class _Tail:
    """The start of a line whose newline has not been read yet: held whole up to
    :data:`LONGEST_RECORD` bytes; past that, only its first bytes, and its length."""

    pieces: list[bytes] = attrs.field(factory=list)
    length: int = 0

    def add(self, data: bytes) -> None:
        self.length += len(data)
        if self.length <= LONGEST_RECORD:
            self.pieces.append(data)
        elif len(self.pieces) != 1 or len(self.pieces[0]) < _KEPT:
            self.pieces = [b"".join((*self.pieces, data[:_KEPT]))[:_KEPT]]

    @property
    def too_long(self) -> bool:
        return self.length > LONGEST_RECORD

    @property
    def head(self) -> bytes:
        """The line so far; only its first bytes once it is too long."""
        return b"".join(self.pieces)


def _too_long(path: str, what: str, number: int, data: bytes, length: int) -> Unreadable:
    return Unreadable(
        f"{path}: {what} {number} is {length} bytes long, longer than any record "
        f"({LONGEST_RECORD} bytes); its first {min(length, _KEPT)} bytes are kept",
        data[:_KEPT],
        Origin(path=path, line_number=number),
    )


#: A newline not followed by the start of a record: where a chunk needs the slow path.
_LINE_NOT_A_RECORD = re.compile(rb"\n(?!" + _RECORD_START.pattern + rb")")
#: The CloudWatch export time at the start of each line.
_EXPORT_LINE_TIME = re.compile(rb"(?m)^" + _EXPORT_TIME.pattern)


@attrs.define
class _Records:
    """Physical lines in, records out, each with the number of its first physical line.

    A physical line that does not start a record may continue the one before it (a raw
    newline in a name splits a record): in a raw log, a line that does not start like a
    record; in a CloudWatch export, a line without the export's timestamp. Whether it
    does is one rule for both, :meth:`continues`. The last record is held back until the
    next line shows it is complete. A line that starts like a record is never joined
    here: whether it may still belong to the one before it is the pipeline's judgement
    (:mod:`auditsync._splits`), made on every path alike.
    """

    export: bool
    texts: list[str | bytes] = attrs.field(factory=list)
    numbers: list[int | None] = attrs.field(factory=list)
    pending: bytes | None = None
    pending_number: int = 0
    joined: int = 0
    #: At least the bytes of ``texts`` and ``pending``: every body taken adds its length,
    #: and the exact sum is taken only when this passes :data:`BLOCK_BYTES`, not for
    #: every chunk (it would cost a call a line).
    held: int = 0

    def take(self, body: bytes, first: int) -> int:
        """Take the lines of ``body`` (no final newline), the first numbered ``first``;
        return how many physical lines that was."""
        self.held += len(body)
        lines = body.split(b"\n")
        records = self._one_record_a_line(body, lines)
        if records is None:
            self.take_lines(lines, first)
            return len(lines)
        # Every line starts a record: so the pending one is complete, and so is each line
        # but the last, which the next line may yet continue.
        if self.pending is not None:
            self.texts.append(self.pending)
            self.numbers.append(self.pending_number)
        last = len(records) - 1
        self.texts += records[:last]
        self.numbers += range(first, first + last)
        self.pending, self.pending_number, self.joined = records[last], first + last, 0
        return len(lines)

    def _one_record_a_line(self, body: bytes, lines: list[bytes]) -> list[bytes] | None:
        """The records of ``body`` where each line starts one — none empty or ending in
        CR, each with its time in an export — checked in a few scans of the whole body;
        otherwise None."""
        if b"\r" in body or b"\n\n" in body or body.startswith(b"\n"):
            return None
        if self.export:
            messages, stamps = _EXPORT_LINE_TIME.subn(b"", body)
            return messages.split(b"\n") if stamps == len(lines) else None
        if _RECORD_START.match(body) is None or _LINE_NOT_A_RECORD.search(body):
            return None
        return lines

    def take_lines(self, lines: list[bytes], first: int) -> None:
        """Take physical lines one at a time: the reference for what :meth:`take` does."""
        export = self.export
        for number, line in enumerate(lines, first):
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                continue
            if export:
                stamp = _EXPORT_TIME.match(line)
                starts = stamp is not None
                if stamp is not None:
                    line = line[stamp.end() :]
            else:
                starts = _RECORD_START.match(line) is not None
            if not starts and self.pending is not None and self.continues(self.pending, line):
                self.pending += b"\n" + line
                self.joined += 1
                continue
            if self.pending is not None:
                self.texts.append(self.pending)
                self.numbers.append(self.pending_number)
            self.pending, self.pending_number, self.joined = line, number, 0

    def continues(self, pending: bytes, line: bytes) -> bool:
        """Whether ``line``, which does not start a record, continues ``pending``.

        Only when ``pending`` does not read on its own, so that a stray line of
        junk stays a dead letter of its own and never spoils a good record (a table
        event ends in a comma, so junk glued to it would read as its database); at most
        three times, so that a run of junk stays separate lines (a name may hold more
        newlines than that: such a record is left as dead letters); and never past
        :data:`LONGEST_RECORD`.
        """
        return (
            self.joined < _MAX_CONTINUATIONS
            and len(pending) + len(line) < LONGEST_RECORD
            and reads(pending) is None
        )

    def finish(self) -> None:
        """The end of the input: the last record is complete."""
        if self.pending is not None:
            self.texts.append(self.pending)
            self.numbers.append(self.pending_number)
            self.pending = None

    def flush(self, origin: Origin) -> Iterator[Lines]:
        """Every record taken so far, the pending one as complete: a line that is no
        record (:class:`Unreadable`) comes next, so nothing may continue it."""
        self.finish()
        return self.blocks(origin, final=True)

    def blocks(self, origin: Origin, *, final: bool = False) -> Iterator[Lines]:
        """Every full block of :data:`LINES_PER_BLOCK` records taken so far; all of them
        once they hold :data:`BLOCK_BYTES` (long records are not held a thousand at a
        time), or with ``final`` (after :meth:`finish`)."""
        size = LINES_PER_BLOCK
        if self.held >= BLOCK_BYTES and not final:
            self.held = sum(map(len, self.texts)) + len(self.pending or b"")
        whole = final or self.held >= BLOCK_BYTES
        end = len(self.texts) if whole else len(self.texts) // size * size
        for start in range(0, end, size):
            yield Lines(
                self.texts[start : start + size], origin, self.numbers[start : start + size]
            )
        del self.texts[:end], self.numbers[:end]
        if whole:
            self.held = len(self.pending or b"")


def _documents(stream: IO[bytes]) -> Iterator[bytes]:
    """The JSON documents of a stream, one after another, in bounded memory.

    Reads a window at a time and cuts documents off its front (:func:`next_document`,
    which also cuts a bad stretch off at the next good document, once the stretch is
    longer than any real document or the stream has ended); a document longer than the
    window makes the next read twice as large, so even a huge one costs linear time.
    """
    buffer = b""
    start = 0
    want = _CHUNK
    exhausted = False
    while True:
        while start < len(buffer) and buffer[start] in _WHITESPACE:
            start += 1
        if start < len(buffer):
            found = next_document(buffer, start, final=exhausted, patience=LONGEST_RECORD)
            if found is not None:
                end = found[0]
                yield buffer[start:end].rstrip()
                start = end
                want = _CHUNK
                continue
        elif exhausted:
            return
        more = stream.read(want)
        exhausted = not more
        if start < len(buffer) and not exhausted:
            want = min(2 * want, LONGEST_RECORD)
        buffer = buffer[start:] + more
        start = 0


def iter_paths(
    paths: Iterable[str], skipped: Callable[[Path, str], None] | None = None
) -> Iterator[Path]:
    """Files named, and the files below directories named, in a stable order.

    Below a directory, what is neither a regular file nor a directory (a broken symbolic
    link, a FIFO, a socket, a device) is not read: a FIFO would block, a device never
    ends. Nor is a file whose name says it is code, configuration or documentation
    (:data:`NOT_AUDIT_DATA`): read as a log, each of its lines would be a dead letter,
    burying what the directory holds. Each one goes to ``skipped`` with the reason, so
    that it is not passed over in silence; a file named on its own is always read.
    """
    for name in paths:
        path = Path(name)
        if not path.is_dir():
            yield path
            continue
        for child in sorted(path.rglob("*")):
            if child.is_file() and child.suffix.lower() not in NOT_AUDIT_DATA:
                yield child
            elif skipped is not None and not child.is_dir():
                skipped(child, _not_a_file(child))


#: File name suffixes of what sits beside logs and is never audit data: the code, the
#: configuration and the notes of a project (``examples/`` holds all three).
NOT_AUDIT_DATA = frozenset(
    {".py", ".pyc", ".pyi", ".c", ".h", ".so", ".sh", ".yaml", ".yml", ".toml", ".cfg", ".ini"}
    | {".md", ".rst", ".html"}
)


def _not_a_file(path: Path) -> str:
    """Why ``path``, found below a directory, is not read."""
    if path.is_file():
        return (
            f"a {path.suffix.lower()} file, not audit data by its name"
            " (name it on its own to read it)"
        )
    if path.is_symlink() and not path.exists():
        return "a broken symbolic link"
    if path.is_fifo():
        return "a FIFO, not a regular file"
    if path.is_socket():
        return "a socket, not a regular file"
    if path.is_block_device() or path.is_char_device():
        return "a device, not a regular file"
    return "not a regular file"
