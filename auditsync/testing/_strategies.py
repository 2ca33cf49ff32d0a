"""Hypothesis strategies for auditsync's inputs and values (see :mod:`auditsync.testing`).

They generate what the server and AWS can produce — events of every dialect, their lines,
subscription messages, and the Lambda events that carry them — inside the domain where
a line can be read back without ambiguity (see docs/line-grammar.md: a table event whose
database *and* table hold commas cannot be split, so these strategies never make one).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import attrs
from hypothesis import strategies as st

from .._auditlog import format_line
from .._envelope import CONTROL_MESSAGE, DATA_MESSAGE, LogEvent, SubscriptionMessage
from .._events import (
    CONNECTION_OPERATIONS,
    TABLE_OPERATIONS,
    TLS_OPERATIONS,
    AuditEvent,
    Dialect,
)
from ._builders import firehose_event, kinesis_event, subscription_event, to_payload

_CONTROL_TEXT = "CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."

_SPECIALS = "',\"\\`|.@% ;()\n\r\t\b\f\x00\x1a\x7f"
#: Query text: anything a client can send, including bytes that are not UTF-8, which
#: the parser keeps as ``surrogateescape`` characters.
_query_chars = st.one_of(
    st.characters(codec="utf-8", exclude_categories=["Cs"]),
    st.sampled_from(_SPECIALS),
    st.sampled_from([chr(0xDC80 + byte) for byte in range(128)]),
)


def query_texts(max_size: int = 200) -> st.SearchStrategy[str]:
    """Query text with the characters parsers get wrong: quotes, escapes, controls, bytes.

    Canonical, as ``parse_line`` of bytes makes it: escaped bytes that happen to form
    valid UTF-8 (``"\\udcc2\\udc80"``) are folded into the character they encode.
    """
    return st.text(_query_chars, max_size=max_size).map(_canonical)


def _canonical(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")


# Names are written raw. A user name may hold commas but no digits, so no run of it can
# pass for the ",host,connection,query,OPERATION," anchor.
_user_names = st.text(st.sampled_from("abcxyzAZ_ ,'@.-%$é"), max_size=12)
_host_names = st.text(st.sampled_from("abcxyz0123456789.-:_"), max_size=20)
_server_hosts = st.text(st.sampled_from("abcxyz0123456789.-_"), min_size=1, max_size=20)
_database_names = st.text(st.sampled_from("abcxyz0129_$ ,'.é"), max_size=12)
_table_names = st.text(st.sampled_from("abcxyz0129_$ '.é#"), max_size=12)
#: MariaDB Enterprise 12.3 writes every host ``host:port``, ``unavailable`` for sockets.
_ports = st.one_of(st.integers(0, 65535).map(str), st.just("unavailable"))
_host_ports = st.one_of(
    st.builds("{}:{}".format, st.text(st.sampled_from("abcxyz0123456789.-_"), max_size=15), _ports),
    st.builds("[{}]:{}".format, st.sampled_from(["::1", "2001:db8::7", "fe80::1%eth0"]), _ports),
)
#: What OpenSSL names the protocols; empty where the connection is not encrypted.
_tls_versions = st.sampled_from(["", "", "TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1", "SSLv3"])
#: Enterprise RENAME names four names: none may hold a comma or a bar, and the new
#: database no dot, for the line to be read one way and ``old|newdb.new`` to be written
#: back as the server wrote it (docs/line-grammar.md).
_rename_names = st.text(st.sampled_from("abcxyz0129_$ '.é#"), max_size=12)


def _timestamps(dialect: Dialect) -> st.SearchStrategy[datetime]:
    moments = st.datetimes(min_value=datetime(2002, 1, 1), max_value=datetime(2099, 12, 31))
    if dialect is not Dialect.AURORA:
        moments = moments.map(lambda moment: moment.replace(microsecond=0))
    return moments.map(lambda moment: moment.replace(tzinfo=UTC))


@st.composite
def audit_events(draw: st.DrawFn, dialect: Dialect | None = None) -> AuditEvent:
    """An event of ``dialect`` (any concrete one by default) that its line reads back as.

    MariaDB Enterprise's events are those only it writes: connection records with their
    TLS version, and RENAMEs of four names; its other records read as MariaDB's.
    """
    chosen = dialect or draw(
        st.sampled_from(
            [Dialect.MARIADB, Dialect.AURORA, Dialect.RDS_MYSQL, Dialect.MARIADB_ENTERPRISE]
        )
    )
    if chosen is Dialect.MARIADB_ENTERPRISE:
        return draw(_enterprise_events())
    kinds = ["query", "connection"] + ([] if chosen is Dialect.RDS_MYSQL else ["table"])
    kind = draw(st.sampled_from(kinds))
    connection_type = None
    truncated = False
    database = draw(_database_names)
    if kind == "query":
        operation = "QUERY"
        obj = draw(query_texts())
        # A line cut inside the quote carries no RDS marker, so it reads back as MariaDB.
        truncated = draw(st.booleans()) and "'" not in database and chosen is not Dialect.RDS_MYSQL
        retcode = None if truncated else draw(st.integers(0, 5000))
    elif kind == "connection":
        operation = draw(st.sampled_from(sorted(CONNECTION_OPERATIONS)))
        if operation == "PROXY_CONNECT":
            database = database.replace(",", "")
            obj = f"`{draw(_user_names)}`@`{draw(_host_names)}`"
        else:
            obj = "" if chosen is not Dialect.MARIADB else draw(st.sampled_from(["", "TLSv1.3"]))
        retcode = draw(st.sampled_from([0, 0, 1045, 1044]))
        if chosen is Dialect.RDS_MYSQL:
            connection_type = draw(st.sampled_from(["TCP/IP", "SSL", "SOCKET", "1", "4"]))
    else:
        operation = draw(st.sampled_from(sorted(TABLE_OPERATIONS)))
        obj = draw(_table_names)
        if operation == "RENAME":  # the table's old name, then where it went
            obj += f"|{draw(_database_names)}.{draw(_table_names)}"
        retcode = draw(st.integers(0, 1)) if chosen is Dialect.AURORA else None
    return AuditEvent(
        timestamp=draw(_timestamps(chosen)),
        serverhost=draw(_server_hosts),
        username=draw(_user_names),
        host=draw(_host_names),
        connection_id=draw(st.integers(0, 2**32 - 1)),
        query_id=0 if kind == "connection" else draw(st.integers(0, 2**63 - 1)),
        operation=operation,
        database=database,
        object=obj,
        retcode=retcode,
        connection_type=connection_type,
        truncated=truncated,
        dialect=chosen,
    )


@st.composite
def _enterprise_events(draw: st.DrawFn) -> AuditEvent:
    dialect = Dialect.MARIADB_ENTERPRISE
    tls_version = None
    if draw(st.booleans()):
        operation = draw(st.sampled_from(sorted(TLS_OPERATIONS)))
        query_id = 0
        database, obj = draw(_database_names), ""
        retcode: int | None = draw(st.sampled_from([0, 0, 1045, 1044]))
        tls_version = draw(_tls_versions)
    else:
        operation, query_id, retcode = "RENAME", draw(st.integers(0, 2**63 - 1)), None
        names = _rename_names.filter(lambda name: "," not in name)
        database, old, table = draw(names), draw(names), draw(names)
        newdb = draw(names.filter(lambda name: "." not in name))
        obj = f"{old}|{newdb}.{table}"
    return AuditEvent(
        timestamp=draw(_timestamps(dialect)),
        serverhost=draw(_server_hosts),
        username=draw(_user_names),
        host=draw(_host_ports),
        connection_id=draw(st.integers(0, 2**32 - 1)),
        query_id=query_id,
        operation=operation,
        database=database,
        object=obj,
        retcode=retcode,
        dialect=dialect,
        tls_version=tls_version,
    )


def audit_lines(dialect: Dialect | None = None) -> st.SearchStrategy[str]:
    """Well-formed server_audit lines, as the server writes them (timestamps in UTC)."""
    return audit_events(dialect).map(format_line)


def _log_events(lines: st.SearchStrategy[str]) -> st.SearchStrategy[LogEvent]:
    return st.builds(
        LogEvent,
        id=st.integers(0, 10**56).map(lambda number: f"{number:056d}"),
        timestamp=st.integers(0, 2**42),
        message=lines,
    )


def _cloudwatch_safe(line: str) -> str:
    """CloudWatch stores UTF-8 JSON: bytes that are not UTF-8 arrive replaced."""
    return line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@st.composite
def subscription_messages(
    draw: st.DrawFn,
    lines: st.SearchStrategy[str] | None = None,
    max_events: int = 5,
) -> SubscriptionMessage:
    """A DATA_MESSAGE as a subscription filter delivers it; ``lines`` default to audit
    lines of one server — one dialect, one server host, both named in the log stream: a
    log stream is one server's log (where neighbours differ in either, auditsync may judge
    them parts of one record a name split: docs/security.md)."""
    dialect = draw(st.sampled_from([Dialect.MARIADB, Dialect.AURORA, Dialect.RDS_MYSQL]))
    host = draw(_server_hosts)
    one_server = audit_events(dialect).map(lambda event: attrs.evolve(event, serverhost=host))
    source = (lines or one_server.map(format_line)).map(_cloudwatch_safe)
    cluster = draw(st.text(st.sampled_from("abc-123"), min_size=1, max_size=10))
    instance = f"{cluster}-{dialect.value}-{host}"
    return SubscriptionMessage(
        message_type=DATA_MESSAGE,
        owner=draw(st.from_regex(r"\d{12}", fullmatch=True)),
        log_group=f"/aws/rds/cluster/{cluster}/audit",
        log_stream=f"{instance}.audit.log.{draw(st.integers(0, 3))}",
        subscription_filters=("to-kinesis",),
        log_events=tuple(draw(st.lists(_log_events(source), min_size=1, max_size=max_events))),
        policy_level=draw(st.sampled_from([None, "ACCOUNT_LEVEL_POLICY"])),
    )


def control_messages() -> st.SearchStrategy[SubscriptionMessage]:
    """The reachability check CloudWatch sends when a subscription is created."""
    return _log_events(st.just(_CONTROL_TEXT)).map(
        lambda event: SubscriptionMessage(
            message_type=CONTROL_MESSAGE,
            owner="CloudwatchLogs",
            log_group="",
            log_stream="",
            subscription_filters=(),
            log_events=(event,),
        )
    )


def kinesis_events(max_records: int = 5) -> st.SearchStrategy[dict[str, Any]]:
    """Lambda Kinesis events of data and control messages."""
    messages = st.one_of(subscription_messages(), control_messages()).map(to_payload)
    return st.lists(messages, min_size=1, max_size=max_records).map(kinesis_event)


def subscription_events() -> st.SearchStrategy[dict[str, Any]]:
    """Lambda events from a subscription filter: ``{"awslogs": {"data": ...}}``."""
    return st.one_of(subscription_messages(), control_messages()).map(
        lambda message: subscription_event(to_payload(message))
    )


def firehose_events(max_records: int = 5) -> st.SearchStrategy[dict[str, Any]]:
    """Firehose data-transformation events of CloudWatch Logs records."""
    messages = st.one_of(subscription_messages(), control_messages()).map(to_payload)
    return st.lists(messages, min_size=1, max_size=max_records).map(firehose_event)


@st.composite
def mutations(
    draw: st.DrawFn, data: bytes, inserts: st.SearchStrategy[bytes] | None = None
) -> bytes:
    """``data`` with a few bytes flipped, cut, inserted, deleted or repeated: damaged input
    for properties that say a reader raises nothing but its own errors. ``inserts`` adds
    bytes the format cares about (``{`` and ``"`` for JSON) to the random ones."""
    extra = st.binary(min_size=1, max_size=4) | (inserts if inserts is not None else st.nothing())
    buffer = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.integers(0, len(buffer)))
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "duplicate"]))
        if kind == "flip" and where < len(buffer):
            buffer[where] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del buffer[where:]
        elif kind == "insert":
            buffer[where:where] = draw(extra)
        elif kind == "delete":
            del buffer[where : where + draw(st.integers(1, 8))]
        elif kind == "duplicate":
            buffer[where:where] = buffer[where : where + draw(st.integers(1, 32))]
    return bytes(buffer)
