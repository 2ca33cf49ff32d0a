"""The JSON form of events and dead letters, and :class:`JsonLinesSink`, which writes it.

:func:`event_to_dict` and :func:`dead_letter_to_dict` are the one JSON representation of
auditsync's values: the Firehose adapter and the CLI call them too, so a line written by
any of them reads the same. The format (docs/sinks.md) is stable:

* every member is always present, ``null`` where the value is ``None``;
* ``timestamp`` is ISO 8601 in UTC with microseconds and a ``Z``:
  ``2024-01-31T14:02:07.000000Z``, fixed width, so text order is time order;
* a string that is not valid Unicode (bytes the server wrote that are not UTF-8, kept by
  the parser as ``surrogateescape`` characters) is written as readable text with U+FFFD
  in place of each bad byte, and a sibling member ``<name>_base64`` holds its exact bytes.
  The sibling exists only then, so its presence says the text is lossy.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, Any, cast

import orjson

from .._errors import AuditSyncError
from .._events import AuditEvent, DeadLetter, Dialect, Origin, _isoformat, exact_bytes
from .._native import event_json as _c_event_json
from .._native import json_lines as _c_json_lines

__all__ = [
    "JsonLinesSink",
    "dead_letter_from_dict",
    "dead_letter_to_dict",
    "event_from_dict",
    "event_to_dict",
    "to_json",
]

_EVENT_TEXT = (
    "key",
    "serverhost",
    "username",
    "host",
    "operation",
    "database",
    "object",
    "connection_type",
    "prefix",
    "suffix",
)
_ORIGIN_TEXT = ("log_group", "log_stream", "event_id", "shard_id", "sequence_number", "path")


# --- text that may not be Unicode -----------------------------------------------------------


def is_unicode(text: str) -> bool:
    """Whether ``text`` holds no surrogates, so UTF-8 (and JSON, and SQL) can carry it."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _make_unicode(document: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """Apply the ``<name>_base64`` convention to the text members ``names``."""
    for name in names:
        value = document[name]
        if value is not None and not is_unicode(value):
            raw = exact_bytes(value)
            document[name] = raw.decode("utf-8", "replace")
            document[name + "_base64"] = _b64(raw)
    return document


def _text(document: Mapping[str, Any], name: str, *, optional: bool = False) -> Any:
    """Read a text member back, exact bytes first where the writer kept them."""
    raw = document.get(name + "_base64")
    if raw is not None:
        return base64.b64decode(raw, validate=True).decode("utf-8", "surrogateescape")
    return _typed(document, name, str, optional=optional)


def _typed(document: Mapping[str, Any], name: str, kind: type, *, optional: bool = False) -> Any:
    """``document[name]`` if it is a ``kind`` (or null, if ``optional``): attrs won't check."""
    value = document[name]
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise TypeError(f"member {name!r} should be {kind.__name__}, not {type(value).__name__}")
    return value


# --- events -------------------------------------------------------------------------------


#: The text of recent UTC timestamps: every line of a second has the same one.
_ISO_TIMESTAMPS: dict[datetime, str] = {}
_ISO_TIMESTAMPS_SIZE = 1024


def iso_timestamp(moment: datetime) -> str:
    """``2024-01-31T14:02:07.000000Z``: UTC, microseconds, fixed width (a naive time is UTC)."""
    # The parser's timestamps are plain datetimes in UTC: cached. Not other zones, whose
    # datetimes compare equal to the UTC instant they name, nor subclasses.
    if moment.tzinfo is UTC and type(moment) is datetime:
        text = _ISO_TIMESTAMPS.get(moment)
        if text is None:
            # From isoformat(), which the event's key has just cached: it ends in UTC's
            # "+00:00" and leaves out microseconds that are zero.
            text = _isoformat(moment)[:-6] + ("Z" if moment.microsecond else ".000000Z")
            if len(_ISO_TIMESTAMPS) >= _ISO_TIMESTAMPS_SIZE:
                _ISO_TIMESTAMPS.clear()
            _ISO_TIMESTAMPS[moment] = text
        return text
    if moment.tzinfo is not None and moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def origin_to_dict(origin: Origin | None) -> dict[str, Any] | None:
    """The origin as a JSON object, or ``None``."""
    if origin is None:
        return None
    log_group = origin.log_group
    log_stream = origin.log_stream
    event_id = origin.event_id
    shard_id = origin.shard_id
    sequence_number = origin.sequence_number
    path = origin.path
    document = {
        "log_group": log_group,
        "log_stream": log_stream,
        "event_id": event_id,
        "shard_id": shard_id,
        "sequence_number": sequence_number,
        "path": path,
        "line_number": origin.line_number,
    }
    # One check of all the text, as in event_to_dict.
    text = (
        f"{log_group or ''}{log_stream or ''}{event_id or ''}{shard_id or ''}"
        f"{sequence_number or ''}{path or ''}"
    )
    if is_unicode(text):
        return document
    return _make_unicode(document, _ORIGIN_TEXT)


def event_to_dict(event: AuditEvent) -> dict[str, Any]:
    """The event as a JSON-ready dict of plain values; :func:`event_from_dict` reverses it."""
    key = event.key
    serverhost = event.serverhost
    username = event.username
    host = event.host
    operation = event.operation
    database = event.database
    text = event.object
    connection_type = event.connection_type
    prefix = event.prefix
    suffix = event.suffix
    document = {
        "key": key,
        "timestamp": iso_timestamp(event.timestamp),
        "serverhost": serverhost,
        "username": username,
        "host": host,
        "connection_id": event.connection_id,
        "query_id": event.query_id,
        "operation": operation,
        "database": database,
        "object": text,
        "retcode": event.retcode,
        "connection_type": connection_type,
        "truncated": event.truncated,
        "dialect": event.dialect._value_,  # the plain str; .value is a slow descriptor
        "prefix": prefix,
        "suffix": suffix,
        "origin": origin_to_dict(event.origin),
    }
    # One check of all the text at once: almost every event is plain Unicode. A
    # surrogate never pairs up across a join, so one in any member still shows here.
    # (``or ''``: formatting None is slow, and "None" would add nothing to check.)
    whole = (
        f"{key}{serverhost}{username}{host}{operation}{database}{text}"
        f"{connection_type or ''}{prefix or ''}{suffix or ''}"
    )
    if is_unicode(whole):
        return document
    return _make_unicode(document, _EVENT_TEXT)


def _origin_from_dict(document: Mapping[str, Any] | None) -> Origin | None:
    if document is None:
        return None
    text = {name: _text(document, name, optional=True) for name in _ORIGIN_TEXT}
    return Origin(**text, line_number=_typed(document, "line_number", int, optional=True))


def event_from_dict(document: Mapping[str, Any]) -> AuditEvent:
    """The event :func:`event_to_dict` wrote, byte for byte; ``key`` is recomputed.

    Raises :class:`ValueError` naming what is missing or malformed.
    """
    try:
        timestamp = datetime.fromisoformat(document["timestamp"])
        return AuditEvent(
            timestamp=timestamp.astimezone(UTC)
            if timestamp.tzinfo
            else timestamp.replace(tzinfo=UTC),
            serverhost=_text(document, "serverhost"),
            username=_text(document, "username"),
            host=_text(document, "host"),
            connection_id=_typed(document, "connection_id", int),
            query_id=_typed(document, "query_id", int),
            operation=_text(document, "operation"),
            database=_text(document, "database"),
            object=_text(document, "object"),
            retcode=_typed(document, "retcode", int, optional=True),
            connection_type=_text(document, "connection_type", optional=True),
            truncated=_typed(document, "truncated", bool),
            dialect=Dialect(document["dialect"]),
            origin=_origin_from_dict(document["origin"]),
            prefix=_text(document, "prefix", optional=True),
            suffix=_text(document, "suffix", optional=True),
        )
    except KeyError as missing:
        raise AuditSyncError(f"not an auditsync event: no member {missing}") from None
    except (TypeError, ValueError, OverflowError, binascii.Error) as error:
        raise AuditSyncError(f"not an auditsync event: {error}") from None


# --- dead letters -------------------------------------------------------------------------


def dead_letter_key(letter: DeadLetter) -> str:
    """The dead letter's key (:attr:`DeadLetter.key`), for sinks that store dead letters."""
    return letter.key


def dead_letter_to_dict(letter: DeadLetter) -> dict[str, Any]:
    """The dead letter as a JSON-ready dict: ``raw`` in base64, the refused event nested.

    Dead letters carry ``stage``, which events never do, so one stream can hold both.
    """
    document = {
        "key": dead_letter_key(letter),
        "stage": letter.stage,
        "error": letter.error,
        "origin": origin_to_dict(letter.origin),
        "raw_base64": _b64(letter.raw),
        "event": None if letter.event is None else event_to_dict(letter.event),
    }
    return _make_unicode(document, ("stage", "error"))


def dead_letter_from_dict(document: Mapping[str, Any]) -> DeadLetter:
    """The dead letter :func:`dead_letter_to_dict` wrote; raises :class:`ValueError` if not one."""
    try:
        event = document["event"]
        return DeadLetter(
            stage=_text(document, "stage"),
            error=_text(document, "error"),
            raw=base64.b64decode(document["raw_base64"], validate=True),
            origin=_origin_from_dict(document["origin"]),
            event=None if event is None else event_from_dict(event),
        )
    except KeyError as missing:
        raise ValueError(f"not an auditsync dead letter: no member {missing}") from None
    except (TypeError, binascii.Error) as error:
        raise ValueError(f"not an auditsync dead letter: {error}") from None


def to_dict(item: AuditEvent | DeadLetter) -> dict[str, Any]:
    """:func:`event_to_dict` or :func:`dead_letter_to_dict`, whichever ``item`` needs."""
    if isinstance(item, AuditEvent):
        return event_to_dict(item)
    if isinstance(item, DeadLetter):
        return dead_letter_to_dict(item)
    raise TypeError(f"expected an AuditEvent or a DeadLetter, got {type(item).__name__}")


def to_json(item: AuditEvent | DeadLetter) -> bytes:
    """The event or dead letter as one line of compact UTF-8 JSON, without the newline."""
    if type(item) is AuditEvent:
        if _c_event_json is not None:
            # The C writer: the same bytes, for every event that is plain Unicode.
            line = _c_event_json(item)
            if line is not None:
                return line
        document = event_to_dict(item)
    else:
        document = to_dict(item)
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError:
        # Only integers beyond 64 bits get here (the grammar reads ids of any length):
        # JSON has room for them, orjson does not.
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


# --- the sink -----------------------------------------------------------------------------


class JsonLinesSink:
    """Appends events and dead letters as JSON Lines to a file or a stream.

    A path is opened for appending (created if missing) and closed by :meth:`close`; a
    stream, text or binary, is written to and flushed but never closed: it is the
    caller's. Each batch is serialised whole before anything is written, then written
    with one call, so a batch that fails to serialise writes nothing, and processes
    appending to one local file do not interleave their lines.

    Appending cannot be idempotent: a retried batch is written again. Every line carries
    its ``key``, so readers drop the repeats.
    """

    def __init__(self, target: str | os.PathLike[str] | IO[str] | IO[bytes]):
        self._owned = isinstance(target, str | os.PathLike)
        stream: IO[Any]
        if isinstance(target, str | os.PathLike):
            # Unbuffered: a batch is one write(2) on an O_APPEND file, whole or not at all.
            stream = open(target, "ab", buffering=0)  # noqa: SIM115 - closed by close()
        else:
            stream = target
        self._stream: IO[Any] = stream
        self._binary = isinstance(stream, io.RawIOBase | io.BufferedIOBase) or "b" in getattr(
            stream, "mode", ""
        )
        self._closed = False

    def write(self, events: Sequence[AuditEvent | DeadLetter]) -> None:
        """Write one JSON object a line, then flush."""
        if self._closed:
            raise ValueError("write to a closed JsonLinesSink")
        if not events:
            return
        data = None
        if _c_json_lines is not None and isinstance(events, list):
            data = _c_json_lines(events)  # the C writer, for a batch of plain events
        if data is None:
            data = b"\n".join(map(to_json, events)) + b"\n"
        if self._binary:
            view = memoryview(data)
            while view:
                written = self._stream.write(view)
                if written is None:
                    raise BlockingIOError("JsonLinesSink needs a blocking stream")
                view = view[written:]
        else:
            cast(IO[str], self._stream).write(data.decode("utf-8"))
        self._stream.flush()

    def close(self) -> None:
        """Close the file the sink opened; a stream given to it stays open."""
        if self._closed:
            return
        self._closed = True
        if self._owned:
            self._stream.close()

    def __enter__(self) -> JsonLinesSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
