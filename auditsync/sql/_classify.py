"""What a statement does: :func:`classify`, one grammar rule per first word.

Each rule reads the upper-cased skeleton of the statement through a :class:`._scan.Scan`,
records the tables it finds and returns the kind. What a rule cannot understand is
``OTHER`` with no tables, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from ._lexer import TOKEN_RUN, skeleton, upper_ascii, words
from ._scan import (
    COMMA,
    OPEN_PAREN,
    PART,
    Scan,
    Table,
    TooComplex,
    find_keyword,
    next_word,
    record_list,
    scan_table_clauses,
    skip,
    table_references,
)
from ._statement import KINDS, Statement

__all__ = ["classify"]

_FIRST_WORD: Final = re.compile(r"[\s(]*([A-Z_][A-Z0-9_]*)")
_ASSIGNMENT_END: Final = re.compile(r"[(),]|(?<![\w$@.])(?:WHERE|ORDER|LIMIT|RETURNING)(?![\w$])")
_ASSIGNMENT_TARGET: Final = re.compile(rf"\s*({PART}(?:\s*\.\s*{PART}){{0,2}})\s*=")
_DELETE_TARGET: Final = re.compile(rf"\s*({PART}(?:\s*\.\s*{PART})?)(?:\s*\.\s*\*)?")
_KEYWORD_AT: Final = {
    word: re.compile(rf"\s*{word}(?![\w$])") for word in words("FROM USING SET TO TABLE LIKE")
}
_IF_EXISTS: Final = re.compile(r"\s+IF\s+(?:NOT\s+)?EXISTS(?![\w$])")
_MODIFIERS: Final = {
    "INSERT": re.compile(
        r"(?:\s+(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)(?![\w$]))*(?:\s+INTO(?![\w$]))?"
    ),
    "UPDATE": re.compile(r"(?:\s+(?:LOW_PRIORITY|IGNORE)(?![\w$]))*"),
    "DELETE": re.compile(r"(?:\s+(?:LOW_PRIORITY|QUICK|IGNORE)(?![\w$]))*"),
}
_INSERT_SOURCE: Final = re.compile(
    r"(?:\s*PARTITION\s*\([^()]*\))?(?:\s*\([^()]*\))?\s*(?P<word>VALUES?|TABLE)(?![\w$])"
)
_COMMON_TABLE: Final = re.compile(rf"\s*{PART}\s*(?:\([^()]*\)\s*)?AS\s*(?=\()")
_RECURSIVE: Final = re.compile(r"\s+RECURSIVE(?![\w$])")
# What may stand between CREATE, ALTER or DROP and the kind of object.
_OBJECT: Final = re.compile(
    r"""(?:\s+(?:OR\s+REPLACE|TEMPORARY|UNIQUE|FULLTEXT|SPATIAL|ONLINE|OFFLINE|AGGREGATE
        |UNDO|IGNORE|ALGORITHM\s*=\s*\w+|SQL\s+SECURITY\s+\w+
        |DEFINER\s*=\s*(?:CURRENT_USER(?:\s*\(\s*\))?|\S+))(?=[\s(]))*
      \s+(?P<object>[A-Z_]+)(?:\s+BODY(?![\w$]))?""",
    re.VERBOSE,
)
_SYNONYMS: Final = {"SCHEMA": "DATABASE", "TABLES": "TABLE"}
_RENAME_IN_ALTER: Final = re.compile(
    r"(?<![\w$@.])(?:RENAME(?:\s+(?:TO|AS)(?![\w$]))?"
    r"(?!\s+(?:COLUMN|INDEX|KEY|CONSTRAINT)(?![\w$]))"
    r"|EXCHANGE\s+PARTITION\s+[\w$`]+\s+WITH\s+TABLE)(?=\s)"
)
_WAIT: Final = re.compile(r"\s+(?:WAIT\s+(?:[0-9.]+|\?)|NOWAIT)(?![\w$])")
_LOCK_TYPE: Final = re.compile(
    r"\s+(?:(?P<read>READ)(?:\s+LOCAL)?|(?:LOW_PRIORITY\s+)?WRITE(?:\s+CONCURRENT)?)(?![\w$])"
)
_TABLE_LIST: Final = re.compile(r"(?:\s+(?:NO_WRITE_TO_BINLOG|LOCAL))?\s+TABLES?(?![\w$])")
_FORMAT: Final = re.compile(r"\s+FORMAT\s*=\s*\w+")
# The kinds that may follow WITH, ANALYZE and EXPLAIN ANALYZE.
_QUERY_KINDS: Final = frozenset(words("SELECT INSERT UPDATE DELETE REPLACE"))
# How deep WITH, SET STATEMENT .. FOR and ANALYZE may wrap a statement: a bound on
# recursion for hostile text, far above anything real.
_MAX_NESTING = 8
# An INSERT longer than this first tries the bulk path, which lexes only its head.
_BULK_INSERT_MIN = 4096
_BULK_HEAD = 2048


def classify(query: str) -> Statement:
    """Say what *query* does: its kind and the tables it writes and reads.

    Only the first statement of a multi-statement text is read. What cannot be understood
    is ``OTHER`` with no tables, never a guess. Never raises.
    """
    if len(query) > _BULK_INSERT_MIN:
        statement = _classify_bulk_insert(query)
        if statement is not None:
            return statement
    sql = upper_ascii(skeleton(query, TOKEN_RUN))
    end = sql.find(";")
    scan = Scan(query, sql if end < 0 else sql[:end])
    try:
        kind = _dispatch(scan, 0, 0)
        if kind != "OTHER" and scan.reads_everywhere:
            scan_table_clauses(scan)
    except TooComplex:
        kind = "OTHER"
    if kind == "OTHER":
        return Statement("OTHER", query=query)
    writes, reads = scan.tables()
    return Statement(kind, writes, reads, query=query)


def _dispatch(scan: Scan, pos: int, depth: int) -> str:
    """Classify the statement at *pos* by its first word."""
    m = _FIRST_WORD.match(scan.sql, pos)
    if m is None or depth > _MAX_NESTING:
        return "OTHER"
    handler = _STATEMENTS.get(m.group(1))
    return "OTHER" if handler is None else handler(scan, m.end(), depth)


# --- A handler for each first word ------------------------------------------------------
#
# A handler takes the scan, the position after its word and the depth of nesting,
# records the tables it finds and returns the kind.

_Handler = Callable[[Scan, int, int], str]


def _select(scan: Scan, pos: int, depth: int) -> str:
    scan.reads_everywhere = True
    return "SELECT"


def _table_statement(scan: Scan, pos: int, depth: int) -> str:
    scan.record(pos)
    return _select(scan, pos, depth)


def _with(scan: Scan, pos: int, depth: int) -> str:
    sql = scan.sql
    pos = skip(_RECURSIVE, sql, pos)
    while True:
        m = _COMMON_TABLE.match(sql, pos)
        pos = -1 if m is None else scan.after_parens(m.end())
        if pos < 0:
            return "OTHER"
        comma = COMMA.match(sql, pos)
        if comma is None:
            break
        pos = comma.end()
    kind = _dispatch(scan, pos, depth + 1)
    return kind if kind in _QUERY_KINDS else "OTHER"


def _insert_target(scan: Scan, pos: int) -> int | None:
    """Record the table an INSERT or REPLACE writes; return where its name ends."""
    return scan.record(skip(_MODIFIERS["INSERT"], scan.sql, pos), write=True)


def _inserting(kind: str) -> _Handler:
    def handler(scan: Scan, pos: int, depth: int) -> str:
        end = _insert_target(scan, pos)
        source = None if end is None else _INSERT_SOURCE.match(scan.sql, end)
        if source is not None and source.group("word") == "TABLE":
            scan.record(source.end())
        scan.reads_everywhere = True
        return kind

    return handler


def _update(scan: Scan, pos: int, depth: int) -> str:
    sql = scan.sql
    found, end = table_references(scan, skip(_MODIFIERS["UPDATE"], sql, pos))
    scan.reads_everywhere = True
    if len(found) <= 1:
        scan.written.update(found)
        return "UPDATE"
    set_at = _KEYWORD_AT["SET"].match(sql, end)
    targets = None if set_at is None else _assignment_targets(scan, set_at.end())
    _mark_written(scan, found, targets)
    return "UPDATE"


def _assignment_targets(scan: Scan, pos: int) -> list[tuple[str, ...]] | None:
    """The qualifier of each column a SET list assigns: ``()`` for a bare column."""
    sql = scan.sql
    qualifiers = []
    while True:
        m = _ASSIGNMENT_TARGET.match(sql, pos)
        if m is None:
            return None
        qualifiers.append(scan.parts(*m.span(1))[:-1])
        pos = scan.expression_end(m.end(), _ASSIGNMENT_END)
        if pos >= len(sql) or sql[pos] != ",":
            return qualifiers
        pos += 1


def _mark_written(scan: Scan, found: list[int], qualifiers: list[tuple[str, ...]] | None) -> None:
    """Mark the tables *qualifiers* name as written: all of them where one cannot tell."""
    chosen = []
    for qualifier in qualifiers or [()]:
        at = _resolve(scan, found, qualifier) if qualifier else None
        if at is None:
            scan.written.update(found)
            return
        chosen.append(at)
    scan.written.update(chosen)


def _resolve(scan: Scan, found: list[int], qualifier: tuple[str, ...]) -> int | None:
    """Which of the tables *found* the alias or table name *qualifier* refers to."""
    wanted = tuple(part.casefold() for part in qualifier)
    for at in found:
        table = scan.tables_at[at]
        if table.alias is not None:
            if wanted == (table.alias.casefold(),):
                return at
        elif tuple(part.casefold() for part in table.parts[-len(wanted) :]) == wanted:
            return at
    return None


def _delete(scan: Scan, pos: int, depth: int) -> str:
    sql = scan.sql
    pos = skip(_MODIFIERS["DELETE"], sql, pos)
    scan.reads_everywhere = True
    from_at = _KEYWORD_AT["FROM"].match(sql, pos)
    if from_at is not None:  # DELETE FROM t ... or DELETE FROM t1, t2 USING ...
        scan.not_clauses.add(from_at.end() - 4)
        targets, end = _delete_targets(scan, from_at.end())
        using = _KEYWORD_AT["USING"].match(sql, end)
        if using is None:
            found, _ = table_references(scan, from_at.end())
            scan.written.update(found[:1])
            return "DELETE"
        found, _ = table_references(scan, using.end())
    else:  # DELETE t1, t2 FROM ...
        targets, end = _delete_targets(scan, pos)
        from_at = _KEYWORD_AT["FROM"].match(sql, end)
        if not targets or from_at is None:
            return "DELETE"
        scan.not_clauses.add(from_at.end() - 4)
        found, _ = table_references(scan, from_at.end())
    for start, parts in targets:
        at = _resolve(scan, found, parts)
        if at is None:
            scan.tables_at.setdefault(start, Table(".".join(parts), parts, None))
            at = start
        scan.written.add(at)
    return "DELETE"


def _delete_targets(scan: Scan, pos: int) -> tuple[list[tuple[int, tuple[str, ...]]], int]:
    """The ``t1, t2.*`` list of a multi-table DELETE: where each name starts, and its parts."""
    targets: list[tuple[int, tuple[str, ...]]] = []
    while True:
        m = _DELETE_TARGET.match(scan.sql, pos)
        if m is None or scan.name_at(pos) is None:
            return targets, pos
        targets.append((m.start(1), scan.parts(*m.span(1))))
        comma = COMMA.match(scan.sql, m.end())
        if comma is None:
            return targets, m.end()
        pos = comma.end()


def _load(scan: Scan, pos: int, depth: int) -> str:
    word, pos = next_word(scan.sql, pos)
    if word not in ("DATA", "XML"):
        return "OTHER"
    into = find_keyword(scan.sql, "INTO", pos)
    table = None if into < 0 else _KEYWORD_AT["TABLE"].match(scan.sql, into + 4)
    if table is not None:
        scan.record(table.end(), write=True)
    scan.reads_everywhere = True
    return "LOAD_" + word


def _reading(kind: str) -> _Handler:
    def handler(scan: Scan, pos: int, depth: int) -> str:
        scan.reads_everywhere = True
        return kind

    return handler


def _handler(scan: Scan, pos: int, depth: int) -> str:
    found = scan.name_at(pos)
    if found is not None and next_word(scan.sql, found[1])[0] in ("OPEN", "READ"):
        scan.tables_at.setdefault(found[0], found[2])
    return "HANDLER"


def _defining(verb: str) -> _Handler:
    """The handler of CREATE, ALTER or DROP, whose kind the next words name."""

    def handler(scan: Scan, pos: int, depth: int) -> str:
        sql = scan.sql
        m = _OBJECT.match(sql, pos)
        if m is None:
            return "OTHER"
        thing = _SYNONYMS.get(m.group("object"), m.group("object"))
        if (verb, thing) == ("DROP", "PREPARE"):
            return "DEALLOCATE"
        kind = f"{verb}_{thing}"
        if kind not in _KNOWN_KINDS:
            return "OTHER"
        pos = skip(_IF_EXISTS, sql, m.end())
        if thing == "INDEX":
            on = find_keyword(sql, "ON", pos)
            if on >= 0:
                scan.record(on + 2, write=True)
        elif thing in ("TABLE", "VIEW", "SEQUENCE"):
            if verb == "DROP":
                record_list(scan, pos, write=True)
            else:
                _defined_table(scan, pos, verb, thing)
        return kind

    return handler


def _defined_table(scan: Scan, pos: int, verb: str, thing: str) -> None:
    """Record what CREATE or ALTER TABLE, VIEW or SEQUENCE writes, and what it reads."""
    sql = scan.sql
    end = scan.record(pos, write=True)
    if end is None or thing == "SEQUENCE":
        return
    if (verb, thing) == ("ALTER", "TABLE"):
        for rename in _RENAME_IN_ALTER.finditer(sql, end):
            scan.record(rename.end(), write=True)
        return
    like = _KEYWORD_AT["LIKE"].match(sql, skip(OPEN_PAREN, sql, end))
    if like is not None:
        scan.record(like.end())
    scan.reads_everywhere = True  # CREATE TABLE .. SELECT, CREATE VIEW .. AS SELECT


def _rename(scan: Scan, pos: int, depth: int) -> str:
    sql = scan.sql
    word, pos = next_word(sql, pos)
    if word == "USER":
        return "RENAME_USER"
    if word not in ("TABLE", "TABLES"):
        return "OTHER"
    pos = skip(_IF_EXISTS, sql, pos)
    while True:
        end = scan.record(pos, write=True)
        to = None if end is None else _KEYWORD_AT["TO"].match(sql, skip(_WAIT, sql, end))
        end = None if to is None else scan.record(to.end(), write=True)
        comma = None if end is None else COMMA.match(sql, end)
        if comma is None:
            return "RENAME_TABLE"
        pos = comma.end()


def _truncate(scan: Scan, pos: int, depth: int) -> str:
    scan.record(skip(_KEYWORD_AT["TABLE"], scan.sql, pos), write=True)
    return "TRUNCATE"


def _maintaining(kind: str, *, write: bool) -> _Handler:
    """The handler of ANALYZE, CHECK, CHECKSUM, OPTIMIZE or REPAIR TABLE."""

    def handler(scan: Scan, pos: int, depth: int) -> str:
        m = _TABLE_LIST.match(scan.sql, pos)
        if m is None:
            return "OTHER"
        record_list(scan, m.end(), write=write)
        return kind

    return handler


_analyze_table = _maintaining("ANALYZE_TABLE", write=False)


def _analyze(scan: Scan, pos: int, depth: int) -> str:
    """ANALYZE TABLE, or MariaDB's ANALYZE of a statement, which runs it."""
    if _TABLE_LIST.match(scan.sql, pos):
        return _analyze_table(scan, pos, depth)
    kind = _dispatch(scan, skip(_FORMAT, scan.sql, pos), depth + 1)
    return kind if kind in _QUERY_KINDS else "OTHER"


def _explain(scan: Scan, pos: int, depth: int) -> str:
    word, after = next_word(scan.sql, pos)
    return _analyze(scan, after, depth) if word == "ANALYZE" else "EXPLAIN"


def _lock(scan: Scan, pos: int, depth: int) -> str:
    sql = scan.sql
    word, pos = next_word(sql, pos)
    if word not in ("TABLE", "TABLES"):
        return "OTHER"
    while True:
        found = scan.name_at(pos)
        lock = None if found is None else _LOCK_TYPE.match(sql, scan.alias_at(found[1])[1])
        if found is None or lock is None:
            return "LOCK_TABLES"
        scan.tables_at.setdefault(found[0], found[2])
        if not lock.group("read"):
            scan.written.add(found[0])
        comma = COMMA.match(sql, lock.end())
        if comma is None:
            return "LOCK_TABLES"
        pos = comma.end()


def _set(scan: Scan, pos: int, depth: int) -> str:
    sql = scan.sql
    word, after = next_word(sql, pos)
    if word == "STATEMENT":
        at = find_keyword(sql, "FOR", after)
        return "OTHER" if at < 0 else _dispatch(scan, at + 3, depth + 1)
    if word == "PASSWORD":
        return "SET_PASSWORD"
    if word == "DEFAULT" and next_word(sql, after)[0] == "ROLE":
        return "SET_DEFAULT_ROLE"
    scan.reads_everywhere = True  # SET @x = (SELECT ...)
    return "SET"


def _by_next_word(kinds: dict[str, str], otherwise: str = "OTHER") -> _Handler:
    def handler(scan: Scan, pos: int, depth: int) -> str:
        return kinds.get(next_word(scan.sql, pos)[0], otherwise)

    return handler


def _fixed(kind: str) -> _Handler:
    def handler(scan: Scan, pos: int, depth: int) -> str:
        return kind

    return handler


def _change(scan: Scan, pos: int, depth: int) -> str:
    word, after = next_word(scan.sql, pos)
    if word == "MASTER" or (word, next_word(scan.sql, after)[0]) == ("REPLICATION", "SOURCE"):
        return "CHANGE_MASTER"
    return "OTHER"


_KNOWN_KINDS: Final = frozenset(KINDS)


_REPLICAS = words("SLAVE SLAVES REPLICA REPLICAS ALL")


_STATEMENTS: Final[dict[str, _Handler]] = {
    "SELECT": _select,
    "VALUES": _select,
    "TABLE": _table_statement,
    "WITH": _with,
    "INSERT": _inserting("INSERT"),
    "REPLACE": _inserting("REPLACE"),
    "UPDATE": _update,
    "DELETE": _delete,
    "LOAD": _load,
    "CALL": _reading("CALL"),
    "DO": _reading("DO"),
    "HANDLER": _handler,
    "CREATE": _defining("CREATE"),
    "ALTER": _defining("ALTER"),
    "DROP": _defining("DROP"),
    "RENAME": _rename,
    "TRUNCATE": _truncate,
    "ANALYZE": _analyze,
    "CHECK": _maintaining("CHECK_TABLE", write=False),
    "CHECKSUM": _maintaining("CHECKSUM_TABLE", write=False),
    "OPTIMIZE": _maintaining("OPTIMIZE_TABLE", write=True),
    "REPAIR": _maintaining("REPAIR_TABLE", write=True),
    "GRANT": _fixed("GRANT"),
    "REVOKE": _fixed("REVOKE"),
    "SET": _set,
    "BEGIN": _by_next_word({"NOT": "OTHER"}, otherwise="BEGIN"),  # BEGIN NOT ATOMIC: a block
    "START": _by_next_word({"TRANSACTION": "BEGIN"} | dict.fromkeys(_REPLICAS, "START_REPLICA")),
    "STOP": _by_next_word(dict.fromkeys(_REPLICAS, "STOP_REPLICA")),
    "COMMIT": _fixed("COMMIT"),
    "ROLLBACK": _fixed("ROLLBACK"),
    "SAVEPOINT": _fixed("SAVEPOINT"),
    "RELEASE": _by_next_word({"SAVEPOINT": "RELEASE_SAVEPOINT"}),
    "XA": _fixed("XA"),
    "LOCK": _lock,
    "UNLOCK": _by_next_word(dict.fromkeys(("TABLE", "TABLES"), "UNLOCK_TABLES")),
    "USE": _fixed("USE"),
    "SHOW": _fixed("SHOW"),
    "EXPLAIN": _explain,
    "DESCRIBE": _explain,
    "DESC": _explain,
    "PREPARE": _fixed("PREPARE"),
    "EXECUTE": _fixed("EXECUTE"),
    "DEALLOCATE": _fixed("DEALLOCATE"),
    "FLUSH": _fixed("FLUSH"),
    "KILL": _fixed("KILL"),
    "RESET": _fixed("RESET"),
    "PURGE": _fixed("PURGE"),
    "SHUTDOWN": _fixed("SHUTDOWN"),
    "INSTALL": _fixed("INSTALL_PLUGIN"),
    "UNINSTALL": _fixed("UNINSTALL_PLUGIN"),
    "CHANGE": _change,
}


def _classify_bulk_insert(query: str) -> Statement | None:
    """Classify a long ``INSERT .. VALUES`` from its head, when that is safe; else None.

    Bulk inserts are the longest statements an audit log holds, and their rows name no
    table unless a subquery hides in them: without the word SELECT after VALUES, the
    rows need not be lexed at all.
    """
    head = upper_ascii(skeleton(query[:_BULK_HEAD], TOKEN_RUN))
    first = _FIRST_WORD.match(head)
    if first is None or first.group(1) not in ("INSERT", "REPLACE"):
        return None
    scan = Scan(query, head)
    end = _insert_target(scan, first.end())
    source = None if end is None else _INSERT_SOURCE.match(head, end)
    if source is None or source.group("word") == "TABLE" or source.end() > _BULK_HEAD - 16:
        return None
    if "select" in query[source.end() :].lower():
        return None
    writes, reads = scan.tables()
    return Statement(first.group(1), writes, reads, query=query)
