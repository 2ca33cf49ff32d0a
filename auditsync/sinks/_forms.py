"""Events in another JSON vocabulary (OCSF, ECS), one document a line.

:class:`~auditsync.sinks.JsonLinesSink` writes auditsync's own JSON form; this sink
writes what a mapping such as :func:`auditsync.ocsf.to_ocsf` or
:func:`auditsync.ecs.to_ecs` makes of each event, for Security Lake's and Elastic's
tools, which read those vocabularies and not ours.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

import orjson

from .._events import AuditEvent

__all__ = ["FormSink"]


def _line(document: Mapping[str, Any]) -> bytes:
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError:
        # Integers beyond 64 bits (the grammar reads ids of any length): JSON has room.
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


class FormSink:
    """Appends ``form(event)`` of every event as one line of JSON to a file or a stream.

    As :class:`~auditsync.sinks.JsonLinesSink`: a path is opened for appending and closed
    by :meth:`close`, a stream (``None`` for standard output) is flushed but stays open;
    each batch is serialised whole, then written with one call. Appending is not
    idempotent: every mapping carries the event's key (OCSF ``metadata.uid``, ECS
    ``event.id``; as ``_id`` in a bulk load it makes a retry overwrite).
    """

    def __init__(
        self,
        form: Callable[[AuditEvent], Mapping[str, Any]],
        target: str | os.PathLike[str] | IO[str] | IO[bytes] | None = None,
    ):
        self.form = form
        self._owned = isinstance(target, str | os.PathLike)
        stream: IO[Any]
        if isinstance(target, str | os.PathLike):
            stream = open(target, "ab", buffering=0)  # noqa: SIM115 - closed by close()
        else:
            stream = sys.stdout if target is None else target
        self._stream: IO[Any] = stream
        self._binary = isinstance(stream, io.RawIOBase | io.BufferedIOBase) or "b" in getattr(
            stream, "mode", ""
        )
        self._closed = False

    def write(self, events: Sequence[AuditEvent]) -> None:
        """Write one mapped document a line, then flush."""
        if self._closed:
            raise ValueError("write to a closed FormSink")
        if not events:
            return
        data = b"".join(_line(self.form(event)) + b"\n" for event in events)
        if self._binary:
            view = memoryview(data)
            while view:  # an unbuffered file may take part of it
                view = view[self._stream.write(view) :]
        else:
            self._stream.write(data.decode("utf-8"))
        self._stream.flush()

    def close(self) -> None:
        """Close the file the sink opened; a stream given to it stays open."""
        if not self._closed:
            self._closed = True
            if self._owned:
                self._stream.close()

    def __enter__(self) -> FormSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
