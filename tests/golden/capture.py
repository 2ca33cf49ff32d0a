"""Capture a golden corpus of server_audit records from the local MariaDB server.

Usage: ``python tests/golden/capture.py OUTDIR`` (or :func:`capture` from a test).

The script creates its own databases and users (every name starts with ``auditsync_``),
runs a battery of statements a parser can get wrong, and writes to OUTDIR:

- the audit files exactly as the server wrote them (``server_audit.log`` with the default
  query limit, ``limit40.log`` with ``server_audit_query_log_limit=40``, ``unlimited.log``
  with no limit),
- ``syslog-datagrams.log``: the datagrams mariadbd sent to ``/dev/log`` with
  ``server_audit_output_type=syslog``, one a line (only when ``/dev/log`` was free),
- ``expected.json``: what each record must parse to, written from the client's side only —
  the statement the script sent, after the server's documented trimming, the connection id
  from ``SELECT CONNECTION_ID()``, the error number pymysql reported. The log is never read
  to make an expectation: that would make the golden test circular.

How the plugin shortens a statement is modelled in :func:`logged_statement` from its
source (``log_statement_ex`` and ``escape_string`` of server_audit 1.4.14): the *escaped*
text is cut at ``query_log_limit`` bytes without splitting an escape pair, and in a
buffer corner case the closing ``',retcode`` is cut off too.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import mariadb_audit
import pymysql
from pymysql.constants import CLIENT

__all__ = [
    "DEFAULT_OUTDIR",
    "NEWLINE_NAMES",
    "capture",
    "logged_statement",
    "trim_statement",
]

DEFAULT_OUTDIR = Path(__file__).resolve().parents[1] / "data" / "golden"

DB = "auditsync_golden"
DB_COMMA = "auditsync_g,weird"
DB_QUOTE = "auditsync_g'o"
DB_NEWLINE = "auditsync_g\nnl"
DB_SCRATCH = "auditsync_g_scratch"
DATABASES = (DB, DB_COMMA, DB_QUOTE, DB_NEWLINE, DB_SCRATCH)

PASSWORD = "golden-pw"
U_PLAIN = "auditsync_plain"
U_COMMA = "auditsync_we,ird"
U_QUOTE = "auditsync_o'neil"
U_NEWLINE = "auditsync_new\nline"
U_PW = "auditsync_pw"
U_GONE = "auditsync_nobody"
USERS = (U_PLAIN, U_COMMA, U_QUOTE, U_NEWLINE, U_PW)

T_COMMA = "a,b"
T_QUOTE = "it's"
T_NEWLINE = "t\nnl"
T_UNICODE = "tüé"

#: Names holding a raw newline: each splits a record over one more physical line.
NEWLINE_NAMES = (DB_NEWLINE, U_NEWLINE, T_NEWLINE)

#: Bytes the server trims around a statement (``my_isspace``) and, at the end, ``;``.
_SPACE = b" \t\n\r\x0b\x0c"
_MESSAGE_LOC = 2048  # the stack buffer of log_statement_ex
_ESCAPES = {0x08: b"b", 0x09: b"t", 0x0A: b"n", 0x0C: b"f", 0x0D: b"r", 0x27: b"'", 0x5C: b"\\"}


def ident(name: str) -> str:
    """A backquoted identifier."""
    return "`" + name.replace("`", "``") + "`"


def literal(text: str) -> str:
    """A single-quoted SQL string literal, quotes doubled, backslashes escaped."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def account(user: str) -> str:
    """``'user'@'localhost'`` for account statements."""
    return f"{literal(user)}@'localhost'"


def trim_statement(sent: bytes) -> bytes:
    """The statement as the server logs it: leading whitespace, trailing whitespace and ``;`` go."""
    return sent.lstrip(_SPACE).rstrip(_SPACE + b";")


@dataclass(frozen=True)
class Logged:
    """What the plugin writes for one statement, from the model of its buffers."""

    object: bytes  # the unescaped text that reaches the log
    kept: int  # how many bytes of the statement that is
    tail_complete: bool  # whether the closing ``',retcode`` is written in full


def logged_statement(query: bytes, *, limit: int, header_len: int = 0) -> Logged:
    """Model ``log_statement_ex`` + ``escape_string`` for a statement without passwords.

    ``header_len`` is the length of the record before the query (``…,QUERY,db,'``); it
    only matters when the limit is 0 or larger than the 2 KiB stack buffer.
    """
    q_len = min(len(query), limit) if limit > 0 else len(query)
    message_size = _MESSAGE_LOC
    if q_len > (message_size - header_len) // 2:
        message_size = (q_len * 2 + header_len + 4095) & ~4095
    buffer = message_size - header_len
    if limit > 0 and buffer > limit + 2:
        buffer = limit + 2
    cap = buffer - 2
    out = 0
    kept = 0
    for byte in query[:q_len]:
        if out >= cap:
            break
        if byte in _ESCAPES:
            if out + 1 >= cap:
                break
            out += 2
        else:
            out += 1
        kept += 1
    room = message_size - 1 - (header_len + out)
    return Logged(object=query[:kept], kept=kept, tail_complete=room - 1 >= 4)


def mask(before: str, secret: str, after: str = "") -> bytes:
    """The documented masking: the password literal, quotes included, becomes ``*****``.

    The plugin skips the literal up to the next quote of the same kind, stepping over a
    backslash and the byte after it, so a doubled quote inside it ends the mask early and
    the rest of the password reaches the log.
    """
    quote = secret[0]
    i = 1
    while i < len(secret):
        if secret[i] == quote:
            i += 1
            break
        if secret[i] == "\\":
            i += 1
        i += 1
    return (before + "*****" + secret[i:] + after).encode()


def _b(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8")


@dataclass
class Expect:
    """One record the log must hold, as the client knows it."""

    file: str
    group: int
    client: str
    connection_id: int
    operation: str
    username: str
    database: str | None
    object: bytes | None
    retcode: int | None
    truncated: bool = False
    sent_length: int | None = None
    kept: int | None = None
    note: str = ""
    ambiguous: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON form: text objects as strings, objects that are not UTF-8 in base64."""
        out: dict[str, Any] = {
            "file": self.file,
            "group": self.group,
            "client": self.client,
            "connection_id": self.connection_id,
            "operation": self.operation,
            "username": self.username,
            "database": self.database,
            "retcode": self.retcode,
            "truncated": self.truncated,
        }
        if self.object is None:
            out["object"] = None
        else:
            try:
                out["object"] = self.object.decode("utf-8")
            except UnicodeDecodeError:
                out["object_b64"] = base64.b64encode(self.object).decode("ascii")
        for key in ("sent_length", "kept"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.note:
            out["note"] = self.note
        if self.ambiguous:
            out["ambiguous"] = self.ambiguous
        return out


@dataclass
class Recorder:
    """Collects expectations and knows which file and limit are in force."""

    session: mariadb_audit.AuditSession
    file: str = "server_audit.log"
    limit: int = 1024
    syslog: bool = False
    expectations: list[Expect] = field(default_factory=list)
    group: int = 0
    clients: list[Client] = field(default_factory=list)
    closed_ids: list[int] = field(default_factory=list)

    def next_group(self) -> int:
        self.group += 1
        return self.group

    def add(self, **fields: Any) -> None:
        self.expectations.append(Expect(file=self.file, **fields))


class Client:
    """One client connection whose every statement is recorded as an expectation.

    It tracks two databases: the real current one (``USE``, ``COM_INIT_DB``), which the
    DISCONNECT record shows, and the plugin's guess, which QUERY records show. The plugin
    takes its guess from the login, ``COM_INIT_DB`` and a successful statement starting
    with ``use ``; while it has none, it also takes the first one a statement reports
    (``thd->db`` or the database of the first table event), which the client cannot
    always foresee: then the guess is unknown (``None``) until the next ``USE``.
    """

    def __init__(
        self,
        rec: Recorder,
        label: str,
        *,
        user: str = "root",
        password: str | None = None,
        database: str | None = None,
        multi: bool = False,
    ) -> None:
        self.rec = rec
        self.label = label
        self.user = user
        params: dict[str, Any] = {}
        if user != "root":
            params["user"] = user
            params["password"] = PASSWORD if password is None else password
        if database is not None:
            params["database"] = database
        if multi:
            params["client_flag"] = CLIENT.MULTI_STATEMENTS
        self.conn = mariadb_audit.connect(**params)
        self.real_db = database or ""
        self.plugin_db: str | None = database or ""
        with self.conn.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID(), USER()")
            self.id, user_host = cur.fetchone()
        self.host = user_host.rpartition("@")[2]
        group = rec.next_group()
        rec.add(
            group=group,
            client=label,
            connection_id=self.id,
            operation="CONNECT",
            username=user,
            database=self.real_db,
            object=b"",
            retcode=0,
        )
        self._expect_query(group, b"SELECT CONNECTION_ID(), USER()", 0, tables=())
        rec.clients.append(self)

    def _expect_query(
        self,
        group: int,
        text: bytes,
        retcode: int,
        *,
        tables: Sequence[tuple[str, str, str]],
        obj: bytes | None = None,
        note: str = "",
        header_len: int = 0,
        check_object: bool = True,
    ) -> None:
        for op, db, table in tables:
            # READ,db,a,b, is db "db" with table "a,b" or db "db,a" with table "b": only
            # a comma in the (old) table name makes the record ambiguous.
            unsure = "," in table.partition("|")[0]
            self.rec.add(
                group=group,
                client=self.label,
                connection_id=self.id,
                operation=op,
                username=self.user,
                database=db,
                object=table.encode(),
                retcode=None,
                note=f"table event of: {note or text[:60]!r}",
                ambiguous="a comma in the table name: where the database ends is a guess"
                if unsure
                else "",
            )
        limit = self.rec.limit
        if obj is None:
            logged = logged_statement(text, limit=limit, header_len=header_len)
            if self.rec.syslog and b"\0" in logged.object:
                cut = logged.object.index(b"\0")
                logged = Logged(object=logged.object[:cut], kept=cut, tail_complete=False)
            obj = logged.object
            complete = logged.tail_complete
            kept = logged.kept if logged.kept < len(text) else None
        else:
            complete, kept = True, None
        self.rec.add(
            group=group,
            client=self.label,
            connection_id=self.id,
            operation="QUERY",
            username=self.user,
            database=self.plugin_db,
            object=obj if check_object else None,
            retcode=retcode if complete else None,
            truncated=not complete,
            sent_length=len(text) if kept is not None or not complete else None,
            kept=kept,
            note=note,
        )

    def _execute(self, sent: bytes) -> int:
        """Send one COM_QUERY, read every result, return 0 or the server's error number."""
        cur = self.conn.cursor()
        try:
            cur.execute(sent)
            while cur.nextset():
                pass
        except pymysql.MySQLError as exc:
            return int(exc.args[0])
        finally:
            cur.close()
        return 0

    def _track_db(
        self, text: bytes, retcode: int, use: str | None, opens_tables: bool, guess: str | None
    ) -> None:
        if self.plugin_db == "" and opens_tables:
            self.plugin_db = guess
        if retcode == 0 and use is not None:
            self.real_db = use
            if text[:4].lower() == b"use ":
                self.plugin_db = use
        if self.plugin_db == "" and self.real_db:
            self.plugin_db = self.real_db

    def run(
        self,
        sent: str | bytes,
        *,
        tables: Sequence[tuple[str, str, str]] = (),
        opens_tables: bool | None = None,
        use: str | None = None,
        guess: str | None = None,
        obj: bytes | None = None,
        note: str = "",
        expect_error: int | None = None,
        check_object: bool = True,
        header_len: int = 0,
    ) -> int:
        """Run one statement and expect its table events and its QUERY record.

        ``use`` is the database a ``USE`` switches to; ``guess`` is the database of the first
        table event, when the plugin has no database yet and the client can foresee it.
        """
        raw = _b(sent)
        text = trim_statement(raw)
        retcode = self._execute(raw)
        if expect_error is not None and retcode != expect_error:
            raise AssertionError(f"{text!r}: expected error {expect_error}, got {retcode}")
        if expect_error is None and retcode:
            raise AssertionError(f"{text!r} failed with {retcode}")
        if opens_tables is None:
            opens_tables = bool(tables)
        self._track_db(text, retcode, use, opens_tables, guess)
        self._expect_query(
            self.rec.next_group(),
            text,
            retcode,
            tables=tables,
            obj=obj,
            note=note,
            header_len=header_len,
            check_object=check_object,
        )
        return retcode

    def run_multi(self, parts: Sequence[str], *, fails_at: int | None = None, note: str) -> None:
        """A multi-statement query: each statement is logged on its own.

        A statement's text starts after the previous ``;`` without its leading whitespace and
        ends before its own ``;``; a failing one runs to the end of the (trimmed) packet.
        """
        sent = ";".join(parts).encode()
        retcode = self._execute(sent)
        if (retcode != 0) != (fails_at is not None):
            raise AssertionError(f"multi-statement {sent!r} returned {retcode}")
        group = self.rec.next_group()
        for i, part in enumerate(parts):
            if i == fails_at:
                rest = trim_statement(";".join(parts[i:]).encode())
                self._expect_query(group, rest, retcode, tables=(), note=note)
                break
            text = part.encode().lstrip(_SPACE)
            if i == len(parts) - 1:
                text = trim_statement(text)
            self._expect_query(group, text, 0, tables=(), note=note)

    def run_call(
        self, sent: str, inner: Sequence[tuple[bytes, Sequence[tuple[str, str, str]]]]
    ) -> None:
        """A CALL: each statement of the procedure gets its record, then the CALL its own."""
        retcode = self._execute(sent.encode())
        if retcode:
            raise AssertionError(f"{sent!r} failed with {retcode}")
        group = self.rec.next_group()
        for text, tables in inner:
            self._expect_query(group, text, 0, tables=tables, note="inside a procedure")
        self._expect_query(group, trim_statement(sent.encode()), 0, tables=(), note="the CALL")

    def select_db(self, name: str) -> None:
        """COM_INIT_DB: no record of its own, but the plugin follows it."""
        self.conn.select_db(name)
        self.real_db = name
        self.plugin_db = name

    def header_len(self) -> int:
        """Bytes before the query in this client's next QUERY record (for buffer corners)."""
        if self.plugin_db is None:
            raise AssertionError("the plugin's database guess is unknown")
        with self.conn.cursor() as cur:
            while True:
                cur.execute(
                    "SELECT QUERY_ID FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()"
                )
                current = int(cur.fetchone()[0])
                # The next statement gets the next id; keep its digit count predictable.
                if len(str(current + 1)) == len(str(current + 500)):
                    break
                cur.execute("DO 0")
        self._expect_query(
            self.rec.next_group(),
            b"SELECT QUERY_ID FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()",
            0,
            tables=(),
        )
        fields = [
            "20000101 00:00:00",
            self.rec.session.hostname,
            self.user,
            self.host,
            str(self.id),
            str(current + 1),
            "QUERY",
            self.plugin_db,
        ]
        return len(",".join(fields).encode()) + 2

    def close(self) -> None:
        """Disconnect; the DISCONNECT record carries the real current database."""
        self.conn.close()
        self.rec.closed_ids.append(self.id)
        self.rec.add(
            group=self.rec.next_group(),
            client=self.label,
            connection_id=self.id,
            operation="DISCONNECT",
            username=self.user,
            database=self.real_db,
            object=b"",
            retcode=0,
        )
        self.rec.clients.remove(self)


def failed_login(rec: Recorder, label: str, user: str, password: str, database: str | None) -> int:
    """A login the server refuses: FAILED_CONNECT with the error, then DISCONNECT."""
    params = {**mariadb_audit.connection_params(), "user": user, "password": password}
    if database is not None:
        params["database"] = database
    conn = pymysql.connections.Connection(defer_connect=True, charset="utf8mb4", **params)
    try:
        conn.connect()
    except pymysql.MySQLError as exc:
        code = int(exc.args[0])
    else:
        conn.close()
        raise AssertionError(f"login as {user!r} should have failed")
    thread_id = int(conn.server_thread_id[0])
    rec.closed_ids.append(thread_id)
    group = rec.next_group()
    for op, retcode in (("FAILED_CONNECT", code), ("DISCONNECT", 0)):
        rec.add(
            group=group,
            client=label,
            connection_id=thread_id,
            operation=op,
            username=user,
            database=None,
            object=b"",
            retcode=retcode,
            note=f"login refused with {code}",
        )
    return thread_id


def _wait_gone(admin: Any, ids: Sequence[int], timeout: float = 5.0) -> None:
    """Wait until closed connections have left the server: their DISCONNECT is then logged."""
    if not ids:
        return
    marks = ",".join(str(int(i)) for i in ids)
    deadline = time.monotonic() + timeout
    with admin.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute(
                f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID IN ({marks})"
            )
            if cur.fetchone()[0] == 0:
                return
            time.sleep(0.02)
    raise AssertionError(f"connections {marks} did not go away")


def _cleanup(admin: Any) -> None:
    """Drop every database and user this script creates (only ours: all start auditsync_)."""
    with admin.cursor() as cur:
        for db in DATABASES:
            cur.execute(f"DROP DATABASE IF EXISTS {ident(db)}")
        for user in (*USERS, U_GONE, "auditsync_bs", "auditsync_via"):
            cur.execute(f"DROP USER IF EXISTS {account(user)}")


# --------------------------------------------------------------------------- battery


def setup_objects(rec: Recorder) -> None:
    """Databases, tables and users, created by a logged root client."""
    root = Client(rec, "setup", database=None)
    for db in DATABASES:
        root.run(f"CREATE DATABASE {ident(db)}", note="CREATE DATABASE, no table events")
    root.run(f"USE {ident(DB)}", use=DB, note="USE sets the plugin's database")
    root.run(
        "CREATE TABLE t1 (id INT PRIMARY KEY AUTO_INCREMENT, s VARCHAR(200), b VARBINARY(200))",
        tables=[("CREATE", DB, "t1")],
    )
    root.run("CREATE TABLE t2 (id INT)", tables=[("CREATE", DB, "t2")])
    for db, table in ((DB, T_COMMA), (DB, T_QUOTE), (DB_COMMA, T_COMMA), (DB, T_UNICODE)):
        root.run(f"CREATE TABLE {ident(db)}.{ident(table)} (i INT)", tables=[("CREATE", db, table)])
    root.run(
        f"CREATE TABLE {ident(DB_NEWLINE)}.{ident(T_NEWLINE)} (i INT)",
        tables=[("CREATE", DB_NEWLINE, T_NEWLINE)],
    )
    root.run(f"CREATE TABLE {ident(DB_QUOTE)}.t (i INT)", tables=[("CREATE", DB_QUOTE, "t")])
    for user in USERS:
        root.run(
            f"CREATE USER {account(user)} IDENTIFIED BY {literal(PASSWORD)}",
            obj=mask(f"CREATE USER {account(user)} IDENTIFIED BY ", literal(PASSWORD)),
            opens_tables=True,
            note="password masked",
        )
        root.run(
            f"GRANT ALL ON `auditsync\\_%`.* TO {account(user)}",
            opens_tables=True,
        )
    root.close()


def battery_literals(rec: Recorder) -> None:
    """Quoting, escapes, control bytes, Unicode and bytes that are not UTF-8."""
    c = Client(rec, "literals", user=U_PLAIN, database=DB)
    c.run("SELECT 'a,b', \"c,d\", ',', ',,'", note="commas in literals")
    c.run("SELECT 'it''s', 'it\\'s', \"say \"\"hi\"\"\"", note="'' and \\' quoting")
    c.run("SELECT '\\',0', \"',1064\", '\\'', ''''", note="what looks like the end of a record")
    c.run("SELECT 'a\\\\'", note="literal ending in an escaped backslash")
    c.run("SELECT 'a\\\\\\\\', 'b\\\\'", note="several trailing backslashes")
    c.run("SELECT 1 -- trailing backslash \\", note="statement ending in a backslash")
    c.run("SELECT 'x'", note="statement ending in a quote")
    c.run("SELECT '\\\\', '\\\\\\'' ", note="backslash then quote")
    for byte in [*range(0x20), 0x7F]:
        c.run(
            b"SELECT 'a" + bytes([byte]) + b"b' AS c" + f"{byte:02x}".encode(),
            note=f"control byte 0x{byte:02x} inside a literal",
        )
    c.run(
        b"SELECT '" + bytes([*range(1, 0x20), 0x7F]) + b"' AS all_controls",
        note="every control byte but NUL in one literal",
    )
    c.run("SELECT 'line1\nline2\r\nline3\ttab'\n  , 2\n  , 3", note="multi-line statement")
    c.run("  \t\n SELECT 'trim me' \n\t ;; ; \r\n", note="whitespace and ; trimmed")
    c.run(b"\x0b\x0cSELECT 'vt ff'\x0c\x0b;", note="vertical tab and form feed trimmed")
    c.run("SELECT 1;", note="one trailing ;")
    c.run("SELECT ' keep inner ;  ' ; ", note="; inside the literal stays")
    c.run("SELECT 'café', 'naïve', '日本語', 'Ελληνικά', '😀🎉', '👩‍👩‍👧'", note="Unicode")
    c.run(b"SELECT _binary'\xff\xfe\x00\x80', _binary'\xc3'", note="bytes that are not UTF-8")
    c.run(b"SELECT _binary X'FF00', _latin1'\xe9t\xe9' /* \xff\xff */", note="latin1 bytes")
    c.run(
        b"SELECT _binary'\\'\xff\\\\'",
        note="escaped quote and backslash around a byte that is not UTF-8",
    )
    c.run('SELECT "double \\" quote", \'"\'', note="double quotes are not escaped")
    c.run("SELECT CONCAT('a', CHAR(10), 'b') AS `col,with,commas`", note="commas in an alias")
    c.close()


def battery_errors_and_dml(rec: Recorder) -> None:
    """Failing statements, DDL, DML with table events, prepared statements, procedures."""
    c = Client(rec, "dml", user=U_PLAIN, database=DB)
    c.run("SELEC 1", expect_error=1064, note="syntax error")
    c.run("SELECT * FROM no_such_table", expect_error=1146, note="unknown table")
    c.run("SELECT no_such_column FROM t1", expect_error=1054, tables=[], opens_tables=True)
    c.run(
        "INSERT INTO t1 (id, s) VALUES (1, 'x'), (1, 'dup')",
        expect_error=1062,
        tables=[("WRITE", DB, "t1")],
        note="duplicate key",
    )
    c.run(
        "INSERT INTO t1 (s, b) VALUES ('a,b', _binary'\\0\\''), ('c''d', NULL)",
        tables=[("WRITE", DB, "t1")],
    )
    c.run("SELECT * FROM t1 WHERE s <> 'x,y'", tables=[("READ", DB, "t1")])
    c.run("UPDATE t1 SET s = 'e,f' WHERE id = 1", tables=[("WRITE", DB, "t1")])
    c.run("DELETE FROM t1 WHERE s = 'nothing'", tables=[("WRITE", DB, "t1")])
    c.run("INSERT INTO t2 SELECT id FROM t1", tables=[("WRITE", DB, "t2"), ("READ", DB, "t1")])
    c.run(
        "SELECT COUNT(*) FROM t1 JOIN t2 ON t1.id = t2.id",
        tables=[("READ", DB, "t1"), ("READ", DB, "t2")],
    )
    c.run(f"INSERT INTO {ident(T_COMMA)} VALUES (1)", tables=[("WRITE", DB, T_COMMA)])
    c.run(f"SELECT * FROM {ident(T_QUOTE)}", tables=[("READ", DB, T_QUOTE)])
    c.run(f"SELECT * FROM {ident(T_UNICODE)}", tables=[("READ", DB, T_UNICODE)])
    c.run(f"SELECT * FROM {ident(DB_COMMA)}.{ident(T_COMMA)}", tables=[("READ", DB_COMMA, T_COMMA)])
    c.run("ALTER TABLE t2 ADD COLUMN note VARCHAR(10)", tables=[("ALTER", DB, "t2")])
    c.run("CREATE TABLE t3 (i INT)", tables=[("CREATE", DB, "t3")])
    c.run("RENAME TABLE t3 TO t4", tables=[("RENAME", DB, f"t3|{DB}.t4")])
    c.run(
        f"RENAME TABLE t4 TO {ident(DB_COMMA)}.{ident('t,5')}",
        tables=[("RENAME", DB, f"t4|{DB_COMMA}.t,5")],
        note="rename across databases",
    )
    c.run(f"DROP TABLE {ident(DB_COMMA)}.{ident('t,5')}", tables=[("DROP", DB_COMMA, "t,5")])
    c.run("DROP TABLE no_such_table", expect_error=1051, note="unknown table on DROP")
    c.run("PREPARE stmt FROM 'SELECT ?, ''a,b'''", note="SQL PREPARE")
    c.run("SET @v = 'it''s'")
    c.run(
        "EXECUTE stmt USING @v",
        obj=b"SELECT ?, 'a,b'",
        note="EXECUTE is logged as the prepared text",
    )
    c.run("PREPARE ins FROM 'INSERT INTO t2 (id) VALUES (?)'")
    c.run(
        "EXECUTE ins USING 7", obj=b"INSERT INTO t2 (id) VALUES (?)", tables=[("WRITE", DB, "t2")]
    )
    c.run("DEALLOCATE PREPARE ins")
    c.run("PREPARE bad FROM 'SELEC ?'", expect_error=1064, note="failing PREPARE")
    body = "BEGIN\n  INSERT INTO t2 (id) VALUES (42);\n  SELECT COUNT(*) FROM t2;\nEND"
    c.run(f"CREATE PROCEDURE p_golden()\n{body}", opens_tables=True)
    c.run_call(
        "CALL p_golden()",
        [
            (b"INSERT INTO t2 (id) VALUES (42)", [("WRITE", DB, "t2")]),
            (b"SELECT COUNT(*) FROM t2", [("READ", DB, "t2")]),
        ],
    )
    c.run(
        "CREATE TRIGGER trg_golden BEFORE INSERT ON t2 FOR EACH ROW SET NEW.note = 'trg,x'",
        tables=[("READ", DB, "t2")],
    )
    c.run("INSERT INTO t2 (id) VALUES (9)", tables=[("WRITE", DB, "t2")], note="fires a trigger")
    c.run(f"DROP DATABASE {ident(DB_SCRATCH)}", opens_tables=True)
    c.run("USE auditsync_no_such_db", expect_error=1049, use=None, note="failing USE")
    c.run(f"USE {ident(DB_COMMA)}", use=DB_COMMA, note="USE of a database with a comma")
    c.run(f"SELECT * FROM {ident(T_COMMA)}", tables=[("READ", DB_COMMA, T_COMMA)])
    c.run(f"use {ident(DB_QUOTE)}", use=DB_QUOTE, note="lower-case use")
    c.run(f"USE\n{ident(DB)}", use=DB, note="'USE\\n' is not 'use ': the plugin keeps its guess")
    c.run("SELECT 'after USE with a newline'")
    c.select_db(DB_NEWLINE)
    c.run(
        f"SELECT * FROM {ident(T_NEWLINE)}",
        tables=[("READ", DB_NEWLINE, T_NEWLINE)],
        note="newline in database and table",
    )
    c.select_db(DB)
    c.close()

    nodb = Client(rec, "no-db", user=U_PLAIN, database=None)
    nodb.run("SELECT 'no database yet'", note="empty database field")
    nodb.run(
        f"SELECT COUNT(*) FROM {ident(DB)}.t1",
        tables=[("READ", DB, "t1")],
        guess=DB,
        note="the first table event sets the plugin's guess",
    )
    nodb.run(f"USE {ident(DB_COMMA)}", use=DB_COMMA)
    nodb.run("SELECT 'now with a database'")
    nodb.close()

    multi = Client(rec, "multi", database=DB, multi=True)
    multi.run_multi(["SELECT 1 ", "  SELECT 'a;b' ", "\nSELECT 3"], note="multi-statement")
    multi.run_multi(
        ["SELECT 1", " SELEC 2", " SELECT 3"],
        fails_at=1,
        note="failing statement of a multi-statement query runs to the end",
    )
    multi.close()


def battery_names(rec: Recorder) -> None:
    """Users and databases whose names hold commas, quotes and newlines."""
    for label, user, db, table in (
        ("user-comma", U_COMMA, DB_COMMA, T_COMMA),
        ("user-quote", U_QUOTE, DB_QUOTE, "t"),
        ("user-newline", U_NEWLINE, DB_NEWLINE, T_NEWLINE),
    ):
        c = Client(rec, label, user=user, database=db)
        c.run("SELECT 'weird names', CURRENT_USER()")
        c.run(f"SELECT * FROM {ident(table)}", tables=[("READ", db, table)])
        c.run("SELEC 'fails'", expect_error=1064)
        c.close()
    failed_login(rec, "bad-password", U_COMMA, "wrong", DB)
    failed_login(rec, "no-such-user", U_GONE, "x", None)
    failed_login(rec, "bad-db", U_PLAIN, PASSWORD, "auditsync_no_such_db")


def battery_passwords(rec: Recorder) -> None:
    """Statements whose password literal the plugin masks."""
    c = Client(rec, "passwords", database=DB)
    acct = account(U_PW)
    c.run(
        f"ALTER USER {acct} IDENTIFIED BY 'n3w-Secret'",
        obj=mask(f"ALTER USER {acct} IDENTIFIED BY ", "'n3w-Secret'"),
        opens_tables=True,
    )
    c.run(
        f"ALTER USER {acct} IDENTIFIED\tBY 'tab'",
        obj=mask(f"ALTER USER {acct} IDENTIFIED BY ", "'tab'"),
        opens_tables=True,
        note="whitespace between IDENTIFIED and the literal becomes a space",
    )
    c.run(
        f"SET PASSWORD FOR {acct} = PASSWORD('p,w')",
        obj=mask(f"SET PASSWORD FOR {acct} = PASSWORD(", "'p,w'", ")"),
        opens_tables=True,
    )
    c.run(
        f'GRANT SELECT ON {ident(DB)}.* TO {acct} IDENTIFIED BY "dq\'pw"',
        obj=mask(f"GRANT SELECT ON {ident(DB)}.* TO {acct} IDENTIFIED BY ", '"dq\'pw"'),
        opens_tables=True,
        note="double-quoted password",
    )
    c.run(
        f"ALTER USER {acct} IDENTIFIED BY 'it''s-Secret2'",
        obj=mask(f"ALTER USER {acct} IDENTIFIED BY ", "'it''s-Secret2'"),
        opens_tables=True,
        note="'' inside the password ends the mask early: the rest leaks",
    )
    c.run(
        f"ALTER USER {acct} IDENTIFIED BY 'bs\\'q'",
        obj=mask(f"ALTER USER {acct} IDENTIFIED BY ", "'bs\\'q'"),
        opens_tables=True,
        note="\\' inside the password",
    )
    c.run(
        "CREATE USER 'auditsync_via'@'localhost' IDENTIFIED VIA mysql_native_password"
        " USING PASSWORD('clear')",
        obj=mask(
            "CREATE USER 'auditsync_via'@'localhost' IDENTIFIED VIA "
            "mysql_native_password USING PASSWORD(",
            "'clear'",
            ")",
        ),
        opens_tables=True,
        note="USING PASSWORD() is masked since MDEV-35507 (in 10.11.19)",
    )
    c.run(
        "CREATE USER 'auditsync_bs'@'localhost' IDENTIFIED BY \\",
        expect_error=1064,
        note="IDENTIFIED BY with no literal: nothing to mask, the backslash is escaped",
    )
    c.close()


def battery_long(rec: Recorder) -> None:
    """Statements longer than the default limit of 1024 bytes."""
    c = Client(rec, "long", user=U_PLAIN, database=DB)
    c.run("SELECT '" + "x" * 1500 + "'", note="escaped text cut at 1024 bytes")
    c.run(
        "SELECT '" + "y" * 1012 + "\\\\'",
        note="the second escape pair would end at byte 1025: dropped, 1023 bytes written",
    )
    c.run("SELECT '" + "é" * 600 + "'", note="cut inside a two-byte character")
    c.run("SELECT '" + "z" * 1013 + "'", note="escaped text exactly 1024 bytes: not cut")
    c.run("SELECT '" + "z" * 1014 + "'", note="only the closing quote's escape pair is cut")
    c.run("SELEC '" + "w" * 1100 + "'", expect_error=1064, note="long failing statement")
    c.close()


def battery_small_limit(rec: Recorder) -> None:
    """``server_audit_query_log_limit = 40``: multi-byte characters get split."""
    c = Client(rec, "limit40", user=U_COMMA, database=DB)
    c.run("SELECT '" + "é" * 30 + "'", note="split inside é")
    c.run("SELECT '" + "😀" * 10 + "'", note="split inside an emoji")
    c.run("SELECT '" + "€" * 12 + "'", note="split inside a three-byte character")
    c.run("SELECT 'abcdefghijklmnopqrstuvwxyz01234567\\\\\\\\'", note="escapes at the limit")
    c.run("SELECT 'abcdefghijklmnopqrstuvwxyz0123456\n7'", note="\\n at the limit")
    c.run("SELECT " + "1234567890" * 3 + "123", note="exactly 40 bytes: not cut")
    c.run("SELECT " + "1234567890" * 3 + "1234", note="41 bytes: the last one is cut")
    c.run(b"SELECT _binary'" + b"\xff\xfe" * 20 + b"'", note="bytes that are not UTF-8, cut")
    c.run("SELEC 'abcdefghijklmnopqrstuvwxyz0123456789'", expect_error=1064)
    c.run(
        f"SELECT * FROM {ident(T_COMMA)} WHERE i > 0 AND i < 100000 OR i IS NULL",
        tables=[("READ", DB, T_COMMA)],
    )
    c.close()
    root = Client(rec, "limit40-root", database=DB)
    root.run(
        f"SET PASSWORD FOR {account(U_PW)} = PASSWORD('pwpwpwpwpwpwpwpwpwpwpw')",
        opens_tables=True,
        note="the password lies past the limit: cut before the masking matters",
    )
    root.run(
        f"ALTER USER {account(U_PW)} IDENTIFIED BY 'pw'",
        opens_tables=True,
        note="the password lies past the limit: cut before the masking matters",
    )
    root.run(
        "ALTER USER auditsync_pw IDENTIFIED BY 'pwpwpwpwpwpwpwpwpwpw'",
        expect_error=1396,
        opens_tables=True,
        check_object=False,
        note="the mask would end past the limit: not predictable from the client",
    )
    root.run(
        "SET PASSWORD = PASSWORD('0123456789012345678901234567890123456789')",
        expect_error=1699,
        check_object=False,
        note="the literal runs past the limit: not predictable from the client",
    )
    root.close()


def battery_unlimited(rec: Recorder) -> None:
    """``server_audit_query_log_limit = 0`` and the buffer corner where the tail is lost."""
    c = Client(rec, "unlimited", user=U_PLAIN, database=DB)
    c.run("SELECT '" + "u" * 5000 + "'", note="no limit: 5000 bytes kept")
    for shape in ("quotes", "x+quotes"):
        header = c.header_len()
        n = (_MESSAGE_LOC - header) // 2
        text = "'" * n if shape == "quotes" else "x" + "'" * (n - 1)
        c.run(
            text,
            expect_error=1064,
            header_len=header,
            note=f"{shape}: escaped text overflows the 2 KiB stack buffer",
        )
    header = c.header_len()
    n = (4096 - header) // 2
    c.run(
        "'" * n,
        expect_error=1064,
        header_len=header,
        note="escaped text overflows the 4 KiB heap buffer",
    )
    c.close()


def battery_syslog(rec: Recorder) -> None:
    """A few records through syslog, with and without ``server_audit_syslog_info``."""
    rec.session.set("syslog_info", "auditsync-golden")
    c = Client(rec, "syslog", user=U_COMMA, database=DB)
    c.run("SELECT 'a,b', 'it''s', 'tab\there'")
    c.run(b"SELECT _binary'\xff\xfe'", note="bytes that are not UTF-8")
    c.run(f"SELECT * FROM {ident(T_COMMA)}", tables=[("READ", DB, T_COMMA)])
    c.run(b"SELECT 'nul\x00byte', 2", note="syslog() stops at the NUL: the record is cut")
    c.run("SELEC 'fails'", expect_error=1064)
    rec.session.set("syslog_info", "")
    c.run("SELECT 'empty syslog_info'")
    c.close()


# --------------------------------------------------------------------------- driver


class DatagramCollector:
    """Reads ``/dev/log`` in a thread while mariadbd writes to it.

    glibc's ``syslog()`` sends with a blocking call: once a few datagrams queue up unread
    (``net.unix.max_dgram_qlen``, 10 by default), every server thread that logs an audit
    record stops, so the socket must be read all the time, not at the end.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.datagrams: list[bytes] = []
        self.last = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dev-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.02)
        while not self._stop.is_set():
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError:
                return
            self.datagrams.append(data)
            self.last = time.monotonic()

    def finish(self, quiet: float = 0.3) -> list[bytes]:
        """Wait until nothing has come for ``quiet`` seconds, stop, return every datagram."""
        while time.monotonic() - self.last < quiet:
            time.sleep(0.02)
        self._stop.set()
        self._thread.join()
        return self.datagrams


@contextlib.contextmanager
def dev_log_listener(path: str = "/dev/log") -> Iterator[DatagramCollector | None]:
    """Bind a datagram socket at ``/dev/log`` if nothing is there; remove it afterwards."""
    if os.path.lexists(path):
        yield None
        return
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    collector = None
    try:
        try:
            sock.bind(path)
        except OSError:
            yield None
            return
        try:
            os.chmod(path, 0o666)
            collector = DatagramCollector(sock)
            yield collector
        finally:
            os.unlink(path)
            if collector is not None:
                collector.finish(quiet=0)
    finally:
        sock.close()


def _finish_clients(rec: Recorder) -> None:
    """Close what is still open and wait until every closed connection is gone."""
    for client in list(rec.clients):
        client.close()
    _wait_gone(rec.session.admin, rec.closed_ids)
    rec.closed_ids.clear()


def capture(outdir: str | os.PathLike[str], *, syslog: bool = True) -> dict[str, Any]:
    """Run the battery against the live server and write the corpus to ``outdir``."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="auditsync-golden-"))
    staging.chmod(0o777)
    try:
        with mariadb_audit.exclusive(), contextlib.closing(mariadb_audit.connect()) as admin:
            _cleanup(admin)  # leftovers of an interrupted run; not logged
            try:
                return _capture(staging, out, syslog=syslog)
            finally:
                _cleanup(admin)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _capture(staging: Path, out: Path, *, syslog: bool) -> dict[str, Any]:
    files: dict[str, dict[str, Any]] = {}
    syslog_note = "not attempted"
    datagrams: list[bytes] = []
    started = datetime.now(UTC).replace(microsecond=0)
    with mariadb_audit.audit_logging(staging / "server_audit.log", query_log_limit=1024) as sess:
        rec = Recorder(session=sess)
        files["server_audit.log"] = {"kind": "file", "query_log_limit": 1024}
        try:
            setup_objects(rec)
            battery_literals(rec)
            battery_errors_and_dml(rec)
            battery_names(rec)
            battery_passwords(rec)
            battery_long(rec)
            _finish_clients(rec)

            sess.set("query_log_limit", 40)
            sess.switch_file(staging / "limit40.log")
            rec.file, rec.limit = "limit40.log", 40
            files["limit40.log"] = {"kind": "file", "query_log_limit": 40}
            battery_small_limit(rec)
            _finish_clients(rec)

            sess.set("query_log_limit", 0)
            sess.switch_file(staging / "unlimited.log")
            rec.file, rec.limit = "unlimited.log", 0
            files["unlimited.log"] = {"kind": "file", "query_log_limit": 0}
            battery_unlimited(rec)
            _finish_clients(rec)

            if syslog:
                sess.set("query_log_limit", 1024)
                rec.limit = 1024
                with dev_log_listener() as listener:
                    if listener is None:
                        syslog_note = "skipped: /dev/log exists or cannot be bound"
                    else:
                        sess.set("output_type", "syslog")
                        rec.file, rec.syslog = "syslog-datagrams.log", True
                        try:
                            battery_syslog(rec)
                            _finish_clients(rec)
                        finally:
                            sess.set("output_type", "file")
                        datagrams = listener.finish()
                        syslog_note = f"{len(datagrams)} datagrams from /dev/log"
                        files["syslog-datagrams.log"] = {
                            "kind": "syslog-datagrams",
                            "query_log_limit": 1024,
                            "note": "one datagram a line; a datagram with no final newline"
                            " (record cut at a NUL) got one added",
                            "datagrams_b64": [base64.b64encode(d).decode() for d in datagrams],
                        }
        finally:
            for client in list(rec.clients):
                with contextlib.suppress(Exception):
                    client.conn.close()
        finished = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        server = {
            "version": sess.version,
            "hostname": sess.hostname,
            "time_zone": sess.time_zone,
            "plugin_installed_by_capture": sess.installed,
        }
    for name, info in files.items():
        if info["kind"] == "file":
            shutil.copyfile(staging / name, out / name)
    if datagrams:
        with open(out / "syslog-datagrams.log", "wb") as fh:
            for d in datagrams:
                fh.write(d if d.endswith(b"\n") else d + b"\n")
    manifest = {
        "generated_by": "tests/golden/capture.py",
        "server": server,
        "files": files,
        "syslog": syslog_note,
        "captured_between": [started.isoformat(), finished.isoformat()],
        "newline_names": list(NEWLINE_NAMES),
        "expectations": [e.to_json() for e in rec.expectations],
    }
    with open(out / "expected.json", "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, ensure_ascii=False, indent=1)
        fh.write("\n")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``capture.py OUTDIR``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path, nargs="?", help="where to write the corpus")
    parser.add_argument("--no-syslog", action="store_true", help="skip the /dev/log capture")
    args = parser.parse_args(argv)
    ok, why = mariadb_audit.availability()
    if not ok:
        print(f"MariaDB with server_audit not reachable: {why}", file=sys.stderr)
        return 2
    outdir = args.outdir
    if outdir is None:
        with contextlib.closing(mariadb_audit.connect()) as conn, conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            version = cur.fetchone()[0]
        outdir = DEFAULT_OUTDIR / ("mariadb-" + ".".join(version.split(".")[:2]))
    start = time.monotonic()
    manifest = capture(outdir, syslog=not args.no_syslog)
    counts: dict[str, int] = {}
    for exp in manifest["expectations"]:
        counts[exp["operation"]] = counts.get(exp["operation"], 0) + 1
    print(f"wrote {outdir} in {time.monotonic() - start:.1f} s; syslog: {manifest['syslog']}")
    print("expectations:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
