"""Gzip and zlib members inflated as their bytes arrive: one reader for payloads and files.

The rules are written once, here: gzip members follow one another back to back (Firehose
objects, logrotate's appends), NUL padding may sit between and after them (as
``gzip.GzipFile`` reads it), anything else after a member is an error, a zlib stream is
one stream, and a gzip header setting a flag bit RFC 1952 reserves is refused whichever
inflater runs (zlib refuses it, ISA-L reads it). :class:`MemberReader` is sans-IO in the
manner of h11: the caller feeds it compressed bytes and takes inflated bytes out, so a
whole payload (:mod:`auditsync._payload`) and a file streamed a chunk at a time
(:mod:`auditsync._sources`) are read by the same code. It has two modes: *strict* raises
a :class:`PayloadError` at the first damage (a payload is whole or refused); *tolerant*
ends quietly there, keeps the error in :attr:`MemberReader.failure` and has handed out
every good byte before it (a file yields what it holds, then says what was lost).

Why not ``gzip.GzipFile`` (the standard library's or ISA-L's): it reads the same members
and padding, but does not say at which offset a member starts, so errors could not point
at the damage; it does not refuse reserved header flags; and measured on the benchmark's
Kinesis payloads (docs/performance.md) it costs 2-3x as much per small payload.
"""

from __future__ import annotations

import os
import re
import sys
import zlib
from collections.abc import Callable
from typing import Literal, Protocol, cast

from ._errors import PayloadError

__all__ = [
    "GZIP_MAGIC",
    "INFLATE_ERRORS",
    "Inflater",
    "MemberReader",
    "inflate",
    "new_inflater",
]

GZIP_MAGIC = b"\x1f\x8b"
Kind = Literal["gzip", "zlib"]
_WBITS: dict[Kind, int] = {"gzip": 16 + zlib.MAX_WBITS, "zlib": zlib.MAX_WBITS}
#: The inflater gets a member's input in slices that start small and double up to
#: ``_LONGEST_SLICE``: what is left after a member's end comes back as a copy
#: (``unused_data``), so handing it a whole buffer would copy the rest of the buffer once
#: per member, quadratic in a Firehose object of thousands of small members.
_FIRST_SLICE = 4096
_LONGEST_SLICE = 1 << 20
_NOT_NUL = re.compile(rb"[^\0]")


class Inflater(Protocol):
    """What auditsync uses of ``zlib.decompressobj()``, which ISA-L's mirrors."""

    @property
    def unconsumed_tail(self) -> bytes: ...
    @property
    def unused_data(self) -> bytes: ...
    @property
    def eof(self) -> bool: ...
    def decompress(self, data: bytes | memoryview, /, max_length: int = 0) -> bytes: ...


def compiled_parts_wanted() -> bool:
    """The one switch for every compiled part (this inflater, the C reader and writer):
    ``AUDITSYNC_PURE_PYTHON=1`` turns them all off, to run or measure the reference code."""
    return os.environ.get("AUDITSYNC_PURE_PYTHON", "") in ("", "0")


def _inflater() -> tuple[Callable[[int], Inflater], tuple[type[Exception], ...]]:
    """ISA-L's inflater (the ``fast`` extra) where it is installed and wanted: the same
    interface and bytes as zlib's, 1.7 to 2.7 times as fast on CloudWatch payloads.
    ``AUDITSYNC_PURE_PYTHON=1`` keeps zlib's."""
    if compiled_parts_wanted():
        try:
            from isal import isal_zlib
        except ImportError:
            pass
        else:
            # Its stub types the exception class as an instance.
            return isal_zlib.decompressobj, (zlib.error, cast(type[Exception], isal_zlib.error))
    return zlib.decompressobj, (zlib.error,)


#: A new inflater for ``wbits`` (as zlib's), and what its ``decompress`` raises on
#: corrupt input.
new_inflater, INFLATE_ERRORS = _inflater()


class MemberReader:
    """Compressed bytes in (:meth:`feed`, :meth:`feed_eof`), inflated bytes out (:meth:`read`).

    :meth:`read` returns ``b""`` when it needs more input (:attr:`needs_input`) or has
    finished (:attr:`finished`). ``strict`` raises a :class:`PayloadError` at the first
    damage; otherwise the reader finishes there and keeps the error in :attr:`failure`.
    ``max_size`` bounds the whole output while inflating: a decompression bomb is refused
    after about that many bytes. Offsets in errors count every byte fed.
    """

    __slots__ = (
        "_base",
        "_buffer",
        "_ended",
        "_inflater",
        "_members",
        "_pending",
        "_position",
        "_room",
        "_slice",
        "_start",
        "_strict",
        "_view",
        "_wbits",
        "failure",
        "finished",
        "kind",
        "max_size",
        "needs_input",
    )

    def __init__(self, kind: Kind = "gzip", *, strict: bool = True, max_size: int | None = None):
        self.kind: Kind = kind
        self.max_size = max_size
        #: What ended a tolerant reader early; ``None`` while all is well.
        self.failure: PayloadError | None = None
        self.finished = False
        #: Whether :meth:`read` can go no further without more input.
        self.needs_input = False
        self._strict = strict
        self._wbits = _WBITS[kind]
        self._room = sys.maxsize if max_size is None else max_size
        self._buffer = b""
        self._view = memoryview(b"")
        self._base = 0  # the offset in the whole input of _buffer[0]
        self._position = 0  # in _buffer: the first byte not yet handed to the inflater
        self._pending: bytes | memoryview = b""  # handed to it, not yet consumed
        self._ended = False
        self._inflater: Inflater | None = None  # None between members
        self._start = 0  # the offset of the member being read
        self._members = 0
        self._slice = _FIRST_SLICE

    def feed(self, data: bytes) -> None:
        """More compressed input."""
        # Keep what the inflater has not consumed yet: it ends at _position.
        keep = self._position - len(self._pending)
        if keep < len(self._buffer):
            data = self._buffer[keep:] + data
        self._base += keep
        self._position -= keep
        self._buffer = data
        self._view = memoryview(data)
        self.needs_input = False

    def feed_eof(self) -> None:
        """The input has ended: a member not finished by now is cut short."""
        self._ended = True
        self.needs_input = False

    def read(self, size: int) -> bytes:
        """Up to ``size`` inflated bytes; ``b""`` when more input is needed or at the end."""
        while not self.finished:
            if self._inflater is None and not self._next_member():
                return b""
            if not self._pending:
                position = self._position
                if position < len(self._buffer):
                    self._pending = self._view[position : position + self._slice]
                    self._position = position + len(self._pending)
                    self._slice = min(2 * self._slice, _LONGEST_SLICE)
                elif not self._ended:
                    self.needs_input = True
                    return b""
            out = self._inflate(size)
            if out:
                return out
        return b""

    def _next_member(self) -> bool:
        """Between members: past any NUL padding to the next member's start, its header
        checked. False when that needs more input, or the input has ended."""
        buffer, start = self._buffer, self._position
        if start >= len(buffer) or not buffer[start]:
            found = _NOT_NUL.search(buffer, start)
            if found is None:
                self._position = len(buffer)
                self.finished = self._ended
                self.needs_input = not self._ended
                return False
            start = self._position = found.start()
        offset = self._base + start
        if self._members and self.kind == "zlib":
            return self._fail("unexpected bytes after the zlib stream", offset)
        if self.kind == "gzip":
            header = buffer[start : start + 4]
            if not GZIP_MAGIC.startswith(header[:2]):
                what = "after the gzip data" if self._members else "where a gzip member begins"
                return self._fail(f"unexpected bytes {what}", offset)
            if len(header) < 4 and not self._ended:
                self.needs_input = True
                return False
            if len(header) >= 4 and header[3] & 0xE0:
                return self._fail("corrupt gzip stream: reserved header flags set", offset)
        else:
            header = buffer[start : start + 2]
            if len(header) < 2 and not self._ended:
                self.needs_input = True
                return False
            if len(header) == 2 and header[1] & 0x20:
                # FDICT: zlib and ISA-L each word the refusal their own way, and ISA-L
                # differently by how the stream is fed; nothing AWS writes sets it.
                return self._fail("corrupt zlib stream: it needs a preset dictionary", offset)
        self._start = offset
        self._inflater = new_inflater(self._wbits)
        self._slice = _FIRST_SLICE
        return True

    def _inflate(self, size: int) -> bytes:
        inflater = self._inflater
        assert inflater is not None
        room = self._room
        try:
            out = inflater.decompress(self._pending, min(size, room + 1))
        except INFLATE_ERRORS as error:
            self._fail(f"corrupt {self.kind} stream: {error}", self._start)
            return b""
        self._room = room - len(out)
        if self._room < 0:
            self._fail(
                f"{self.kind} data inflates beyond the limit of {self.max_size} bytes "
                "(decompression bomb?)",
                self._start,
            )
            return b""
        if inflater.eof:
            # What follows the member is the end of the slice it was read from. (At a
            # member's end zlib may leave a copy of it in unconsumed_tail too.)
            self._position -= len(inflater.unused_data)
            self._pending = b""
            self._inflater = None
            self._members += 1
            return out
        self._pending = inflater.unconsumed_tail
        if not out and not self._pending and self._ended and self._position >= len(self._buffer):
            # Cut short: ISA-L reads ahead, so only once it hands out nothing more.
            self._fail(f"truncated {self.kind} stream: its member is cut short", self._start)
        return out

    def _fail(self, reason: str, offset: int) -> Literal[False]:
        error = PayloadError(reason, offset=offset)
        if self._strict:
            raise error
        self.failure = error
        self.finished = True
        self._pending = b""
        return False


def inflate(raw: bytes, kind: Kind, max_size: int) -> bytes:
    """Every member of a whole buffer, strictly: the content, or a :class:`PayloadError`."""
    reader = MemberReader(kind, max_size=max_size)
    reader.feed(raw)
    reader.feed_eof()
    chunks = []
    while chunk := reader.read(_LONGEST_SLICE):
        chunks.append(chunk)
    return b"".join(chunks)
