"""Taking out of a statement what must not be stored: secrets, and in one mode literals.

Secrets are found in the upper-cased skeleton (:mod:`._lexer`), where every quote
belongs to a string literal, and cut from the text at the same positions; literals and
comment text go by rewriting the tokens themselves.
"""

from __future__ import annotations

import re
from typing import Final, Literal

from ._lexer import TOKEN, closing_parens, restore_names, rewrite, skeleton, upper_ascii

__all__ = ["MASK", "REDACTION_MODES", "RedactionMode", "mask_secrets", "redact"]


RedactionMode = Literal["literals", "passwords"]

#: ``"literals"``: every literal and the text of every comment go; secrets become
#: ``*****``. ``"passwords"``: only secrets go, the rest is kept character for character.
REDACTION_MODES: Final[tuple[RedactionMode, ...]] = ("literals", "passwords")

#: What the server writes in place of a password, and so what :func:`redact` writes.
MASK: Final = "*****"


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
    masked = mask_secrets(query)
    if mode == "passwords":
        return masked
    text, names = rewrite(masked, TOKEN, _REDACTED, keep_executable=True)
    return restore_names(text, names)


# What a token becomes in redacted text, by its first character. A quoted name becomes a
# backquote, and is put back once the text is rewritten so no rewriting can touch it; a
# token without an entry (the ``*/`` of an executable comment) stays as it is.
_REDACTED: Final = {
    **dict.fromkeys("`", "`"),
    **{"'": "'?'", '"': '"?"'},  # each its own quote, or '' " would become one string
    **dict.fromkeys("xXbB", "?"),
    **{"/": "/* */", "-": "-- ", "#": "#"},
}


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


def mask_secrets(query: str) -> str:
    """*query* with each secret, and what leaked past the server's ``*****``, as ``*****``."""
    lowered = query.lower()
    if not any(hint in lowered for hint in _SECRET_HINTS):
        return query
    sql = upper_ascii(skeleton(query, TOKEN))
    spans = [
        m.span("value") if m.group("value") else m.span("assigned")
        for m in _SECRET_CLAUSE.finditer(sql)
    ]
    calls = [m.end() for m in _SECRET_FUNCTION.finditer(sql)]
    if calls:
        closing = closing_parens(sql)
        arguments = [(start, closing[start - 1]) for start in calls]
        for start, end in _merged(arguments):  # PASSWORD(PASSWORD(..)): each region once
            spans.extend(m.span() for m in _SECRET_ARGUMENT.finditer(sql, start, end))
    if not spans:
        return query
    pieces: list[str] = []
    done = 0
    for start, end in _merged(spans):
        pieces += (query[done:start], MASK)
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
