"""The values the pipeline produces: :class:`AuditEvent` and where it came from, :class:`Origin`.

An event is created once per audit line, so it is a slotted, frozen attrs class with no
validators: :func:`auditsync.parse_line` is the only place that needs to check anything,
and it checks the line, not the object.
"""

from __future__ import annotations

import enum
import functools
import hashlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, NamedTuple, cast

import attrs

from ._rds import RdsResource, rds_resource

if TYPE_CHECKING:
    from .sql import Statement

__all__ = [
    "CONNECTION_OPERATIONS",
    "CONNECTION_TYPES",
    "EVENT_FIELDS",
    "KEY_DIGEST_SIZE",
    "KEY_PLACE",
    "KEY_RECORD",
    "KEY_VERSION",
    "ORIGIN_DERIVED",
    "ORIGIN_DERIVED_FROM",
    "ORIGIN_FIELDS",
    "TABLE_OPERATIONS",
    "TLS_OPERATIONS",
    "UNAVAILABLE_PORT",
    "AuditEvent",
    "ClientAddress",
    "DeadLetter",
    "Dialect",
    "Field",
    "Form",
    "Origin",
    "OriginDerived",
    "client_address",
    "compiled",
    "derived_of",
    "exact_bytes",
    "field_reads",
    "host_has_port",
    "origin_derived",
    "values_of",
]


class Dialect(enum.StrEnum):
    """The line layouts of the server_audit family (see docs/line-grammar.md).

    It lives here, beside the event that records it, so that the grammar in
    :mod:`auditsync._auditlog` can import the event without a cycle.
    """

    AUTO = "auto"
    MARIADB = "mariadb"
    AURORA = "aurora"
    RDS_MYSQL = "rds-mysql"
    #: MariaDB Enterprise Server 12.3: connection records end with an eleventh field, the
    #: TLS version, and RENAME is written ``db,old,newdb,new``. Like RDS for MySQL, only
    #: those records tell it apart; its other records read as ``MARIADB``.
    MARIADB_ENTERPRISE = "mariadb-enterprise"


#: Operations whose record ends ``db,object,status`` (and, on RDS, ``,connection_type``;
#: on MariaDB Enterprise 12.3, ``,tls_version`` except for PROXY_CONNECT).
CONNECTION_OPERATIONS: Final = frozenset(
    {"CONNECT", "FAILED_CONNECT", "DISCONNECT", "CHANGEUSER", "PROXY_CONNECT"}
)
#: The connection operations whose MariaDB Enterprise 12.3 records carry the TLS version.
TLS_OPERATIONS: Final = CONNECTION_OPERATIONS - {"PROXY_CONNECT"}
#: Operations on a table: ``object`` is the table (RENAME's: ``old|newdb.new``).
TABLE_OPERATIONS: Final = frozenset({"READ", "WRITE", "CREATE", "DROP", "ALTER", "RENAME"})

#: RDS for MySQL 5.7 builds may write the connection type as MySQL's ``enum_vio_type``.
CONNECTION_TYPES = {
    "0": "UNDEFINED",
    "1": "TCP/IP",
    "2": "SOCKET",
    "3": "NAMED_PIPE",
    "4": "SSL",
    "5": "SHARED_MEMORY",
}


@attrs.frozen(slots=True)
class Origin:
    """Where an event came from; each part is ``None`` where the source does not know it."""

    log_group: str | None = None
    log_stream: str | None = None
    event_id: str | None = None
    shard_id: str | None = None
    sequence_number: str | None = None
    path: str | None = None
    line_number: int | None = None

    def describe(self) -> str:
        """A short human-readable location, for error messages and logs."""
        parts = []
        if self.path is not None:
            line = "" if self.line_number is None else f":{self.line_number}"
            parts.append(f"{self.path}{line}")
        if self.shard_id is not None or self.sequence_number is not None:
            parts.append(f"kinesis {self.shard_id or '?'} seq {self.sequence_number or '?'}")
        if self.log_group:
            parts.append(f"{self.log_group} {self.log_stream or ''}".rstrip())
        if self.event_id is not None:
            parts.append(f"event {self.event_id}")
        return ", ".join(parts) or "unknown origin"

    @property
    def rds(self) -> RdsResource | None:
        """The RDS instance or Aurora cluster its log group names, if it names one."""
        return rds_resource(self.log_group)


@attrs.frozen(slots=True)
class OriginDerived:
    """What an origin's fields name beyond themselves: the origin's *derived members*.

    The class body is their table (:data:`ORIGIN_DERIVED`), as :class:`Origin`'s is its
    fields': every output form (JSON, SQL, Arrow) writes them after the origin's fields,
    each by its form, so a user can filter and group by the database without parsing
    the log group. No reader takes them back: they follow from the fields, so an event
    read back recomputes them, and outputs written before a member existed still read.
    They follow from one field only, :data:`ORIGIN_DERIVED_FROM`, which lets a writer
    compute them once per log group (:func:`derived_of`).
    """

    #: The RDS DB instance of a ``/aws/rds/instance/NAME/…`` log group (:attr:`Origin.rds`).
    rds_instance: str | None = None
    #: The Aurora DB cluster of a ``/aws/rds/cluster/NAME/…`` log group.
    rds_cluster: str | None = None


#: The origin's field that its derived members follow from, and nothing else.
ORIGIN_DERIVED_FROM: Final = "log_group"
_NOTHING_DERIVED: Final = OriginDerived()


@functools.lru_cache(maxsize=256)
def derived_of(log_group: str | None) -> OriginDerived:
    """The derived members of an origin with this log group: what :attr:`Origin.rds` says.

    Cached: a batch holds thousands of events of one or two log groups.
    """
    resource = rds_resource(log_group)
    if resource is None:
        return _NOTHING_DERIVED
    return OriginDerived(rds_instance=resource.instance, rds_cluster=resource.cluster)


class _StatementCache:
    """The slot where :attr:`AuditEvent.statement` keeps its value, outside attrs' fields.

    attrs gives a slotted class with a :func:`functools.cached_property` a class-level
    ``__getattr__``, and CPython reads every attribute of such a class the slow way
    (~20 ns more each; the JSON form of an event reads some thirty).
    """

    __slots__ = ("_statement",)
    _statement: Statement | None


@attrs.frozen(slots=True)
class AuditEvent(_StatementCache):
    """One server_audit record.

    The class body is the table of the event's fields: their order, and through each
    annotation their :class:`Form`, which says how JSON, SQL and the C writer write them
    (:data:`EVENT_FIELDS`). A field added here, with a default, is written everywhere;
    only the code that reads it from a line is left to write.

    ``object`` is the unescaped query text of QUERY events, the table of table events,
    ``old|newdb.new`` of RENAME (whichever way the server wrote it), the proxied user of
    PROXY_CONNECT and, on MariaDB 12, the TLS version of connection records. Query bytes
    that are not UTF-8 are kept as ``surrogateescape`` characters: :attr:`object_bytes`
    gives back the server's bytes.

    ``host`` is the host field as the server wrote it: ``host:port`` on MariaDB 12 and
    Enterprise 12.3, where :attr:`client_host` and :attr:`client_port` take it apart.
    """

    timestamp: datetime
    serverhost: str
    username: str
    host: str
    connection_id: int
    query_id: int
    operation: str
    database: str
    object: str
    retcode: int | None
    connection_type: str | None = None
    truncated: bool = False
    dialect: Dialect = Dialect.MARIADB
    origin: Origin | None = None
    #: The text before the server host, verbatim, where the dialect's own timestamp form
    #: would not write it back: a syslog header, or a custom or unusual timestamp and its
    #: comma. ``None`` for the standard forms. :func:`format_line` writes it as it is.
    prefix: str | None = None
    #: The text after a truncated query where the server wrote more than nothing: the
    #: closing quote alone, when its buffer had room for it but not for the retcode.
    suffix: str | None = None
    #: The eleventh field of a MariaDB Enterprise 12.3 connection record: the negotiated
    #: TLS version, ``""`` where the connection is not encrypted, ``None`` where the line
    #: has no such field (every other server and record) -- so the line is written back
    #: as it was.
    tls_version: str | None = None

    @property
    def key(self) -> str:
        """A stable idempotency key for sinks: a storage format, version :data:`KEY_VERSION`.

        The CloudWatch log event id where there is one. Otherwise the BLAKE2b digest
        (16 bytes, lowercase hex) of the record and its place in its source (file and
        line; Kinesis shard and sequence number; log group and stream): the server writes
        identical lines for distinct events (one statement writing a table five times), so
        the record alone is no key. docs/keys.md spells the text hashed out; sinks store
        keys, so it never changes, and a field added to the event stays out of it.
        """
        origin = self.origin
        if origin is not None and origin.event_id:
            return origin.event_id
        text: str = _key_record(self)
        if origin is not None:
            text += _place(origin, None)
        return _blake2b_128(text)

    @property
    def statement(self) -> Statement | None:
        """What a QUERY event's statement does (:func:`auditsync.sql.classify`), once."""
        try:
            return self._statement
        except AttributeError:
            pass
        statement = None
        if self.operation == "QUERY":
            from .sql import classify  # its patterns compile on first use, not at import

            statement = classify(self.object)
        object.__setattr__(self, "_statement", statement)  # frozen: as attrs' __init__ does
        return statement

    @property
    def object_bytes(self) -> bytes:
        """The object exactly as the server wrote it, bytes that are not UTF-8 included."""
        return exact_bytes(self.object)

    @property
    def connection_type_name(self) -> str | None:
        """The connection type as a name, also where RDS wrote MySQL's number for it."""
        if self.connection_type is None:
            return None
        return CONNECTION_TYPES.get(self.connection_type, self.connection_type)

    @property
    def client_host(self) -> str:
        """The client's host or address, without the port MariaDB 12 writes after it."""
        return client_address(self.host, self.dialect).host

    @property
    def client_port(self) -> int | None:
        """The client's TCP port where the host field carries one (``host:port``, MariaDB
        12 and Enterprise 12.3); ``None`` for ``host:unavailable`` (a socket or named
        pipe), a host without a port, and an IPv6 address whose port cannot be told apart
        from its last group (docs/line-grammar.md)."""
        return client_address(self.host, self.dialect).port

    @property
    def failed(self) -> bool:
        """True for records the server logged with a non-zero return code."""
        return bool(self.retcode)


class Form(enum.IntEnum):
    """How a field's value is written out, chosen by its annotation (:data:`FORMS`).

    The JSON form (docs/sinks.md) of each: ``TEXT`` a string (``null`` too if
    ``OPTIONAL_TEXT``); ``INTEGER`` a number (or ``null``); ``FLAG`` ``true``/``false``;
    ``TIMESTAMP`` ``"2024-01-31T14:02:07.000000Z"``; ``DIALECT`` its name; ``ORIGIN`` an
    object of the origin's fields, or ``null``, written after every other member. The SQL
    sinks give each form a column type and flatten the origin into ``origin_*`` columns.
    The numbers are what the C writer is told (auditsync/_c_json.c).
    """

    TEXT = 1
    OPTIONAL_TEXT = 2
    INTEGER = 3
    OPTIONAL_INTEGER = 4
    FLAG = 5
    TIMESTAMP = 6
    DIALECT = 7
    ORIGIN = 8

    @property
    def optional(self) -> bool:
        """Whether a value of this form may be ``None``: its column is nullable."""
        return self in (Form.OPTIONAL_TEXT, Form.OPTIONAL_INTEGER, Form.ORIGIN)


#: The form of each annotation a field of :class:`AuditEvent` or :class:`Origin` may have.
FORMS: Final = {
    "str": Form.TEXT,
    "str | None": Form.OPTIONAL_TEXT,
    "int": Form.INTEGER,
    "int | None": Form.OPTIONAL_INTEGER,
    "bool": Form.FLAG,
    "datetime": Form.TIMESTAMP,
    "Dialect": Form.DIALECT,
    "Origin | None": Form.ORIGIN,
}


class Field(NamedTuple):
    """A field of a value class: its name and how it is written."""

    name: str
    form: Form


def _fields_of(kind: type) -> tuple[Field, ...]:
    """The fields of an attrs class, in order, with their forms; an annotation with no
    form stops the import, so a new field cannot go unwritten by the sinks."""
    fields = []
    for field in attrs.fields(kind):
        form = FORMS.get(str(field.type))
        if form is None:
            raise TypeError(f"{kind.__name__}.{field.name}: no Form for {field.type!r}")
        fields.append(Field(field.name, form))
    return tuple(fields)


def compiled(
    parameters: str, expression: str, namespace: dict[str, Any] | None = None
) -> Callable[..., Any]:
    """``lambda parameters: expression``, for code that the field table writes: an
    expression that names each field reads it at bytecode speed, several times faster
    than a loop over the table with ``getattr`` (attrs builds ``__init__`` the same way).
    The JSON, SQL and key code read every field of every event."""
    return cast(Callable[..., Any], eval(f"lambda {parameters}: {expression}", namespace or {}))


def field_reads(value: str, names: Iterable[str]) -> list[str]:
    """``value.name`` for each name, checked to be one."""
    names = tuple(names)
    if not all(name.isidentifier() for name in names):
        raise ValueError(f"not field names: {names}")
    return [f"{value}.{name}" for name in names]


def values_of(names: Iterable[str]) -> Callable[[Any], tuple[Any, ...]]:
    """``operator.attrgetter(*names)``, compiled: the values of those fields, in order."""
    return compiled("value", f"({''.join(read + ', ' for read in field_reads('value', names))})")


#: The event's fields, in order: the one list that JSON, SQL and the C code follow.
EVENT_FIELDS: Final = _fields_of(AuditEvent)
#: The origin's fields, in order.
ORIGIN_FIELDS: Final = _fields_of(Origin)
#: The origin's derived members, in order: written after its fields, never read back.
ORIGIN_DERIVED: Final = _fields_of(OriginDerived)
if {field.name for field in ORIGIN_FIELDS} & {field.name for field in ORIGIN_DERIVED} or any(
    field.form is Form.ORIGIN for field in ORIGIN_DERIVED
):
    raise TypeError("OriginDerived: a member named as a field of Origin, or an origin in it")
#: The derived members of an origin (:func:`derived_of` of its :data:`ORIGIN_DERIVED_FROM`).
origin_derived: Callable[[Origin], OriginDerived] = compiled(
    "origin",
    f"derived_of({field_reads('origin', [ORIGIN_DERIVED_FROM])[0]})",
    {"derived_of": derived_of},
)
#: The version of the key's definition (:attr:`AuditEvent.key`, docs/keys.md).
KEY_VERSION: Final = 1
#: The key's record: these fields of the event, in this order, each as text by its form
#: (text as it is, a number in decimal, ``None`` as nothing, a set flag as its name, the
#: time as ``isoformat()``), joined by U+001F. Keys are stored: never change it.
KEY_RECORD: Final = (
    "serverhost",
    "timestamp",
    "username",
    "host",
    "connection_id",
    "query_id",
    "operation",
    "database",
    "object",
    "retcode",
    "connection_type",
    "truncated",
)
#: The key's place: these fields of the origin and an event id (a dead letter's, or
#: ``None``), as the ``repr()`` of their tuple after U+001D, where any of them is known.
KEY_PLACE: Final = ("log_group", "log_stream", "shard_id", "sequence_number", "path", "line_number")
#: The digest's size in bytes: BLAKE2b of the key's text in UTF-8, in hex.
KEY_DIGEST_SIZE: Final = 16


@attrs.frozen(slots=True)
class DeadLetter:
    """A record auditsync could not deliver, kept whole so nothing is lost in silence.

    ``stage`` says where it failed: ``"source"`` (a file that could not be read to its
    end), ``"payload"`` (base64/gzip), ``"envelope"`` (the subscription JSON), ``"line"``
    (not an audit line), ``"suspect"`` (a line that reads, but that a raw newline in a
    name may have forged: docs/security.md) or ``"sink"`` (a sink refused it).
    ``raw`` is the input of that stage, byte for byte; ``event`` is set for refusals.
    """

    stage: str
    error: str
    raw: bytes
    origin: Origin | None = None
    event: AuditEvent | None = None

    @property
    def key(self) -> str:
        """A stable key for idempotent dead-letter sinks: the stage, the raw input, its place.

        The error message is left out on purpose: it may change between versions, and a
        retried record must still find its first copy.
        """
        parts = [self.stage, self.raw.hex()]
        if self.event is not None:
            parts.append(self.event.key)
        return _digest(parts, self.origin, with_event_id=True)


def _digest(parts: Iterable[str], origin: Origin | None, *, with_event_id: bool = False) -> str:
    """The digest of ``parts`` and, where known, the place in the source; one hash call."""
    text = "\x1f".join(parts)
    if origin is not None:
        text += _place(origin, origin.event_id if with_event_id else None)
    return _blake2b_128(text)


def _blake2b_128(text: str) -> str:
    """The digest keys are made of: BLAKE2b of the text's UTF-8 (lone surrogates, which
    ``surrogateescape`` text holds, in their three-byte form), in hex."""
    digest = _KEY_HASH.copy()
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


#: The key's hash fed nothing, copied for each key: cheaper than the constructor, whose
#: keyword argument is parsed on every call (the C writer does the same).
_KEY_HASH: Final = hashlib.blake2b(digest_size=KEY_DIGEST_SIZE)


def _place(origin: Origin, event_id: str | None) -> str:
    """U+001D and the repr of the place tuple (:data:`KEY_PLACE`, then ``event_id``), or
    ``""`` where the origin knows none of it."""
    if _nowhere(origin, event_id):
        return ""
    return _place_text(origin, event_id)  # type: ignore[no-any-return]


#: ``isoformat()`` of recent UTC timestamps: every line of a second has the same one.
_ISOFORMAT: dict[datetime, str] = {}
_ISOFORMAT_SIZE = 1024


def _isoformat(moment: datetime) -> str:
    """``moment.isoformat()``, from a small cache for plain UTC datetimes.

    Only exact ``datetime`` objects in :data:`datetime.UTC` are cached: datetimes of other
    zones compare equal to the UTC instant they name, yet write a different text.
    """
    if moment.tzinfo is not UTC or type(moment) is not datetime:
        return moment.isoformat()
    text = _ISOFORMAT.get(moment)
    if text is None:
        text = moment.isoformat()
        if len(_ISOFORMAT) >= _ISOFORMAT_SIZE:
            _ISOFORMAT.clear()
        _ISOFORMAT[moment] = text
    return text


#: The port word MariaDB Enterprise 12.3 (and, by its tests, MariaDB 12) writes for
#: clients on a Unix socket or a named pipe.
UNAVAILABLE_PORT: Final = "unavailable"


def _port(text: str) -> int | None:
    """A TCP port, 0-65535 in ASCII digits, or None."""
    if 0 < len(text) <= 5 and text.isdigit() and text.isascii() and int(text) <= 65535:
        return int(text)
    return None


def host_has_port(host: str) -> bool:
    """Whether the host field is written ``host:port`` (the port digits, or ``unavailable``).

    An IPv6 address alone ends in a colon and a group of hex digits too (``::1``), so this
    says only that the field *may* carry a port; :func:`client_address` decides what it is.
    """
    _, colon, port = host.rpartition(":")
    return bool(colon) and (port == UNAVAILABLE_PORT or _port(port) is not None)


class ClientAddress(NamedTuple):
    """Where a client connected from: its host or address, and its TCP port if known."""

    host: str
    port: int | None


def client_address(host: str, dialect: Dialect) -> ClientAddress:
    """``host`` split into the client's address and port (see :attr:`AuditEvent.client_port`).

    ``[addr]:port`` and a single colon are unambiguous. An unbracketed IPv6 address with a
    port (``2001:db8::7:54312``) is split only in the Enterprise dialect, whose host field
    always carries a port; elsewhere its last group may be part of the address.
    """
    address, colon, port = host.rpartition(":")
    if not colon:
        return ClientAddress(host, None)
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    elif ":" in address and dialect is not Dialect.MARIADB_ENTERPRISE:
        return ClientAddress(host, None)
    if port == UNAVAILABLE_PORT:
        return ClientAddress(address, None)
    number = _port(port)
    return ClientAddress(address, number) if number is not None else ClientAddress(host, None)


def exact_bytes(text: str) -> bytes:
    """The bytes ``text`` was decoded from with ``surrogateescape``.

    A lone surrogate outside the escape range cannot come from decoding; should a caller
    build one, it is written in its three-byte form rather than failing the batch.
    """
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return b"".join(
            char.encode(
                "utf-8", "surrogateescape" if "\udc80" <= char <= "\udcff" else "surrogatepass"
            )
            for char in text
        )


# --- the key's record, written as KEY_RECORD says ------------------------------------------


#: How a value of each form is written into the key's record (``{v}`` the value, ``{n}``
#: the field's name): text as it is, a number in decimal, ``None`` as nothing, a set
#: flag as its name, the time as ``isoformat()``.
_KEY_TEXT: Final = {
    Form.TEXT: "{v}",
    Form.OPTIONAL_TEXT: "({v} or '')",
    Form.INTEGER: "str({v})",
    Form.OPTIONAL_INTEGER: "('' if {v} is None else str({v}))",
    Form.FLAG: "({n!r} if {v} else '')",
    Form.TIMESTAMP: "_isoformat({v})",
}
_FORM_OF = {field.name: field.form for field in EVENT_FIELDS}
#: The key's record of an event: KEY_RECORD's fields, each written by its form.
_key_record = compiled(
    "event",
    "'\\x1f'.join(("
    + "".join(
        _KEY_TEXT[_FORM_OF[name]].format(v=read, n=name) + ", "
        for name, read in zip(KEY_RECORD, field_reads("event", KEY_RECORD), strict=True)
    )
    + "))",
    {"_isoformat": _isoformat},
)
_PLACE = [*field_reads("origin", KEY_PLACE), "event_id"]
#: Whether the place is unknown: no part of it known.
_nowhere = compiled("origin, event_id", " and ".join(f"{read} is None" for read in _PLACE))
#: ``"\x1d"`` and the repr of the place tuple, written out: ``repr(None)`` is slow.
_place_text = compiled(
    "origin, event_id",
    "'\\x1d(' + ', '.join(("
    + "".join(f"'None' if {read} is None else repr({read}), " for read in _PLACE)
    + ")) + ')'",
)
