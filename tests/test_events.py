"""The event's field table, and the key as a stored format (docs/keys.md).

Keys are stored in users' databases: the values below were computed by the code as it
was before the table existed (commit 581409b) and must never change. Each is checked
through the Python key and, where the C writer is built, through the JSON it writes.
"""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
import orjson
import pytest

from auditsync import AuditEvent, DeadLetter, Dialect, Origin, parse_line
from auditsync._events import (
    EVENT_FIELDS,
    FORMS,
    KEY_RECORD,
    KEY_VERSION,
    ORIGIN_FIELDS,
    TABLE_OPERATIONS,
    Form,
    values_of,
)
from auditsync._json import event_from_dict, event_to_dict, to_json
from auditsync.sinks._sqlite import EVENT_COLUMNS

QUERY = "20240131 14:02:07,db-1,app,10.0.0.1,42,1001,QUERY,shop,'SELECT 1',0"
AURORA = "1706709727123456,aurora-1,rdsadmin,localhost,7,0,CONNECT,,,0"
READ = "20240131 14:02:07,db-1,app,10.0.0.1,42,1001,READ,shop,orders,"
RDS = "20240131 14:02:07,db-1,app,10.0.0.1,42,1001,QUERY,shop,'select \\'café\\'',1146,,"
CUT = "20240131 14:02:07,db-1,app,10.0.0.1,42,1001,QUERY,shop,'SELECT * FROM t WHERE"
RDS_CONNECT = "20240131 14:02:07,db-1,app,10.0.0.1,9,0,CONNECT,shop,,0,SSL"

NOWHERE = Origin()
FILE = Origin(path="server_audit.log", line_number=7)
KINESIS = Origin(
    "/aws/rds/cluster/c/audit",
    "c-1.audit.log.0",
    None,
    "shardId-000000000000",
    "49590338271490256608559692538361571095921575989136588898",
)
CLOUDWATCH = Origin("/aws/rds/cluster/c/audit", "c-1.audit.log.0", "3" * 56, "shardId-0", "1")

PINNED = [
    (QUERY, None, "81b9662fe0719dc1e373e6087f46bb97"),
    (QUERY, NOWHERE, "81b9662fe0719dc1e373e6087f46bb97"),
    (QUERY, FILE, "50b918de1dca4bde5aa6c4ddbae5300f"),
    (QUERY, KINESIS, "2220ea695d91f164a20368fe40fe6260"),
    (QUERY, CLOUDWATCH, "3" * 56),
    (AURORA, None, "1c802d033aeed4681c7d12a4d6b5ce5f"),
    (AURORA, FILE, "76d19e0d92a9fbae9d836d8220d0655c"),
    (AURORA, KINESIS, "978fcf700391a0df53de2490d0f6f069"),
    (READ, None, "64f6ff94395da5bfc4066cbf975cbb26"),
    (READ, FILE, "c47f2ae8c362ca789270d8854a933f46"),
    (READ, KINESIS, "08a3a35f7b17ee946e688f0bd0ccda23"),
    (RDS, None, "4ffe44eb1ad208fd6e7a6cfb437b51d9"),
    (RDS, FILE, "1264d5d7cb7c92a9cd90721527555a70"),
    (RDS, KINESIS, "276b420e3e86109cbe459f560d029684"),
    (CUT, None, "6fce162c80740a1d153a7e01f8de804b"),
    (CUT, FILE, "f6d5e94a6df87e68193ee32edc792ab4"),
    (CUT, KINESIS, "afed7f64fd174e8678c0ff2c45b7e298"),
    (RDS_CONNECT, None, "506dddacc640a5bc3da30a2cea9e81f9"),
    (RDS_CONNECT, FILE, "296c7ed3db5c7228ab1010a497e53dcb"),
    (RDS_CONNECT, KINESIS, "74e145f91ffda9a9b91e4197449fd4cc"),
]


@pytest.mark.parametrize(("line", "origin", "key"), PINNED)
def test_keys_keep_their_values(line: str, origin: Origin | None, key: str) -> None:
    event = attrs.evolve(parse_line(line), origin=origin)
    assert event.key == key
    assert orjson.loads(to_json(event))["key"] == key  # the C writer's, where it is built
    assert event_to_dict(event)["key"] == key


def test_a_key_of_text_that_is_not_utf8_keeps_its_value() -> None:
    raw = b"20240131 14:02:07,db-1,app,10.0.0.1,42,1001,QUERY,shop,'select \\'Jos\xe9\\'',0"
    event = parse_line(raw, origin=Origin(path="server_audit.log", line_number=8))
    assert event.object == "select 'Jos\udce9'"
    assert event.key == "712dc31117986554aafaa08ca305168c"
    assert orjson.loads(to_json(event))["key"] == event.key


def test_the_text_before_the_record_is_no_part_of_the_key() -> None:
    line = "<13>Jan 31 14:02:07 db-1 mysql-server_auditing:  " + QUERY.split(",", 1)[1]
    event = parse_line(line, year=2024)
    assert event.prefix is not None
    assert event.key == "81b9662fe0719dc1e373e6087f46bb97"


@pytest.mark.parametrize(
    ("letter", "key"),
    [
        (
            DeadLetter("line", "x", b"junk", Origin(path="f.log", line_number=3)),
            "758edc13112d8df934b10606f7b18f16",
        ),
        (
            DeadLetter("line", "x", b"junk", Origin(log_group="g", event_id="e1")),
            "bc91a0c5444bc658ad7671c38c47608f",
        ),
        (
            DeadLetter(
                "sink", "x", b"raw", None, parse_line(QUERY, origin=Origin(path="a", line_number=1))
            ),
            "27ab1d7c7a445d3b708359681e3d0611",
        ),
    ],
)
def test_dead_letter_keys_keep_their_values(letter: DeadLetter, key: str) -> None:
    assert letter.key == key


def test_the_key_is_version_1_of_its_record() -> None:
    assert KEY_VERSION == 1
    assert KEY_RECORD == (
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


# --- the table ------------------------------------------------------------------------------


def test_the_table_is_the_event_class() -> None:
    assert tuple(field.name for field in EVENT_FIELDS) == tuple(
        field.name for field in attrs.fields(AuditEvent)
    )
    assert tuple(field.name for field in ORIGIN_FIELDS) == tuple(
        field.name for field in attrs.fields(Origin)
    )
    assert all(
        field.form is FORMS[str(attr.type)]
        for field, attr in zip(EVENT_FIELDS, attrs.fields(AuditEvent), strict=True)
    )


def test_json_members_and_columns_follow_the_table() -> None:
    event = parse_line(QUERY, origin=FILE)
    names = [field.name for field in EVENT_FIELDS if field.form is not Form.ORIGIN]
    assert list(event_to_dict(event)) == ["key", *names, "origin"]
    assert list(orjson.loads(to_json(event))) == ["key", *names, "origin"]
    assert [name for name in EVENT_COLUMNS if name in names] == names


def test_values_of_reads_fields_in_order() -> None:
    origin = Origin("g", "s", "e", "sh", "seq", "p", 3)
    assert values_of(field.name for field in ORIGIN_FIELDS)(origin) == (
        "g",
        "s",
        "e",
        "sh",
        "seq",
        "p",
        3,
    )
    with pytest.raises(ValueError, match="not field names"):
        values_of(["path", "line_number)"])


def test_an_event_reads_back_from_its_json() -> None:
    event = AuditEvent(
        timestamp=datetime(2024, 1, 31, 14, 2, 7, 250, tzinfo=UTC),
        serverhost="db-1",
        username="app",
        host="10.0.0.1",
        connection_id=42,
        query_id=1001,
        operation="QUERY",
        database="shop",
        object="SELECT 1",
        retcode=None,
        connection_type="SSL",
        truncated=True,
        dialect=Dialect.AURORA,
        origin=KINESIS,
        prefix="x,",
        suffix="'",
    )
    assert event_from_dict(orjson.loads(to_json(event))) == event


def test_table_operations_are_the_grammars() -> None:
    assert {"READ", "WRITE", "CREATE", "DROP", "ALTER", "RENAME"} == TABLE_OPERATIONS


@pytest.mark.parametrize(
    ("log_group", "instance", "cluster"),
    [
        ("/aws/rds/instance/db-primary/audit", "db-primary", None),
        ("/aws/rds/cluster/prod/audit", None, "prod"),
        ("/aws/lambda/other", None, None),
        (None, None, None),
    ],
)
def test_the_origin_names_the_rds_database_its_log_group_names(
    log_group: str | None, instance: str | None, cluster: str | None
) -> None:
    rds = Origin(log_group=log_group).rds
    assert (rds.instance if rds else None, rds.cluster if rds else None) == (instance, cluster)
