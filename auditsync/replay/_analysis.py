"""What the text of a statement decides, and so what can be replayed from it.

The audit log holds the text of every statement, not the rows it changed. Replaying that
text elsewhere is faithful only when the text alone decides the effect: :func:`unsafe_reason`
reads a statement the way MySQL decides what is "unsafe for statement-based replication".
The rules that need the target's view of a table (auto-increment columns, defaults that are
not constant) read :class:`TableInfo`; the shape of an INSERT and the columns an UPDATE
assigns come from the text here too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

import attrs

from ..sql import Statement, classify
from ..sql._lexer import IDENT, Lexed, words
from ..sql._lexer import quote_name as quote
from ..sql._lexer import unquote_name as unquote
from ..sql._redact import MASK as _MASK
from ..sql._values import InsertShape, insert_shape, update_assigns
from ..transactions import LEXICAL_MODES, escaped_length

__all__ = [
    "LEXICAL_MODES",
    "InsertShape",
    "TableInfo",
    "escaped_length",
    "insert_rules",
    "insert_shape",
    "map_databases",
    "unsafe",
    "unsafe_reason",
    "update_assigns",
    "volatile_default",
]


# --- What cannot be replayed from the text alone --------------------------------------------

#: Functions whose value depends on the moment, the session, the server or chance. Written
#: with parentheses in the statement; ``NAME_CONST`` and user-defined functions are trusted.
_VOLATILE_CALLS: Final = frozenset(
    words(
        """NOW SYSDATE CURDATE CURTIME CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP LOCALTIME
        LOCALTIMESTAMP UTC_DATE UTC_TIME UTC_TIMESTAMP SYSTIMESTAMP RAND RANDOM_BYTES UUID
        UUID_SHORT SYS_GUID CONNECTION_ID LAST_INSERT_ID USER CURRENT_USER SESSION_USER SYSTEM_USER
        CURRENT_ROLE DATABASE SCHEMA FOUND_ROWS ROW_COUNT NEXTVAL LASTVAL SETVAL SLEEP BENCHMARK
        GET_LOCK RELEASE_LOCK RELEASE_ALL_LOCKS IS_FREE_LOCK IS_USED_LOCK MASTER_POS_WAIT
        MASTER_GTID_WAIT LOAD_FILE VERSION ENCRYPT"""
    )
)
#: The same without parentheses: SQL keywords that call a function.
_VOLATILE_WORDS: Final = frozenset(
    words(
        """CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP LOCALTIME LOCALTIMESTAMP UTC_DATE UTC_TIME
        UTC_TIMESTAMP CURRENT_USER CURRENT_ROLE"""
    )
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
_DEFINITIONS: Final = frozenset(
    words(
        """CREATE_PROCEDURE ALTER_PROCEDURE CREATE_FUNCTION ALTER_FUNCTION CREATE_PACKAGE
        CREATE_TRIGGER CREATE_EVENT ALTER_EVENT CREATE_VIEW ALTER_VIEW"""
    )
)


def unsafe_reason(query: str) -> str | None:
    """Why the text of a write cannot be replayed to the same effect, or ``None``.

    The text-only rules: a text cut short, non-deterministic functions, variables,
    prepared-statement placeholders, masked passwords, bytes lost on the way, several
    statements in one text, ``LOAD DATA``, and row order left to the engine (``LIMIT``,
    ``IGNORE`` or ``REPLACE`` with ``SELECT``, without ``ORDER BY``). :class:`ReplaySink`
    adds the rules that need the event, the connection or the target: the log limit,
    auto-increment values, column defaults, tables not replicated.
    """
    return unsafe(Lexed.of(query), classify(query))


def unsafe(lexed: Lexed, statement: Statement) -> str | None:
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

_INTEGER: Final = re.compile(r"[+-]?\s*[0-9]+")


# --- Mapping database names ------------------------------------------------------------------

_CHAIN: Final = re.compile(rf"(?<![\w$.`@])({IDENT})((?:\s*\.\s*{IDENT})+)")


def map_databases(lexed: Lexed, mapping: Mapping[str, str]) -> tuple[str, str | None]:
    """The text with every ``db.`` qualifier of a mapped database renamed; or a refusal.

    A name followed by a dot is a database when it names a mapped one (an alias or table
    spelled like a replicated database is read as the database, and the statement then
    fails on the target rather than writing elsewhere), and always when three parts follow
    (``db.table.column``): a three-part name into a database outside the mapping is refused.
    """
    pieces: list[str] = []
    last = 0
    for match in _CHAIN.finditer(lexed.code):
        first = unquote(match.group(1))
        mapped = mapping.get(first)
        if mapped is None:
            if match.group(2).count(".") >= 2:
                return lexed.text, f"not replicated: names database {first!r}"
            continue
        pieces.append(lexed.text[last : match.start(1)])
        pieces.append(quote(mapped) if match.group(1).startswith("`") else _bare_or_quoted(mapped))
        last = match.end(1)
    pieces.append(lexed.text[last:])
    return "".join(pieces), None


def _bare_or_quoted(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_$][0-9A-Za-z_$]*", name) else quote(name)


# --- The rules that need the target's view of a table ---------------------------------------


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


def insert_rules(shape: InsertShape | None, info: TableInfo, table: str) -> str | None:
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


def volatile_default(default: str) -> bool:
    """Whether a column default is computed when a row is written (a time, a random value)."""
    lexed = Lexed.of(default)
    for match in _WORD_CALL.finditer(lexed.bare):
        word, called = match.group(1), match.group(2) is not None
        if (called and word in _VOLATILE_CALLS) or word in _VOLATILE_WORDS:
            return True
        if word == "RANDOM" and called:  # SQLite's
            return True
    return False
