"""decode_payload: base64, gzip (every member), zlib and plain JSON, bounded while inflating.

The contract: bytes or str in, the decompressed bytes out; base64 in the standard alphabet
with line breaks and missing padding tolerated and any other stray character an error;
every gzip member kept; a decompression bomb refused without allocating much more than
``max_size``; every failure a :class:`PayloadError` (an :class:`AuditSyncError`, a
``ValueError``) that says what was wrong and, where it applies, at which offset.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import importlib.util
import inspect
import io
import itertools
import os
import time
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from bombs import zero_bomb
from hypothesis import example, given
from hypothesis import strategies as st

from auditsync import AuditSyncError, PayloadError, decode_payload, iter_messages, parse_message
from auditsync import _gzip as gzip_module
from auditsync.testing import mutations

MIB = 1 << 20
MESSAGE = (
    b'{"messageType":"DATA_MESSAGE","owner":"123456789012",'
    b'"logGroup":"/aws/rds/cluster/prod/audit","logStream":"prod-instance-1.audit.log.0",'
    b'"subscriptionFilters":["to-kinesis"],"logEvents":[{"id":"31953106606966983378809025079",'
    b'"timestamp":1432826855000,"message":"20240101 10:00:00,h,u,10.0.0.1,1,2,QUERY,db,'
    b"'SELECT 1',0\"}]}"
)


# -- helpers ---------------------------------------------------------------------------


def gz(data: bytes, *, level: int = 9) -> bytes:
    return gzip.compress(data, compresslevel=level, mtime=0)


def b64(data: bytes, *, lines: bool = False, crlf: bool = False, padding: bool = True) -> bytes:
    text = base64.encodebytes(data) if lines else base64.b64encode(data)
    if crlf:
        text = text.replace(b"\n", b"\r\n")
    if not padding:
        text = text.replace(b"=", b"")
    return text


def raises_payload_error(data: bytes | str, **kwargs: Any) -> PayloadError:
    """Call decode_payload and return the PayloadError it must raise."""
    with pytest.raises(PayloadError) as info:
        decode_payload(data, **kwargs)
    error = info.value
    assert isinstance(error, AuditSyncError)
    assert isinstance(error, ValueError)
    assert str(error)
    return error


def peak_memory(call: Callable[[], object]) -> tuple[int, BaseException | None]:
    """Peak bytes allocated (tracemalloc) while ``call`` runs, and what it raised."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    raised: BaseException | None = None
    try:
        call()
    except Exception as exc:
        raised = exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, raised


def test_zero_bomb_helper_builds_valid_streams() -> None:
    for wbits in (31, 15):
        assert zlib.decompress(zero_bomb(3, wbits=wbits), wbits) == bytes(3 * MIB)


# -- the happy paths -------------------------------------------------------------------


def test_base64_of_gzip_as_str() -> None:
    assert decode_payload(b64(gz(MESSAGE)).decode()) == MESSAGE


def test_base64_of_gzip_as_bytes() -> None:
    assert decode_payload(b64(gz(MESSAGE))) == MESSAGE


@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("padding", [True, False])
@pytest.mark.parametrize("as_text", [False, True])
def test_base64_line_breaks_and_missing_padding_are_tolerated(
    crlf: bool, padding: bool, as_text: bool
) -> None:
    for size in range(3):  # three lengths: two, one and no padding characters
        content = MESSAGE + b" " * size
        text = b64(gz(content), lines=True, crlf=crlf, padding=padding)
        assert decode_payload(text.decode() if as_text else text) == content


def test_base64_with_one_or_two_padding_characters_stripped() -> None:
    seen = set()
    for extra in range(40):
        text = base64.b64encode(gz(MESSAGE + b" " * extra))
        padding = len(text) - len(text.rstrip(b"="))
        seen.add(padding)
        assert decode_payload(text.rstrip(b"=")) == MESSAGE + b" " * extra
        assert decode_payload(text.rstrip(b"=").decode()) == MESSAGE + b" " * extra
    assert seen == {0, 1, 2}


def test_raw_gzip() -> None:
    assert decode_payload(gz(MESSAGE)) == MESSAGE


def test_gzip_header_with_file_name_and_mtime() -> None:
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="000000.gz", mode="wb", fileobj=buffer, mtime=1700000000) as f:
        f.write(MESSAGE)
    assert decode_payload(buffer.getvalue()) == MESSAGE


@pytest.mark.parametrize("level", range(10))
def test_raw_zlib_every_level(level: int) -> None:
    assert decode_payload(zlib.compress(MESSAGE, level)) == MESSAGE


@pytest.mark.parametrize("wbits", range(9, 16))
def test_raw_zlib_every_window_size(wbits: int) -> None:
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    data = compressor.compress(MESSAGE) + compressor.flush()
    assert decode_payload(data) == MESSAGE


def test_base64_of_zlib() -> None:
    assert decode_payload(b64(zlib.compress(MESSAGE)).decode()) == MESSAGE


@pytest.mark.parametrize("prefix", [b"", b" ", b"\n", b"\r\n\t "])
def test_plain_json_bytes(prefix: bytes) -> None:
    assert decode_payload(prefix + MESSAGE) == prefix + MESSAGE
    assert decode_payload(prefix + b"[1, 2]") == prefix + b"[1, 2]"


def test_plain_json_text_non_ascii_is_utf8() -> None:
    text = '{"message": "SELECT \'é€😀\'"}'
    assert decode_payload(text) == text.encode("utf-8")


def test_base64_of_plain_json() -> None:
    assert decode_payload(base64.b64encode(MESSAGE).decode()) == MESSAGE


# -- gzip: every member ----------------------------------------------------------------


def test_every_gzip_member_is_kept() -> None:
    parts = [b'{"a":1}', b'{"b":2}', b"", b'{"c":3}']
    data = b"".join(gz(part) for part in parts)
    assert zlib.decompress(data, 47) == parts[0]  # the trap: zlib stops after one member
    assert decode_payload(data) == b"".join(parts)


def test_every_gzip_member_is_kept_through_base64() -> None:
    parts = [MESSAGE, MESSAGE.replace(b"prod", b"test"), MESSAGE]
    data = b"".join(gz(part, level=level) for part, level in zip(parts, (1, 6, 9), strict=True))
    assert decode_payload(b64(data, lines=True).decode()) == b"".join(parts)


def test_nul_padding_between_and_after_gzip_members_is_accepted() -> None:
    # The rule of gzip.GzipFile, and of the files the command line reads: one reader, one
    # rule (payloads refused a member after padding, files read it).
    parts = [b'{"a":1}', b'{"b":2}']
    data = gz(parts[0]) + bytes(5) + gz(parts[1]) + bytes(3)
    assert decode_payload(data) == b"".join(parts)
    assert decode_payload(b64(data)) == b"".join(parts)


def test_many_gzip_members() -> None:
    parts = [b'{"n":%d}' % i for i in range(500)]
    assert decode_payload(b"".join(gz(part) for part in parts)) == b"".join(parts)


# -- base64: stray characters are errors -----------------------------------------------


@pytest.mark.parametrize("stray", [" ", "\t", "!", "-", "_", "*", ".", "\0", "\x0b", "\x0c", "é"])
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_stray_character_in_base64_is_an_error(stray: str, where: str) -> None:
    text = b64(gz(MESSAGE)).decode()
    index = {"start": 0, "middle": len(text) // 2, "end": len(text)}[where]
    bad = text[:index] + stray + text[index:]
    error = raises_payload_error(bad)
    assert error.offset == index
    if stray.isascii():
        error = raises_payload_error(bad.encode())
        assert error.offset == index


def test_stray_character_between_base64_lines_is_an_error() -> None:
    text = b64(gz(MESSAGE), lines=True)
    bad = text.replace(b"\n", b"\n ", 1)
    error = raises_payload_error(bad)
    assert error.offset == text.index(b"\n") + 1


def test_url_safe_alphabet_is_not_accepted() -> None:
    payload = gz(MESSAGE * 3)
    standard = base64.b64encode(payload)
    url_safe = base64.urlsafe_b64encode(payload)
    assert standard != url_safe  # this payload has a '+' or a '/'
    raises_payload_error(url_safe)


def test_padding_inside_base64_is_an_error() -> None:
    text = b64(gz(MESSAGE))
    index = len(text) // 2
    error = raises_payload_error(text[:index] + b"=" + text[index:])
    assert error.offset == index


def test_two_base64_texts_glued_together_are_an_error() -> None:
    one = b64(gz(b'{"a": 1}'))
    assert one.endswith(b"=")
    raises_payload_error(one + one)


def test_base64_of_impossible_length_is_an_error() -> None:
    text = b64(gz(MESSAGE)).rstrip(b"=")
    cut = text[: len(text) - (len(text) % 4) + 1] if len(text) % 4 else text + b"A"
    assert len(cut) % 4 == 1
    raises_payload_error(cut)


# -- truncated and corrupt input -------------------------------------------------------


def test_every_prefix_of_gzip_is_an_error() -> None:
    data = gz(MESSAGE)
    for length in range(1, len(data)):
        error = raises_payload_error(data[:length])
        if length >= 2:
            assert "truncat" in str(error)
            assert error.offset == 0


def test_every_prefix_of_zlib_is_an_error() -> None:
    data = zlib.compress(MESSAGE)
    for length in range(1, len(data)):
        error = raises_payload_error(data[:length])
        assert "truncat" in str(error)


def test_every_prefix_of_base64_gzip_is_an_error() -> None:
    text = b64(gz(MESSAGE), lines=True)
    whole = text.replace(b"\n", b"").rstrip(b"=")
    # From 3 characters on: "H4" is valid base64 of the single byte 1f, which is not yet
    # a gzip magic number, and base64 of anything that is not compressed passes as is.
    for length in range(3, len(text)):
        prefix = text[:length]
        if prefix.replace(b"\n", b"").rstrip(b"=") == whole:
            continue  # only padding or a line break was cut: still the whole payload
        error = raises_payload_error(prefix)
        assert "truncat" in str(error)


def test_truncated_second_member_names_its_offset() -> None:
    first, second = gz(b'{"a":1}'), gz(b'{"b":2}')
    error = raises_payload_error(first + second[:-3])
    assert "truncat" in str(error)
    assert error.offset == len(first)


def test_corrupt_second_member_names_its_offset() -> None:
    first, second = gz(b'{"a":1}'), bytearray(gz(b'{"b":2}' * 10))
    second[12] ^= 0xFF
    error = raises_payload_error(first + bytes(second))
    assert error.offset == len(first)


@pytest.mark.parametrize("field", ["crc", "size"])
def test_bad_gzip_trailer_is_an_error(field: str) -> None:
    data = bytearray(gz(MESSAGE))
    data[-8 if field == "crc" else -1] ^= 0x01
    error = raises_payload_error(bytes(data))
    assert "gzip" in str(error)


def test_bad_zlib_checksum_is_an_error() -> None:
    data = bytearray(zlib.compress(MESSAGE))
    data[-1] ^= 0x01
    raises_payload_error(bytes(data))


@pytest.mark.parametrize("junk", [b"x", b"\n", b"garbage", b"\x1f", b"\x78\x9c"])
def test_bytes_after_the_last_gzip_member_are_an_error(junk: bytes) -> None:
    data = gz(MESSAGE)
    error = raises_payload_error(data + junk)
    assert error.offset == len(data)


def test_bytes_after_a_zlib_stream_are_an_error() -> None:
    data = zlib.compress(MESSAGE)
    error = raises_payload_error(data + b"trailing")
    assert error.offset == len(data)


@pytest.mark.parametrize(
    "data",
    [b"\x1f\x8b", b"\x1f\x8b\x08\x00", b"\x1f\x8bgarbage-garbage-garbage", b"x\x9c\xff\xff"],
)
def test_broken_headers_are_errors(data: bytes) -> None:
    raises_payload_error(data)


@pytest.mark.parametrize("text", ["hello world", "SELECT 1", "20240101 10:00:00,host,user", "é"])
def test_text_that_is_nothing_known_is_an_error(text: str) -> None:
    raises_payload_error(text)
    if text.isascii():
        raises_payload_error(text.encode())


@pytest.mark.parametrize("value", [None, 1, 1.5, ["x"], {"data": "x"}])
def test_wrong_argument_type_is_a_type_error(value: Any) -> None:
    with pytest.raises(TypeError):
        decode_payload(value)


# -- the decompression bound -----------------------------------------------------------


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """One gzip member, about 1 MiB, that inflates to 1 GiB."""
    return zero_bomb(1024)


def test_default_bound_is_at_most_256_mib() -> None:
    default = inspect.signature(decode_payload).parameters["max_size"].default
    assert isinstance(default, int)
    assert 0 < default <= 256 * MIB


def test_gzip_bomb_is_refused_while_inflating(gzip_bomb: bytes) -> None:
    assert len(gzip_bomb) < 2 * MIB
    max_size = MIB
    start = time.perf_counter()
    peak, raised = peak_memory(lambda: decode_payload(gzip_bomb, max_size=max_size))
    elapsed = time.perf_counter() - start
    assert isinstance(raised, PayloadError), raised
    assert str(max_size) in str(raised)
    assert peak < 2 * max_size + 2 * len(gzip_bomb) + 4 * MIB, peak
    assert elapsed < 2.0


def test_gzip_bomb_is_refused_under_the_default_bound(gzip_bomb: bytes) -> None:
    start = time.perf_counter()
    peak, raised = peak_memory(lambda: decode_payload(gzip_bomb))
    elapsed = time.perf_counter() - start
    assert isinstance(raised, PayloadError), raised
    assert peak < 384 * MIB, peak  # 1.5 x 256 MiB, against the 1 GiB a plain inflate takes
    assert elapsed < 2.0


def test_gzip_bomb_through_base64_is_refused(gzip_bomb: bytes) -> None:
    text = base64.b64encode(gzip_bomb).decode()
    peak, raised = peak_memory(lambda: decode_payload(text, max_size=MIB))
    assert isinstance(raised, PayloadError), raised
    assert peak < 2 * MIB + 4 * len(text) + 4 * MIB, peak


def test_zlib_bomb_is_refused() -> None:
    bomb = zero_bomb(256, wbits=15)
    peak, raised = peak_memory(lambda: decode_payload(bomb, max_size=MIB))
    assert isinstance(raised, PayloadError), raised
    assert peak < 2 * MIB + 2 * len(bomb) + 4 * MIB, peak


def test_bomb_spread_over_many_members_is_refused() -> None:
    """The bound is on the whole output, not on each member."""
    member = gz(bytes(MIB))
    bomb = member * 1024
    max_size = 4 * MIB
    start = time.perf_counter()
    peak, raised = peak_memory(lambda: decode_payload(bomb, max_size=max_size))
    assert isinstance(raised, PayloadError), raised
    assert peak < 2 * max_size + 2 * len(bomb) + 4 * MIB, peak
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(
    "encode",
    [gz, zlib.compress, lambda data: b64(gz(data)), lambda data: data],
    ids=["gzip", "zlib", "base64-gzip", "plain"],
)
def test_bound_is_exact(encode: Callable[[bytes], bytes]) -> None:
    content = b"[" + b" " * 998 + b"]"
    assert decode_payload(encode(content), max_size=len(content)) == content
    error = raises_payload_error(encode(content), max_size=len(content) - 1)
    assert str(len(content) - 1) in str(error)


def test_bound_counts_every_member() -> None:
    data = gz(b"[" + b" " * 99) + gz(b" " * 99 + b"]")
    assert decode_payload(data, max_size=200) == b"[" + b" " * 198 + b"]"
    raises_payload_error(data, max_size=199)


# -- bugs found in review, and fixed ------------------------------------------------------


@pytest.mark.parametrize("text", ["{\ud800}", '["\udfff"]', " {\udbff"])
def test_lone_surrogate_in_json_text_is_a_payload_error(text: str) -> None:
    raises_payload_error(text)


# -- properties ------------------------------------------------------------------------


@st.composite
def split_members(draw: st.DrawFn, content: bytes) -> bytes:
    """``content`` gzip-compressed as one or several members, each at its own level."""
    cuts = sorted(draw(st.lists(st.integers(0, len(content)), max_size=4)))
    bounds = [0, *cuts, len(content)]
    return b"".join(
        gzip.compress(content[a:b], compresslevel=draw(st.integers(0, 9)), mtime=0)
        for a, b in itertools.pairwise(bounds)
    )


@st.composite
def zlib_streams(draw: st.DrawFn, content: bytes) -> bytes:
    level = draw(st.integers(0, 9))
    wbits = draw(st.sampled_from([15, 15, 15, 9, 10, 11, 12, 13, 14]))
    compressor = zlib.compressobj(level, zlib.DEFLATED, wbits)
    return compressor.compress(content) + compressor.flush()


@st.composite
def base64_wrapped(draw: st.DrawFn, payload: bytes) -> bytes | str:
    """``payload`` as base64: bytes or str, with or without line breaks and padding."""
    text = b64(
        payload, lines=draw(st.booleans()), crlf=draw(st.booleans()), padding=draw(st.booleans())
    )
    return text.decode() if draw(st.booleans()) else text


@st.composite
def encoded(draw: st.DrawFn, content: bytes) -> bytes | str:
    """``content`` the way some AWS path or producer could deliver it."""
    kind = draw(st.sampled_from(["gzip", "members", "zlib"]))
    if kind == "gzip":
        compressed = gz(content, level=draw(st.integers(0, 9)))
    elif kind == "members":
        compressed = draw(split_members(content))
    else:
        compressed = draw(zlib_streams(content))
    if draw(st.booleans()):
        return compressed
    return draw(base64_wrapped(compressed))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
json_documents = st.builds(
    lambda value, space: space.encode() + orjson.dumps(value),
    st.lists(json_values, max_size=4) | st.dictionaries(st.text(), json_values, max_size=4),
    st.text(" \t\r\n", max_size=3),
)


@given(content=st.binary(max_size=3000), data=st.data())
def test_round_trip_of_compressed_payloads(content: bytes, data: st.DataObject) -> None:
    assert decode_payload(data.draw(encoded(content))) == content


@given(content=st.binary(max_size=1000), pieces=st.data())
def test_round_trip_of_gzip_split_into_members(content: bytes, pieces: st.DataObject) -> None:
    members = pieces.draw(split_members(content))
    assert decode_payload(members) == content
    assert decode_payload(pieces.draw(base64_wrapped(members))) == content


@given(document=json_documents, as_text=st.booleans())
def test_round_trip_of_plain_json(document: bytes, as_text: bool) -> None:
    assert decode_payload(document.decode() if as_text else document) == document


@given(document=json_documents, data=st.data())
def test_round_trip_of_base64_plain_json(document: bytes, data: st.DataObject) -> None:
    assert decode_payload(data.draw(base64_wrapped(document))) == document


def _reads_or_refuses(data: bytes | str, max_size: int | None = None) -> None:
    """decode_payload, then the envelope, raise nothing but AuditSyncError."""
    try:
        out = decode_payload(data) if max_size is None else decode_payload(data, max_size=max_size)
    except AuditSyncError:
        return
    assert isinstance(out, bytes)
    if max_size is not None:
        assert len(out) <= max_size
    with contextlib.suppress(AuditSyncError):
        list(iter_messages(out))
    with contextlib.suppress(AuditSyncError):
        parse_message(out)


@given(data=st.binary(), max_size=st.none() | st.integers(0, 5000))
@example(data=b"", max_size=None)
@example(data=b"HK", max_size=None)  # base64 text that looks like a zlib header
@example(data=b"\x1f\x8b", max_size=None)
def test_arbitrary_bytes_raise_only_payload_errors(data: bytes, max_size: int | None) -> None:
    _reads_or_refuses(data, max_size)


@given(text=st.text(), max_size=st.none() | st.integers(0, 5000))
def test_arbitrary_text_raises_only_payload_errors(text: str, max_size: int | None) -> None:
    # Lone surrogates are left out here: see test_lone_surrogate_in_json_text_*.
    _reads_or_refuses(text, max_size)


@given(text=st.text(st.characters(codec="ascii")).map(lambda t: "{" + t), max_size=st.none())
def test_arbitrary_json_looking_text_raises_only_payload_errors(
    text: str, max_size: int | None
) -> None:
    _reads_or_refuses(text, max_size)


@given(data=st.data(), as_text=st.booleans())
def test_mutated_payloads_raise_only_payload_errors(data: st.DataObject, as_text: bool) -> None:
    content = data.draw(st.sampled_from([MESSAGE, MESSAGE * 3, b"", b'{"a": "}{"}']))
    payload = data.draw(encoded(content))
    raw = payload.encode() if isinstance(payload, str) else payload
    mutated = data.draw(mutations(raw))
    if as_text:
        _reads_or_refuses(mutated.decode("latin-1"), max_size=4 * MIB)
    _reads_or_refuses(mutated, max_size=4 * MIB)


@given(text=st.text(st.characters(categories=["Cs"]) | st.characters()).map(lambda t: "{" + t))
@example(text="{\ud800")
def test_arbitrary_text_with_surrogates_raises_only_payload_errors(text: str) -> None:
    _reads_or_refuses(text)


def test_no_bare_library_errors_leak() -> None:
    """The errors the stages below raise never escape bare."""
    samples: list[bytes | str] = [
        b"!!!!",
        "QQ=A",
        "Q",
        "Q===",
        b"\x1f\x8b\x08\x00\x00",
        b"x\x9c\x00",
        gz(MESSAGE)[:-1],
        b"HKjunk!",
    ]
    for sample in samples:
        with pytest.raises(AuditSyncError) as info:
            decode_payload(sample)
        assert type(info.value) is PayloadError
        assert not isinstance(info.value, (binascii.Error, zlib.error, UnicodeError))


# --- the fast extra: ISA-L's inflater in place of zlib's ----------------------------------

needs_isal = pytest.mark.skipif(
    importlib.util.find_spec("isal") is None, reason="the fast extra (isal) is not installed"
)


def _decoded_with(inflater: Any, errors: tuple[type[Exception], ...], data: bytes) -> object:
    """decode_payload with this inflater: the bytes, or (offset) of the PayloadError."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gzip_module, "new_inflater", inflater)
        patch.setattr(gzip_module, "INFLATE_ERRORS", errors)
        try:
            return decode_payload(data, max_size=4 * MIB)
        except PayloadError as error:
            return ("refused", error.offset)


#: Inflates to more than the 1 MiB the reader asks for at a time.
_LARGE = b"".join(b"%d,'select %d'\n" % (n, n * 7919 % 10007) for n in range(80_000))


@needs_isal
@given(data=st.data())
@example(data=None)
def test_isal_inflates_as_zlib_does(data: st.DataObject | None) -> None:
    """Byte for byte the same output, and a refusal at the same offset, whichever inflates."""
    from isal import isal_zlib

    if data is None:
        raw = b"".join(gzip.compress(MESSAGE * n) for n in range(1, 4))
    else:
        content = data.draw(st.sampled_from([MESSAGE, MESSAGE * 40, b"", b"x" * 70_000, _LARGE]))
        members = data.draw(st.integers(1, 3))
        raw = data.draw(st.sampled_from([gzip.compress, zlib.compress]))(content) * members
        raw = data.draw(mutations(raw) | st.just(raw))
    stdlib = _decoded_with(zlib.decompressobj, (zlib.error,), raw)
    fast = _decoded_with(isal_zlib.decompressobj, (zlib.error, isal_zlib.error), raw)
    assert fast == stdlib


@needs_isal
def test_the_fast_inflater_is_taken_where_installed() -> None:
    from isal import isal_zlib

    pure = os.environ.get("AUDITSYNC_PURE_PYTHON", "") not in ("", "0")
    expected = zlib.decompressobj if pure else isal_zlib.decompressobj
    assert gzip_module.new_inflater is expected


def _with_flag(member: bytes, flag: int) -> bytes:
    return member[:3] + bytes([member[3] | flag]) + member[4:]


@pytest.mark.parametrize("inflater", ["zlib", pytest.param("isal", marks=needs_isal)])
@pytest.mark.parametrize("flag", [0x20, 0x40, 0x80])
def test_a_gzip_member_with_reserved_flags_is_refused_whichever_inflates(
    inflater: str, flag: int
) -> None:
    # zlib refuses such a header and ISA-L reads it: the same bytes must not be accepted
    # or refused depending on the fast extra.
    if inflater == "isal":
        from isal import isal_zlib

        chosen: tuple[Any, tuple[type[Exception], ...]] = (
            isal_zlib.decompressobj,
            (zlib.error, isal_zlib.error),
        )
    else:
        chosen = (zlib.decompressobj, (zlib.error,))
    first = gzip.compress(MESSAGE)
    assert _decoded_with(*chosen, first + gzip.compress(MESSAGE)) == MESSAGE * 2
    assert _decoded_with(*chosen, _with_flag(first, flag)) == ("refused", 0)
    flagged_second = first + _with_flag(gzip.compress(MESSAGE), flag)
    assert _decoded_with(*chosen, flagged_second) == ("refused", len(first))
