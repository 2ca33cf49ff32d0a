"""Statement text lexed once into two skeletons: what replay and the session machine read.

A copy of the token rules of :mod:`auditsync.sql`, kept whole in this one module so that
it can be switched to the shared SQL lexer in one step: :class:`Lexed`, :data:`IDENT`,
:func:`unquote` and :func:`quote` are all its users import.

A statement is lexed once into two strings of its own length, so a position in either is a
position in the text: ``code`` keeps names and code and fills strings and comments, and
``bare`` (upper-cased ASCII) also fills quoted names, so keywords and function names can be
searched for without ever matching inside a literal or a name. The content of executable
comments (``/*!50001 ... */``) is code: the server runs it.
"""

from __future__ import annotations

import re
from typing import Final

import attrs

__all__ = ["IDENT", "Lexed", "quote", "unquote"]

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
IDENT: Final = r"(?:`(?:[^`]|``)*+`|[0-9A-Za-z_$\u0080-\uffff]++)"
_PARENS: Final = re.compile(r"[()]")


@attrs.frozen(slots=True)
class Lexed:
    """A statement and its two same-length skeletons (see above)."""

    text: str
    code: str
    bare: str
    #: The text ends inside a string, name or comment, or with a parenthesis open: the
    #: server cut it (``server_audit_query_log_limit``), or the client sent a broken one.
    cut: bool = False

    @classmethod
    def of(cls, text: str) -> Lexed:
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


def unquote(name: str) -> str:
    """A name as the server reads it: backquotes off, doubled backquotes single."""
    return name[1:-1].replace("``", "`") if name.startswith("`") else name


def quote(name: str) -> str:
    """A name backquoted, so that the server reads it whole, whatever it holds."""
    return "`" + name.replace("`", "``") + "`"
