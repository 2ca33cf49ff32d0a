"""The CloudWatch Logs subscription message: the JSON envelope around the audit lines.

Tolerant of what AWS adds (``policyLevel``, ``extractedFields``, whatever comes next),
strict about what it promises: a missing or ill-typed required field is an
:class:`EnvelopeError` that names it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import orjson

from .errors import EnvelopeError

__all__ = [
    "CONTROL_MESSAGE",
    "DATA_MESSAGE",
    "LogEvent",
    "SubscriptionMessage",
    "iter_documents",
    "iter_messages",
    "parse_message",
]

DATA_MESSAGE = "DATA_MESSAGE"
CONTROL_MESSAGE = "CONTROL_MESSAGE"


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
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"not JSON: {exc.msg}", offset=exc.pos) from None
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

    A document that is JSON but not a message yields its error and reading goes on; text
    that is not JSON yields an error spanning the rest of the buffer and ends the reading,
    since nothing says where the next document would start. For callers that keep going
    past bad documents (the pipeline dead-letters them).
    """
    view = memoryview(data)
    start = 0
    end = len(view)
    while True:
        start = _skip_whitespace(data, start, end)
        if start >= end:
            return
        try:
            document, following = _next_document(view, start)
        except EnvelopeError as error:
            yield start, end, error
            return
        try:
            yield start, following, _from_mapping(document)
        except EnvelopeError as error:
            yield start, following, EnvelopeError(error.reason, field=error.field, offset=start)
        start = following


_WHITESPACE = frozenset(b" \t\r\n")


def _skip_whitespace(data: bytes, start: int, end: int) -> int:
    while start < end and data[start] in _WHITESPACE:
        start += 1
    return start


def _next_document(view: memoryview, start: int) -> tuple[Any, int]:
    """Parse the document at ``start``; return it and where the next one begins."""
    try:
        return orjson.loads(view[start:]), len(view)
    except orjson.JSONDecodeError as exc:
        stop = start + exc.pos
        if exc.pos > 0 and "after document" in exc.msg:
            try:
                return orjson.loads(view[start:stop]), stop
            except orjson.JSONDecodeError:
                pass
        raise EnvelopeError(f"not JSON: {exc.msg}", offset=stop) from None


def _from_mapping(document: Any) -> SubscriptionMessage:
    if not isinstance(document, Mapping):
        raise EnvelopeError(
            f"a subscription message is a JSON object, not {type(document).__name__}"
        )
    events = _field(document, "logEvents", list)
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
    if type(event_id) is not str:
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
