"""What a logged statement does, and a form of it that is safe to keep.

The audit log records the text of every statement. This package reads that text the way
an auditor would: :func:`classify` names the kind of statement and the tables it reads
and writes, :func:`redact` takes out literals and passwords so the text can be stored,
and :func:`fingerprint` gives statements of one shape one key.

It is a scanner, not a parser. One lexer (``_lexer``) cuts the text into code and the
tokens whose content must never be read as code (strings, quoted names, comments); a
*skeleton* of the same length puts filler in place of those tokens, and a few grammar
rules per statement kind (``_classify``, ``_scan``) find the tables in it. Redaction
(``_redact``) and fingerprints (``_fingerprint``) rewrite the same tokens. All of it is
linear in the length of the text and done in C where it can be (``re``, ``str``
methods, ``map``): it runs once per audit event.
"""

from __future__ import annotations

from ._classify import classify
from ._fingerprint import fingerprint
from ._redact import REDACTION_MODES, RedactionMode, redact
from ._statement import (
    DCL_KINDS,
    DDL_KINDS,
    KINDS,
    TRANSACTION_KINDS,
    WRITE_KINDS,
    Statement,
)

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
