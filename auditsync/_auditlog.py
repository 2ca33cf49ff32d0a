"""The server_audit line grammar: :func:`parse_line` and its exact inverse :func:`format_line`.

A record is ``timestamp,serverhost,username,host,connectionid,queryid,operation,db,object,
retcode``. Only the query is quoted; names are written raw and may hold commas, quotes and
newlines. So the reader anchors on what cannot move — the timestamp, the numeric ids, the
operation, the quoted query and the retcode at the end — and gives the rest to the names.
Every step is a C-level string operation; the work is linear in the line length.
See docs/line-grammar.md for the dialects and the sources.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar, cast

from ._errors import LineError
from ._events import (
    CONNECTION_OPERATIONS,
    CONNECTION_TYPES,
    ORIGIN_FIELDS,
    TABLE_OPERATIONS,
    TLS_OPERATIONS,
    AuditEvent,
    Dialect,
    Origin,
    host_has_port,
    values_of,
)
from ._native import parse_line as _c_parse_line
from ._native import read_lines as _c_read_lines
from ._native import read_log_events as _c_read_log_events

__all__ = [
    "CONNECTION_OPERATIONS",
    "Dialect",
    "format_line",
    "parse_line",
    "parse_lines",
    "parse_log_events",
]

_KNOWN_OPERATIONS = CONNECTION_OPERATIONS | TABLE_OPERATIONS | {"QUERY"}
_CONNECTION_TYPE_NAMES = frozenset(CONNECTION_TYPES.values())
_ORIGIN_NAMES = tuple(field.name for field in ORIGIN_FIELDS)

_DIALECTS = {d.value: d for d in Dialect} | {d: d for d in Dialect}
_AUTO, _MARIADB, _AURORA, _RDS_MYSQL, _ENTERPRISE = (
    Dialect.AUTO,
    Dialect.MARIADB,
    Dialect.AURORA,
    Dialect.RDS_MYSQL,
    Dialect.MARIADB_ENTERPRISE,
)
#: The dialects in which a record may be written MariaDB Enterprise 12.3's way.
_ENTERPRISE_READ = (_AUTO, _ENTERPRISE)
#: What OpenSSL's ``SSL_get_version`` (and wolfSSL's) names a protocol: ``TLSv1.3``,
#: ``TLSv1``, ``SSLv3``, ``DTLSv1.2``, ``QUICv1``, ``unknown``. None of RDS's connection
#: types, and no return code, looks like one.
_TLS_VERSION = re.compile(r"(?:TLS|SSL|DTLS|QUIC)v\d{1,2}(?:\.\d{1,2})?|unknown", re.ASCII)

# Fallback for heads the fast split cannot read: a user name holding commas, or an
# operation this module does not know yet. The user is the shortest run that lets the
# numeric ids and the operation line up: names are far likelier to hold commas than the
# ids are to be forged inside a name.
_AFTER_USER_PATTERN = r",([^,]*),(\d{1,20}),(\d{1,20}),([A-Z][A-Z_]*),"
_HEAD = re.compile(r"([^,\s]*),(.*?)" + _AFTER_USER_PATTERN, re.ASCII | re.DOTALL)
#: :data:`_HEAD` in two parts, for the record inside a syslog message: a space, the
#: server host and its comma; then, after the user name, the rest of the head.
_SPACE_SERVERHOST = re.compile(r" [^,\s]*,", re.ASCII)
_AFTER_USER = re.compile(_AFTER_USER_PATTERN, re.ASCII)
#: The server's ids are unsigned 64-bit numbers: 20 digits at most. The cap also keeps
#: ``int()`` away from Python's limit on converting long digit strings.
_MAX_ID_DIGITS = 20

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
# What a syslog daemon (or glibc's syslog(3), for raw datagrams) puts before the message:
# an optional <priority>, a BSD or RFC 3339 time, the host (absent in datagrams), the
# ident with an optional [pid], then ": ". The plugin's message is "<info> <record>".
_SYSLOG_HEADER = re.compile(
    r"(?:<\d{1,3}>)?"
    r"(?:(?P<month>[A-Z][a-z]{2}) (?P<day>[ \d]\d) (?P<hms>\d\d:\d\d:\d\d)"
    r"|(?P<iso>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?)) "
    r"(?:[^\s:\[]+ )?"
    r"[^\s:\[]+(?:\[\d+\])?: ",
    re.ASCII,
)

_CUSTOM_TIME = re.compile(
    r"(\d{4})-?(\d\d)-?(\d\d)[T ]?(\d\d):?(\d\d):?(\d\d)(?:[.,](\d{1,9}))? ?(Z|[+-]\d\d:?\d\d)?",
    re.ASCII,
)
_DATE, _EPOCH_MICROS, _EPOCH_OTHER, _CUSTOM, _SYSLOG = (
    "date",
    "epoch",
    "epoch-other",
    "custom",
    "syslog",
)
#: The timestamp forms format_line writes itself, by dialect.
_STANDARD_FORMS = frozenset(
    {
        (_DATE, Dialect.MARIADB),
        (_DATE, Dialect.RDS_MYSQL),
        (_DATE, Dialect.MARIADB_ENTERPRISE),
        (_EPOCH_MICROS, Dialect.AURORA),
    }
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_UNITS = {10: 1_000_000, 13: 1_000, 16: 1}

_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    "\n": "\\n",
    "\t": "\\t",
    "\r": "\\r",
    "\b": "\\b",
    "\f": "\\f",
}
_ESCAPE_TABLE = str.maketrans(_ESCAPES)
_UNESCAPES = tuple((escaped, char) for char, escaped in _ESCAPES.items() if char != "\\")


def parse_line(
    line: str | bytes,
    *,
    dialect: Dialect | str = Dialect.AUTO,
    tz: tzinfo = UTC,
    origin: Origin | None = None,
    year: int | None = None,
) -> AuditEvent:
    """Read one server_audit record into an :class:`AuditEvent`.

    ``dialect`` picks the layout (``"auto"`` reads it off the line); a syslog header is
    recognised in every dialect. ``tz`` is the zone of timestamps that carry none (the
    MariaDB and RDS date form, BSD syslog times); ``year`` completes BSD syslog times,
    which carry none (default: the current year, or the last one for a time that would
    lie more than a day ahead). A numeric custom ``server_audit_timestamp_format``
    (MariaDB 12) is read too. A trailing newline is ignored. Raises :class:`LineError`
    with the offset where reading failed.
    """
    text = line if type(line) is str else _decoded(line)
    if _c_parse_line is not None:
        # The C reader first, on the text as given: it declines a line that still ends in
        # a newline and a dialect that is not a member, which are settled below.
        event = _c_parse_line(text, _DIALECTS.get(dialect), tz, origin)
        if event is not None:
            return event
    return _parse_declined(text, dialect, tz, origin, year)


def _parse_declined(
    text: str, dialect: Dialect | str, tz: tzinfo, origin: Origin | None, year: int | None
) -> AuditEvent:
    """parse_line for a text the C reader declined as it was: a line end taken off (the C
    reader may take it then), the rest to the Python reader."""
    stripped = text[-1:] == "\n"
    if stripped:
        text = text[:-2] if text.endswith("\r\n") else text[:-1]
    wanted = _dialect(dialect)
    if stripped and _c_parse_line is not None:
        event = _c_parse_line(text, wanted, tz, origin)
        if event is not None:
            return event
    return _parse_text(text, wanted, tz, origin, year)


def _parse_text(
    text: str, wanted: Dialect, tz: tzinfo, origin: Origin | None, year: int | None
) -> AuditEvent:
    """The reference reader: every dialect and form, and the errors (parse_line's body)."""
    first = text[:1]
    header = None
    if first == "<" or first.isalpha() or text[4:5] == "-":
        header = _SYSLOG_HEADER.match(text)
    if header is not None:
        timestamp = _syslog_time(header, tz, year, text)
        start = _record_start(text, header.end())
        stamp_form = _SYSLOG
        fields = text[start:].split(",", 6)
    elif not first.isdigit():
        problem = "an empty line" if not text else "neither a timestamp nor a syslog header"
        raise LineError(f"not a server_audit record: {problem}", line=text, offset=0)
    else:
        # One split serves the timestamp and the head: the fields after the first comma.
        fields = text.split(",", 7)
        stamp_text = fields.pop(0)
        if not fields:
            raise LineError("not a server_audit record: no comma", line=text, offset=0)
        timestamp, stamp_form = _read_timestamp(stamp_text, tz, text)
        start = len(stamp_text) + 1

    head = _read_head(text, start, fields)
    operation = head.operation
    tail_text = text[head.tail_start :]
    if operation == "QUERY":
        tail = _read_query_tail(tail_text, wanted, text, head.tail_start)
    elif operation in CONNECTION_OPERATIONS:
        tail = _read_connection_tail(tail_text, operation, wanted, head.host, text, head.tail_start)
    else:
        tail = _read_table_tail(tail_text, operation, wanted, text, head.tail_start)

    epoch = stamp_form is _EPOCH_MICROS or stamp_form is _EPOCH_OTHER
    if wanted is _AUTO:
        if tail.rds or tail.enterprise:
            wanted = _RDS_MYSQL if tail.rds else _ENTERPRISE
        else:
            wanted = _AURORA if epoch else _MARIADB
    elif (wanted is _AURORA and not epoch and stamp_form is not _SYSLOG) or (
        (wanted is _MARIADB or wanted is _ENTERPRISE) and epoch
    ):
        raise LineError(
            f"a {wanted.value} line does not carry this timestamp form", line=text, offset=0
        )
    # Keep the text before the server host verbatim where the dialect's own timestamp
    # form would not write it back: syslog headers, custom or unusual timestamps.
    prefix = None if (stamp_form, wanted) in _STANDARD_FORMS else text[:start]
    return AuditEvent(
        timestamp=timestamp,
        serverhost=head.serverhost,
        username=head.username,
        host=head.host,
        connection_id=head.connection_id,
        query_id=head.query_id,
        operation=operation,
        database=tail.database,
        object=tail.object,
        retcode=tail.retcode,
        connection_type=tail.connection_type,
        truncated=tail.truncated,
        dialect=wanted,
        origin=origin,
        prefix=prefix,
        suffix=tail.suffix,
        tls_version=tail.tls_version,
    )


def parse_log_events(
    items: list[Any],
    origin: Origin,
    *,
    dialect: Dialect | str = Dialect.AUTO,
    tz: tzinfo = UTC,
    year: int | None = None,
) -> tuple[list[AuditEvent], list[tuple[str, Origin, LineError]]] | None:
    """Read the ``logEvents`` of a CloudWatch data message at once: the pipeline's hot loop.

    Each event's origin is ``origin`` with the log event's id. Returns the events, in
    order, and ``(message, origin, error)`` for each line that is not an audit record;
    ``None`` when an item is not a well-formed log event (a dict with a str ``id``, an
    int ``timestamp`` and a str ``message``), for :mod:`auditsync._envelope` to say why.
    """
    wanted = _dialect(dialect)
    fields = _origin_fields(origin)
    if _c_read_log_events is not None:
        read = _c_read_log_events(items, fields, wanted, tz)
    else:
        read = _log_event_origins(items, fields)
    if read is None:
        return None
    if not read[1]:
        return cast(list[AuditEvent], read[0]), []
    return _complete(read, [item["message"] for item in items], wanted, tz, year)


def parse_lines(
    texts: list[str | bytes],
    origin: Origin | None = None,
    numbers: list[int | None] | None = None,
    *,
    dialect: Dialect | str = Dialect.AUTO,
    tz: tzinfo = UTC,
    year: int | None = None,
) -> tuple[list[AuditEvent], list[tuple[str | bytes, Origin, LineError]]]:
    """Read many lines of one source at once, as :func:`parse_line` reads each.

    Each event's origin is ``origin`` with the line's number from ``numbers`` (default:
    ``origin.line_number`` for all). Returns the events, in order, and
    ``(text, origin, error)`` for each line that is not an audit record.
    """
    wanted = _dialect(dialect)
    base = origin or Origin()
    fields = _origin_fields(base)
    if numbers is None:
        numbers = [base.line_number] * len(texts)
    elif len(numbers) != len(texts):
        raise ValueError(f"{len(texts)} lines but {len(numbers)} line numbers")
    read = None
    if _c_read_lines is not None:
        read = _c_read_lines(texts, numbers, fields, wanted, tz)
    if read is None:
        origin_at = _origins_with(fields, "line_number")
        origins = [origin_at(number) for number in numbers]
        read = cast(list[AuditEvent | Origin], origins), len(origins)
    return _complete(read, texts, wanted, tz, year)


_Text = TypeVar("_Text", str, str | bytes)


def _complete(
    read: tuple[list[AuditEvent | Origin], int],
    texts: Sequence[_Text],
    wanted: Dialect,
    tz: tzinfo,
    year: int | None,
) -> tuple[list[AuditEvent], list[tuple[_Text, Origin, LineError]]]:
    """The C reader's results with the lines it declined (an Origin in place of the event)
    read as parse_line reads them: events, and the lines that are not records."""
    results, misses = read
    if not misses:
        return cast(list[AuditEvent], results), []
    events: list[AuditEvent] = []
    failures: list[tuple[_Text, Origin, LineError]] = []
    for text, result in zip(texts, results, strict=True):
        if isinstance(result, AuditEvent):
            events.append(result)
            continue
        try:
            events.append(_parse_declined(_decoded(text), wanted, tz, result, year))
        except LineError as error:
            failures.append((text, result, error.with_traceback(None)))
    return events, failures


def _decoded(line: str | bytes) -> str:
    return line.decode("utf-8", "surrogateescape") if isinstance(line, bytes) else line


def _dialect(dialect: Dialect | str) -> Dialect:
    wanted = _DIALECTS.get(dialect)
    if wanted is None:
        raise ValueError(f"unknown dialect {dialect!r}; choose one of {[d.value for d in Dialect]}")
    return wanted


#: An origin's fields in the table's order, as the C reader takes them.
_origin_fields = values_of(_ORIGIN_NAMES)


def _origins_with(fields: tuple[Any, ...], name: str) -> Callable[[Any], Origin]:
    """Origins of ``fields`` (an origin's, in order) with the field ``name`` set anew."""
    at = _ORIGIN_NAMES.index(name)
    before, after = fields[:at], fields[at + 1 :]
    return lambda value: Origin(*(*before, value, *after))


def _log_event_origins(
    items: list[Any], fields: tuple[Any, ...]
) -> tuple[list[AuditEvent | Origin], int] | None:
    """The pure-Python twin of the C reader's checks: an origin per well-formed log event."""
    if type(items) is not list:
        return None
    origin_with = _origins_with(fields, "event_id")
    origins: list[AuditEvent | Origin] = []
    for item in items:
        if type(item) is not dict:
            return None
        event_id, stamp, message = item.get("id"), item.get("timestamp"), item.get("message")
        if type(event_id) is not str or type(stamp) is not int or type(message) is not str:
            return None
        origins.append(origin_with(event_id))
    return origins, len(origins)


def format_line(
    event: AuditEvent, *, dialect: Dialect | str | None = None, tz: tzinfo = UTC
) -> str:
    """Write ``event`` as the server would: ``format_line(parse_line(x)) == x``.

    ``dialect`` defaults to the event's own; ``tz`` is the zone for the date form and
    must be the one the line was parsed with for the round trip to be exact.
    """
    chosen = event.dialect if dialect is None else _DIALECTS.get(dialect)
    if chosen is None or chosen is Dialect.AUTO:
        raise ValueError(f"format_line needs a concrete dialect, not {dialect!r}")
    head = (
        f"{event.serverhost},{event.username},{event.host},"
        f"{event.connection_id},{event.query_id},{event.operation},{event.database},"
    )
    if event.prefix is not None:
        head = event.prefix + head
    else:
        head = _format_timestamp(event.timestamp, chosen, tz) + "," + head
    retcode = "" if event.retcode is None else str(event.retcode)
    if event.operation == "QUERY":
        quoted = "'" + event.object.translate(_ESCAPE_TABLE)
        if event.truncated:
            return head + quoted + (event.suffix or "")
        tail = f"{quoted}',{retcode}"
        return head + (tail + ",," if chosen is Dialect.RDS_MYSQL else tail)
    obj = event.object
    if event.operation == "RENAME" and chosen is Dialect.MARIADB_ENTERPRISE:
        obj = _enterprise_rename(obj)
    tail = f"{obj},{retcode}"
    if event.connection_type is not None:
        tail += "," + event.connection_type
    if event.tls_version is not None:
        tail += "," + event.tls_version
    return head + tail


def _enterprise_rename(obj: str) -> str:
    """``old|newdb.new`` as MariaDB Enterprise writes it, ``old,newdb,new``; an object of
    another shape as it is."""
    old, bar, new = obj.partition("|")
    newdb, dot, table = new.partition(".")
    return f"{old},{newdb},{table}" if bar and dot else obj


# --- timestamps ---------------------------------------------------------------------------


def _read_timestamp(stamp: str, tz: tzinfo, line: str) -> tuple[datetime, str]:
    """Return the UTC time and its form: date, 16-digit epoch (Aurora), other epoch, custom."""
    if stamp.isdigit() and stamp.isascii():
        unit = _EPOCH_UNITS.get(len(stamp))
        if unit is None:
            raise LineError(
                f"epoch timestamp of {len(stamp)} digits (expected 10, 13 or 16)",
                line=line,
                offset=0,
            )
        form = _EPOCH_MICROS if unit == 1 else _EPOCH_OTHER
        return _EPOCH + timedelta(0, 0, int(stamp) * unit), form
    # OverflowError too: a valid local time can fall outside datetime's range in UTC.
    try:
        return _cached_date_form(stamp, tz), _DATE
    except (ValueError, OverflowError):
        pass
    custom = _CUSTOM_TIME.fullmatch(stamp)
    if custom is not None:
        try:
            return _custom_time(custom, tz), _CUSTOM
        except (ValueError, OverflowError):
            pass
    raise LineError(
        f"bad timestamp {stamp[:40]!r} (expected YYYYMMDD HH:MM:SS, an ISO 8601 time "
        "or epoch digits)",
        line=line,
        offset=0,
    )


def _custom_time(match: re.Match[str], tz: tzinfo) -> datetime:
    """A numeric ``server_audit_timestamp_format`` (MariaDB 12), e.g. ``%Y%m%dT%H:%i:%s.%f%z``."""
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    zone = tz
    if offset == "Z":
        zone = UTC
    elif offset:
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        zone = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    local = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tzinfo=zone
    )
    return local.astimezone(UTC)


def _cached_date_form(stamp: str, tz: tzinfo) -> datetime:
    """:func:`_date_form` through its cache, which a time zone that cannot be hashed (a
    tzinfo class may define ``__eq__`` alone) cannot use."""
    try:
        hash(tz)
    except TypeError:
        return _date_form(stamp, tz)
    return _date_form_cache(stamp, tz)


def _date_form(stamp: str, tz: tzinfo) -> datetime:
    """``YYYYMMDD HH:MM:SS`` in ``tz`` → UTC; cached because a second holds many lines."""
    if len(stamp) != 17 or stamp[8] != " " or stamp[11] != ":" or stamp[14] != ":":
        raise ValueError(stamp)
    digits = stamp[:8] + stamp[9:11] + stamp[12:14] + stamp[15:]
    if not (digits.isdigit() and digits.isascii()):
        raise ValueError(stamp)
    local = datetime(
        int(stamp[:4]),
        int(stamp[4:6]),
        int(stamp[6:8]),
        int(stamp[9:11]),
        int(stamp[12:14]),
        int(stamp[15:17]),
        tzinfo=tz,
    )
    return local if tz is UTC else local.astimezone(UTC)


_date_form_cache = lru_cache(maxsize=1024)(_date_form)


def _format_timestamp(timestamp: datetime, dialect: Dialect, tz: tzinfo) -> str:
    if dialect is Dialect.AURORA:
        delta = timestamp - _EPOCH
        return str((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)
    t = timestamp.astimezone(tz)
    return f"{t.year:04d}{t.month:02d}{t.day:02d} {t.hour:02d}:{t.minute:02d}:{t.second:02d}"


def _syslog_time(header: re.Match[str], tz: tzinfo, year: int | None, text: str) -> datetime:
    if header["iso"] is None:
        return _bsd_time(header["month"], header["day"], header["hms"], tz, year, text)
    try:
        timestamp = datetime.fromisoformat(header["iso"])
        if timestamp.tzinfo is None:
            timestamp = timestamp.replace(tzinfo=tz)
        return timestamp.astimezone(UTC)
    except (ValueError, OverflowError):
        raise LineError("bad RFC 3339 syslog time", line=text, offset=0) from None


def _bsd_time(month: str, day: str, hms: str, tz: tzinfo, year: int | None, text: str) -> datetime:
    number = _MONTHS.get(month)
    if number is None:
        raise LineError(f"bad syslog month {month!r}", line=text, offset=0)
    try:
        if year is not None:
            local = _local_time(year, number, day, hms, tz)
        else:
            now = datetime.now(tz)
            local = _local_time(now.year, number, day, hms, tz)
            if local - now > timedelta(days=1):
                local = _local_time(now.year - 1, number, day, hms, tz)
        return local.astimezone(UTC)
    except (ValueError, OverflowError):
        raise LineError("bad syslog time", line=text, offset=0) from None


def _local_time(year: int, month: int, day: str, hms: str, tz: tzinfo) -> datetime:
    return datetime(year, month, int(day), int(hms[:2]), int(hms[3:5]), int(hms[6:]), tzinfo=tz)


def _record_start(text: str, message_start: int) -> int:
    """Find the record inside ``<syslog_info> <record>``; the info may be empty or hold spaces.

    The record starts after the first space that a server host (no comma, no space) and
    its comma follow, if a head can be read from there: a later space could only start
    one with a later comma, so it cannot do better. Two searches, linear in the line
    (trying the whole head after every space cost time quadratic in a line of junk).
    """
    if text.startswith(" ", message_start):
        return message_start + 1
    host = _SPACE_SERVERHOST.search(text, message_start)
    if host is None or _AFTER_USER.search(text, host.end()) is None:
        return message_start
    return host.start() + 1


# --- the head: serverhost, username, host, connection id, query id, operation ---------------


class _Head(NamedTuple):
    """The head of a record, and where its tail starts in the line."""

    serverhost: str
    username: str
    host: str
    connection_id: int
    query_id: int
    operation: str
    tail_start: int


def _read_head(text: str, start: int, parts: list[str]) -> _Head:
    """The six head fields; ``parts`` is ``text[start:].split(",", 6)``."""
    if len(parts) == 7:
        serverhost, username, host, connection, query, operation, tail = parts
        if (
            operation in _KNOWN_OPERATIONS
            and connection.isdigit()
            and query.isdigit()
            and connection.isascii()
            and query.isascii()
            and len(connection) <= _MAX_ID_DIGITS
            and len(query) <= _MAX_ID_DIGITS
        ):
            return _Head(
                serverhost,
                username,
                host,
                int(connection),
                int(query),
                operation,
                len(text) - len(tail),
            )
    match = _HEAD.match(text, start)
    if match is None:
        raise _head_error(text, start, parts)
    serverhost, username, host, connection, query, operation = match.groups()
    return _Head(serverhost, username, host, int(connection), int(query), operation, match.end())


def _head_error(text: str, start: int, parts: list[str]) -> LineError:
    names = ("server host", "user name", "host", "connection id", "query id", "operation")
    offset = start
    for index, (name, value) in enumerate(zip(names, parts, strict=False)):
        bad_number = index in (3, 4) and not (value.isdigit() and value.isascii())
        bad_operation = index == 5 and re.fullmatch(r"[A-Z][A-Z_]*", value) is None
        if bad_number or bad_operation:
            return LineError(f"expected the {name}, found {value[:40]!r}", line=text, offset=offset)
        offset += len(value) + 1
    return LineError(
        f"record ends after {len(parts) - 1} of its 9 fields",
        line=text,
        offset=len(text),
    )


# --- the tails ------------------------------------------------------------------------------


class _Tail(NamedTuple):
    """What a record holds after the operation; ``rds`` says it was written the RDS way
    (a QUERY's trailing ``,,``, a connection type), ``enterprise`` MariaDB Enterprise
    12.3's way (a TLS version after the status, a RENAME of four names)."""

    database: str
    object: str
    retcode: int | None
    connection_type: str | None = None
    truncated: bool = False
    rds: bool = False
    suffix: str | None = None
    tls_version: str | None = None
    enterprise: bool = False


def _read_query_tail(tail: str, dialect: Dialect, text: str, offset: int) -> _Tail:
    """``db,'escaped query',retcode`` (RDS: ``...,retcode,,``).

    A line the server cut ends inside the quote, or (a rarer buffer corner) right after
    the closing quote; either is a truncated event, and the lone quote its ``suffix``.
    """
    rds = tail.endswith(",,") and dialect in (Dialect.AUTO, Dialect.RDS_MYSQL)
    body = tail[:-2] if rds else tail
    quoted, comma, retcode = body.rpartition(",")
    if comma and quoted.endswith("'") and _is_int(retcode):
        close = len(quoted) - 1
        open_ = _first_quote_opening(quoted, close)
        if open_ == -1:
            open_ = _opening_quote(quoted, close)
        if open_ > 0 and _unescaped(quoted, close):
            obj = _unescape(quoted[open_ + 1 : close])
            return _Tail(quoted[: open_ - 1], obj, int(retcode), rds=rds)
    # No closing quote and retcode: the server cut the line inside the query.
    open_ = tail.find(",'")
    if open_ == -1:
        raise LineError("QUERY record without a quoted query", line=text, offset=offset)
    content = tail[open_ + 2 :]
    stray = _first_unescaped_quote(content)
    suffix = None
    if stray != -1 and stray == len(content) - 1:
        # The closing quote made it and the retcode did not: the other buffer corner case.
        content, suffix = content[:-1], "'"
    elif stray != -1:
        raise LineError(
            "unexpected text after the quoted query", line=text, offset=offset + open_ + 2 + stray
        )
    return _Tail(tail[:open_], _unescape(content), None, truncated=True, suffix=suffix)


def _read_connection_tail(
    tail: str, operation: str, dialect: Dialect, host: str, text: str, offset: int
) -> _Tail:
    """``db,object,status``; on RDS a fourth field, the connection type; on MariaDB
    Enterprise 12.3 a fourth field, the TLS version.

    The TLS version is read by structure, never by shifting: the record must be one that
    carries it (a connection operation other than PROXY_CONNECT, in a dialect that allows
    it, from a host field written ``host:port``), its last field must be empty or name a
    TLS protocol, and an empty object and a status must stand before it. A ten-field
    record ends with its status, an RDS one with a connection type: neither is empty or a
    protocol name.
    """
    if dialect in _ENTERPRISE_READ and operation in TLS_OPERATIONS and host_has_port(host):
        rest, comma, last = tail.rpartition(",")
        if comma and (not last or _TLS_VERSION.fullmatch(last)):
            names, status_comma, status = rest.rpartition(",")
            # The object is empty: what MariaDB 12 writes there moved to the last field.
            if status_comma and _is_int(status) and names.endswith(","):
                read = _read_connection_tail(rest, operation, _MARIADB, host, text, offset)
                return read._replace(tls_version=last, enterprise=True)
    connection_type = None
    body = tail
    if dialect is not Dialect.MARIADB and dialect is not Dialect.AURORA:
        rest, comma, last = tail.rpartition(",")
        if comma and (dialect is Dialect.RDS_MYSQL or _looks_like_connection_type(rest, last)):
            body, connection_type = rest, last
    head, comma, status = body.rpartition(",")
    if operation == "PROXY_CONNECT" and ",`" in head:
        database, _, proxied = head.partition(",`")
        obj = "`" + proxied
    else:
        database, comma, obj = head.rpartition(",")
    if not comma:
        raise LineError(
            f"{operation} record should end with db,object,status", line=text, offset=offset
        )
    if not status:
        # The server always writes a connection's status; a record without one is a
        # record of another layout, and reading it here would shift its fields.
        raise LineError(
            f"{operation} record without its status", line=text, offset=offset + len(head) + 1
        )
    retcode = _retcode(status, text, offset + len(head) + 1)
    return _Tail(database, obj, retcode, connection_type, rds=connection_type is not None)


def _looks_like_connection_type(rest: str, last: str) -> bool:
    """RDS writes a name, some 5.7 builds a digit after the status.

    A digit alone is MariaDB's status, unless a status stands before it, after an empty
    object or a proxied `user`@`host`: the RDS layout.
    """
    if last in _CONNECTION_TYPE_NAMES:
        return True
    if last not in CONNECTION_TYPES:
        return False
    before, _, status = rest.rpartition(",")
    return _is_int(status) and (before.endswith(",") or before.endswith("`"))


def _read_table_tail(tail: str, operation: str, dialect: Dialect, text: str, offset: int) -> _Tail:
    """``db,table,`` (Aurora adds the retcode). A comma in both names cannot be placed:
    the split goes at the last one, so a database name with commas reads right.

    RENAME's object is ``old|newdb.new``: split before the bar, so that a comma in the
    new database's name stays in the object. MariaDB Enterprise writes it as four names,
    ``db,old,newdb,new``, read by :func:`_enterprise_rename_tail`.
    """
    head, comma, status = tail.rpartition(",")
    if operation == "RENAME" and comma and "|" not in head:
        return _enterprise_rename_tail(head, status, dialect, text, offset)
    before, bar, after = head.partition("|") if operation == "RENAME" else (head, "", "")
    if bar and "." not in after:
        # Every RENAME the community plugin writes has newdb.new after the bar; without
        # one, this is no form a server writes (or an Enterprise RENAME of a name with a
        # bar, which cannot be placed).
        raise LineError("RENAME record whose object is not old|newdb.new", line=text, offset=offset)
    database, comma2, obj = before.rpartition(",")
    obj += bar + after
    if not comma or not comma2:
        raise LineError("record should end with db,object,retcode", line=text, offset=offset)
    return _Tail(database, obj, _retcode(status, text, offset + len(head) + 1))


def _enterprise_rename_tail(
    head: str, status: str, dialect: Dialect, text: str, offset: int
) -> _Tail:
    """``db,old,newdb,new``: a RENAME as MariaDB Enterprise writes it, read into the one
    representation of a RENAME, database ``db`` and object ``old|newdb.new``.

    Only four names without commas can be placed, and only a new database without a dot
    can be written back from the object; anything else is refused, as is this form in a
    dialect whose servers write the bar (every RENAME of theirs has one).
    """
    if dialect not in _ENTERPRISE_READ:
        raise LineError(
            f"RENAME record without old|newdb.new: not a {dialect.value} form",
            line=text,
            offset=offset,
        )
    names = head.split(",")
    if len(names) != 4 or "." in names[2]:
        raise LineError(
            "RENAME record of MariaDB Enterprise's form db,old,newdb,new that cannot be "
            "read one way (a comma in a name, or a dot in the new database's)",
            line=text,
            offset=offset,
        )
    database, old, newdb, new = names
    retcode = _retcode(status, text, offset + len(head) + 1)
    return _Tail(database, f"{old}|{newdb}.{new}", retcode, enterprise=True)


def _retcode(status: str, text: str, offset: int) -> int | None:
    if not status:
        return None
    if _is_int(status):
        return int(status)
    raise LineError(f"bad return code {status[:40]!r}", line=text, offset=offset)


def _is_int(text: str) -> bool:
    """A return code: an error number, at most 20 digits, perhaps negative."""
    digits = text[1:] if text.startswith("-") else text
    return digits.isdigit() and digits.isascii() and len(digits) <= _MAX_ID_DIGITS


# --- the quoted query -----------------------------------------------------------------------


def _unescaped(text: str, position: int) -> bool:
    """Whether the character at ``position`` is preceded by an even run of backslashes."""
    run = position
    while run > 0 and text[run - 1] == "\\":
        run -= 1
    return (position - run) % 2 == 0


def _opening_quote(text: str, close: int) -> int:
    """The quote opening the query closed at ``close``: the nearest unescaped one before it.

    Inside the query every quote is escaped, so the nearest unescaped quote to the left
    is the opening one; it must start a field (follow a comma). -1 if there is none.
    """
    position = close
    while True:
        position = text.rfind("'", 0, position)
        if position == -1:
            return -1
        if _unescaped(text, position):
            return position if position > 0 and text[position - 1] == "," else -1


def _first_quote_opening(text: str, close: int) -> int:
    """The common case at C speed: no quote in the database field, so the first quote of
    the tail opens the query — if what lies between it and ``close`` is a well-formed
    escaped string (every quote in it escaped). -1 otherwise."""
    first = text.find("'")
    if first < 1 or first >= close or text[first - 1] != ",":
        return -1
    content = text[first + 1 : close]
    # Every quote of the query is escaped; the query's real opening quote, were it inside
    # ``content``, would follow a comma — so counting tells them apart, without a copy.
    if content.count("'") != content.count("\\'"):
        return -1
    return first


def _first_unescaped_quote(text: str) -> int:
    position = text.find("'")
    while position != -1 and not _unescaped(text, position):
        position = text.find("'", position + 1)
    return position


def _unescape(text: str) -> str:
    """Undo the plugin's escapes, read left to right: ``\\\\`` pairs first, then the rest.

    The pairs are parked as a character the text does not hold, so that every escape is
    one ``str.replace`` over the whole text, whatever the number of backslashes.
    """
    if "\\" not in text:
        return text
    if _OTHER_ESCAPE.search(text) is None:
        # Only the plugin's seven escapes: Python's own escape codec reads them in one pass.
        try:
            return text.encode("latin-1", "backslashreplace").decode("unicode_escape")
        except UnicodeDecodeError:
            pass
    park = next((char for char in _PARKING if char not in text), None)
    if park is None:
        pieces = text.split("\\\\")
        return "\\".join(_unescape_singles(piece) for piece in pieces)
    return _unescape_singles(text.replace("\\\\", park)).replace(park, "\\")


def _unescape_singles(text: str) -> str:
    for escaped, char in _UNESCAPES:
        if escaped in text:
            text = text.replace(escaped, char)
    return text


#: A backslash before anything but what the plugin escapes: Python's escape codec would
#: read it differently (``\\x41``), so such text takes the slower, literal path.
_OTHER_ESCAPE = re.compile(r"\\[^\\'ntrbf]")
#: Characters that stand in for ``\\`` while the rest is unescaped: control characters
#: first (a narrower one would widen the text's storage and slow every replace), then
#: noncharacters; the first the text does not hold is taken.
_PARKING = ("\x01", "\x02", "\x03", "\x04", "\x05", "\x06", "\x07", "\uffff", "\U0010ffff")
