"""Where events go: the :class:`Sink` protocol and the built-in sinks."""

from .._json import (
    dead_letter_from_dict,
    dead_letter_to_dict,
    event_from_dict,
    event_to_dict,
    to_json,
)
from ._base import DeadLetterSink, Refused, Sink, Stored
from ._forms import FormSink
from ._jsonlines import JsonLinesSink
from ._memory import CallbackSink, FanOutSink, MemorySink
from ._parquet import OcsfParquetSink, ParquetSink
from ._postgres import PostgresSink
from ._sqlite import SQLiteSink

__all__ = [
    "CallbackSink",
    "DeadLetterSink",
    "FanOutSink",
    "FormSink",
    "JsonLinesSink",
    "MemorySink",
    "OcsfParquetSink",
    "ParquetSink",
    "PostgresSink",
    "Refused",
    "SQLiteSink",
    "Sink",
    "Stored",
    "dead_letter_from_dict",
    "dead_letter_to_dict",
    "event_from_dict",
    "event_to_dict",
    "to_json",
]
