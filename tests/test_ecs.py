"""The ECS mapping: ECS's own vocabulary where it has one, ``auditsync.*`` where it has none,
and ``--to ecs`` writing it as JSON Lines ready for a bulk load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import attrs
from hypothesis import given
from hypothesis import strategies as st

from auditsync import AuditEvent, Origin, parse_line
from auditsync.ecs import ECS_VERSION, to_ecs
from auditsync.testing import audit_events

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: ECS 8.11's allowed values: event.type by event.category, and event.outcome.
ALLOWED_TYPES = {
    "authentication": {"start", "end", "info"},
    "database": {"access", "change", "info", "error"},
}
OUTCOMES = {"success", "failure", "unknown"}
#: The ECS field sets used; anything else must be under the custom namespace.
ECS_TOP_LEVEL = {"@timestamp", "ecs", "event", "user", "source", "host", "related", "error"}
ECS_TOP_LEVEL |= {"cloud", "auditsync", "tls"}


@given(audit_events(), st.sampled_from([None, "/aws/rds/instance/a/audit", "/aws/rds/cluster/b/x"]))
def test_every_event_uses_ecs_values(event: AuditEvent, log_group: str | None) -> None:
    event = attrs.evolve(event, origin=Origin(log_group=log_group) if log_group else None)
    document = to_ecs(event)
    assert set(document) <= ECS_TOP_LEVEL
    assert document["ecs"] == {"version": ECS_VERSION}
    [category] = document["event"]["category"]
    assert set(document["event"]["type"]) <= ALLOWED_TYPES[category]
    assert document["event"]["outcome"] in OUTCOMES
    assert document["event"]["id"] == event.key
    assert document["@timestamp"].endswith("Z")
    assert document["user"]["name"] == event.username.encode("utf-8", "surrogateescape").decode(
        "utf-8", "replace"
    )
    json.dumps(document, allow_nan=False)


def test_the_client_port_and_the_tls_version_of_mariadb_enterprise() -> None:
    head = "20260731 09:14:22,mdbe123,root"
    encrypted = to_ecs(parse_line(f"{head},192.168.1.24:54312,7,0,CONNECT,mysql,,0,TLSv1.3"))
    assert encrypted["source"] == {"address": "192.168.1.24", "ip": "192.168.1.24", "port": 54312}
    assert encrypted["tls"] == {"version_protocol": "tls", "version": "1.3"}
    assert encrypted["auditsync"]["tls_version"] == "TLSv1.3"
    socket = to_ecs(parse_line(f"{head},localhost:unavailable,8,0,CONNECT,,,0,"))
    assert socket["source"] == {"address": "localhost", "domain": "localhost"}
    assert "tls" not in socket
    assert socket["auditsync"]["tls_version"] == ""
    old = to_ecs(parse_line(f"{head},localhost:unavailable,8,0,CONNECT,,,0,TLSv1"))
    assert old["tls"] == {"version_protocol": "tls", "version": "1.0"}
    plain = to_ecs(parse_line("20240131 14:02:07,db1,app,10.0.0.7,43,0,CONNECT,,,0"))
    assert "tls" not in plain
    assert plain["auditsync"]["tls_version"] is None


def test_connections_are_authentication_with_an_outcome() -> None:
    failed = to_ecs(parse_line("20240131 14:02:07,db1,app,10.0.0.7,43,0,FAILED_CONNECT,,,1045"))
    assert failed["event"]["category"] == ["authentication"]
    assert (failed["event"]["type"], failed["event"]["outcome"]) == (["start"], "failure")
    assert failed["event"]["action"] == "failed_connect"
    assert failed["error"] == {"code": "1045"}
    assert failed["source"] == {"address": "10.0.0.7", "ip": "10.0.0.7"}
    assert failed["related"] == {"user": ["app"], "ip": ["10.0.0.7"]}
    logoff = to_ecs(parse_line("20240131 14:02:09,db1,app,localhost,42,0,DISCONNECT,shop,,0"))
    assert (logoff["event"]["type"], logoff["event"]["outcome"]) == (["end"], "success")
    assert logoff["source"] == {"address": "localhost", "domain": "localhost"}


def test_database_fields_go_under_the_custom_namespace() -> None:
    update = parse_line(
        r"20240131 14:02:07,db1,app,10.0.0.7,42,7,QUERY,shop,'update t set a = 1',0",
        origin=Origin(log_group="/aws/rds/cluster/prod/audit", event_id="9"),
    )
    document = to_ecs(update)
    assert document["event"]["type"] == ["change"]
    assert document["auditsync"]["database"] == {"name": "shop", "statement": "update t set a = 1"}
    assert document["auditsync"]["rds"] == {"cluster": "prod"}
    assert document["cloud"] == {"provider": "aws", "service": {"name": "rds"}}
    read = to_ecs(parse_line("20240131 14:02:07,db1,app,10.0.0.7,42,7,READ,shop,t,"))
    assert (read["event"]["type"], read["event"]["outcome"]) == (["access"], "unknown")
    assert read["auditsync"]["database"] == {"name": "shop", "table": "t"}


def test_text_that_is_not_utf8_keeps_its_bytes() -> None:
    event = parse_line(b"20240131 14:02:07,db1,app,h,42,7,QUERY,shop,'select \\'Jos\xe9\\'',0")
    document = to_ecs(event)
    assert document["auditsync"]["database"]["statement"] == "select 'Jos\ufffd'"
    assert document["auditsync"]["object_base64"] == "c2VsZWN0ICdKb3PpJw=="


def test_the_command_writes_ecs_json_lines(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "auditsync", "decode", "--to", "ecs", "kinesis-event.json"],
        cwd=EXAMPLES,
        capture_output=True,
        check=True,
        timeout=120,
    )
    documents = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(documents) == 346
    assert {d["cloud"]["instance"]["name"] for d in documents} == {"shop"}
    assert len({d["event"]["id"] for d in documents}) == 346
