"""Where events go: the :class:`Sink` protocol and the built-in sinks."""

from .base import DeadLetterSink, Refused, Sink
from .jsonlines import (
    JsonLinesSink,
    dead_letter_from_dict,
    dead_letter_to_dict,
    event_from_dict,
    event_to_dict,
    to_json,
)
from .memory import CallbackSink, FanOutSink, MemorySink
from .postgres import PostgresSink
from .sqlite import SQLiteSink

__all__ = [
    "CallbackSink",
    "DeadLetterSink",
    "FanOutSink",
    "JsonLinesSink",
    "MemorySink",
    "PostgresSink",
    "Refused",
    "SQLiteSink",
    "Sink",
    "dead_letter_from_dict",
    "dead_letter_to_dict",
    "event_from_dict",
    "event_to_dict",
    "to_json",
]
