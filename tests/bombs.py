"""Decompression bombs built in milliseconds, for the tests that bound memory."""

from __future__ import annotations

import zlib

MIB = 1 << 20


def zero_bomb(mebibytes: int, *, wbits: int = 31, fill: int = 0) -> bytes:
    """A single gzip (wbits 31) or zlib (wbits 15) member inflating to ``mebibytes`` MiB of
    the byte ``fill`` (NULs by default).

    Built by streaming compression in chunks: after a full flush, compressing another MiB
    of the same byte yields the very same block, so the stream is the first block, that
    block repeated, and a trailer -- built in milliseconds, a few hundred times smaller
    than its output.
    """
    chunk = bytes([fill]) * MIB
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    first = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert block == compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    final_block = compressor.flush()[:2]  # an empty final block; its trailer is rebuilt below
    size = mebibytes * MIB
    if wbits > 15:
        crc = 0
        if mebibytes == 1024 and fill == 0:
            crc = 1533330096  # zlib.crc32(bytes(1 << 30)), precomputed: it takes 0.3 s
        else:
            for _ in range(mebibytes):
                crc = zlib.crc32(chunk, crc)
        trailer = crc.to_bytes(4, "little") + (size % (1 << 32)).to_bytes(4, "little")
    else:
        adler = zlib.adler32(chunk)
        for _ in range(mebibytes - 1):
            adler = zlib.adler32(chunk, adler)
        trailer = adler.to_bytes(4, "big")
    return first + block * (mebibytes - 1) + final_block + trailer
