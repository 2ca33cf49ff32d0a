"""The C accelerators ``auditsync._c_reader`` and ``auditsync._c_json`` against the
pure-Python reader and writer they speed up.

The pure reader, ``auditlog._parse_text``, is the reference. The C reader handles the
common shapes and declines (returns ``None``) everything else, so its contract is:

* whenever it returns an event, that event equals the pure reader's, field by field and
  with the same types (``int`` is not ``bool``, a ``Dialect`` member is not its string
  value, every timestamp is in the ``datetime.UTC`` object itself);
* whenever the pure reader raises :class:`LineError`, it returns ``None``;
* it does handle the standard lines of every dialect: a reader that always declines
  would satisfy the first two points and speed nothing up, so the golden corpus and the
  examples below insist on it.

``read_log_events`` applies the same reader to a list of CloudWatch log events: it gives
``(entries, misses)``, an entry per item — the event, or the item's Origin where the C
reader declines the message (``misses`` of them) — and must refuse (``None``) any list it
cannot take as exact dicts of the exact types. Its events must be the ones parse_line
gives the messages: ``auditlog.parse_log_events`` reads the misses with parse_line.

Outside CI a missing extension skips this module with the reason; in CI (``CI=true``) the
extension must be built, so its absence fails instead of hiding the gap.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import importlib
import io
import json
import os
import sys
import tracemalloc
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from auditsync import _auditlog as auditlog
from auditsync import _events, _json, _native
from auditsync._errors import LineError
from auditsync._events import AuditEvent, DeadLetter, Dialect, Origin
from auditsync._json import event_to_dict, to_json
from auditsync.sinks import JsonLinesSink
from auditsync.testing import audit_events, audit_lines, mutations, query_texts


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def _load_speedups() -> tuple[ModuleType, ModuleType]:
    """The C modules, configured by the package's own loaders — also where
    ``AUDITSYNC_PURE_PYTHON=1`` keeps the package itself from using them."""
    try:
        reader = importlib.import_module("auditsync._c_reader")
        writer = importlib.import_module("auditsync._c_json")
    except ImportError as error:
        why = f"the C accelerators are not built: {error}"
        if _in_ci():
            pytest.fail(f"{why} (CI must build them)", pytrace=False)
        pytest.skip(why, allow_module_level=True)
    saved = os.environ.pop("AUDITSYNC_PURE_PYTHON", None)
    try:
        loaded = _native._load_reader()  # hands the reader the classes it builds
    finally:
        if saved is not None:
            os.environ["AUDITSYNC_PURE_PYTHON"] = saved
    assert loaded is not None, "the package could not load the C reader it was built with"
    _json.c_json = writer
    functions = _json._configured_c_writer()  # tells the writer the event's table
    assert functions[0] is not None, "the package could not load the C writer"
    return reader, writer


speedups, c_json = _load_speedups()
_parse_text: Callable[..., AuditEvent] = auditlog._parse_text
c_parse_line: Callable[..., AuditEvent | None] = speedups.parse_line
c_read_log_events: Callable[..., tuple[list[Any], int] | None] = speedups.read_log_events

#: Every dialect: the C reader is handed the first four, and declines the Enterprise one.
DIALECTS = tuple(Dialect)
FIELDS = tuple(field.name for field in attrs.fields(AuditEvent))
ORIGIN_FIELDS = tuple(field.name for field in attrs.fields(Origin))
MINUS_FIVE = timezone(timedelta(hours=-5))


def _zones() -> list[tzinfo]:
    zones: list[tzinfo] = [
        UTC,
        MINUS_FIVE,
        timezone(timedelta(hours=5, minutes=30)),
        # Equal to UTC but not the UTC object: the event must still carry UTC itself.
        timezone(timedelta(0), "Z"),
    ]
    try:
        from zoneinfo import ZoneInfo

        zones += [ZoneInfo("Europe/Berlin"), ZoneInfo("UTC")]
    except (ImportError, KeyError, ValueError):  # no tz database: fixed offsets still run
        pass
    return zones


ZONES = _zones()

ORIGINS = (
    None,
    Origin(),
    Origin("/aws/rds/cluster/c/audit", "c-1.audit.log.0", "3" * 56, None, None, "f.log", 7),
)


# --------------------------------------------------------------------------- the contract


def _show(value: object) -> str:
    if isinstance(value, AuditEvent):
        parts = ", ".join(
            f"{name}={getattr(value, name)!r}:{type(getattr(value, name)).__name__}"
            for name in FIELDS
        )
        return f"AuditEvent({parts})"
    return repr(value)


def _where(text: str, dialect: Dialect, tz: tzinfo) -> str:
    return f"line={text!r} dialect={dialect!r} tz={tz!r}"


def assert_same_event(fast: object, pure: AuditEvent, where: str) -> None:
    """``fast`` is the pure reader's event: equal field by field, with the same types."""
    context = f"{where}\n  C:    {_show(fast)}\n  pure: {_show(pure)}"
    assert type(fast) is AuditEvent, context
    assert isinstance(fast, AuditEvent)
    for name in FIELDS:
        mine, theirs = getattr(fast, name), getattr(pure, name)
        assert type(mine) is type(theirs), f"field {name}: type differs\n{context}"
        assert mine == theirs, f"field {name}: value differs\n{context}"
    assert fast.timestamp.tzinfo is UTC, f"timestamp not in datetime.UTC\n{context}"
    assert fast.timestamp.fold == pure.timestamp.fold, f"fold differs\n{context}"
    assert fast.dialect is pure.dialect, context
    assert fast.origin is pure.origin or fast.origin == pure.origin, context
    assert fast == pure, context
    assert repr(fast) == repr(pure), context
    assert hash(fast.object) == hash(pure.object), context


def pure_or_none(
    text: str, dialect: Dialect, tz: tzinfo, origin: Origin | None
) -> AuditEvent | None:
    try:
        return _parse_text(text, dialect, tz, origin, None)
    except LineError:
        return None


def check(
    text: str,
    dialect: Dialect,
    tz: tzinfo,
    origin: Origin | None = None,
) -> AuditEvent | None:
    """Run both readers on ``text``; assert the contract; return the C reader's answer.

    The C reader's stamp cache is shared by every example of every test, so a stale or
    wrongly keyed entry shows up as a difference."""
    where = _where(text, dialect, tz)
    fast = c_parse_line(text, dialect, tz, origin)
    pure = pure_or_none(text, dialect, tz, origin)
    if pure is None:
        assert fast is None, (
            f"the pure reader rejects it, C does not\n  {where}\n  C: {_show(fast)}"
        )
        return None
    if fast is not None:
        assert_same_event(fast, pure, where)
    # Asked again, with its stamp now cached: the same answer.
    again = c_parse_line(text, dialect, tz, origin)
    assert (again is None) == (fast is None), f"answer depends on the cache\n  {where}"
    if again is not None:
        assert_same_event(again, pure, where + " (cached stamp)")
    return fast


# --------------------------------------------------------------------------- strategies

_DIGITS = "0123456789"
_NASTY = [
    ",", "'", "`", "\\", "|", " ", "\t", ".", "@", "-", ":", "%", '"', "\n", "\r", "\x00",
    "é", "\xff", "€", "😀", "\udc80", "\udcff", "٣", "\uff15", "²", "0", "7",
]  # fmt: skip


@st.composite
def _mostly(draw: st.DrawFn, good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> Any:
    """``good`` nine times in ten, else ``bad``: near the edge of what the C reader takes.
    (``st.one_of`` would pick each distinct branch equally often.)"""
    return draw(bad if draw(st.integers(0, 9)) == 4 else good)


_plain_names = st.text(st.sampled_from("abcxyz_-.0123456789"), min_size=0, max_size=10)
_no_comma = [char for char in _NASTY if char != ","]
_odd_names = st.text(st.sampled_from(list("abcXYZ_") + _no_comma), max_size=10)
_nasty_names = st.text(st.sampled_from(list("abcXYZ_") + _NASTY), max_size=10)
_names = _mostly(st.one_of(_plain_names, _odd_names), _nasty_names)
_server_hosts = _mostly(
    st.one_of(st.text(st.sampled_from("abcxyz0129.-_"), min_size=1, max_size=12), _odd_names),
    st.one_of(_nasty_names, st.sampled_from(["db 1", "db\t1", "", " ", "db,1"])),
)

#: Host fields: names, and MariaDB 12's host:port (``unavailable`` for sockets).
_hosts = _mostly(
    _names,
    st.one_of(
        st.builds("{}:{}".format, _names, st.sampled_from(["3306", "54312", "unavailable", "0"])),
        st.sampled_from(["::1", "[::1]:3306", "2001:db8::7:54312", "h:99999", "h:", ":1"]),
    ),
)

_ids = _mostly(
    st.one_of(
        st.integers(0, 2**32).map(str),
        st.integers(0, 10**18 - 1).map(str),
        st.text(st.sampled_from(_DIGITS), min_size=1, max_size=18),  # leading zeros
    ),
    st.one_of(
        st.integers(10**17, 10**21).map(str),
        st.sampled_from(["18446744073709551615", "18446744073709551616", "99999999999999999999"]),
        st.text(st.sampled_from(_DIGITS), min_size=1, max_size=21),  # 1..21 digits
        st.sampled_from(["", "-1", "+1", "1a", "٣", "\uff15", "²", " 1", "1 ", "0x1", "1_0"]),
    ),
)
_retcodes = _mostly(
    st.one_of(
        st.sampled_from(["0", "0", "1", "1045", "1064", "-1", "-0", "007"]),
        st.integers(-(10**18) + 1, 10**18 - 1).map(str),
    ),
    st.one_of(
        st.integers(-(2**70), 2**70).map(str),
        st.builds(
            lambda sign, digits: sign + digits,
            st.sampled_from(["", "-"]),
            st.text(st.sampled_from(_DIGITS), min_size=17, max_size=22),  # 18..21 and more
        ),
        st.sampled_from(["", "-", "--1", "+0", "0 ", " 0", "٣", "1e3", "0x1", "1_0", "TCP/IP"]),
    ),
)
_CONNECTION_TYPES = [
    "UNDEFINED", "TCP/IP", "SOCKET", "NAMED_PIPE", "SSL", "SHARED_MEMORY",
    "0", "1", "2", "3", "4", "5", "6", "9", "10", "-1", "", "tcp/ip", "TCP/IP ", "SSL\n",
]  # fmt: skip
#: MariaDB Enterprise 12.3's eleventh field, and what is nearly one.
_TLS_VERSIONS = ["TLSv1.3", "TLSv1.2", "TLSv1", "SSLv3", "DTLSv1.2", "unknown", "TLSv1.3 ", "tls"]
_OPERATIONS = [
    "QUERY", "CONNECT", "FAILED_CONNECT", "DISCONNECT", "CHANGEUSER", "PROXY_CONNECT",
    "READ", "WRITE", "CREATE", "DROP", "ALTER", "RENAME",
    "QUERY_DDL", "QUERY_DML", "TABLE", "FOO", "X_Y", "Query", "query", "", "QUERY ", "_QUERY",
    "Q1", "QUERYÉ",
]  # fmt: skip
_KNOWN_OPERATIONS = _OPERATIONS[:12]

_GOOD_STAMPS = [
    "20240131 14:02:07",
    "20240229 12:00:00",
    "20240331 02:30:00",  # does not exist in Berlin
    "20241027 02:30:00",  # happens twice in Berlin
    "20240331 01:59:59",
    "20241027 03:00:00",
    "00010101 00:00:00",  # before UTC's range in zones east of it
    "00010101 12:00:00",
    "99991231 23:59:59",  # after it in zones west of it
    "99991231 20:00:00",
    "19700101 00:00:00",
]
_BAD_STAMPS = [
    "20241399 99:99:99",
    "20241301 00:00:00",
    "20240132 00:00:00",
    "20230229 12:00:00",
    "20240131 24:00:00",
    "20240131 23:60:00",
    "20240131 23:59:60",
    "00000101 00:00:00",
    "2024013\uff11 14:02:07",
    "20240131 14:02:0",
    "20240131  14:02:07",
    "20240131 14-02-07",
    "20240131_14:02:07",
    "20240131 14:02:07 ",
    " 20240131 14:02:07",
    "20240131\n14:02:07",
]
_CUSTOM_STAMPS = [
    "20240131T14:02:07",
    "2024-01-31 14:02:07",
    "2024-01-31T14:02:07Z",
    "20240131 14:02:07Z",
    "20240131 14:02:07.123456",
    "20240131 14:02:07,5",
    "20231207T13:14:28.000000+0100",
    "20240131T14:02:07.1234567891+02:00",
]
_SYSLOG_HEADERS = [
    "Jan 31 14:02:07 host mysql-server_auditing: info ",
    "Jan 31 14:02:07 host mysql-server_auditing:  ",
    "<14>Nov 27 08:09:54 mysql-server_auditing:  ",
    "<14>Nov 27 08:09:54 mysql-server_auditing: auditsync-golden ",
    "2024-01-31T14:02:07Z host mysql-server_auditing: x ",
    "Foo 31 14:02:07 host ident: x ",
]


def _date_text(moment: datetime) -> str:
    return (
        f"{moment.year:04d}{moment.month:02d}{moment.day:02d} "
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )


_stamps = _mostly(
    st.one_of(
        st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)).map(
            _date_text
        ),
        st.integers(10**15, 10**16 - 1).map(str),  # Aurora
        st.sampled_from(_GOOD_STAMPS),
    ),
    st.one_of(
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(_date_text),
        st.sampled_from(_BAD_STAMPS),
        st.text(st.sampled_from("0123456789 :"), min_size=17, max_size=17),
        st.integers(0, 10**16 - 1).map(lambda n: f"{n:016d}"),  # leading zeros
        st.integers(0, 10**10 - 1).map(lambda n: f"{n:010d}"),
        st.integers(0, 10**13 - 1).map(lambda n: f"{n:013d}"),
        st.text(st.sampled_from(_DIGITS), min_size=1, max_size=20),
        st.sampled_from(_CUSTOM_STAMPS),
        st.sampled_from(["", "x", "١٦٥٣٠٥٣٤٥٩٦٨٠١٢٤", "1653053459680124 ", "-653053459680124"]),
    ),
)


def _escape(text: str) -> str:
    """What server_audit.c writes for a query: seven escaped characters, the rest raw."""
    table = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b"}
    table["\f"] = "\\f"
    return "".join(table.get(char, char) for char in text)


_QUERY_TOKENS = [
    "a", "b", " ", ",", "'", "\\'", "\\\\", "\\", "\\\\\\", "\\\\'", "\\\\\\'", "\\\\\\\\'",
    "\\n", "\\t", "\\r", "\\b", "\\f", "\\x41", "\\0", "\\u00e9", "\\N", "\\\n", "\\é",
    "é", "€", "😀", "\udc80", "\udcff", "\x00", "\n", "\x01", "\uffff", ",'", "',", "',0",
    "`", '"', "|", "0", "-1", ",,",
]  # fmt: skip
_query_contents = st.one_of(
    query_texts(max_size=40).map(_escape),
    query_texts(max_size=40).map(_escape),
    st.lists(st.sampled_from(_QUERY_TOKENS), max_size=12).map("".join),
)


@st.composite
def _query_tails(draw: st.DrawFn) -> str:
    database = draw(_names)
    content = draw(_query_contents)
    shape = draw(st.sampled_from(["standard"] * 4 + ["rds"] * 3 + ["truncated", "odd"]))
    retcode = draw(_retcodes)
    if shape == "standard":
        return f"{database},'{content}',{retcode}"
    if shape == "rds":
        return f"{database},'{content}',{retcode},,"
    if shape == "truncated":
        return f"{database},'{content}" + draw(st.sampled_from(["", "'", "\\", "'\\"]))
    ending = draw(st.sampled_from([",", ",,", ",,,", ",0,", ",x,,", "',,", "'0", "' ,0", ",'"]))
    return f"{database},'{content}'{ending}" + draw(st.sampled_from(["", retcode]))


@st.composite
def _connection_tails(draw: st.DrawFn) -> str:
    database = draw(_names)
    obj = draw(
        st.one_of(
            st.sampled_from(["", "", "TLSv1.3", "`u`@`h`", "`u,1`@`%`", "`a`@`b`,`c`", "`"]),
            _names,
        )
    )
    status = draw(st.one_of(st.sampled_from(["0", "0", "1045", "1044", "1"]), _retcodes))
    kind = draw(
        st.sampled_from(
            ["", "", ","]
            + [f",{name}" for name in _CONNECTION_TYPES]
            + [f",{tls}" for tls in _TLS_VERSIONS]
        )
    )
    if draw(st.booleans()):
        kind += draw(st.sampled_from(["", ",TCP/IP", ",1", ",", ",,", ",TLSv1.3"]))
    return f"{database},{obj},{status}{kind}"


@st.composite
def _table_tails(draw: st.DrawFn) -> str:
    database = draw(_names)
    obj = draw(
        st.one_of(
            _names,
            st.sampled_from(
                ["t", "old|newdb.new", "a,b|c,d.e", "|", "t|", "|x", "a|b|c", "o,nd,n", "o,n.d,n"]
            ),
        )
    )
    status = draw(st.one_of(st.sampled_from(["", "", "0", "1"]), _retcodes))
    return f"{database},{obj},{status}" + draw(st.sampled_from(["", "", ",", ",0", ",TCP/IP"]))


_TAIL_TOKENS = [",", "'", "\\", "\\'", "\\\\", "0", "1", "-1", "a", "`", "|", ",,", "TCP/IP"]
_tails = st.one_of(
    _query_tails(),
    _connection_tails(),
    _table_tails(),
    st.lists(st.sampled_from([*_TAIL_TOKENS, "é", "\udc80", "\n", " "]), max_size=10).map("".join),
)


@st.composite
def adversarial_lines(draw: st.DrawFn) -> str:
    """A record assembled field by field, each field drawn from what breaks readers."""
    known = st.one_of(st.just("QUERY"), st.sampled_from(_KNOWN_OPERATIONS))  # QUERY half the time
    operation = draw(_mostly(known, st.sampled_from(_OPERATIONS)))
    if operation == "QUERY" and draw(st.integers(0, 3)):
        tail = draw(_query_tails())
    elif operation in auditlog.CONNECTION_OPERATIONS and draw(st.integers(0, 3)):
        tail = draw(_connection_tails())
    elif operation in _KNOWN_OPERATIONS and draw(st.integers(0, 3)):
        tail = draw(_table_tails())
    else:
        tail = draw(_tails)
    head = [
        draw(_server_hosts),
        draw(_names),
        draw(_hosts),
        draw(_ids),
        draw(_ids),
        operation,
    ]
    if draw(st.integers(0, 9)) == 0:  # a field missing or one too many
        where = draw(st.integers(0, len(head) - 1))
        if draw(st.booleans()):
            del head[where]
        else:
            head.insert(where, draw(_names))
    record = ",".join([*head, tail])
    if draw(st.integers(0, 14)) == 0:
        return draw(st.sampled_from(_SYSLOG_HEADERS)) + record
    return draw(_stamps) + "," + record


@st.composite
def plain_lines(draw: st.DrawFn) -> tuple[str, Dialect]:
    """Standard records of every dialect with plain names: the C reader must take these."""
    dialect = draw(st.sampled_from([Dialect.MARIADB, Dialect.AURORA, Dialect.RDS_MYSQL]))
    names = st.text(st.sampled_from("abcxyz_-.0129"), min_size=1, max_size=10)
    hosts = st.one_of(
        names, st.builds("{}:{}".format, names, st.sampled_from(["1", "unavailable"]))
    )
    if dialect is Dialect.AURORA:
        stamp = str(draw(st.integers(10**15, 10**16 - 1)))
    else:
        moment = draw(st.datetimes(datetime(2000, 1, 1), datetime(2040, 1, 1)))
        stamp = _date_text(moment)
    head = (
        f"{stamp},{draw(names)},{draw(names)},{draw(hosts)},"
        # Ids of up to 18 digits: the C reader leaves longer ones to the Python reader.
        f"{draw(st.integers(0, 10**18 - 1))},{draw(st.integers(0, 10**18 - 1))}"
    )
    kinds = ["query", "connection"] + ([] if dialect is Dialect.RDS_MYSQL else ["table"])
    kind = draw(st.sampled_from(kinds))
    database = draw(st.one_of(st.just(""), names))
    if kind == "query":
        query = _escape(draw(query_texts(max_size=60)))
        tail = f"QUERY,{database},'{query}',{draw(st.integers(0, 5000))}"
        if dialect is Dialect.RDS_MYSQL:
            tail += ",,"
    elif kind == "connection":
        operation = draw(st.sampled_from(["CONNECT", "FAILED_CONNECT", "DISCONNECT", "CHANGEUSER"]))
        tail = f"{operation},{database},,{draw(st.sampled_from([0, 1045, 1044]))}"
        if dialect is Dialect.RDS_MYSQL:
            tail += "," + draw(st.sampled_from(["TCP/IP", "SSL", "SOCKET", "1", "4"]))
    else:
        operation = draw(st.sampled_from(["READ", "WRITE", "CREATE", "DROP", "ALTER"]))
        retcode = draw(st.sampled_from(["0", "1"])) if dialect is Dialect.AURORA else ""
        tail = f"{operation},{database or 'db'},{draw(names)},{retcode}"
    return f"{head},{tail}", dialect


_zone_index = st.integers(0, len(ZONES) - 1)
_dialects = st.sampled_from(DIALECTS)
_origins = st.sampled_from(ORIGINS)


def _check_drawn(text: str, dialect: Dialect, zone: int, origin: Origin | None) -> None:
    check(text, dialect, ZONES[zone], origin)


# --------------------------------------------------------------------------- properties

_EXAMPLE_LINES = [
    "20240131 14:02:07,db1,app,10.0.0.7,42,1001,QUERY,shop,'select \\'a,b\\' from t',0",
    "1653053459680124,c731-instance-1,admin,52.94.133.136,35,698024,WRITE,testdb,test2,0",
    "9999999999999999,c731-instance-1,admin,52.94.133.136,35,698024,WRITE,testdb,test2,0",
    "0000000000000000,c731-instance-1,admin,52.94.133.136,35,698024,WRITE,testdb,test2,",
    "20221201 14:07:05,ip-10-22-1-51,rdsadmin,localhost,821,0,CONNECT,,,0,SOCKET",
    "20240131 14:02:07,db1,we,ird,localhost,5,12,QUERY,weird,name,'select 1',0",
    "20240131 14:02:07,db1,app,h,42,1001,QUERY,shop,'a\\\\',0",
    "20240131 14:02:07,db1,app,h,42,1001,QUERY,shop,'a\\\\'b',0",
    "20240131 14:02:07,db1,app,h,42,1001,QUERY,shop,'\\x41\\0\\\\\\'',0",
    "20240131 14:02:07,db1,app,h,42,1001,QUERY,sh'op,'x',0",
    "20240131 14:02:07,db1,app,h,42,1001,QUERY,shop,'x',0,,",
    "1653053459680124,db1,app,h,42,1001,QUERY,shop,'x',0,,",
    "20240131 14:02:07,db1,app,h,99999999999999999999,1001,QUERY,shop,'x',0",
    "20240131 14:02:07,db1,app,h,18446744073709551616,1001,QUERY,shop,'x',-99999999999999999999",
    "20240131 14:02:07,db1,app,h,123456789012345678901,1001,QUERY,shop,'x',0",
    "20240131 14:02:07,db 1,app,h,42,1001,FOO,shop,t,",
    "20240131 14:02:07,db1,app,h,42,0,CONNECT,,,0,",
    "20240131 14:02:07,db1,app,h,42,0,CONNECT,,,0,1",
    "20240131 14:02:07,db1,app,h,42,0,CONNECT,shop,,0,1",
    "20240131 14:02:07,db1,app,h,42,0,PROXY_CONNECT,shop,`u`@`h`,0,TCP/IP",
    "20240131 14:02:07,db1,app,h,42,7,RENAME,shop,a,b|c,d.e,",
    "20240131 14:02:07,db1,app,h,٣,7,READ,shop,t,",
    "20241399 99:99:99,db1,app,h,42,7,READ,shop,t,",
    "99991231 23:59:59,db1,app,h,42,7,READ,shop,t,",
    "00010101 00:00:00,db1,app,h,42,7,READ,shop,t,",
    "20240131 14:02:07,db1,app,h,42,7,READ,shop,t,1\udc80",
    "20240131 14:02:07,\udc80,app😀,h€,0042,0007,READ,shop\udcff,t,",
    # MariaDB 12 and Enterprise 12.3: the C reader takes the ten-field records and leaves
    # the eleven-field ones, and Enterprise RENAMEs, to the Python reader.
    "20260731 09:14:22,mdbe123,root,192.168.1.24:54312,7,0,CONNECT,mysql,,0,TLSv1.3",
    "20260731 09:15:03,mdbe123,app,localhost:unavailable,8,0,CONNECT,,,0,",
    "20260731 09:15:03,mdbe123,app,localhost:unavailable,8,0,PROXY_CONNECT,,`u`@`%`,0",
    "20260731 09:15:03,mdbe123,app,localhost:unavailable,8,0,PROXY_CONNECT,,`u`@`%`,0,",
    "20260731 09:15:03,mdbe123,app,10.0.0.7:5,8,0,CONNECT,a,b,,0,TLSv1.2",
    "20260731 09:15:03,mdbe123,app,10.0.0.7:5,8,0,CONNECT,mysql,TLSv1.3,0",
    "20260731 09:15:03,mdbe123,app,10.0.0.7:5,8,0,CONNECT,,,0,SSL",
    "20260731 09:15:03,mdbe123,app,::1,8,0,CONNECT,,,0,1",
    "20260731 09:15:03,mdbe123,app,10.0.0.7:5,8,9,RENAME,db,old,newdb,new,",
    "20260731 09:15:03,mdbe123,app,10.0.0.7:5,8,9,QUERY,db,'select 1',0,",
]


@settings(max_examples=600)
@given(adversarial_lines(), _dialects, _zone_index, _origins)
def test_adversarial_lines_agree(
    text: str, dialect: Dialect, zone: int, origin: Origin | None
) -> None:
    _check_drawn(text, dialect, zone, origin)


_HEADS = [
    "20240131 14:02:07,db1,app,10.0.0.7,42,1001",
    "1653053459680124,c731-instance-1,admin,52.94.133.136,35,698024",
    "20241027 02:30:00,ip-10-22-1-51,rdsadmin,localhost,7,585281",
]


@settings(max_examples=400)
@given(st.sampled_from(_HEADS), _query_tails(), _dialects, _zone_index)
def test_quoted_queries_agree(
    head: str, tail: str, dialect: Dialect, zone: int
) -> None:
    """A standard head and a QUERY tail of escapes, quotes and backslash runs."""
    _check_drawn(f"{head},QUERY,{tail}", dialect, zone, None)


@pytest.mark.parametrize("text", _EXAMPLE_LINES)
def test_tricky_lines_agree(text: str) -> None:
    for dialect in DIALECTS:
        for zone in ZONES:
            check(text, dialect, zone)
            check(text, dialect, zone, ORIGINS[2])


@settings(max_examples=400)
@given(st.data(), _dialects, _zone_index, _origins)
def test_generated_lines_of_every_dialect_agree(
    data: st.DataObject, dialect: Dialect, zone: int, origin: Origin | None
) -> None:
    written = st.sampled_from([None, Dialect.MARIADB, Dialect.AURORA, Dialect.RDS_MYSQL])
    line = data.draw(written.flatmap(audit_lines))
    _check_drawn(line, dialect, zone, origin)


@settings(max_examples=250)
@given(audit_events(), _dialects, _zone_index)
def test_lines_written_in_other_zones_agree(event: AuditEvent, dialect: Dialect, zone: int) -> None:
    """Lines formatted in the zone they are read in: the date form's local times."""
    from auditsync import format_line

    check(format_line(event, tz=ZONES[zone]), dialect, ZONES[zone])


@settings(max_examples=400)
@given(st.data(), _dialects, _zone_index)
def test_mutated_lines_agree(
    data: st.DataObject, dialect: Dialect, zone: int
) -> None:
    sources = st.one_of(
        audit_lines(),
        plain_lines().map(lambda pair: pair[0]),
        st.sampled_from(_golden_texts()),
        st.sampled_from(_EXAMPLE_LINES),
    )
    line = data.draw(sources)
    inserts = st.sampled_from([b",", b"'", b"\\", b"\\'", b",,", b"`", b"|", b"\xff", b"\n", b"0"])
    raw = data.draw(mutations(line.encode("utf-8", "surrogateescape"), inserts))
    _check_drawn(raw.decode("utf-8", "surrogateescape"), dialect, zone, None)


@settings(max_examples=250)
@given(plain_lines(), _zone_index)
def test_plain_lines_are_handled(line: tuple[str, Dialect], zone: int) -> None:
    """Standard records with plain names: C must take them, under AUTO and their dialect."""
    text, written = line
    for dialect in (Dialect.AUTO, written):
        fast = check(text, dialect, ZONES[zone])
        assert fast is not None, f"C declined a standard line: {_where(text, dialect, ZONES[zone])}"


# --------------------------------------------------------------------------- examples

_STANDARD = [
    pytest.param(
        "20240131 14:02:07,db1,app,10.0.0.7,42,1001,QUERY,shop,"
        "'select \\'a,b\\' from t where x = \\'\\\\\\' and y = \\'\\n\\t\\r\\b\\f\\'',0",
        Dialect.MARIADB,
        id="mariadb-query-escapes",
    ),
    pytest.param(
        "20240131 14:02:07,db1,app,10.0.0.7,42,1001,QUERY,,'select 1',1064",
        Dialect.MARIADB,
        id="mariadb-query-error",
    ),
    pytest.param(
        "20240131 14:02:07,db1,app,10.0.0.7,42,0,CONNECT,shop,,0", Dialect.MARIADB, id="connect"
    ),
    pytest.param(
        "20240131 14:02:07,db1,app,10.0.0.7,42,0,FAILED_CONNECT,,,1045",
        Dialect.MARIADB,
        id="failed-connect",
    ),
    pytest.param(
        "20240131 14:02:07,db1,app,10.0.0.7,42,0,DISCONNECT,shop,,0",
        Dialect.MARIADB,
        id="disconnect",
    ),
    pytest.param(
        "20240131 14:02:07,db1,app,10.0.0.7,42,1001,WRITE,mysql,table_stats,",
        Dialect.MARIADB,
        id="mariadb-write",
    ),
    pytest.param(
        "20260731 09:14:22,mdb1,root,192.168.1.24:54312,7,0,CONNECT,mysql,TLSv1.3,0",
        Dialect.MARIADB,
        id="mariadb-12-connect",
    ),
    pytest.param(
        "20260731 09:14:22,mdb1,root,localhost:unavailable,7,12,QUERY,mysql,'select 1',0",
        Dialect.MARIADB,
        id="mariadb-12-query",
    ),
    pytest.param(
        "1653053459680124,c731-instance-1,admin,52.94.133.136,35,698024,READ,testdb,test2,0",
        Dialect.AURORA,
        id="aurora-read-retcode",
    ),
    pytest.param(
        "1653053459680124,c731-instance-1,admin,52.94.133.136,35,698025,QUERY,testdb,"
        "'select * from test2 where a = \\'x\\'',0",
        Dialect.AURORA,
        id="aurora-query",
    ),
    pytest.param(
        "1653053459680124,c731-instance-1,admin,52.94.133.136,35,0,DISCONNECT,testdb,,0",
        Dialect.AURORA,
        id="aurora-disconnect",
    ),
    pytest.param(
        "20230501 10:02:19,ip-10-1-0-50,rdsadmin,localhost,7,585281,QUERY,,"
        "'select * from t where (type <> \\'BACKGROUND\\')',0,,",
        Dialect.RDS_MYSQL,
        id="rds-query-trailer",
    ),
    pytest.param(
        "20221201 14:07:05,ip-10-22-1-51,rdsadmin,10.0.0.7,821,0,CONNECT,shop,,0,TCP/IP",
        Dialect.RDS_MYSQL,
        id="rds-connect-tcpip",
    ),
    pytest.param(
        "20221201 14:07:05,ip-10-22-1-51,rdsadmin,10.0.0.7,821,0,CONNECT,shop,,0,1",
        Dialect.RDS_MYSQL,
        id="rds-connect-number",
    ),
    pytest.param(
        "20221201 14:07:05,ip-10-22-1-51,rdsadmin,localhost,821,0,CONNECT,,,0,SOCKET",
        Dialect.RDS_MYSQL,
        id="rds-connect-socket",
    ),
    pytest.param(
        "20221201 14:07:05,ip-10-22-1-51,app,10.0.0.7,822,0,FAILED_CONNECT,,,1045,SSL",
        Dialect.RDS_MYSQL,
        id="rds-failed-connect",
    ),
    pytest.param(
        "20221201 14:07:05,ip-10-22-1-51,app,10.0.0.7,822,0,DISCONNECT,shop,,0,4",
        Dialect.RDS_MYSQL,
        id="rds-disconnect",
    ),
]


@pytest.mark.parametrize(("text", "written"), _STANDARD)
@pytest.mark.parametrize("zone", range(len(ZONES)), ids=lambda i: repr(ZONES[i]))
def test_standard_lines_are_handled(text: str, written: Dialect, zone: int) -> None:
    for dialect in (Dialect.AUTO, written):
        for origin in ORIGINS:
            fast = check(text, dialect, ZONES[zone], origin)
            assert fast is not None, f"C declined {_where(text, dialect, ZONES[zone])}"
            assert fast.dialect is written
            assert fast.origin is origin or fast.origin == origin


@pytest.mark.parametrize(("text", "written"), _STANDARD)
def test_standard_lines_under_another_dialect(text: str, written: Dialect) -> None:
    """The same lines under each explicit dialect: equal, or declined where pure refuses."""
    for dialect in DIALECTS:
        check(text, dialect, UTC)


def test_cached_stamps_are_shared_and_right() -> None:
    """Many lines of one second and of other seconds, in every zone: no stale answers."""
    for zone in ZONES:
        for second in range(3):
            for stamp in ("20240331 02:30:0", "20241027 02:30:0", "20240131 14:02:0"):
                line = f"{stamp}{second},db1,app,h,42,1001,QUERY,shop,'x',0"
                assert check(line, Dialect.AUTO, zone) is not None
                assert check(line, Dialect.MARIADB, zone) is not None


def test_a_full_cache_starts_over_and_stays_right() -> None:
    """More distinct seconds than the C reader's cache has slots: each slot keeps the last
    stamp that fell in it, and an evicted stamp is read again, right."""
    start = datetime(2024, 3, 31, 0, 0, 0)
    tz = ZONES[-2]
    for step in range(5000):
        stamp = _date_text(start + timedelta(seconds=7 * step))
        line = f"{stamp},db1,app,h,42,1001,READ,shop,t,"
        fast = c_parse_line(line, Dialect.MARIADB, tz, None)
        assert fast is not None, line
        assert_same_event(fast, _parse_text(line, Dialect.MARIADB, tz, None, None), line)
        if step % 97 == 0:  # and an earlier second, maybe evicted, maybe not
            check(f"{_date_text(start)},db1,app,h,42,1001,READ,shop,t,", Dialect.AUTO, tz)


# --------------------------------------------------------------------------- golden corpus

GOLDEN_ROOT = Path(__file__).resolve().parent / "data" / "golden"
CORPORA = sorted(p.parent for p in GOLDEN_ROOT.glob("*/expected.json"))


def _golden_records(directory: Path) -> list[bytes]:
    """Every record of a corpus, as tests/integration/test_golden.py reads them: physical
    lines joined where a raw newline in a known name split a record; syslog datagrams."""
    manifest = json.loads((directory / "expected.json").read_text(encoding="utf-8"))
    pieces = [name.encode().split(b"\n", 1) for name in manifest["newline_names"]]
    found: list[bytes] = []
    for name, info in manifest["files"].items():
        if info["kind"] == "syslog-datagrams":
            found += [base64.b64decode(d) for d in info["datagrams_b64"]]
            continue
        lines = (directory / name).read_bytes().split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        i = 0
        while i < len(lines):
            current = lines[i]
            while i + 1 < len(lines) and any(
                current.endswith(b"," + head) and lines[i + 1].startswith(tail + b",")
                for head, tail in pieces
            ):
                i += 1
                current += b"\n" + lines[i]
            found.append(current)
            i += 1
    return found


def _golden_text(raw: bytes) -> str:
    """What parse_line hands the readers: decoded, one trailing newline stripped."""
    text = raw.decode("utf-8", "surrogateescape")
    if text.endswith("\n"):
        text = text[:-2] if text.endswith("\r\n") else text[:-1]
    return text


_golden_cache: list[str] = []


def _golden_texts() -> list[str]:
    """The records, and the physical lines alone (the halves of split records among them)."""
    if not _golden_cache:
        texts: list[str] = []
        for directory in CORPORA:
            texts += [_golden_text(raw) for raw in _golden_records(directory)]
            for name in ("server_audit.log", "limit40.log", "unlimited.log"):
                path = directory / name
                if path.exists():
                    texts += [_golden_text(raw) for raw in path.read_bytes().splitlines()]
        _golden_cache.extend(dict.fromkeys(texts) or ["20240131 14:02:07,db1,a,h,1,2,READ,d,t,"])
    return _golden_cache


def _other_dialects(texts: list[str]) -> Iterator[tuple[str, Dialect]]:
    """The golden records rewritten as Aurora and RDS for MySQL would write them."""
    for index, text in enumerate(texts):
        try:
            event = _parse_text(text, Dialect.MARIADB, UTC, None, None)
        except LineError:
            continue
        if event.prefix is not None or event.truncated:
            continue
        connection = event.operation in auditlog.CONNECTION_OPERATIONS
        aurora = attrs.evolve(
            event,
            dialect=Dialect.AURORA,
            timestamp=event.timestamp + timedelta(microseconds=index * 7919 % 10**6),
            retcode=event.retcode if event.operation == "QUERY" or connection else index % 2,
        )
        yield auditlog.format_line(aurora), Dialect.AURORA
        if event.operation == "QUERY" or connection:
            rds = attrs.evolve(
                event,
                dialect=Dialect.RDS_MYSQL,
                connection_type=("TCP/IP", "SOCKET", "1", "4")[index % 4] if connection else None,
            )
            yield auditlog.format_line(rds), Dialect.RDS_MYSQL


def _standard(text: str, dialect: Dialect) -> bool:
    """A record in the shapes the C reader promises to take: the dialect's own timestamp,
    no comma or newline in the head's names, not truncated."""
    try:
        event = _parse_text(text, dialect, UTC, None, None)
    except LineError:
        return False
    head = text.split(",", 7)
    return (
        event.prefix is None
        and not event.truncated
        and "\n" not in text
        and len(head) == 8
        and head[6] == event.operation
    )


def test_golden_corpus_is_present() -> None:
    assert CORPORA, f"no golden corpus under {GOLDEN_ROOT}"
    assert len(_golden_texts()) > 100


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.value)
def test_golden_records_agree(dialect: Dialect) -> None:
    texts = _golden_texts()
    derived = [text for text, _ in _other_dialects(texts)]
    for zone in {0, 1, len(ZONES) - 2}:  # UTC, a fixed offset, Europe/Berlin
        for text in texts + derived:
            check(text, dialect, ZONES[zone])


@pytest.mark.parametrize("dialect", [Dialect.AUTO, None], ids=["auto", "own-dialect"])
def test_golden_standard_records_are_handled(dialect: Dialect | None) -> None:
    """C takes nearly every standard record of the corpus (and of its Aurora and RDS
    rewrites); a reader that declines everything must not pass."""
    texts = _golden_texts()
    candidates = [(text, Dialect.MARIADB) for text in texts] + list(_other_dialects(texts))
    standard = [(t, d) for t, d in candidates if _standard(t, d)]
    assert len(standard) > 300
    declined = []
    by_dialect: dict[Dialect, list[int]] = {}
    for text, written in standard:
        chosen = written if dialect is None else dialect
        fast = check(text, chosen, UTC)
        counts = by_dialect.setdefault(written, [0, 0])
        counts[1] += 1
        if fast is None:
            declined.append(text)
        else:
            counts[0] += 1
            assert fast.dialect is written
    for written, (taken, total) in by_dialect.items():
        assert taken >= 0.9 * total, (
            f"C took only {taken} of {total} standard {written.value} records; declined e.g.\n"
            + "\n".join(repr(t) for t in declined[:10])
        )


# --------------------------------------------------------------------------- read_log_events


def _origin_fields() -> st.SearchStrategy[tuple[Any, ...]]:
    text = st.one_of(st.none(), st.text(max_size=8))
    return st.tuples(
        st.one_of(st.none(), st.just("/aws/rds/cluster/c/audit"), st.text(max_size=8)),
        text,
        st.none(),
        text,
        text,
        text,
        st.one_of(st.none(), st.integers(0, 2**40)),
    )


_messages = st.one_of(
    plain_lines().map(lambda pair: pair[0]),
    audit_lines(),
    adversarial_lines(),
    st.sampled_from(_EXAMPLE_LINES),
    st.text(max_size=20),
)
# CloudWatch messages may keep the line's end: parse_line strips one "\n" or "\r\n".
_endings = st.sampled_from(["", "", "", "\n", "\r\n", "\r", "\n\n"])


@st.composite
def _log_event_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages = draw(st.lists(st.tuples(_messages, _endings).map("".join), max_size=8))
    return [
        {"id": f"{index:056d}", "timestamp": draw(st.integers(0, 2**42)), "message": message}
        for index, message in enumerate(messages)
    ]


def _as_parse_line_reads(message: str) -> str:
    """The text parse_line hands the reader: one trailing "\n" or "\r\n" stripped."""
    if message.endswith("\n"):
        return message[:-2] if message.endswith("\r\n") else message[:-1]
    return message


def check_log_events(
    items: list[dict[str, Any]],
    fields: tuple[Any, ...],
    dialect: Dialect,
    tz: tzinfo,
) -> list[Any]:
    """``read_log_events`` against the reference, item by item.

    An entry is an event exactly where the C reader takes the message, and then it is the
    event parse_line (the pure reader after stripping one line end) gives the message with
    the item's origin: auditlog.parse_log_events reads the misses with parse_line, so the
    hits must read the same. Else it is the item's Origin.
    """
    answer = c_read_log_events(items, fields, dialect, tz)
    where = f"items={items!r} origin_fields={fields!r} dialect={dialect!r} tz={tz!r}"
    assert type(answer) is tuple, f"{where}\n  C: {answer!r}"
    result, misses = answer
    assert type(result) is list, f"{where}\n  C: {answer!r}"
    assert len(result) == len(items), where
    assert type(misses) is int, where
    assert misses == sum(type(entry) is Origin for entry in result), where
    log_group, log_stream, _, shard, sequence, path, line_number = fields
    for item, entry in zip(items, result, strict=True):
        origin = Origin(log_group, log_stream, item["id"], shard, sequence, path, line_number)
        message = item["message"]
        fast = c_parse_line(message, dialect, tz, origin)
        context = f"message={message!r} dialect={dialect!r} tz={tz!r}\n  entry: {_show(entry)}"
        if type(entry) is Origin:
            assert entry == origin, context
            for name in ORIGIN_FIELDS:
                mine, theirs = getattr(entry, name), getattr(origin, name)
                assert type(mine) is type(theirs), f"origin.{name}: {context}"
            assert fast is None, f"parse_line takes it, read_log_events does not: {context}"
        else:
            assert fast is not None, f"read_log_events takes it, parse_line does not: {context}"
            text = _as_parse_line_reads(message)
            pure = pure_or_none(text, dialect, tz, origin)
            assert pure is not None, f"parse_line rejects it, read_log_events does not: {context}"
            assert_same_event(entry, pure, _where(text, dialect, tz) + f" (message={message!r})")
    return result


@settings(max_examples=250, suppress_health_check=[HealthCheck.too_slow])
@given(_log_event_lists(), _origin_fields(), _dialects, _zone_index)
def test_read_log_events_agrees_item_by_item(
    items: list[dict[str, Any]], fields: tuple[Any, ...], dialect: Dialect, zone: int
) -> None:
    snapshot = [dict(item) for item in items]
    check_log_events(items, fields, dialect, ZONES[zone])
    assert items == snapshot, "read_log_events changed its input"


@pytest.mark.parametrize("ending", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.value)
def test_read_log_events_reads_a_line_end_as_parse_line_does(ending: str, dialect: Dialect) -> None:
    """A message that keeps its line end: the event, if any, is parse_line's."""
    items = [
        {"id": str(n), "timestamp": n, "message": param.values[0] + ending}
        for n, param in enumerate(_STANDARD)
    ]
    check_log_events(items, ("g", "s", None, None, None, None, None), dialect, UTC)


@pytest.mark.skipif(not hasattr(auditlog, "parse_lines"), reason="no auditlog.parse_lines")
@pytest.mark.parametrize("ending", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.value)
def test_parse_lines_reads_a_line_end_as_parse_line_does(
    ending: str, as_bytes: bool, dialect: Dialect
) -> None:
    """auditlog.parse_lines (the C read_lines) promises to read each line as parse_line."""
    texts: list[str | bytes] = [param.values[0] + ending for param in _STANDARD]
    if as_bytes:
        texts = [str(text).encode("utf-8") for text in texts]
    events, _ = auditlog.parse_lines(texts, dialect=dialect)
    expected = [
        pure_or_none(_as_parse_line_reads(param.values[0] + ending), dialect, UTC, None)
        for param in _STANDARD
    ]
    assert len(events) == sum(event is not None for event in expected)
    for event, reference in zip(events, [e for e in expected if e is not None], strict=True):
        assert_same_event(event, attrs.evolve(reference, origin=event.origin), repr(texts))


_RDS_CONNECT_LF = "20221201 14:07:05,ip-10-22-1-51,app,10.0.0.7,821,0,CONNECT,shop,,0,TCP/IP\n"


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(_log_event_lists(), _dialects, _zone_index)
@example(
    items=[{"id": "1", "timestamp": 0, "message": _RDS_CONNECT_LF}],
    dialect=Dialect.RDS_MYSQL,
    zone=0,
)
def test_parse_log_events_matches_the_pure_reader(
    items: list[dict[str, Any]], dialect: Dialect, zone: int
) -> None:
    """auditlog.parse_log_events, the pipeline's entry, with the C reader: the events and
    failures parse_line of each message gives without it."""
    tz = ZONES[zone]
    base = Origin("/aws/rds/cluster/c/audit", "c-1", None, "shardId-0", "49", None, None)
    answer = auditlog.parse_log_events(items, base, dialect=dialect, tz=tz)
    assert answer is not None
    events, failures = answer
    expected_events, expected_failures = [], []
    for item in items:
        origin = attrs.evolve(base, event_id=item["id"])
        text = _as_parse_line_reads(item["message"])
        try:
            expected_events.append(_parse_text(text, dialect, tz, origin, None))
        except LineError:
            expected_failures.append((item["message"], origin))
    assert len(events) == len(expected_events), f"{items!r} {dialect!r} {tz!r}"
    for event, expected in zip(events, expected_events, strict=True):
        assert_same_event(event, expected, f"{items!r} {dialect!r} {tz!r}")
    assert [(message, origin) for message, origin, _ in failures] == expected_failures


def test_read_log_events_takes_standard_lines() -> None:
    items = [
        {"id": f"{n:056d}", "timestamp": 1_700_000_000_000 + n, "message": param.values[0]}
        for n, param in enumerate(_STANDARD)
    ]
    fields = ("/aws/rds/cluster/c/audit", "c-1.audit.log.0", None, "shardId-0", "49", None, None)
    result = check_log_events(items, fields, Dialect.AUTO, UTC)
    assert all(type(entry) is AuditEvent for entry in result)
    assert [entry.origin.event_id for entry in result] == [item["id"] for item in items]
    assert c_read_log_events([], fields, Dialect.AUTO, UTC) == ([], 0)


_GOOD_ITEM = {"id": "1" * 56, "timestamp": 1_700_000_000_000, "message": _EXAMPLE_LINES[0]}


class _Str(str):
    __slots__ = ()


class _Int(int):
    pass


_BAD_ITEMS = [
    pytest.param({"timestamp": 1, "message": _EXAMPLE_LINES[0]}, id="no-id"),
    pytest.param({"id": "1", "message": _EXAMPLE_LINES[0]}, id="no-timestamp"),
    pytest.param({"id": "1", "timestamp": 1}, id="no-message"),
    pytest.param({}, id="empty-dict"),
    pytest.param({**_GOOD_ITEM, "id": 1}, id="id-int"),
    pytest.param({**_GOOD_ITEM, "id": None}, id="id-none"),
    pytest.param({**_GOOD_ITEM, "id": b"1"}, id="id-bytes"),
    pytest.param({**_GOOD_ITEM, "id": _Str("1")}, id="id-str-subclass"),
    pytest.param({**_GOOD_ITEM, "timestamp": True}, id="timestamp-bool"),
    pytest.param({**_GOOD_ITEM, "timestamp": False}, id="timestamp-false"),
    pytest.param({**_GOOD_ITEM, "timestamp": 1.0}, id="timestamp-float"),
    pytest.param({**_GOOD_ITEM, "timestamp": "1"}, id="timestamp-str"),
    pytest.param({**_GOOD_ITEM, "timestamp": None}, id="timestamp-none"),
    pytest.param({**_GOOD_ITEM, "timestamp": _Int(1)}, id="timestamp-int-subclass"),
    pytest.param({**_GOOD_ITEM, "message": _EXAMPLE_LINES[0].encode()}, id="message-bytes"),
    pytest.param({**_GOOD_ITEM, "message": None}, id="message-none"),
    pytest.param({**_GOOD_ITEM, "message": _Str(_EXAMPLE_LINES[0])}, id="message-str-subclass"),
    pytest.param(["1", 1, _EXAMPLE_LINES[0]], id="item-list"),
    pytest.param(("1", 1, _EXAMPLE_LINES[0]), id="item-tuple"),
    pytest.param(OrderedDict(_GOOD_ITEM), id="item-dict-subclass"),
    pytest.param(None, id="item-none"),
    pytest.param(_EXAMPLE_LINES[0], id="item-str"),
]


@pytest.mark.parametrize("bad", _BAD_ITEMS)
@pytest.mark.parametrize("position", [0, 1, 3])
def test_read_log_events_refuses_malformed_items(bad: Any, position: int) -> None:
    items: list[Any] = [dict(_GOOD_ITEM, id=str(n)) for n in range(3)]
    items.insert(position, bad)
    fields = ("g", "s", None, None, None, None, None)
    assert c_read_log_events(items, fields, Dialect.AUTO, UTC) is None
    assert c_read_log_events([bad], fields, Dialect.MARIADB, MINUS_FIVE) is None


@pytest.mark.parametrize(
    "items",
    [
        pytest.param((_GOOD_ITEM,), id="tuple"),
        pytest.param(iter([_GOOD_ITEM]), id="iterator"),
        pytest.param(None, id="none"),
        pytest.param(_GOOD_ITEM, id="dict"),
        pytest.param(type("L", (list,), {})([_GOOD_ITEM]), id="list-subclass"),
    ],
)
def test_read_log_events_refuses_what_is_not_a_list(items: Any) -> None:
    fields = ("g", "s", None, None, None, None, None)
    assert c_read_log_events(items, fields, Dialect.AUTO, UTC) is None


def test_read_log_events_with_an_extra_key_is_refused_or_right() -> None:
    items = [dict(_GOOD_ITEM, extra=1)]
    fields = ("g", "s", None, None, None, None, None)
    result = c_read_log_events(items, fields, Dialect.AUTO, UTC)
    if result is not None:
        check_log_events(items, fields, Dialect.AUTO, UTC)


# --------------------------------------------------------------------------- memory

_MEMORY_LINES = (
    [param.values[0] for param in _STANDARD]
    + _EXAMPLE_LINES
    + [
        "",
        "x",
        "20240131 14:02:07",
        "20240131 14:02:07,db1,app,h,forty-two,1001,QUERY,shop,'x',0",
        "20240131 14:02:07,db1,app,h,42,1001,QUERY,shop,'unterminated",
        "Jan 31 14:02:07 host mysql-server_auditing: info db1,app,h,42,1001,QUERY,shop,'x',0",
    ]
)


def _parse_many(lines: list[str], rounds: int, tz: tzinfo, origin: Origin) -> int:
    taken = 0
    for _ in range(rounds):
        for text in lines:
            for dialect in DIALECTS:
                if c_parse_line(text, dialect, tz, origin) is not None:
                    taken += 1
    return taken


def _read_many(items: list[Any], rounds: int, tz: tzinfo) -> int:
    fields = ("g", "s", None, "shard", "seq", None, 3)
    bad = [*items, {"id": "x", "timestamp": True, "message": "m"}]
    taken = 0
    for _ in range(rounds):
        read = c_read_log_events(items, fields, Dialect.AUTO, tz)
        taken += len(read[0]) - read[1] if read is not None else 0
        if c_read_log_events(bad, fields, Dialect.AUTO, tz) is not None:
            taken = -(10**9)
    return taken


@pytest.mark.parametrize("tz", [UTC, MINUS_FIVE, ZONES[-2]], ids=repr)
def test_no_references_leak(tz: tzinfo) -> None:
    origin = Origin("g", "s", "e", None, None, "p", 1)
    lines = list(_MEMORY_LINES)
    items = [{"id": str(n), "timestamp": n, "message": m} for n, m in enumerate(lines)]
    watched: dict[str, object] = {
        "tz": tz,
        "UTC": UTC,
        "origin": origin,
        "AuditEvent": AuditEvent,
        "Origin": Origin,
        **{f"Dialect.{d.name}": d for d in DIALECTS},
        **{f"line {n}": text for n, text in enumerate(lines)},
        **{f"item {n}": item for n, item in enumerate(items)},
    }
    _parse_many(lines, 3, tz, origin)  # warm up: the cache fills, and stays so
    _read_many(items, 3, tz)
    # The objects the reader hands out again and again: cached times (each line's event
    # holds one), interned operation names, the log events' keys.
    read = [c_parse_line(text, Dialect.AUTO, tz, origin) for text in lines]
    cached = {id(event.timestamp): event.timestamp for event in read if event is not None}
    del read
    watched.update({f"cached {key}": value for key, value in cached.items()})
    watched.update({f"operation {name}": name for name in _KNOWN_OPERATIONS})
    watched.update({f"key {key}": key for key in ("id", "timestamp", "message")})
    # A leak shows in every measurement; an object of an earlier test freed meanwhile (a
    # class's count includes its live instances) in one only: so a change must show twice.
    grown: dict[str, tuple[int, int]] = {}
    for _ in range(2):
        gc.collect()
        before = {name: sys.getrefcount(value) for name, value in watched.items()}
        assert _parse_many(lines, 200, tz, origin) > 0
        assert _read_many(items, 200, tz) > 0
        gc.collect()
        after = {name: sys.getrefcount(value) for name, value in watched.items()}
        grown = {
            name: (before[name], after[name]) for name in before if after[name] != before[name]
        }
        if not grown:
            break
    assert not grown, f"reference counts changed (before, after): {grown}"


def test_no_memory_growth() -> None:
    tz = ZONES[-2]
    origin = Origin("g", "s", "e", None, None, "p", 1)
    lines = list(_MEMORY_LINES)
    items = [{"id": str(n), "timestamp": n, "message": m} for n, m in enumerate(lines)]
    calls_per_round = len(lines) * len(DIALECTS)
    rounds = 20_000 // calls_per_round + 1
    tracemalloc.start()
    try:
        _parse_many(lines, 20, tz, origin)
        _read_many(items, 20, tz)
        gc.collect()
        baseline = tracemalloc.get_traced_memory()[0]
        first = tracemalloc.take_snapshot()
        _parse_many(lines, rounds, tz, origin)
        _read_many(items, 20_000 // len(items), tz)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - baseline
        if grown > 64 * 1024:
            top = tracemalloc.take_snapshot().compare_to(first, "lineno")[:8]
            pytest.fail(
                f"traced memory grew by {grown} bytes over {rounds * calls_per_round} calls:\n"
                + "\n".join(str(stat) for stat in top)
            )
    finally:
        tracemalloc.stop()


# --- the collector -----------------------------------------------------------------------------

PLAIN_READ = "20240314 09:26:53,db-primary,etl,localhost,1024,500002,READ,shop,stock,"


def test_events_of_plain_values_are_not_tracked_by_the_collector() -> None:
    # Nothing they hold can lead back to them, so the collector need not walk them.
    events, _ = auditlog.parse_lines([PLAIN_READ], Origin(path="audit.log"), [3])
    assert not gc.is_tracked(events[0])
    assert not gc.is_tracked(events[0].origin)
    assert events[0].statement is None
    query = PLAIN_READ.replace("READ,shop,stock,", "QUERY,shop,'select 1',0")
    event = auditlog.parse_lines([query])[0][0]
    assert event.statement is not None  # a tracked value set later: still no way back
    assert not gc.is_tracked(event)


def test_events_holding_objects_of_their_callers_stay_tracked() -> None:
    # An Origin the caller made (attrs tracks it), or any object as a line number, could
    # in principle lead back to the event: such an event stays under the collector.
    assert gc.is_tracked(auditlog.parse_line(PLAIN_READ, origin=Origin(path="audit.log")))
    events, _ = auditlog.parse_lines([PLAIN_READ], Origin(path="audit.log"), [[3]])  # type: ignore[list-item]
    assert gc.is_tracked(events[0])
    assert gc.is_tracked(events[0].origin)


def test_an_untracked_event_still_frees_what_it_holds() -> None:
    events, _ = auditlog.parse_lines([PLAIN_READ], Origin(path="audit.log"), [3])
    event = events[0]
    watched = event.origin
    count = sys.getrefcount(watched)
    del events, event
    assert sys.getrefcount(watched) == count - 1  # the event held it, and is gone


# --- hostile items: lookups that run Python code -------------------------------------------


HOSTILE_LINE = "20240131 14:02:07,db1,app,10.0.0.7,42,7,QUERY,shop,'SELECT 1',0"


class CollidingKey:
    """A dict key that collides with "timestamp": looking that up runs ``on_compare``
    (once armed: building the dict compares keys too)."""

    def __init__(self, on_compare: Callable[[], object]):
        self.on_compare = on_compare
        self.armed = False

    def __hash__(self) -> int:
        return hash("timestamp")

    def __eq__(self, other_key: object) -> bool:
        if self.armed:
            self.on_compare()
        return False


def test_an_item_emptied_during_a_lookup_is_still_read_from_what_was_held() -> None:
    # Clearing the list frees the dict being searched, and a new dict may take its place:
    # the reader must hold what it reads from.
    other = "20991231 23:59:59,EVIL,evil,evil,1,1,QUERY,evil,'DROP TABLE x',0"
    kept: list[Any] = []

    def empty() -> None:
        key.armed = False
        items.clear()
        kept.append({"timestamp": 2, "message": other})

    key = CollidingKey(empty)
    items: list[Any] = [{"id": "1", key: 0, "timestamp": 1, "message": HOSTILE_LINE}]
    key.armed = True
    read = auditlog.parse_log_events(items, Origin(log_group="g"))
    assert read is not None
    assert [event.serverhost for event in read[0]] == ["db1"]


def test_an_id_removed_during_a_lookup_stays_the_events() -> None:
    event_id = "".join(["x"] * 40)
    key = CollidingKey(lambda: item.pop("id", None))
    item: dict[Any, Any] = {"id": event_id, key: 0, "timestamp": 1, "message": HOSTILE_LINE}
    key.armed = True
    read = auditlog.parse_log_events([item], Origin(log_group="g"))
    assert read is not None
    assert read[0][0].origin is not None
    assert read[0][0].origin.event_id == event_id


def test_the_c_reader_declines_a_dialect_that_is_not_a_member() -> None:
    module = importlib.import_module("auditsync._c_reader")
    line = "20240131 14:02:07,db1,app,10.0.0.7,42,7,QUERY,shop,'SELECT 1',0"
    assert module.parse_line(line, "auto", UTC, None) is None
    assert module.parse_line(line, Dialect.AUTO, UTC, None) is not None


# --- the JSON writer --------------------------------------------------------------------------

c_event_json: Callable[[AuditEvent], bytes | None] = c_json.event_json


def _python_json(event: AuditEvent) -> bytes:
    document = event_to_dict(event)
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError:
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def assert_writes_as_python(event: AuditEvent) -> bytes | None:
    """The C writer answers None or exactly the Python writer's bytes."""
    line = c_event_json(event)
    if line is not None:
        assert line == _python_json(event), event
    return line


WRITER_ORIGINS = (
    None,
    Origin(),
    Origin(path="logs/server_audit.log", line_number=7),
    Origin(path="logs/caf\u00e9 'x' \"y\"\n.log", line_number=0),
    Origin(path="logs/\udc80.log", line_number=3),  # a path that is not Unicode
    Origin(path="C:\\logs\\it's.log", line_number=4),  # repr() escapes, ASCII alone
    Origin(path='say "hi"\t\x7f.log', line_number=5),
    Origin("/aws/rds/instance/db/audit", "db.audit.log.0", "3712", "shardId-0", "4959"),
    Origin("/aws/rds/instance/db/audit", "db.audit.log.0", "", "shardId-0", "4959"),
    Origin("/aws/rds/instance/db/audit", "db.audit.log.0", None, "shardId-0", "4959"),
    Origin("gr\u00f6up", None, None, None, None, None, -1),
    Origin(sequence_number="49590338271490256608559692538361571095921575989136588898"),
    Origin(path="x", line_number=2**70),
    Origin("/aws/rds/cluster/prod/audit", "prod-1.audit.log.0", "3713"),
    Origin("/aws/rds/instance/d\"b\\1/audit", "s", None),  # escaped in the derived member
    Origin("/aws/rds/instance/caf\udce9/audit", "s", "3714"),  # derived text not Unicode
    Origin("/aws/lambda/not-a-database", "s", "3715"),
)


def test_the_json_writer_writes_golden_events_as_python_does() -> None:
    written = 0
    for text in _golden_texts():
        try:
            event = auditlog.parse_line(text)
        except LineError:
            continue
        for origin in WRITER_ORIGINS:
            if assert_writes_as_python(attrs.evolve(event, origin=origin)) is not None:
                written += 1
    assert written > 0.7 * len(_golden_texts()) * len(WRITER_ORIGINS)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    event=audit_events(),
    origin=st.sampled_from(WRITER_ORIGINS),
    text=st.text(alphabet=st.characters(max_codepoint=0x10FFFF), max_size=12),
    field=st.sampled_from(["serverhost", "username", "host", "database", "object", "prefix"]),
)
def test_the_json_writer_writes_generated_events_as_python_does(
    event: AuditEvent, origin: Origin | None, text: str, field: str
) -> None:
    assert_writes_as_python(attrs.evolve(event, origin=origin))
    assert_writes_as_python(attrs.evolve(event, origin=origin, **{field: text}))


class _Text(str):
    __slots__ = ()


@pytest.mark.parametrize(
    "change",
    [
        {"connection_id": 2**64},
        {"query_id": -(2**63) - 1},
        {"retcode": 2**63},
        {"timestamp": datetime(2024, 1, 31, 14, 2, 7)},  # naive
        {"timestamp": datetime(2024, 1, 31, 14, 2, 7, tzinfo=timezone(timedelta(hours=2)))},
        {"object": "caf\udce9"},
        {"connection_type": "TCP/IP\udc80"},
        {"truncated": 1},
        {"serverhost": _Text("db1")},
    ],
)
def test_the_json_writer_leaves_what_it_does_not_know_to_python(change: dict[str, Any]) -> None:
    event = auditlog.parse_line(PLAIN_READ, origin=Origin(path="audit.log", line_number=1))
    assert c_event_json(event) is not None
    changed = attrs.evolve(event, **change)
    assert c_event_json(changed) is None
    assert to_json(changed) == _python_json(changed)


def test_the_json_writer_takes_the_common_events() -> None:
    query = PLAIN_READ.replace("READ,shop,stock,", "QUERY,shop,'select \\'a\\\\b\\'\\n',0")
    for line in (PLAIN_READ, query):
        for origin in (None, Origin(path="audit.log", line_number=9), WRITER_ORIGINS[5]):
            event = auditlog.parse_line(line, origin=origin)
            assert assert_writes_as_python(event) is not None
            assert to_json(event) == _python_json(event)


def test_the_json_writer_writes_a_batch_as_python_does() -> None:
    events = [
        attrs.evolve(auditlog.parse_line(text), origin=origin)
        for text in _golden_texts()[:200]
        if _reads(text)
        for origin in WRITER_ORIGINS[:4]
    ]
    plain = [event for event in events if c_event_json(event) is not None]
    assert len(plain) > 100
    assert c_json.json_lines(plain) == b"".join(_python_json(e) + b"\n" for e in plain)
    assert c_json.json_lines([]) == b""


def _derive_calls() -> int:
    info = _events.derived_of.cache_info()
    return info.hits + info.misses


def test_the_json_writer_asks_for_derived_members_once_per_log_group() -> None:
    """No call into Python for events without a log group (the command line's); one per
    run of events of one log group (a batch's), however many str objects spell it."""
    event = auditlog.parse_line(PLAIN_READ)
    files = [attrs.evolve(event, origin=Origin(path="a.log", line_number=n)) for n in range(500)]
    before = _derive_calls()
    assert c_json.json_lines(files) == b"".join(_python_json(e) + b"\n" for e in files)
    assert _derive_calls() - before == len(files)  # all of them Python's own
    before = _derive_calls()
    assert c_json.json_lines(files) is not None
    assert _derive_calls() == before

    groups = ["/aws/rds/instance/db-1/audit", "/aws/rds/cluster/prod/audit"]
    batch = [
        attrs.evolve(event, origin=Origin("".join(groups[run % 2]), "s", str(run * 100 + n)))
        for run in range(3)
        for n in range(100)
    ]
    before = _derive_calls()
    written = c_json.json_lines(batch)
    assert _derive_calls() - before == 3
    assert written == b"".join(_python_json(e) + b"\n" for e in batch)
    origins = [orjson.loads(line)["origin"] for line in written.splitlines()]
    assert [(o["rds_instance"], o["rds_cluster"]) for o in origins[99:101]] == [
        ("db-1", None),
        (None, "prod"),
    ]


def test_the_json_writer_leaves_a_batch_it_cannot_write_whole_to_python() -> None:
    event = auditlog.parse_line(PLAIN_READ, origin=Origin(path="audit.log", line_number=1))
    declined = attrs.evolve(event, object="caf\udce9")
    letter = DeadLetter("line", "not an audit line", b"junk", Origin(path="audit.log"))
    assert c_json.json_lines([event, event]) is not None
    assert c_json.json_lines([event, declined]) is None
    assert c_json.json_lines([event, letter]) is None
    assert c_json.json_lines((event,)) is None
    sink_output = io.BytesIO()
    JsonLinesSink(sink_output).write([event, declined, letter])
    assert sink_output.getvalue() == b"".join(
        to_json(item) + b"\n" for item in (event, declined, letter)
    )


def _reads(text: str) -> bool:
    try:
        auditlog.parse_line(text)
    except LineError:
        return False
    return True


def _key_text(event: AuditEvent) -> bytes:
    """The text a key hashes, as docs/keys.md spells it out (an origin with no event id)."""
    retcode = "" if event.retcode is None else str(event.retcode)
    record = (
        f"{event.serverhost}\x1f{event.timestamp.isoformat()}\x1f{event.username}\x1f"
        f"{event.host}\x1f{event.connection_id}\x1f{event.query_id}\x1f{event.operation}\x1f"
        f"{event.database}\x1f{event.object}\x1f{retcode}\x1f{event.connection_type or ''}"
        f"\x1f{'truncated' if event.truncated else ''}"
    )
    origin = event.origin
    if origin is not None:
        o = origin
        place = (o.log_group, o.log_stream, o.shard_id, o.sequence_number, o.path, o.line_number)
        if any(value is not None for value in place):
            record += f"\x1d{(*place, None)!r}"
    return record.encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("size", [0, 1, 111, 127, 128, 129, 255, 256, 257, 1000, 4096])
def test_the_key_digest_is_blake2b_at_block_edges(size: int) -> None:
    event = auditlog.parse_line(PLAIN_READ, origin=Origin(path="audit.log", line_number=1))
    padding = size - len(_key_text(event))
    if padding > 0:
        event = attrs.evolve(event, object=event.object + "x" * padding)
    expected = hashlib.blake2b(_key_text(event), digest_size=16).hexdigest()
    assert event.key == expected
    line = c_event_json(event)
    assert line is not None
    assert orjson.loads(line)["key"] == expected


@given(event=audit_events(), origin=st.sampled_from(WRITER_ORIGINS))
def test_the_key_digest_is_blake2b(event: AuditEvent, origin: Origin | None) -> None:
    event = attrs.evolve(event, origin=origin)
    if origin is None or not origin.event_id:
        assert event.key == hashlib.blake2b(_key_text(event), digest_size=16).hexdigest()
    line = c_event_json(event)
    if line is not None:
        assert orjson.loads(line)["key"] == event.key


# --- the C code follows the event's table ------------------------------------------------------


def test_the_c_reader_reads_fields_of_the_table_and_defaults_the_rest() -> None:
    read = speedups.READ_FIELDS
    defaults = dict(_native._reader_defaults(read))
    assert set(read) | set(defaults) == set(FIELDS)
    assert defaults == {"truncated": False, "suffix": None, "tls_version": None}
    with pytest.raises(RuntimeError, match="no plain default"):
        _native._reader_defaults(tuple(name for name in read if name != "serverhost"))
    with pytest.raises(RuntimeError, match="lacks"):
        _native._reader_defaults((*read, "client_certificate"))


def test_the_c_writer_knows_the_forms_by_their_numbers() -> None:
    assert tuple(c_json.FORMS) == tuple(_events.Form.__members__)
    assert [int(form) for form in _events.Form] == list(range(1, len(c_json.FORMS) + 1))
