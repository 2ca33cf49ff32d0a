"""The OCSF mapping, validated by pydantic-ocsf: Pydantic models generated from the official
OCSF schema of each version (1.0.0 to 1.7.0), used by the tests only.

Two gaps of its models are closed here. They accept members the schema does not know
(``extra="allow"``), so :func:`unknown_members` looks for them. And its 1.1.0 models
leave out the attributes the base event takes from the schema's includes (``time``, the
class and type uids and names): those are checked by the 1.5.0 models, which have them;
OCSF minor versions only add, so an event valid in 1.1.0 is valid in 1.5.0.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditsync import AuditEvent, Origin, Pipeline, parse_line, read_file
from auditsync import ocsf as mapping
from auditsync.sinks import MemorySink
from auditsync.testing import audit_events

v1_1 = pytest.importorskip(
    "ocsf.v1_1_0.events", reason="pydantic-ocsf (a test dependency) is not installed"
)
v1_5 = pytest.importorskip("ocsf.v1_5_0.events")
from pydantic import BaseModel  # noqa: E402 - pydantic comes with pydantic-ocsf

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
CLASSES = {
    mapping.AUTHENTICATION: "Authentication",
    mapping.DATASTORE_ACTIVITY: "DatastoreActivity",
}
#: What the base event includes (classification, occurrence) and the 1.1.0 models miss.
INCLUDED = {
    "activity_name", "category_name", "category_uid", "class_name", "class_uid", "count",
    "duration", "end_time", "start_time", "time", "timezone_offset", "type_name", "type_uid",
}  # fmt: skip


def unknown_members(model: BaseModel, where: str = "") -> list[str]:
    """Members the schema has no attribute for, anywhere but under ``unmapped``."""
    found = [f"{where}{name}" for name in model.model_extra or {}]
    for name in type(model).model_fields:
        if name == "unmapped":
            continue
        value = getattr(model, name)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, BaseModel):
                found += unknown_members(item, f"{where}{name}.")
    return found


def validate(document: dict[str, Any]) -> None:
    assert document["metadata"]["version"] == mapping.OCSF_VERSION == "1.1.0"
    name = CLASSES[document["class_uid"]]
    model = getattr(v1_1, name).model_validate(document)
    assert set(unknown_members(model)) <= INCLUDED
    resolved = getattr(v1_5, name).model_validate(document)
    assert unknown_members(resolved) == []
    assert document["type_uid"] == document["class_uid"] * 100 + document["activity_id"]


def golden_events() -> list[AuditEvent]:
    sink = MemorySink()
    pipeline = Pipeline(sink)
    for path in sorted(GOLDEN.glob("*/*.log")):
        with path.open("rb") as raw:
            pipeline.process(read_file(raw, str(path)))
    return sink.events


def test_every_event_of_the_golden_corpus_maps_to_valid_ocsf() -> None:
    events = golden_events()
    assert len(events) > 400
    classes: Counter[tuple[int, str]] = Counter()
    for event in events:
        document = mapping.to_ocsf(event)
        validate(document)
        classes[document["class_uid"], document["activity_name"]] += 1
    assert classes[mapping.AUTHENTICATION, "Logon"] > 0
    assert classes[mapping.AUTHENTICATION, "Logoff"] > 0
    assert classes[mapping.DATASTORE_ACTIVITY, "Query"] > 0
    print(f"OCSF {mapping.OCSF_VERSION}: {len(events)} golden events valid: {dict(classes)}")


origins = st.none() | st.builds(
    Origin,
    log_group=st.sampled_from([None, "/aws/rds/instance/shop/audit", "/aws/rds/cluster/p/audit"]),
    event_id=st.none() | st.just("37000000000000000000000000000000000000000000000000000000"),
    path=st.none() | st.just("server_audit.log"),
    line_number=st.none() | st.integers(1, 10**6),
)


@given(audit_events(), origins)
def test_any_event_maps_to_valid_ocsf(event: AuditEvent, origin: Origin | None) -> None:
    validate(mapping.to_ocsf(attrs.evolve(event, origin=origin)))


def test_connections_are_authentication() -> None:
    connect = parse_line("20240131 14:02:07,db1,app,10.0.0.7,42,0,CONNECT,shop,,0")
    failed = parse_line("20240131 14:02:07,db1,app,10.0.0.7,43,0,FAILED_CONNECT,,,1045")
    logoff = parse_line("20240131 14:02:09,db1,app,localhost,42,0,DISCONNECT,shop,,0")
    documents = [mapping.to_ocsf(event) for event in (connect, failed, logoff)]
    assert [(d["class_uid"], d["activity_name"], d["status"]) for d in documents] == [
        (3002, "Logon", "Success"),
        (3002, "Logon", "Failure"),
        (3002, "Logoff", "Success"),
    ]
    assert documents[1]["status_code"] == "1045"
    assert documents[0]["user"] == {"name": "app"}
    assert documents[0]["src_endpoint"] == {"ip": "10.0.0.7"}
    assert documents[2]["src_endpoint"] == {"hostname": "localhost"}
    assert documents[0]["type_uid"] == 300201


def test_the_client_port_and_the_tls_version_of_mariadb_enterprise() -> None:
    head = "20260731 09:14:22,mdbe123,root"
    encrypted = parse_line(f"{head},192.168.1.24:54312,7,0,CONNECT,mysql,,0,TLSv1.3")
    socket = parse_line(f"{head},localhost:unavailable,8,0,CONNECT,,,0,")
    ipv6 = parse_line(f"{head},[2001:db8::7]:40112,9,3,QUERY,shop,'select 1',0")
    documents = [mapping.to_ocsf(event) for event in (encrypted, socket, ipv6)]
    for document in documents:
        validate(document)
    assert documents[0]["src_endpoint"] == {"ip": "192.168.1.24", "port": 54312}
    assert documents[1]["src_endpoint"] == {"hostname": "localhost"}
    assert documents[2]["src_endpoint"] == {"ip": "2001:db8::7", "port": 40112}
    assert (documents[0]["is_remote"], documents[1]["is_remote"]) == (True, False)
    assert documents[0]["unmapped"]["tls_version"] == "TLSv1.3"
    assert documents[1]["unmapped"]["tls_version"] == ""
    assert documents[0]["metadata"]["product"]["name"] == "MariaDB Enterprise Audit"
    table = mapping.to_table([encrypted, socket], mapping.AUTHENTICATION)
    assert table.column("src_endpoint").to_pylist()[0]["port"] == 54312


def test_queries_and_table_records_are_datastore_activity() -> None:
    query = parse_line(r"20240131 14:02:07,db1,app,10.0.0.7,42,7,QUERY,shop,'delete from t',1146")
    write = parse_line("20240131 14:02:07,db1,app,10.0.0.7,42,7,WRITE,shop,t,")
    drop = parse_line("20240131 14:02:07,db1,app,10.0.0.7,42,8,DROP,shop,t,")
    q, w, d = (mapping.to_ocsf(event) for event in (query, write, drop))
    assert (q["class_uid"], q["activity_name"], q["query_info"]) == (
        6005,
        "Query",
        {"query_string": "delete from t"},
    )
    assert (q["status"], q["status_code"]) == ("Failure", "1146")
    assert (w["activity_name"], w["table"], w["database"]["name"]) == (
        "Write",
        {"name": "t"},
        "shop",
    )
    assert (w["status_id"], "status_code" in w) == (0, False)  # table records carry no code
    assert d["activity_name"] == "Delete"


def test_the_rds_instance_and_the_exact_bytes_are_kept() -> None:
    event = parse_line(
        b"20240131 14:02:07,db1,app,10.0.0.7,42,7,QUERY,shop,'select \\'Jos\xe9\\'',0",
        origin=Origin(log_group="/aws/rds/instance/shop/audit", event_id="1"),
    )
    document = mapping.to_ocsf(event)
    assert document["dst_endpoint"] == {"hostname": "db1", "name": "shop"}
    assert document["unmapped"]["rds_instance"] == "shop"
    assert document["query_info"]["query_string"] == "select 'Jos\ufffd'"
    assert document["unmapped"]["object_base64"] == "c2VsZWN0ICdKb3PpJw=="
    assert document["metadata"]["uid"] == "1"
    validate(document)


@pytest.mark.parametrize(
    "spoil",
    [
        lambda d: d.pop("actor"),  # required in 6005
        lambda d: d.update(activity_id=42),  # not one of the class's activities
        lambda d: d.update(time="yesterday"),
        lambda d: d["actor"]["user"].update(nickname="x"),  # no such attribute
        lambda d: d.update(type_uid=600599),
    ],
)
def test_the_validation_catches_mistakes(spoil: Any) -> None:
    document = mapping.to_ocsf(parse_line("20240131 14:02:07,db1,app,h,42,7,WRITE,shop,t,"))
    validate(document)
    spoil(document)
    with pytest.raises((AssertionError, ValueError)):
        validate(document)


# --- OCSF in Parquet, and on the command line ---------------------------------------------------


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return value


def test_the_parquet_schema_holds_every_member_the_mapping_writes() -> None:
    pa = pytest.importorskip("pyarrow", reason="the parquet extra (pyarrow) is not installed")
    events = golden_events()
    for class_uid in CLASSES:
        chosen = [event for event in events if mapping.ocsf_class(event) == class_uid]
        table = mapping.to_table(chosen, class_uid)
        assert table.schema == pa.schema(mapping.arrow_schema(class_uid))
        assert mapping.to_table([], class_uid).schema == table.schema
        for event, row in zip(chosen, table.to_pylist(), strict=True):
            document = mapping.to_ocsf(event)
            unmapped = dict(row.pop("unmapped"))
            assert without_nulls(row) == {k: v for k, v in document.items() if k != "unmapped"}
            assert unmapped.keys() == document["unmapped"].keys()
    with pytest.raises(ValueError, match="class 3002, not 6005"):
        mapping.to_table([parse_line("20240131 14:02:07,db1,a,h,4,0,CONNECT,,,0")], 6005)


def test_security_lake_layout_one_source_per_class(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="the parquet extra is not installed")
    from auditsync.sinks import OcsfParquetSink

    events = golden_events()
    with OcsfParquetSink(tmp_path, account_id="123456789012", region="eu-west-1") as sink:
        sink.write(events)
        sink.write(events)  # a retry overwrites
    files = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*.parquet"))
    prefixes = {name.rsplit("/", 1)[0] for name in files}
    assert prefixes == {
        "ext/auditsync-authentication/region=eu-west-1/accountId=123456789012/eventDay=20261127",
        "ext/auditsync-datastore-activity/region=eu-west-1/accountId=123456789012/eventDay=20261127",
    }
    assert len(files) == 2
    for name in files:
        table = pq.read_table(tmp_path / name)
        assert set(table.column("class_uid").to_pylist()) == {
            3002 if "authentication" in name else 6005
        }
        times = table.column("time").to_pylist()
        assert times == sorted(times)
        for row in table.to_pylist()[:50]:
            row["unmapped"] = dict(row["unmapped"])
            validate(without_nulls(row))
    print(f"Security Lake layout: {files}")


def test_the_command_writes_ocsf_json_lines(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    examples = Path(__file__).resolve().parent.parent / "examples"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "auditsync",
            "decode",
            "--to",
            "ocsf:out.jsonl",
            str(examples / "server_audit.log"),
        ],
        cwd=tmp_path,
        capture_output=True,
        check=True,
        timeout=120,
    )
    documents = [json.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert len(documents) == 346
    assert result.stdout == b""
    for document in documents:
        validate(document)
