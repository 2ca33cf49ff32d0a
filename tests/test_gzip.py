"""The gzip member reader: one set of rules for payloads (strict) and files (tolerant).

The contract: members back to back, with NUL padding between and after them, come out
whole and in order however the input is fed and however the output is asked for; the
strict mode raises a PayloadError naming the offset of the damaged member, the tolerant
mode ends there with that same error kept, having handed out only good bytes; nothing
else is ever raised, whichever inflater (zlib's, ISA-L's) runs.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import zlib
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from auditsync import PayloadError
from auditsync import _gzip as gzip_module
from auditsync._gzip import MemberReader
from auditsync.testing import mutations


def _inflaters() -> list[Any]:
    """zlib's inflater, and ISA-L's where the fast extra is installed."""
    found: list[Any] = [pytest.param((zlib.decompressobj, (zlib.error,)), id="zlib")]
    if importlib.util.find_spec("isal") is not None:
        from isal import isal_zlib

        chosen = (isal_zlib.decompressobj, (zlib.error, isal_zlib.error))
        found.append(pytest.param(chosen, id="isal"))
    return found


def read_all(
    data: bytes, pieces: list[int], sizes: list[int], *, strict: bool, kind: Any = "gzip"
) -> tuple[bytes, MemberReader]:
    """Feed ``data`` cut at ``pieces`` sizes, read in ``sizes``; all it gave, and the reader."""
    reader = MemberReader(kind, strict=strict)
    out, position, turn = [], 0, 0
    while not reader.finished:
        chunk = reader.read(sizes[turn % len(sizes)] if sizes else 1 << 20)
        turn += 1
        out.append(chunk)
        if chunk or reader.finished:
            continue
        assert reader.needs_input
        size = pieces[turn % len(pieces)] if pieces else len(data)
        if position < len(data):
            reader.feed(data[position : position + size])
            position += size
        else:
            reader.feed_eof()
    return b"".join(out), reader


_PIECES = st.lists(st.integers(1, 5000), max_size=8)
_SIZES = st.lists(st.integers(1, 70_000), max_size=8)


@pytest.mark.parametrize("inflater", _inflaters())
@given(
    parts=st.lists(st.binary(max_size=3000), min_size=1, max_size=4),
    large=st.lists(st.sampled_from([0, 100_000]), min_size=4, max_size=4),
    padding=st.lists(st.integers(0, 20), min_size=4, max_size=4),
    pieces=_PIECES,
    sizes=_SIZES,
    strict=st.booleans(),
)
def test_members_and_padding_come_out_whole_however_fed_and_read(
    inflater: Any,
    parts: list[bytes],
    large: list[int],
    padding: list[int],
    pieces: list[int],
    sizes: list[int],
    strict: bool,
) -> None:
    # ``large`` makes members that inflate past a slice and past one read.
    parts = [part + b"x" * size for part, size in zip(parts, large, strict=False)]
    data = b"".join(
        gzip.compress(part) + bytes(pad) for part, pad in zip(parts, padding, strict=False)
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gzip_module, "new_inflater", inflater[0])
        patch.setattr(gzip_module, "INFLATE_ERRORS", inflater[1])
        got, reader = read_all(data, pieces, sizes, strict=strict)
    assert got == b"".join(parts)
    assert reader.failure is None


@pytest.mark.parametrize("inflater", _inflaters())
@given(data=st.data(), pieces=_PIECES, sizes=_SIZES)
@example(data=None, pieces=[], sizes=[])
def test_both_modes_agree_on_damage_and_raise_nothing_else(
    inflater: Any, data: st.DataObject | None, pieces: list[int], sizes: list[int]
) -> None:
    """Strict raises where tolerant stops, with the same error; fed whole or in pieces."""
    whole = gzip.compress(b"select 1;\n" * 500) + gzip.compress(b"x" * 3000)
    if data is None:
        raw, kind = whole[:-3], "gzip"
    else:
        kind = data.draw(st.sampled_from(["gzip", "zlib"]))
        raw = whole if kind == "gzip" else zlib.compress(b"select 1;\n" * 500)
        raw = data.draw(mutations(raw) | st.binary(max_size=200).map(lambda junk: raw + junk))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gzip_module, "new_inflater", inflater[0])
        patch.setattr(gzip_module, "INFLATE_ERRORS", inflater[1])
        try:
            strict: bytes | str = read_all(raw, [], [], strict=True, kind=kind)[0]
        except PayloadError as error:
            strict = str(error)
        pieced, tolerant = read_all(raw, pieces, sizes, strict=False, kind=kind)
    if isinstance(strict, bytes):
        assert (pieced, tolerant.failure) == (strict, None)
    else:
        assert str(tolerant.failure) == strict


@given(raw=st.binary(max_size=400), pieces=_PIECES, kind=st.sampled_from(["gzip", "zlib"]))
def test_arbitrary_bytes_raise_nothing_but_payload_errors(
    raw: bytes, pieces: list[int], kind: Any
) -> None:
    with contextlib.suppress(PayloadError):
        read_all(raw, pieces, [], strict=True, kind=kind)
    read_all(raw, pieces, [], strict=False, kind=kind)  # tolerant: raises nothing at all


def test_a_bomb_is_refused_at_the_bound_not_inflated_whole() -> None:
    reader = MemberReader(max_size=1000)
    reader.feed(gzip.compress(bytes(10_000)))
    reader.feed_eof()
    assert reader.read(400) == bytes(400)
    assert reader.read(400) == bytes(400)
    with pytest.raises(PayloadError, match="beyond the limit of 1000 bytes") as info:
        reader.read(400)
    assert info.value.offset == 0


def test_the_offset_of_a_member_counts_what_was_fed_before_it() -> None:
    first, second = gzip.compress(b"a" * 5000), gzip.compress(b"b" * 5000)
    damaged = second[:-8] + b"\0\0\0\0" + second[-4:]  # a wrong CRC
    reader = MemberReader(strict=False)
    for at in range(0, len(first + damaged), 7):
        reader.feed((first + damaged)[at : at + 7])
        while reader.read(100):
            pass
    reader.feed_eof()
    while reader.read(100):
        pass
    assert reader.failure is not None
    assert reader.failure.offset == len(first)


@pytest.mark.parametrize("inflater", _inflaters())
@pytest.mark.parametrize("pieces", [[], [1]])
def test_a_zlib_stream_that_needs_a_dictionary_is_refused_alike(
    inflater: Any, pieces: list[int]
) -> None:
    """Found by Hypothesis: ISA-L words this refusal differently by how it is fed."""
    compressor = zlib.compressobj(zdict=b"select insert update")
    raw = compressor.compress(b"select 1;\n" * 50) + compressor.flush()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gzip_module, "new_inflater", inflater[0])
        patch.setattr(gzip_module, "INFLATE_ERRORS", inflater[1])
        with pytest.raises(PayloadError, match="needs a preset dictionary") as info:
            read_all(raw, pieces, [], strict=True, kind="zlib")
        _, tolerant = read_all(raw, pieces, [], strict=False, kind="zlib")
    assert info.value.offset == 0
    assert str(tolerant.failure) == str(info.value)
