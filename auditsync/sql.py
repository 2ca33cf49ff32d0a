"""What a logged statement does, and a form of it that is safe to keep.

The audit log records the text of every statement. This module reads that text the way an
auditor would: :func:`classify` names the kind of statement and the tables it reads and
writes, :func:`redact` takes out literals and passwords so the text can be stored, and
:func:`fingerprint` gives statements of one shape one key.

It is a scanner, not a parser. One ``re.split`` cuts the text into code and the tokens
whose content must never be read as code (strings, quoted names, comments); a *skeleton*
of the same length puts filler in place of those tokens, and a few grammar rules per
statement kind find the tables in it. All of it is linear in the length of the text and
done in C where it can be (``re``, ``str`` methods, ``map``): it runs once per audit event.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Callable
from itertools import compress, repeat
from operator import eq, itemgetter, mul
from typing import Final, Literal, NamedTuple

import attrs

__all__ = [
    "DCL_KINDS",
    "DDL_KINDS",
    "KINDS",
    "REDACTION_MODES",
    "TRANSACTION_KINDS",
    "WRITE_KINDS",
    "RedactionMode",
    "Statement",
    "classify",
    "fingerprint",
    "redact",
]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


#: Every value :attr:`Statement.kind` takes. ``OTHER`` means "not understood" and comes
#: with no tables.
KINDS: Final = _words(
    """
    SELECT INSERT UPDATE DELETE REPLACE LOAD_DATA LOAD_XML CALL DO HANDLER

    CREATE_TABLE ALTER_TABLE DROP_TABLE RENAME_TABLE TRUNCATE CREATE_INDEX DROP_INDEX
    CREATE_DATABASE ALTER_DATABASE DROP_DATABASE CREATE_VIEW ALTER_VIEW DROP_VIEW
    CREATE_SEQUENCE ALTER_SEQUENCE DROP_SEQUENCE CREATE_PROCEDURE ALTER_PROCEDURE
    DROP_PROCEDURE CREATE_FUNCTION ALTER_FUNCTION DROP_FUNCTION CREATE_PACKAGE DROP_PACKAGE
    CREATE_TRIGGER DROP_TRIGGER CREATE_EVENT ALTER_EVENT DROP_EVENT CREATE_SERVER
    ALTER_SERVER DROP_SERVER CREATE_TABLESPACE ALTER_TABLESPACE DROP_TABLESPACE

    GRANT REVOKE CREATE_USER ALTER_USER DROP_USER RENAME_USER SET_PASSWORD CREATE_ROLE
    DROP_ROLE SET_DEFAULT_ROLE

    BEGIN COMMIT ROLLBACK SAVEPOINT RELEASE_SAVEPOINT XA LOCK_TABLES UNLOCK_TABLES

    ANALYZE_TABLE CHECK_TABLE CHECKSUM_TABLE OPTIMIZE_TABLE REPAIR_TABLE

    SET USE SHOW EXPLAIN PREPARE EXECUTE DEALLOCATE FLUSH KILL RESET PURGE SHUTDOWN
    INSTALL_PLUGIN UNINSTALL_PLUGIN CHANGE_MASTER START_REPLICA STOP_REPLICA

    OTHER
    """
)

#: Kinds that define, change or drop a schema object (MySQL's "data definition").
DDL_KINDS: Final = frozenset(
    {"RENAME_TABLE", "TRUNCATE"}.union(
        kind
        for kind in KINDS
        if kind.startswith(("CREATE_", "ALTER_", "DROP_")) and not kind.endswith(("USER", "ROLE"))
    )
)

#: Kinds that change rows or definitions. ``CALL``, ``DO`` and ``EXECUTE`` are not among
#: them: the statements they run are logged, and classified, on their own.
WRITE_KINDS: Final = DDL_KINDS.union(
    _words("INSERT UPDATE DELETE REPLACE LOAD_DATA LOAD_XML OPTIMIZE_TABLE REPAIR_TABLE")
)

#: Kinds that begin, end or mark a transaction.
TRANSACTION_KINDS: Final = frozenset(_words("BEGIN COMMIT ROLLBACK SAVEPOINT RELEASE_SAVEPOINT XA"))

#: Kinds that manage accounts and privileges.
DCL_KINDS: Final = frozenset(
    _words(
        """GRANT REVOKE CREATE_USER ALTER_USER DROP_USER RENAME_USER SET_PASSWORD
        CREATE_ROLE DROP_ROLE SET_DEFAULT_ROLE"""
    )
)

RedactionMode = Literal["literals", "passwords"]

#: ``"literals"``: every literal and the text of every comment go; secrets become
#: ``*****``. ``"passwords"``: only secrets go, the rest is kept character for character.
REDACTION_MODES: Final[tuple[RedactionMode, ...]] = ("literals", "passwords")

#: What the server writes in place of a password, and so what :func:`redact` writes.
_MASK = "*****"


@attrs.frozen(slots=True)
class Statement:
    """What one statement does: its kind and the tables it writes and reads.

    Table names are as written (``db.table`` or ``table``, backquotes undone), each listed
    once, in order of appearance. Statements that do the same to the same tables compare
    equal whatever their text; :attr:`fingerprint` tells their shapes apart.
    """

    kind: str
    writes: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    query: str = attrs.field(default="", eq=False, repr=False)
    _fingerprint: str | None = attrs.field(default=None, init=False, eq=False, repr=False)

    @property
    def is_write(self) -> bool:
        """The statement changes rows (INSERT, UPDATE, ...) or definitions (DDL)."""
        return self.kind in WRITE_KINDS

    @property
    def is_ddl(self) -> bool:
        """The statement defines, changes or drops a schema object."""
        return self.kind in DDL_KINDS

    @property
    def is_dcl(self) -> bool:
        """The statement manages accounts or privileges."""
        return self.kind in DCL_KINDS

    @property
    def is_transaction_control(self) -> bool:
        """The statement begins, commits, rolls back or marks a transaction."""
        return self.kind in TRANSACTION_KINDS

    @property
    def fingerprint(self) -> str:
        """:func:`fingerprint` of :attr:`query`, computed when first asked for."""
        cached = self._fingerprint
        if cached is None:
            cached = fingerprint(self.query)
            object.__setattr__(self, "_fingerprint", cached)
        return cached


def classify(query: str) -> Statement:
    """Say what *query* does: its kind and the tables it writes and reads.

    Only the first statement of a multi-statement text is read. What cannot be understood
    is ``OTHER`` with no tables, never a guess. Never raises.
    """
    if len(query) > _BULK_INSERT_MIN:
        statement = _classify_bulk_insert(query)
        if statement is not None:
            return statement
    sql = _upper_ascii(_skeleton(query, _TOKEN_RUN))
    end = sql.find(";")
    scan = _Scan(query, sql if end < 0 else sql[:end])
    try:
        kind = _dispatch(scan, 0, 0)
        if kind != "OTHER" and scan.reads_everywhere:
            _scan_table_clauses(scan)
    except _TooComplex:
        kind = "OTHER"
    if kind == "OTHER":
        return Statement("OTHER", query=query)
    writes, reads = scan.tables()
    return Statement(kind, writes, reads, query=query)


def redact(query: str, *, mode: RedactionMode = "literals") -> str:
    """Return *query* without its secrets and, in ``"literals"`` mode, without literals.

    Secrets become ``*****`` in both modes: passwords after ``IDENTIFIED BY/WITH/VIA``,
    in ``SET PASSWORD`` and ``PASSWORD(...)`` and other key-taking functions,
    ``MASTER_PASSWORD`` and ``password =`` values, and what the server's own masking lets
    leak after its ``*****``. In ``"literals"`` mode strings also become ``'?'`` (or
    ``"?"``), numbers ``?``, and comments are emptied (``/* */``, ``-- ``, ``#``); names,
    keywords and the code of executable comments stay where they were. Idempotent.
    """
    if mode not in REDACTION_MODES:
        raise ValueError(f"redaction mode must be one of {REDACTION_MODES}, not {mode!r}")
    masked = _mask_secrets(query)
    if mode == "passwords":
        return masked
    text, names = _rewrite(masked, _TOKEN, _REDACTED, keep_executable=True)
    return _restore_names(text, names)


def fingerprint(query: str) -> str:
    """A 32-hex-digit key shared by statements that differ only in literals and layout.

    The statement is redacted and its comments dropped, runs of whitespace become one
    space, NULL counts as a literal (but not in ``IS NULL``), a sign after an operator joins
    its literal, a list of literals (``IN (1, 2)``, the rows of ``VALUES``) becomes one,
    keywords are upper-cased; then BLAKE2b hashes it.
    """
    text, names = _rewrite(_mask_secrets(query), _TOKEN_RUN, _FINGERPRINTED, keep_executable=False)
    text = _WHITESPACE.sub(" ", text).strip(" ;")
    text = _NULL_VALUE.sub("?", text)
    text = _SIGNED_LITERAL.sub("?", text)
    text = _LITERAL_LIST.sub("?", text)
    text = _REPEATED_ROW.sub(r"\1", text)
    pieces = _WORD.split(text)
    if len(pieces) > 1:
        words = pieces[1::2]
        pieces[1::2] = map(_KEYWORD_CASE.get, map(str.upper, words), words)
        text = "".join(pieces)
    text = _restore_names(text, names)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


# --- Lexing ---------------------------------------------------------------------------
#
# A token is text whose content must not be read as code. Every branch starts with a
# literal character, so ``re`` skips to the next candidate with a character-set scan
# instead of trying every branch at every position (ten times faster).
_QUOTED_NAME = r"`[^`]*+(?:``[^`]*+)*+`?"
_SINGLE_QUOTED = r"""'[^'\\]*+(?:(?:\\[\s\S]|'')[^'\\]*+)*+(?:'|\\?\Z)"""
_DOUBLE_QUOTED = r'"[^"\\]*+(?:(?:\\[\s\S]|"")[^"\\]*+)*+(?:"|\\?\Z)'


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


_TOKEN: Final = _lexicon("")
# For classifying and fingerprinting, where no single value matters, a list of strings
# (``IN ('a', 'b', ...)``, rows of VALUES) is one token: a tenth of the work on such lists.
_TOKEN_RUN: Final = _lexicon(rf"(?:\s*+,\s*+(?:{_SINGLE_QUOTED}|{_DOUBLE_QUOTED}))*+")
_first_char = itemgetter(0)

# The skeleton keeps code as it is and puts filler of the same length in place of each
# token: backquotes for quoted names, quotes for literals, spaces for comments and for
# the markers of executable comments. So a position in it is a position in the query.
_FILLER: Final = dict(zip("`'\"xXbB/*-#", "`''''''    ", strict=True))

# What a token becomes in redacted and in fingerprinted text, by its first character. A
# quoted name becomes a backquote, and is put back once the text is rewritten so no
# rewriting can touch it; a token without an entry stays as it is.
_REDACTED: Final = {
    **dict.fromkeys("`", "`"),
    **{"'": "'?'", '"': '"?"'},  # each its own quote, or '' " would become one string
    **dict.fromkeys("xXbB", "?"),
    **{"/": "/* */", "-": "-- ", "#": "#"},
}
_FINGERPRINTED: Final = {
    **dict.fromkeys("`", "`"),
    **dict.fromkeys("'\"xXbB", "?"),
    **dict.fromkeys("/*-#", " "),
}
_EXECUTABLE_OPENERS = ("/*!", "/*M!")

# A number that is not part of a name (``t1``, ``db2.col3``, ``@v1`` keep their digits).
# It starts with a character class for the fast scan; look-behinds check what precedes.
_NUMBER: Final = re.compile(
    r"[0-9.](?<![\w$.@][0-9.])"
    r"(?:(?<=0)[xX][0-9A-Fa-f]+|(?<=0)[bB][01]+"
    r"|(?<=[0-9])[0-9]*(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?"
    r"|(?<=\.)[0-9]+(?:[eE][-+]?[0-9]+)?)"
    r"(?![\w$.])"  # not before a dot either, or a second pass would find a new number
)
_ASCII_UPPER: Final = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)


def _skeleton(query: str, lexicon: re.Pattern[str]) -> str:
    """*query* with each token replaced by filler of the same length."""
    parts = lexicon.split(query)
    if len(parts) > 1:
        tokens = parts[1::2]
        fillers = map(_FILLER.__getitem__, map(_first_char, tokens))
        parts[1::2] = map(mul, fillers, map(len, tokens))
    return "".join(parts)


def _upper_ascii(text: str) -> str:
    """Upper-case ASCII letters only: keywords are ASCII, and no position may move."""
    return text.upper() if text.isascii() else text.translate(_ASCII_UPPER)


def _rewrite(
    query: str, lexicon: re.Pattern[str], forms: dict[str, str], *, keep_executable: bool
) -> tuple[str, list[str]]:
    """Put *forms* in place of tokens and ``?`` in place of numbers.

    Quoted names (and, if *keep_executable*, the openers of executable comments) become
    a backquote each; they are returned in order, for :func:`_restore_names`.
    """
    parts = lexicon.split(query)
    if len(parts) == 1:
        return _NUMBER.sub("?", query), []
    tokens = parts[1::2]
    if keep_executable and any(opener in query for opener in _EXECUTABLE_OPENERS):
        kept = [token[0] == "`" or token.startswith(_EXECUTABLE_OPENERS) for token in tokens]
        parts[1::2] = [
            "`" if keep else forms.get(t[0], t) for t, keep in zip(tokens, kept, strict=True)
        ]
    else:
        firsts = list(map(_first_char, tokens))
        kept = list(map(eq, firsts, repeat("`")))
        parts[1::2] = map(forms.get, firsts, tokens)
    return _NUMBER.sub("?", "".join(parts)), list(compress(tokens, kept))


def _restore_names(text: str, names: list[str]) -> str:
    """Put *names* back in place of the backquotes :func:`_rewrite` left."""
    if not names:
        return text
    pieces = text.split("`")
    joined = [""] * (len(pieces) + len(names))
    joined[0::2] = pieces
    joined[1::2] = names
    return "".join(joined)


# --- Secrets --------------------------------------------------------------------------
#
# Searched in the upper-cased skeleton, where every quote belongs to a string literal.
# The server masks ``IDENTIFIED BY 'x'`` as ``IDENTIFIED BY *****`` but knows neither
# doubled quotes nor the other forms: ``'it''s'`` leaves ``*****'s'`` behind.
_STRING = r"(?:_[A-Z0-9]+|[NXB])?'+"  # one or more strings, with a character set or prefix
# A secret: the server's mask, a hex number or a string, then every string that follows
# (MySQL joins adjacent strings, and the server's mask leaves remnants behind). Taking
# them all at once is what makes redacting twice the same as redacting once.
_SECRET = rf"(?:\*{{5}}|(?<![\w$])0X[0-9A-F]+(?![\w$])|{_STRING})(?:\s*{_STRING})*"
_AUTH_PLUGIN = r"(?:[\w$]+|'+|`+)"
_SECRET_CLAUSE: Final = re.compile(
    rf"""
      (?<![\w$@.])
      (?: IDENTIFIED\s+(?:BY|(?:VIA|WITH)\s+{_AUTH_PLUGIN}\s+(?:BY|AS|USING))
        | OR\s+{_AUTH_PLUGIN}\s+(?:BY|AS|USING)    # IDENTIFIED VIA a USING .. OR b USING ..
        | SET\s+PASSWORD\s+FOR\b[^=]*=
        | REPLACE                                  # ALTER USER .. REPLACE 'current'
      )
      \s*(?:PASSWORD\s*)?(?P<value>{_SECRET})
    | (?<![\w$])(?:MASTER_PASSWORD|SOURCE_PASSWORD|PASSWORD|AUTHENTICATION_STRING)(?![\w$])
      \s*=?\s*(?P<assigned>{_SECRET})
    """,
    re.VERBOSE,
)
_SECRET_FUNCTION: Final = re.compile(
    r"(?<![\w$.])(?:OLD_PASSWORD|PASSWORD|AES_ENCRYPT|AES_DECRYPT|DES_ENCRYPT|DES_DECRYPT"
    r"|ENCRYPT|ENCODE|DECODE|KDF)\s*\("
)
_SECRET_ARGUMENT: Final = re.compile(_SECRET)
# Words without which a statement holds no secret, looked for in C on every call.
_SECRET_HINTS = ("identified", "password", "crypt", "encode", "decode", "kdf", "authentication")


def _mask_secrets(query: str) -> str:
    """*query* with each secret, and what leaked past the server's ``*****``, as ``*****``."""
    lowered = query.lower()
    if not any(hint in lowered for hint in _SECRET_HINTS):
        return query
    sql = _upper_ascii(_skeleton(query, _TOKEN))
    spans = [
        m.span("value") if m.group("value") else m.span("assigned")
        for m in _SECRET_CLAUSE.finditer(sql)
    ]
    calls = [m.end() for m in _SECRET_FUNCTION.finditer(sql)]
    if calls:
        closing = _closing_parens(sql)
        arguments = [(start, closing.get(start - 1, len(sql))) for start in calls]
        for start, end in _merged(arguments):  # PASSWORD(PASSWORD(..)): each region once
            spans.extend(m.span() for m in _SECRET_ARGUMENT.finditer(sql, start, end))
    if not spans:
        return query
    pieces: list[str] = []
    done = 0
    for start, end in _merged(spans):
        pieces += (query[done:start], _MASK)
        done = end
    pieces.append(query[done:])
    return "".join(pieces)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The union of *spans*, as sorted spans that do not overlap."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _closing_parens(sql: str) -> dict[int, int]:
    """For each ``(`` that is closed, the position of its ``)``: one pass, however nested."""
    closing = {}
    opened: list[int] = []
    for m in _PARENS.finditer(sql):
        if sql[m.start()] == "(":
            opened.append(m.start())
        elif opened:
            closing[opened.pop()] = m.start()
    return closing


# --- Fingerprints ---------------------------------------------------------------------

_WHITESPACE: Final = re.compile(r"\s+")
# NULL as a value (``VALUES (1, NULL)``, ``= NULL``), not in ``IS [NOT] NULL``.
_NULL_VALUE: Final = re.compile(
    r"[Nn](?<![\w$@.][Nn])[Uu][Ll][Ll](?![\w$])"
    r"(?<![Ii][Ss] [Nn][Uu][Ll][Ll])(?<![Nn][Oo][Tt] [Nn][Uu][Ll][Ll])"
)
# A sign after an operator, a comma or a parenthesis belongs to the literal after it.
_SIGNED_LITERAL: Final = re.compile(r"[-+](?<![\w$`)?'\"][-+])(?<![\w$`)?'\"] [-+]) ?\?")
_LITERAL_LIST: Final = re.compile(r"\?(?: ?, ?\?)+")
_REPEATED_ROW: Final = re.compile(r"(\([^()`]*\))(?: ?, ?\1)+")
_WORD: Final = re.compile(r"([A-Za-z_][\w$]*)")

# The reserved words of MySQL 8 and MariaDB 11: never an unquoted table name or alias.
_RESERVED: Final = frozenset(
    _words(
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
# Upper-cased in fingerprints: reserved words, the words statements are made of, and the
# common functions. Names are left alone, even unquoted ones.
_KEYWORDS: Final = _RESERVED | frozenset(
    _words(
        """
        ACTION AFTER AGAINST AGGREGATE ALGORITHM ANY ASCII AT AUTOCOMMIT AUTO_INCREMENT AVG
        BEGIN BIT BODY BOOL BOOLEAN BTREE CACHE CASCADED CAST CHAIN CHARSET CHECKSUM CLOSE
        COALESCE COLLATION COLUMNS COMMENT COMMIT COMMITTED CONCAT CONCAT_WS CONCURRENT
        CONNECTION CONSISTENT COUNT DATA DATE DATETIME DATE_ADD DATE_FORMAT DATE_SUB DAY
        DEALLOCATE DEFINER DIRECTORY DISABLE DISCARD DO DUPLICATE DYNAMIC ENABLE END ENGINE
        ENGINES ENUM ERRORS ESCAPE EVENT EVENTS EVERY EXCHANGE EXECUTE EXTENDED EXTRACT FIELDS
        FIRST FIXED FLUSH FOLLOWING FORMAT FULL GLOBAL GRANTS GROUP_CONCAT HANDLER HASH HOSTS
        HOUR IDENTIFIED IFNULL IMMEDIATE INDEXES INSTANT INVOKER ISOLATION JSON JSON_EXTRACT
        JSON_OBJECT JSON_UNQUOTE LAST LENGTH LESS LEVEL LOCAL LOCKED LOGS LOWER MASTER MAX
        MERGE MICROSECOND MIN MINUTE MODE MODIFY MONTH NAMES NATIONAL NEXT NO NONE NOW NOWAIT
        NULLIF OFFLINE ONLINE ONLY OPEN OPTIONS OWNER PACKAGE PARSER PARTIAL PARTITIONS
        PASSWORD PERSISTENT PLUGIN PLUGINS PRECEDING PREPARE PREV PRIVILEGES PROCESSLIST
        QUARTER QUERY QUICK REBUILD RECOVER REDUNDANT REMOVE REORGANIZE REPAIR REPEATABLE
        REPLICA REPLICATION RESET RESTART RESUME RETURNS REUSE ROLE ROLLBACK ROLLUP ROUTINE
        ROW_FORMAT SAVEPOINT SECOND SECURITY SEQUENCE SERIALIZABLE SERVER SESSION SHARE
        SHARED SHUTDOWN SIGNED SIMPLE SKIP SLAVE SNAPSHOT SOME SONAME SOURCE SQL_CACHE
        SQL_NO_CACHE START STATEMENT STATUS STOP STORAGE STRING SUBSTR SUBSTRING SUM SUPER
        SUSPEND SYSTEM_TIME TABLES TABLESPACE TEMPORARY TEMPTABLE TEXT TIME TIMESTAMP
        TIMESTAMPADD TIMESTAMPDIFF TRANSACTION TRIGGERS TRIM TRUNCATE TYPE UNBOUNDED
        UNCOMMITTED UNDEFINED UNKNOWN UPPER USER VALUE VARIABLES VERSIONING VIEW WAIT
        WARNINGS WEEK WORK WRAPPER XA XML YEAR
        """
    )
)
_KEYWORD_CASE: Final = {word: word for word in _KEYWORDS}


# --- Classification ---------------------------------------------------------------------
#
# The patterns below run on the upper-cased skeleton: keywords are upper case, string
# literals runs of quotes, quoted names runs of backquotes, comments spaces. Whatever
# they find is read back from the query at the same position.

_PART = r"(?:`+|[\w$]+)"
_NAME: Final = re.compile(rf"\s*(?P<first>{_PART})(?:\s*\.\s*{_PART})?")
_SKELETON_PART: Final = re.compile(_PART)
_QUOTED_PART: Final = re.compile(r"`((?:[^`]|``)*)`?")
_FIRST_WORD: Final = re.compile(r"[\s(]*([A-Z_][A-Z0-9_]*)")
_NEXT_WORD: Final = re.compile(r"\s*([A-Z_][A-Z0-9_]*)")
_OPEN_PAREN: Final = re.compile(r"\s*(?:LATERAL\s*)?\(")
_PARENS: Final = re.compile(r"[()]")
_COMMA: Final = re.compile(r"\s*,")
_ALIAS: Final = re.compile(rf"(?:\s+AS(?![\w$]))?\s*(?P<alias>{_PART})")
_PARTITION: Final = re.compile(r"\s*PARTITION\s*\([^()]*\)")
_INDEX_HINTS: Final = re.compile(
    r"(?:\s*(?:USE|IGNORE|FORCE)\s+(?:INDEX|KEY)"
    r"(?:\s+FOR\s+(?:JOIN|ORDER\s+BY|GROUP\s+BY))?\s*\([^()]*\))+"
)
_SUBQUERY: Final = re.compile(r"\s*(?:(?:SELECT|WITH|VALUES|TABLE)(?![\w$])|\()")
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
_ASSIGNMENT_END: Final = re.compile(r"[(),]|(?<![\w$@.])(?:WHERE|ORDER|LIMIT|RETURNING)(?![\w$])")
_ASSIGNMENT_TARGET: Final = re.compile(rf"\s*({_PART}(?:\s*\.\s*{_PART}){{0,2}})\s*=")
_DELETE_TARGET: Final = re.compile(rf"\s*({_PART}(?:\s*\.\s*{_PART})?)(?:\s*\.\s*\*)?")
_KEYWORD_AT: Final = {
    word: re.compile(rf"\s*{word}(?![\w$])") for word in _words("FROM USING SET TO TABLE LIKE")
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
_COMMON_TABLE: Final = re.compile(rf"\s*{_PART}\s*(?:\([^()]*\)\s*)?AS\s*(?=\()")
_COMMON_TABLE_NAME: Final = re.compile(
    rf"(?:WITH(?<![\w$@.]WITH)(?:\s+RECURSIVE)?|,)\s*({_PART})\s*(?:\([^()]*\)\s*)?AS\s*\("
)
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
_FIRST_OR_LAST_AFTER: Final = re.compile(r"\s+(?:FIRST|LAST)\s+(?:RESPECT|IGNORE|OVER)(?![\w$])")
_SELECT_OPTIONS_BEFORE: Final = re.compile(
    r"(?<![\w$@.])SELECT(?:\s+(?:ALL|DISTINCT|DISTINCTROW|HIGH_PRIORITY|SQL_\w+))*\s+\Z"
)
# ``EXTRACT(YEAR FROM d)`` and its kin hold a FROM that opens no list of tables.
_FUNCTIONS_WITH_FROM: Final = _words("EXTRACT TRIM SUBSTR SUBSTRING MID OVERLAY")
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
# The kinds that may follow WITH, ANALYZE and EXPLAIN ANALYZE.
_QUERY_KINDS: Final = frozenset(_words("SELECT INSERT UPDATE DELETE REPLACE"))
# How deep WITH, SET STATEMENT .. FOR and ANALYZE may wrap a statement: a bound on
# recursion for hostile text, far above anything real.
_MAX_NESTING = 8
# An INSERT longer than this first tries the bulk path, which lexes only its head.
_BULK_INSERT_MIN = 4096
_BULK_HEAD = 2048
# The steps a classification may take per character of text before it says OTHER. Real
# statements take a fraction of one; only hostile nesting comes near, and it must not
# make the work grow with the square of the length.
_STEPS_PER_CHARACTER = 2
_STEPS_AT_LEAST = 1000


class _TooComplex(Exception):
    """The statement needs more steps than its length allows."""


class _Table(NamedTuple):
    name: str
    parts: tuple[str, ...]
    alias: str | None


class _Scan:
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
        self.tables_at: dict[int, _Table] = {}
        self.written: set[int] = set()
        self.not_clauses: set[int] = set()  # FROM and JOIN keywords already dealt with
        self.reads_everywhere = False
        self.steps_left = _STEPS_PER_CHARACTER * len(sql) + _STEPS_AT_LEAST

    def step(self) -> None:
        """Count a step; past the allowance, give up on the statement."""
        self.steps_left -= 1
        if self.steps_left < 0:
            raise _TooComplex

    def after_parens(self, open_at: int) -> int:
        """Where the parenthesis at *open_at* is closed (the position after it), or -1."""
        sql = self.sql
        depth = 0
        for m in _PARENS.finditer(sql, open_at):
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
                quoted = _QUOTED_PART.findall(self.query, m.start(), m.end())
                parts.extend(part.replace("``", "`") for part in quoted)
            else:
                parts.append(self.query[m.start() : m.end()])
        return tuple(parts)

    def name_at(self, pos: int) -> tuple[int, int, _Table] | None:
        """The table name at *pos*: where it starts and ends, and the name."""
        m = _NAME.match(self.sql, pos)
        if m is None or _is_keyword_or_number(m.group("first")):
            return None
        parts = self.parts(m.start("first"), m.end())
        return m.start("first"), m.end(), _Table(".".join(parts), parts, None)

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
    return word[0] != "`" and (word in _RESERVED or _NUMERIC.fullmatch(word) is not None)


def _dispatch(scan: _Scan, pos: int, depth: int) -> str:
    """Classify the statement at *pos* by its first word."""
    m = _FIRST_WORD.match(scan.sql, pos)
    if m is None or depth > _MAX_NESTING:
        return "OTHER"
    handler = _STATEMENTS.get(m.group(1))
    return "OTHER" if handler is None else handler(scan, m.end(), depth)


def _next_word(sql: str, pos: int) -> tuple[str, int]:
    m = _NEXT_WORD.match(sql, pos)
    return ("", pos) if m is None else (m.group(1), m.end())


def _skip(pattern: re.Pattern[str], sql: str, pos: int) -> int:
    m = pattern.match(sql, pos)
    return pos if m is None else m.end()


def _find_keyword(sql: str, word: str, pos: int) -> int:
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


def _table_references(scan: _Scan, pos: int) -> tuple[list[int], int]:
    """Record the tables of the list at *pos* (after FROM, JOIN, UPDATE or USING).

    Follows commas, joins and parenthesised groups; skips derived tables, whose own FROM
    clauses :func:`_scan_table_clauses` finds. Returns where the tables start and where
    the list ends.
    """
    sql = scan.sql
    found: list[int] = []
    depth = 0
    expect_table = True
    while True:
        if expect_table:
            paren = _OPEN_PAREN.match(sql, pos)
            if paren is not None and _SUBQUERY.match(sql, paren.end()) is None:
                depth += 1
                pos = paren.end()
                continue
            if paren is not None:
                pos = scan.after_parens(paren.end() - 1)
                if pos < 0:
                    return found, len(sql)
                _, pos = scan.alias_at(pos)
                columns = _OPEN_PAREN.match(sql, pos)
                if columns is not None:
                    pos = max(pos, scan.after_parens(columns.end() - 1))
            else:
                named = scan.name_at(pos)
                if named is None:
                    return found, pos
                start, pos, table = named
                call = _OPEN_PAREN.match(sql, pos)
                if call is not None:  # a table function, such as JSON_TABLE(...)
                    pos = scan.after_parens(call.end() - 1)
                    if pos < 0:
                        return found, len(sql)
                    _, pos = scan.alias_at(pos)
                else:
                    pos = _skip(_PARTITION, sql, pos)
                    alias, pos = scan.alias_at(pos)
                    pos = _skip(_INDEX_HINTS, sql, pos)
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
            columns = _OPEN_PAREN.match(sql, pos)
            pos = -1 if columns is None else scan.after_parens(columns.end() - 1)
            if pos < 0:
                return found, m.end()
        else:  # a comma or a join
            if sql[pos - 1] == "N":
                scan.not_clauses.add(pos - 4)
            expect_table = True


def _scan_table_clauses(scan: _Scan) -> None:
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
                _table_references(scan, end)
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


def _record_list(scan: _Scan, pos: int, *, write: bool) -> int:
    """Record a comma-separated list of table names; return where it ends."""
    while True:
        end = scan.record(pos, write=write)
        comma = None if end is None else _COMMA.match(scan.sql, end)
        if comma is None:
            return pos if end is None else end
        pos = comma.end()


# --- A handler for each first word ------------------------------------------------------
#
# A handler takes the scan, the position after its word and the depth of nesting,
# records the tables it finds and returns the kind.

_Handler = Callable[[_Scan, int, int], str]


def _select(scan: _Scan, pos: int, depth: int) -> str:
    scan.reads_everywhere = True
    return "SELECT"


def _table_statement(scan: _Scan, pos: int, depth: int) -> str:
    scan.record(pos)
    return _select(scan, pos, depth)


def _with(scan: _Scan, pos: int, depth: int) -> str:
    sql = scan.sql
    pos = _skip(_RECURSIVE, sql, pos)
    while True:
        m = _COMMON_TABLE.match(sql, pos)
        pos = -1 if m is None else scan.after_parens(m.end())
        if pos < 0:
            return "OTHER"
        comma = _COMMA.match(sql, pos)
        if comma is None:
            break
        pos = comma.end()
    kind = _dispatch(scan, pos, depth + 1)
    return kind if kind in _QUERY_KINDS else "OTHER"


def _insert_target(scan: _Scan, pos: int) -> int | None:
    """Record the table an INSERT or REPLACE writes; return where its name ends."""
    return scan.record(_skip(_MODIFIERS["INSERT"], scan.sql, pos), write=True)


def _inserting(kind: str) -> _Handler:
    def handler(scan: _Scan, pos: int, depth: int) -> str:
        end = _insert_target(scan, pos)
        source = None if end is None else _INSERT_SOURCE.match(scan.sql, end)
        if source is not None and source.group("word") == "TABLE":
            scan.record(source.end())
        scan.reads_everywhere = True
        return kind

    return handler


def _update(scan: _Scan, pos: int, depth: int) -> str:
    sql = scan.sql
    found, end = _table_references(scan, _skip(_MODIFIERS["UPDATE"], sql, pos))
    scan.reads_everywhere = True
    if len(found) <= 1:
        scan.written.update(found)
        return "UPDATE"
    set_at = _KEYWORD_AT["SET"].match(sql, end)
    targets = None if set_at is None else _assignment_targets(scan, set_at.end())
    _mark_written(scan, found, targets)
    return "UPDATE"


def _assignment_targets(scan: _Scan, pos: int) -> list[tuple[str, ...]] | None:
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


def _mark_written(scan: _Scan, found: list[int], qualifiers: list[tuple[str, ...]] | None) -> None:
    """Mark the tables *qualifiers* name as written: all of them where one cannot tell."""
    chosen = []
    for qualifier in qualifiers or [()]:
        at = _resolve(scan, found, qualifier) if qualifier else None
        if at is None:
            scan.written.update(found)
            return
        chosen.append(at)
    scan.written.update(chosen)


def _resolve(scan: _Scan, found: list[int], qualifier: tuple[str, ...]) -> int | None:
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


def _delete(scan: _Scan, pos: int, depth: int) -> str:
    sql = scan.sql
    pos = _skip(_MODIFIERS["DELETE"], sql, pos)
    scan.reads_everywhere = True
    from_at = _KEYWORD_AT["FROM"].match(sql, pos)
    if from_at is not None:  # DELETE FROM t ... or DELETE FROM t1, t2 USING ...
        scan.not_clauses.add(from_at.end() - 4)
        targets, end = _delete_targets(scan, from_at.end())
        using = _KEYWORD_AT["USING"].match(sql, end)
        if using is None:
            found, _ = _table_references(scan, from_at.end())
            scan.written.update(found[:1])
            return "DELETE"
        found, _ = _table_references(scan, using.end())
    else:  # DELETE t1, t2 FROM ...
        targets, end = _delete_targets(scan, pos)
        from_at = _KEYWORD_AT["FROM"].match(sql, end)
        if not targets or from_at is None:
            return "DELETE"
        scan.not_clauses.add(from_at.end() - 4)
        found, _ = _table_references(scan, from_at.end())
    for start, parts in targets:
        at = _resolve(scan, found, parts)
        if at is None:
            scan.tables_at.setdefault(start, _Table(".".join(parts), parts, None))
            at = start
        scan.written.add(at)
    return "DELETE"


def _delete_targets(scan: _Scan, pos: int) -> tuple[list[tuple[int, tuple[str, ...]]], int]:
    """The ``t1, t2.*`` list of a multi-table DELETE: where each name starts, and its parts."""
    targets: list[tuple[int, tuple[str, ...]]] = []
    while True:
        m = _DELETE_TARGET.match(scan.sql, pos)
        if m is None or scan.name_at(pos) is None:
            return targets, pos
        targets.append((m.start(1), scan.parts(*m.span(1))))
        comma = _COMMA.match(scan.sql, m.end())
        if comma is None:
            return targets, m.end()
        pos = comma.end()


def _load(scan: _Scan, pos: int, depth: int) -> str:
    word, pos = _next_word(scan.sql, pos)
    if word not in ("DATA", "XML"):
        return "OTHER"
    into = _find_keyword(scan.sql, "INTO", pos)
    table = None if into < 0 else _KEYWORD_AT["TABLE"].match(scan.sql, into + 4)
    if table is not None:
        scan.record(table.end(), write=True)
    scan.reads_everywhere = True
    return "LOAD_" + word


def _reading(kind: str) -> _Handler:
    def handler(scan: _Scan, pos: int, depth: int) -> str:
        scan.reads_everywhere = True
        return kind

    return handler


def _handler(scan: _Scan, pos: int, depth: int) -> str:
    found = scan.name_at(pos)
    if found is not None and _next_word(scan.sql, found[1])[0] in ("OPEN", "READ"):
        scan.tables_at.setdefault(found[0], found[2])
    return "HANDLER"


def _defining(verb: str) -> _Handler:
    """The handler of CREATE, ALTER or DROP, whose kind the next words name."""

    def handler(scan: _Scan, pos: int, depth: int) -> str:
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
        pos = _skip(_IF_EXISTS, sql, m.end())
        if thing == "INDEX":
            on = _find_keyword(sql, "ON", pos)
            if on >= 0:
                scan.record(on + 2, write=True)
        elif thing in ("TABLE", "VIEW", "SEQUENCE"):
            if verb == "DROP":
                _record_list(scan, pos, write=True)
            else:
                _defined_table(scan, pos, verb, thing)
        return kind

    return handler


def _defined_table(scan: _Scan, pos: int, verb: str, thing: str) -> None:
    """Record what CREATE or ALTER TABLE, VIEW or SEQUENCE writes, and what it reads."""
    sql = scan.sql
    end = scan.record(pos, write=True)
    if end is None or thing == "SEQUENCE":
        return
    if (verb, thing) == ("ALTER", "TABLE"):
        for rename in _RENAME_IN_ALTER.finditer(sql, end):
            scan.record(rename.end(), write=True)
        return
    like = _KEYWORD_AT["LIKE"].match(sql, _skip(_OPEN_PAREN, sql, end))
    if like is not None:
        scan.record(like.end())
    scan.reads_everywhere = True  # CREATE TABLE .. SELECT, CREATE VIEW .. AS SELECT


def _rename(scan: _Scan, pos: int, depth: int) -> str:
    sql = scan.sql
    word, pos = _next_word(sql, pos)
    if word == "USER":
        return "RENAME_USER"
    if word not in ("TABLE", "TABLES"):
        return "OTHER"
    pos = _skip(_IF_EXISTS, sql, pos)
    while True:
        end = scan.record(pos, write=True)
        to = None if end is None else _KEYWORD_AT["TO"].match(sql, _skip(_WAIT, sql, end))
        end = None if to is None else scan.record(to.end(), write=True)
        comma = None if end is None else _COMMA.match(sql, end)
        if comma is None:
            return "RENAME_TABLE"
        pos = comma.end()


def _truncate(scan: _Scan, pos: int, depth: int) -> str:
    scan.record(_skip(_KEYWORD_AT["TABLE"], scan.sql, pos), write=True)
    return "TRUNCATE"


def _maintaining(kind: str, *, write: bool) -> _Handler:
    """The handler of ANALYZE, CHECK, CHECKSUM, OPTIMIZE or REPAIR TABLE."""

    def handler(scan: _Scan, pos: int, depth: int) -> str:
        m = _TABLE_LIST.match(scan.sql, pos)
        if m is None:
            return "OTHER"
        _record_list(scan, m.end(), write=write)
        return kind

    return handler


_analyze_table = _maintaining("ANALYZE_TABLE", write=False)


def _analyze(scan: _Scan, pos: int, depth: int) -> str:
    """ANALYZE TABLE, or MariaDB's ANALYZE of a statement, which runs it."""
    if _TABLE_LIST.match(scan.sql, pos):
        return _analyze_table(scan, pos, depth)
    kind = _dispatch(scan, _skip(_FORMAT, scan.sql, pos), depth + 1)
    return kind if kind in _QUERY_KINDS else "OTHER"


def _explain(scan: _Scan, pos: int, depth: int) -> str:
    word, after = _next_word(scan.sql, pos)
    return _analyze(scan, after, depth) if word == "ANALYZE" else "EXPLAIN"


def _lock(scan: _Scan, pos: int, depth: int) -> str:
    sql = scan.sql
    word, pos = _next_word(sql, pos)
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
        comma = _COMMA.match(sql, lock.end())
        if comma is None:
            return "LOCK_TABLES"
        pos = comma.end()


def _set(scan: _Scan, pos: int, depth: int) -> str:
    sql = scan.sql
    word, after = _next_word(sql, pos)
    if word == "STATEMENT":
        at = _find_keyword(sql, "FOR", after)
        return "OTHER" if at < 0 else _dispatch(scan, at + 3, depth + 1)
    if word == "PASSWORD":
        return "SET_PASSWORD"
    if word == "DEFAULT" and _next_word(sql, after)[0] == "ROLE":
        return "SET_DEFAULT_ROLE"
    scan.reads_everywhere = True  # SET @x = (SELECT ...)
    return "SET"


def _by_next_word(kinds: dict[str, str], otherwise: str = "OTHER") -> _Handler:
    def handler(scan: _Scan, pos: int, depth: int) -> str:
        return kinds.get(_next_word(scan.sql, pos)[0], otherwise)

    return handler


def _fixed(kind: str) -> _Handler:
    def handler(scan: _Scan, pos: int, depth: int) -> str:
        return kind

    return handler


def _change(scan: _Scan, pos: int, depth: int) -> str:
    word, after = _next_word(scan.sql, pos)
    if word == "MASTER" or (word, _next_word(scan.sql, after)[0]) == ("REPLICATION", "SOURCE"):
        return "CHANGE_MASTER"
    return "OTHER"


_KNOWN_KINDS: Final = frozenset(KINDS)
_REPLICAS = _words("SLAVE SLAVES REPLICA REPLICAS ALL")
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
    head = _upper_ascii(_skeleton(query[:_BULK_HEAD], _TOKEN_RUN))
    first = _FIRST_WORD.match(head)
    if first is None or first.group(1) not in ("INSERT", "REPLACE"):
        return None
    scan = _Scan(query, head)
    end = _insert_target(scan, first.end())
    source = None if end is None else _INSERT_SOURCE.match(head, end)
    if source is None or source.group("word") == "TABLE" or source.end() > _BULK_HEAD - 16:
        return None
    if "select" in query[source.end() :].lower():
        return None
    writes, reads = scan.tables()
    return Statement(first.group(1), writes, reads, query=query)
