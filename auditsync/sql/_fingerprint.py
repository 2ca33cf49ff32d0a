"""One key for every statement of the same shape: :func:`fingerprint`.

The statement is rewritten token by token (:mod:`._lexer`) with its secrets masked
(:mod:`._redact`), then normalised by a few patterns, then hashed.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from ._lexer import RESERVED, TOKEN_RUN, restore_names, rewrite, words
from ._redact import mask_secrets

__all__ = ["fingerprint"]


def fingerprint(query: str) -> str:
    """A 32-hex-digit key shared by statements that differ only in literals and layout.

    The statement is redacted and its comments dropped, runs of whitespace become one
    space, NULL counts as a literal (but not in ``IS NULL``), a sign after an operator joins
    its literal, a list of literals (``IN (1, 2)``, the rows of ``VALUES``) becomes one,
    keywords are upper-cased; then BLAKE2b hashes it.
    """
    text, names = rewrite(mask_secrets(query), TOKEN_RUN, _FINGERPRINTED, keep_executable=False)
    text = _WHITESPACE.sub(" ", text).strip(" ;")
    text = _NULL_VALUE.sub("?", text)
    text = _SIGNED_LITERAL.sub("?", text)
    text = _LITERAL_LIST.sub("?", text)
    text = _REPEATED_ROW.sub(r"\1", text)
    pieces = _WORD.split(text)
    if len(pieces) > 1:
        spelled = pieces[1::2]
        pieces[1::2] = map(_KEYWORD_CASE.get, map(str.upper, spelled), spelled)
        text = "".join(pieces)
    text = restore_names(text, names)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


# What a token becomes in fingerprinted text, by its first character: a quoted name a
# backquote (put back at the end), a literal ``?``, a comment a space.
_FINGERPRINTED: Final = {
    **dict.fromkeys("`", "`"),
    **dict.fromkeys("'\"xXbB", "?"),
    **dict.fromkeys("/*-#", " "),
}

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

# Upper-cased in fingerprints: reserved words, the words statements are made of, and the
# common functions. Names are left alone, even unquoted ones.
_KEYWORDS: Final = RESERVED | frozenset(
    words(
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
