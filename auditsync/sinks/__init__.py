"""Where events go: the :class:`Sink` protocol and the built-in sinks."""

from .base import DeadLetterSink, Refused, Sink

__all__ = ["DeadLetterSink", "Refused", "Sink"]
