"""What a statement's text says about rows: its literals, read as the server reads them.

A change feed wants the values a statement wrote and the rows it targeted, and nothing it
would have to guess. This reads, on the one lexer (``_lexer``):

- :func:`literal`: one literal as the server reads it in the default SQL mode: integers,
  exact decimals, approximate numbers, strings with the server's escapes, adjacent strings
  joined, a character set introducer and a ``COLLATE`` clause, hex and bit literals as
  bytes, ``NULL``, ``TRUE`` and ``FALSE``. Anything else is :data:`NOT_LITERAL`.
- :func:`insert_shape`: an INSERT's or REPLACE's column list and rows (``VALUES`` or
  ``SET``), with where each value is, so its literal can be read.
- :func:`update_assigns` and :func:`assignments`: what an UPDATE's ``SET`` assigns.
- :func:`where_pins`: the columns a single-table UPDATE's or DELETE's ``WHERE`` pins to
  literals, when it is a conjunction.

None of it raises: text it cannot read decides nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Final

import attrs

from ._lexer import EXECUTABLE_OPENERS, IDENT, STRING, SUBQUERY_START, TOKEN, Lexed
from ._lexer import unquote_name as unquote

__all__ = [
    "NOT_LITERAL",
    "InsertShape",
    "NotLiteral",
    "Value",
    "assignments",
    "insert_shape",
    "literal",
    "update_assigns",
    "where_pins",
]

#: What a literal reads as.
Value = int | Decimal | float | str | bytes | None


class NotLiteral:
    """The answer for text that is not one literal: an expression, a name, a broken text."""

    _instance: NotLiteral | None = None

    def __new__(cls) -> NotLiteral:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_LITERAL"

    def __bool__(self) -> bool:
        return False


NOT_LITERAL: Final = NotLiteral()

# --- One literal ------------------------------------------------------------------------------

_INTEGER: Final = re.compile(r"[0-9]+")
_DECIMAL: Final = re.compile(r"[0-9]+\.[0-9]*|\.[0-9]+")
_APPROXIMATE: Final = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+")
_HEX_NUMBER: Final = re.compile(r"0x([0-9A-Fa-f]+)")
_BIT_NUMBER: Final = re.compile(r"0b([01]+)")
_SIGNS: Final = re.compile(r"([-+]\s*)+")
_INTRODUCER: Final = re.compile(r"_([0-9A-Za-z]+)|[nN]")
_COLLATE: Final = re.compile(r"COLLATE\s+(?:[0-9A-Za-z_$]+|`[^`]+`)", re.IGNORECASE)
_WORDS: Final = {"NULL": None, "TRUE": 1, "FALSE": 0}
#: The server's escapes inside a string (``\%`` and ``\_`` keep their backslash: they are
#: LIKE's, and mean the same in a plain string); any other escaped character is itself.
_ESCAPES: Final = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}
_SINGLE_PARTS: Final = re.compile(r"\\([\s\S])|''")
_DOUBLE_PARTS: Final = re.compile(r'\\([\s\S])|""')
_CLOSED: Final = re.compile(STRING)


def _string(token: str) -> str | None:
    """A closed quoted string's value; ``None`` if the token is not one."""
    if _CLOSED.fullmatch(token) is None:
        return None
    quote = token[0]
    pattern = _SINGLE_PARTS if quote == "'" else _DOUBLE_PARTS
    return pattern.sub(_unescaped, token[1:-1])


def _unescaped(match: re.Match[str]) -> str:
    escaped = match.group(1)
    if escaped is None:
        return match.group()[0]  # a doubled quote is one
    if escaped in "%_":
        return "\\" + escaped
    return _ESCAPES.get(escaped, escaped)


def _number(code: str) -> Value | NotLiteral:
    """A number, ``NULL``, ``TRUE`` or ``FALSE`` written as code, signs and all."""
    sign = 1
    signs = _SIGNS.match(code)
    if signs is not None:
        sign = -1 if signs.group().count("-") % 2 else 1
        code = code[signs.end() :]
        if not code or code[0] in "-+":
            return NOT_LITERAL
    # Decimal arithmetic would round to the context's 28 digits: build the signed text.
    signed = code if sign == 1 else "-" + code
    if _INTEGER.fullmatch(code):
        return int(signed)
    if _DECIMAL.fullmatch(code):
        return Decimal(signed)
    if _APPROXIMATE.fullmatch(code):
        return float(signed)
    if signs is not None:
        return NOT_LITERAL  # -NULL, -0x1F: expressions, not literals
    word = code.upper()
    if word in _WORDS:
        return _WORDS[word]
    hexadecimal = _HEX_NUMBER.fullmatch(code)
    if hexadecimal is not None:
        digits = hexadecimal.group(1)
        return bytes.fromhex(digits if len(digits) % 2 == 0 else "0" + digits)
    bits = _BIT_NUMBER.fullmatch(code)
    if bits is not None:
        return _bits(bits.group(1))
    return NOT_LITERAL


def _bits(digits: str) -> bytes:
    if not digits:
        return b""
    return int(digits, 2).to_bytes((len(digits) + 7) // 8, "big")


def literal(text: str) -> Value | NotLiteral:
    """The value of one literal, as the server reads it; :data:`NOT_LITERAL` otherwise.

    Comments around it are ignored. A string with the ``_binary`` introducer is bytes, as
    are hex (``X'4142'``, ``0x4142``) and bit (``b'01'``, ``0b01``) literals; other
    introducers and ``COLLATE`` leave a string a string.
    """
    parts = TOKEN.split(text)
    code: list[str] = []  # the code between tokens, comments dropped
    tokens: list[str] = []
    pending = parts[0]
    for i in range(1, len(parts), 2):
        token = parts[i]
        if token.startswith(EXECUTABLE_OPENERS) or token.startswith("*/"):
            return NOT_LITERAL  # the content of an executable comment is code
        if token[0] in "/-#":
            pending += " " + parts[i + 1]  # a comment is white space
            continue
        code.append(pending.strip())
        tokens.append(token)
        pending = parts[i + 1]
    code.append(pending.strip())
    if not tokens:
        return _number(code[0])
    if any(code[1:-1]) or (code[-1] and not _COLLATE.fullmatch(code[-1])):
        return NOT_LITERAL
    introducer = _INTRODUCER.fullmatch(code[0]) if code[0] else None
    if code[0] and introducer is None:
        return NOT_LITERAL
    first = tokens[0][0]
    if first in "xXbB":
        if len(tokens) != 1 or code[-1] or (code[0] and introducer is None):
            return NOT_LITERAL
        digits = tokens[0][2:-1]
        if first in "xX":
            # An odd number of digits is the server's syntax error, not a value.
            return NOT_LITERAL if len(digits) % 2 else bytes.fromhex(digits)
        return _bits(digits)
    values = [_string(token) for token in tokens]
    if any(
        value is None or token[0] not in "'\"" for value, token in zip(values, tokens, strict=True)
    ):
        return NOT_LITERAL
    joined = "".join(value for value in values if value is not None)
    if introducer is not None and (introducer.group(1) or "").lower() == "binary":
        return joined.encode("utf-8", "surrogateescape")
    return joined


# --- The shape of an INSERT and the columns an UPDATE assigns --------------------------------

_INSERT_HEAD: Final = re.compile(
    r"\s*(?:SET\s+STATEMENT\s[\s\S]*?\sFOR\s+)?(?:INSERT|REPLACE)"
    r"(?:\s+(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)(?![\w$]))*\s*(?:INTO(?![\w$]))?\s*"
)
_UPDATE_HEAD: Final = re.compile(r"\s*(?:SET\s+STATEMENT\s[\s\S]*?\sFOR\s+)?UPDATE(?![\w$])")
_QUALIFIED: Final = re.compile(rf"{IDENT}(?:\s*\.\s*{IDENT})?\s*")
_PARTITION: Final = re.compile(r"PARTITION\s*\(")
_SOURCE: Final = re.compile(r"(VALUES?|SET|SELECT|WITH|TABLE)(?![\w$])|\(")
_ASSIGNED: Final = re.compile(rf"\s*(?:{IDENT}\s*\.\s*)*({IDENT})\s*(?::=|=)")
_SET_CLAUSE: Final = re.compile(r"(?<![\w$.`@])SET(?![\w$])")
_SET_END: Final = re.compile(r"(?<![\w$.`@])(?:WHERE|ORDER\s+BY|LIMIT|RETURNING)(?![\w$])")
_DUPLICATE_KEY: Final = re.compile(r"(?<![\w$.`@])ON\s+DUPLICATE\s+KEY\s+UPDATE(?![\w$])")

Span = tuple[int, int]


@attrs.frozen(slots=True)
class InsertShape:
    """What an INSERT or REPLACE gives each column.

    ``columns`` is the column list (or the names of ``SET``), ``None`` when the values are
    positional; ``rows`` the value texts (the lexer's ``code`` view: strings filled),
    ``None`` when they come from a query, and ``spans`` where each value is in the text;
    ``updates`` the columns ``ON DUPLICATE KEY UPDATE`` assigns.
    """

    columns: tuple[str, ...] | None
    rows: tuple[tuple[str, ...], ...] | None
    updates: tuple[str, ...]
    spans: tuple[tuple[Span, ...], ...] | None = None


def insert_shape(lexed: Lexed) -> InsertShape | None:
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
    if bare.startswith("(", pos) and not SUBQUERY_START.match(bare, pos + 1):
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
        spans = [_value_span(lexed, start, end) for start, end in lexed.items(source.end(), tail)]
        names = _names(lexed, lexed.items(source.end(), tail))
        values = tuple(lexed.code[a:b] for a, b in spans)
        return InsertShape(names, (values,), updates, (tuple(spans),))
    if word not in ("VALUES", "VALUE"):
        return InsertShape(columns, None, updates)
    rows = []
    all_spans = []
    pos = source.end()
    while True:
        pos = _skip(bare, pos)
        if not bare.startswith("(", pos):
            return None
        end = closing[pos]
        row_spans = tuple(_strip(lexed.code, a, b) for a, b in lexed.items(pos + 1, end))
        rows.append(tuple(lexed.code[a:b] for a, b in row_spans))
        all_spans.append(row_spans)
        pos = _skip(bare, end + 1)
        if not bare.startswith(",", pos) or pos >= tail:
            break
        pos += 1
    return InsertShape(columns, tuple(rows), updates, tuple(all_spans))


def _skip(text: str, pos: int) -> int:
    """The first position at or after ``pos`` that is not white space."""
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _strip(text: str, start: int, end: int) -> Span:
    """``start:end`` without the white space (and comments, in ``code``) at either end."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _value_span(lexed: Lexed, start: int, end: int) -> Span:
    """Where the value of an assignment ``name = value`` spanning ``start:end`` is."""
    assigned = _ASSIGNED.match(lexed.code, start, end)
    return _strip(lexed.code, start if assigned is None else assigned.end(), end)


def _names(lexed: Lexed, spans: Iterable[Span]) -> tuple[str, ...]:
    """The (last part of the) name at the start of each span: a column list or assignments."""
    found = []
    for start, end in spans:
        text = lexed.code[start:end]
        assigned = _ASSIGNED.match(text)
        name = assigned.group(1) if assigned else text.strip().split(".")[-1].strip()
        found.append(unquote(name.strip()).lower())
    return tuple(found)


def _set_items(lexed: Lexed) -> list[Span]:
    """The items of an UPDATE's SET clause, at its top level."""
    head = _UPDATE_HEAD.match(lexed.bare)
    if head is None:
        return []
    flat = lexed.flat()
    clause = _SET_CLAUSE.search(flat, head.end())
    if clause is None:
        return []
    end = _SET_END.search(flat, clause.end())
    return lexed.items(clause.end(), len(flat) if end is None else end.start())


def update_assigns(lexed: Lexed) -> tuple[str, ...]:
    """The columns an UPDATE's SET clause assigns, lower-cased, qualifiers dropped."""
    return _names(lexed, _set_items(lexed))


def assignments(lexed: Lexed) -> list[tuple[str, Value | NotLiteral]]:
    """Each column an UPDATE's SET clause assigns, lower-cased, with its literal value."""
    spans = _set_items(lexed)
    values = [literal(lexed.text[a:b]) for a, b in (_value_span(lexed, *s) for s in spans)]
    return list(zip(_names(lexed, spans), values, strict=True))


# --- WHERE: the columns a conjunction pins to literals ----------------------------------------

#: A single-table UPDATE or DELETE, up to where its WHERE may start. Several tables (a
#: comma, JOIN, USING, ``DELETE t FROM``) do not match: which table a column is in, and
#: which rows go, depends on the join.
_SINGLE_UPDATE: Final = re.compile(
    rf"\s*UPDATE(?:\s+(?:LOW_PRIORITY|IGNORE)(?![\w$]))*\s+({IDENT}(?:\s*\.\s*{IDENT})?)"
    rf"(?:\s+(?:AS\s+)?(?!SET(?![\w$]))({IDENT}))?\s+SET(?![\w$])"
)
_SINGLE_DELETE: Final = re.compile(
    rf"\s*DELETE(?:\s+(?:LOW_PRIORITY|QUICK|IGNORE)(?![\w$]))*\s+FROM\s+"
    rf"({IDENT}(?:\s*\.\s*{IDENT})?)"
    rf"(?:\s+(?:AS\s+)?(?!WHERE|PARTITION|ORDER|LIMIT|RETURNING)({IDENT}))?"
    r"(?:\s+PARTITION\s*\([^)]*\))?\s*(?:WHERE(?![\w$])|\Z|;)"
)
_WHERE: Final = re.compile(r"(?<![\w$.`@])WHERE(?![\w$])")
_WHERE_END: Final = re.compile(r"(?<![\w$.`@])(?:ORDER\s+BY|LIMIT|RETURNING)(?![\w$])|;")
_AND: Final = re.compile(r"(?<![\w$.`@])AND(?![\w$])|&&")
_NOT_CONJUNCTION: Final = re.compile(r"(?<![\w$.`@])(?:OR|XOR)(?![\w$])|\|\|")
_BETWEEN: Final = re.compile(r"(?<![\w$.`@])BETWEEN(?![\w$])")
_PIN: Final = re.compile(
    rf"\s*(?:(?:{IDENT})\s*\.\s*)?(?:(?:{IDENT})\s*\.\s*)?({IDENT})\s*(=|IN\s*\()"
)


def single_table(lexed: Lexed) -> bool:
    """Whether an UPDATE or DELETE writes one table, named plainly (no join, no USING)."""
    bare = lexed.bare
    return _SINGLE_UPDATE.match(bare) is not None or _SINGLE_DELETE.match(bare) is not None


def where_pins(lexed: Lexed) -> dict[str, tuple[Value, ...]] | None:
    """The columns a single-table UPDATE's or DELETE's WHERE pins, with their values.

    ``None`` unless the statement is single-table and its WHERE a conjunction (``AND``,
    ``&&``) at its top level; an empty dict when no conjunct pins a column. A conjunct
    pins when it is ``column = literal`` or ``column IN (literals)``; any other conjunct
    only narrows the rows, and is passed over. A column pinned twice keeps its shorter
    list (every pin holds each row's value, under the column's collation).
    """
    bare = lexed.bare
    if not single_table(lexed):
        return None
    flat = lexed.flat()
    where = _WHERE.search(flat)
    if where is None:
        return None
    end_match = _WHERE_END.search(flat, where.end())
    end = len(flat) if end_match is None else end_match.start()
    if _NOT_CONJUNCTION.search(flat, where.end(), end):
        return None
    conjuncts: list[Span] = []
    start = scan = where.end()
    owed = 0  # BETWEENs of the conjunct still waiting for their own AND
    for match in _AND.finditer(flat, start, end):
        owed += len(_BETWEEN.findall(flat, scan, match.start()))
        scan = match.end()
        if owed:
            owed -= 1
            continue
        conjuncts.append((start, match.start()))
        start = match.end()
    conjuncts.append((start, end))
    pins: dict[str, tuple[Value, ...]] = {}
    closing = lexed.closing()  # once: a WHERE may hold thousands of IN lists
    for first, last in conjuncts:
        pin = _pin(lexed, bare, closing, first, last)
        if pin is None:
            continue
        column, values = pin
        if column not in pins or len(values) < len(pins[column]):
            pins[column] = values
    return pins


def _pin(
    lexed: Lexed, bare: str, closing: dict[int, int], start: int, end: int
) -> tuple[str, tuple[Value, ...]] | None:
    """``column = literal`` or ``column IN (literals)`` spanning ``start:end``, or ``None``."""
    match = _PIN.match(bare, start, end)
    if match is None:
        return None
    name = unquote(lexed.code[match.start(1) : match.end(1)]).lower()
    if match.group(2) == "=":
        value = literal(lexed.text[match.end() : end])
        return None if isinstance(value, NotLiteral) else (name, (value,))
    opened = match.end() - 1
    closed = closing.get(opened, end)
    if bare[closed + 1 : end].strip() or closed >= end:
        return None
    values: list[Value] = []
    for a, b in lexed.items(opened + 1, closed):
        value = literal(lexed.text[a:b])
        if isinstance(value, NotLiteral):
            return None
        values.append(value)
    return name, tuple(values)
