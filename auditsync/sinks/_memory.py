"""Sinks that live in the process: a list, a callback, and a fan-out to several sinks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .._events import AuditEvent, DeadLetter
from ._base import Refused, Sink

__all__ = ["CallbackSink", "FanOutSink", "MemorySink"]


class MemorySink:
    """Keeps everything it is given, events and dead letters, in order, in :attr:`items`.

    For tests, notebooks and small scripts. It keeps every copy: a retried batch appears
    twice, as it would reach a real sink twice.
    """

    def __init__(self) -> None:
        self.items: list[AuditEvent | DeadLetter] = []
        self.closed = False

    def write(self, events: Sequence[AuditEvent | DeadLetter]) -> None:
        """Append the batch."""
        if self.closed:
            raise ValueError("write to a closed MemorySink")
        self.items.extend(events)

    @property
    def events(self) -> list[AuditEvent]:
        """The events among :attr:`items`."""
        return [item for item in self.items if isinstance(item, AuditEvent)]

    @property
    def dead_letters(self) -> list[DeadLetter]:
        """The dead letters among :attr:`items`."""
        return [item for item in self.items if isinstance(item, DeadLetter)]

    def close(self) -> None:
        """Refuse further writes; :attr:`items` stays readable."""
        self.closed = True

    def __enter__(self) -> MemorySink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class CallbackSink:
    """Calls ``fn(batch)`` for each batch: the shortest way to plug in your own code.

    ``fn`` follows the sink contract: returning means the batch is taken, raising means
    it is not and will be retried, raising :class:`~auditsync.sinks.Refused` means it
    took all but the events named. ``on_close``, if given, runs once, on the first close.
    """

    def __init__(
        self,
        fn: Callable[[Sequence[Any]], object],
        *,
        on_close: Callable[[], object] | None = None,
    ):
        self.fn = fn
        self._on_close = on_close
        self.closed = False

    def write(self, events: Sequence[AuditEvent | DeadLetter]) -> None:
        """Hand the batch to ``fn``."""
        if self.closed:
            raise ValueError("write to a closed CallbackSink")
        self.fn(events)

    def close(self) -> None:
        """Run ``on_close`` the first time; later calls do nothing."""
        if self.closed:
            return
        self.closed = True
        if self._on_close is not None:
            self._on_close()

    def __enter__(self) -> CallbackSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class FanOutSink:
    """Writes every batch to each of ``sinks``, in order: a file and a database, say.

    Refusals are gathered: when sinks raise :class:`~auditsync.sinks.Refused`, the others
    still get the batch, and then one ``Refused`` names the union of the refused events,
    in batch order. Any other exception stops the fan-out and propagates, so the batch
    counts as not taken and is retried whole: the sinks before the failing one receive it
    a second time. Idempotent sinks (SQLite, PostgreSQL, anything keyed on
    ``AuditEvent.key``) store it once; an appending sink (JSON Lines, memory) holds it
    twice, and its readers drop repeats by key. Put the sink likeliest to fail first.

    :meth:`close` closes every sink, even when one of them fails to close.
    """

    def __init__(self, *sinks: Sink):
        self.sinks = sinks
        self._closed = False

    def write(self, events: Sequence[AuditEvent]) -> None:
        """Write the batch to each sink in order; see the class for failures."""
        if self._closed:
            raise ValueError("write to a closed FanOutSink")
        refusals: list[Refused] = []
        for sink in self.sinks:
            try:
                sink.write(events)
            except Refused as refused:
                refusals.append(refused)
        if refusals:
            raise _union(events, refusals)

    def close(self) -> None:
        """Close every sink; the first error, if any, is raised after all were tried."""
        if self._closed:
            return
        self._closed = True
        first: BaseException | None = None
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as error:
                first = first or error
        if first is not None:
            raise first

    def __enter__(self) -> FanOutSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _union(batch: Sequence[AuditEvent], refusals: Sequence[Refused]) -> Refused:
    """One :class:`Refused` for several: each refused event once, in batch order."""
    refused = {id(event): event for refusal in refusals for event in refusal.events}
    in_batch = {id(event) for event in batch}
    ordered = [event for event in batch if id(event) in refused]
    strays = [event for key, event in refused.items() if key not in in_batch]
    reasons = dict.fromkeys(refusal.reason for refusal in refusals)
    by_key = {key: why for refusal in refusals for key, why in refusal.reasons.items()}
    return Refused([*ordered, *strays], "; ".join(reasons), by_key)
