"""The server_audit line grammar: every dialect, escapes, names with commas, errors."""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from auditsync import (
    AuditEvent,
    AuditSyncError,
    Dialect,
    LineError,
    Origin,
    format_line,
    parse_line,
)
from auditsync import _auditlog as auditlog
from auditsync.testing import audit_events, audit_lines, query_texts

T0 = "20240131 14:02:07"
HEAD = f"{T0},db1,root,localhost,5,12"


def server_escape(text: str) -> str:
    """What server_audit.c's escape_string writes, restated here so tests can catch the parser."""
    table = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", "'": "\\'"}
    table["\\"] = "\\\\"
    return "".join(table.get(char, char) for char in text)


def query_line(query: str, retcode: int = 0, head: str = HEAD, database: str = "shop") -> str:
    return f"{head},QUERY,{database},'{server_escape(query)}',{retcode}"


# --- dialects -------------------------------------------------------------------------------


def test_mariadb_query_line() -> None:
    event = parse_line(query_line("select 'a,b', \"c\" from t"))
    assert event == AuditEvent(
        timestamp=datetime(2024, 1, 31, 14, 2, 7, tzinfo=UTC),
        serverhost="db1",
        username="root",
        host="localhost",
        connection_id=5,
        query_id=12,
        operation="QUERY",
        database="shop",
        object="select 'a,b', \"c\" from t",
        retcode=0,
        dialect=Dialect.MARIADB,
    )


def test_aurora_epoch_microseconds_and_table_retcode() -> None:
    line = "1653053459680124,c731-instance-1,admin,52.94.133.136,35,698024,WRITE,testdb,test2,0"
    event = parse_line(line)
    assert event.dialect is Dialect.AURORA
    assert event.timestamp == datetime(2022, 5, 20, 13, 30, 59, 680124, tzinfo=UTC)
    assert (event.operation, event.database, event.object, event.retcode) == (
        "WRITE",
        "testdb",
        "test2",
        0,
    )
    assert format_line(event) == line


def test_rds_mysql_connection_type_and_query_trailer() -> None:
    connect = parse_line(
        "20221201 14:07:05,ip-10-22-1-51,rdsadmin,localhost,821,0,CONNECT,,,0,SOCKET"
    )
    assert connect.dialect is Dialect.RDS_MYSQL
    assert connect.connection_type == "SOCKET"
    assert connect.retcode == 0
    query = parse_line(
        "20230501 10:02:19,ip-10-1-0-50,rdsadmin,localhost,7,585281,QUERY,,"
        "'select * from t where (type <> \\'BACKGROUND\\')',0,,"
    )
    assert query.dialect is Dialect.RDS_MYSQL
    assert query.object == "select * from t where (type <> 'BACKGROUND')"
    assert query.retcode == 0


@pytest.mark.parametrize(("written", "name"), [("1", "TCP/IP"), ("4", "SSL"), ("TCP/IP", "TCP/IP")])
def test_rds_connection_type_as_number_or_name(written: str, name: str) -> None:
    event = parse_line(f"{HEAD[:-3]},9,0,DISCONNECT,app,,0,{written}")
    assert event.dialect is Dialect.RDS_MYSQL
    assert event.connection_type == written
    assert event.connection_type_name == name


def test_mariadb_connection_records() -> None:
    connect = parse_line(f"{T0},db1,app,10.0.0.7,9,0,CONNECT,shop,,0")
    failed = parse_line(f"{T0},db1,app,10.0.0.7,9,0,FAILED_CONNECT,,,1045")
    assert (connect.operation, connect.database, connect.object, connect.retcode) == (
        "CONNECT",
        "shop",
        "",
        0,
    )
    assert failed.retcode == 1045
    assert failed.failed
    assert not connect.failed
    assert connect.connection_type is None


def test_mariadb_12_host_port_and_tls_version() -> None:
    event = parse_line("20260731 09:14:22,mdb1,root,192.168.1.24:54312,7,0,CONNECT,mysql,TLSv1.3,0")
    assert (event.host, event.database, event.object, event.dialect) == (
        "192.168.1.24:54312",
        "mysql",
        "TLSv1.3",
        Dialect.MARIADB,
    )


def test_mariadb_12_custom_timestamp_format_is_kept_verbatim() -> None:
    line = "20231207T13:14:28.000000+0100,mdbe106,root,localhost,4,0,CONNECT,,,0"
    event = parse_line(line)
    assert event.timestamp == datetime(2023, 12, 7, 12, 14, 28, tzinfo=UTC)
    assert event.prefix == "20231207T13:14:28.000000+0100,"
    assert format_line(event) == line


def test_proxy_connect_object() -> None:
    event = parse_line(f"{T0},db1,app,localhost,9,0,PROXY_CONNECT,shop,`admin`@`%`,0")
    assert (event.database, event.object, event.retcode) == ("shop", "`admin`@`%`", 0)


def test_table_events_have_no_retcode_on_mariadb() -> None:
    event = parse_line(f"{HEAD},WRITE,mysql,table_stats,")
    assert (event.operation, event.database, event.object, event.retcode) == (
        "WRITE",
        "mysql",
        "table_stats",
        None,
    )


def test_rename_object() -> None:
    event = parse_line(f"{HEAD},RENAME,test,t1|test.renamed_t1,")
    assert event.object == "t1|test.renamed_t1"


# --- MariaDB 12 and MariaDB Enterprise Server 12.3 (docs/server-observations.md) -----------

#: The two examples of MariaDB's Enterprise Audit documentation, "Changed in MariaDB
#: Enterprise Server 12.3": an encrypted TCP client, and a socket client without TLS.
ES_TLS = "20260731 09:14:22,mdbe123,root,192.168.1.24:54312,7,0,CONNECT,mysql,,0,TLSv1.3"
ES_SOCKET = "20260731 09:15:03,mdbe123,app,localhost:unavailable,8,0,CONNECT,,,0,"
ES_HEAD = "20260731 09:15:03,mdbe123,app,10.0.0.7:40112,8,0"


@pytest.mark.parametrize("dialect", ["auto", "mariadb-enterprise"])
def test_enterprise_12_3_connection_records_carry_the_tls_version(dialect: str) -> None:
    encrypted, plain = parse_line(ES_TLS, dialect=dialect), parse_line(ES_SOCKET, dialect=dialect)
    assert encrypted == AuditEvent(
        timestamp=datetime(2026, 7, 31, 9, 14, 22, tzinfo=UTC),
        serverhost="mdbe123",
        username="root",
        host="192.168.1.24:54312",
        connection_id=7,
        query_id=0,
        operation="CONNECT",
        database="mysql",
        object="",
        retcode=0,
        dialect=Dialect.MARIADB_ENTERPRISE,
        tls_version="TLSv1.3",
    )
    # Today's reader took this one as database ",", object "0" and no return code.
    assert (plain.database, plain.object, plain.retcode, plain.tls_version) == ("", "", 0, "")
    assert plain.dialect is Dialect.MARIADB_ENTERPRISE
    assert (encrypted.client_host, encrypted.client_port) == ("192.168.1.24", 54312)
    assert (plain.client_host, plain.client_port) == ("localhost", None)
    assert format_line(encrypted) == ES_TLS
    assert format_line(plain) == ES_SOCKET


@pytest.mark.parametrize("operation", ["FAILED_CONNECT", "DISCONNECT", "CHANGEUSER"])
@pytest.mark.parametrize("tls", ["", "TLSv1.2", "TLSv1", "SSLv3", "DTLSv1.2", "unknown"])
def test_every_connection_operation_but_proxy_carries_it(operation: str, tls: str) -> None:
    line = f"{ES_HEAD},{operation},shop,,1045,{tls}"
    event = parse_line(line)
    assert (event.operation, event.database, event.object, event.retcode) == (
        operation,
        "shop",
        "",
        1045,
    )
    assert (event.tls_version, event.dialect) == (tls, Dialect.MARIADB_ENTERPRISE)
    assert format_line(event) == line


def test_a_database_with_commas_keeps_them_beside_the_eleventh_field() -> None:
    event = parse_line(f"{ES_HEAD},CONNECT,a,b,,0,TLSv1.3")
    assert (event.database, event.object, event.retcode, event.tls_version) == (
        "a,b",
        "",
        0,
        "TLSv1.3",
    )


def test_proxy_connect_carries_no_eleventh_field() -> None:
    line = f"{ES_HEAD},PROXY_CONNECT,shop,`admin`@`%`,0"
    event = parse_line(line)
    assert (event.object, event.retcode, event.tls_version) == ("`admin`@`%`", 0, None)
    assert event.dialect is Dialect.MARIADB
    assert format_line(event) == line
    for ending in (",", ",TLSv1.3"):
        with pytest.raises(LineError):
            parse_line(line + ending)


@pytest.mark.parametrize(
    "line",
    [
        # Ten fields and a host without a port: today's reader shifted the fields of both.
        f"{HEAD},CONNECT,shop,,0,",
        f"{HEAD},CONNECT,,,0,",
        f"{HEAD},CONNECT,shop,,0,TLSv1.3",
        # The eleventh field is not a TLS protocol, or no status stands before it.
        f"{ES_HEAD},CONNECT,shop,,0,TLSv1.3x",
        f"{ES_HEAD},CONNECT,shop,,x,TLSv1.3",
        f"{ES_HEAD},CONNECT,shop,,,TLSv1.3",
        f"{ES_HEAD},CONNECT,shop,TLSv1.3,",
        f"{ES_HEAD},DISCONNECT,shop,,0,1,",  # an object before the status
        f"{ES_HEAD},CONNECT,shop,TLSv1.3,0,TLSv1.3",
    ],
)
def test_lines_that_fit_neither_layout_are_refused(line: str) -> None:
    with pytest.raises(LineError):
        parse_line(line)


@pytest.mark.parametrize("dialect", ["mariadb", "aurora"])
def test_the_eleventh_field_is_refused_in_dialects_that_never_write_it(dialect: str) -> None:
    for line in (ES_TLS, ES_SOCKET):
        with pytest.raises(LineError):
            parse_line(line, dialect=dialect)


@pytest.mark.parametrize(
    ("tail", "database", "obj", "retcode", "connection_type", "dialect"),
    [
        # MariaDB 12: host:port, the TLS version in the object, ten fields.
        ("CONNECT,mysql,TLSv1.3,0", "mysql", "TLSv1.3", 0, None, Dialect.MARIADB),
        ("CONNECT,mysql,,0", "mysql", "", 0, None, Dialect.MARIADB),
        # A database ending in what looks like an empty TLS field: the status is last.
        ("CONNECT,x,,,0", "x,", "", 0, None, Dialect.MARIADB),
        # RDS connection types are no TLS protocol names (SSL is RDS's, not OpenSSL's).
        ("CONNECT,,,0,SSL", "", "", 0, "SSL", Dialect.RDS_MYSQL),
        ("CONNECT,,,0,SOCKET", "", "", 0, "SOCKET", Dialect.RDS_MYSQL),
        ("CONNECT,,,0,1", "", "", 0, "1", Dialect.RDS_MYSQL),
    ],
)
def test_lines_that_look_like_both_layouts_read_one_documented_way(
    tail: str, database: str, obj: str, retcode: int, connection_type: str | None, dialect: Dialect
) -> None:
    for host in ("10.0.0.7:40112", "localhost:unavailable", "::1", "[::1]:3306"):
        line = f"{T0},db1,app,{host},8,0,{tail}"
        event = parse_line(line)
        assert (event.database, event.object, event.retcode) == (database, obj, retcode)
        assert (event.connection_type, event.tls_version, event.dialect) == (
            connection_type,
            None,
            dialect,
        )
        assert format_line(event) == line


@pytest.mark.parametrize("host", ["localhost", "10.0.0.7:40112", "localhost:unavailable"])
@pytest.mark.parametrize("ending", [",x", ",", ",TLSv1.3", ",0", ",,x"])
def test_a_query_record_with_a_field_too_many_is_refused_as_before(host: str, ending: str) -> None:
    """QUERY records end at the return code on every server; one more field is no record."""
    with pytest.raises(LineError):
        parse_line(f"{T0},db1,app,{host},5,12,QUERY,shop,'select 1',0{ending}")


@pytest.mark.parametrize(
    ("host", "dialect", "client_host", "client_port"),
    [
        ("192.168.1.24:54312", Dialect.MARIADB, "192.168.1.24", 54312),
        ("db.example.com:3306", Dialect.MARIADB, "db.example.com", 3306),
        ("localhost:unavailable", Dialect.MARIADB, "localhost", None),
        ("localhost:unavailable", Dialect.MARIADB_ENTERPRISE, "localhost", None),
        ("[::1]:54312", Dialect.MARIADB, "::1", 54312),
        ("[2001:db8::7]:unavailable", Dialect.MARIADB, "2001:db8::7", None),
        # An IPv6 address without brackets: its last group cannot be told from a port,
        # except where the host field always carries one.
        ("2001:db8::7:54312", Dialect.MARIADB, "2001:db8::7:54312", None),
        ("2001:db8::7:54312", Dialect.MARIADB_ENTERPRISE, "2001:db8::7", 54312),
        ("::1", Dialect.MARIADB, "::1", None),
        # No port: servers before MariaDB 12, RDS, Aurora.
        ("localhost", Dialect.MARIADB, "localhost", None),
        ("10.0.0.7", Dialect.AURORA, "10.0.0.7", None),
        ("", Dialect.MARIADB, "", None),
        ("h:65536", Dialect.MARIADB, "h:65536", None),
        ("h:", Dialect.MARIADB, "h:", None),
        ("h:٣", Dialect.MARIADB, "h:٣", None),
    ],
)
def test_the_client_port_where_the_host_field_carries_one(
    host: str, dialect: Dialect, client_host: str, client_port: int | None
) -> None:
    event = parse_line(f"{T0},db1,app,10.0.0.7,8,0,CONNECT,,,0")
    event = attrs.evolve(event, host=host, dialect=dialect)
    assert (event.client_host, event.client_port) == (client_host, client_port)
    assert event.host == host  # the field stays what the server wrote


@pytest.mark.parametrize("dialect", ["auto", "mariadb-enterprise"])
def test_enterprise_rename_of_four_names(dialect: str) -> None:
    line = f"{ES_HEAD},RENAME,shop,orders,archive,orders_2025,"
    event = parse_line(line, dialect=dialect)
    # Today's reader took the database as "shop,orders,archive" and the table as the rest.
    assert (event.database, event.object, event.retcode) == (
        "shop",
        "orders|archive.orders_2025",
        None,
    )
    assert event.dialect is Dialect.MARIADB_ENTERPRISE
    assert format_line(event) == line
    # The one representation: written the community way, it reads back the same.
    community = format_line(event, dialect="mariadb")
    assert community == f"{ES_HEAD},RENAME,shop,orders|archive.orders_2025,"
    assert attrs.evolve(parse_line(community), dialect=Dialect.MARIADB_ENTERPRISE) == event


@pytest.mark.parametrize(
    ("tail", "dialect"),
    [
        ("shop,o,rders,archive,orders_2025,", "auto"),  # a comma in a name: five parts
        ("shop,orders,orders_2025,", "auto"),  # three parts: no form a server writes
        ("shop,orders,arch.ive,orders_2025,", "auto"),  # new.db.table cannot be split back
        ("shop,orders,archive,orders_2025,", "mariadb"),  # community RENAMEs have a bar
        ("shop,orders,archive,orders_2025,", "rds-mysql"),
        ("shop,or|ders,archive,orders_2025,", "auto"),  # a bar, but no newdb.new after it
        ("shop,t1|x,", "auto"),
    ],
)
def test_a_rename_that_cannot_be_read_one_way_is_refused(tail: str, dialect: str) -> None:
    with pytest.raises(LineError):
        parse_line(f"{ES_HEAD},RENAME,{tail}", dialect=dialect)


_connection_databases = st.text(st.sampled_from("ab,0 '`.:"), max_size=8)
_tls_fields = st.one_of(
    st.none(),  # ten fields
    st.sampled_from(["", "TLSv1.3", "TLSv1", "SSLv3", "unknown"]),
    st.sampled_from(["TLSv1.3x", "TLSv", "tls", " ", "v1.3"]),  # nearly a TLS version
)
_hosts = st.sampled_from(
    ["localhost", "10.0.0.7", "10.0.0.7:40112", "localhost:unavailable", "::1", "[::1]:3306"]
)


@given(
    st.sampled_from(sorted(auditlog.CONNECTION_OPERATIONS)),
    _connection_databases,
    # What servers write there. (A number would meet an older ambiguity: after a database
    # ending in a comma, it and a status of 0-5 read as RDS 5.7's status and type.)
    st.sampled_from(["", "", "TLSv1.3", "TLSv1.2"]),
    st.sampled_from(["0", "1045", "-1"]),
    _tls_fields,
    _hosts,
    st.sampled_from(["auto", "mariadb", "mariadb-enterprise", "aurora"]),
)
def test_a_connection_record_reads_as_written_or_is_refused(
    operation: str, database: str, obj: str, status: str, tls: str | None, host: str, dialect: str
) -> None:
    """No shifting: a connection record of ten or eleven fields, whatever its names hold,
    is read with exactly the fields it was written with, or refused."""
    if operation == "PROXY_CONNECT":  # the proxied user starts at the first ",`"
        database, obj = database.replace(",", ""), "`u`@`%`"
    line = f"{T0},db1,app,{host},8,0,{operation},{database},{obj},{status}"
    if tls is not None:
        line += f",{tls}"
    try:
        event = parse_line(line, dialect=dialect)
    except LineError:
        return
    assert (event.database, event.object, event.retcode, event.tls_version) == (
        database,
        obj,
        int(status),
        tls,
    )
    assert event.connection_type is None
    assert format_line(event) == line


def test_records_differing_only_in_the_eleventh_field_share_a_key_only_without_a_place() -> None:
    """docs/keys.md: the key (version 1) leaves the TLS version out, as every field added
    after it; a place in the source tells such records apart."""
    encrypted = parse_line(f"{ES_HEAD},CONNECT,shop,,0,TLSv1.3")
    plain = parse_line(f"{ES_HEAD},CONNECT,shop,,0,")
    community = parse_line(f"{ES_HEAD},CONNECT,shop,,0")
    assert encrypted.key == plain.key == community.key
    assert community.key == "9e84b555005ce42229ae7996c077c094"  # as keys were before 12.3
    placed = {
        parse_line(
            f"{ES_HEAD},CONNECT,shop,,0{tls}", origin=Origin(path="a.log", line_number=n)
        ).key
        for n, tls in enumerate((",TLSv1.3", ",", ""))
    }
    assert len(placed) == 3


# --- syslog ---------------------------------------------------------------------------------

RECORD = "db1,root,localhost,5,12,QUERY,shop,'select 1',0"


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("<14>Nov 27 05:43:16 mysql-server_auditing:  ", datetime(2025, 11, 27, 5, 43, 16)),
        ("<14>Nov 27 05:43:16 mysql-server_auditing: my info ", datetime(2025, 11, 27, 5, 43, 16)),
        ("Jan  3 14:02:07 dbhost mysql-server_auditing: x ", datetime(2025, 1, 3, 14, 2, 7)),
        ("Jan 31 14:02:07 dbhost mysql-server_auditing[77]:  ", datetime(2025, 1, 31, 14, 2, 7)),
        (
            "2024-01-31T14:02:07.123456+01:00 dbhost mysql-server_auditing: prod ",
            datetime(2024, 1, 31, 13, 2, 7, 123456),
        ),
    ],
)
def test_syslog_headers(prefix: str, expected: datetime) -> None:
    line = prefix + RECORD
    event = parse_line(line, year=2025)
    assert event.timestamp == expected.replace(tzinfo=UTC)
    assert (event.serverhost, event.object, event.prefix) == ("db1", "select 1", prefix)
    assert format_line(event) == line


def test_syslog_without_year_uses_a_recent_one() -> None:
    event = parse_line("Jan 31 14:02:07 dbhost mysql-server_auditing:  " + RECORD)
    now = datetime.now(UTC)
    assert now - timedelta(days=367) < event.timestamp < now + timedelta(days=2)


def test_syslog_record_cut_at_nul_is_truncated() -> None:
    event = parse_line("<14>Nov 27 05:43:16 mysql-server_auditing:  db1,root,h,5,12,QUERY,s,'ab")
    assert event.truncated
    assert (event.object, event.retcode) == ("ab", None)


def _record_start_by_every_space(text: str, message_start: int) -> int:
    """The reference: try the head after every space (what the reader did, in time
    quadratic in a line of junk)."""
    if text.startswith(" ", message_start):
        return message_start + 1
    position = text.find(" ", message_start)
    while position != -1:
        if auditlog._HEAD.match(text, position + 1):
            return position + 1
        position = text.find(" ", position + 1)
    return message_start


@given(st.text(st.sampled_from(list(" ,a1A_\t\n")), max_size=60), st.integers(0, 5))
@example("x a,b c,d,h,1,2,QUERY,", 0)
@example("x a b,c,h,1,2,QUERY,s", 0)
def test_the_record_inside_a_syslog_message_is_found_as_by_every_space(
    text: str, start: int
) -> None:
    start = min(start, len(text))
    assert auditlog._record_start(text, start) == _record_start_by_every_space(text, start)


class CountingPattern:
    """A compiled pattern that counts what each call may read: from ``pos`` to the end."""

    def __init__(self, pattern: re.Pattern[str], work: list[int]):
        self.pattern, self.work = pattern, work

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.pattern, name)

        def counted(text: str, pos: int = 0, *args: Any) -> Any:
            self.work.append(len(text) - pos)
            return method(text, pos, *args)

        return counted


@pytest.mark.parametrize("junk", ["a, ", "x,y ", "a,b,c,1,2 ", " ,", "é, "])
def test_the_syslog_record_search_is_linear_in_a_line_of_junk(
    junk: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    work: list[int] = []
    for name, value in vars(auditlog).items():
        if isinstance(value, re.Pattern):
            monkeypatch.setattr(auditlog, name, CountingPattern(value, work))
    line = "Jan 31 14:02:08 host logger: " + junk * (60_000 // len(junk))
    with contextlib.suppress(LineError):
        parse_line(line, year=2025)
    # A few scans of the line, not one per space in it.
    assert sum(work) <= 8 * len(line)


# --- the quoted query -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "a\\",
        "\\",
        "it's",
        "''",
        "\\'",
        "x\\\\'y",
        "tab\there\nnew line\r\x08\x0c",
        "a,b',0",
        "ends with quote'",
        "nul\x00and\x1a\x7f",
        "é中😀",
        "",
    ],
)
def test_escapes_read_left_to_right(query: str) -> None:
    line = query_line(query)
    event = parse_line(line)
    assert event.object == query
    assert event.retcode == 0
    assert format_line(event) == line


def test_trailing_backslash_before_retcode() -> None:
    assert parse_line(f"{HEAD},QUERY,s,'a\\\\',0").object == "a\\"


def test_bytes_that_are_not_utf8_survive() -> None:
    raw = HEAD.encode() + b",QUERY,s,'select _binary 0x\xff\xfe\x80 \xc3(',0"
    event = parse_line(raw)
    assert event.object_bytes == b"select _binary 0x\xff\xfe\x80 \xc3("
    assert format_line(event).encode("utf-8", "surrogateescape") == raw


def test_line_cut_inside_the_quote_is_a_truncated_event() -> None:
    event = parse_line(f"{HEAD},QUERY,shop,'insert into t values (\\'abc")
    assert event.truncated
    assert event.retcode is None
    assert event.object == "insert into t values ('abc"
    assert format_line(event) == f"{HEAD},QUERY,shop,'insert into t values (\\'abc"


def test_old_plugin_lines_with_spaces_for_newlines() -> None:
    assert parse_line(f"{HEAD},QUERY,s,'select  1 from   t',0").object == "select  1 from   t"


# --- names written raw ----------------------------------------------------------------------


def test_user_and_database_with_commas_and_quotes() -> None:
    event = parse_line(f"{T0},db1,we,ird,localhost,5,12,QUERY,weird,name,'select 1',0")
    assert (event.username, event.host, event.database) == ("we,ird", "localhost", "weird,name")
    event = parse_line(f"{T0},db1,o'neil,localhost,5,12,QUERY,o'db,'select \\'x\\'',0")
    assert (event.username, event.database, event.object) == ("o'neil", "o'db", "select 'x'")


def test_database_holding_quote_comma_before_the_query() -> None:
    event = parse_line(f"{HEAD},QUERY,a,'b,'select \\'a\\'',0")
    assert (event.database, event.object) == ("a,'b", "select 'a'")


def test_name_with_a_raw_newline() -> None:
    event = parse_line(f"{T0},db1,new\nline,localhost,5,12,QUERY,s,'select 1',0")
    assert event.username == "new\nline"


def test_table_event_with_commas_in_the_database() -> None:
    event = parse_line(f"{HEAD},READ,weird,name,t1,")
    assert (event.database, event.object) == ("weird,name", "t1")


# --- time zones -----------------------------------------------------------------------------


def test_tz_for_timestamps_without_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    event = parse_line(query_line("select 1"), tz=berlin)
    assert event.timestamp == datetime(2024, 1, 31, 13, 2, 7, tzinfo=UTC)
    assert event.timestamp.tzinfo is UTC
    assert format_line(event, tz=berlin) == query_line("select 1")
    assert parse_line(query_line("select 1"), tz=timezone(timedelta(hours=-5))).timestamp.hour == 19


class _UnhashableZone(tzinfo):
    """A zone class that defines __eq__ alone, and so cannot be hashed."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _UnhashableZone)

    def utcoffset(self, moment: datetime | None) -> timedelta:
        return timedelta(hours=1)

    def dst(self, moment: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, moment: datetime | None) -> str:
        return "+01"


@pytest.mark.parametrize(
    "line",
    [query_line("select 1"), query_line("select 1") + "\n", f"{T0},h,u,c,1,0,RENAME,d,a|b.c,0"],
)
def test_a_time_zone_that_cannot_be_hashed_reads_as_any_other(line: str) -> None:
    # The C reader takes the first line itself; the others go to the Python reader.
    zone = _UnhashableZone()
    assert parse_line(line, tz=zone).timestamp == datetime(2024, 1, 31, 13, 2, 7, tzinfo=UTC)


def test_explicit_dialect_is_honoured() -> None:
    line = f"{T0},h,u,c,1,0,CONNECT,a,,0,1"
    assert parse_line(line).connection_type == "1"
    mariadb = parse_line(line, dialect="mariadb")
    assert (mariadb.database, mariadb.object, mariadb.retcode) == ("a,", "0", 1)
    assert mariadb.dialect is Dialect.MARIADB
    with pytest.raises(LineError):
        parse_line(f"{HEAD},QUERY,s,'x',0,,", dialect=Dialect.MARIADB)
    with pytest.raises(ValueError, match="unknown dialect"):
        parse_line(line, dialect="oracle")
    with pytest.raises(LineError, match="timestamp form"):
        parse_line(query_line("select 1"), dialect="aurora")
    with pytest.raises(LineError, match="timestamp form"):
        parse_line("1653053459680124,c,u,h,1,2,QUERY,d,'x',0", dialect="mariadb")


def test_format_line_in_another_dialect() -> None:
    event = parse_line(query_line("select 1"))
    assert format_line(event, dialect="rds-mysql").endswith("'select 1',0,,")
    assert format_line(event, dialect=Dialect.AURORA).startswith("1706709727000000,")


def test_trailing_newline_is_ignored() -> None:
    assert parse_line(query_line("x") + "\r\n") == parse_line(query_line("x"))


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "offset", "message"),
    [
        ("", 0, "empty line"),
        ("hello world", 0, "neither a timestamp nor a syslog header"),
        ("20240131 14:02:07", 0, "no comma"),
        ("20240199 14:02:07,h,u,c,1,2,QUERY,d,'x',0", 0, "bad timestamp"),
        ("123456789012,h,u,c,1,2,QUERY,d,'x',0", 0, "12 digits"),
        ("20240131 14:02:07,h,u,c,x,2,QUERY,d,'x',0", 24, "connection id"),
        ("20240131 14:02:07,h,u,c,1,2,query,d,'x',0", 28, "operation"),
        ("20240131 14:02:07,h,u", 21, "fields"),
        ("20240131 14:02:07,h,u,c,1,2,QUERY,d,x,0", 34, "without a quoted query"),
        ("20240131 14:02:07,h,u,c,1,2,QUERY,d,'x'y,0", 38, "after the quoted query"),
        ("20240131 14:02:07,h,u,c,1,0,CONNECT,d,,ok", 39, "bad return code"),
        ("20240131 14:02:07,h,u,c,1,2,WRITE,d", 34, "db,object,retcode"),
    ],
)
def test_malformed_lines_say_what_and_where(line: str, offset: int, message: str) -> None:
    with pytest.raises(LineError, match=message) as caught:
        parse_line(line)
    assert caught.value.offset == offset
    assert caught.value.line == line
    assert f"offset {offset}" in str(caught.value)


# --- keys -----------------------------------------------------------------------------------


def test_key_is_the_cloudwatch_event_id_when_known() -> None:
    event = parse_line(query_line("x"), origin=Origin(event_id="3195310660696698337880902507980"))
    assert event.key == "3195310660696698337880902507980"


def test_identical_lines_at_distinct_places_have_distinct_keys() -> None:
    line = f"{HEAD},WRITE,mysql,table_stats,"
    first = parse_line(line, origin=Origin(path="a.log", line_number=1))
    second = parse_line(line, origin=Origin(path="a.log", line_number=2))
    assert first.key != second.key
    assert first.key == parse_line(line, origin=Origin(path="a.log", line_number=1)).key
    assert parse_line(line).key != parse_line(f"{HEAD},WRITE,mysql,table_stat,").key


# --- properties -----------------------------------------------------------------------------


@given(audit_events())
def test_events_survive_format_and_parse(event: AuditEvent) -> None:
    assert parse_line(format_line(event)) == event


@given(audit_lines())
def test_format_line_inverts_parse_line(line: str) -> None:
    assert format_line(parse_line(line)) == line


@given(query_texts(max_size=400), st.integers(0, 9999))
@example("a\\", 0)
@example("\\'", 1064)
def test_server_escaped_text_parses_back_to_itself(query: str, retcode: int) -> None:
    event = parse_line(query_line(query, retcode))
    assert (event.object, event.retcode, event.truncated) == (query, retcode, False)


@given(query_texts(), st.integers(0, 400))
def test_a_line_cut_anywhere_in_the_query_is_an_event_or_a_line_error(query: str, cut: int) -> None:
    line = query_line(query)
    prefix = line[: len(HEAD) + len(",QUERY,shop,'") + cut]
    try:
        event = parse_line(prefix)
    except LineError:
        return
    assert query.startswith(event.object) or event.object.endswith("\\")


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_line_errors(data: bytes) -> None:
    with contextlib.suppress(AuditSyncError):
        parse_line(data)


@given(audit_lines(), st.data())
def test_mutated_lines_raise_only_line_errors(line: str, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(line)))
    insert = data.draw(st.text(st.sampled_from(",'\\\n 0aQ`:<>-"), max_size=3))
    drop = data.draw(st.integers(0, 3))
    mutated = line[:position] + insert + line[position + drop :]
    with contextlib.suppress(AuditSyncError):
        parse_line(mutated)


def test_escapes_read_right_when_the_text_holds_every_parking_character() -> None:
    query = "\uffff\ufffe\U0010ffff\U0010fffe a\\b \\\\' \\n"
    assert parse_line(query_line(query)).object == query
    assert parse_line(query_line("\\\\" + query + "\uffff\\")).object == "\\\\" + query + "\uffff\\"


@pytest.mark.parametrize(
    ("line", "tz"),
    [
        ("00010101 00:00:00,h,u,c,1,2,QUERY,d,'x',0", ZoneInfo("Asia/Tokyo")),
        ("0001-01-01T00:00:00+01:00,h,u,c,1,2,QUERY,d,'x',0", UTC),
        ("0001-01-01T00:00:00+01:00 h mysql-server_auditing:  h,u,c,1,2,QUERY,d,'x',0", UTC),
        ("20240101 00:00:00,h,u,c," + "1" * 5000 + ",2,QUERY,d,'x',0", UTC),
        ("20240101 00:00:00,h,u,c,1,2,QUERY,d,'x'," + "9" * 5000, UTC),
    ],
    ids=["date-overflows-utc", "custom-overflows", "syslog-overflows", "long-id", "long-retcode"],
)
def test_out_of_range_values_are_line_errors(line: str, tz: ZoneInfo) -> None:
    with pytest.raises(LineError):
        parse_line(line, tz=tz)
