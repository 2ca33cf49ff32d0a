"""The values the pipeline produces: :class:`AuditEvent` and where it came from, :class:`Origin`.

An event is created once per audit line, so it is a slotted, frozen attrs class with no
validators: :func:`auditsync.parse_line` is the only place that needs to check anything,
and it checks the line, not the object.
"""

from __future__ import annotations

import enum
import functools
import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from .sql import Statement

__all__ = ["CONNECTION_TYPES", "AuditEvent", "DeadLetter", "Dialect", "Origin", "exact_bytes"]


class Dialect(enum.StrEnum):
    """The line layouts of the server_audit family (see docs/line-grammar.md).

    It lives here, beside the event that records it, so that the grammar in
    :mod:`auditsync.auditlog` can import the event without a cycle.
    """

    AUTO = "auto"
    MARIADB = "mariadb"
    AURORA = "aurora"
    RDS_MYSQL = "rds-mysql"


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


@attrs.frozen(slots=True)
class AuditEvent:
    """One server_audit record.

    ``object`` is the unescaped query text of QUERY events, the table of table events,
    ``old|newdb.new`` of RENAME, the proxied user of PROXY_CONNECT and, on MariaDB 12,
    the TLS version of connection records. Query bytes that are not UTF-8 are kept as
    ``surrogateescape`` characters: :attr:`object_bytes` gives back the server's bytes.
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

    @property
    def key(self) -> str:
        """A stable idempotency key for sinks.

        The CloudWatch log event id where there is one. Otherwise a digest of the record
        and its place in its source (file and line; Kinesis shard and sequence number; log
        group and stream): the server writes identical lines for distinct events (one
        statement writing a table five times), so the record alone is no key.
        """
        origin = self.origin
        if origin is not None and origin.event_id:
            return origin.event_id
        return _digest(self._identity(), origin)

    def _identity(self) -> tuple[str, ...]:
        return (
            self.serverhost,
            self.timestamp.isoformat(),
            self.username,
            self.host,
            str(self.connection_id),
            str(self.query_id),
            self.operation,
            self.database,
            self.object,
            "" if self.retcode is None else str(self.retcode),
            self.connection_type or "",
            "truncated" if self.truncated else "",
        )

    @functools.cached_property
    def statement(self) -> Statement | None:
        """What a QUERY event's statement does (:func:`auditsync.sql.classify`), once."""
        if self.operation != "QUERY":
            return None
        from .sql import classify  # its patterns compile on first use, not at import

        return classify(self.object)

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
    def failed(self) -> bool:
        """True for records the server logged with a non-zero return code."""
        return bool(self.retcode)


@attrs.frozen(slots=True)
class DeadLetter:
    """A record auditsync could not deliver, kept whole so nothing is lost in silence.

    ``stage`` says where it failed: ``"source"`` (a file that could not be read to its
    end), ``"payload"`` (base64/gzip), ``"envelope"`` (the subscription JSON), ``"line"``
    (not an audit line) or ``"sink"`` (a sink refused it).
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
    """blake2b of ``parts`` and, where known, the place in the source; one hash call."""
    text = "\x1f".join(parts)
    if origin is not None:
        place = (
            origin.log_group,
            origin.log_stream,
            origin.shard_id,
            origin.sequence_number,
            origin.path,
            origin.line_number,
            origin.event_id if with_event_id else None,
        )
        if place != _NOWHERE:
            text += f"\x1d{place}"
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


_NOWHERE = (None,) * 7


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
