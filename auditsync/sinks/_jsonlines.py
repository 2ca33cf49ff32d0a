"""JsonLinesSink: the JSON form of events and dead letters (:mod:`auditsync._json`), a line each."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import IO, Any, cast

from .._events import AuditEvent, DeadLetter
from .._json import json_lines

__all__ = ["JsonLinesSink"]


class JsonLinesSink:
    """Appends events and dead letters as JSON Lines to a file or a stream.

    A path is opened for appending (created if missing) and closed by :meth:`close`; a
    stream, text or binary, is written to and flushed but never closed: it is the
    caller's. Each batch is serialised whole before anything is written, then written
    with one call, so a batch that fails to serialise writes nothing, and processes
    appending to one local file do not interleave their lines.

    Appending cannot be idempotent: a retried batch is written again. Every line carries
    its ``key``, so readers drop the repeats.
    """

    def __init__(self, target: str | os.PathLike[str] | IO[str] | IO[bytes]):
        self._owned = isinstance(target, str | os.PathLike)
        stream: IO[Any]
        if isinstance(target, str | os.PathLike):
            # Unbuffered: a batch is one write(2) on an O_APPEND file, whole or not at all.
            stream = open(target, "ab", buffering=0)  # noqa: SIM115 - closed by close()
        else:
            stream = target
        self._stream: IO[Any] = stream
        self._binary = isinstance(stream, io.RawIOBase | io.BufferedIOBase) or "b" in getattr(
            stream, "mode", ""
        )
        self._closed = False

    def write(self, events: Sequence[AuditEvent | DeadLetter]) -> None:
        """Write one JSON object a line, then flush."""
        if self._closed:
            raise ValueError("write to a closed JsonLinesSink")
        if not events:
            return
        data = json_lines(events)
        if self._binary:
            view = memoryview(data)
            while view:
                written = self._stream.write(view)
                if written is None:
                    raise BlockingIOError("JsonLinesSink needs a blocking stream")
                view = view[written:]
        else:
            cast(IO[str], self._stream).write(data.decode("utf-8"))
        self._stream.flush()

    def close(self) -> None:
        """Close the file the sink opened; a stream given to it stays open."""
        if self._closed:
            return
        self._closed = True
        if self._owned:
            self._stream.close()

    def __enter__(self) -> JsonLinesSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
