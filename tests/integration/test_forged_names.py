"""Forged records through names, on a real server: names that hold a raw newline and a
well-formed record, made on a private MariaDB with server_audit, and its real audit file
read by every path — the command line, the CloudWatch and Kinesis Lambda adapters (each
physical line its own log event, a split cut across invocations) and a ReplaySink into a
MariaDB replica. What only a name made must never arrive as a record; the replica's
table must not be truncated (docs/security.md).

The server is private (its own datadir, socket and port, within
``AUDITSYNC_PRIVATE_PORTS`` where that is set), so the names, the users and the failed
logins touch nothing else.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import private_mariadb
import pymysql
import pytest

from auditsync import AuditEvent, Pipeline, parse_line
from auditsync._sources import read_file
from auditsync._splits import reads
from auditsync.aws import handle_kinesis_event, handle_subscription_event
from auditsync.replay import MySQLTarget, ReplaySink
from auditsync.sinks import MemorySink
from auditsync.testing import data_message, kinesis_event, subscription_event, to_payload

pytestmark = pytest.mark.mariadb(private=True)

NL = "\n"
#: The record the names forge: a TRUNCATE of shop.orders that nobody ran.
FORGED = "20240131 14:02:08,d,a,h,9,9,QUERY,shop,'TRUNCATE orders',0"
REPLICA = "forged_replica"
BOOKKEEPING = "forged_bookkeeping"
REPLAYER = "forged_replayer"
PASSWORD = "Forged-pw-1"

#: Table names: the issue's (its last line an RDS-form QUERY record), and a forged middle
#: line, used directly, through a view, a procedure and a prepared statement.
TABLE_LAST = "a," + NL + FORGED + ","
TABLE_MIDDLE = "x" + NL + FORGED + NL + "y"
#: Database names: every QUERY record of a connection using it is forged around its real
#: statement (last line); or the record's first line is forged (first line).
DATABASE_LAST = "x" + NL + FORGED.partition(",'")[0]
DATABASE_FIRST = "shop,'TRUNCATE orders',0" + NL + "z"
#: Both lines well-formed records: a TRUNCATE with the connection's own ids, then one of
#: another server host around the real statement.
DATABASE_BOTH = "shop,'TRUNCATE orders',0" + NL + FORGED.partition(",'")[0]
#: User names: logged in (last line), or only tried with a wrong password (first line):
#: anyone who reaches the port can write that one.
USER_LAST = "u" + NL + "20240131 14:02:08,d,admin"
USER_FIRST = "v,h,1,2,QUERY,shop,'TRUNCATE orders',0" + NL + "w"
#: The forged statement of the failed logins below: with the server's own host and time,
#: it reads like any genuine record, and only the DISCONNECT that repeats it gives it away.
DELETE = "DELETE FROM orders"


def login_names(host: str, now: str, connection: int) -> dict[str, str]:
    """User names that forge a DELETE with the server's own host and the time of the
    attempt: the first line of the record (a failed login, a failed change of user), or
    a line of its own between two parts of the name — after a line that reads as the
    DISCONNECT of the failed login's own connection (``connection``: the server tells
    its id in the greeting), so that such a line comes right after the FAILED_CONNECT."""
    return {
        "forged DISCONNECT": (
            f"u,localhost,{connection},0,DISCONNECT,,,0{NL}"
            f"{now},{host},a,h,1,5,QUERY,shop,'{DELETE}',0{NL}{now},{host},u"
        ),
        "login, first line": f"v,h,1,2,QUERY,shop,'{DELETE}',0{NL}{now},{host},guest",
        "login, middle line": (
            f"x{NL}{now},{host},a,h,1,3,QUERY,shop,'{DELETE}',0{NL}{now},{host},w"
        ),
        "change of user": f"c,h,1,4,QUERY,shop,'{DELETE}',0{NL}{now},{host},guest",
    }


def quoted(name: str) -> str:
    return name.replace("'", "''")


class Forgery:
    """The private server, and the part of its audit log the forging names made."""

    def __init__(self, server: private_mariadb.PrivateMariaDB, log: bytes):
        self.server = server
        self.log = log


@pytest.fixture(scope="module")
def forgery() -> Iterator[Forgery]:
    with private_mariadb.PrivateMariaDB() as server:
        start = server.audit_offset()
        server.execute(
            "CREATE DATABASE shop",
            "CREATE TABLE shop.orders (id INT PRIMARY KEY)",
            "INSERT INTO shop.orders VALUES (1), (2)",
            f"CREATE TABLE shop.`{TABLE_LAST}` (i INT)",
            f"CREATE TABLE shop.`{TABLE_MIDDLE}` (i INT)",
            f"INSERT INTO shop.`{TABLE_LAST}` VALUES (1)",
            f"CREATE VIEW shop.v AS SELECT * FROM shop.`{TABLE_MIDDLE}`",
            "SELECT * FROM shop.v",
            f"CREATE PROCEDURE shop.p() INSERT INTO shop.`{TABLE_MIDDLE}` VALUES (1)",
            "CALL shop.p()",
            f"SET @q = 'INSERT INTO shop.`{quoted(TABLE_MIDDLE)}` VALUES (2)'",
            "PREPARE s FROM @q",
            "EXECUTE s",
            f"CREATE DATABASE `{DATABASE_LAST}`",
            f"CREATE DATABASE `{DATABASE_FIRST}`",
            f"CREATE DATABASE `{DATABASE_BOTH}`",
            f"CREATE USER '{quoted(USER_LAST)}'@'localhost' IDENTIFIED BY '{PASSWORD}'",
            f"GRANT ALL ON `{DATABASE_LAST}`.* TO '{quoted(USER_LAST)}'@'localhost'",
            f"GRANT ALL ON `{DATABASE_FIRST}`.* TO '{quoted(USER_LAST)}'@'localhost'",
            f"GRANT ALL ON `{DATABASE_BOTH}`.* TO '{quoted(USER_LAST)}'@'localhost'",
        )
        # The forger's own session, in its own databases: the log shows a TRUNCATE of
        # shop.orders where the forger truncated a table of its own.
        with server.connect(user=USER_LAST, password=PASSWORD) as own, own.cursor() as cursor:
            for statement in (
                f"USE `{DATABASE_LAST}`",
                "CREATE TABLE orders (i INT)",
                "TRUNCATE orders",
                f"USE `{DATABASE_FIRST}`",
                "SELECT 1",
                f"USE `{DATABASE_BOTH}`",
                "DO 1",
            ):
                cursor.execute(statement)
        with pytest.raises(pymysql.err.OperationalError):
            server.connect(user=USER_FIRST, password="wrong")
        host = socket.gethostname()
        with server.connect() as session, session.cursor() as cursor:
            cursor.execute("SELECT CONNECTION_ID()")
            (last,) = cursor.fetchone()
        # Nothing else connects to the private server: the next connection is last + 1.
        names = login_names(host, time.strftime("%Y%m%d %H:%M:%S"), last + 1)
        if max(map(len, names.values())) > 128:
            pytest.skip(f"the server host {host!r} is too long for a user name to forge it")
        for case in ("forged DISCONNECT", "login, first line", "login, middle line"):
            with pytest.raises(pymysql.err.OperationalError):
                server.connect(user=names[case], password="wrong")
        with server.connect() as session:
            change_user(session, names["change of user"])
        end = server.audit_settled(start)
        yield Forgery(server, server.audit_log(start, end))


def change_user(session: pymysql.connections.Connection[Any], user: str) -> None:
    """COM_CHANGE_USER to ``user``, which fails: the server writes a CHANGEUSER record with
    the name and the error, and the session goes on as before."""
    plugin = b"mysql_native_password\0"
    packet = user.encode() + b"\0" + b"\x14" + b"0" * 20 + b"shop\0" + b"\x21\0" + plugin
    session._execute_command(0x11, packet)  # COM_CHANGE_USER: pymysql offers no call
    with pytest.raises(pymysql.MySQLError):
        session._read_packet()


def forged(events: Sequence[AuditEvent]) -> list[AuditEvent]:
    """The events only a name made: a TRUNCATE or DELETE of orders, a server ``d``, users
    the names claim (``admin``, ``v``, ``a``, ``c``)."""
    return [
        event
        for event in events
        if event.object in ("TRUNCATE orders", DELETE)
        or event.serverhost == "d"
        or event.username in ("admin", "v", "a", "c")
    ]


def physical_lines(log: bytes) -> list[str]:
    return log.decode("utf-8", "surrogateescape").split("\n")[:-1]


# --- what the server writes ----------------------------------------------------------------


def test_the_server_writes_the_forged_records_as_lines_of_their_own(forgery: Forgery) -> None:
    """The facts the defence stands on (docs/security.md): names are written raw, so each
    forging name puts a well-formed line in the log; the statement that names a table
    carries the name escaped; a failed login writes the user name as well."""
    lines = physical_lines(forgery.log)
    assert FORGED + ",," in lines  # the table name: an RDS-form QUERY line
    assert lines.count(FORGED) >= 4  # the middle-line name: CREATE, view, procedure, EXECUTE
    readings = [reads(line) for line in lines if line.startswith("20240131")]
    assert ("d", "TRUNCATE orders") in {(e.serverhost, e.object) for e in readings if e}
    escaped = FORGED.replace("'", "\\'")
    assert any(escaped in line and "CREATE TABLE" in line for line in lines)
    assert f",{USER_FIRST.partition(NL)[0]}" in forgery.log.decode()
    assert any(line.endswith(",FAILED_CONNECT,,,1045") for line in lines)
    # A database name of 63 characters makes a TRUNCATE out of ``DO 1``, ids and all.
    assert any(",QUERY,shop,'TRUNCATE orders',0" in line for line in lines)
    # Failed logins forge a DELETE with the server's own host: each name is written twice,
    # in the FAILED_CONNECT and in the DISCONNECT; a failed change of user, once.
    host = socket.gethostname()
    deletes = [line for line in lines if line.endswith(f",QUERY,shop,'{DELETE}',0")]
    assert [line.split(",")[1] for line in deletes] == [host] * 7
    assert [line.split(",")[2] for line in deletes] == ["a", "a", "v", "v", "a", "a", "c"]
    # The name's DISCONNECT line names the failed login's own connection: three alike.
    closing = [line for line in lines if line.endswith(",0,DISCONNECT,,,0") and ",u,l" in line]
    assert len({line.split(",")[4] for line in closing}) == 1
    assert len(closing) == 3
    assert sum(line.endswith(",CHANGEUSER,,,1047") for line in lines) == 1


def test_the_servers_name_limits_are_the_ones_assumed(forgery: Forgery) -> None:
    """auditsync judges a split by the longest names the server accepts (_splits.py)."""
    server = forgery.server
    server.execute(f"CREATE TABLE shop.`{'t' * 64}` (i INT)", f"CREATE DATABASE `{'d' * 64}`")
    server.execute(f"CREATE USER '{'u' * 128}'@'localhost'", f"DROP USER '{'u' * 128}'@'localhost'")
    for statement in (
        f"CREATE TABLE shop.`{'t' * 65}` (i INT)",
        f"CREATE DATABASE `{'d' * 65}`",
        f"CREATE USER '{'u' * 129}'@'localhost'",
    ):
        with pytest.raises(pymysql.MySQLError):
            server.execute(statement)
    server.execute(f"DROP TABLE shop.`{'t' * 64}`", f"DROP DATABASE `{'d' * 64}`")
    start = server.audit_offset()
    with pytest.raises(pymysql.err.OperationalError):
        server.connect(user="L" * 200, password="wrong")
    logged = server.audit_log(start, server.audit_settled(start))
    assert b"," + b"L" * 128 + b"," in logged
    assert b"L" * 129 not in logged


# --- the paths -----------------------------------------------------------------------------


@pytest.mark.parametrize("pure", [False, True], ids=["C reader", "pure Python"])
def test_the_command_line_dead_letters_what_only_a_name_made(
    forgery: Forgery, tmp_path: Path, pure: bool
) -> None:
    log = tmp_path / "server_audit.log"
    log.write_bytes(forgery.log)
    environment = {"AUDITSYNC_PURE_PYTHON": "1"} if pure else {}
    command = ["decode", str(log), "--to", f"jsonl:{tmp_path}/out"]
    done = subprocess.run(
        [sys.executable, "-m", "auditsync", *command, "--dead-letter", str(tmp_path / "letters")],
        capture_output=True,
        check=False,
        env={**_environment(), **environment},
    )
    assert done.returncode == 1, done.stderr.decode()  # something was dead-lettered
    delivered = [parse_line(_line_of(row)) for row in _rows(tmp_path / "out")]
    assert delivered
    assert forged(delivered) == []
    stages = [row["stage"] for row in _rows(tmp_path / "letters")]
    assert stages.count("suspect") >= 7, stages


def test_the_cloudwatch_path_dead_letters_what_only_a_name_made(forgery: Forgery) -> None:
    """Each physical line its own log event, three lines a message, every message a
    Kinesis record of one invocation: splits fall inside messages and across them, and a
    forged first line already taken is taken back when its second line comes."""
    lines = physical_lines(forgery.log)
    payloads = [
        to_payload(data_message(lines[first : first + 3], first_id=first))
        for first in range(0, len(lines), 3)
    ]
    sink, letters = MemorySink(), MemorySink()
    pipeline = Pipeline(sink, dead_letter=letters)
    assert handle_kinesis_event(kinesis_event(payloads), pipeline) == {"batchItemFailures": []}
    assert forged(sink.events) == []
    assert sum(letter.stage == "suspect" for letter in letters.items) >= 7
    assert len(sink.events) + len(letters.items) == len(lines)


def test_a_warm_function_judges_a_line_with_the_last_of_the_invocation_before(
    forgery: Forgery,
) -> None:
    """Every message its own invocation, cut before each line that begins inside a name:
    the warm pipeline remembers each stream's last line."""
    lines = physical_lines(forgery.log)
    cuts = [0] + [i for i, line in enumerate(lines) if line.startswith("20240131")] + [len(lines)]
    sink = MemorySink()
    pipeline = Pipeline(sink, dead_letter=MemorySink())
    for start, end in itertools.pairwise(cuts):
        message = data_message(lines[start:end], first_id=start)
        handle_subscription_event(subscription_event(to_payload(message)), pipeline)
    assert [event for event in forged(sink.events) if event.serverhost == "d"] == []


def test_the_kinesis_path_cut_before_each_forged_line(forgery: Forgery) -> None:
    """A forged line as the first of a Kinesis record, its name's start in the record
    before: the pipeline remembers the stream's last line across records."""
    lines = physical_lines(forgery.log)
    cuts = [0] + [i for i, line in enumerate(lines) if line.startswith("20240131")] + [len(lines)]
    payloads = [
        to_payload(data_message(lines[start:end], first_id=start))
        for start, end in itertools.pairwise(cuts)
        if start < end
    ]
    sink = MemorySink()
    pipeline = Pipeline(sink, dead_letter=MemorySink())
    response = handle_kinesis_event(kinesis_event(payloads), pipeline)
    assert response == {"batchItemFailures": []}
    assert forged(sink.events) == []


# --- the replica ---------------------------------------------------------------------------


@pytest.fixture
def replica(forgery: Forgery) -> Iterator[private_mariadb.PrivateMariaDB]:
    """A replica database holding what shop.orders held before the statements replayed,
    and a replay user with the least privileges docs/security.md names."""
    server = forgery.server
    server.execute(
        f"DROP DATABASE IF EXISTS {REPLICA}",
        f"DROP DATABASE IF EXISTS {BOOKKEEPING}",
        f"CREATE DATABASE {REPLICA}",
        f"CREATE TABLE {REPLICA}.orders (id INT PRIMARY KEY)",
        f"DROP USER IF EXISTS '{REPLAYER}'@'localhost'",
        f"CREATE USER '{REPLAYER}'@'localhost' IDENTIFIED BY '{PASSWORD}'",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {REPLICA}.* TO '{REPLAYER}'@'localhost'",
        f"GRANT CREATE, SELECT, INSERT, UPDATE, DELETE ON {BOOKKEEPING}.*"
        f" TO '{REPLAYER}'@'localhost'",
    )
    yield server
    server.execute(
        f"DROP DATABASE IF EXISTS {REPLICA}",
        f"DROP DATABASE IF EXISTS {BOOKKEEPING}",
        f"DROP USER IF EXISTS '{REPLAYER}'@'localhost'",
    )


def replay(server: private_mariadb.PrivateMariaDB, log: bytes, **login: Any) -> MemorySink:
    """The audit file through a ReplaySink into the replica; the dead letters returned."""
    connection = server.connect(autocommit=False, **login)
    letters = MemorySink()
    sink = ReplaySink(
        connection,
        target=MySQLTarget(),
        databases={"shop": REPLICA},
        bookkeeping=BOOKKEEPING,
        tables="shop.orders",
    )
    pipeline = Pipeline(sink, dead_letter=letters)
    try:
        pipeline.process(read_file(_Bytes(log), "server_audit.log"))
    finally:
        pipeline.close()
        connection.close()
    return letters


def orders(server: private_mariadb.PrivateMariaDB) -> list[int]:
    with server.connect() as admin, admin.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {REPLICA}.orders ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.parametrize("user", ["root", REPLAYER])
def test_the_replica_is_not_truncated(
    forgery: Forgery, replica: private_mariadb.PrivateMariaDB, user: str
) -> None:
    """The genuine INSERT is replayed, the forged TRUNCATE and DELETEs are not: as root,
    whom nothing stops, and as the least-privileged replay user, whom nothing stops from
    deleting."""
    login = {} if user == "root" else {"user": REPLAYER, "password": PASSWORD}
    letters = replay(replica, forgery.log, **login)
    assert orders(replica) == [1, 2]
    assert any(letter.stage == "suspect" for letter in letters.items)


def test_least_privileges_stop_a_forged_truncate_on_their_own(
    forgery: Forgery, replica: private_mariadb.PrivateMariaDB
) -> None:
    """The second line of defence (docs/security.md): were a forged TRUNCATE to reach the
    sink, the replay user, who lacks DROP, could not run it. Error 1142 is one a GRANT can
    fix, so the sink fails the batch (to be retried) rather than refusing it: the replay
    stops there, the table whole, until someone looks."""
    replica.execute(f"INSERT INTO {REPLICA}.orders VALUES (1), (2)")
    connection = replica.connect(autocommit=False, user=REPLAYER, password=PASSWORD)
    sink = ReplaySink(
        connection, target=MySQLTarget(), databases={"shop": REPLICA}, bookkeeping=BOOKKEEPING
    )
    pipeline = Pipeline(sink, dead_letter=MemorySink())
    try:
        report = pipeline.process_lines([FORGED])
    finally:
        pipeline.close()
        connection.close()
    assert (report.delivered, report.failed) == (0, 1), report
    assert getattr(report.error, "args", (None,))[0] == 1142, report.error
    assert orders(replica) == [1, 2]


# --- helpers --------------------------------------------------------------------------------


class _Bytes:
    """A log held in memory, read as a file is."""

    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def read(self, size: int = -1, /) -> bytes:
        end = len(self.data) if size < 0 else self.at + size
        chunk, self.at = self.data[self.at : end], min(end, len(self.data))
        return chunk


def _environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != "AUDITSYNC_PURE_PYTHON"}


def _rows(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


def _line_of(row: dict[str, Any]) -> str:
    """An output row back to its line, through the event's own JSON form."""
    from auditsync import format_line
    from auditsync._json import event_from_dict

    return format_line(event_from_dict(row))


def test_an_anonymous_account_lets_any_name_write_every_record() -> None:
    """Why docs/security.md says to remove anonymous accounts: with ``''@localhost`` any
    user name logs in, and every record of its connection carries the name."""
    name = "anyone" + NL + "20240131 14:02:08,d,admin"
    with private_mariadb.PrivateMariaDB() as server:
        server.execute("CREATE USER ''@'localhost'")
        start = server.audit_offset()
        with server.connect(user=name, password="") as session, session.cursor() as cursor:
            cursor.execute("SELECT CURRENT_USER()")
            assert cursor.fetchone() == ("@localhost",)
        log = server.audit_log(start, server.audit_settled(start)).decode()
    claimed = "20240131 14:02:08,d,admin,localhost,"
    operations = [line.split(",")[6] for line in log.split(NL) if line.startswith(claimed)]
    assert operations[0] == "CONNECT"
    assert operations[-1] == "DISCONNECT"
    assert log.count("anyone" + NL) == len(operations) >= 3
