"""The Arrow form of events and the Parquet sink: one schema always, exact bytes, retries
that overwrite, and S3 through a real S3 API on loopback (moto's standalone server)."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditsync import AuditEvent, AuditSyncError, Origin, parse_line
from auditsync._rds import RdsResource, rds_resource
from auditsync.sinks import Refused, Stored
from auditsync.testing import audit_events

pa = pytest.importorskip("pyarrow", reason="the parquet extra (pyarrow) is not installed")
pq = pytest.importorskip("pyarrow.parquet")

from auditsync import arrow  # noqa: E402 - after the skip: arrow needs pyarrow
from auditsync.sinks import ParquetSink  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs"

_text = st.text(st.characters(codec="utf-8") | st.sampled_from(["\udcff", "\udc80"]), max_size=8)
origins = st.none() | st.builds(
    Origin,
    log_group=st.none()
    | st.sampled_from(["/aws/rds/instance/shop/audit", "/aws/rds/cluster/prod/audit"])
    | _text,
    log_stream=st.none() | _text,
    event_id=st.none() | st.from_regex(r"[0-9]{1,56}", fullmatch=True),
    shard_id=st.none() | _text,
    sequence_number=st.none() | st.from_regex(r"[0-9]{1,40}", fullmatch=True),
    path=st.none() | _text,
    line_number=st.none() | st.integers(0, 2**63 - 1),
)


def at(number: int, line: str | bytes, log_group: str | None = None) -> AuditEvent:
    return parse_line(
        line, origin=Origin(path="server_audit.log", line_number=number, log_group=log_group)
    )


LATIN1 = at(1, b"20240131 14:02:08,db1,r\xf6ot,localhost,5,13,QUERY,shop,'select \\'Jos\xe9\\'',0")
WRITE = at(2, "20240131 14:02:08,db1,root,localhost,5,13,WRITE,shop,t,")
NEXT_DAY = at(
    3, "20240201 00:00:01,db1,root,10.0.0.7,6,0,CONNECT,,,0", "/aws/rds/cluster/prod/audit"
)


def test_the_schema_names_every_field_of_the_event_and_the_origin() -> None:
    assert set(arrow.EVENT_FIELDS) == {field.name for field in attrs.fields(AuditEvent)}
    origin_fields = {field.name for field in attrs.fields(Origin)}
    assert origin_fields < set(arrow.ORIGIN_FIELDS)
    assert set(arrow.ORIGIN_FIELDS) - origin_fields == {"rds_instance", "rds_cluster"}
    assert list(arrow.COLUMNS) == arrow.schema().names


def test_an_empty_batch_has_the_same_schema_as_a_full_one() -> None:
    assert arrow.to_table([]).schema == arrow.to_table([LATIN1, WRITE, NEXT_DAY]).schema
    assert arrow.to_table([WRITE]).schema == arrow.schema()


@given(st.lists(st.tuples(audit_events(), origins), max_size=5))
def test_events_come_back_from_a_table_exactly(
    pairs: list[tuple[AuditEvent, Origin | None]],
) -> None:
    events = [attrs.evolve(event, origin=origin) for event, origin in pairs]
    table = arrow.to_table(events)
    assert arrow.to_events(table) == events
    assert table.column("key").to_pylist() == [event.key for event in events]


def test_text_that_is_not_utf8_keeps_its_bytes_beside_readable_text() -> None:
    row = arrow.to_table([LATIN1]).to_pylist()[0]
    assert row["object"] == "select 'Jos\ufffd'"
    assert row["object_bytes"] == b"select 'Jos\xe9'"
    assert row["username"] == "r\ufffdot"
    assert row["raw_fields"] == [("username", b"r\xf6ot")]
    assert arrow.to_table([WRITE]).to_pylist()[0]["object_bytes"] is None


def test_the_rds_instance_or_cluster_is_named_from_the_log_group() -> None:
    assert rds_resource("/aws/rds/instance/shop/audit") == RdsResource("instance", "shop")
    assert rds_resource("/aws/rds/cluster/prod-1/audit") == RdsResource("cluster", "prod-1")
    assert rds_resource("/aws/lambda/x") is None
    assert rds_resource(None) is None
    origin = arrow.to_table([NEXT_DAY]).to_pylist()[0]["origin"]
    assert (origin["rds_cluster"], origin["rds_instance"]) == ("prod", None)


def test_ids_beyond_64_bits_are_an_error_naming_them() -> None:
    with pytest.raises(AuditSyncError, match="64-bit"):
        arrow.to_table([attrs.evolve(WRITE, query_id=2**64)])


# --- the sink -------------------------------------------------------------------------------


def files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def test_partitions_by_day_and_hour_and_a_retry_overwrites(tmp_path: Path) -> None:
    with ParquetSink(tmp_path) as sink:
        assert sink.write([LATIN1, WRITE, NEXT_DAY]) == Stored(3, 0)
        first = {name: (tmp_path / name).read_bytes() for name in files(tmp_path)}
        # A retried batch replaces files of the same names: what they held was there.
        assert sink.write([LATIN1, WRITE, NEXT_DAY]) == Stored(0, 3)
    assert [re.sub(r"[0-9a-f]{32}", "*", name) for name in first] == [
        "dt=2024-01-31/hour=14/part-*.parquet",
        "dt=2024-02-01/hour=00/part-*.parquet",
    ]
    assert {name: (tmp_path / name).read_bytes() for name in files(tmp_path)} == first
    assert arrow.read_events(str(tmp_path)) == [LATIN1, WRITE, NEXT_DAY]
    assert arrow.read_events(str(tmp_path / "dt=2024-02-01")) == [NEXT_DAY]


def test_a_batch_redelivered_with_more_events_is_read_once(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path)
    sink.write([LATIN1])
    sink.write([LATIN1, WRITE])  # Kinesis retries from a failed record on, with more
    assert len(files(tmp_path)) == 2
    assert arrow.read_events(str(tmp_path)) == [LATIN1, WRITE]


def test_files_roll_by_row_count_and_size(tmp_path: Path) -> None:
    start = datetime(2024, 1, 31, 14, tzinfo=UTC)
    events = [
        attrs.evolve(WRITE, timestamp=start + timedelta(seconds=n), query_id=n) for n in range(7)
    ]
    ParquetSink(tmp_path / "rows", max_rows=3).write(events)
    assert sorted(
        pq.read_metadata(tmp_path / "rows" / f).num_rows for f in files(tmp_path / "rows")
    ) == [1, 3, 3]
    ParquetSink(tmp_path / "bytes", max_bytes=500).write(events)
    assert len(files(tmp_path / "bytes")) == 4
    assert arrow.read_events(str(tmp_path / "bytes")) == events


def test_ids_beyond_64_bits_are_refused_after_the_rest_is_written(tmp_path: Path) -> None:
    huge = attrs.evolve(WRITE, connection_id=2**64)
    with pytest.raises(Refused) as refused:
        ParquetSink(tmp_path).write([LATIN1, huge])
    assert refused.value.events == (huge,)
    assert arrow.read_events(str(tmp_path)) == [LATIN1]


def test_no_temporary_file_is_left_when_a_write_fails(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path)
    sink.writer.compression = "no-such-codec"
    with pytest.raises((ValueError, OSError, pa.ArrowException)):
        sink.write([WRITE])
    assert files(tmp_path) == []


def test_without_pyarrow_the_error_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def without_pyarrow(name: str, *args: Any) -> Any:
        if name.split(".")[0] == "pyarrow":
            raise ImportError(f"No module named {name!r}")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_pyarrow)
    with pytest.raises(ImportError, match=r"pip install 'auditsync\[parquet\]'"):
        ParquetSink("anywhere")


# --- the Athena table in the docs --------------------------------------------------------------


def hive_type(kind: Any) -> str:
    """The Athena (Hive DDL) type that reads an Arrow type from Parquet."""
    if pa.types.is_struct(kind):
        return "struct<" + ",".join(f"{f.name}:{hive_type(f.type)}" for f in kind) + ">"
    if pa.types.is_map(kind):
        return f"map<{hive_type(kind.key_type)},{hive_type(kind.item_type)}>"
    names = {
        pa.string(): "string",
        pa.int64(): "bigint",
        pa.bool_(): "boolean",
        pa.binary(): "binary",
        pa.timestamp("us", tz="UTC"): "timestamp",
    }
    return names[kind]


def test_the_athena_table_in_the_docs_names_exactly_the_columns_written() -> None:
    page = (DOCS / "sinks.md").read_text()
    ddl = re.search(r"CREATE EXTERNAL TABLE audit_events \((.*?)\n\)", page, re.DOTALL)
    assert ddl is not None, "docs/sinks.md has no CREATE EXTERNAL TABLE audit_events"
    documented = [
        (name, "".join(kind.split()).lower())
        for name, kind in re.findall(r"^\s*`(\w+)`\s+(.+?),?$", ddl.group(1), re.MULTILINE)
    ]
    written = [(field.name, hive_type(field.type)) for field in arrow.schema()]
    assert documented == written


# --- S3: moto's standalone server on loopback ---------------------------------------------------


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    """A real S3 API on 127.0.0.1, started and stopped by the test."""
    moto_server = pytest.importorskip(
        "moto.server", reason="moto[server] is not installed (a test dependency)"
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


def test_parquet_on_s3_through_pyarrow_fs(s3_endpoint: str) -> None:
    from pyarrow import fs

    s3 = fs.S3FileSystem(
        endpoint_override=s3_endpoint,
        scheme="http",
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
        allow_bucket_creation=True,
    )
    s3.create_dir("audit-lake")  # the bucket
    with ParquetSink("audit-lake/events", filesystem=s3) as sink:
        sink.write([LATIN1, WRITE, NEXT_DAY])
        sink.write([LATIN1, WRITE, NEXT_DAY])
    listed = s3.get_file_info(fs.FileSelector("audit-lake/events", recursive=True))
    objects = sorted(info.path for info in listed if info.type == fs.FileType.File)
    assert len(objects) == 2
    assert objects[0].startswith("audit-lake/events/dt=2024-01-31/hour=14/part-")
    assert arrow.read_events("audit-lake/events", filesystem=s3) == [LATIN1, WRITE, NEXT_DAY]
    print(f"S3 (moto on {s3_endpoint}): {len(objects)} objects, {objects}")


def test_parquet_written_before_the_eleventh_field_reads_back(tmp_path: Path) -> None:
    """Files an older auditsync wrote have no ``tls_version`` column: it reads as null,
    beside newer files that hold MariaDB Enterprise 12.3's TLS version."""
    old = [at(1, "20240131 14:02:07,db1,app,10.0.0.7,42,0,CONNECT,shop,,0")]
    new = [at(2, "20260731 09:14:22,mdbe123,root,10.0.0.8:54312,7,0,CONNECT,mysql,,0,TLSv1.3")]
    table = arrow.to_table(old)
    pq.write_table(table.drop_columns(["tls_version"]), tmp_path / "old.parquet")
    pq.write_table(arrow.to_table(new), tmp_path / "new.parquet")
    assert arrow.read_events(tmp_path) == old + new
