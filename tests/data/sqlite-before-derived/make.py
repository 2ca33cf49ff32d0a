"""Makes audit.db as auditsync wrote it before the origin's derived members (main at
76ec3aa): its SQLite tables without origin_rds_instance and origin_rds_cluster, for
tests/test_sinks.py's migration tests. Run here, with that version first on the path:

    git archive 76ec3aa | tar -x -C /tmp/old
    AUDITSYNC_PURE_PYTHON=1 PYTHONPATH=/tmp/old python make.py
"""

import json
import subprocess
import sys
from pathlib import Path

import auditsync._events
from auditsync import Origin
from auditsync._events import DeadLetter
from auditsync.sinks import SQLiteSink
from auditsync.testing import data_message, kinesis_event, to_payload

assert not hasattr(auditsync._events, "ORIGIN_DERIVED"), "run with the old version"

here = Path(__file__).parent
lines = [
    "20261127 08:09:53,vm,root,localhost,429,0,CONNECT,,,0",
    "20261127 08:09:53,vm,root,localhost,429,6236,QUERY,,'SET NAMES utf8mb4',0",
    "20261127 08:09:54,vm,app,10.0.0.7,430,6240,QUERY,shop,'select \\'caf\\xe9\\'',0",
    "20261127 08:09:55,vm,app,10.0.0.7,430,0,DISCONNECT,shop,,0",
]
(here / "input.log").write_bytes(
    "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape").replace(
        b"\\xe9", b"\xe9"
    )
)
payloads = [
    to_payload(data_message(lines[:2], log_group="/aws/rds/instance/shop/audit", first_id=100)),
    to_payload(data_message(lines[3:], log_group="/aws/rds/cluster/prod/audit", first_id=200)),
    to_payload(data_message(lines[1:2], log_group="/custom/audit", first_id=300)),
]
(here / "kinesis-event.json").write_text(json.dumps(kinesis_event(payloads), indent=1) + "\n")
(here / "audit.db").unlink(missing_ok=True)
subprocess.run(
    [sys.executable, "-m", "auditsync", "decode", "--to", "sqlite:audit.db", "input.log",
     "kinesis-event.json"],
    cwd=here,
    check=True,
)
with SQLiteSink(here / "audit.db") as sink:
    where = Origin("/aws/rds/instance/shop/audit", "s", "400")
    sink.write([DeadLetter("line", "not an audit line", b"junk", where)])
    sink.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
