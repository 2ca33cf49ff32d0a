"""Tests for auditsync.sql: the lexer, classification, redaction and fingerprints."""

from __future__ import annotations

import json
import re
import string
import time
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from auditsync.sql import (
    DCL_KINDS,
    DDL_KINDS,
    KINDS,
    REDACTION_MODES,
    TRANSACTION_KINDS,
    WRITE_KINDS,
    RedactionMode,
    Statement,
    classify,
    fingerprint,
    redact,
)
from auditsync.sql._lexer import (
    IDENT,
    TOKEN,
    TOKEN_RUN,
    Lexed,
    quote_name,
    skeleton,
    unquote_name,
)

CORPUS = Path(__file__).parent / "data" / "sql" / "classify.tsv"
_UNESCAPE = {"n": "\n", "t": "\t", "\\": "\\"}


class Case(NamedTuple):
    line: int
    kind: str
    writes: tuple[str, ...]
    reads: tuple[str, ...]
    statement: str


def _corpus() -> list[Case]:
    cases = []
    for number, line in enumerate(CORPUS.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("#") or line.startswith("kind\t"):
            continue
        kind, writes, reads, statement = line.split("\t", 3)
        text = re.sub(r"\\(.)", lambda m: _UNESCAPE[m.group(1)], statement)
        cases.append(Case(number, kind, tuple(json.loads(writes)), tuple(json.loads(reads)), text))
    return cases


CASES = _corpus()
STATEMENTS = [case.statement for case in CASES]


# --- classify: the corpus -------------------------------------------------------------


def test_corpus_is_large_and_covers_every_kind() -> None:
    assert len(CASES) >= 300
    assert {case.kind for case in CASES} == set(KINDS)


@pytest.mark.parametrize(
    "case", CASES, ids=[f"line{case.line}:{case.statement[:40]}" for case in CASES]
)
def test_classify(case: Case) -> None:
    statement = classify(case.statement)
    assert (statement.kind, statement.writes, statement.reads) == (
        case.kind,
        case.writes,
        case.reads,
    )


def _folded(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name.upper() for name in names))


@pytest.mark.parametrize("case", CASES, ids=[f"line{case.line}" for case in CASES])
def test_classification_does_not_depend_on_layout_or_keyword_case(case: Case) -> None:
    expected = classify(case.statement)
    assert classify(f"  /* leading comment */ {case.statement}") == expected
    shouted = classify(case.statement.upper())
    assert shouted.kind == expected.kind
    assert shouted.writes == _folded(expected.writes)
    assert shouted.reads == _folded(expected.reads)
    if not re.search(r"--|#|`", case.statement):  # where lines break matters to these
        assert classify(re.sub(r"\s+", "\n\t  ", case.statement)) == expected


# --- classify: Statement and its properties ---------------------------------------------


@pytest.mark.parametrize(
    ("query", "write", "ddl", "transaction", "dcl"),
    [
        ("SELECT * FROM t", False, False, False, False),
        ("INSERT INTO t VALUES (1)", True, False, False, False),
        ("UPDATE t SET a = 1", True, False, False, False),
        ("DELETE FROM t", True, False, False, False),
        ("REPLACE INTO t VALUES (1)", True, False, False, False),
        ("LOAD DATA INFILE 'f' INTO TABLE t", True, False, False, False),
        ("CREATE TABLE t (a INT)", True, True, False, False),
        ("DROP VIEW v", True, True, False, False),
        ("TRUNCATE t", True, True, False, False),
        ("RENAME TABLE a TO b", True, True, False, False),
        ("OPTIMIZE TABLE t", True, False, False, False),
        ("BEGIN", False, False, True, False),
        ("XA COMMIT 'x'", False, False, True, False),
        ("RELEASE SAVEPOINT s", False, False, True, False),
        ("GRANT SELECT ON *.* TO u", False, False, False, True),
        ("CREATE USER u", False, False, False, True),
        ("SET PASSWORD = PASSWORD('x')", False, False, False, True),
        ("CALL p()", False, False, False, False),
        ("LOCK TABLES t WRITE", False, False, False, False),
        ("garbage", False, False, False, False),
    ],
)
def test_statement_properties(
    query: str, write: bool, ddl: bool, transaction: bool, dcl: bool
) -> None:
    statement = classify(query)
    assert statement.is_write is write
    assert statement.is_ddl is ddl
    assert statement.is_transaction_control is transaction
    assert statement.is_dcl is dcl


def test_kind_groups_hold_only_known_kinds() -> None:
    known = set(KINDS)
    for group in (DDL_KINDS, WRITE_KINDS, TRANSACTION_KINDS, DCL_KINDS):
        assert group <= known
    assert DDL_KINDS <= WRITE_KINDS
    assert not DDL_KINDS & DCL_KINDS
    assert len(KINDS) == len(known)
    assert KINDS[-1] == "OTHER"


def test_statement_is_a_frozen_value() -> None:
    statement = classify("SELECT * FROM t WHERE a = 1")
    with pytest.raises(AttributeError):
        statement.kind = "DELETE"  # type: ignore[misc]
    assert not hasattr(statement, "__dict__")
    assert statement.query == "SELECT * FROM t WHERE a = 1"
    assert "query" not in repr(statement)


def test_statements_that_do_the_same_are_equal_whatever_their_text() -> None:
    first = classify("SELECT * FROM t WHERE a = 1")
    second = classify("select * from t where a = 2 and b = 'x'")
    assert first == second
    assert hash(first) == hash(second)
    assert first == Statement("SELECT", (), ("t",))
    assert first != classify("SELECT * FROM u")
    assert first.fingerprint != second.fingerprint


def test_statement_fingerprint_is_the_fingerprint_of_its_query() -> None:
    query = "UPDATE t SET a = 5 WHERE id IN (1, 2, 3)"
    statement = classify(query)
    assert statement.fingerprint == fingerprint(query)
    assert statement.fingerprint == statement.fingerprint  # cached, and still right
    assert classify(query + " AND b = 1").fingerprint != statement.fingerprint


def test_a_built_statement_fingerprints_its_query() -> None:
    assert Statement("SELECT", query="SELECT 1").fingerprint == fingerprint("SELECT 2")


# --- classify: what it must never do ------------------------------------------------------


def _separate(words: str) -> list[str]:
    return words.split(" ")


SQL_ALPHABET = (
    "'\"`\\/*-#!M;,.()=?@ \n\t0123456789"
    "SELECTFROMJOINWHEREUPDATEDELETEINSERTINTOVALUESSETWITHASTABLE"
    "selectfromjoinwhereasontusingxb_$é\x00"
)
SQL_WORDS = _separate(
    "SELECT FROM JOIN LEFT ON USING WHERE UPDATE SET DELETE INSERT INTO VALUES REPLACE "
    "WITH RECURSIVE AS TABLE CREATE DROP ALTER RENAME TO TRUNCATE INDEX VIEW LOCK TABLES "
    "READ WRITE HANDLER OPEN LOAD DATA INFILE STATEMENT FOR ANALYZE EXPLAIN EXTRACT TRIM "
    "DISTINCT STRAIGHT_JOIN LATERAL JSON_TABLE PARTITION UNION IDENTIFIED BY PASSWORD "
    "VIA WITH USING OR REPLACE ***** *****'x' PASSWORD( AES_ENCRYPT( MASTER_PASSWORD= N'y' "
    "t u db.t `a` `a``b` 'x' \"y\" 'it''s' ( ) , ; . * = ? 1 -1 0x1F /* */ /*! /*M!1 -- # \n"
)


@given(st.text())
def test_classify_never_raises_on_any_text(text: str) -> None:
    statement = classify(text)
    assert statement.kind in KINDS


@given(st.text(alphabet=SQL_ALPHABET, max_size=300))
def test_classify_never_raises_on_sql_like_text(text: str) -> None:
    statement = classify(text)
    assert statement.kind in KINDS
    if statement.kind == "OTHER":
        assert statement.writes == statement.reads == ()


@given(st.lists(st.sampled_from(SQL_WORDS), max_size=60).map(" ".join))
@settings(max_examples=500)
def test_classify_never_raises_on_shuffled_sql_words(text: str) -> None:
    statement = classify(text)
    assert statement.kind in KINDS
    assert len(set(statement.writes)) == len(statement.writes)
    assert len(set(statement.reads)) == len(statement.reads)


def _nested(head: str, tail: str, times: int, middle: str = "") -> str:
    return head * times + middle + tail * times


HOSTILE = {
    "nested derived tables": "SELECT * FROM " + _nested("(SELECT * FROM ", ") x", 3000, "t"),
    "nested parentheses": "SELECT " + _nested("(", ")", 30000, "1"),
    "unclosed parentheses": "SELECT * FROM " + "(" * 60000,
    "many joins": "SELECT * FROM t0 "
    + " ".join(f"JOIN t{i} ON t{i}.a = t0.a" for i in range(1, 3000)),
    "SET STATEMENT chain": "SET STATEMENT a=1 FOR " * 3000 + "SELECT 1",
    "WITH chain": "WITH a AS (" * 3000,
    "nested PASSWORD calls": "SELECT " + _nested("PASSWORD(", ")", 20000, "'x'"),
    "IDENTIFIED BY spam": "CREATE USER u IDENTIFIED BY " + "'x' " * 20000,
    "quotes": "'" * 100000,
    "backquotes": "`" * 100000,
    "comment openers": "/*" * 50000,
    "dash comments": "-- \n" * 30000,
    "FROM spam": "SELECT " + "FROM " * 30000,
    "JOIN spam": "SELECT * FROM t " + "JOIN " * 30000,
    "ON spam": "SELECT * FROM a JOIN b ON " + _nested("(", ")", 20000, "1"),
    "EXTRACT spam": "SELECT " + _nested("EXTRACT(YEAR FROM ", ")", 5000, "d") + " FROM t",
    "many assignments": "UPDATE a, b SET "
    + ", ".join(f"a.c{i} = (b.d + {i})" for i in range(5000)),
    "many DELETE targets": "DELETE " + ", ".join(f"t{i}" for i in range(10000)) + " FROM t1",
    "many tables": "SELECT * FROM " + ", ".join(f"t{i}" for i in range(10000)),
    "many subqueries": "INSERT INTO t VALUES "
    + ",".join("((SELECT 1 FROM u))" for _ in range(5000)),
}


@pytest.mark.parametrize("query", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_text_takes_linear_time(query: str) -> None:
    """Each of these took seconds to minutes before the scan was bounded; now milliseconds."""
    started = time.perf_counter()
    statement = classify(query)
    redacted = redact(query)
    key = fingerprint(query)
    assert time.perf_counter() - started < 5
    assert statement.kind in KINDS
    assert "'x'" not in redacted
    assert len(key) == 32


def test_too_deep_to_follow_is_other_not_a_guess() -> None:
    deep = "SELECT * FROM " + _nested("(SELECT * FROM ", ") x", 3000, "t")
    assert classify(deep) == Statement("OTHER")
    shallow = "SELECT * FROM " + _nested("(SELECT * FROM ", ") x", 20, "t")
    assert classify(shallow) == Statement("SELECT", (), ("t",))


# --- classify: long statements -----------------------------------------------------------


def _rows(count: int, row: str) -> str:
    return ",".join(row.format(i=i) for i in range(count))


def test_a_64_kib_bulk_insert_is_classified_without_reading_its_rows() -> None:
    query = "INSERT INTO `db`.`events` (`id`, `name`) VALUES " + _rows(
        3000, "({i}, 'name {i} from x join y')"
    )
    assert len(query) > 64 * 1024
    assert classify(query) == Statement("INSERT", ("db.events",), ())


@pytest.mark.parametrize(
    ("rows", "reads"),
    [
        ("((SELECT MAX(id) FROM u), 'x')", ("u",)),
        ("(1, 'SELECT * FROM looks_like_a_table')", ()),
        ("(1, 'x') ON DUPLICATE KEY UPDATE a = (SELECT 1 FROM v)", ("v",)),
    ],
)
def test_a_long_insert_whose_rows_mention_select_is_read_in_full(
    rows: str, reads: tuple[str, ...]
) -> None:
    query = "INSERT INTO t (a, b) VALUES " + _rows(500, "({i}, 'padding padding')") + "," + rows
    assert len(query) > 8192
    assert classify(query) == Statement("INSERT", ("t",), reads)


def test_a_long_insert_select_is_read_in_full() -> None:
    query = "INSERT INTO t SELECT * FROM u WHERE id IN (" + _rows(3000, "{i}") + ")"
    assert classify(query) == Statement("INSERT", ("t",), ("u",))


def _best_of(runs: int, action: object) -> float:
    assert callable(action)
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def _sized(head: str, row: str, separator: str, tail: str, size: int = 64 * 1024) -> str:
    """*head*, then rows numbered from 0 until the text reaches *size*, then *tail*."""
    rows: list[str] = []
    length = len(head) + len(tail)
    while length < size:
        rows.append(row.format(i=len(rows)))
        length += len(rows[-1]) + len(separator)
    return head + separator.join(rows) + tail


@pytest.mark.parametrize(
    "query",
    [
        _sized("SELECT * FROM t WHERE id IN (", "{i}", ",", ")"),
        _sized("SELECT * FROM t WHERE uuid IN (", "'{i:08x}-4f2a-9c1e-7d3b5a6e8f90'", ",", ")"),
        _sized("SELECT ", "`model`.`field_{i}`", ", ", " FROM `model`"),
        _sized("INSERT INTO t VALUES ", "({i}, 'name {i}', NULL)", ",", ""),
        _sized("UPDATE t SET v = CASE id ", "WHEN {i} THEN 'v{i}'", " ", " END WHERE id > 0"),
    ],
    ids=["numbers", "strings", "quoted names", "bulk insert", "CASE"],
)
def test_a_64_kib_statement_is_classified_in_milliseconds(query: str) -> None:
    """Typically well under 2 ms; the bound is loose so that a busy machine passes."""
    assert len(query) >= 64 * 1024
    assert _best_of(5, lambda: classify(query)) < 0.05


# --- redact --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "redacted"),
    [
        ("SELECT 1", "SELECT ?"),
        (
            "SELECT * FROM t WHERE a = 'x' AND b = \"y\"",
            "SELECT * FROM t WHERE a = '?' AND b = \"?\"",
        ),
        ("SELECT 'it''s', 'a\\'b', 'c\\\\'", "SELECT '?', '?', '?'"),
        (
            "SELECT 1, -2, 3.5, .5, 6., 1e10, 2.5E-3, 0x1F, 0b101, X'AB', b'01', x''",
            "SELECT ?, -?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?",
        ),
        (
            "SELECT t1.c2, db3.t4.c5, @v6, `7`, `a 8` FROM t9",
            "SELECT t1.c2, db3.t4.c5, @v6, `7`, `a 8` FROM t9",
        ),
        ("SELECT 2fa, a1b2, _1 FROM t", "SELECT 2fa, a1b2, _1 FROM t"),
        (
            "SELECT _utf8mb4'x' COLLATE utf8mb4_bin, N'y'",
            "SELECT _utf8mb4'?' COLLATE utf8mb4_bin, N'?'",
        ),
        ("SELECT * FROM t LIMIT 10 OFFSET 20", "SELECT * FROM t LIMIT ? OFFSET ?"),
        (
            "SELECT * FROM t WHERE d > NOW() - INTERVAL 7 DAY",
            "SELECT * FROM t WHERE d > NOW() - INTERVAL ? DAY",
        ),
        ("SELECT 1 /* user 42 asked */ -- trace 99\n# hash 7\n", "SELECT ? /* */ -- \n#\n"),
        ("SELECT 1 /* unterminated 'x'", "SELECT ? /* */"),
        ("SELECT 'unterminated", "SELECT '?'"),
        ("/*!40101 SET NAMES 'utf8' */", "/*!40101 SET NAMES '?' */"),
        ("/*M!100100 SELECT 5 */", "/*M!100100 SELECT ? */"),
        ("SELECT 2*/*c*/3", "SELECT ?*/* */?"),
        ("SELECT * FROM `it's` WHERE `a``b` = 'c'", "SELECT * FROM `it's` WHERE `a``b` = '?'"),
        ("SELECT ? FROM t WHERE id = ?", "SELECT ? FROM t WHERE id = ?"),
        ("", ""),
    ],
)
def test_redact_literals(query: str, redacted: str) -> None:
    assert redact(query) == redacted


SECRETS = [
    ("CREATE USER 'u'@'%' IDENTIFIED BY 'Secret1'", "Secret1"),
    ("CREATE USER 'u'@'%' IDENTIFIED BY *****'s-Secret2'", "s-Secret2"),
    ("ALTER USER u IDENTIFIED BY *****'s-Secret2' REPLACE 'Old-Secret3'", "Secret"),
    ("GRANT ALL ON *.* TO u IDENTIFIED BY PASSWORD '*94BDCEBE19083CE2A1F959FD02'", "94BDCEBE"),
    ("CREATE USER u IDENTIFIED VIA ed25519 USING PASSWORD('Secret4')", "Secret4"),
    ("CREATE USER u IDENTIFIED VIA ed25519 USING 'ZIgUREUg5PVgQ6LskhXmO+eZLS0nC8be'", "ZIgUREUg"),
    ("CREATE USER u IDENTIFIED VIA pam USING 'x' OR ed25519 USING PASSWORD('Secret5')", "Secret5"),
    ("CREATE USER u IDENTIFIED WITH caching_sha2_password BY 'Secret6'", "Secret6"),
    ("CREATE USER u IDENTIFIED WITH mysql_native_password AS '*A4B6157319038724E3560'", "A4B61573"),
    ("CREATE USER u IDENTIFIED WITH 'mysql_native_password' AS '*A4B6157319038724E3560'", "A4B6"),
    ("SET PASSWORD = '*94BDCEBE19083CE2A1F959FD02F964C7AF4CFC29'", "94BDCEBE"),
    ("SET PASSWORD FOR 'bob'@'%' = PASSWORD('Secret7')", "Secret7"),
    ("SET PASSWORD FOR bob = OLD_PASSWORD('Secret8')", "Secret8"),
    ("set password for `bob`@`%` = 'Secret9'", "Secret9"),
    ("CHANGE MASTER TO MASTER_HOST='db1', MASTER_PASSWORD='Secret10'", "Secret10"),
    ("CHANGE REPLICATION SOURCE TO SOURCE_PASSWORD = 'Secret11'", "Secret11"),
    ("START SLAVE USER='repl' PASSWORD='Secret12'", "Secret12"),
    (
        "CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (USER 'u', PASSWORD 'Secret13')",
        "Secret13",
    ),
    (
        "UPDATE mysql.user SET authentication_string = PASSWORD('Secret14') WHERE User = 'x'",
        "Secret14",
    ),
    ("UPDATE users SET password = 'Secret15' WHERE id = 1", "Secret15"),
    ("SELECT AES_ENCRYPT('data', 'Secret16'), AES_DECRYPT(x, UNHEX('Secret17'))", "Secret1"),
    ("SELECT * FROM t WHERE hash = PASSWORD(CONCAT('Secret', '18'))", "Secret"),
    ("CREATE USER u IDENTIFIED BY _utf8mb4'Secret19' 'Secret20'", "Secret"),
    ('CREATE USER u IDENTIFIED BY /* c */ "Secret21"', "Secret21"),
    ("CREATE USER u IDENTIFIED BY 'Secret22\\' OR 1", "Secret22"),
    ("CREATE USER u IDENTIFIED BY *****'\x00,\x00garbage-Secret23", "Secret23"),
    ("CREATE USER a IDENTIFIED BY 'Secret24', b IDENTIFIED BY 'Secret25'", "Secret2"),
    ("ALTER USER u IDENTIFIED BY 'Secret26' RETAIN CURRENT PASSWORD", "Secret26"),
    ("SET @pw = PASSWORD('Secret27')", "Secret27"),
]


@pytest.mark.parametrize("mode", REDACTION_MODES)
@pytest.mark.parametrize(("query", "secret"), SECRETS)
def test_redact_leaves_nothing_of_a_secret(query: str, secret: str, mode: RedactionMode) -> None:
    redacted = redact(query, mode=mode)
    assert secret not in redacted
    assert "*****" in redacted
    assert redact(redacted, mode=mode) == redacted


@pytest.mark.parametrize(
    ("query", "redacted"),
    [
        (
            "CREATE USER 'u'@'%' IDENTIFIED BY *****'s-Secret2'",
            "CREATE USER 'u'@'%' IDENTIFIED BY *****",
        ),
        (
            "CREATE USER 'u'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('pw') OR unix_socket",
            "CREATE USER 'u'@'%' IDENTIFIED VIA ed25519 USING PASSWORD(*****) OR unix_socket",
        ),
        ("SET PASSWORD FOR 'u'@'h' = 'x' -- note 1", "SET PASSWORD FOR 'u'@'h' = ***** -- note 1"),
        (
            "GRANT SELECT ON db.* TO 'u'@'%' IDENTIFIED BY PASSWORD '*AB'",
            "GRANT SELECT ON db.* TO 'u'@'%' IDENTIFIED BY PASSWORD *****",
        ),
        (
            "SELECT * FROM users WHERE name = 'bob' LIMIT 5",
            "SELECT * FROM users WHERE name = 'bob' LIMIT 5",
        ),
        ("SELECT password_hash FROM users", "SELECT password_hash FROM users"),
    ],
)
def test_redact_passwords_keeps_everything_but_the_secret(query: str, redacted: str) -> None:
    assert redact(query, mode="passwords") == redacted


def test_redact_literals_also_masks_secrets_as_the_server_does() -> None:
    query = "CREATE USER 'u'@'%' IDENTIFIED BY 'Secret1' PASSWORD EXPIRE INTERVAL 30 DAY"
    assert redact(query) == "CREATE USER '?'@'?' IDENTIFIED BY ***** PASSWORD EXPIRE INTERVAL ? DAY"


def test_redact_refuses_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="literals"):
        redact("SELECT 1", mode="everything")  # type: ignore[arg-type]


MARK = "\N{SECTION SIGN}"


def _code_marks(text: str) -> int:
    """How many MARKs stand in code or quoted names (not in literals or comments).

    An independent, character-by-character reading of MySQL's lexical rules, to check
    the regular expressions of the module against.
    """
    count = i = 0
    end = len(text)
    while i < end:
        char = text[i]
        if char in "'\"":
            i += 1
            while i < end:
                if text[i] == "\\":
                    i += 2
                elif text[i] != char:
                    i += 1
                elif text[i + 1 : i + 2] == char:
                    i += 2
                else:
                    i += 1
                    break
        elif char == "`":
            close = i + 1
            while True:
                close = text.find("`", close)
                if close < 0 or text[close + 1 : close + 2] != "`":
                    break
                close += 2
            close = end if close < 0 else close + 1
            count += text.count(MARK, i, close)
            i = close
        elif text.startswith(("/*!", "/*M!"), i):
            i += 4 if text[i + 2] == "M" else 3
            while i < end and text[i].isdigit():
                i += 1
        elif text.startswith("/*", i):
            close = text.find("*/", i + 2)
            i = end if close < 0 else close + 2
        elif char == "#" or (
            text.startswith("--", i)
            and (i + 2 == end or text[i + 2] in string.whitespace or text[i + 2] < " ")
        ):
            close = text.find("\n", i)
            i = end if close < 0 else close
        else:
            count += char == MARK
            i += 1
    return count


LEXICAL_ALPHABET = "'\"`\\/*-#!M\n x1," + MARK


@given(st.text(alphabet=LEXICAL_ALPHABET, max_size=120))
@settings(max_examples=2000)
@example("'a" + MARK + "'")
@example("`a" + MARK + "'` '" + MARK + "'")
@example("'it''s " + MARK + "'")
@example("'\\'" + MARK + "'")
@example("/*!1 " + MARK + " */ /* " + MARK + " */")
@example("-- " + MARK + "\n" + MARK)
@example("--" + MARK)
@example("2*/*" + MARK + "*/3")
def test_redact_removes_every_literal_and_comment_text_and_keeps_the_rest(text: str) -> None:
    assert redact(text).count(MARK) == _code_marks(text)


def test_the_reference_lexer_can_tell_literals_from_code() -> None:
    """The reference above must itself be right, or the property proves nothing."""
    assert _code_marks(MARK + "'" + MARK + "'" + MARK) == 2
    assert _code_marks("'a''" + MARK + "'") == 0
    assert _code_marks("'a\\'" + MARK + "'") == 0
    assert _code_marks("`" + MARK + "``" + MARK + "`") == 2
    assert _code_marks("/* " + MARK + " */" + MARK) == 1
    assert _code_marks("/*!50001 " + MARK + " */") == 1
    assert _code_marks("--" + MARK + " -- " + MARK) == 1
    assert _code_marks("# " + MARK + "\n" + MARK) == 1


# --- the lexer ------------------------------------------------------------------------


@given(st.text())
@settings(max_examples=1000)
@example("SELECT `a`.`b``c`, 'x''y', x'1F' /*!50001 f() */ -- z\n2*/*c*/3 */")
@example("'a\\")
@example("`a`.`b")
def test_the_lexer_cuts_any_text_into_tokens_that_join_back_to_it(text: str) -> None:
    for lexicon in (TOKEN, TOKEN_RUN):
        parts = lexicon.split(text)
        assert "".join(parts) == text
        assert all(parts[1::2]), "a token is never empty"
    assert len(skeleton(text)) == len(text)
    lexed = Lexed.of(text)
    assert (lexed.text, len(lexed.code), len(lexed.bare)) == (text, len(text), len(text))
    assert len(lexed.flat()) == len(text)
    for start, end in lexed.closing().items():
        assert lexed.bare[start] == "("
        assert end == len(text) or lexed.bare[end] == ")"
    spans = lexed.items(0, len(text))
    assert (spans[0][0], spans[-1][1]) == (0, len(text))


@given(st.text(alphabet=LEXICAL_ALPHABET, max_size=120))
@settings(max_examples=2000)
@example("2*/*" + MARK + "*/3 */" + MARK)
@example("x'1F'" + MARK + "b'01'")
def test_lexed_code_keeps_exactly_the_code_and_the_names(text: str) -> None:
    assert Lexed.of(text).code.count(MARK) == _code_marks(text)


def test_lexed_views_keep_every_position() -> None:
    text = "select `a`.`b``c`, 'x', X'1F' /*!50001 f() */ -- z\n/* d */ 2 */ 3"
    lexed = Lexed.of(text)
    # A ``*/`` with no executable comment open is code here; the skeleton blanks it.
    assert lexed.code == "select `a`.`b``c`, ''', '''''          f()        \n        2 */ 3"
    assert lexed.bare == "SELECT `_`.`____`, ''', '''''          F()        \n        2 */ 3"
    assert skeleton(text) == "select ``````````, ''', '''''          f()        \n        2    3"
    assert not lexed.cut


@pytest.mark.parametrize(
    ("text", "cut"),
    [
        ("SELECT 'a", True),
        ("SELECT 'a\\", True),
        ("SELECT 'a''", True),
        ('SELECT "a', True),
        ("SELECT `a", True),
        ("SELECT `a`.`b``", True),
        ("SELECT 1 /* a", True),
        ("SELECT 1 /*/", True),
        ("/*!50001 SELECT 1", True),
        ("/*M!100100 SELECT 1 /* c */", True),
        ("SELECT f(1", True),
        ("SELECT 'it''s'", False),
        ("SELECT '\\''", False),
        ("SELECT `a`.`b``c`", False),
        ("SELECT '(' -- (", False),
        ("/*!50001 SELECT 1 */", False),
        ("SELECT 2 */ 3", False),
        ("SELECT x'1F', b'01'", False),
        ("SELECT 1 /**/", False),
    ],
)
def test_lexed_says_when_the_text_was_cut(text: str, cut: bool) -> None:
    assert Lexed.of(text).cut is cut


def test_lexed_reads_parentheses_and_lists_at_their_own_level() -> None:
    text = "INSERT INTO t (a, b) VALUES (1, f(2, ')')), (3"
    lexed = Lexed.of(text)
    closing = lexed.closing()
    assert text[14 : closing[14] + 1] == "(a, b)"
    assert text[28 : closing[28] + 1] == "(1, f(2, ')'))"
    assert closing[text.rindex("(")] == len(text)
    assert lexed.flat() == "INSERT INTO T (    ) VALUES (            ), ( "
    assert [text[a:b] for a, b in lexed.items(29, closing[28])] == ["1", " f(2, ')')"]


@given(st.text())
def test_a_quoted_name_reads_back_as_itself(name: str) -> None:
    quoted = quote_name(name)
    assert unquote_name(quoted) == name
    assert re.fullmatch(IDENT, quoted)
    assert TOKEN.split(quoted) == ["", quoted, ""]


def test_unquote_name_keeps_a_bare_name_and_drops_only_the_quote_of_an_unclosed_one() -> None:
    assert unquote_name("t1") == "t1"
    assert unquote_name("`a``b") == "a`b"
    assert unquote_name("`") == ""


STATEMENT_TEXT = st.one_of(
    st.sampled_from(STATEMENTS),
    st.text(alphabet=SQL_ALPHABET, max_size=200),
    st.lists(st.sampled_from(SQL_WORDS), max_size=40).map(" ".join),
)


@given(STATEMENT_TEXT, st.sampled_from(REDACTION_MODES))
@settings(max_examples=1000)
@example("0..0", "literals")  # a number before a dot left a number for the second pass
@example("''\"", "literals")  # '' then " became '?''?', one string on the second pass
@example("PASSWORD 0x1F 'x'", "literals")  # the mask, then a string: one secret or two?
def test_redact_is_idempotent(text: str, mode: RedactionMode) -> None:
    once = redact(text, mode=mode)
    assert redact(once, mode=mode) == once


@given(st.lists(st.sampled_from(SQL_WORDS), max_size=40).map(" ".join))
@settings(max_examples=500)
@example("UPDATE 0x1F")  # a number is no table, before or after redaction
@example("SELECT PASSWORD( FROM N'y'")  # a literal's prefix is no table, masked or not
def test_redaction_keeps_what_generated_statements_do(text: str) -> None:
    assert classify(redact(text)) == classify(text)


@pytest.mark.parametrize("query", STATEMENTS)
def test_redaction_keeps_what_a_statement_does(query: str) -> None:
    assert classify(redact(query)) == classify(query)
    assert classify(redact(query, mode="passwords")) == classify(query)


@pytest.mark.parametrize("query", STATEMENTS)
def test_redaction_of_the_corpus_keeps_no_literal_or_comment_text(query: str) -> None:
    marked = query.replace("e", MARK).replace("E", MARK)
    assert redact(marked).count(MARK) == _code_marks(marked)


# --- fingerprint ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("SELECT * FROM t WHERE id = 1", "select *\n  from t\twhere id = 42"),
        ("SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE id = 'one'"),
        ("SELECT * FROM t WHERE id = -1", "SELECT * FROM t WHERE id = 1"),
        ("SELECT * FROM t WHERE id IN (1, 2, 3)", "SELECT * FROM t WHERE id IN (4)"),
        ("SELECT * FROM t WHERE id IN ('a', 'b')", "SELECT * FROM t WHERE id IN (1, -2, 'c')"),
        (
            "INSERT INTO t (a, b) VALUES (1, 'x')",
            "INSERT INTO t (a, b) VALUES (2, 'y'), (3, NULL), (-4, 'z')",
        ),
        ("INSERT INTO t VALUES (1, NULL), (2, NULL)", "INSERT INTO t VALUES (3, 4)"),
        ("UPDATE t SET a = NULL WHERE b IS NULL", "update t set a = 5 where b is null"),
        ("SELECT * FROM t /* request 1 */", "SELECT * FROM t -- request 2"),
        ("SELECT * FROM t;", "SELECT * FROM t"),
        ("/*!40101 SET NAMES utf8 */", "SET NAMES utf8"),
        ("SELECT X'AB', 0x1F, 1e5", "SELECT 'a', 2, 3.5"),
        ("CREATE USER u IDENTIFIED BY 'a'", "CREATE USER u IDENTIFIED BY *****"),
        ("CREATE USER u IDENTIFIED BY *****'s-leak'", "CREATE USER u IDENTIFIED BY 'b'"),
        ("SELECT * FROM `t` WHERE `a` = 1", "SELECT * FROM `t` WHERE `a` = 2"),
        ("SELECT * FROM t WHERE a = ?", "SELECT * FROM t WHERE a = 5"),
    ],
)
def test_fingerprints_ignore_literals_and_layout(first: str, second: str) -> None:
    assert fingerprint(first) == fingerprint(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("SELECT * FROM t WHERE id = 1", "SELECT * FROM u WHERE id = 1"),
        ("SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE id > 1"),
        ("SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE pk = 1"),
        ("SELECT a FROM t", "SELECT b FROM t"),
        ("SELECT * FROM t WHERE id IN (1)", "SELECT * FROM t WHERE id = 1"),
        ("SELECT * FROM `a b`", "SELECT * FROM `a  b`"),
        ("SELECT * FROM `T`", "SELECT * FROM `t`"),
        ("SELECT * FROM `select`", "SELECT * FROM `SELECT`"),
        ("SELECT a - 1 FROM t", "SELECT a 1 FROM t"),
        ("INSERT INTO t (a) VALUES (1)", "INSERT INTO t (a, b) VALUES (1, 2)"),
        ("DELETE FROM t", "TRUNCATE t"),
        ("SELECT 'a' FROM t", "SELECT `a` FROM t"),
        ("SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE ID = 1"),
        ("SELECT * FROM t WHERE a IS NULL", "SELECT * FROM t WHERE a IS NOT NULL"),
        ("SELECT * FROM t WHERE a IS NULL", "SELECT * FROM t WHERE a IS 5"),
    ],
)
def test_fingerprints_tell_different_shapes_apart(first: str, second: str) -> None:
    assert fingerprint(first) != fingerprint(second)


def test_a_fingerprint_is_32_hex_digits() -> None:
    key = fingerprint("SELECT 1")
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    assert fingerprint("") != key
    assert fingerprint("SELECT \udcff FROM t") != fingerprint("SELECT \udcfe FROM t")


TEMPLATES = [
    "SELECT * FROM users WHERE id = {} AND name = {}",
    "SELECT a, b FROM t WHERE c IN ({}) AND d > {} ORDER BY a LIMIT {}",
    "INSERT INTO t (a, b) VALUES ({}, {})",
    "INSERT INTO t (a) VALUES ({}) ON DUPLICATE KEY UPDATE a = {}",
    "UPDATE t SET a = {}, b = {} WHERE id IN ({})",
    "DELETE FROM `logs` WHERE ts < {} AND level = {} LIMIT {}",
]
KEYWORDS = {"select", "from", "where", "and", "in", "order", "by", "limit", "insert", "into"}
KEYWORDS |= {"values", "on", "duplicate", "key", "update", "set", "delete"}


def _string_literal(content: str) -> str:
    escaped = content.replace("\\", "\\\\").replace("'", "''")
    return f"'{escaped}'"


LITERAL = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: repr(abs(f))),
    st.text(max_size=20).map(_string_literal),
    st.text(alphabet="0123456789abcdef", min_size=2, max_size=8).map(lambda h: f"0x{h}"),
)
LITERAL_LIST = st.lists(LITERAL, min_size=1, max_size=6).map(", ".join)
COUNT = st.integers(0, 10**6).map(str)
LAYOUT = st.lists(st.sampled_from([" ", "  ", "\n", "\t", " \n  "]), min_size=64, max_size=64)


def _fill(template: str, data: st.DataObject) -> str:
    pieces = template.split("{}")
    values = [
        data.draw(
            LITERAL_LIST
            if before.endswith("IN (")
            else COUNT
            if before.endswith("LIMIT ")
            else LITERAL
        )
        for before in pieces[:-1]
    ]
    text = pieces[0] + "".join(v + piece for v, piece in zip(values, pieces[1:], strict=True))
    spacing = iter(data.draw(LAYOUT))
    words = text.split(" ")
    return "".join(
        (word.lower() if data.draw(st.booleans()) and word.lower() in KEYWORDS else word)
        + (next(spacing, " ") if i < len(words) - 1 else "")
        for i, word in enumerate(words)
    )


@given(st.sampled_from(TEMPLATES), st.data())
@settings(max_examples=500)
def test_fingerprints_are_equal_for_statements_that_differ_only_in_literals_and_spacing(
    template: str, data: st.DataObject
) -> None:
    first, second = _fill(template, data), _fill(template, data)
    assert fingerprint(first) == fingerprint(second)
    assert classify(first) == classify(second)


@given(st.sampled_from(TEMPLATES), st.data())
def test_fingerprints_differ_when_a_table_changes(template: str, data: st.DataObject) -> None:
    query = _fill(template, data)
    renamed = re.sub(r"(?<![\w`$'])(?:users|t|`logs`)(?![\w`$'])", "other_table", query, count=1)
    assert renamed != query
    assert fingerprint(renamed) != fingerprint(query)


@pytest.mark.parametrize("query", STATEMENTS)
def test_a_redacted_statement_has_the_fingerprint_of_the_original(query: str) -> None:
    assert fingerprint(redact(query)) == fingerprint(query)
