"""What a sink is: somewhere events go, one batch at a time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import attrs

from .._events import AuditEvent, DeadLetter

__all__ = ["DeadLetterSink", "Refused", "Sink", "Stored"]


@attrs.frozen
class Stored:
    """What one ``write`` of an idempotent sink did with the events it took: ``new`` ones
    it stored, and ``present`` ones it already held (their keys were stored before) and
    skipped. Without it a second run over the same input reports every event delivered
    and the user cannot tell that nothing was added."""

    new: int
    present: int


@runtime_checkable
class Sink(Protocol):
    """Takes batches of events.

    ``write`` either takes the whole batch or raises; a batch that raised was not taken
    and will be retried, so writes must be idempotent (``AuditEvent.key`` is for that).
    A sink that will *never* accept some events stores the rest and raises
    :class:`Refused` naming them. A sink that can tell new events from ones it already
    held returns :class:`Stored` (or gives it to :class:`Refused`); others return ``None``.
    """

    def write(self, events: Sequence[AuditEvent]) -> Stored | None: ...

    def close(self) -> None: ...


@runtime_checkable
class DeadLetterSink(Protocol):
    """Takes the records that could not be delivered, with why and where."""

    def write(self, letters: Sequence[DeadLetter]) -> None: ...

    def close(self) -> None: ...


class Refused(Exception):
    """Raised by a sink that stored everything but ``events``, which it never will.

    Not a failure: the pipeline hands exactly these events to its dead-letter sink with
    their reason (``reasons[event.key]``, else ``reason``) and counts the batch delivered,
    so a retry never sees them again.
    """

    def __init__(
        self,
        events: Sequence[AuditEvent],
        reason: str,
        reasons: Mapping[str, str] | None = None,
        stored: Stored | None = None,
    ):
        self.events = tuple(events)
        self.reason = reason
        #: Each event's own reason, by key, where a sink has more to say than ``reason``.
        self.reasons: Mapping[str, str] = reasons or {}
        #: What became of the rest, where the sink knows (:class:`Stored`).
        self.stored = stored
        super().__init__(f"{len(self.events)} event(s) refused: {reason}")
