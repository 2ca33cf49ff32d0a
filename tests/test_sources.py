"""Sources: recognising a file's shape, opening it through any gzip, and streaming it as
pipeline inputs with their origins.

The contract: every shape the command line reads is recognised from its first bytes; gzip
is undone however it is stacked (members back to back, gzip inside gzip); each input
knows where it came from (file and line or document, Kinesis shard and sequence number,
Firehose record id); a record split by a raw newline in a name is rejoined, and a stray
line of junk is never glued to the good record before it; JSON documents are cut apart
whatever separates them (nothing, newlines, whitespace), however they straddle the read
window, and whatever their strings hold.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import os
import re
import tempfile
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from auditsync import Origin, parse_line
from auditsync import _gzip as gzip_module
from auditsync import _sources as sources_module
from auditsync._auditlog import parse_lines
from auditsync._events import DeadLetter
from auditsync._pipeline import LINES_PER_BLOCK, Lines, Payload, Pipeline, Unreadable
from auditsync._sources import (
    InputFormat,
    _documents,
    detect_format,
    iter_paths,
    open_input,
    read_file,
    read_inputs,
)
from auditsync.sinks import MemorySink
from auditsync.testing import audit_lines, kinesis_event, to_payload

MARIADB = "20240131 14:02:07,db1,app,10.0.0.7,42,1001,QUERY,shop,'select \\'a,b\\' from t',0"
MARIADB_WRITE = "20240131 14:02:08,db1,app,10.0.0.7,42,1001,WRITE,shop,orders,"
AURORA = "1653053459680124,c731-instance-1,admin,52.94.133.136,35,698024,WRITE,testdb,test2,0"
RDS_CONNECT = "20221201 14:07:05,ip-10-22-1-51,rdsadmin,localhost,821,0,CONNECT,,,0,SOCKET"
RDS_QUERY = "20221201 14:07:06,ip-10-22-1-51,rdsadmin,localhost,821,5,QUERY,mysql,'select 1',0,,"
SYSLOG_BSD = (
    "Jan 31 14:02:07 dbhost mysql-server_auditing: prod "
    "db1,app,10.0.0.7,42,1001,QUERY,shop,'select 1',0"
)
SYSLOG_ISO = (
    "2024-01-31T14:02:07+00:00 dbhost mysql-server_auditing: prod "
    "db1,app,10.0.0.7,42,1001,QUERY,shop,'select 1',0"
)
SYSLOG_DATAGRAM = (
    "<14>Nov 27 05:43:16 mysql-server_auditing: prod db1,app,h,42,1001,QUERY,shop,'select 1',0"
)
JUNK = "this is not an audit record"
SHARD = "shardId-000000000007"


# --- helpers --------------------------------------------------------------------------------


def reader(data: bytes) -> io.BufferedReader:
    """A decompressed, peekable stream of ``data``, as the command line opens a file."""
    return open_input(io.BytesIO(data))


def message(lines: Sequence[str], first_id: int = 0, stream: str = "i-1.audit.log.0") -> bytes:
    """One CloudWatch Logs subscription message as compact JSON."""
    return orjson.dumps(
        {
            "messageType": "DATA_MESSAGE",
            "owner": "123456789012",
            "logGroup": "/aws/rds/cluster/prod/audit",
            "logStream": stream,
            "subscriptionFilters": ["to-s3"],
            "logEvents": [
                {"id": f"{first_id + n:056d}", "timestamp": 1706709727000, "message": line}
                for n, line in enumerate(lines)
            ],
        }
    )


def log_bytes(*lines: str | bytes) -> bytes:
    return b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines)


def lines_of(items: Sequence[object]) -> list[tuple[bytes, int | None]]:
    """(raw bytes, line number) of every record, which must all come in blocks of Lines."""
    found = []
    for item in items:
        assert isinstance(item, Lines), item
        assert item.numbers is not None
        assert len(item.numbers) == len(item.texts)
        for text, number in zip(item.texts, item.numbers, strict=True):
            found.append((text if isinstance(text, bytes) else text.encode(), number))
    return found


class ShortReads:
    """A stream that hands out at most ``size`` bytes a read, as pipes and sockets do."""

    def __init__(self, data: bytes, size: int):
        self.data = data
        self.size = size
        self.position = 0

    def read(self, size: int = -1, /) -> bytes:
        size = self.size if size < 0 else min(size, self.size)
        chunk = self.data[self.position : self.position + size]
        self.position += len(chunk)
        return chunk


def squeezed(data: bytes) -> bytes:
    """``data`` without whitespace: compares what documents hold, not how they were spaced."""
    return re.sub(rb"\s", b"", data)


# --- detect_format --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "form"),
    [
        (MARIADB, InputFormat.LOG),
        (AURORA, InputFormat.LOG),
        (RDS_CONNECT, InputFormat.LOG),
        (SYSLOG_BSD, InputFormat.LOG),
        (SYSLOG_ISO, InputFormat.LOG),
        (SYSLOG_DATAGRAM, InputFormat.LOG),
        # MariaDB 12's custom timestamp: ISO with Z, but a comma, not a space, follows.
        ("2024-01-31T14:02:07.123456Z,db1,app,h,42,1001,QUERY,shop,'select 1',0", InputFormat.LOG),
        (JUNK, InputFormat.LOG),
        ("", InputFormat.LOG),
        # An ISO time then a space, but no record after it: not an export.
        ("2024-01-31T14:02:07.000Z some other log line", InputFormat.LOG),
        (f"2023-05-01T10:02:19.000Z {MARIADB}", InputFormat.EXPORT),
        (f"2023-05-01T10:02:19Z {AURORA}", InputFormat.EXPORT),
        (f"2023-05-01T10:02:19.123456789Z {RDS_QUERY}", InputFormat.EXPORT),
        (f"2023-05-01T10:02:19.000Z {SYSLOG_BSD}", InputFormat.EXPORT),
        ('{"messageType": "DATA_MESSAGE"}', InputFormat.MESSAGES),
        (' \r\n\t{"Records": []}', InputFormat.MESSAGES),
        ('[{"messageType": "DATA_MESSAGE"}]', InputFormat.MESSAGES),
    ],
)
def test_detect_format_from_the_first_bytes(head: str, form: InputFormat) -> None:
    assert detect_format(head.encode()) is form
    assert detect_format((head + "\n" + MARIADB + "\n").encode()) is form


# --- open_input -----------------------------------------------------------------------------


def test_open_input_passes_plain_bytes_through() -> None:
    data = log_bytes(MARIADB, AURORA)
    assert reader(data).read() == data


def test_open_input_undoes_gzip() -> None:
    data = log_bytes(MARIADB, AURORA)
    assert reader(gzip.compress(data)).read() == data


def test_open_input_reads_every_gzip_member() -> None:
    parts = [log_bytes(MARIADB), log_bytes(AURORA), b"", log_bytes(RDS_QUERY)]
    data = b"".join(gzip.compress(part) for part in parts)
    assert reader(data).read() == b"".join(parts)


def test_open_input_undoes_gzip_inside_gzip() -> None:
    # Firehose's own compression around CloudWatch's gzip members.
    inner = gzip.compress(message([MARIADB])) + gzip.compress(message([AURORA], 1))
    stream = reader(gzip.compress(inner))
    assert stream.read() == message([MARIADB]) + message([AURORA], 1)


def test_open_input_undoes_three_layers_of_gzip() -> None:
    data = log_bytes(MARIADB)
    assert reader(gzip.compress(gzip.compress(gzip.compress(data)))).read() == data


def test_open_input_takes_any_object_with_read() -> None:
    data = log_bytes(MARIADB, AURORA) * 100
    compressed = gzip.compress(data[:1000]) + gzip.compress(data[1000:])
    assert open_input(ShortReads(compressed, 7)).read() == data


def _inflaters() -> list[Any]:
    """zlib's inflater, and ISA-L's where the fast extra is installed."""
    found: list[Any] = [pytest.param(zlib.decompressobj, id="zlib")]
    if importlib.util.find_spec("isal") is not None:
        from isal import isal_zlib

        found.append(pytest.param(isal_zlib.decompressobj, id="isal"))
    return found


@pytest.mark.parametrize("inflater", _inflaters())
@given(
    parts=st.lists(st.binary(max_size=3000), min_size=1, max_size=5),
    sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=30),
)
def test_gzip_members_read_in_any_sizes_give_each_byte_once(
    inflater: Any, parts: list[bytes], sizes: list[int]
) -> None:
    # A read that stopped inside a member once counted the input after that member
    # twice: zlib had left it in both unconsumed_tail and unused_data.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gzip_module, "new_inflater", inflater)
        members = sources_module._GzipMembers(io.BytesIO(b"".join(map(gzip.compress, parts))))
        got = [members.read(size) for size in sizes * 40]
        got += iter(members.read, b"")
    assert b"".join(got) == b"".join(parts)
    assert members.failure is None


@pytest.mark.parametrize("inflater", _inflaters())
@given(cut=st.integers(1, 200_000), size=st.sampled_from([100, 4096, 1 << 20]))
def test_a_gzip_member_cut_short_gives_every_byte_before_the_cut(
    inflater: Any, cut: int, size: int
) -> None:
    # ISA-L reads ahead: when the input ends, what it holds must still come out. (Of a
    # member cut mid-stream it gives up to two bytes fewer than zlib, as it does when
    # called directly: the library's, not the reader's; measured 0-2 over many cuts.)
    content = b"".join(b"%d,'select %d'\n" % (n, n * 7919 % 10007) for n in range(20_000))
    whole = gzip.compress(content, compresslevel=6)
    data = whole[: cut % len(whole)]
    good = zlib.decompressobj(31).decompress(data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gzip_module, "new_inflater", inflater)
        members = sources_module._GzipMembers(io.BytesIO(data))
        got = b"".join(iter(lambda: members.read(size), b""))
    assert good.startswith(got)
    assert len(good) - len(got) <= (0 if inflater is zlib.decompressobj else 2)
    assert (members.failure is None) == (not data)


@pytest.mark.parametrize("inflater", _inflaters())
def test_a_gzip_member_with_reserved_flags_ends_the_file_whichever_inflates(
    inflater: Any,
) -> None:
    first, second = gzip.compress(log_bytes(MARIADB)), gzip.compress(log_bytes(AURORA))
    flagged = second[:3] + bytes([second[3] | 0x20]) + second[4:]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gzip_module, "new_inflater", inflater)
        members = sources_module._GzipMembers(ShortReads(first + flagged, 2))
        assert b"".join(iter(members.read, b"")) == log_bytes(MARIADB)
    assert (
        members.failure
        == f"corrupt gzip stream: reserved header flags set (at offset {len(first)})"
    )


def test_a_read_error_ends_the_log_after_its_last_whole_line() -> None:
    class FailingDisk:
        def __init__(self) -> None:
            self.reads = [log_bytes(MARIADB, AURORA) + MARIADB.encode()[:60]]

        def read(self, size: int = -1, /) -> bytes:
            if self.reads:
                return self.reads.pop()
            raise OSError("disk gone")

    items = list(read_inputs(FailingDisk(), "audit.log"))  # type: ignore[arg-type]
    failure = assert_cut_in_line_3(items, "audit.log", MARIADB.encode()[:60])
    assert "cannot read audit.log to its end: disk gone" in failure.error


def test_a_gzip_log_cut_short_ends_after_its_last_whole_line() -> None:
    data = gzip.compress(log_bytes(MARIADB, AURORA, AURORA), compresslevel=0)
    cut_at = data.index(AURORA.encode()[:30], data.index(AURORA.encode()) + 1)
    items = list(read_file(io.BytesIO(data[: cut_at + 30]), "audit.log.gz"))
    failure = assert_cut_in_line_3(items, "audit.log.gz", AURORA.encode()[:30])
    assert "cut short" in failure.error


def assert_cut_in_line_3(items: list[Any], path: str, partial: bytes) -> Unreadable:
    """Lines 1 and 2 as records; line 3, read in part, whole as a dead letter — no record
    (it could read as a truncated query), nor lost; then the failure, returned."""
    assert lines_of(items[:-2]) == [(MARIADB.encode(), 1), (AURORA.encode(), 2)]
    cut, failure = items[-2:]
    assert isinstance(cut, Unreadable)
    assert cut.raw == partial
    assert cut.origin == Origin(path=path, line_number=3)
    assert isinstance(failure, Unreadable)
    return failure


def test_open_input_of_an_empty_stream_is_empty() -> None:
    assert reader(b"").read() == b""
    assert reader(gzip.compress(b"")).read() == b""


# --- read_inputs: logs ----------------------------------------------------------------------


def test_log_lines_carry_path_and_physical_line_number() -> None:
    data = log_bytes(MARIADB, "", AURORA) + RDS_QUERY.encode() + b"\r\n" + RDS_CONNECT.encode()
    items = list(read_inputs(reader(data + b"\n"), "logs/server_audit.log"))
    assert lines_of(items) == [
        (MARIADB.encode(), 1),
        (AURORA.encode(), 3),
        (RDS_QUERY.encode(), 4),  # CRLF taken off
        (RDS_CONNECT.encode(), 5),
    ]
    assert {item.origin.path for item in items if item.origin} == {"logs/server_audit.log"}


@pytest.mark.parametrize("compressed", [False, True])
def test_a_last_line_without_its_newline_is_incomplete_not_a_record(compressed: bool) -> None:
    # It reads as a query the server truncated: run while a writer is mid-line, then again
    # once it finished, the same record was stored twice.
    cut = b"20240131 14:02:09,db1,app,10.0.0.7,42,1003,QUERY,shop,'delete from orders where id = 4"
    data = log_bytes(MARIADB) + cut
    items = list(read_file(io.BytesIO(gzip.compress(data) if compressed else data), "a.log"))
    assert lines_of(items[:-1]) == [(MARIADB.encode(), 1)]
    assert items[-1] == Unreadable(
        "a.log: line 2 has no newline at its end: incomplete, not a record",
        cut,
        Origin(path="a.log", line_number=2),
    )
    assert lines_of(list(read_file(io.BytesIO(data + b"\n"), "a.log"))) == [
        (MARIADB.encode(), 1),
        (cut, 2),
    ]


@pytest.mark.parametrize("line", [MARIADB, AURORA, RDS_CONNECT, SYSLOG_BSD, SYSLOG_DATAGRAM])
def test_every_dialect_is_read_as_log_lines(line: str) -> None:
    items = list(read_inputs(reader(gzip.compress(log_bytes(line, line))), "f.gz"))
    assert lines_of(items) == [(line.encode(), 1), (line.encode(), 2)]


def test_log_lines_keep_bytes_that_are_not_utf8() -> None:
    line = b"20240131 14:02:07,db1,app,h,42,1001,QUERY,shop,'select \xff\xfe caf\xc3\xa9',0"
    items = list(read_inputs(reader(log_bytes(line)), "f"))
    assert lines_of(items) == [(line, 1)]


@pytest.mark.parametrize(
    ("record", "field", "value"),
    [
        (
            "20240131 14:02:07,db1,we\nird,10.0.0.7,42,1001,QUERY,shop,'select 1',0",
            "username",
            "we\nird",
        ),
        (
            "20240131 14:02:07,db1,app,10.0.0.7,42,1001,QUERY,sh\nop,'select 1',0",
            "database",
            "sh\nop",
        ),
        ("20240131 14:02:07,db1,app,10.0.0.7,42,1001,WRITE,shop,ord\ners,", "object", "ord\ners"),
        ("20240131 14:02:07,db1,app,10.0.0.7,42,1001,WRITE,shop,a\nb\nc,", "object", "a\nb\nc"),
        ("20240131 14:02:07,db1,app,10.0.0.7,42,1001,WRITE,shop,ab\n,", "object", "ab\n"),
        ("20240131 14:02:07,db1,app,10.0.0.7,42,0,CONNECT,sh\nop,,0", "database", "sh\nop"),
        (
            "1653053459680124,c731,admin,1.2.3.4,35,698024,WRITE,testdb,te\nst2,0",
            "object",
            "te\nst2",
        ),
        (
            "20221201 14:07:05,ip,rds\nadmin,localhost,821,0,CONNECT,,,0,SOCKET",
            "username",
            "rds\nadmin",
        ),
    ],
)
def test_a_raw_newline_in_a_name_is_rejoined(record: str, field: str, value: str) -> None:
    data = log_bytes(MARIADB, record, MARIADB_WRITE)
    items = list(read_inputs(reader(data), "f"))
    continuation = record.count("\n")
    assert lines_of(items) == [
        (MARIADB.encode(), 1),
        (record.encode(), 2),
        (MARIADB_WRITE.encode(), 3 + continuation),
    ]
    assert getattr(parse_line(record), field) == value


def test_a_stray_junk_line_is_not_glued_to_the_good_record_before_it() -> None:
    data = log_bytes(MARIADB, JUNK, AURORA)
    items = list(read_inputs(reader(data), "f"))
    assert lines_of(items) == [(MARIADB.encode(), 1), (JUNK.encode(), 2), (AURORA.encode(), 3)]


def test_a_stray_junk_line_is_its_own_dead_letter() -> None:
    data = log_bytes(JUNK, MARIADB, JUNK + " too", AURORA)
    sink, letters = MemorySink(), MemorySink()
    report = Pipeline(sink, dead_letter=letters).process(read_inputs(reader(data), "f"))
    assert (report.records, report.delivered, report.dead_lettered) == (4, 2, 2)
    assert [event.origin.line_number for event in sink.items if event.origin] == [2, 4]
    dead = [item for item in letters.items if isinstance(item, DeadLetter)]
    assert [(letter.raw, letter.origin) for letter in dead] == [
        (JUNK.encode(), Origin(path="f", line_number=1)),
        (JUNK.encode() + b" too", Origin(path="f", line_number=3)),
    ]


@pytest.mark.parametrize("form", [InputFormat.LOG, InputFormat.EXPORT])
def test_a_run_of_junk_lines_is_not_glued_into_one_unbounded_record(form: InputFormat) -> None:
    # No name in a record holds more than a few newlines; a file of junk must not become
    # one record the size of the file — in an export, lines without its timestamp alike.
    data = log_bytes(*(f"{JUNK} number {n}" for n in range(2000)))
    items = list(read_inputs(reader(data), "f", form))
    assert max(len(text) for item in items if isinstance(item, Lines) for text in item.texts) < (
        64 * 1024
    )


# --- read_inputs: CloudWatch Logs export objects ----------------------------------------------


def test_export_lines_lose_their_timestamp_and_keep_their_number() -> None:
    data = gzip.compress(
        log_bytes(
            f"2023-05-01T10:02:19.000Z {MARIADB}",
            f"2023-05-01T10:02:20.000Z {AURORA}",
            f"2023-05-01T10:02:21.000Z {SYSLOG_BSD}",
        )
    )
    items = list(read_inputs(reader(data), "000000.gz"))
    assert lines_of(items) == [
        (MARIADB.encode(), 1),
        (AURORA.encode(), 2),
        (SYSLOG_BSD.encode(), 3),
    ]
    assert items[0].origin == Origin(path="000000.gz")
    events, _ = parse_lines(items[0].texts, items[0].origin, items[0].numbers)
    assert events[0].origin == Origin(path="000000.gz", line_number=1)


def test_export_message_holding_a_newline_is_rejoined() -> None:
    record = "20240131 14:02:07,db1,we\nird,10.0.0.7,42,1001,QUERY,shop,'select 1',0"
    data = log_bytes(f"2023-05-01T10:02:19.000Z {record}", f"2023-05-01T10:02:20.000Z {AURORA}")
    items = list(read_inputs(reader(data), "export"))
    assert lines_of(items) == [(record.encode(), 1), (AURORA.encode(), 3)]


def test_export_junk_after_a_table_event_is_not_glued_to_it() -> None:
    # A table event ends in a comma, so junk glued to it read as its database:
    # database='shop,orders,\nTHIS IS', object 'junk', and no dead letter.
    data = log_bytes(f"2023-05-01T10:02:19.000Z {MARIADB_WRITE}", "THIS IS,junk,")
    items = list(read_inputs(reader(data), "export"))
    assert lines_of(items) == [(MARIADB_WRITE.encode(), 1), (b"THIS IS,junk,", 2)]
    sink, letters = MemorySink(), MemorySink()
    report = Pipeline(sink, dead_letter=letters).process(read_inputs(reader(data), "export"))
    assert [(event.database, event.object) for event in sink.items] == [("shop", "orders")]
    assert (report.delivered, report.dead_lettered) == (1, 1)


def test_a_raw_log_read_as_an_export_is_split_into_its_records() -> None:
    # With no export timestamp on any line, every line after the first once continued it:
    # one record, and one event whose database was the whole file.
    data = (Path(__file__).parents[1] / "examples" / "server_audit.log").read_bytes()
    as_log = lines_of(list(read_inputs(reader(data), "f", InputFormat.LOG)))
    assert len(as_log) > 300
    assert lines_of(list(read_inputs(reader(data), "f", InputFormat.EXPORT))) == as_log


@pytest.mark.parametrize("form", [InputFormat.LOG, InputFormat.EXPORT])
def test_one_rule_joins_a_split_record_in_a_log_and_an_export(form: InputFormat) -> None:
    # The continuation joins a record that does not read alone, at most three times.
    stamp = "2023-05-01T10:02:19.000Z " if form is InputFormat.EXPORT else ""
    split = "20240131 14:02:07,db1,app,10.0.0.7,42,1001,WRITE,shop,a\nb\nc\nd,"
    too_split = "20240131 14:02:07,db1,app,10.0.0.7,42,1001,WRITE,shop,a\nb\nc\nd\ne,"
    data = log_bytes(stamp + split, stamp + too_split, stamp + AURORA)
    items = list(read_inputs(reader(data), "f", form))
    assert lines_of(items) == [
        (split.encode(), 1),
        (too_split.encode()[:-3], 5),  # joined three times, then the rest stands alone
        (b"e,", 9),
        (AURORA.encode(), 10),
    ]


_PHYSICAL_LINES = st.lists(
    st.sampled_from(
        [
            MARIADB.encode(),
            AURORA.encode(),
            RDS_QUERY.encode(),
            SYSLOG_BSD.encode(),
            JUNK.encode(),
            b"",
            b"\r",
            MARIADB.encode() + b"\r",
            b"20240131 14:02:07,db1,app,10.0.0.7,42,7,QUERY,shop,'SELECT 1",
            b"continued',0",
            b"2024-01-31T14:02:07.123Z " + MARIADB.encode(),
            b"2024-01-31T14:02:07Z ",
        ]
    ),
    max_size=60,
)


@given(lines=_PHYSICAL_LINES, chunk=st.integers(1, 400), final_newline=st.booleans())
@pytest.mark.parametrize("export", [False, True])
def test_records_read_a_chunk_at_a_time_are_those_read_line_by_line(
    lines: list[bytes], chunk: int, final_newline: bool, export: bool
) -> None:
    # Whole chunks are cut by bytes.split when every line starts a record; the
    # line-by-line path is the reference for both.
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    reference = sources_module._Records(export)
    physical = data.split(b"\n")
    if final_newline and lines:
        physical.pop()
    last = physical.pop() if data and not (final_newline and lines) else b""
    reference.take_lines(physical if data else [], 1)
    reference.finish()
    expected = list(zip(reference.texts, reference.numbers, strict=True))
    for size in (chunk, 1 << 20):
        stream = io.BytesIO(data)
        blocks = list(sources_module._log_lines(stream, "a.log", export=export, chunk=size))
        if last.rstrip(b"\r"):  # a last line without its newline is no record
            incomplete = blocks.pop()
            assert isinstance(incomplete, Unreadable)
            assert (incomplete.raw, incomplete.origin) == (
                last,
                Origin(path="a.log", line_number=len(physical) + 1),
            )
        assert lines_of(blocks) == expected
        assert all(0 < len(block.texts) <= LINES_PER_BLOCK for block in blocks)


def test_lines_in_a_pipe_go_on_before_the_pipe_closes() -> None:
    # A log piped in (tail -F ... | auditsync decode -) must not wait for a full chunk.
    read_end, write_end = os.pipe()
    data = log_bytes(*[MARIADB] * (LINES_PER_BLOCK + 5))
    writer = threading.Thread(target=os.write, args=(write_end, data))
    writer.start()
    first: list[Lines] = []
    with open(read_end, "rb") as stream:
        reader = threading.Thread(
            target=lambda: first.append(next(sources_module._log_lines(stream, "-", export=False)))
        )
        reader.start()
        reader.join(timeout=20)
        came_out_while_open = bool(first)
        writer.join(timeout=20)
        os.close(write_end)  # ends the reader, whatever happened
        reader.join(timeout=20)
    assert came_out_while_open, "nothing came out before the pipe closed"
    assert lines_of(first) == [(MARIADB.encode(), n) for n in range(1, LINES_PER_BLOCK + 1)]


def test_forced_export_format_reads_an_object_whose_first_line_is_junk() -> None:
    data = log_bytes(f"2023-05-01T10:02:19.000Z {JUNK}", f"2023-05-01T10:02:20.000Z {MARIADB}")
    assert detect_format(data) is InputFormat.LOG
    items = list(read_inputs(reader(data), "export", InputFormat.EXPORT))
    assert lines_of(items) == [(JUNK.encode(), 1), (MARIADB.encode(), 2)]


# --- records longer than any record ----------------------------------------------------------


def bounded(longest: int) -> Any:
    """A smaller :data:`LONGEST_RECORD`, so that tests need not make megabytes."""
    return mock.patch.object(sources_module, "LONGEST_RECORD", longest)


@given(
    lengths=st.lists(st.sampled_from([0, 1, 99, 100, 101, 250, 9000]), min_size=1, max_size=12),
    chunk=st.integers(1, 300),
    final_newline=st.booleans(),
)
def test_a_line_longer_than_any_record_is_a_dead_letter_of_its_start_and_length(
    lengths: list[int], chunk: int, final_newline: bool
) -> None:
    # A gzip bomb of NULs is one endless line: it was held whole, then parsed.
    longest, kept = 100, sources_module._KEPT
    lines = [MARIADB.encode() + b"x" * n for n in lengths]
    data = b"\n".join(lines) + (b"\n" if final_newline else b"")
    with bounded(longest):
        items = list(
            sources_module._log_lines(io.BytesIO(data), "a.log", export=False, chunk=chunk)
        )
    records = lines_of([item for item in items if isinstance(item, Lines)])
    letters = [item for item in items if isinstance(item, Unreadable)]
    numbered = list(enumerate(lines, 1))
    if not final_newline:
        *numbered, (last_number, last) = numbered
    assert records == [(line, n) for n, line in numbered if len(line) <= longest]
    expected = [(line[:kept], n, len(line)) for n, line in numbered if len(line) > longest]
    if not final_newline:
        expected.append((last[:kept], last_number, len(last)))
    assert [(letter.raw, letter.origin.line_number) for letter in letters if letter.origin] == [
        (raw, n) for raw, n, _ in expected
    ]
    for letter, (_, number, length) in zip(letters, expected, strict=True):
        if length > longest:
            assert f"line {number} is {length} bytes long" in letter.error
        else:
            assert "no newline" in letter.error


def test_records_around_an_overlong_line_keep_their_order() -> None:
    data = log_bytes(MARIADB, b"\0" * 5000, AURORA)
    with bounded(1000):
        items = list(read_inputs(reader(gzip.compress(data)), "bomb.gz"))
    assert [type(item) for item in items] == [Lines, Unreadable, Lines]
    assert lines_of(items[::2]) == [(MARIADB.encode(), 1), (AURORA.encode(), 3)]
    assert items[1] == Unreadable(
        "bomb.gz: line 2 is 5000 bytes long, longer than any record (1000 bytes); "
        "its first 4096 bytes are kept",
        bytes(4096),
        Origin(path="bomb.gz", line_number=2),
    )


def test_continuations_are_not_joined_past_the_longest_record() -> None:
    start = "20240131 14:02:07,db1,app,10.0.0.7,42,1001,WRITE,shop,a"
    end = "c" * 400 + ","
    data = log_bytes(start, "b" * 600, end)
    with bounded(1000):
        items = list(read_inputs(reader(data), "f"))
    assert lines_of(items) == [(f"{start}\n{'b' * 600}".encode(), 1), (end.encode(), 3)]


def test_a_document_longer_than_any_record_is_a_dead_letter_of_its_start() -> None:
    huge = message(["x" * 3000])
    data = message([MARIADB]) + b"\n" + huge + b"\n" + message([AURORA], 1)
    with bounded(2000):
        items = list(read_inputs(reader(data), "f.json"))
    assert items[0] == Payload(message([MARIADB]), Origin(path="f.json", line_number=1))
    assert items[1] == Unreadable(
        f"f.json: document 2 is {len(huge)} bytes long, longer than any record (2000 bytes); "
        f"its first {len(huge)} bytes are kept",
        huge,
        Origin(path="f.json", line_number=2),
    )
    assert items[2] == Payload(message([AURORA], 1), Origin(path="f.json", line_number=3))


# --- read_inputs: JSON ----------------------------------------------------------------------


@pytest.mark.parametrize("separator", [b"", b"\n", b"\r\n", b"  \n\t"])
def test_messages_are_payloads_numbered_by_document(separator: bytes) -> None:
    first, second = message([MARIADB, AURORA]), message([RDS_QUERY], 10)
    data = gzip.compress(first) + gzip.compress(separator + second + separator)
    items = list(read_inputs(reader(data), "firehose/obj"))
    assert all(isinstance(item, Payload) for item in items)
    assert [orjson.loads(item.data) for item in items if isinstance(item, Payload)] == [
        orjson.loads(first),
        orjson.loads(second),
    ]
    assert [item.origin for item in items] == [
        Origin(path="firehose/obj", line_number=1),
        Origin(path="firehose/obj", line_number=2),
    ]


def test_kinesis_event_records_keep_shard_sequence_and_path() -> None:
    payloads = [to_payload(message([MARIADB])), to_payload(message([AURORA], 5))]
    event = kinesis_event(payloads, shard=SHARD)
    items = list(read_inputs(reader(orjson.dumps(event)), "saved/kinesis.json"))
    sequences = [record["kinesis"]["sequenceNumber"] for record in event["Records"]]
    assert [(item.data, item.origin) for item in items if isinstance(item, Payload)] == [
        (
            payload,
            Origin(
                shard_id=SHARD, sequence_number=sequence, path="saved/kinesis.json", line_number=1
            ),
        )
        for payload, sequence in zip(payloads, sequences, strict=True)
    ]
    assert len(items) == 2


def test_subscription_event_is_its_payload() -> None:
    payload = to_payload(message([MARIADB]))
    items = list(read_inputs(reader(orjson.dumps({"awslogs": {"data": payload}})), "sub.json"))
    assert [(item.data, item.origin) for item in items if isinstance(item, Payload)] == [
        (payload, Origin(path="sub.json", line_number=1))
    ]
    assert len(items) == 1


def test_firehose_event_records_keep_their_record_id() -> None:
    payloads = [to_payload(message([MARIADB])), to_payload(message([AURORA], 5))]
    event = {
        "invocationId": "00540a87",
        "records": [
            {"recordId": f"rec-{n}", "approximateArrivalTimestamp": 1, "data": payload}
            for n, payload in enumerate(payloads)
        ],
    }
    items = list(read_inputs(reader(orjson.dumps(event, option=orjson.OPT_INDENT_2)), "fh.json"))
    assert [(item.data, item.origin) for item in items if isinstance(item, Payload)] == [
        (payloads[0], Origin(sequence_number="rec-0", path="fh.json", line_number=1)),
        (payloads[1], Origin(sequence_number="rec-1", path="fh.json", line_number=1)),
    ]


def test_a_document_of_a_lambda_file_that_is_no_event_stays_a_payload() -> None:
    good = orjson.dumps({"awslogs": {"data": to_payload(message([MARIADB]))}})
    data = good + b"\n" + b'{"neither": 1}' + b"\n"
    items = list(read_inputs(reader(data), "events.json"))
    assert len(items) == 2
    assert items[1] == Payload(b'{"neither": 1}', Origin(path="events.json", line_number=2))


def test_forced_lambda_format_takes_events_apart() -> None:
    # The first document is no Lambda event, so auto-detection reads the file as messages;
    # --format lambda still takes the events after it apart.
    payload = to_payload(message([MARIADB]))
    data = b'{"note": "no event"}\n' + orjson.dumps({"awslogs": {"data": payload}})
    automatic = list(read_inputs(reader(data), "f"))
    assert Payload(payload, Origin(path="f")) not in automatic
    items = list(read_inputs(reader(data), "f", InputFormat.LAMBDA))
    assert items == [
        Payload(b'{"note": "no event"}', Origin(path="f", line_number=1)),
        Payload(payload, Origin(path="f", line_number=2)),
    ]


def test_forced_log_format_reads_json_as_lines() -> None:
    data = message([MARIADB]) + b"\n"
    items = list(read_inputs(reader(data), "f", InputFormat.LOG))
    assert lines_of(items) == [(data.rstrip(b"\n"), 1)]


def test_inputs_of_saved_lambda_events_know_their_document() -> None:
    events = [{"awslogs": {"data": to_payload(message([line]))}} for line in (MARIADB, AURORA)]
    data = b"\n".join(orjson.dumps(event) for event in events)
    items = list(read_inputs(reader(data), "events.jsonl"))
    assert [item.origin.line_number for item in items if item.origin] == [1, 2]


def test_read_inputs_detects_the_shape_of_any_binary_stream() -> None:
    items = list(read_inputs(io.BytesIO(message([MARIADB])), "f"))
    assert [type(item) for item in items] == [Payload]


# --- _documents -----------------------------------------------------------------------------


def documents(data: bytes, read_size: int | None = None) -> list[bytes]:
    stream: Any = io.BytesIO(data) if read_size is None else ShortReads(data, read_size)
    return list(_documents(stream))


@pytest.mark.parametrize("separator", [b"", b"\n", b"\r\n", b" \t \n\n"])
def test_documents_are_cut_whatever_separates_them(separator: bytes) -> None:
    parts = [message([MARIADB]), message([AURORA], 1), message([RDS_QUERY], 2)]
    data = separator + separator.join(parts) + separator
    assert [orjson.loads(doc) for doc in documents(data)] == [orjson.loads(p) for p in parts]
    assert [doc.strip() for doc in documents(data)] == parts


def test_documents_with_braces_inside_strings() -> None:
    tricky = [
        MARIADB.replace("select", "select '}{'"),
        "select '}\\n{' from t",
        'select "}" , "{" , "\\"}{\\""',
        "}{",
    ]
    parts = [message([line], n) for n, line in enumerate(tricky)]
    for separator in (b"", b"\n"):
        assert [doc.strip() for doc in documents(separator.join(parts))] == parts


def test_a_document_bigger_than_the_read_window() -> None:
    window = sources_module._CHUNK
    huge = message(["x" * (3 * window) + "}{" + "y" * window, MARIADB])
    small = message([AURORA], 9)
    parts = [small, huge, small, huge]
    assert len(huge) > 4 * window
    assert [doc.strip() for doc in documents(b"".join(parts))] == parts
    assert [doc.strip() for doc in documents(b"\n".join(parts), read_size=window // 3)] == parts


def test_non_ascii_text_straddling_the_read_window() -> None:
    lines = ["select 'é€😀'", "ü" * 50, "日本語のクエリ}{"]
    parts = [message([line], n) for n, line in enumerate(lines)]
    data = b"".join(parts)
    with mock.patch.object(sources_module, "_CHUNK", 5):
        for size in (1, 2, 3, 7):
            found = documents(data, read_size=size)
            assert [orjson.loads(doc)["logEvents"][0]["message"] for doc in found] == lines


def test_a_truncated_last_document_is_handed_on_as_it_is() -> None:
    data = message([MARIADB]) + b"\n" + b'{"messageType": "DATA_MES'
    assert documents(data) == [message([MARIADB]), b'{"messageType": "DATA_MES']


def test_whitespace_alone_holds_no_document() -> None:
    assert documents(b"") == []
    assert documents(b" \r\n\t\n") == []


def test_garbage_alone_is_one_document_to_dead_letter() -> None:
    assert documents(b"not json at all\n") == [b"not json at all"]


@pytest.mark.parametrize("separator", [b"", b"\n"])
def test_garbage_at_the_end_does_not_take_the_last_document_with_it(separator: bytes) -> None:
    parts = [message([MARIADB]), message([AURORA], 1)]
    found = documents(separator.join(parts) + separator + b"garbage\n")
    assert [doc.strip() for doc in found] == [*parts, b"garbage"]


def test_a_corrupt_document_in_the_middle_does_not_swallow_the_rest() -> None:
    parts = [message([f"select {n}"], n) for n in range(6)]
    data = b"\n".join([parts[0], b'{"messageType": "DA', *parts[1:]])
    found = documents(data)
    assert squeezed(b"".join(found)) == squeezed(data)  # nothing lost
    assert [doc.strip() for doc in found][-4:] == parts[2:]


@given(
    parts=st.lists(
        st.dictionaries(
            st.text(max_size=5),
            st.one_of(
                st.text(st.sampled_from('{}[]"\\ \n\té😀,:'), max_size=12),
                st.integers(-(2**63), 2**63 - 1),
            ),
            max_size=4,
        ),
        max_size=6,
    ),
    separators=st.lists(st.sampled_from([b"", b"\n", b"\r\n", b" ", b"\n\n"]), min_size=7),
    window=st.integers(1, 64),
    read_size=st.integers(1, 64),
)
@example(parts=[{"": "}{}"}], separators=[b""] * 7, window=1, read_size=1)  # "}{" in a string
def test_documents_property(
    parts: list[dict[str, Any]], separators: list[bytes], window: int, read_size: int
) -> None:
    encoded = [orjson.dumps(part) for part in parts]
    data = separators[0] + b"".join(
        doc + sep for doc, sep in zip(encoded, separators[1:], strict=False)
    )
    with mock.patch.object(sources_module, "_CHUNK", window):
        found = documents(data, read_size=read_size)
    assert [doc.strip() for doc in found] == encoded


def small_windows(window: int, *, patience: int) -> Any:
    """Reads of ``window`` bytes, and ``patience`` bytes before a stretch is judged bad."""
    return mock.patch.multiple(sources_module, _CHUNK=window, LONGEST_RECORD=patience)


def test_a_bad_stretch_longer_than_any_document_is_cut_before_the_stream_ends() -> None:
    # Patience has a bound: a corrupt file is not read whole into memory first.
    bad = b'{"bad": ' + b"x" * 500 + b"}"
    good = [message([MARIADB], n) for n in range(300)]
    stream = io.BytesIO(bad + b"".join(good))
    with small_windows(64, patience=1000):
        found = _documents(stream)
        assert next(found) == bad
        assert stream.tell() < len(stream.getvalue()) // 4
        assert list(found) == good


@pytest.mark.parametrize("junk", [b"x" * 20_000, b"x{" * 10_000, b"}x" * 10_000])
def test_junk_without_a_restart_is_handed_on_in_pieces_not_held_whole(junk: bytes) -> None:
    good = [message([MARIADB], n) for n in range(3)]
    stream = io.BytesIO(junk + b"".join(good))
    with small_windows(64, patience=1000):
        found = _documents(stream)
        first = next(found)
        assert stream.tell() < len(junk) // 4
        rest = [first, *found]
    assert rest[-3:] == good
    assert b"".join(rest[:-3]) == junk


@given(
    junk=st.lists(st.sampled_from([b"x", b"{", b"}", b'"', b" ", b"\n", b":", b","]), max_size=600),
    patience=st.integers(0, 300),
)
def test_good_documents_after_any_junk_come_out_whole(junk: list[bytes], patience: int) -> None:
    # Whole, that is, when no document is longer than the patience (16 MiB in use).
    good = [message([MARIADB], n) for n in range(3)]
    patience += max(map(len, good))
    data = b"".join(junk) + b"\n" + b"".join(good)
    with small_windows(16, patience=patience):
        found = list(_documents(io.BytesIO(data)))
    assert found[-3:] == good


# --- the round trip of generated lines --------------------------------------------------------


@given(lines=st.lists(audit_lines(), max_size=30), compressed=st.booleans())
def test_generated_lines_come_back_with_their_numbers(lines: list[str], compressed: bool) -> None:
    # Query text never holds a raw newline (the server escapes it) and the strategies
    # put none in names, so each generated line is one physical line.
    raw = [line.encode("utf-8", "surrogateescape") for line in lines]
    assert not any(b"\n" in line for line in raw)
    data = b"".join(line + b"\n" for line in raw)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / ("server_audit.log.1.gz" if compressed else "server_audit.log")
        path.write_bytes(gzip.compress(data) if compressed else data)
        with path.open("rb") as file:
            items = list(read_inputs(open_input(file), str(path)))
    assert lines_of(items) == [(line, number) for number, line in enumerate(raw, 1)]
    assert {item.origin.path for item in items if item.origin} <= {str(path)}


# --- iter_paths -----------------------------------------------------------------------------


def test_iter_paths_walks_directories_in_a_stable_order(tmp_path: Path) -> None:
    for name in ("b/2.log", "a/z.log.1.gz", "a/deep/er/x", "top.log"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = [path.relative_to(tmp_path).as_posix() for path in iter_paths([str(tmp_path)])]
    assert found == ["a/deep/er/x", "a/z.log.1.gz", "b/2.log", "top.log"]
    single = tmp_path / "top.log"
    assert list(iter_paths([str(single), str(tmp_path / "b")])) == [single, tmp_path / "b/2.log"]


def test_long_records_leave_in_blocks_of_block_bytes_not_a_thousand_at_a_time() -> None:
    """Records of 64 KiB: fewer than a thousand fill BLOCK_BYTES, and each block goes on
    once they do, before the file ends, however they arrived (chunks of 1 MiB)."""
    from auditsync._pipeline import BLOCK_BYTES, Lines

    line = b"20240131 14:02:07,db,u,h,1,2,QUERY,d,'" + b"x" * (64 << 10) + b"',0\n"
    count = 3 * BLOCK_BYTES // len(line)
    reader = io.BufferedReader(io.BytesIO(line * count))  # type: ignore[arg-type]
    blocks = [item for item in sources_module._log_lines(reader, "big.log", export=False)]
    assert all(isinstance(block, Lines) for block in blocks)
    sizes = [sum(map(len, block.texts)) for block in blocks]  # type: ignore[union-attr]
    assert sum(len(block.texts) for block in blocks) == count  # type: ignore[union-attr]
    assert len(blocks) >= 3
    assert all(size <= BLOCK_BYTES + (1 << 20) for size in sizes)
