"""Apply the writes an audit log records to another database: :class:`ReplaySink`.

The audit log holds the text of every statement, not the rows it changed. Replaying that
text elsewhere is faithful only when the text alone decides the effect, and only when the
replay follows what the server followed for each connection: its current database, its
autocommit mode, its open transaction. This module does both. :func:`unsafe_reason` reads
a statement's text the way MySQL decides what is "unsafe for statement-based
replication"; a small state machine follows each source connection; and the sink applies
what is safe, in order, through any DB-API 2 connection, refusing the rest by name
(:class:`ReplayRefused`, which the pipeline turns into dead letters).

A Lambda container can be replaced between any two invocations, so nothing lives only in
memory: each connection's state, the statements of transactions not yet committed and
the key of every event handled are kept on the target, in bookkeeping tables written in
the same transaction as the change they describe. A redelivered event finds its key and
changes nothing; a transaction begun in one invocation is applied, whole, by whichever
invocation sees its COMMIT. See docs/replay.md for the rules and their limits.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any, Final, Literal

import attrs

from .._events import AuditEvent, Dialect
from ..sinks._base import Refused
from ..sql import DCL_KINDS, DDL_KINDS, Statement, classify

__all__ = [
    "MIRRORED_VARIABLES",
    "MySQLTarget",
    "ReplayRefused",
    "ReplaySink",
    "ReplayStats",
    "SQLiteTarget",
    "TableInfo",
    "Target",
    "unsafe_reason",
]

logger = logging.getLogger("auditsync.replay")

Order = Literal["auto", "arrival", "timestamp"]

# --- Reading statement text -----------------------------------------------------------------
#
# A statement is lexed once into two strings of its own length, so a position in either is a
# position in the text: ``code`` keeps names and code and fills strings and comments, and
# ``bare`` (upper-cased ASCII) also fills quoted names, so keywords and function names can be
# searched for without ever matching inside a literal or a name. The content of executable
# comments (``/*!50001 ... */``) is code: the server runs it.

_TOKEN: Final = re.compile(
    r"(?P<name>`[^`]*+(?:``[^`]*+)*+(?P<named>`)?)"
    r"|(?P<string>'[^'\\]*+(?:(?:\\[\s\S]|'')[^'\\]*+)*+(?P<single>')?"
    r'|"[^"\\]*+(?:(?:\\[\s\S]|"")[^"\\]*+)*+(?P<double>")?)'
    r"|(?P<open>/\*M?!\d*)"
    r"|(?P<comment>/\*[\s\S]*?(?:\*/|\Z)|--(?=[\s\x00-\x1f]|\Z)[^\n]*|\#[^\n]*)"
    r"|(?P<close>\*/(?!\*))"
)
_ASCII_UPPER: Final = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
#: A name as written: backquoted (``` `` ``` inside), or bare (MySQL allows U+0080..U+FFFF).
_IDENT: Final = r"(?:`(?:[^`]|``)*+`|[0-9A-Za-z_$\u0080-\uffff]++)"
_PARENS: Final = re.compile(r"[()]")


@attrs.frozen(slots=True)
class _Lexed:
    """A statement and its two same-length skeletons (see above)."""

    text: str
    code: str
    bare: str
    #: The text ends inside a string, name or comment, or with a parenthesis open: the
    #: server cut it (``server_audit_query_log_limit``), or the client sent a broken one.
    cut: bool = False

    @classmethod
    def of(cls, text: str) -> _Lexed:
        code: list[str] = []
        bare: list[str] = []
        pos = 0
        executable = False
        cut = False
        for match in _TOKEN.finditer(text):
            start, end = match.span()
            kind = match.lastgroup or ""  # the outer group: it closes last
            token = match.group()
            if end == len(text):
                cut = _unclosed(match, kind, token)
            if kind == "close" and not executable:
                continue  # ``*/`` in code: a multiplication before a division
            code.append(text[pos:start])
            bare.append(text[pos:start])
            if kind == "name":
                code.append(token)
                bare.append("`" + "_" * (len(token) - 2) + "`" if len(token) > 1 else "`")
            elif kind == "string":
                code.append("'" * len(token))
                bare.append("'" * len(token))
            else:  # comments, and the markers of executable comments
                executable = kind == "open" or (executable and kind != "close")
                code.append(" " * len(token))
                bare.append(" " * len(token))
            pos = end
        code.append(text[pos:])
        bare.append(text[pos:])
        upper = "".join(bare).translate(_ASCII_UPPER)
        cut = cut or executable or upper.count("(") != upper.count(")")
        return cls(text, "".join(code), upper, cut)

    def closing(self) -> dict[int, int]:
        """Where each parenthesis of the code closes; an unclosed one closes at the end."""
        found: dict[int, int] = {}
        stack: list[int] = []
        for match in _PARENS.finditer(self.bare):
            if match.group() == "(":
                stack.append(match.start())
            elif stack:
                found[stack.pop()] = match.start()
        for start in stack:
            found[start] = len(self.bare)
        return found

    def flat(self) -> str:
        """``bare`` with everything inside parentheses blanked: the statement's top level."""
        pieces: list[str] = []
        depth = 0
        last = 0
        for match in _PARENS.finditer(self.bare):
            at = match.start()
            if match.group() == "(":
                if depth == 0:
                    pieces.append(self.bare[last : at + 1])
                    last = at + 1
                depth += 1
            elif depth:
                depth -= 1
                if depth == 0:
                    pieces.append(" " * (at - last))
                    last = at
        pieces.append(self.bare[last:] if depth == 0 else " " * (len(self.bare) - last))
        return "".join(pieces)

    def items(self, start: int, end: int) -> list[tuple[int, int]]:
        """The spans of a comma-separated list between ``start`` and ``end``, at its top level."""
        spans: list[tuple[int, int]] = []
        depth = 0
        first = start
        for match in re.finditer(r"[(),]", self.bare[start:end]):
            char = match.group()
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
            elif depth == 0:
                spans.append((first, start + match.start()))
                first = start + match.start() + 1
        spans.append((first, end))
        return spans


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _unclosed(match: re.Match[str], kind: str, token: str) -> bool:
    """Whether a token at the very end of the text lacks its closing mark."""
    if kind == "name":
        return match.group("named") is None
    if kind == "string":
        return match.group("single") is None and match.group("double") is None
    return (
        kind == "comment"
        and token.startswith("/*")
        and (len(token) < 4 or not token.endswith("*/"))
    )


def _unquote(name: str) -> str:
    return name[1:-1].replace("``", "`") if name.startswith("`") else name


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


# --- What cannot be replayed from the text alone --------------------------------------------

#: Functions whose value depends on the moment, the session, the server or chance. Written
#: with parentheses in the statement; ``NAME_CONST`` and user-defined functions are trusted.
_VOLATILE_CALLS: Final = _words(
    """NOW SYSDATE CURDATE CURTIME CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP LOCALTIME
    LOCALTIMESTAMP UTC_DATE UTC_TIME UTC_TIMESTAMP SYSTIMESTAMP RAND RANDOM_BYTES UUID
    UUID_SHORT SYS_GUID CONNECTION_ID LAST_INSERT_ID USER CURRENT_USER SESSION_USER SYSTEM_USER
    CURRENT_ROLE DATABASE SCHEMA FOUND_ROWS ROW_COUNT NEXTVAL LASTVAL SETVAL SLEEP BENCHMARK
    GET_LOCK RELEASE_LOCK RELEASE_ALL_LOCKS IS_FREE_LOCK IS_USED_LOCK MASTER_POS_WAIT
    MASTER_GTID_WAIT LOAD_FILE VERSION ENCRYPT"""
)
#: The same without parentheses: SQL keywords that call a function.
_VOLATILE_WORDS: Final = _words(
    """CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP LOCALTIME LOCALTIMESTAMP UTC_DATE UTC_TIME
    UTC_TIMESTAMP CURRENT_USER CURRENT_ROLE"""
)
_WORD_CALL: Final = re.compile(r"(?<![\w$.`@])([A-Z_][A-Z0-9_]*+)(\s*\()?")
_SEQUENCE_VALUE: Final = re.compile(r"(?<![\w$.`@])(?:NEXT|PREVIOUS)\s+VALUE\s+FOR\b")
_UNIX_TIMESTAMP_NOW: Final = re.compile(r"(?<![\w$.`@])UNIX_TIMESTAMP\s*\(\s*\)")
_LIMIT: Final = re.compile(r"(?<![\w$.`@])LIMIT(?![\w$])")
_ORDER_BY: Final = re.compile(r"(?<![\w$.`@])ORDER\s+BY(?![\w$])")
_SELECT: Final = re.compile(r"(?<![\w$.`@])SELECT(?![\w$])")
_IGNORE: Final = re.compile(r"^\s*(?:INSERT|UPDATE)\b[^(]*?\bIGNORE(?![\w$])")
_DUPLICATE_KEY: Final = re.compile(r"(?<![\w$.`@])ON\s+DUPLICATE\s+KEY\s+UPDATE(?![\w$])")
#: Definitions: their bodies hold ``;`` and functions that run later, not now.
_DEFINITIONS: Final = _words(
    """CREATE_PROCEDURE ALTER_PROCEDURE CREATE_FUNCTION ALTER_FUNCTION CREATE_PACKAGE
    CREATE_TRIGGER CREATE_EVENT ALTER_EVENT CREATE_VIEW ALTER_VIEW"""
)
#: What the server writes in place of a password.
_MASK: Final = "*****"


def unsafe_reason(query: str) -> str | None:
    """Why the text of a write cannot be replayed to the same effect, or ``None``.

    The text-only rules: a text cut short, non-deterministic functions, variables,
    prepared-statement placeholders, masked passwords, bytes lost on the way, several
    statements in one text, ``LOAD DATA``, and row order left to the engine (``LIMIT``,
    ``IGNORE`` or ``REPLACE`` with ``SELECT``, without ``ORDER BY``). :class:`ReplaySink`
    adds the rules that need the event, the connection or the target: the log limit,
    auto-increment values, column defaults, tables not replicated.
    """
    return _unsafe(_Lexed.of(query), classify(query))


def _unsafe(lexed: _Lexed, statement: Statement) -> str | None:
    kind = statement.kind
    bare = lexed.bare
    if lexed.cut:
        return "truncated: the text ends inside a string, name, comment or parenthesis"
    if kind in ("LOAD_DATA", "LOAD_XML"):
        return "LOAD DATA: reads a file the target cannot see"
    if "\ufffd" in lexed.text:
        return "replaced bytes: U+FFFD stands where bytes were not UTF-8 (CloudWatch Logs)"
    definition = kind in _DEFINITIONS
    if not definition and ";" in bare.rstrip(" \t\r\n\f\v;"):
        return "multi-statement: several statements in one text"
    if _MASK in bare:
        return "masked password: the server logged ***** in place of a value"
    if "?" in bare and not definition:
        return "placeholders: a prepared statement's values are not logged"
    if definition or (kind == "CREATE_TABLE" and not _SELECT.search(bare)):
        return None  # what a definition calls runs later, on the target, as on the source
    if "@@" in bare:
        return "not deterministic: reads a system variable (@@)"
    if "@" in bare:
        return "not deterministic: uses a user variable (@), whose value is not logged"
    if _SEQUENCE_VALUE.search(bare) or _UNIX_TIMESTAMP_NOW.search(bare):
        return "not deterministic: a sequence value or the current time"
    for match in _WORD_CALL.finditer(bare):
        word = match.group(1)
        called = match.group(2) is not None
        if (called and word in _VOLATILE_CALLS) or (not called and word in _VOLATILE_WORDS):
            return f"not deterministic: {word}{'()' if called else ''}"
    ordered = _ORDER_BY.search(bare) is not None
    if kind in ("UPDATE", "DELETE", "INSERT", "REPLACE") and not ordered:
        if _LIMIT.search(bare):
            return "unordered LIMIT: which rows it touches is up to the engine (add ORDER BY)"
        selects = _SELECT.search(bare) is not None
        if selects and (kind == "REPLACE" or _IGNORE.match(bare) or _DUPLICATE_KEY.search(bare)):
            return "unordered SELECT: which duplicate wins is up to the engine (add ORDER BY)"
        if kind == "UPDATE" and _IGNORE.match(bare):
            return "unordered UPDATE IGNORE: which rows fail is up to the engine"
    return None


# --- The shape of an INSERT and the columns a statement assigns ------------------------------

_INSERT_HEAD: Final = re.compile(
    r"\s*(?:SET\s+STATEMENT\s[\s\S]*?\sFOR\s+)?(?:INSERT|REPLACE)"
    r"(?:\s+(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)(?![\w$]))*\s*(?:INTO(?![\w$]))?\s*"
)
_UPDATE_HEAD: Final = re.compile(r"\s*(?:SET\s+STATEMENT\s[\s\S]*?\sFOR\s+)?UPDATE(?![\w$])")
_QUALIFIED: Final = re.compile(rf"{_IDENT}(?:\s*\.\s*{_IDENT})?\s*")
_PARTITION: Final = re.compile(r"PARTITION\s*\(")
_SOURCE: Final = re.compile(r"(VALUES?|SET|SELECT|WITH|TABLE)(?![\w$])|\(")
_SUBQUERY: Final = re.compile(r"\s*(?:(?:SELECT|WITH|VALUES|TABLE)(?![\w$])|\()")
_ASSIGNED: Final = re.compile(rf"\s*(?:{_IDENT}\s*\.\s*)*({_IDENT})\s*(?::=|=)")
_SET_CLAUSE: Final = re.compile(r"(?<![\w$.`@])SET(?![\w$])")
_SET_END: Final = re.compile(r"(?<![\w$.`@])(?:WHERE|ORDER\s+BY|LIMIT|RETURNING)(?![\w$])")
_INTEGER: Final = re.compile(r"[+-]?\s*[0-9]+")


@attrs.frozen(slots=True)
class _InsertShape:
    """What an INSERT or REPLACE gives each column.

    ``columns`` is the column list (or the names of ``SET``), ``None`` when the values are
    positional; ``rows`` the value texts, ``None`` when they come from a query; ``updates``
    the columns ``ON DUPLICATE KEY UPDATE`` assigns.
    """

    columns: tuple[str, ...] | None
    rows: tuple[tuple[str, ...], ...] | None
    updates: tuple[str, ...]


def _insert_shape(lexed: _Lexed) -> _InsertShape | None:
    """Read an INSERT's columns and rows from its skeleton; ``None`` when it cannot."""
    bare = lexed.bare
    head = _INSERT_HEAD.match(bare)
    table = None if head is None else _QUALIFIED.match(bare, head.end())
    if table is None:
        return None
    closing = lexed.closing()
    pos = table.end()
    partition = _PARTITION.match(bare, pos)
    if partition is not None:
        pos = _skip(bare, closing[partition.end() - 1] + 1)
    columns: tuple[str, ...] | None = None
    if bare.startswith("(", pos) and not _SUBQUERY.match(bare, pos + 1):
        end = closing[pos]
        columns = _names(lexed, lexed.items(pos + 1, end))
        pos = _skip(bare, end + 1)
    source = _SOURCE.match(bare, pos)
    if source is None:
        return None
    flat = lexed.flat()
    duplicate = _DUPLICATE_KEY.search(flat, pos)
    tail = len(bare) if duplicate is None else duplicate.start()
    updates = () if duplicate is None else _names(lexed, lexed.items(duplicate.end(), len(bare)))
    word = source.group(1)
    if word == "SET":
        spans = lexed.items(source.end(), tail)
        values = tuple(_value(lexed, start, end) for start, end in spans)
        return _InsertShape(_names(lexed, spans), (values,), updates)
    if word not in ("VALUES", "VALUE"):
        return _InsertShape(columns, None, updates)
    rows = []
    pos = source.end()
    while True:
        pos = _skip(bare, pos)
        if not bare.startswith("(", pos):
            return None
        end = closing[pos]
        rows.append(tuple(lexed.code[a:b].strip() for a, b in lexed.items(pos + 1, end)))
        pos = _skip(bare, end + 1)
        if not bare.startswith(",", pos) or pos >= tail:
            break
        pos += 1
    return _InsertShape(columns, tuple(rows), updates)


def _skip(text: str, pos: int) -> int:
    """The first position at or after ``pos`` that is not white space."""
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _value(lexed: _Lexed, start: int, end: int) -> str:
    """The value of an assignment ``name = value`` spanning ``start:end``."""
    assigned = _ASSIGNED.match(lexed.code, start, end)
    return lexed.code[start if assigned is None else assigned.end() : end].strip()


def _names(lexed: _Lexed, spans: Iterable[tuple[int, int]]) -> tuple[str, ...]:
    """The (last part of the) name at the start of each span: a column list or assignments."""
    found = []
    for start, end in spans:
        text = lexed.code[start:end]
        assigned = _ASSIGNED.match(text)
        name = assigned.group(1) if assigned else text.strip().split(".")[-1].strip()
        found.append(_unquote(name.strip()).lower())
    return tuple(found)


def _update_assigns(lexed: _Lexed) -> tuple[str, ...]:
    """The columns an UPDATE's SET clause assigns, lower-cased, qualifiers dropped."""
    head = _UPDATE_HEAD.match(lexed.bare)
    if head is None:
        return ()
    flat = lexed.flat()
    clause = _SET_CLAUSE.search(flat, head.end())
    if clause is None:
        return ()
    end = _SET_END.search(flat, clause.end())
    return _names(lexed, lexed.items(clause.end(), len(flat) if end is None else end.start()))


# --- Mapping database names ------------------------------------------------------------------

_CHAIN: Final = re.compile(rf"(?<![\w$.`@])({_IDENT})((?:\s*\.\s*{_IDENT})+)")


def _map_databases(lexed: _Lexed, mapping: Mapping[str, str]) -> tuple[str, str | None]:
    """The text with every ``db.`` qualifier of a mapped database renamed; or a refusal.

    A name followed by a dot is a database when it names a mapped one (an alias or table
    spelled like a replicated database is read as the database, and the statement then
    fails on the target rather than writing elsewhere), and always when three parts follow
    (``db.table.column``): a three-part name into a database outside the mapping is refused.
    """
    pieces: list[str] = []
    last = 0
    for match in _CHAIN.finditer(lexed.code):
        first = _unquote(match.group(1))
        mapped = mapping.get(first)
        if mapped is None:
            if match.group(2).count(".") >= 2:
                return lexed.text, f"not replicated: names database {first!r}"
            continue
        pieces.append(lexed.text[last : match.start(1)])
        pieces.append(_quote(mapped) if match.group(1).startswith("`") else _bare_or_quoted(mapped))
        last = match.end(1)
    pieces.append(lexed.text[last:])
    return "".join(pieces), None


def _bare_or_quoted(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_$][0-9A-Za-z_$]*", name) else _quote(name)


# --- Per-connection state ----------------------------------------------------------------------

#: Session variables that change what a statement does, mirrored on the target session.
MIRRORED_VARIABLES: Final[tuple[str, ...]] = (
    "time_zone",
    "sql_mode",
    "foreign_key_checks",
    "unique_checks",
    "check_constraint_checks",
    "div_precision_increment",
    "default_week_format",
    "lc_time_names",
)
#: sql_mode flags that change how the text is lexed: auditsync reads MariaDB's default lexis.
_LEXICAL_MODES: Final = re.compile(r"NO_BACKSLASH_ESCAPES|ANSI_QUOTES|(?<![A-Z_])ANSI(?![A-Z_])")
_UTF8_CHARSETS: Final = frozenset({"utf8", "utf8mb3", "utf8mb4", "ascii", "default"})


@attrs.define
class _Session:
    """What the server knew about one connection, as far as the log tells.

    Stored as JSON on the target, so it survives the process. ``held`` counts the pending
    statements of the open transaction, ``seq`` numbers them; each savepoint remembers
    ``[name, seq, held]``. ``stack`` holds ``[query id, wrote, wrote replicated]`` of
    statements whose table events came but whose QUERY record has not: a QUERY with a
    higher id ran inside them.
    """

    database: str | None = None
    seen: str | None = None  # the plugin's database field, last time we looked
    autocommit: bool = True
    begun: bool = False  # BEGIN / START TRANSACTION in effect
    held: int = 0
    seq: int = 0
    savepoints: list[list[Any]] = attrs.Factory(list)
    taint: str | None = None
    taint_seq: int = 0
    lost: str | None = None
    locked: bool = False
    stack: list[list[int]] = attrs.Factory(list)
    popped: int = 0
    latest: int = 0  # highest query id of a write applied or held at the top level
    settings: dict[str, str] = attrs.Factory(dict)
    temporary: list[str] = attrs.Factory(list)

    @property
    def in_transaction(self) -> bool:
        return self.begun or not self.autocommit

    def dump(self) -> str:
        # Standard json: names may hold lone surrogates, which it escapes and orjson refuses.
        return json.dumps(attrs.asdict(self), ensure_ascii=True, separators=(",", ":"))

    @classmethod
    def load(cls, text: str | bytes) -> _Session:
        fields = {field.name for field in attrs.fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in fields})


@attrs.frozen(slots=True)
class TableInfo:
    """What the target says about a table, for the rules the text alone cannot decide.

    ``columns`` in order, lower-cased; ``auto_increment`` the column the server fills when
    it is omitted, NULL or 0; ``volatile_defaults`` the columns whose default is not a
    constant (``CURRENT_TIMESTAMP``, ``UUID()``); ``on_update`` the columns set to the
    current time on update; ``transactional`` whether a rollback undoes its writes.
    """

    columns: tuple[str, ...] = ()
    auto_increment: str | None = None
    volatile_defaults: frozenset[str] = frozenset()
    on_update: frozenset[str] = frozenset()
    transactional: bool = True
    view: bool = False


# --- The state machine -----------------------------------------------------------------------


@attrs.frozen(slots=True)
class _Run:
    """Apply a statement now, as a unit of its own (DDL commits by itself on MySQL)."""

    database: str | None
    text: str
    settings: Mapping[str, str]
    ddl: bool = False


@attrs.frozen(slots=True)
class _Hold:
    """Keep a statement of an open transaction on the target until the transaction ends."""

    seq: int
    database: str | None
    text: str
    settings: Mapping[str, str]


@attrs.frozen(slots=True)
class _Commit:
    """Apply the connection's held statements, in order, as one unit."""


@attrs.frozen(slots=True)
class _Discard:
    """Drop held statements from ``seq`` on: a rollback, or a rollback to a savepoint."""

    seq: int = 0
    outcome: str = "rolled back"
    transaction: bool = True


@attrs.frozen(slots=True)
class _Forget:
    """The connection ended: drop its state."""


_Action = _Run | _Hold | _Commit | _Discard | _Forget


@attrs.define
class _Step:
    """What one event asks of the target, and what it comes to."""

    outcome: str = "state"
    reason: str | None = None
    actions: list[_Action] = attrs.Factory(list)
    #: Why nothing was applied, when the outcome is "skipped".
    why: str | None = None

    def skip(self, why: str) -> None:
        self.outcome = "skipped"
        self.why = why


_TABLE_OPERATIONS: Final = frozenset({"READ", "WRITE", "CREATE", "DROP", "ALTER", "RENAME"})
_SYSTEM_DATABASES: Final = frozenset({"mysql", "information_schema", "performance_schema", "sys"})
#: Statements that commit the open transaction before they run (MySQL's "statements that
#: cause an implicit commit") even when they then fail, unless the parser rejected them.
_IMPLICIT_COMMIT: Final = (
    DDL_KINDS
    | DCL_KINDS
    | _words(
        """BEGIN LOCK_TABLES UNLOCK_TABLES ANALYZE_TABLE CHECK_TABLE OPTIMIZE_TABLE REPAIR_TABLE
        FLUSH RESET START_REPLICA STOP_REPLICA CHANGE_MASTER INSTALL_PLUGIN UNINSTALL_PLUGIN"""
    )
)
_PARSE_ERRORS: Final = frozenset({1064, 1149})
_DEADLOCKS: Final = frozenset({1213, 1614})
#: Statements a trigger or stored function cannot run: seen "inside" a writing statement,
#: they prove that statement's QUERY record never came, so its table events are stale.
_NEVER_NESTED: Final = frozenset({"BEGIN", "COMMIT", "ROLLBACK", "USE", "XA", "LOCK_TABLES"})
_DML: Final = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})
#: Statements that are not applied but may call stored functions, which may write.
_CALLING: Final = frozenset({"SELECT", "SET", "DO", "CALL"})
_LOADS: Final = frozenset({"LOAD_DATA", "LOAD_XML"})
_DATABASE_DDL: Final = frozenset({"CREATE_DATABASE", "ALTER_DATABASE", "DROP_DATABASE"})
_TEMPORARY: Final = re.compile(r"\s*(CREATE|DROP)\s+(?:OR\s+REPLACE\s+)?TEMPORARY\s")
_USE: Final = re.compile(rf"\s*USE\s+({_IDENT})", re.IGNORECASE)
_ROLLBACK_TO: Final = re.compile(
    rf"\s*ROLLBACK(?:\s+WORK)?\s+TO\s+(?:SAVEPOINT\s+)?({_IDENT})", re.IGNORECASE
)
_SAVEPOINT_NAME: Final = re.compile(rf"\s*(?:RELEASE\s+)?SAVEPOINT\s+({_IDENT})", re.IGNORECASE)
_AND_CHAIN: Final = re.compile(r"(?<![\w$])AND\s+CHAIN(?![\w$])")
_SET_HEAD: Final = re.compile(r"\s*SET\s+(?!(?:TRANSACTION|ROLE|PASSWORD|STATEMENT)(?![\w$]))")
_SET_ITEM: Final = re.compile(
    r"\s*(?:(?P<scope>GLOBAL|SESSION|LOCAL|PERSIST|PERSIST_ONLY)\s+)?"
    r"(?P<at>@@(?:(?P<atscope>GLOBAL|SESSION|LOCAL)\s*\.\s*)?|@)?"
    r"(?P<name>`(?:[^`]|``)*`|[0-9A-Za-z_$]+)\s*(?::=|=)\s*(?P<value>[\s\S]*?)\s*\Z",
    re.IGNORECASE,
)
_SET_CHARSET: Final = re.compile(
    r"\s*(?:NAMES|CHARACTER\s+SET|CHARSET)\s+(?P<value>'[^']*'|\"[^\"]*\"|[0-9A-Za-z_]+)",
    re.IGNORECASE,
)
_LITERAL: Final = re.compile(
    r"'[^'\\]*(?:(?:\\.|'')[^'\\]*)*'|\"[^\"\\]*(?:(?:\\.|\"\")[^\"\\]*)*\""
    r"|[-+]?[0-9]+(?:\.[0-9]+)?|[A-Za-z_][0-9A-Za-z_]*"
)
_CHARSET_VARIABLES: Final = frozenset(
    {"character_set_client", "character_set_connection", "collation_connection"}
)
_TRUE_WORDS: Final = frozenset({"1", "ON", "TRUE"})
_FALSE_WORDS: Final = frozenset({"0", "OFF", "FALSE"})


@attrs.frozen
class _Options:
    databases: Mapping[str, str] | None
    tables: tuple[str, ...] | None
    apply_ddl: bool
    autocommit: bool
    excluded: frozenset[str]
    query_log_limit: int


class _Machine:
    """Follows each connection as the server did; says what each event asks of the target.

    Pure but for ``info``, which asks the target about a table. It changes the session it
    is given; the sink stores it with the change.
    """

    def __init__(self, options: _Options, info: Callable[[str, str], TableInfo | None]):
        self.options = options
        self.info = info

    def step(self, session: _Session, event: AuditEvent) -> _Step:
        """What one QUERY or connection record does (table events go to :meth:`table_event`)."""
        operation = event.operation
        if operation == "QUERY":
            return self._query(session, event)
        if operation in ("CONNECT", "CHANGEUSER") and not event.retcode:
            # A new connection (the id may be reused after a restart) or a reset session.
            step = self._end_transaction(session, _Step(), _Discard())
            _reset(session, self.options.autocommit)
            session.database = session.seen = event.database or None
            return step
        if operation == "DISCONNECT":
            step = self._end_transaction(session, _Step(), _Discard())
            step.actions.append(_Forget())
            return step
        return _Step(outcome="skipped", why="failed or proxied connection")

    def table_event(self, session: _Session, event: AuditEvent) -> None:
        """Open the statement's entry: its table events come before its QUERY record.

        A QUERY record with a higher id that comes before it ran inside it (a trigger,
        a stored function, a procedure's statement); the entry says whether the statement
        wrote a table, which tells a trigger's statement from a procedure's, and whether
        it wrote a replicated one (the server opens a function's tables with its caller's).
        """
        query_id = event.query_id
        wrote = int(event.operation != "READ" and event.database not in _SYSTEM_DATABASES)
        replicated = int(
            event.operation == "WRITE" and self._replicated(event.database, event.object)
        )
        if query_id <= session.popped:
            return  # a redelivered record of a statement already closed
        for entry in session.stack:
            if entry[0] == query_id:
                entry[1] |= wrote
                entry[2] |= replicated
                return
        if not session.stack or query_id > session.stack[-1][0]:
            session.stack.append([query_id, wrote, replicated])

    # ---- statements

    def _query(self, session: _Session, event: AuditEvent) -> _Step:
        if event.database != (session.seen or ""):
            # The plugin's guess moved (COM_INIT_DB, or a USE it understood): follow it. A
            # USE it missed ("USE\ndb") leaves the field alone, and :meth:`_use` reads it.
            session.database = session.seen = event.database or None
        lexed = _Lexed.of(event.object)
        statement = event.statement or classify(event.object)
        kind = statement.kind
        own, outer = self._close(session, event.query_id)
        if outer is not None and outer[1]:
            if kind not in _NEVER_NESTED:
                return _Step(outcome="nested")
            session.stack.clear()
        temporary = _TEMPORARY.match(lexed.bare)
        commits = (
            kind in _IMPLICIT_COMMIT
            and temporary is None
            and (kind != "UNLOCK_TABLES" or session.locked)
        )
        if event.retcode:
            return self._failed(session, event.retcode, commits)
        step = _Step()
        if commits:
            self._end_transaction(session, step, _Commit())
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, session, lexed, step)
        elif temporary is not None:
            self._track_temporary(session, statement, temporary.group(1) == "CREATE")
            step.skip("temporary table")
        elif kind in _DML or kind in _LOADS or kind == "TRUNCATE":
            self._write(session, event, lexed, statement, step)
        elif kind in DDL_KINDS:
            self._ddl(session, event, lexed, statement, step)
        elif kind == "OTHER" and (own is None or own[1]):
            # Not understood, and no table events show that it only read: it may have written.
            self._refuse(session, step, "not understood: auditsync cannot tell what it does")
        if (
            own is not None
            and own[2]
            and step.reason is None
            and (kind in _CALLING or (kind in _DML and step.outcome == "skipped"))
        ):
            # Its triggers or functions wrote replicated tables, and skipped their own
            # statements as nested: without it, nothing would redo those writes.
            self._refuse(
                session,
                step,
                "stored function or trigger: wrote replicated tables inside a statement"
                " that is not replayed",
            )
        return step

    @staticmethod
    def _close(session: _Session, query_id: int) -> tuple[list[int] | None, list[int] | None]:
        """Close the statement's entry: (its entry, the entry of the one it ran inside)."""
        stack = session.stack
        own = None
        for index, entry in enumerate(stack):
            if entry[0] == query_id:
                own = entry
                del stack[index:]
                session.popped = max(session.popped, query_id)
                break
        outer = stack[-1] if stack and stack[-1][0] < query_id else None
        return own, outer

    def _failed(self, session: _Session, retcode: int, commits: bool) -> _Step:
        step = _Step(outcome="skipped", why="failed on the source")
        if retcode in _DEADLOCKS:
            # A deadlock rolls back the whole transaction and ends BEGIN (MariaDB 10.11).
            return self._end_transaction(session, step, _Discard())
        if commits and retcode not in _PARSE_ERRORS:
            self._end_transaction(session, step, _Commit())
        return step

    def _end_transaction(self, session: _Session, step: _Step, end: _Commit | _Discard) -> _Step:
        """Commit or roll back the open transaction, if it holds anything."""
        if session.held:
            if isinstance(end, _Commit) and session.taint is not None:
                end = _Discard(outcome="refused")
                self._note(
                    step,
                    f"transaction refused: it holds a statement not replayed ({session.taint})",
                )
            else:
                step.outcome = "committed" if isinstance(end, _Commit) else "rolled back"
            step.actions.append(end)
        session.begun = False
        session.held = 0
        session.savepoints = []
        session.taint = None
        return step

    @staticmethod
    def _note(step: _Step, reason: str) -> None:
        step.reason = reason if step.reason is None else f"{step.reason}; {reason}"

    def _refuse(self, session: _Session, step: _Step, reason: str) -> None:
        """Refuse the event; in a transaction, the whole transaction (applying part diverges)."""
        if session.in_transaction and session.taint is None:
            session.taint = reason
            session.taint_seq = session.seq
            session.held += 1  # a placeholder, so that its COMMIT is refused too
            session.seq += 1
        self._note(step, reason)

    # ---- transaction control and session settings, by kind

    def _use(self, session: _Session, lexed: _Lexed, step: _Step) -> None:
        match = _USE.match(lexed.code)
        if match is not None:
            session.database = _unquote(match.group(1))

    def _begin(self, session: _Session, lexed: _Lexed, step: _Step) -> None:
        session.begun = True  # the implicit commit before it is done already

    def _commit(self, session: _Session, lexed: _Lexed, step: _Step) -> None:
        self._end_transaction(session, step, _Commit())
        session.begun = _AND_CHAIN.search(lexed.bare) is not None

    def _rollback(self, session: _Session, lexed: _Lexed, step: _Step) -> None:
        target = _ROLLBACK_TO.match(lexed.code)
        if target is None:
            self._end_transaction(session, step, _Discard())
            session.begun = _AND_CHAIN.search(lexed.bare) is not None
            return
        name = _unquote(target.group(1)).lower()
        for index, (saved, seq, held) in enumerate(session.savepoints):
            if saved == name:
                del session.savepoints[index + 1 :]
                step.actions.append(_Discard(seq, transaction=False))
                session.held = held
                if session.taint is not None and session.taint_seq >= seq:
                    session.taint = None  # what could not be replayed is undone
                return

    def _savepoint(self, session: _Session, lexed: _Lexed, step: _Step) -> None:
        match = _SAVEPOINT_NAME.match(lexed.code)
        if match is not None and session.in_transaction:
            name = _unquote(match.group(1)).lower()
            kept = [entry for entry in session.savepoints if entry[0] != name]
            session.savepoints = [*kept, [name, session.seq, session.held]]

    def _release(self, session: _Session, lexed: _Lexed, step: _Step) -> None:
        match = _SAVEPOINT_NAME.match(lexed.code)
        names = [entry[0] for entry in session.savepoints]
        name = None if match is None else _unquote(match.group(1)).lower()
        if name in names:
            del session.savepoints[names.index(name) :]

    def _lock(self, session: _Session, lexed: _Lexed, step: _Step) -> None:
        session.locked = True

    def _unlock(self, session: _Session, lexed: _Lexed, step: _Step) -> None:
        session.locked = False

    def _xa(self, session: _Session, lexed: _Lexed, step: _Step) -> None:
        session.lost = "XA transactions are not replayed"

    def _set(self, session: _Session, lexed: _Lexed, step: _Step) -> None:
        """Follow SET of autocommit, of the mirrored variables and of the character set."""
        head = _SET_HEAD.match(lexed.bare)
        if head is None:
            return
        scope = "SESSION"
        for first, last in lexed.items(head.end(), len(lexed.bare)):
            text = lexed.text[first:last]
            charset = _SET_CHARSET.match(text)
            item = None if charset else _SET_ITEM.match(text)
            if charset is not None:
                self._charset(session, charset.group("value"))
            if item is None:
                continue
            scope = (item.group("scope") or scope).upper()
            at = item.group("at") or ""
            if at == "@":
                continue  # a user variable: statements that read one are refused
            effective = (item.group("atscope") or "SESSION").upper() if at else scope
            if effective not in ("SESSION", "LOCAL"):
                continue  # a global changes later sessions' defaults: see docs/replay.md
            name = _unquote(item.group("name")).lower()
            value = item.group("value")
            literal = value if _LITERAL.fullmatch(value) else None
            if name == "autocommit":
                self._autocommit(session, step, literal)
            elif name in MIRRORED_VARIABLES:
                if literal is None:
                    session.lost = f"SET {name} to an expression auditsync cannot evaluate"
                elif literal.upper() == "DEFAULT":
                    session.settings.pop(name, None)
                else:
                    session.settings[name] = literal
            elif name in _CHARSET_VARIABLES:
                self._charset(session, (literal or "?").split("_")[0])

    @staticmethod
    def _charset(session: _Session, value: str) -> None:
        if value.strip("'\"").lower() not in _UTF8_CHARSETS:
            session.lost = f"character set {value}: auditsync replays UTF-8 text only"

    def _autocommit(self, session: _Session, step: _Step, literal: str | None) -> None:
        word = (literal or "").strip("'\"").upper()
        if word == "DEFAULT":
            value = self.options.autocommit
        elif word in _TRUE_WORDS or word in _FALSE_WORDS:
            value = word in _TRUE_WORDS
        else:
            session.lost = "SET autocommit to a value auditsync cannot read"
            return
        if value and not session.autocommit:
            self._end_transaction(session, step, _Commit())  # 0 -> 1 commits, 1 -> 1 does not
        session.autocommit = value

    def _track_temporary(self, session: _Session, statement: Statement, created: bool) -> None:
        for name in statement.writes:
            place = self._place(session, name)
            key = None if place is None else ".".join(place)
            if key is not None and created:
                session.temporary.append(key)
            elif key in session.temporary:
                session.temporary.remove(key)

    # ---- writes

    def _place(self, session: _Session, name: str) -> tuple[str, str] | None:
        """``db.table`` or ``table`` of the current database, as (database, table)."""
        database, dot, table = name.partition(".")
        if dot:
            return database, table
        return None if session.database is None else (session.database, name)

    def _replicated(self, database: str, table: str | None = None) -> bool:
        options = self.options
        if database in options.excluded:
            return False
        if options.databases is not None and database not in options.databases:
            return False
        if table is None or options.tables is None:
            return True
        name = f"{database}.{table}"
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in options.tables)

    def _mapped(self, database: str) -> str:
        databases = self.options.databases
        return database if databases is None else databases[database]

    def _resolve(
        self, session: _Session, lexed: _Lexed, statement: Statement, step: _Step
    ) -> tuple[str | None, str, list[tuple[str, str]]] | None:
        """Where a write goes on the target, and its text there; ``None`` if not applied.

        Not replicated (no table it writes is) is a skip; writing or reading some table
        that is not replicated, or a temporary one, is a refusal: applying it would read
        or write what the target does not mirror.
        """
        current = session.database
        placed = [self._place(session, name) for name in statement.writes]
        written = [place for place in placed if place is not None]
        if len(written) != len(placed):
            self._refuse(session, step, "connection state unknown: no current database")
            return None
        if not written and statement.kind not in DDL_KINDS:
            self._refuse(session, step, "not understood: no table found in it")
            return None
        temporary = [place for place in written if ".".join(place) in session.temporary]
        ours = [place for place in written if self._replicated(*place)]
        if not written:  # routines, triggers, events: defined in the current database
            if current is None or not self._replicated(current):
                step.skip("not replicated")
                return None
        elif len(temporary) == len(written) or not ours:
            step.skip("temporary table" if temporary else "not replicated")
            return None
        elif len(ours) != len(written) or temporary:
            odd = next(place for place in written if place not in ours or place in temporary)
            self._refuse(session, step, f"not replicated: also writes {'.'.join(odd)}")
            return None
        for name in statement.reads:
            place = self._place(session, name)
            if place is None or ".".join(place) in session.temporary:
                self._refuse(session, step, f"temporary table: reads {name}")
                return None
            if not self._replicated(*place):
                self._refuse(session, step, f"not replicated: reads {'.'.join(place)}")
                return None
        text = lexed.text
        if self.options.databases is not None:
            text, refusal = _map_databases(lexed, self.options.databases)
            if refusal is not None:
                self._refuse(session, step, refusal)
                return None
        home = current if current is not None and self._replicated(current) else written[0][0]
        return self._mapped(home), text, [(self._mapped(db), table) for db, table in ours]

    def _write(
        self, session: _Session, event: AuditEvent, lexed: _Lexed, statement: Statement, step: _Step
    ) -> None:
        resolved = self._resolve(session, lexed, statement, step)
        if resolved is None:
            return
        database, text, tables = resolved
        reason = self._unsafe(session, event, lexed, statement, tables)
        if reason is not None:
            self._refuse(session, step, reason)
            return
        settings = dict(session.settings)
        if statement.kind in DDL_KINDS:  # DDL and TRUNCATE commit by themselves
            step.actions.append(_Run(database, text, settings, ddl=True))
            step.outcome = "applied"
        elif session.in_transaction:
            if session.taint is not None:
                self._note(
                    step,
                    f"transaction refused: it holds a statement not replayed ({session.taint})",
                )
                return
            step.actions.append(_Hold(session.seq, database, text, settings))
            session.seq += 1
            session.held += 1
            step.outcome = "held"
        else:
            step.actions.append(_Run(database, text, settings))
            step.outcome = "applied"
        session.latest = max(session.latest, event.query_id)

    def _unsafe(
        self,
        session: _Session,
        event: AuditEvent,
        lexed: _Lexed,
        statement: Statement,
        tables: list[tuple[str, str]],
    ) -> str | None:
        """Every rule, the event's and the target's included; the first one broken."""
        if session.lost is not None:
            return f"connection state unknown: {session.lost}"
        if event.truncated or event.retcode is None:
            return "truncated: the server logged part of the statement"
        limit = self.options.query_log_limit
        if limit and _escaped_length(event.object) >= limit - 1:
            # The server cuts at the limit without a mark; one byte less where an escape
            # pair would have been split.
            return f"truncated: as long as server_audit_query_log_limit ({limit} bytes)"
        mode = session.settings.get("sql_mode", "").upper()
        if _LEXICAL_MODES.search(mode):
            return f"sql_mode: {mode} changes how the text reads"
        reason = _unsafe(lexed, statement)
        if reason is not None:
            return reason
        if statement.kind not in _DML:
            return None
        if event.query_id < session.latest:
            return (
                "nested order: statements it ran (triggers, stored functions) were applied"
                " on their own; log TABLE events so that auditsync can tell"
            )
        return self._table_rules(session, lexed, statement.kind, tables)

    def _table_rules(
        self, session: _Session, lexed: _Lexed, kind: str, tables: list[tuple[str, str]]
    ) -> str | None:
        """The rules that need the target's view of the tables written."""
        shape = _insert_shape(lexed) if kind in ("INSERT", "REPLACE") else None
        assigned = set(_update_assigns(lexed)) if kind == "UPDATE" else set()
        for database, table in tables:
            info = self.info(database, table)
            if info is None:
                continue  # the target lacks it: applying fails, and says so
            if info.view:
                return f"view: writes through {table}, whose base table auditsync cannot see"
            if session.in_transaction and not info.transactional:
                return f"non-transactional table: {table} keeps what a rollback undoes"
            reason = None
            if kind in ("INSERT", "REPLACE"):
                reason = _insert_rules(shape, info, table)
            elif kind == "UPDATE" and not info.on_update <= assigned:
                name = min(info.on_update - assigned)
                reason = f"column default: {table}.{name} is set to the current time on update"
            if reason is not None:
                return reason
        return None

    def _ddl(
        self, session: _Session, event: AuditEvent, lexed: _Lexed, statement: Statement, step: _Step
    ) -> None:
        if statement.kind == "DROP_TABLE":  # DROP TABLE of a temporary table, no TEMPORARY
            self._track_temporary(session, statement, created=False)
        if statement.kind in _DATABASE_DDL:
            step.skip("database DDL")  # create, alter and drop target databases yourself
        elif self.options.apply_ddl:
            self._write(session, event, lexed, statement, step)
        else:
            step.skip("DDL (apply_ddl=False)")
            logger.info("DDL not applied (apply_ddl=False): %.200s", event.object)


_ESCAPED: Final = re.compile(r"[\b\t\n\f\r'\\]")


def _escaped_length(text: str) -> int:
    """The statement's length in the log, in bytes: the plugin escapes seven characters."""
    return len(text.encode("utf-8", "surrogateescape")) + len(_ESCAPED.findall(text))


def _insert_rules(shape: _InsertShape | None, info: TableInfo, table: str) -> str | None:
    """Auto-increment and column defaults: an INSERT must give those columns constants."""
    column = info.auto_increment
    if column is None and not info.volatile_defaults and not info.on_update:
        return None
    if shape is None:
        return f"not understood: cannot read the columns of an INSERT into {table}"
    updated = set(shape.updates)
    if shape.updates and not info.on_update <= updated:
        name = min(info.on_update - updated)
        return f"column default: {table}.{name} is set to the current time on update"
    given = shape.columns if shape.columns is not None else info.columns
    for name in sorted(info.volatile_defaults):
        index = given.index(name) if name in given else -1
        rows = shape.rows or ()
        if index < 0 or any(index < len(row) and row[index].upper() == "DEFAULT" for row in rows):
            return f"column default: {table}.{name} is left to a default that is not constant"
    if column is None:
        return None
    if column not in given:
        return f"auto-increment: omits {table}.{column}, whose value the server chose"
    if shape.rows is None:
        return f"auto-increment: {table}.{column} comes from a query and may be generated"
    index = given.index(column)
    for row in shape.rows:
        value = row[index] if index < len(row) else ""
        if not _INTEGER.fullmatch(value) or int(value.replace(" ", "")) == 0:
            shown = value if len(value) <= 40 else value[:37] + "..."
            return f"auto-increment: {table}.{column} = {shown} lets the server choose"
    return None


def _reset(session: _Session, autocommit: bool) -> None:
    fresh = _Session(autocommit=autocommit)
    for field in attrs.fields(_Session):
        setattr(session, field.name, getattr(fresh, field.name))


_HANDLERS: Final[dict[str, Callable[[_Machine, _Session, _Lexed, _Step], None]]] = {
    "USE": _Machine._use,
    "BEGIN": _Machine._begin,
    "COMMIT": _Machine._commit,
    "ROLLBACK": _Machine._rollback,
    "SAVEPOINT": _Machine._savepoint,
    "RELEASE_SAVEPOINT": _Machine._release,
    "LOCK_TABLES": _Machine._lock,
    "UNLOCK_TABLES": _Machine._unlock,
    "XA": _Machine._xa,
    "SET": _Machine._set,
}


# --- Targets: how the sink speaks to a database ------------------------------------------------

_STATE = "auditsync_replay_state"
_PENDING = "auditsync_replay_pending"
_APPLIED = "auditsync_replay_applied"

#: MySQL errors a retry or an operator can fix: connections, locks, read-only mode, access,
#: resources. Any other error of a replayed statement is the statement's: it would fail again.
_MYSQL_TRANSIENT: Final = frozenset(
    {
        *range(1040, 1046),  # connections, memory, handshake, access denied
        1049,  # unknown database: the mapping names one not created yet
        1053, 1077, 1080, 1081, 1129, 1130, 1135, 1142, 1143, 1152, 1153, 1154, 1155, 1156,
        1157, 1158, 1159, 1160, 1161, 1180, 1181, 1203, 1205, 1213, 1223, 1226, 1290, 1317,
        1614, 1615, 1792, 1836, 1927, 1969, 3024, 4031,
    }
)  # fmt: skip
_TRANSACTIONAL_ENGINES: Final = frozenset({"innodb", "xtradb", "rocksdb", "tokudb", "ndbcluster"})
_SQLITE_TRANSIENT: Final = ("locked", "busy", "disk i/o", "unable to open", "interrupted")
_UNKNOWN: Final = "\x00unknown"  # the target session's database before the first USE


class Target:
    """How :class:`ReplaySink` speaks to one kind of target database.

    Subclass it for a database other than MySQL/MariaDB and SQLite. ``paramstyle`` is the
    DB-API module's (``qmark`` or ``format``); the bookkeeping statements use it, while
    replayed statements are executed without parameters, as the source ran them.
    """

    default_schema = ""
    #: Whether DDL is transactional (SQLite) or commits by itself (MySQL).
    transactional_ddl = False
    #: Appended to the SELECT of a connection's state, to serialise concurrent sinks.
    lock_rows = ""

    def __init__(self, paramstyle: str = "format"):
        if paramstyle not in ("qmark", "format", "pyformat"):
            raise ValueError(f"unsupported paramstyle {paramstyle!r}: use qmark or format")
        self.mark = "?" if paramstyle == "qmark" else "%s"

    @staticmethod
    def for_connection(connection: Any) -> Target:
        """The target for a DB-API connection, told by the module that made it."""
        package = type(connection).__module__.split(".")[0]
        if package == "sqlite3":
            return SQLiteTarget()
        if package in ("pymysql", "MySQLdb", "mysql", "mariadb"):
            module = sys.modules.get(package)
            return MySQLTarget(getattr(module, "paramstyle", "format"))
        raise TypeError(
            f"cannot tell what database a {type(connection).__name__} speaks to:"
            " pass target=MySQLTarget() or a Target subclass"
        )

    def check(self, databases: Mapping[str, str] | None) -> None:
        """Refuse a database mapping this target cannot follow."""

    def quote(self, name: str) -> str:
        raise NotImplementedError

    def table(self, schema: str, name: str) -> str:
        return f"{self.quote(schema)}.{self.quote(name)}"

    def create(self, schema: str) -> list[str]:
        """The statements that make the bookkeeping tables, if they are missing."""
        raise NotImplementedError

    def begin(self, connection: Any, cursor: Any) -> None:
        cursor.execute("BEGIN")

    def use(self, cursor: Any, database: str) -> None:
        raise NotImplementedError

    def set_variable(self, cursor: Any, name: str, value: str | None) -> None:
        """Set a mirrored session variable (``None``: back to the server's default)."""

    def statement(self, text: str) -> str | bytes:
        """What to hand the driver: text, or bytes where the text holds non-UTF-8 bytes."""
        return text

    def table_info(self, cursor: Any, database: str, table: str) -> TableInfo | None:
        return None

    def permanent(self, error: BaseException) -> bool:
        """Whether a replayed statement's error would come again on every retry."""
        return False


class MySQLTarget(Target):
    """MySQL and MariaDB, through pymysql, mysqlclient, mysql-connector or MariaDB's own.

    The bookkeeping tables live in their own database (``auditsync_replay`` unless told),
    InnoDB, so they commit with the change. DDL commits by itself: the sink commits what
    came before it, runs it, and records it at once.
    """

    default_schema = "auditsync_replay"
    lock_rows = " FOR UPDATE"

    def quote(self, name: str) -> str:
        return _quote(name)

    def create(self, schema: str) -> list[str]:
        binary = "VARBINARY(255) NOT NULL"
        key = "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"
        ascii_text = "CHARACTER SET ascii COLLATE ascii_bin NOT NULL"
        return [
            f"CREATE DATABASE IF NOT EXISTS {self.quote(schema)}",
            f"CREATE TABLE IF NOT EXISTS {self.table(schema, _STATE)} ("
            f" serverhost {binary}, connection_id BIGINT UNSIGNED NOT NULL,"
            f" session MEDIUMTEXT {ascii_text}, updated_at VARCHAR(40) {ascii_text},"
            " PRIMARY KEY (serverhost, connection_id)) ENGINE=InnoDB",
            f"CREATE TABLE IF NOT EXISTS {self.table(schema, _PENDING)} ("
            f" serverhost {binary}, connection_id BIGINT UNSIGNED NOT NULL,"
            f" seq BIGINT UNSIGNED NOT NULL, event_key {key}, target_db VARBINARY(255),"
            f" settings TEXT {ascii_text}, statement LONGBLOB NOT NULL,"
            " PRIMARY KEY (serverhost, connection_id, seq)) ENGINE=InnoDB",
            f"CREATE TABLE IF NOT EXISTS {self.table(schema, _APPLIED)} ("
            f" event_key {key}, serverhost {binary}, connection_id BIGINT UNSIGNED NOT NULL,"
            f" outcome VARCHAR(16) {ascii_text}, reason TEXT CHARACTER SET utf8mb4,"
            f" event_time VARCHAR(40) {ascii_text},"
            " PRIMARY KEY (event_key), KEY event_time (event_time)) ENGINE=InnoDB",
        ]

    def begin(self, connection: Any, cursor: Any) -> None:
        cursor.execute("START TRANSACTION")

    def use(self, cursor: Any, database: str) -> None:
        cursor.execute(f"USE {self.quote(database)}")

    def set_variable(self, cursor: Any, name: str, value: str | None) -> None:
        # ``value`` is one literal token the source itself ran (see _LITERAL).
        cursor.execute(f"SET SESSION {name} = {'DEFAULT' if value is None else value}")

    def statement(self, text: str) -> str | bytes:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # bytes that were not UTF-8, kept as surrogates
            return text.encode("utf-8", "surrogateescape")
        return text

    def table_info(self, cursor: Any, database: str, table: str) -> TableInfo | None:
        cursor.execute(
            "SELECT TABLE_TYPE, ENGINE FROM information_schema.TABLES"
            f" WHERE TABLE_SCHEMA = {self.mark} AND TABLE_NAME = {self.mark}",
            (database, table),
        )
        found = cursor.fetchone()
        if found is None:
            return None
        kind, engine = found
        cursor.execute(
            "SELECT COLUMN_NAME, EXTRA, COLUMN_DEFAULT FROM information_schema.COLUMNS"
            f" WHERE TABLE_SCHEMA = {self.mark} AND TABLE_NAME = {self.mark}"
            " ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        columns, auto, volatile, on_update = [], None, set(), set()
        for name, extra, default in cursor.fetchall():
            name, extra = _text(name).lower(), _text(extra or "").lower()
            columns.append(name)
            if "auto_increment" in extra:
                auto = name
            if "on update" in extra:
                on_update.add(name)
            if default is not None and _volatile_default(_text(default)):
                volatile.add(name)
        view = _text(kind or "").upper() == "VIEW"
        return TableInfo(
            tuple(columns),
            auto,
            frozenset(volatile),
            frozenset(on_update),
            view or _text(engine or "").lower() in _TRANSACTIONAL_ENGINES,
            view,
        )

    def permanent(self, error: BaseException) -> bool:
        code = getattr(error, "errno", None)
        if not isinstance(code, int):
            args = getattr(error, "args", ())
            code = args[0] if args and isinstance(args[0], int) else None
        if code is None:
            return False
        return code not in _MYSQL_TRANSIENT and not 2000 <= code < 3000


class SQLiteTarget(Target):
    """SQLite, through :mod:`sqlite3`: a target for tests and small replicas.

    SQLite has one current database, ``main``, so every replicated database must map to
    it; it has no session variables to mirror. Its DDL is transactional.
    """

    default_schema = "main"
    transactional_ddl = True

    def __init__(self) -> None:
        super().__init__("qmark")

    def check(self, databases: Mapping[str, str] | None) -> None:
        if databases is None or any(value != "main" for value in databases.values()):
            raise ValueError("a SQLite target replays into main: map each database to 'main'")

    def quote(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def create(self, schema: str) -> list[str]:
        applied = self.table(schema, _APPLIED)
        return [
            f"CREATE TABLE IF NOT EXISTS {self.table(schema, _STATE)} ("
            " serverhost BLOB NOT NULL, connection_id INTEGER NOT NULL,"
            " session TEXT NOT NULL, updated_at TEXT NOT NULL,"
            " PRIMARY KEY (serverhost, connection_id))",
            f"CREATE TABLE IF NOT EXISTS {self.table(schema, _PENDING)} ("
            " serverhost BLOB NOT NULL, connection_id INTEGER NOT NULL, seq INTEGER NOT NULL,"
            " event_key TEXT NOT NULL, target_db BLOB, settings TEXT NOT NULL,"
            " statement BLOB NOT NULL, PRIMARY KEY (serverhost, connection_id, seq))",
            f"CREATE TABLE IF NOT EXISTS {applied} ("
            " event_key TEXT PRIMARY KEY NOT NULL, serverhost BLOB NOT NULL,"
            " connection_id INTEGER NOT NULL, outcome TEXT NOT NULL, reason TEXT,"
            " event_time TEXT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {self.table(schema, _APPLIED + '_time')}"
            f" ON {self.quote(_APPLIED)} (event_time)",
        ]

    def begin(self, connection: Any, cursor: Any) -> None:
        if not connection.in_transaction:
            cursor.execute("BEGIN")

    def use(self, cursor: Any, database: str) -> None:
        if database != "main":
            raise ValueError(f"a SQLite target cannot switch to database {database!r}")

    def table_info(self, cursor: Any, database: str, table: str) -> TableInfo | None:
        cursor.execute(
            f"SELECT type FROM {self.quote(database)}.sqlite_master WHERE name = ?", (table,)
        )
        found = cursor.fetchone()
        if found is None:
            return None
        cursor.execute(f"PRAGMA {self.quote(database)}.table_info({self.quote(table)})")
        rows = cursor.fetchall()
        keys = [row for row in rows if row[5]]
        # A lone INTEGER PRIMARY KEY is the rowid: omitted, NULL, the server picks it.
        auto = keys[0][1].lower() if len(keys) == 1 and keys[0][2].upper() == "INTEGER" else None
        volatile = {row[1].lower() for row in rows if row[4] and _volatile_default(row[4])}
        columns = tuple(row[1].lower() for row in rows)
        return TableInfo(columns, auto, frozenset(volatile), view=found[0] == "view")

    def permanent(self, error: BaseException) -> bool:
        import sqlite3

        if isinstance(error, sqlite3.IntegrityError | sqlite3.DataError):
            return True
        if isinstance(error, sqlite3.OperationalError):
            message = str(error).lower()
            return not any(word in message for word in _SQLITE_TRANSIENT)
        return False


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def _volatile_default(default: str) -> bool:
    """Whether a column default is computed when a row is written (a time, a random value)."""
    lexed = _Lexed.of(default)
    for match in _WORD_CALL.finditer(lexed.bare):
        word, called = match.group(1), match.group(2) is not None
        if (called and word in _VOLATILE_CALLS) or word in _VOLATILE_WORDS:
            return True
        if word == "RANDOM" and called:  # SQLite's
            return True
    return False


# --- The sink ---------------------------------------------------------------------------------


@attrs.define
class ReplayStats:
    """What a sink did, summed over its writes (a failed write counts nothing).

    ``applied`` counts statements run on the target, those of committed transactions
    included; ``held`` statements kept for a transaction still open; ``committed`` and
    ``rolled_back`` transactions; ``resumed`` transactions whose COMMIT came in a later
    write than their first statement; ``duplicates`` redelivered events recognised by key.
    ``refused`` and ``skipped`` count events by reason (the part before the colon).
    """

    events: int = 0
    applied: int = 0
    held: int = 0
    committed: int = 0
    rolled_back: int = 0
    resumed: int = 0
    duplicates: int = 0
    nested: int = 0
    refused: Counter[str] = attrs.Factory(Counter)
    skipped: Counter[str] = attrs.Factory(Counter)

    def add(self, other: ReplayStats) -> None:
        for field in attrs.fields(ReplayStats):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            if isinstance(mine, Counter):
                mine.update(theirs)
            else:
                setattr(self, field.name, mine + theirs)

    def summary(self) -> str:
        refused = ", ".join(f"{n} {why}" for why, n in self.refused.most_common()) or "none"
        return (
            f"{self.events} events: {self.applied} statements applied, {self.held} held,"
            f" {self.committed} transactions committed ({self.resumed} resumed),"
            f" {self.rolled_back} rolled back, {self.nested} nested, {self.duplicates}"
            f" duplicates, {sum(self.skipped.values())} skipped; refused: {refused}"
        )


class ReplayRefused(Refused):
    """:class:`~auditsync.sinks.Refused` with each event's own reason in ``reasons`` (by key);
    ``reason`` names each distinct reason and how many events it refused."""

    def __init__(self, refusals: Sequence[tuple[AuditEvent, str]]):
        counts = Counter(reason for _, reason in refusals)
        if len(counts) == 1:
            summary = next(iter(counts))
        else:
            summary = "; ".join(f"{reason} ({n} event(s))" for reason, n in counts.items())
        reasons = {event.key: reason for event, reason in refusals}
        super().__init__([event for event, _ in refusals], summary, reasons)


def _code(reason: str) -> str:
    return reason.partition(":")[0]


def _event_time(event: AuditEvent) -> str:
    return event.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_Connection = tuple[bytes, int]


class _Work:
    """One write: a transaction on the target, the sessions it touched, the keys it records."""

    def __init__(self, sink: ReplaySink, cursor: Any):
        self.sink = sink
        self.cursor = cursor
        self.sessions: dict[_Connection, _Session] = {}
        self.stored: dict[_Connection, str | None] = {}
        self.times: dict[_Connection, str] = {}
        self.gone: set[_Connection] = set()
        self.known: dict[str, str | None] = {}
        self.records: list[tuple[Any, ...]] = []
        self.held: set[str] = set()
        self.stats = ReplayStats()

    def load_known(self, keys: Sequence[str]) -> None:
        """The keys of this batch handled before, with their refusal reasons."""
        sql = self.sink._sql
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            self.cursor.execute(sql.known(len(chunk)), chunk)
            for key, outcome, reason in self.cursor.fetchall():
                self.known[_text(key)] = _text(reason) if outcome == "refused" else None

    def session(self, event: AuditEvent) -> tuple[_Connection, _Session]:
        connection = (event.serverhost.encode("utf-8", "surrogateescape"), event.connection_id)
        self.times[connection] = _event_time(event)
        self.gone.discard(connection)
        if connection not in self.sessions:
            self.cursor.execute(self.sink._sql.load_session, connection)
            row = self.cursor.fetchone()
            stored = None if row is None else _text(row[0])
            self.stored[connection] = stored
            self.sessions[connection] = (
                _Session(autocommit=self.sink._autocommit)
                if stored is None
                else _Session.load(stored)
            )
        return connection, self.sessions[connection]

    def record(
        self, event: AuditEvent, connection: _Connection, outcome: str, reason: str | None
    ) -> None:
        self.known[event.key] = reason
        safe = None if reason is None else reason.encode("utf-8", "replace").decode("utf-8")
        self.records.append(
            (event.key, connection[0], connection[1], outcome, safe, _event_time(event))
        )

    def flush(self) -> None:
        """Write the sessions that changed and the keys recorded, inside the transaction."""
        sql = self.sink._sql
        cursor = self.cursor
        for connection, session in self.sessions.items():
            text = None if connection in self.gone else session.dump()
            if text == self.stored[connection]:
                continue
            if self.stored[connection] is not None:
                cursor.execute(sql.delete_session, connection)
            if text is not None:
                cursor.execute(sql.insert_session, (*connection, text, self.times[connection]))
            self.stored[connection] = text
        if self.records:
            cursor.executemany(sql.insert_record, self.records)
            self.records = []


class _Bookkeeping:
    """The bookkeeping statements, in the target's quoting and paramstyle."""

    def __init__(self, target: Target, schema: str):
        p = target.mark
        state = target.table(schema, _STATE)
        pending = target.table(schema, _PENDING)
        applied = target.table(schema, _APPLIED)
        where = f"serverhost = {p} AND connection_id = {p}"
        self.applied = applied
        self.load_session = f"SELECT session FROM {state} WHERE {where}{target.lock_rows}"
        self.delete_session = f"DELETE FROM {state} WHERE {where}"
        self.insert_session = (
            f"INSERT INTO {state} (serverhost, connection_id, session, updated_at)"
            f" VALUES ({p}, {p}, {p}, {p})"
        )
        self.insert_record = (
            f"INSERT INTO {applied}"
            " (event_key, serverhost, connection_id, outcome, reason, event_time)"
            f" VALUES ({p}, {p}, {p}, {p}, {p}, {p})"
        )
        self.hold = (
            f"INSERT INTO {pending}"
            " (serverhost, connection_id, seq, event_key, target_db, settings, statement)"
            f" VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})"
        )
        self.pending = (
            f"SELECT event_key, target_db, settings, statement FROM {pending}"
            f" WHERE {where} ORDER BY seq"
        )
        self.mark = (
            f"UPDATE {applied} SET outcome = {p} WHERE event_key IN"
            f" (SELECT event_key FROM {pending} WHERE {where} AND seq >= {p})"
        )
        self.drop = f"DELETE FROM {pending} WHERE {where} AND seq >= {p}"
        self.prune = f"DELETE FROM {applied} WHERE event_time < {p}"
        self._mark = p

    def known(self, count: int) -> str:
        marks = ", ".join([self._mark] * count)
        return f"SELECT event_key, outcome, reason FROM {self.applied} WHERE event_key IN ({marks})"


class ReplaySink:
    """A :class:`~auditsync.sinks.Sink` that applies the captured writes to a target database.

    ``connection`` is a DB-API 2 connection to the target, used by this sink alone and left
    open by :meth:`close`; or a function that opens one, which makes the connection the
    sink's: opened again after a write failed (a warm Lambda container outlives the
    database's idle timeout) and closed by :meth:`close`. ``target`` says how to speak to
    it, told from the connection's module when omitted.

    Successful INSERT, UPDATE, DELETE, REPLACE and TRUNCATE are applied, and DDL too with
    ``apply_ddl``; a transaction is applied whole at its COMMIT, or not at all.
    ``databases`` maps source databases to target ones and selects them (default: every
    database to itself, system databases aside); ``tables`` selects ``db.table`` names by
    glob. ``bookkeeping`` names the schema of the bookkeeping tables, which ``create``
    makes. ``order``: ``"arrival"`` keeps a batch's order, ``"timestamp"`` sorts it by time
    (stable), ``"auto"`` sorts Aurora batches only. ``autocommit`` is the source server's
    default for new sessions; ``query_log_limit`` its ``server_audit_query_log_limit``
    (0: none), since a statement that long may have been cut without a mark.

    What cannot be replayed faithfully is refused: :class:`ReplayRefused` names it after
    everything else of the batch was applied (see :func:`unsafe_reason` and docs/replay.md).
    An error of a replayed statement that a retry cannot fix refuses it too; any other
    error fails the whole write, which changed nothing, so that it can be retried.
    """

    def __init__(
        self,
        connection: Any,
        *,
        target: Target | None = None,
        databases: Mapping[str, str] | None = None,
        tables: str | Sequence[str] | None = None,
        apply_ddl: bool = False,
        bookkeeping: str | None = None,
        create: bool = True,
        order: Order = "auto",
        autocommit: bool = True,
        query_log_limit: int = 1024,
    ):
        if order not in ("auto", "arrival", "timestamp"):
            raise ValueError(f"order must be auto, arrival or timestamp, not {order!r}")
        owned = callable(connection) and not hasattr(connection, "cursor")
        self._connect: Callable[[], Any] | None = connection if owned else None
        self._connection: Any = None if owned else connection
        self._database = _UNKNOWN
        self._settings: dict[str, str] = {}
        self.target = target if target is not None else Target.for_connection(self.connection)
        self.target.check(databases)
        schema = bookkeeping or self.target.default_schema
        patterns = (
            (tables,) if isinstance(tables, str) else None if tables is None else tuple(tables)
        )
        options = _Options(
            databases=None if databases is None else dict(databases),
            tables=patterns,
            apply_ddl=apply_ddl,
            autocommit=autocommit,
            excluded=_SYSTEM_DATABASES | {schema},
            query_log_limit=query_log_limit,
        )
        self._machine = _Machine(options, self._table_info)
        self._sql = _Bookkeeping(self.target, schema)
        self._order: Order = order
        self._autocommit = autocommit
        self._tables: dict[tuple[str, str], TableInfo | None] = {}
        self._cursor: Any = None
        self._closed = False
        self.stats = ReplayStats()
        if create:
            self._create(schema)

    def _create(self, schema: str) -> None:
        connection = self.connection
        cursor = connection.cursor()
        try:
            for statement in self.target.create(schema):
                cursor.execute(statement)
            connection.commit()
        finally:
            cursor.close()

    @property
    def connection(self) -> Any:
        """The DB-API connection the sink applies through (opened now, if it is the sink's)."""
        if self._connection is None:
            assert self._connect is not None
            self._connection = self._connect()
            self._database = _UNKNOWN  # a new session: nothing is set in it yet
            self._settings = {}
        return self._connection

    def _drop_connection(self) -> None:
        """Close a connection of the sink's own, so that the next write opens a new one."""
        if self._connect is not None and self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(Exception):  # already broken: that is why it goes
                connection.close()

    def write(self, events: Sequence[AuditEvent]) -> None:
        """Apply a batch in one transaction with its bookkeeping; refuse what cannot be."""
        if self._closed:
            raise ValueError("write to a closed ReplaySink")
        ordered = self._ordered(events)
        connection = self.connection
        cursor = self._cursor = connection.cursor()
        self._tables.clear()  # the target's tables may have changed since the last write
        work = _Work(self, cursor)
        refusals: list[tuple[AuditEvent, str]] = []
        try:
            self.target.begin(connection, cursor)
            work.load_known([e.key for e in ordered if e.operation not in _TABLE_OPERATIONS])
            for event in ordered:
                work.stats.events += 1
                reason = self._handle(work, event)
                if reason is not None:
                    refusals.append((event, reason))
            work.flush()
            connection.commit()
        except BaseException:
            # The connection may be gone: the error that matters is the one raised.
            with contextlib.suppress(Exception):
                connection.rollback()
            with contextlib.suppress(Exception):
                cursor.close()
            self._cursor = None
            self._drop_connection()
            raise
        self._cursor = None
        cursor.close()
        self.stats.add(work.stats)
        if refusals:
            raise ReplayRefused(refusals)

    def _ordered(self, events: Sequence[AuditEvent]) -> list[AuditEvent]:
        """MariaDB writes one file in completion order: keep it. Aurora writes four: sort.

        Query ids are not used: they count statement *starts*, and a statement that waited
        for a lock starts before, and finishes after, the transaction it waited for.
        """
        if self._order == "timestamp" or (
            self._order == "auto" and any(event.dialect is Dialect.AURORA for event in events)
        ):
            return sorted(events, key=attrgetter("timestamp"))
        return list(events)

    def _handle(self, work: _Work, event: AuditEvent) -> str | None:
        """One event: its effect on its connection and on the target; its refusal, if any."""
        if event.operation in _TABLE_OPERATIONS:
            self._machine.table_event(work.session(event)[1], event)
            return None
        if event.key in work.known:
            work.stats.duplicates += 1
            return work.known[event.key]
        connection, session = work.session(event)
        step = self._machine.step(session, event)
        ddl = False
        for action in step.actions:
            failure = self._act(work, connection, event, action)
            if failure is not None:
                self._machine._note(step, failure)
            ddl = ddl or (isinstance(action, _Run) and action.ddl)
        if step.outcome == "nested":
            work.stats.nested += 1
        elif step.outcome == "skipped":
            work.stats.skipped[step.why or "not applied"] += 1
        if step.reason is not None:
            work.stats.refused[_code(step.reason)] += 1
        work.record(event, connection, "refused" if step.reason else step.outcome, step.reason)
        if ddl and not self.target.transactional_ddl:
            work.flush()  # record the DDL at once: it committed by itself
            self.connection.commit()
            self.target.begin(self.connection, work.cursor)
        return step.reason

    def _act(
        self, work: _Work, connection: _Connection, event: AuditEvent, action: _Action
    ) -> str | None:
        """Carry out one action; a reason when the target refused the statements."""
        cursor = work.cursor
        sql = self._sql
        stats = work.stats
        if isinstance(action, _Run):
            if action.ddl and not self.target.transactional_ddl:
                work.flush()  # what came before is durable before DDL commits it anyway
                self.connection.commit()
            failure = self._unit(
                [(action.database, action.settings, action.text)],
                savepoint=not (action.ddl and not self.target.transactional_ddl),
            )
            if action.ddl:
                self._tables.clear()
            if failure is None:
                stats.applied += 1
            return failure
        if isinstance(action, _Hold):
            database = (
                None
                if action.database is None
                else action.database.encode("utf-8", "surrogateescape")
            )
            settings = json.dumps(action.settings, ensure_ascii=True)
            text = action.text.encode("utf-8", "surrogateescape")
            cursor.execute(sql.hold, (*connection, action.seq, event.key, database, settings, text))
            work.held.add(event.key)
            stats.held += 1
            return None
        if isinstance(action, _Commit):
            cursor.execute(sql.pending, connection)
            rows = cursor.fetchall()
            units = [
                (
                    None if db is None else _text(db),
                    json.loads(_text(settings)),
                    _text(statement),
                )
                for _, db, settings, statement in rows
            ]
            failure = self._unit(units)
            self._end(work, connection, 0, "applied" if failure is None else "refused")
            if failure is None:
                stats.applied += len(units)
                stats.committed += 1
                stats.resumed += any(_text(key) not in work.held for key, *_ in rows)
                return None
            return f"transaction refused: {failure}"
        if isinstance(action, _Discard):
            self._end(work, connection, action.seq, action.outcome)
            stats.rolled_back += action.transaction and action.outcome == "rolled back"
            return None
        work.gone.add(connection)  # _Forget: its id may come again, for a new connection
        _reset(work.sessions[connection], self._autocommit)
        return None

    def _end(self, work: _Work, connection: _Connection, seq: int, outcome: str) -> None:
        """Mark held statements from ``seq`` on with what became of them, and drop them."""
        work.flush()  # so that statements held in this write are marked too
        work.cursor.execute(self._sql.mark, (outcome, *connection, seq))
        work.cursor.execute(self._sql.drop, (*connection, seq))

    def _unit(
        self,
        statements: Sequence[tuple[str | None, Mapping[str, str], str]],
        *,
        savepoint: bool = True,
    ) -> str | None:
        """Run statements as one unit: all, or (on a permanent error) none and the reason."""
        cursor = self._cursor
        if savepoint:
            cursor.execute("SAVEPOINT auditsync_unit")
        try:
            for database, settings, text in statements:
                self._prepare(cursor, database, settings)
                cursor.execute(self.target.statement(text))
        except Exception as error:
            if not self.target.permanent(error):
                raise
            if savepoint:
                cursor.execute("ROLLBACK TO SAVEPOINT auditsync_unit")
            return f"failed on target: {error}"
        if savepoint:
            cursor.execute("RELEASE SAVEPOINT auditsync_unit")
        return None

    def _prepare(self, cursor: Any, database: str | None, settings: Mapping[str, str]) -> None:
        """Put the target session where the source session was: database and variables."""
        if database is not None and database != self._database:
            self.target.use(cursor, database)
            self._database = database
        for name in MIRRORED_VARIABLES:
            wanted = settings.get(name)
            if self._settings.get(name) != wanted:
                self.target.set_variable(cursor, name, wanted)
                if wanted is None:
                    self._settings.pop(name, None)
                else:
                    self._settings[name] = wanted

    def _table_info(self, database: str, table: str) -> TableInfo | None:
        key = (database, table)
        if key not in self._tables:
            self._tables[key] = self.target.table_info(self._cursor, database, table)
        return self._tables[key]

    def prune(self, before: datetime) -> int:
        """Forget the keys of events older than ``before``; how many went.

        Only keys that can no longer be redelivered are safe to forget: older than the
        stream's retention (24 hours by default on Kinesis).
        """
        connection = self.connection
        cursor = connection.cursor()
        try:
            cursor.execute(self._sql.prune, (before.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),))
            count = int(cursor.rowcount)
            connection.commit()
        finally:
            cursor.close()
        return count

    def close(self) -> None:
        """Stop taking writes; close the connection if the sink opened it, not otherwise."""
        self._closed = True
        self._drop_connection()

    def __enter__(self) -> ReplaySink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
