"""Undo the wrapping AWS puts around log data: base64, gzip (every member), zlib.

Kinesis and subscription-filter Lambdas get base64 text of a gzip member; Firehose S3
objects are several gzip members back to back; some producers send zlib. The output is
bounded *while* inflating, so a decompression bomb is refused after about ``max_size``
bytes instead of exhausting a Lambda's memory.
"""

from __future__ import annotations

import binascii
import re
import zlib

from ._errors import PayloadError
from ._native import INFLATE_ERRORS, new_inflater

__all__ = ["DEFAULT_MAX_SIZE", "decode_payload"]

#: Far above any real CloudWatch message (Kinesis caps a record at 1 MiB compressed,
#: Firehose buffers at most 128 MiB), far below what would take a machine down.
DEFAULT_MAX_SIZE = 256 * 1024 * 1024

_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_ZLIB_WBITS = zlib.MAX_WBITS
_CHUNK = 1 << 20
_FIRST_SLICE = 4096
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
    if not raw.startswith(_GZIP_MAGIC) and not _is_json(raw) and not _looks_like_zlib(raw):
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
    if raw.startswith(_GZIP_MAGIC):
        return _inflate_members(raw, _GZIP_WBITS, "gzip", max_size)
    if _is_zlib_header(raw):
        return _inflate_members(raw, _ZLIB_WBITS, "zlib", max_size)
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


def _inflate_members(raw: bytes, wbits: int, kind: str, max_size: int) -> bytes:
    """Inflate every member back to back; gzip members may be followed by NUL padding.

    Input goes to zlib in slices that start at 4 KiB and double up to ``_CHUNK``, so the
    bytes after a member are never copied whole (``unused_data`` of a whole-buffer call
    copies the rest of the buffer for every member: quadratic in a Firehose object of
    thousands of small members).
    """
    out = bytearray()
    view = memoryview(raw)
    position = 0
    while position < len(raw):
        position = _inflate_one(view, position, wbits, kind, out, max_size)
        if position >= len(raw) or not raw[position]:
            if raw.count(0, position) != len(raw) - position:
                raise PayloadError(f"unexpected bytes after the {kind} stream", offset=position)
            break
        if kind != "gzip" or raw[position : position + 2] != _GZIP_MAGIC:
            raise PayloadError(f"unexpected bytes after the {kind} stream", offset=position)
    return bytes(out)


def reserved_gzip_flags(header: bytes | memoryview) -> bool:
    """Whether a gzip header sets a flag bit RFC 1952 reserves: zlib refuses such a member,
    ISA-L reads it; auditsync refuses it whichever inflates."""
    return len(header) >= 4 and header[3] & 0xE0 != 0


def _inflate_one(
    view: memoryview, start: int, wbits: int, kind: str, out: bytearray, max_size: int
) -> int:
    """Inflate the member at ``start`` into ``out``; return where the next one starts."""
    if kind == "gzip" and reserved_gzip_flags(view[start : start + 4]):
        raise PayloadError("corrupt gzip stream: reserved header flags set", offset=start)
    inflater = new_inflater(wbits)
    position = start
    pending: bytes | memoryview = b""
    # Slices start small and double: a small member then copies little in unused_data.
    slice_size = _FIRST_SLICE
    try:
        while True:
            if not pending and position < len(view):
                pending = view[position : position + slice_size]
                position += len(pending)
                slice_size = min(2 * slice_size, _CHUNK)
            chunk = inflater.decompress(pending, min(_CHUNK, max_size - len(out) + 1))
            out += chunk
            if len(out) > max_size:
                raise PayloadError(
                    f"{kind} data inflates beyond the limit of {max_size} bytes "
                    "(decompression bomb?)",
                    offset=start,
                )
            pending = inflater.unconsumed_tail
            if inflater.eof:
                return position - len(inflater.unused_data)
            if not chunk and not pending and position >= len(view):
                raise PayloadError(f"truncated {kind} stream", offset=start)
    except INFLATE_ERRORS as exc:
        raise PayloadError(f"corrupt {kind} stream: {exc}", offset=start) from None
