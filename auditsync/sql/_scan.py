"""Reading names and lists of tables from a statement's skeleton.

The patterns below run on the upper-cased skeleton (:func:`._lexer.skeleton`): keywords
are upper case, string literals runs of quotes, quoted names runs of backquotes, comments
spaces. Whatever they find is read back from the query at the same position. A
:class:`Scan` is one classification under way; :mod:`._classify` drives it, one grammar
rule per first word.
"""

from __future__ import annotations

import re
import string
from typing import Final, NamedTuple

from ._lexer import NAME_PART, PARENS, RESERVED, SUBQUERY_START, unquote_name, words

__all__ = [
    "COMMA",
    "OPEN_PAREN",
    "PART",
    "Scan",
    "Table",
    "TooComplex",
    "find_keyword",
    "next_word",
    "record_list",
    "scan_table_clauses",
    "skip",
    "table_references",
]

#: One part of a name in the skeleton: a run of backquotes (quoted) or a bare word.
PART = r"(?:`+|[\w$]+)"
#: A bare word right before a quote is a literal's prefix (``N'..'``, ``_utf8mb4'..'``), no
#: name: ``FROM N'y'`` reads no table, as redaction, which masks the literal whole, agrees.
_NAME: Final = re.compile(rf"\s*(?P<first>`+|[\w$]++(?!'))(?:\s*\.\s*{PART})?")
_SKELETON_PART: Final = re.compile(PART)
_NEXT_WORD: Final = re.compile(r"\s*([A-Z_][A-Z0-9_]*)")
OPEN_PAREN: Final = re.compile(r"\s*(?:LATERAL\s*)?\(")
COMMA: Final = re.compile(r"\s*,")
_ALIAS: Final = re.compile(rf"(?:\s+AS(?![\w$]))?\s*(?P<alias>{PART})")
_PARTITION: Final = re.compile(r"\s*PARTITION\s*\([^()]*\)")
_INDEX_HINTS: Final = re.compile(
    r"(?:\s*(?:USE|IGNORE|FORCE)\s+(?:INDEX|KEY)"
    r"(?:\s+FOR\s+(?:JOIN|ORDER\s+BY|GROUP\s+BY))?\s*\([^()]*\))+"
)
_AFTER_TABLE: Final = re.compile(
    r"\s*(?:(?P<close>\))|(?P<on>ON)(?![\w$])|(?P<using>USING)(?![\w$])|,"
    r"|(?:NATURAL\s+)?(?:(?:LEFT|RIGHT|INNER|CROSS|FULL)\s+)?(?:OUTER\s+)?"
    r"(?:STRAIGHT_)?JOIN(?![\w$]))"
)
# Where a join condition or an assignment ends, at its own depth of parentheses.
_CONDITION_END: Final = re.compile(
    r"[(),]|(?<![\w$@.])(?:(?:NATURAL|LEFT|RIGHT|INNER|CROSS)(?![\w$])(?!\s*\()"
    r"|(?:STRAIGHT_JOIN|JOIN|WHERE|GROUP|HAVING|ORDER|LIMIT|WINDOW|UNION|EXCEPT|INTERSECT"
    r"|INTO|FOR|LOCK|SET|RETURNING|PROCEDURE|ON|USING)(?![\w$]))"
)
_COMMON_TABLE_NAME: Final = re.compile(
    rf"(?:WITH(?<![\w$@.]WITH)(?:\s+RECURSIVE)?|,)\s*({PART})\s*(?:\([^()]*\)\s*)?AS\s*\("
)
_FIRST_OR_LAST_AFTER: Final = re.compile(r"\s+(?:FIRST|LAST)\s+(?:RESPECT|IGNORE|OVER)(?![\w$])")
_SELECT_OPTIONS_BEFORE: Final = re.compile(
    r"(?<![\w$@.])SELECT(?:\s+(?:ALL|DISTINCT|DISTINCTROW|HIGH_PRIORITY|SQL_\w+))*\s+\Z"
)
# ``EXTRACT(YEAR FROM d)`` and its kin hold a FROM that opens no list of tables.
_FUNCTIONS_WITH_FROM: Final = words("EXTRACT TRIM SUBSTR SUBSTRING MID OVERLAY")
# How far back, and over how many parentheses, to look for such a call from its FROM.
_FUNCTION_REACH = 256
_FUNCTION_PARENTHESES = 32
_SET_OPERATION_TABLE: Final = re.compile(
    r"(?:UNION|EXCEPT|INTERSECT)(?<![\w$@.]UNION)(?<![\w$@.]EXCEPT)(?<![\w$@.]INTERSECT)"
    r"(?:\s+(?:ALL|DISTINCT))?[\s(]*TABLE(?![\w$])"
)
# What an unquoted name may not be: 12, 1e5 (and 1e, as the second pass of 1e+5 sees it),
# 0x1F, 0b101. MySQL lets names start with digits, but not be numbers.
_NUMERIC: Final = re.compile(r"[0-9]+(?:E[0-9]*)?|0X[0-9A-F]*|0B[01]*")
_NAME_CHARACTERS: Final = frozenset(string.ascii_letters + string.digits + "_$@.")
# The steps a classification may take per character of text before it says OTHER. Real
# statements take a fraction of one; only hostile nesting comes near, and it must not
# make the work grow with the square of the length.
_STEPS_PER_CHARACTER = 2
_STEPS_AT_LEAST = 1000


class TooComplex(Exception):
    """The statement needs more steps than its length allows."""


class Table(NamedTuple):
    name: str
    parts: tuple[str, ...]
    alias: str | None


class Scan:
    """A classification under way: the query, its skeleton, and the tables found so far."""

    __slots__ = (
        "not_clauses",
        "query",
        "reads_everywhere",
        "sql",
        "steps_left",
        "tables_at",
        "written",
    )

    def __init__(self, query: str, sql: str) -> None:
        self.query = query
        self.sql = sql
        self.tables_at: dict[int, Table] = {}
        self.written: set[int] = set()
        self.not_clauses: set[int] = set()  # FROM and JOIN keywords already dealt with
        self.reads_everywhere = False
        self.steps_left = _STEPS_PER_CHARACTER * len(sql) + _STEPS_AT_LEAST

    def step(self) -> None:
        """Count a step; past the allowance, give up on the statement."""
        self.steps_left -= 1
        if self.steps_left < 0:
            raise TooComplex

    def after_parens(self, open_at: int) -> int:
        """Where the parenthesis at *open_at* is closed (the position after it), or -1."""
        sql = self.sql
        depth = 0
        for m in PARENS.finditer(sql, open_at):
            self.step()
            if sql[m.start()] == "(":
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    return m.end()
        return -1

    def expression_end(self, pos: int, ends: re.Pattern[str]) -> int:
        """Where the expression at *pos* ends: a comma, ``)`` or stop word of its depth."""
        sql = self.sql
        depth = 0
        for m in ends.finditer(sql, pos):
            self.step()
            token = sql[m.start()]
            if token == "(":
                depth += 1
            elif token == ")":
                if depth == 0:
                    return m.start()
                depth -= 1
            elif depth == 0:
                return m.start()
        return len(sql)

    def parts(self, start: int, end: int) -> tuple[str, ...]:
        """The parts of the name between *start* and *end*, as written, quotes undone."""
        parts: list[str] = []
        for m in _SKELETON_PART.finditer(self.sql, start, end):
            if self.sql[m.start()] == "`":
                quoted = NAME_PART.findall(self.query, m.start(), m.end())
                parts.extend(map(unquote_name, quoted))
            else:
                parts.append(self.query[m.start() : m.end()])
        return tuple(parts)

    def name_at(self, pos: int) -> tuple[int, int, Table] | None:
        """The table name at *pos*: where it starts and ends, and the name."""
        m = _NAME.match(self.sql, pos)
        if m is None or _is_keyword_or_number(m.group("first")):
            return None
        parts = self.parts(m.start("first"), m.end())
        return m.start("first"), m.end(), Table(".".join(parts), parts, None)

    def alias_at(self, pos: int) -> tuple[str | None, int]:
        """The alias at *pos*, if one is there, and where it ends."""
        m = _ALIAS.match(self.sql, pos)
        if m is None or _is_keyword_or_number(m.group("alias")):
            return None, pos
        return ".".join(self.parts(m.start("alias"), m.end())), m.end()

    def record(self, pos: int, *, write: bool = False) -> int | None:
        """Record the table named at *pos*; return where its name ends."""
        found = self.name_at(pos)
        if found is None:
            return None
        start, end, table = found
        self.tables_at.setdefault(start, table)
        if write:
            self.written.add(start)
        return end

    def tables(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The tables written and read, each once, in order of appearance."""
        common = self.common_table_names() if "WITH" in self.sql else frozenset()
        writes: dict[str, None] = {}
        reads: dict[str, None] = {}
        for at in sorted(self.tables_at):
            table = self.tables_at[at]
            if len(table.parts) == 1 and table.name.casefold() in common:
                continue
            (writes if at in self.written else reads)[table.name] = None
        return tuple(writes), tuple(reads)

    def common_table_names(self) -> frozenset[str]:
        """The names WITH clauses give their subqueries, which are no tables."""
        return frozenset(
            ".".join(self.parts(*m.span(1))).casefold()
            for m in _COMMON_TABLE_NAME.finditer(self.sql)
        )


def _is_keyword_or_number(word: str) -> bool:
    """Whether an unquoted word cannot be a name: a reserved word, or a number's digits."""
    return word[0] != "`" and (word in RESERVED or _NUMERIC.fullmatch(word) is not None)


def next_word(sql: str, pos: int) -> tuple[str, int]:
    m = _NEXT_WORD.match(sql, pos)
    return ("", pos) if m is None else (m.group(1), m.end())


def skip(pattern: re.Pattern[str], sql: str, pos: int) -> int:
    m = pattern.match(sql, pos)
    return pos if m is None else m.end()


def find_keyword(sql: str, word: str, pos: int) -> int:
    """Where *word* next stands on its own at or after *pos*, or -1."""
    at = sql.find(word, pos)
    while at >= 0:
        end = at + len(word)
        if (at == 0 or sql[at - 1] not in _NAME_CHARACTERS) and (
            end == len(sql) or sql[end] not in _NAME_CHARACTERS
        ):
            return at
        at = sql.find(word, end)
    return -1


def record_list(scan: Scan, pos: int, *, write: bool) -> int:
    """Record a comma-separated list of table names; return where it ends."""
    while True:
        end = scan.record(pos, write=write)
        comma = None if end is None else COMMA.match(scan.sql, end)
        if comma is None:
            return pos if end is None else end
        pos = comma.end()


def table_references(scan: Scan, pos: int) -> tuple[list[int], int]:
    """Record the tables of the list at *pos* (after FROM, JOIN, UPDATE or USING).

    Follows commas, joins and parenthesised groups; skips derived tables, whose own FROM
    clauses :func:`scan_table_clauses` finds. Returns where the tables start and where
    the list ends.
    """
    sql = scan.sql
    found: list[int] = []
    depth = 0
    expect_table = True
    while True:
        if expect_table:
            paren = OPEN_PAREN.match(sql, pos)
            if paren is not None and SUBQUERY_START.match(sql, paren.end()) is None:
                depth += 1
                pos = paren.end()
                continue
            if paren is not None:
                pos = scan.after_parens(paren.end() - 1)
                if pos < 0:
                    return found, len(sql)
                _, pos = scan.alias_at(pos)
                columns = OPEN_PAREN.match(sql, pos)
                if columns is not None:
                    pos = max(pos, scan.after_parens(columns.end() - 1))
            else:
                named = scan.name_at(pos)
                if named is None:
                    return found, pos
                start, pos, table = named
                call = OPEN_PAREN.match(sql, pos)
                if call is not None:  # a table function, such as JSON_TABLE(...)
                    pos = scan.after_parens(call.end() - 1)
                    if pos < 0:
                        return found, len(sql)
                    _, pos = scan.alias_at(pos)
                else:
                    pos = skip(_PARTITION, sql, pos)
                    alias, pos = scan.alias_at(pos)
                    pos = skip(_INDEX_HINTS, sql, pos)
                    scan.tables_at.setdefault(start, table._replace(alias=alias))
                    found.append(start)
            expect_table = False
            continue
        scan.step()
        m = _AFTER_TABLE.match(sql, pos)
        if m is None or (m.group("close") and depth == 0):
            return found, pos
        pos = m.end()
        if m.group("close"):
            depth -= 1
        elif m.group("on"):
            pos = scan.expression_end(pos, _CONDITION_END)
        elif m.group("using"):
            columns = OPEN_PAREN.match(sql, pos)
            pos = -1 if columns is None else scan.after_parens(columns.end() - 1)
            if pos < 0:
                return found, m.end()
        else:  # a comma or a join
            if sql[pos - 1] == "N":
                scan.not_clauses.add(pos - 4)
            expect_table = True


def scan_table_clauses(scan: Scan) -> None:
    """Record the tables of every FROM and JOIN in the statement, subqueries included."""
    sql = scan.sql
    functions = (  # SUBSTR also finds SUBSTRING
        "EXTRACT" in sql or "TRIM" in sql or "SUBSTR" in sql or "MID" in sql or "OVERLAY" in sql
    )
    for keyword in ("FROM", "JOIN"):
        at = sql.find(keyword)
        while at >= 0:
            end = at + 4
            if at not in scan.not_clauses and _opens_table_list(sql, at, end, functions=functions):
                table_references(scan, end)
            at = sql.find(keyword, end)
    if "TABLE" in sql and any(word in sql for word in ("UNION", "EXCEPT", "INTERSECT")):
        for m in _SET_OPERATION_TABLE.finditer(sql):
            scan.record(m.end())


def _opens_table_list(sql: str, at: int, end: int, *, functions: bool) -> bool:
    """Whether the FROM or JOIN at *at* is a keyword that a list of tables follows.

    *functions* says whether EXTRACT, TRIM and their kin, whose FROM is no such keyword,
    occur in the statement at all.
    """
    if end < len(sql) and _is_name_character(sql[end]):
        return False
    if sql[at] == "J" and sql.endswith("STRAIGHT_", 0, at):
        at -= 9
        if _SELECT_OPTIONS_BEFORE.search(sql, max(0, at - 120), at):  # SELECT STRAIGHT_JOIN
            return False
    if at > 0 and _is_name_character(sql[at - 1]):
        return False
    if sql[at] != "F":
        return True
    return not (
        _ends_with_word(sql, at, ("DISTINCT",))  # a IS DISTINCT FROM b
        or _FIRST_OR_LAST_AFTER.match(sql, end)  # NTH_VALUE(x, 2) FROM LAST OVER w
        or (functions and _in_function_with_from(sql, at))
    )


def _in_function_with_from(sql: str, at: int) -> bool:
    """Whether the FROM at *at* is an argument of EXTRACT, TRIM, SUBSTRING or their kin."""
    reach = max(0, at - _FUNCTION_REACH)
    depth = 0
    pos = at
    for _ in range(_FUNCTION_PARENTHESES):
        opened = sql.rfind("(", reach, pos)
        closed = sql.rfind(")", reach, pos)
        if opened < 0:
            return False
        if closed > opened:
            depth += 1
            pos = closed
        elif depth:
            depth -= 1
            pos = opened
        else:
            return _ends_with_word(sql, opened, _FUNCTIONS_WITH_FROM)
    return False


def _ends_with_word(sql: str, at: int, words: tuple[str, ...]) -> bool:
    """Whether one of *words* stands on its own just before *at* (spaces aside)."""
    tail = sql[max(0, at - 40) : at].rstrip()
    for word in words:
        if tail.endswith(word):
            before = len(tail) - len(word) - 1
            return before < 0 or not _is_name_character(tail[before])
    return False


def _is_name_character(char: str) -> bool:
    return char in _NAME_CHARACTERS or (not char.isascii() and char.isalnum())
