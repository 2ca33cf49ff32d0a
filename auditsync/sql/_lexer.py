"""The lexical grammar of MySQL and MariaDB statements: one home for every reader of SQL.

A *token* is text whose content must never be read as code: a quoted name, a string or a
hex/bit literal, a comment, or the marker that opens or closes an executable comment
(``/*!50001 ... */``, ``/*M!100100 ... */``, whose content the server runs, so it is
code). :data:`TOKEN` cuts a text into code and tokens with one ``re.split``; everything
else here is built on that cut:

- :func:`skeleton`: the text with filler of the same length in place of each token, so a
  position in it is a position in the text, and patterns can look for keywords without
  ever matching inside a literal, a name or a comment.
- :func:`rewrite` and :func:`restore_names`: the text with a chosen form in place of each
  token and ``?`` in place of each number (redaction and fingerprints).
- :class:`Lexed`: a statement with two same-length views (names kept, names blanked),
  whether the text was cut short, and its parenthesis structure (replay).
- :func:`quote_name`, :func:`unquote_name`, :data:`IDENT`: backquoted names.

It follows the default SQL mode: ``"..."`` is a string, and ``\\`` escapes in strings.
"""

from __future__ import annotations

import re
import string
from itertools import compress, repeat
from operator import eq, itemgetter, mul
from typing import Final

import attrs

__all__ = [
    "EXECUTABLE_OPENERS",
    "IDENT",
    "NAME_PART",
    "NUMBER",
    "PARENS",
    "RESERVED",
    "STRING",
    "SUBQUERY_START",
    "TOKEN",
    "TOKEN_RUN",
    "Lexed",
    "closing_parens",
    "quote_name",
    "restore_names",
    "rewrite",
    "skeleton",
    "unquote_name",
    "upper_ascii",
    "words",
]


def words(text: str) -> tuple[str, ...]:
    """The words of a whitespace-separated list, in order: how keyword tables are written."""
    return tuple(text.split())


# --- Tokens ---------------------------------------------------------------------------
#
# Every branch starts with a literal character, so ``re`` skips to the next candidate
# with a character-set scan instead of trying every branch at every position (ten times
# faster). An unclosed string, name or comment runs to the end of the text.
_QUOTED_NAME_BODY = r"`[^`]*+(?:``[^`]*+)*+"
_QUOTED_NAME = _QUOTED_NAME_BODY + "`?"
_SINGLE_QUOTED_BODY = r"'[^'\\]*+(?:(?:\\[\s\S]|'')[^'\\]*+)*+"
_DOUBLE_QUOTED_BODY = r'"[^"\\]*+(?:(?:\\[\s\S]|"")[^"\\]*+)*+'
_SINGLE_QUOTED = _SINGLE_QUOTED_BODY + r"(?:'|\\?\Z)"
_DOUBLE_QUOTED = _DOUBLE_QUOTED_BODY + r'(?:"|\\?\Z)'

#: How an executable comment opens; its ``*/`` is a token of its own.
EXECUTABLE_OPENERS: Final = ("/*!", "/*M!")


def _lexicon(string_tail: str) -> re.Pattern[str]:
    """The tokens, with *string_tail* allowed after each string."""
    return re.compile(
        "("
        rf"{_QUOTED_NAME}(?:\.{_QUOTED_NAME})*+"  # `db`.`table` as one token: half the work
        rf"|{_SINGLE_QUOTED}{string_tail}|{_DOUBLE_QUOTED}{string_tail}"
        r"|/\*M?!\d*"  # opens an executable comment, whose content is code
        r"|/\*[\s\S]*?(?:\*/|\Z)"
        r"|\*/(?!\*)"  # closes an executable comment (but ``2*/*c*/3`` multiplies)
        r"|--(?=[\s\x00-\x1f]|\Z)[^\n]*"  # the server wants a space or control after ``--``
        r"|\#[^\n]*"
        r"|x'[0-9A-Fa-f]*'|X'[0-9A-Fa-f]*'|b'[01]*'|B'[01]*'"
        ")"
    )


#: The tokens, as one capturing group: ``TOKEN.split(text)`` alternates code and tokens,
#: and joins back to the text. A token's first character says what it is.
TOKEN: Final = _lexicon("")
#: The same, but a comma-separated list of strings (``IN ('a', 'b', ...)``, rows of
#: VALUES) is one token: for classifying and fingerprinting, where no single value
#: matters, a tenth of the work on such lists.
TOKEN_RUN: Final = _lexicon(rf"(?:\s*+,\s*+(?:{_SINGLE_QUOTED}|{_DOUBLE_QUOTED}))*+")

#: One part of a name token (`` `db`.`table` `` is one token), as written, backquotes and all.
NAME_PART: Final = re.compile(_QUOTED_NAME)
#: A closed string literal, single- or double-quoted: a pattern to build others with.
STRING: Final = rf"{_SINGLE_QUOTED_BODY}'|{_DOUBLE_QUOTED_BODY}\""
# Only the last token of a text can be open: the others end where a closed one does.
_CLOSED_STRING: Final = re.compile(STRING)

#: A name as written: backquoted (``` `` ``` inside), or bare (MySQL allows U+0080..U+FFFF).
IDENT: Final = rf"(?:{_QUOTED_NAME_BODY}`|[0-9A-Za-z_$\u0080-\uffff]++)"

#: A number that is not part of a name (``t1``, ``db2.col3``, ``@v1`` keep their digits).
#: It starts with a character class for the fast scan; look-behinds check what precedes.
NUMBER: Final = re.compile(
    r"[0-9.](?<![\w$.@][0-9.])"
    r"(?:(?<=0)[xX][0-9A-Fa-f]+|(?<=0)[bB][01]+"
    r"|(?<=[0-9])[0-9]*(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?"
    r"|(?<=\.)[0-9]+(?:[eE][-+]?[0-9]+)?)"
    r"(?![\w$.])"  # not before a dot either, or a second pass would find a new number
)

#: The reserved words of MySQL 8 and MariaDB 11: never an unquoted name.
RESERVED: Final = frozenset(
    words(
        """
        ACCESSIBLE ADD ALL ALTER ANALYZE AND AS ASC ASENSITIVE BEFORE BETWEEN BIGINT BINARY
        BLOB BOTH BY CALL CASCADE CASE CHANGE CHAR CHARACTER CHECK COLLATE COLUMN CONDITION
        CONSTRAINT CONTINUE CONVERT CREATE CROSS CUBE CUME_DIST CURRENT_DATE CURRENT_ROLE
        CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER CURSOR DATABASE DATABASES DAY_HOUR
        DAY_MICROSECOND DAY_MINUTE DAY_SECOND DEC DECIMAL DECLARE DEFAULT DELAYED DELETE
        DELETE_DOMAIN_ID DENSE_RANK DESC DESCRIBE DETERMINISTIC DISTINCT DISTINCTROW DIV
        DO_DOMAIN_IDS DOUBLE DROP DUAL EACH ELSE ELSEIF EMPTY ENCLOSED ESCAPED EXCEPT EXISTS
        EXIT EXPLAIN FALSE FETCH FIRST_VALUE FLOAT FLOAT4 FLOAT8 FOR FORCE FOREIGN FROM
        FULLTEXT FUNCTION GENERAL GENERATED GET GRANT GROUP GROUPING GROUPS HAVING
        HIGH_PRIORITY HOUR_MICROSECOND HOUR_MINUTE HOUR_SECOND IF IGNORE IGNORE_DOMAIN_IDS
        IGNORE_SERVER_IDS IN INDEX INFILE INNER INOUT INSENSITIVE INSERT INT INT1 INT2 INT3
        INT4 INT8 INTEGER INTERSECT INTERVAL INTO IO_AFTER_GTIDS IO_BEFORE_GTIDS IS ITERATE
        JOIN JSON_TABLE KEY KEYS KILL LAG LAST_VALUE LATERAL LEAD LEADING LEAVE LEFT LIKE
        LIMIT LINEAR LINES LOAD LOCALTIME LOCALTIMESTAMP LOCK LONG LONGBLOB LONGTEXT LOOP
        LOW_PRIORITY MASTER_BIND MASTER_HEARTBEAT_PERIOD MASTER_SSL_VERIFY_SERVER_CERT MATCH
        MAXVALUE MEDIUMBLOB MEDIUMINT MEDIUMTEXT MIDDLEINT MINUTE_MICROSECOND MINUTE_SECOND
        MINUS MOD MODIFIES NATURAL NOT NO_WRITE_TO_BINLOG NTH_VALUE NTILE NULL NUMERIC OF
        OFFSET ON OPTIMIZE OPTIMIZER_COSTS OPTION OPTIONALLY OR ORDER OUT OUTER OUTFILE OVER
        PAGE_CHECKSUM PARSE_VCOL_EXPR PARTITION PERCENT_RANK POSITION PRECISION PRIMARY
        PROCEDURE PURGE RANGE RANK READ READS READ_WRITE REAL RECURSIVE REFERENCES
        REF_SYSTEM_ID REGEXP RELEASE RENAME REPEAT REPLACE REQUIRE RESIGNAL RESTRICT RETURN
        RETURNING REVOKE RIGHT RLIKE ROW ROWS ROW_NUMBER SCHEMA SCHEMAS SECOND_MICROSECOND
        SELECT SENSITIVE SEPARATOR SET SHOW SIGNAL SLOW SMALLINT SPATIAL SPECIFIC SQL
        SQLEXCEPTION SQLSTATE SQLWARNING SQL_BIG_RESULT SQL_CALC_FOUND_ROWS SQL_SMALL_RESULT
        SSL STARTING STATS_AUTO_RECALC STATS_PERSISTENT STATS_SAMPLE_PAGES STORED
        STRAIGHT_JOIN SYSTEM TABLE TERMINATED THEN TINYBLOB TINYINT TINYTEXT TO TRAILING
        TRIGGER TRUE UNDO UNION UNIQUE UNLOCK UNSIGNED UPDATE USAGE USE USING UTC_DATE
        UTC_TIME UTC_TIMESTAMP VALUES VARBINARY VARCHAR VARCHARACTER VARYING VIRTUAL WHEN
        WHERE WHILE WINDOW WITH WRITE XOR YEAR_MONTH ZEROFILL
        """
    )
)


# --- The skeleton ---------------------------------------------------------------------
#
# Filler of a token's length, by its first character: backquotes for quoted names,
# quotes for literals, spaces for comments and for the markers of executable comments.
_FILLER: Final = dict(zip("`'\"xXbB/*-#", "`''''''    ", strict=True))
_first_char = itemgetter(0)
_ASCII_UPPER: Final = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)
#: A parenthesis.
PARENS: Final = re.compile(r"[()]")
#: What opens a subquery, or a row or parenthesis inside one, after an opening parenthesis.
SUBQUERY_START: Final = re.compile(r"\s*(?:(?:SELECT|WITH|VALUES|TABLE)(?![\w$])|\()")
_LIST_MARKS: Final = re.compile(r"[(),]")


def skeleton(query: str, lexicon: re.Pattern[str] = TOKEN) -> str:
    """*query* with each token replaced by filler of the same length.

    Every ``*/`` counts as the end of an executable comment here, open or not: outside
    one it is a syntax error, so no valid statement reads differently. :class:`Lexed`
    tells the two apart, for the replay's sake.
    """
    parts = lexicon.split(query)
    if len(parts) > 1:
        tokens = parts[1::2]
        fillers = map(_FILLER.__getitem__, map(_first_char, tokens))
        parts[1::2] = map(mul, fillers, map(len, tokens))
    return "".join(parts)


def upper_ascii(text: str) -> str:
    """Upper-case ASCII letters only: keywords are ASCII, and no position may move."""
    return text.upper() if text.isascii() else text.translate(_ASCII_UPPER)


def closing_parens(sql: str) -> dict[int, int]:
    """For each ``(`` of *sql* (a skeleton), where its ``)`` is; an unclosed one's is the end.

    One pass, however deep the nesting.
    """
    closing: dict[int, int] = {}
    opened: list[int] = []
    for m in PARENS.finditer(sql):
        if sql[m.start()] == "(":
            opened.append(m.start())
        elif opened:
            closing[opened.pop()] = m.start()
    for start in opened:
        closing[start] = len(sql)
    return closing


# --- Rewriting ------------------------------------------------------------------------


def rewrite(
    query: str, lexicon: re.Pattern[str], forms: dict[str, str], *, keep_executable: bool
) -> tuple[str, list[str]]:
    """Put *forms* (by a token's first character) in place of tokens and ``?`` of numbers.

    A token without a form stays as it is. Quoted names (and, if *keep_executable*, the
    openers of executable comments) become a backquote each, so that no later rewriting
    can touch them; they are returned in order, for :func:`restore_names`.
    """
    parts = lexicon.split(query)
    if len(parts) == 1:
        return NUMBER.sub("?", query), []
    tokens = parts[1::2]
    if keep_executable and any(opener in query for opener in EXECUTABLE_OPENERS):
        kept = [token[0] == "`" or token.startswith(EXECUTABLE_OPENERS) for token in tokens]
        parts[1::2] = [
            "`" if keep else forms.get(t[0], t) for t, keep in zip(tokens, kept, strict=True)
        ]
    else:
        firsts = list(map(_first_char, tokens))
        kept = list(map(eq, firsts, repeat("`")))
        parts[1::2] = map(forms.get, firsts, tokens)
    return NUMBER.sub("?", "".join(parts)), list(compress(tokens, kept))


def restore_names(text: str, names: list[str]) -> str:
    """Put *names* back in place of the backquotes :func:`rewrite` left."""
    if not names:
        return text
    pieces = text.split("`")
    joined = [""] * (len(pieces) + len(names))
    joined[0::2] = pieces
    joined[1::2] = names
    return "".join(joined)


# --- Names ----------------------------------------------------------------------------


def quote_name(name: str) -> str:
    """*name* in backquotes, its own backquotes doubled."""
    return "`" + name.replace("`", "``") + "`"


def unquote_name(name: str) -> str:
    """One part of a name as written, backquotes undone; a bare name as it is.

    An unclosed name (the text was cut inside it) loses only its opening backquote.
    """
    if not name.startswith("`"):
        return name
    body = name[1:-1] if len(name) > 1 and name.count("`") % 2 == 0 else name[1:]
    return body.replace("``", "`")


# --- A statement lexed once -----------------------------------------------------------


def _name_filler(part: re.Match[str]) -> str:
    return "`" + "_" * (len(part.group()) - 2) + "`" if len(part.group()) > 1 else "`"


def _unclosed(token: str) -> bool:
    """Whether a token that ends the text lacks its closing mark."""
    first = token[0]
    if first == "`":
        return token.count("`") % 2 == 1  # each closed part holds an even number
    if first in "'\"":
        return _CLOSED_STRING.fullmatch(token) is None
    return first == "/" and (len(token) < 4 or not token.endswith("*/"))


@attrs.frozen(slots=True)
class Lexed:
    """A statement and two views of it, each of the text's length.

    ``code`` keeps names and code and fills strings and comments (quotes for literals,
    spaces for comments); ``bare`` (upper-cased ASCII) also fills quoted names, keeping
    their backquotes and the dots between parts (`` `db`.`t` `` is `` `__`.`_` ``), so
    keywords and function names can be searched for without ever matching inside a
    literal or a name. Unlike :func:`skeleton`, a ``*/`` with no executable comment open
    stays code in both.
    """

    text: str
    code: str
    bare: str
    #: The text ends inside a string, name, comment or executable comment, or with a
    #: parenthesis open: the server cut it (``server_audit_query_log_limit``), or the
    #: client sent a broken one.
    cut: bool = False

    @classmethod
    def of(cls, text: str) -> Lexed:
        """Lex *text* once."""
        parts = TOKEN.split(text)
        code = parts[:]
        bare = parts[:]
        executable = False
        for i in range(1, len(parts), 2):
            token = parts[i]
            first = token[0]
            if first == "`":
                bare[i] = NAME_PART.sub(_name_filler, token)
                continue
            if first == "*":
                if not executable:
                    continue  # ``*/`` in code: a multiplication before a division
                executable = False
            elif first == "/" and token.startswith(EXECUTABLE_OPENERS):
                executable = True
            code[i] = bare[i] = _FILLER[first] * len(token)
        upper = upper_ascii("".join(bare))
        cut = (
            executable
            or (len(parts) > 1 and not parts[-1] and _unclosed(parts[-2]))
            or upper.count("(") != upper.count(")")
        )
        return cls(text, "".join(code), upper, cut)

    def closing(self) -> dict[int, int]:
        """Where each parenthesis of the code closes; an unclosed one closes at the end."""
        return closing_parens(self.bare)

    def flat(self) -> str:
        """``bare`` with everything inside parentheses blanked: the statement's top level."""
        pieces: list[str] = []
        depth = 0
        last = 0
        for match in PARENS.finditer(self.bare):
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
        """The spans of a comma-separated list between *start* and *end*, at its top level."""
        spans: list[tuple[int, int]] = []
        depth = 0
        first = start
        for match in _LIST_MARKS.finditer(self.bare, start, end):
            char = match.group()
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
            elif depth == 0:
                spans.append((first, match.start()))
                first = match.start() + 1
        spans.append((first, end))
        return spans
