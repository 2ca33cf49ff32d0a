"""The JSON form of events and dead letters: the one JSON representation of auditsync's values.

:func:`event_to_dict` and :func:`dead_letter_to_dict` are written by :class:`JsonLinesSink
<auditsync.sinks.JsonLinesSink>`, the Firehose adapter, the CLI, the SQL sinks and the
Arrow, OCSF and ECS forms alike, so a value written by any of them reads the same. The
format (docs/sinks.md) is stable:

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
import hashlib
import json
import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import attrs
import orjson

from ._errors import AuditSyncError
from ._events import (
    EVENT_FIELDS,
    KEY_DIGEST_SIZE,
    KEY_PLACE,
    KEY_RECORD,
    ORIGIN_FIELDS,
    AuditEvent,
    DeadLetter,
    Dialect,
    Field,
    Form,
    Origin,
    _isoformat,
    compiled,
    exact_bytes,
    field_reads,
)
from ._native import DIALECTS, c_json

__all__ = [
    "dead_letter_from_dict",
    "dead_letter_to_dict",
    "event_from_dict",
    "event_to_dict",
    "json_lines",
    "to_json",
]

_TEXT_FORMS = (Form.TEXT, Form.OPTIONAL_TEXT)
#: An event's members: its key, then its fields in order, the origin last (docs/sinks.md).
_EVENT_MEMBERS = (
    *(field for field in EVENT_FIELDS if field.form is not Form.ORIGIN),
    *(field for field in EVENT_FIELDS if field.form is Form.ORIGIN),
)
_EVENT_NAMES = ("key", *(field.name for field in _EVENT_MEMBERS))
_EVENT_TEXT = ("key", *(field.name for field in _EVENT_MEMBERS if field.form in _TEXT_FORMS))
_ORIGIN_NAMES = tuple(field.name for field in ORIGIN_FIELDS)
_ORIGIN_TEXT = tuple(field.name for field in ORIGIN_FIELDS if field.form in _TEXT_FORMS)
#: The text members of a document, for one check of them all.
_EVENT_TEXT_OF = operator.itemgetter(*_EVENT_TEXT)
_ORIGIN_TEXT_OF = operator.itemgetter(*_ORIGIN_TEXT)
#: How a member of each form is written (``{}`` its value), where not as it is.
_JSON: Final = {
    Form.TIMESTAMP: "iso_timestamp({})",
    Form.DIALECT: "{}._value_",  # the plain str; .value is a slow descriptor
    Form.ORIGIN: "origin_to_dict({})",
}


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


def _document(value: str, members: Sequence[Field]) -> str:
    """The source of a dict display of ``members``, each written by its form."""
    reads = field_reads(value, (field.name for field in members))
    return "".join(
        f"{field.name!r}: {_JSON.get(field.form, '{}').format(read)}, "
        for field, read in zip(members, reads, strict=True)
    )


def origin_to_dict(origin: Origin | None) -> dict[str, Any] | None:
    """The origin as a JSON object, or ``None``."""
    if origin is None:
        return None
    document: dict[str, Any] = _origin_document(origin)
    # One check of all the text, as in event_to_dict.
    if is_unicode("".join(filter(None, _ORIGIN_TEXT_OF(document)))):
        return document
    return _make_unicode(document, _ORIGIN_TEXT)


def event_to_dict(event: AuditEvent) -> dict[str, Any]:
    """The event as a JSON-ready dict of plain values; :func:`event_from_dict` reverses it."""
    document: dict[str, Any] = _event_document(event, event.key)
    # One check of all the text at once: almost every event is plain Unicode. A
    # surrogate never pairs up across a join, so one in any member still shows here.
    if is_unicode("".join(filter(None, _EVENT_TEXT_OF(document)))):
        return document
    return _make_unicode(document, _EVENT_TEXT)


_NAMESPACE = {"iso_timestamp": iso_timestamp, "origin_to_dict": origin_to_dict}
#: The JSON members of an origin, and of an event and its key, as dicts.
_origin_document = compiled("origin", f"{{{_document('origin', ORIGIN_FIELDS)}}}")
_event_document = compiled(
    "event, key",
    f"{{'key': key, {_document('event', _EVENT_MEMBERS)}}}",
    _NAMESPACE,
)


def _timestamp_from(text: Any) -> datetime:
    if not isinstance(text, str):
        raise TypeError(f"a timestamp should be str, not {type(text).__name__}")
    timestamp = datetime.fromisoformat(text)
    if timestamp.tzinfo:
        return timestamp.astimezone(UTC)
    return timestamp.replace(tzinfo=UTC)


#: How a member of each form is read back: event_to_dict and origin_to_dict reversed.
_READ: dict[Form, Callable[[Mapping[str, Any], str], Any]] = {
    Form.TEXT: _text,
    Form.OPTIONAL_TEXT: lambda document, name: _text(document, name, optional=True),
    Form.INTEGER: lambda document, name: _typed(document, name, int),
    Form.OPTIONAL_INTEGER: lambda document, name: _typed(document, name, int, optional=True),
    Form.FLAG: lambda document, name: _typed(document, name, bool),
    Form.TIMESTAMP: lambda document, name: _timestamp_from(document[name]),
    Form.DIALECT: lambda document, name: Dialect(document[name]),
    Form.ORIGIN: lambda document, name: _origin_from_dict(document[name]),
}


def _origin_from_dict(document: Mapping[str, Any] | None) -> Origin | None:
    if document is None:
        return None
    return Origin(
        **{field.name: _READ[field.form](document, field.name) for field in ORIGIN_FIELDS}
    )


#: The fields whose default is ``None``: their members may be missing, as in a document
#: written before the field joined the event (``tls_version``), which holds no value.
_MAY_BE_MISSING = tuple(field.name for field in attrs.fields(AuditEvent) if field.default is None)


def event_from_dict(document: Mapping[str, Any]) -> AuditEvent:
    """The event :func:`event_to_dict` wrote, byte for byte; ``key`` is recomputed.

    A member whose field defaults to ``None`` may be missing (an older auditsync wrote no
    such member).
    Raises :class:`ValueError` naming what is missing or malformed.
    """
    try:
        return AuditEvent(
            **{field.name: _READ[field.form](document, field.name) for field in EVENT_FIELDS}
        )
    except KeyError as missing:
        absent = dict.fromkeys(name for name in _MAY_BE_MISSING if name not in document)
        if missing.args and missing.args[0] in absent:
            return event_from_dict({**document, **absent})
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


# --- the C writer -----------------------------------------------------------------------


#: Events the C writer must write as event_to_dict does before it is used: each member's
#: form, and the key from each kind of origin (file, Kinesis, CloudWatch id, none).
_TRIAL_ORIGINS = (
    None,
    Origin(),
    Origin(path="logs/it's.log", line_number=7),
    Origin("/aws/rds/instance/db/audit", "db.audit.log.0", None, "shardId-0", "4959"),
    Origin("/aws/rds/instance/db/audit", "db.audit.log.0", "37120", "shardId-0", "4959"),
)
_TRIAL_EVENTS = tuple(
    AuditEvent(
        timestamp=datetime(2024, 1, 31, 14, 2, 7, micros, tzinfo=UTC),
        serverhost="db-1",
        username="app",
        host="10.0.0.1",
        connection_id=42,
        query_id=1001,
        operation="QUERY",
        database="shop",
        object='select "caf\u00e9"\n',
        retcode=None if micros else 1146,
        connection_type="SSL" if micros else None,
        truncated=bool(micros),
        dialect=Dialect.AURORA if micros else Dialect.MARIADB,
        origin=origin,
        prefix="<13>" if micros else None,
    )
    for micros in (0, 250)
    for origin in _TRIAL_ORIGINS
)


def _configured_c_writer() -> tuple[
    Callable[[AuditEvent], bytes | None] | None, Callable[[list[Any]], bytes | None] | None
]:
    """The C writer's two functions, told the event's table; or ``None`` twice where it
    was not built. A writer that does not write the trial events as the Python writer
    does stops the import: it was built from other sources than this package's."""
    if c_json is None:
        return None, None
    if tuple(c_json.FORMS) != tuple(Form.__members__):
        raise RuntimeError(f"auditsync._c_json knows the forms as {c_json.FORMS}")
    c_json.configure(
        AuditEvent,
        tuple((field.name, int(field.form)) for field in EVENT_FIELDS),
        _EVENT_NAMES[1:],
        Origin,
        tuple((field.name, int(field.form)) for field in ORIGIN_FIELDS),
        _ORIGIN_NAMES,
        KEY_RECORD,
        KEY_PLACE,
        DIALECTS,
        UTC,
        hashlib.blake2b,
        KEY_DIGEST_SIZE,
    )
    for event in _TRIAL_EVENTS:
        if c_json.event_json(event) != orjson.dumps(event_to_dict(event)):
            raise RuntimeError(f"auditsync._c_json writes {event!r} unlike event_to_dict")
    return c_json.event_json, c_json.json_lines


_c_event_json, _c_json_lines = _configured_c_writer()


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


def json_lines(items: Sequence[AuditEvent | DeadLetter]) -> bytes:
    """A batch as JSON Lines, each line ending in a newline: the C writer's where it can."""
    data = None
    if _c_json_lines is not None and isinstance(items, list):
        data = _c_json_lines(items)  # the C writer, for a batch of plain events
    if data is None:
        data = b"\n".join(map(to_json, items)) + b"\n"
    return data
