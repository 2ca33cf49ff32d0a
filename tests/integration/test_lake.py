"""The Parquet data lake, end to end: the command line writes it, DuckDB reads it.

The bundled example data (lines a real MariaDB server wrote, raw and as a Lambda Kinesis
event), the same lines moved across an hour and a day boundary, and the golden corpus in
a run of its own: decoded into one directory by separate runs, the first one twice. DuckDB
must read the whole tree as one table with one schema, every partition present, and no
key twice. The figures go to the test output (see conftest.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow", reason="the parquet extra (pyarrow) is not installed")
duckdb = pytest.importorskip("duckdb", reason="duckdb (a test dependency) is not installed")
pq = pytest.importorskip("pyarrow.parquet")

from auditsync import arrow  # noqa: E402 - after the skip: arrow needs pyarrow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GOLDEN = ROOT / "tests" / "data" / "golden" / "mariadb-10.11"


def decode(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "auditsync", "decode", *args],
        cwd=cwd,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stderr.decode().strip()


def shifted(lines: list[str]) -> list[str]:
    """The example's lines, every third moved to 23:00 and every third to the next day."""
    hours = ["20261127 08:", "20261127 23:", "20261128 00:"]
    return [re.sub(r"^20261127 08:", hours[number % 3], line) for number, line in enumerate(lines)]


def test_separate_runs_make_one_table_in_duckdb(tmp_path: Path) -> None:
    for name in ("server_audit.log", "kinesis-event.json"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    example = (EXAMPLES / "server_audit.log").read_text("utf-8", "surrogateescape")
    (tmp_path / "shifted.log").write_text(
        "".join(shifted(example.splitlines(keepends=True))), "utf-8", "surrogateescape"
    )
    shutil.copy(GOLDEN / "unlimited.log", tmp_path / "unlimited.log")
    day = ("server_audit.log", "kinesis-event.json", "shifted.log")

    first = decode(tmp_path, "--to", "parquet:lake", *day)
    files_after_first = sorted((tmp_path / "lake").rglob("*.parquet"))
    again = decode(tmp_path, "--to", "parquet:lake", *day)
    other = decode(tmp_path, "--to", "parquet:lake", "unlimited.log")
    files = sorted((tmp_path / "lake").rglob("*.parquet"))

    delivered = [int(re.findall(r"(\d+) delivered", run)[0]) for run in (first, again, other)]
    assert delivered[0] == delivered[1]
    # The second run of the same input replaced its files rather than adding any.
    assert len(files) == len(files_after_first) + 1

    # Every file has the one schema, whatever its batch held.
    for path in files:
        assert pq.read_schema(path).remove_metadata() == arrow.schema()

    # As docs/sinks.md reads it: the partition types pinned, not guessed from the values.
    lake = (
        f"read_parquet('{tmp_path / 'lake'}/**/*.parquet',"
        " hive_types = {'dt': DATE, 'hour': INTEGER})"
    )
    total, keys = duckdb.sql(f"SELECT count(*), count(DISTINCT key) FROM {lake}").fetchall()[0]
    assert total == keys == delivered[0] + delivered[2]
    partitions = duckdb.sql(
        f"SELECT dt::VARCHAR, hour, count(*) FROM {lake} GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert {("2026-11-27", 8), ("2026-11-27", 23), ("2026-11-28", 0)} <= {
        (dt, hour) for dt, hour, _ in partitions
    }
    columns = duckdb.sql(f"DESCRIBE SELECT * FROM {lake}").fetchall()
    names = [row[0] for row in columns]
    assert names == [*arrow.schema().names, "dt", "hour"]
    types = {row[0]: row[1] for row in columns}
    assert types["timestamp"] == "TIMESTAMP WITH TIME ZONE"
    assert types["object_bytes"] == "BLOB"
    assert types["raw_fields"] == "MAP(VARCHAR, BLOB)"
    assert (types["dt"], types["hour"]) == ("DATE", "INTEGER")
    exact = duckdb.sql(
        f"SELECT count(*) FROM {lake} WHERE object_bytes IS NOT NULL OR raw_fields IS NOT NULL"
    ).fetchall()[0][0]
    instances = duckdb.sql(
        f"SELECT origin.rds_instance, count(*) FROM {lake} GROUP BY 1 ORDER BY 1 NULLS FIRST"
    ).fetchall()
    assert ("shop", delivered[0] // 3) in instances  # the Kinesis event's log group

    print(f"runs: {first} | again: {again} | other input: {other}")
    print(f"files: {len(files_after_first)} after the first run, {len(files)} after all three")
    print(f"DuckDB: {total} rows, {keys} distinct keys, one schema of {len(names)} columns")
    print(f"partitions (dt, hour, rows): {partitions}")
    print(f"rows with exact bytes kept beside lossy text: {exact}")
    print(f"rows by RDS instance: {instances}")


def test_security_lake_layout_from_the_command_line_reads_back_in_duckdb(tmp_path: Path) -> None:
    """``--to ocsf-parquet:DIR``: one location per OCSF class, in Security Lake's
    partitions, every event once, each class's rows of its own class, a rerun replacing
    its files."""
    for name in ("server_audit.log", "kinesis-event.json"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    lake_options = ["--account-id", "123456789012", "--region", "eu-west-1"]
    args = [
        "--to",
        "ocsf-parquet:security-lake",
        *lake_options,
        "--lake-source",
        "3002=ext/rds-audit-auth/",
        "server_audit.log",
        "kinesis-event.json",
    ]
    first = decode(tmp_path, *args)
    files = sorted((tmp_path / "security-lake").rglob("*.parquet"))
    again = decode(tmp_path, *args)
    assert sorted((tmp_path / "security-lake").rglob("*.parquet")) == files
    delivered = int(re.findall(r"(\d+) delivered", first)[0])
    assert f"0 new, {delivered} already present" in again

    places = {str(path.parent.relative_to(tmp_path / "security-lake")) for path in files}
    assert places == {
        "ext/rds-audit-auth/region=eu-west-1/accountId=123456789012/eventDay=20261127",
        "ext/auditsync-datastore-activity/region=eu-west-1/accountId=123456789012/eventDay=20261127",
    }
    rows = duckdb.sql(
        "SELECT split_part(filename, '/', -5) AS source, class_uid, region, accountId,"
        " eventDay, count(*), count(DISTINCT metadata.uid)"
        f" FROM read_parquet('{tmp_path}/security-lake/ext/*/*/*/*/*.parquet',"
        " hive_partitioning = true, filename = true, union_by_name = true)"
        " GROUP BY ALL ORDER BY class_uid"
    ).fetchall()
    assert [row[:5] for row in rows] == [
        ("rds-audit-auth", 3002, "eu-west-1", 123456789012, 20261127),
        ("auditsync-datastore-activity", 6005, "eu-west-1", 123456789012, 20261127),
    ]
    assert sum(row[5] for row in rows) == sum(row[6] for row in rows) == delivered
    print(f"Security Lake layout: {first} | again: {again} | DuckDB: {rows}")
