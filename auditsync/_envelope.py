"""The CloudWatch Logs subscription message: the JSON envelope around the audit lines.

Tolerant of what AWS adds (``policyLevel``, ``extractedFields``, whatever comes next),
strict about what it promises: a missing or ill-typed required field is an
:class:`EnvelopeError` that names it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import orjson

from ._errors import EnvelopeError

__all__ = [
    "CONTROL_MESSAGE",
    "DATA_MESSAGE",
    "MAX_LOG_EVENTS",
    "LogEvent",
    "SubscriptionMessage",
    "data_message_parts",
    "iter_documents",
    "iter_json",
    "iter_messages",
    "message_or_error",
    "next_document",
    "parse_message",
    "read_document",
]

DATA_MESSAGE = "DATA_MESSAGE"
CONTROL_MESSAGE = "CONTROL_MESSAGE"
#: CloudWatch Logs puts at most 10,000 log events in one batch, and so in one
#: subscription message. A message with more was not written by CloudWatch: it is
#: refused whole, before an event or a dead letter is made for any of its lines.
MAX_LOG_EVENTS = 10_000


@attrs.frozen(slots=True)
class LogEvent:
    """One CloudWatch log event: its id, ingestion time (epoch ms) and the log line."""

    id: str
    timestamp: int
    message: str


@attrs.frozen(slots=True)
class SubscriptionMessage:
    """One decoded subscription message, as a subscription filter delivers it."""

    message_type: str
    owner: str
    log_group: str
    log_stream: str
    subscription_filters: tuple[str, ...]
    log_events: tuple[LogEvent, ...]
    policy_level: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The message as CloudWatch writes it, for producing payloads in tests and tools."""
        document: dict[str, Any] = {
            "messageType": self.message_type,
            "owner": self.owner,
            "logGroup": self.log_group,
            "logStream": self.log_stream,
            "subscriptionFilters": list(self.subscription_filters),
            "logEvents": [
                {"id": event.id, "timestamp": event.timestamp, "message": event.message}
                for event in self.log_events
            ],
        }
        if self.policy_level is not None:
            document["policyLevel"] = self.policy_level
        return document

    @property
    def is_control(self) -> bool:
        """A reachability check CloudWatch sends to a new destination: skip it, never fail."""
        return self.message_type == CONTROL_MESSAGE


def parse_message(data: bytes | str | Mapping[str, Any]) -> SubscriptionMessage:
    """Read one subscription message from its decoded JSON text or an already-parsed dict."""
    if isinstance(data, Mapping):
        return _from_mapping(data)
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise _not_json(data) from None
    return _from_mapping(document)


def iter_messages(data: bytes) -> Iterator[SubscriptionMessage]:
    """Yield every message of a buffer holding one or several JSON documents.

    Firehose writes messages back to back with no delimiter (``}{``) unless a delimiter
    was configured, so documents are split where the JSON parser says the first one ends,
    never by searching for braces (which a query can hold).
    """
    for _start, _end, message in iter_documents(data):
        if isinstance(message, EnvelopeError):
            raise message
        yield message


def iter_documents(
    data: bytes,
) -> Iterator[tuple[int, int, SubscriptionMessage | EnvelopeError]]:
    """Yield ``(start, end, message or error)`` for each document of ``data``.

    A document that is JSON but not a message yields its error, and so does text that is
    not JSON, up to where a good document starts again; reading goes on after both. For
    callers that keep going past bad documents (the pipeline dead-letters them).
    """
    for start, end, value in iter_json(data):
        if not isinstance(value, EnvelopeError):
            value = message_or_error(value, start)
        yield start, end, value


def iter_json(data: bytes, *, longest: int | None = None) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(start, end, value)`` for each JSON document of ``data``, as :mod:`orjson`
    reads it; a stretch that is not JSON yields an :class:`EnvelopeError` instead.

    With ``longest``, a document that runs past that many bytes is not parsed (parsing
    makes objects several times the size of their text: 2,000,000 empty log events fit in
    0.2 MB of gzip): it is an :class:`EnvelopeError` up to where a good document starts
    again, found at the cost of parsing ``longest`` bytes of it.
    """
    end = len(data)
    start = _skip_whitespace(data, 0, end)
    if start < end and (longest is None or end - start <= longest):
        # The usual payload holds one document: one parse, no search for boundaries. (Not
        # repeated for later documents: orjson checks the whole rest of the buffer first.)
        try:
            whole = orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
        else:
            yield start, end, whole
            return
    structure = _Structure(data, longest)
    while True:
        start = _skip_whitespace(data, start, end)
        if start >= end:
            return
        if (
            longest is not None
            and end - start > longest
            and _BOUNDARY.search(data, start, start + longest + 1) is None
        ):
            # The first place the document may end lies past ``longest``: see if it does.
            stop = _past_longest(data, start, longest, structure)
            if stop is not None:
                too_long = f"a JSON document runs past {longest} bytes, longer than any record"
                yield start, stop, EnvelopeError(too_long, offset=start)
                start = stop
                continue
        found = next_document(data, start, structure=structure)
        following, value = found or (end, _not_json(data, start))
        yield start, following, value
        start = following


def message_or_error(document: Any, offset: int = 0) -> SubscriptionMessage | EnvelopeError:
    """The message a parsed JSON document holds, or the error saying why it holds none."""
    try:
        return _from_mapping(document)
    except EnvelopeError as error:
        return EnvelopeError(error.reason, field=error.field, offset=offset)


def data_message_parts(document: Any) -> tuple[str, str, list[Any]] | None:
    """``(log_group, log_stream, log_events)`` of a well-formed data message, at the cost
    of a few lookups; ``None`` for anything else (a control message, a faulty document),
    which :func:`message_or_error` then reads. The log events are not checked here: the
    line reader checks them as it goes (:func:`auditsync._auditlog.parse_log_events`)."""
    if type(document) is not dict:
        return None
    get = document.get
    group, stream, events = get("logGroup"), get("logStream"), get("logEvents")
    filters = get("subscriptionFilters")
    if (
        get("messageType") != DATA_MESSAGE
        or type(get("owner")) is not str
        or type(group) is not str
        or type(stream) is not str
        or type(events) is not list
        or len(events) > MAX_LOG_EVENTS
        or type(filters) is not list
        or not all(type(name) is str for name in filters)
    ):
        return None
    return group, stream, events


def next_document(
    data: bytes,
    start: int,
    *,
    final: bool = True,
    patience: int = 0,
    structure: _Structure | None = None,
) -> tuple[int, Any] | None:
    """Where the document at ``start`` ends, and its value — or the error for a bad one.

    A bad stretch (corrupt or cut-short JSON) ends where a good document starts again —
    after a ``}`` or at a ``{"messageType"`` — or, for the last one, where the parser says
    the junk begins; it never swallows the good documents around it. With
    ``final=False`` (a stream that has more to come) ``None`` means: read more first —
    also for a stretch of up to ``patience`` bytes that does not parse yet, since it may
    be a document not read whole, holding what looks like a restart (``}{`` in a string).
    A longer stretch with no restart in it is handed on as far as no restart can begin,
    to its last brace, so that junk is never held whole. ``structure`` carries what is
    known of ``data``'s brackets from one call to the next (:class:`_Structure`).
    """
    if structure is None or structure.data is not data:
        structure = _Structure(data)
    found = read_document(data, start, structure)
    if found is not None:
        return found[1], found[0]
    if not final and len(data) - start <= patience:
        return None
    for candidate in _RESTART.finditer(data, start + 1):
        restart = candidate.start(1) if candidate.group(1) else candidate.start(2)
        if _document_at(data, restart, structure) is not None:
            stop = data.rfind(b"}", start, restart) + 1 if candidate.group(1) else restart
            return stop, _not_json(data, start, stop)
    if not final:
        return _junk_so_far(data, start)
    return _before_junk(data, start) or (len(data), _not_json(data, start))


def _junk_so_far(data: bytes, start: int) -> tuple[int, Any]:
    """The part of a bad stretch, with more to come, where no good document can begin: up
    to its last ``{`` (one may begin there) or through its last ``}`` (one may follow)."""
    opening, closing = data.rfind(b"{", start + 1), data.rfind(b"}", start + 1)
    if opening > closing:
        stop = opening
    elif closing > start:
        stop = closing + 1
    else:
        stop = len(data)
    return stop, _not_json(data, start, stop)


def _before_junk(data: bytes, start: int) -> tuple[int, Any] | None:
    """A good document followed by junk that holds no boundary: split where the junk starts."""
    try:
        orjson.loads(memoryview(data)[start:])
    except orjson.JSONDecodeError as exc:
        if "after document" in exc.msg and exc.pos > 0:
            stop = start + _byte_offset(data, start, exc.pos)
            try:
                return stop, orjson.loads(memoryview(data)[start:stop])
            except orjson.JSONDecodeError:
                return None
    return None


#: Where one document may end and the next begin: "}" then optional whitespace then "{".
_BOUNDARY = re.compile(rb"\}[ \t\r\n]*\{")
_WHITESPACE = frozenset(b" \t\r\n")
#: Where a good document may start again after a bad stretch: after a "}" boundary, or
#: at the opening of a subscription message, which CloudWatch always begins so.
_RESTART = re.compile(rb'\}[ \t\r\n]*(\{)|(\{[ \t\r\n]*"messageType")')


def read_document(
    data: bytes, start: int = 0, structure: _Structure | None = None
) -> tuple[Any, int] | None:
    """The first JSON document at ``start`` and where it ends; ``None`` if there is none.

    The candidate ends are the ``}`` of every ``}{`` boundary, then the end of the data;
    a JSON value is complete at exactly one point, so a candidate inside a string or a
    nested object never parses. The first candidate is tried with the parser; if the
    parser ran off its end, the document goes on past a ``}{`` inside a string (a query
    can hold any number of them), and its end is found by one scan of its strings and
    brackets instead of by trying every later candidate, which cost time quadratic in
    the number of them. Either way each document is parsed at most twice, on its own.
    """
    view = memoryview(data)
    boundary = _BOUNDARY.search(data, start)
    end = boundary.start() + 1 if boundary is not None else len(data)
    try:
        return orjson.loads(view[start:end]), end
    except orjson.JSONDecodeError as error:
        # Any other fault lies in every longer candidate too.
        if boundary is None or not _ran_off_the_end(error, end - start):
            return None
    return _document_at(data, start, structure or _Structure(data))


def _past_longest(data: bytes, start: int, longest: int, structure: _Structure) -> int | None:
    """Where the document at ``start`` ends as junk if it runs past ``longest`` bytes — the
    next place a good document starts again — or ``None`` if it ends (well or badly)
    within them. Only its first ``longest`` bytes are parsed."""
    cut = start + longest
    while cut > start and data[cut] & 0xC0 == 0x80:
        cut -= 1  # not inside a UTF-8 character, which orjson would call invalid
    try:
        orjson.loads(memoryview(data)[start:cut])
    except orjson.JSONDecodeError as error:
        if not _ran_off_the_end(error, cut - start):
            return None
    else:
        return None
    for candidate in _RESTART.finditer(data, cut):
        restart = candidate.start(1) if candidate.group(1) else candidate.start(2)
        if _document_at(data, restart, structure) is not None:
            return data.rfind(b"}", start, restart) + 1 if candidate.group(1) else restart
    return len(data)


def _document_at(data: bytes, start: int, structure: _Structure) -> tuple[Any, int] | None:
    """:func:`read_document` from where the brackets say the document closes, at a cost
    charged to ``structure``: for a document with ``}{`` inside its strings, and for the
    places a bad stretch may end (trying each at its first boundary cost time quadratic
    in them where boundaries are few)."""
    closed = structure.end(start)
    if closed is None:
        return None
    if _BOUNDARY.match(data, closed - 1) is not None:
        end = closed
    elif _skip_whitespace(data, closed, len(data)) == len(data):
        end = len(data)
    else:
        return None  # junk follows the document: no candidate end parses
    too_long = structure.longest is not None and end - start > structure.longest
    if too_long or not structure.charge(end - start):
        return None
    try:
        return orjson.loads(memoryview(data)[start:end]), end
    except orjson.JSONDecodeError:
        return None


#: What a scan for the end of a JSON value looks at: strings (to the end of the data if
#: unterminated) and brackets; everything else inside a value is left to the parser.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?|[{}\[\]]', re.DOTALL)
#: How many bytes the scans and the parses of :func:`_document_at` may read in all, as a
#: multiple of the buffer's length: a bound on the work junk made to look like many
#: unfinished documents can cause. Good documents take at most twice their length.
_SCAN_BUDGET = 4


class _Structure:
    """Where the brackets of one buffer close, learnt by scanning its strings and brackets.

    Each scan notes the close of every bracket it opens, so a later question about one of
    them costs nothing; and all scans of a buffer, with the parses they lead to, read at
    most :data:`_SCAN_BUDGET` times its length. Past that, :meth:`end` answers ``None``:
    what is left is judged bad (a dead letter with its bytes, not a loss) rather than the
    time spent.
    """

    def __init__(self, data: bytes, longest: int | None = None):
        self.data = data
        #: Documents longer than this are not parsed (:func:`iter_json`).
        self.longest = longest
        self.closes: dict[int, int | None] = {}
        self.budget = _SCAN_BUDGET * len(data)

    def end(self, start: int) -> int | None:
        """One past the bracket closing the one at ``start``; ``None`` if it never closes."""
        if start in self.closes:
            return self.closes[start]
        if self.budget <= 0:
            return None
        opened: list[int] = []
        stop = len(self.data)
        for token in _TOKEN.finditer(self.data, start):
            first = token.group()[:1]
            if first == b'"':
                continue
            if first in b"{[":
                opened.append(token.start())
                continue
            if not opened:
                stop = token.end()
                break
            self.closes[opened.pop()] = token.end()
            if not opened:
                stop = token.end()
                break
        for position in opened:
            self.closes[position] = None
        self.budget -= stop - start
        return self.closes.get(start)

    def charge(self, size: int) -> bool:
        """Spend ``size`` bytes of the budget on a parse, if there are that many left."""
        if size > self.budget:
            return False
        self.budget -= size
        return True


def _ran_off_the_end(error: orjson.JSONDecodeError, size: int) -> bool:
    """Whether orjson failed for want of more data (its position counts characters)."""
    return error.msg == "unexpected end of data" or error.pos >= size


def _skip_whitespace(data: bytes, start: int, end: int) -> int:
    while start < end and data[start] in _WHITESPACE:
        start += 1
    return start


def _not_json(data: bytes | str, start: int = 0, stop: int | None = None) -> EnvelopeError:
    """The parser's complaint about ``data[start:stop]``, with a byte offset into ``data``
    (read through a view: a copy of what comes before would cost time per bad stretch)."""
    part = memoryview(data)[start:stop] if isinstance(data, bytes) else data[start:stop]
    try:
        orjson.loads(part)
    except orjson.JSONDecodeError as exc:
        return EnvelopeError(
            f"not JSON: {exc.msg}", offset=start + _byte_offset(data, start, exc.pos)
        )
    return EnvelopeError("not JSON: more than one document", offset=start)


def _byte_offset(data: bytes | str, start: int, characters: int) -> int:
    """orjson counts characters; offsets into bytes count bytes (error path only). A
    character is at most four bytes, so no more than that is decoded."""
    if isinstance(data, str):
        return characters
    text = data[start : start + 4 * characters + 4].decode("utf-8", "replace")
    return len(text[:characters].encode("utf-8"))


def _from_mapping(document: Any) -> SubscriptionMessage:
    if not isinstance(document, Mapping):
        raise EnvelopeError(
            f"a subscription message is a JSON object, not {type(document).__name__}"
        )
    events = _field(document, "logEvents", list)
    if len(events) > MAX_LOG_EVENTS:
        raise EnvelopeError(
            f"logEvents holds {len(events):,} log events; CloudWatch Logs writes at most "
            f"{MAX_LOG_EVENTS:,} in one message, so this one is refused whole",
            field="logEvents",
        )
    policy_level = document.get("policyLevel")
    return SubscriptionMessage(
        message_type=_field(document, "messageType", str),
        owner=_field(document, "owner", str),
        log_group=_field(document, "logGroup", str),
        log_stream=_field(document, "logStream", str),
        subscription_filters=tuple(_strings(document, "subscriptionFilters")),
        log_events=tuple(_log_event(item, index) for index, item in enumerate(events)),
        policy_level=policy_level if isinstance(policy_level, str) else None,
    )


def _log_event(item: Any, index: int) -> LogEvent:
    name = f"logEvents[{index}]"
    if not isinstance(item, Mapping):
        raise EnvelopeError(f"{name} is not a JSON object", field=name)
    try:
        event_id = item["id"]
        timestamp = item["timestamp"]
        message = item["message"]
    except KeyError as missing:
        field = f"{name}.{missing.args[0]}"
        raise EnvelopeError(f"required field {field} is missing", field=field) from None
    if type(event_id) is int:
        # AWS writes the id as a string of digits; moto, which tests against it, writes a
        # JSON integer. Its decimal text is the same id, losslessly (any length).
        event_id = str(event_id)
    elif type(event_id) is not str:
        raise _ill_typed(f"{name}.id", event_id, str)
    if type(timestamp) is not int:
        raise _ill_typed(f"{name}.timestamp", timestamp, int)
    if type(message) is not str:
        raise _ill_typed(f"{name}.message", message, str)
    return LogEvent(event_id, timestamp, message)


def _field(document: Mapping[str, Any], name: str, kind: type) -> Any:
    try:
        value = document[name]
    except KeyError:
        raise EnvelopeError(f"required field {name} is missing", field=name) from None
    if type(value) is not kind:
        raise _ill_typed(name, value, kind)
    return value


def _strings(document: Mapping[str, Any], name: str) -> list[str]:
    values: list[Any] = _field(document, name, list)
    for index, value in enumerate(values):
        if type(value) is not str:
            raise _ill_typed(f"{name}[{index}]", value, str)
    return values


def _ill_typed(field: str, value: Any, kind: type) -> EnvelopeError:
    return EnvelopeError(
        f"field {field} should be {kind.__name__}, not {type(value).__name__}", field=field
    )
