"""Undo the wrapping AWS puts around log data: base64, gzip (every member), zlib.

Kinesis and subscription-filter Lambdas get base64 text of a gzip member; Firehose S3
objects are several gzip members back to back; some producers send zlib. The output is
bounded *while* inflating, so a decompression bomb is refused after about ``max_size``
bytes instead of exhausting a Lambda's memory.
"""

from __future__ import annotations

import binascii
import re

from ._errors import PayloadError
from ._gzip import GZIP_MAGIC, inflate

__all__ = ["DEFAULT_MAX_SIZE", "KEPT_OF_TOO_LONG", "LONGEST_RECORD", "decode_payload"]

#: Far above any real CloudWatch message (Kinesis caps a record at 1 MiB compressed,
#: Firehose buffers at most 128 MiB), far below what would take a machine down.
DEFAULT_MAX_SIZE = 256 * 1024 * 1024
#: The longest record — a line of a log, a JSON document of a file or of a payload — so
#: that what is held at a time stays bounded, whatever the input (a gzip bomb of NULs is
#: one endless line; 2,000,000 empty log events are one 74 MB document). The audit plugin
#: cuts queries at server_audit_query_log_limit, 1 KiB by default; a Lambda event is at
#: most 6 MB, a CloudWatch message a few. Reading one record of this size takes the
#: command up to about 170 MiB (measured; the worst is 8 MiB of bytes that are not UTF-8:
#: 32 MiB of text, twice, and 48 MiB of JSON), under 256. A longer record is a dead letter
#: holding its first :data:`KEPT_OF_TOO_LONG` bytes and its length; a JSON stretch this
#: long that does not parse is judged bad before its end.
LONGEST_RECORD = 8 << 20
KEPT_OF_TOO_LONG = 4096

_BASE64_JUNK = re.compile(rb"[^A-Za-z0-9+/=\r\n]")
_LINE_BREAKS = re.compile(rb"[\r\n]+")


def decode_payload(data: bytes | str, *, max_size: int = DEFAULT_MAX_SIZE) -> bytes:
    """Return the payload's content: base64 undone, then gzip or zlib inflated.

    Raw gzip, raw zlib and plain JSON pass without base64. Anything else must be base64
    (standard alphabet, line breaks and missing padding tolerated); a stray character is
    a :class:`PayloadError`, never silently dropped.
    """
    if max_size < 0:
        raise ValueError(f"max_size must not be negative, not {max_size}")
    raw = _as_bytes(data)
    if not raw.startswith(GZIP_MAGIC) and not _is_json(raw) and not _looks_like_zlib(raw):
        raw = _unbase64(raw)
    return _inflate(raw, max_size)


def _as_bytes(data: bytes | str) -> bytes:
    if isinstance(data, str):
        if data.isascii():
            return data.encode("ascii")
        if data.lstrip()[:1] in ("{", "["):
            try:
                return data.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError as error:
                raise PayloadError(
                    "payload text holds a character no byte encodes (a lone surrogate)",
                    offset=error.start,
                ) from None
        raise PayloadError(
            "payload text is neither base64 nor JSON: non-ASCII character found",
            offset=next(i for i, ch in enumerate(data) if not ch.isascii()),
        )
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"payload must be bytes or str, not {type(data).__name__}")


def _is_json(raw: bytes) -> bool:
    return raw.lstrip()[:1] in (b"{", b"[")


def _looks_like_zlib(raw: bytes) -> bool:
    """Raw zlib rather than base64 text.

    Some base64 text starts with two characters that make a valid zlib header (``HK``),
    so the header alone does not decide: raw zlib also holds bytes outside base64's
    alphabet, which any deflate stream of real size does.
    """
    return _is_zlib_header(raw) and _BASE64_JUNK.search(raw) is not None


def _unbase64(raw: bytes) -> bytes:
    try:
        return binascii.a2b_base64(raw, strict_mode=True)
    except binascii.Error:
        pass
    junk = _BASE64_JUNK.search(raw)
    if junk is not None:
        raise PayloadError(
            "payload is not gzip, zlib, JSON or base64: "
            f"character {junk.group()!r} is not in the base64 alphabet",
            offset=junk.start(),
        )
    text = _LINE_BREAKS.sub(b"", raw)
    body = text.rstrip(b"=")
    if len(text) - len(body) > 2:
        raise PayloadError("base64 text with more than two '=' of padding", offset=len(body))
    if b"=" in body:
        raise PayloadError("base64 padding '=' inside the data", offset=raw.index(b"="))
    if len(body) % 4 == 1:
        raise PayloadError(f"base64 text of impossible length {len(body)} (truncated?)")
    try:
        return binascii.a2b_base64(body + b"=" * (-len(body) % 4), strict_mode=True)
    except binascii.Error as exc:
        raise PayloadError(f"invalid base64: {exc}") from None


def _inflate(raw: bytes, max_size: int) -> bytes:
    if raw.startswith(GZIP_MAGIC):
        return inflate(raw, "gzip", max_size)
    if _is_zlib_header(raw):
        return inflate(raw, "zlib", max_size)
    if len(raw) > max_size:
        raise PayloadError(f"payload of {len(raw)} bytes exceeds the limit of {max_size}")
    return raw


def _is_zlib_header(raw: bytes) -> bool:
    """Deflate method, a window size zlib accepts, and a valid header check value."""
    return (
        len(raw) >= 2
        and raw[0] & 0x0F == 8
        and raw[0] >> 4 <= 7
        and (raw[0] << 8 | raw[1]) % 31 == 0
    )
