"""Decode → messages → lines → events → filter → sink, keeping the books.

The pipeline is where "lose nothing" is enforced. Every record that comes in ends in
exactly one column of the :class:`Report`: delivered, filtered, control, dead-lettered,
or failed (the sink failed; a retry can fix it). Records that can never succeed become
:class:`DeadLetter` s with their raw bytes and origin; they are never retried, so one
poison record cannot block a Kinesis shard.
"""

from __future__ import annotations

import base64
import copy
import functools
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any, overload

import attrs

from ._auditlog import Dialect, format_line, parse_line, parse_lines, parse_log_events
from ._envelope import data_message_parts, iter_json, message_or_error
from ._errors import AuditSyncError, EnvelopeError, LineError, PayloadError
from ._events import AuditEvent, DeadLetter, Origin, exact_bytes
from ._payload import DEFAULT_MAX_SIZE, KEPT_OF_TOO_LONG, LONGEST_RECORD, decode_payload
from ._splits import Seams
from .sinks._base import DeadLetterSink, Refused, Sink

__all__ = ["Events", "Line", "Lines", "Payload", "Pipeline", "Report", "Unreadable"]

logger = logging.getLogger("auditsync")

#: A report keeps the first dead letters for the caller to look at, as long as they fit
#: in this many bytes; the count is exact and the dead-letter sink gets them all, but a
#: report's memory stays bounded however large the letters are (a count alone did not:
#: a thousand 256 KiB lines held 256 MiB for the whole run).
KEPT_DEAD_LETTER_BYTES = 4 << 20
#: A batch whose input — lines, documents, dead letters' raw bytes — reaches this many
#: bytes is delivered before it is full: a thousand long statements, or large dead
#: letters, are not held at once. Counted per block and per document, not per event.
_BATCH_BYTES = 8 << 20
#: What a kept letter costs beyond its raw bytes, error and refused query: its objects.
_LETTER_OVERHEAD = 1024
#: Without a dead-letter sink, a log line shows this much of the raw bytes.
_LOGGED_RAW_BYTES = 4096

Filter = Callable[[AuditEvent], bool]
Transform = Callable[[AuditEvent], AuditEvent]


@attrs.frozen(slots=True)
class Payload:
    """CloudWatch Logs subscription data: base64 and/or gzip of one or more messages."""

    data: bytes | str
    origin: Origin | None = None


@attrs.frozen(slots=True)
class Line:
    """One raw server_audit line, as read from a log file."""

    text: str | bytes
    origin: Origin | None = None


@attrs.frozen(slots=True)
class Lines:
    """Raw server_audit lines of one source, taken together: the fast way to feed many.

    Each line is a record; its origin is ``origin`` with its number from ``numbers``
    (default: ``origin`` as it is). A file source yields its lines in blocks of these.
    """

    texts: list[str | bytes]
    origin: Origin | None = None
    numbers: list[int | None] | None = None


@attrs.frozen(slots=True)
class Events:
    """Events read back from what auditsync wrote (its SQLite database, its JSON Lines):
    each one a record, filtered and delivered as if its line had just been read, so that
    ``stats`` and ``decode`` take their own output as input."""

    events: list[AuditEvent]


@attrs.frozen(slots=True)
class Unreadable:
    """Part of a source that could not be read at all (a cut gzip file, an I/O error).

    A source hands it on instead of raising, so the books show it: one record, one dead
    letter at stage ``"source"``.
    """

    error: str
    raw: bytes = b""
    origin: Origin | None = None


@attrs.define
class Report:
    """What one call did. ``records == delivered + filtered + control + dead_lettered + failed``.

    A record is a log line (a CloudWatch log event, or a line of a file); a payload or
    JSON document that could not be read at all counts as one record, as does a control
    message. ``dead_letters`` keeps the first dead letters, as many as fit in
    :data:`KEPT_DEAD_LETTER_BYTES` (:meth:`keep`). ``failed_input`` is the index of the
    first input not delivered because the sink failed, and ``error`` what it raised;
    inputs after it were not processed.
    """

    records: int = 0
    events: int = 0
    delivered: int = 0
    filtered: int = 0
    control: int = 0
    dead_lettered: int = 0
    failed: int = 0
    #: Of ``delivered``, what an idempotent sink said it stored anew, and what it held
    #: already (:class:`~auditsync.sinks.Stored`); both 0 for a sink that does not say.
    new: int = 0
    present: int = 0
    dead_letters: list[DeadLetter] = attrs.field(factory=list)
    failed_input: int | None = None
    error: BaseException | None = None
    elapsed: float = 0.0
    _kept_bytes: int = attrs.field(default=0, init=False, repr=False, eq=False)

    @property
    def balanced(self) -> bool:
        """Whether every record is accounted for exactly once."""
        return self.records == (
            self.delivered + self.filtered + self.control + self.dead_lettered + self.failed
        )

    def add(self, other: Report) -> None:
        """Fold another report into this one: the books of several calls as one."""
        for name in ("records", "events", "delivered", "new", "present", "filtered", "control"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.dead_lettered += other.dead_lettered
        self.failed += other.failed
        self.keep(other.dead_letters)
        self.elapsed += other.elapsed
        if self.error is None and other.error is not None:
            self.error = other.error

    def keep(self, letters: Sequence[DeadLetter]) -> None:
        """Add ``letters`` to :attr:`dead_letters` while they fit in
        :data:`KEPT_DEAD_LETTER_BYTES`; from the first that does not, keep no more."""
        for letter in letters:
            if self._kept_bytes >= KEPT_DEAD_LETTER_BYTES:
                return
            cost = _LETTER_OVERHEAD + len(letter.raw) + len(letter.error)
            if letter.event is not None:
                cost += len(letter.event.object)
            if self._kept_bytes + cost > KEPT_DEAD_LETTER_BYTES:
                self._kept_bytes = KEPT_DEAD_LETTER_BYTES
                return
            self._kept_bytes += cost
            self.dead_letters.append(letter)

    def summary(self) -> str:
        """One line for logs and the command line."""
        rate = self.events / self.elapsed if self.elapsed > 0 else 0.0
        stored = (
            f" ({self.new} new, {self.present} already present)" if self.new or self.present else ""
        )
        return (
            f"{self.records} records, {self.events} events: {self.delivered} delivered{stored}, "
            f"{self.filtered} filtered, {self.control} control, "
            f"{self.dead_lettered} dead-lettered, {self.failed} failed "
            f"in {self.elapsed:.2f} s ({rate:,.0f} events/s)"
        )


#: A held event: time, query id, arrival order (ties), input index, the event.
_Held = tuple[datetime, int, int, int, AuditEvent]
_ORDER = itertools.count()


@attrs.define
class _Batch:
    """Events and dead letters waiting for one flush, and the first input they came from."""

    events: list[AuditEvent] = attrs.field(factory=list)
    letters: list[DeadLetter] = attrs.field(factory=list)
    first_input: int | None = None
    #: With a sort window: how many of ``events`` were released from it already.
    released: int = 0
    #: The bytes of the input taken into it, about: see :data:`_BATCH_BYTES`.
    size: int = 0
    #: With a sort window: the events held back for ordering, across batches.
    held: list[_Held] | None = None

    def letter(self, letter: DeadLetter) -> None:
        self.letters.append(letter)
        self.size += len(letter.raw)

    def reset(self) -> None:
        """Empty, for the next batch."""
        self.events, self.letters, self.first_input, self.released = [], [], None, 0
        self.size = 0


class Pipeline:
    """Turn payloads and lines into events and deliver them to ``sink``.

    ``filter`` keeps the events it returns true for; ``transform`` rewrites each kept
    event (redaction, for one); ``dead_letter`` takes what can never be delivered —
    without one, dead letters are logged at ERROR with the same detail. Events go to
    the sink in batches of up to ``batch_size``; a batch the sink rejected is reported
    from its first input, so a retry from there loses nothing. ``sort_window`` > 0 holds
    that many events back and releases them in time order (Aurora writes its lines out of
    order); whatever is held is released at the end of each :meth:`process` call. It
    orders by time, then query id — which counts statement *starts*, not commits — so do
    not put it in front of a :class:`~auditsync.replay.ReplaySink` (docs/replay.md).
    ``redact=True`` (or a mode of :func:`auditsync.sql.redact`: ``"literals"``,
    ``"passwords"``) rewrites every kept query before the transform and the sink see it:
    literals and secrets never leave the pipeline.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        filter: Filter | None = None,
        dialect: Dialect | str = Dialect.AUTO,
        tz: tzinfo = UTC,
        dead_letter: DeadLetterSink | None = None,
        transform: Transform | None = None,
        batch_size: int = 1000,
        max_payload_size: int = DEFAULT_MAX_SIZE,
        year: int | None = None,
        sort_window: int = 0,
        redact: bool | str = False,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.sink = sink
        self.filter = filter
        self.dialect = Dialect(dialect)
        self.tz = tz
        self.dead_letter = dead_letter
        self.transform = transform
        self.batch_size = batch_size
        self.max_payload_size = max_payload_size
        self.year = year
        self.sort_window = sort_window
        self.redact = redact
        self._redaction = _redaction(redact)
        #: The last line of each stream, to judge the next one with (docs/security.md).
        self._seams = Seams()

    def process(self, inputs: Iterable[Payload | Line | Lines | Events | Unreadable]) -> Report:
        """Run every input through; stop at the first batch the sink fails to take.

        A batch goes to the sink as soon as it is full, also in the middle of a payload:
        one payload may hold many messages, and its events are not all held at once.
        """
        report = Report()
        started = time.perf_counter()
        held: list[_Held] | None = [] if self.sort_window else None
        batch = _Batch(held=held)
        delivering = True
        for index, item in enumerate(inputs):
            for _ in self._take(item, batch, report):
                if batch.first_input is None:
                    batch.first_input = index
                if held is not None:
                    self._hold(batch, held, index, self.sort_window)
                items = len(batch.events) + len(batch.letters)
                # A failed login's lines wait for its DISCONNECT (docs/security.md): the
                # batch waits with them, up to twice its bounds.
                bounds = 2 if self._seams.holding() else 1
                if items >= self.batch_size * bounds or batch.size >= _BATCH_BYTES * bounds:
                    delivering = self._flush(batch, report)
                    if not delivering:
                        break
                    batch.reset()  # in place: the input being taken holds it
            if not delivering:
                break
        while held and delivering:
            # Release what is held a batch at a time, not all at once.
            room = max(1, self.batch_size - len(batch.events) - len(batch.letters))
            self._hold(batch, held, -1, max(0, len(held) - room))
            if held:
                delivering = self._flush(batch, report)
                batch.reset()
        if delivering:
            self._flush(batch, report)
        if held:
            # The sink failed with events still held back for ordering: not delivered.
            report.failed += len(held)
            earliest = min(entry[3] for entry in held)
            failed = report.failed_input
            report.failed_input = earliest if failed is None else min(earliest, failed)
        report.elapsed = time.perf_counter() - started
        return report

    def _take(
        self, item: Payload | Line | Lines | Events | Unreadable, batch: _Batch, report: Report
    ) -> Iterator[None]:
        """Take one input into ``batch``, pausing wherever the batch may be delivered."""
        if isinstance(item, Lines):
            self._take_lines(item, batch, report)
        elif isinstance(item, Line):
            self._take_line(item, batch, report)
        elif isinstance(item, Events):
            self._take_read(item.events, [], batch, report)
        elif isinstance(item, Payload):
            yield from self._take_payload(item, batch, report)
            return
        else:
            report.records += 1
            batch.letter(DeadLetter("source", item.error, item.raw, item.origin))
        yield

    @staticmethod
    def _hold(batch: _Batch, held: list[_Held], index: int, window: int) -> None:
        """Move the batch's new events into the ordering heap; release all but ``window``.

        Released events keep the index of the input they came from, so a failed batch is
        still reported from the earliest input it holds.
        """
        for event in batch.events[batch.released :]:
            heapq.heappush(held, (event.timestamp, event.query_id, next(_ORDER), index, event))
        del batch.events[batch.released :]
        while len(held) > window:
            *_, source, event = heapq.heappop(held)
            batch.events.append(event)
            first = batch.first_input
            batch.first_input = source if first is None else min(first, source)
        batch.released = len(batch.events)

    def process_payload(self, data: bytes | str, origin: Origin | None = None) -> Report:
        """One subscription payload (a Kinesis record's data, ``awslogs.data``, an S3 object)."""
        return self.process([Payload(data, origin)])

    def process_lines(self, lines: Iterable[str | bytes], origin: Origin | None = None) -> Report:
        """Raw server_audit lines, numbered from 1 within ``origin.path``."""
        return self.process(_blocks(lines, origin))

    def with_sink(self, sink: Sink) -> Pipeline:
        """The same settings delivering to another sink (the Firehose adapter collects)."""
        twin = copy.copy(self)
        twin.sink = sink
        return twin

    def close(self) -> None:
        """Close the sink and the dead-letter sink."""
        self.sink.close()
        if self.dead_letter is not None:
            self.dead_letter.close()

    # --- taking inputs apart ----------------------------------------------------------------

    def _take_lines(self, item: Lines, batch: _Batch, report: Report) -> None:
        batch.size += sum(map(len, item.texts))
        events, failures = parse_lines(
            item.texts, item.origin, item.numbers, dialect=self.dialect, tz=self.tz, year=self.year
        )
        stream = item.origin.path if item.origin is not None else None
        kept = self._judge(stream, item.texts, events, [text for text, _, _ in failures], batch)
        report.records += len(events) - len(kept)
        self._take_read(kept, failures, batch, report)

    def _take_line(self, item: Line, batch: _Batch, report: Report) -> None:
        self._take_text(item.text, item.origin, batch, report)

    def _take_text(
        self, text: str | bytes, origin: Origin | None, batch: _Batch, report: Report
    ) -> None:
        """One audit line, from a file or a CloudWatch log event: an event or a dead letter."""
        report.records += 1
        batch.size += len(text)
        stream = _stream(origin)
        try:
            event = parse_line(
                text, dialect=self.dialect, tz=self.tz, origin=origin, year=self.year
            )
        except LineError as error:
            self._judge(stream, [text], [], [text], batch)
            batch.letter(_letter("line", error, _raw(text), origin))
            return
        if self._judge(stream, [text], [event], [], batch):
            self._keep(event, batch, report)

    def _take_payload(self, item: Payload, batch: _Batch, report: Report) -> Iterator[None]:
        """A payload's messages, pausing after each (so at most one message, 10,000 log
        events, beyond a full batch), where the batch may be delivered."""
        base = item.origin or Origin()
        try:
            decoded = decode_payload(item.data, max_size=self.max_payload_size)
        except PayloadError as error:
            report.records += 1
            batch.letter(_letter("payload", error, _raw(item.data), item.origin))
            yield
            return
        seen = False
        for start, end, document in iter_json(decoded, longest=LONGEST_RECORD):
            if seen:
                yield
            seen = True
            batch.size += end - start
            if not isinstance(document, EnvelopeError) and self._take_data_message(
                document, base, batch, report
            ):
                continue
            message = (
                document
                if isinstance(document, EnvelopeError)
                else message_or_error(document, start)
            )
            if isinstance(message, EnvelopeError):
                report.records += 1
                batch.letter(_envelope_letter(message, decoded, start, end, base))
                continue
            if message.is_control:
                report.records += 1
                report.control += 1
                continue
            group, stream = message.log_group, message.log_stream
            shard, sequence, path, number = (
                base.shard_id,
                base.sequence_number,
                base.path,
                base.line_number,
            )
            for log_event in message.log_events:
                origin = Origin(group, stream, log_event.id, shard, sequence, path, number)
                self._take_text(log_event.message, origin, batch, report)
        if not seen:
            report.records += 1
            empty = PayloadError("payload holds no subscription message")
            batch.letter(_letter("payload", empty, _raw(item.data), item.origin))
        yield

    def _take_data_message(
        self, document: object, base: Origin, batch: _Batch, report: Report
    ) -> bool:
        """A well-formed data message, all its lines at once; False leaves it to the
        message-by-message path above, which also names what is wrong with a document."""
        parts = data_message_parts(document)
        if parts is None:
            return False
        group, stream, items = parts
        origin = Origin(
            group, stream, None, base.shard_id, base.sequence_number, base.path, base.line_number
        )
        read = parse_log_events(items, origin, dialect=self.dialect, tz=self.tz, year=self.year)
        if read is None:
            return False
        events, failures = read
        failed = [text for text, _, _ in failures]
        kept = self._judge(_stream(origin), _Messages(items), events, failed, batch)
        report.records += len(events) - len(kept)
        self._take_read(kept, failures, batch, report)
        return True

    def _take_read(
        self,
        events: list[AuditEvent],
        failures: Sequence[tuple[str | bytes, Origin, LineError]],
        batch: _Batch,
        report: Report,
    ) -> None:
        """Lines read together: each a record, its event kept or its failure dead-lettered."""
        report.records += len(events) + len(failures)
        for text, origin, error in failures:
            batch.letter(_letter("line", error, _raw(text), origin))
        if self.filter is None and self._redaction is None and self.transform is None:
            report.events += len(events)
            batch.events.extend(events)
            return
        for event in events:
            self._keep(event, batch, report)

    def _judge(
        self,
        stream: object,
        texts: Sequence[str | bytes],
        events: list[AuditEvent],
        failed: Sequence[str | bytes],
        batch: _Batch,
    ) -> list[AuditEvent]:
        """The events of neighbouring lines of one stream without the suspect ones, which
        become dead letters at stage ``"suspect"``: a raw newline in a name may have made
        them (:meth:`auditsync._splits.Seams.judge`); ``failed`` are the texts that did not
        read. The caller counts them as records."""
        found = self._seams.judge(stream, texts, events, failed)
        if not found:
            return events
        dropped = {id(event) for _, event in found}
        kept = [event for event in events if id(event) not in dropped]
        here = {id(event) for event in events}
        for text, event in found:
            if id(event) in here:
                batch.letter(DeadLetter("suspect", _SUSPECT, _raw(text), event.origin))
            else:
                self._recall(batch, text, event)
        return kept

    def _recall(self, batch: _Batch, text: str | bytes, event: AuditEvent) -> None:
        """Take a suspect line read earlier back out of the batch, as a dead letter. Past
        recall once its batch was delivered (docs/security.md): then say so, with its
        place, for whoever acts on what was delivered (unless the filter dropped it)."""
        held = batch.held
        if _take_back(batch.events, event) or (held and _take_back_held(held, event)):
            batch.letter(DeadLetter("suspect", _SUSPECT, _raw(text), event.origin))
        elif self.filter is None or self.filter(event):
            logger.error(
                "a record delivered earlier is suspect, past recall: %s (%s %s, connection"
                " %d, query %d; docs/security.md)",
                event.origin.describe() if event.origin else "unknown origin",
                event.operation,
                event.database,
                event.connection_id,
                event.query_id,
            )

    def _keep(self, event: AuditEvent, batch: _Batch, report: Report) -> None:
        report.events += 1
        if self.filter is not None and not self.filter(event):
            report.filtered += 1
            return
        if self._redaction is not None and event.operation == "QUERY":
            event = attrs.evolve(event, object=self._redaction(event.object))
        if self.transform is not None:
            event = self.transform(event)
        batch.events.append(event)

    # --- delivering -------------------------------------------------------------------------

    def _flush(self, batch: _Batch, report: Report) -> bool:
        """Deliver one batch; on a sink failure count it failed and return False.

        The batch may have grown past ``batch_size`` by the last input or message taken;
        each sink is still handed at most ``batch_size`` items in one call.
        """
        self._seams.settle()
        letters = batch.letters
        refused = new = present = 0
        size = self.batch_size
        try:
            for begin in range(0, len(batch.events), size):
                try:
                    stored = self.sink.write(batch.events[begin : begin + size])
                except Refused as refusal:
                    stored = refusal.stored
                    refused += len(refusal.events)
                    reasons = refusal.reasons
                    letters = letters + [
                        _refused(event, reasons.get(event.key, refusal.reason))
                        for event in refusal.events
                    ]
                if stored is not None:
                    new, present = new + stored.new, present + stored.present
            # Should this fail after the sink took the events, the whole batch counts
            # as failed and its events come again: harmless, sinks are idempotent.
            for begin in range(0, len(letters), size):
                self._dead_letter(letters[begin : begin + size])
        except Exception as error:  # any sink failure is retryable
            report.failed += len(batch.events) + len(batch.letters)
            report.failed_input = batch.first_input
            report.error = error
            logger.warning(
                "sink failed on a batch of %d events from input %s: %r",
                len(batch.events),
                batch.first_input,
                error,
            )
            return False
        report.delivered += len(batch.events) - refused
        report.new += new
        report.present += present
        report.dead_lettered += len(letters)
        report.keep(letters)
        return True

    def _dead_letter(self, letters: list[DeadLetter]) -> None:
        """To the dead-letter sink, or else to the log. A pipeline that redacts logs no
        raw bytes: a line that could not be read may still hold a query's literals, and
        logs travel further than a dead-letter store."""
        if self.dead_letter is not None:
            self.dead_letter.write(letters)
            return
        for letter in letters:
            shown = letter.raw[:_LOGGED_RAW_BYTES]
            more = len(letter.raw) - len(shown)
            raw = (
                f"{len(letter.raw)} raw bytes withheld (the pipeline redacts)"
                if self._redaction is not None
                else f"raw base64 {base64.b64encode(shown).decode('ascii')}"
                + (f" (and {more} more bytes)" if more else "")
            )
            logger.error(
                "dead letter (%s): %s; from %s; %s",
                letter.stage,
                letter.error,
                letter.origin.describe() if letter.origin else "unknown origin",
                raw,
            )


#: Lines per :class:`Lines` block when the pipeline or a source makes the blocks.
LINES_PER_BLOCK = 1000
#: A block ends early once its lines hold this many bytes (characters, for text): a block
#: is read at once, with a copy of each line (and of each failure's), so a thousand long
#: lines held together cost gigabytes.
BLOCK_BYTES = 8 << 20


def _blocks(lines: Iterable[str | bytes], origin: Origin | None) -> Iterator[Lines]:
    """``lines`` numbered from 1, in blocks of :data:`LINES_PER_BLOCK` or
    :data:`BLOCK_BYTES`, whichever comes first."""
    texts: list[str | bytes] = []
    size = 0
    first = 1
    for text in lines:
        texts.append(text)
        size += len(text)
        if len(texts) == LINES_PER_BLOCK or size >= BLOCK_BYTES:
            yield Lines(texts, origin, list(range(first, first + len(texts))))
            first += len(texts)
            texts, size = [], 0
    if texts:
        yield Lines(texts, origin, list(range(first, first + len(texts))))


#: Why a suspect record is a dead letter, not an event.
_SUSPECT = (
    "not delivered: with its neighbouring line this record can be one record cut by a raw"
    " newline in a user, database or table name, and whoever chose the name chose this"
    " text (docs/security.md, forged records)"
)


def _take_back(events: list[AuditEvent], event: AuditEvent) -> bool:
    """Take ``event`` out of a batch not yet delivered, if it is there (from the end, where
    the lines before a block's first lie)."""
    for index in range(len(events) - 1, -1, -1):
        if _same(events[index], event):
            del events[index]
            return True
    return False


def _take_back_held(held: list[_Held], event: AuditEvent) -> bool:
    """Take ``event`` out of the sort window's heap, if it is there."""
    for index, entry in enumerate(held):
        if _same(entry[-1], event):
            held[index] = held[-1]
            held.pop()
            heapq.heapify(held)
            return True
    return False


def _same(kept: AuditEvent, event: AuditEvent) -> bool:
    """Whether ``kept``, as the batch holds it, is ``event`` as read: itself, or what the
    redaction or the transform made of it (they keep its origin)."""
    return kept is event or (
        event.origin is not None
        and kept.origin is event.origin
        and kept.timestamp == event.timestamp
        and kept.connection_id == event.connection_id
        and kept.query_id == event.query_id
    )


def _stream(origin: Origin | None) -> object:
    """Which stream a line belongs to, for judging it with the line before it: a
    CloudWatch log stream, or a file."""
    if origin is None:
        return None
    if origin.log_stream is not None:
        return (origin.log_group, origin.log_stream)
    return origin.path


class _Messages(Sequence[str]):
    """The messages of a data message's log events, read when asked (the common path
    needs only the last one)."""

    def __init__(self, items: list[Any]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            return [item["message"] for item in self.items[index]]
        message: str = self.items[index]["message"]
        return message


def _raw(data: str | bytes) -> bytes:
    return data if isinstance(data, bytes) else exact_bytes(data)


def _letter(stage: str, error: AuditSyncError, raw: bytes, origin: Origin | None) -> DeadLetter:
    return DeadLetter(stage, str(error), raw, origin)


def _envelope_letter(
    error: EnvelopeError, decoded: bytes, start: int, end: int, origin: Origin
) -> DeadLetter:
    """A stretch of a payload that is no message; past :data:`LONGEST_RECORD` bytes only
    its first bytes are kept, with its length (as a file's too-long record is)."""
    if end - start <= LONGEST_RECORD:
        return _letter("envelope", error, decoded[start:end], origin)
    kept = decoded[start : start + KEPT_OF_TOO_LONG]
    reason = f"{error}; {end - start} bytes, the first {len(kept)} kept"
    return DeadLetter("envelope", reason, kept, origin)


def _refused(event: AuditEvent, reason: str) -> DeadLetter:
    return DeadLetter("sink", reason, exact_bytes(format_line(event)), event.origin, event)


def _redaction(redact: bool | str) -> Callable[[str], str] | None:
    """The function that redacts a query for ``Pipeline(redact=...)``, or ``None``."""
    if redact is False:
        return None
    from . import sql

    mode = "literals" if redact is True else redact
    if mode not in sql.REDACTION_MODES:
        raise ValueError(f"redact must be True, False or one of {sql.REDACTION_MODES}")
    return functools.partial(sql.redact, mode=mode)
