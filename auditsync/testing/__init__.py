"""Inputs and values of auditsync, made to order: for our tests and yours.

The builders (payloads and Lambda events from lines) need only the runtime dependencies.
The Hypothesis strategies (events of every dialect, their lines, subscription messages,
the Lambda events carrying them, damaged bytes) need ``hypothesis`` and are loaded the
first time one of them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._builders import (
    data_message,
    firehose_event,
    kinesis_event,
    subscription_event,
    to_payload,
)

if TYPE_CHECKING:
    from ._strategies import (
        audit_events,
        audit_lines,
        control_messages,
        firehose_events,
        kinesis_events,
        mutations,
        query_texts,
        subscription_events,
        subscription_messages,
    )

_STRATEGIES = frozenset(
    {
        "audit_events",
        "audit_lines",
        "control_messages",
        "firehose_events",
        "kinesis_events",
        "mutations",
        "query_texts",
        "subscription_events",
        "subscription_messages",
    }
)

__all__ = [
    "audit_events",
    "audit_lines",
    "control_messages",
    "data_message",
    "firehose_event",
    "firehose_events",
    "kinesis_event",
    "kinesis_events",
    "mutations",
    "query_texts",
    "subscription_event",
    "subscription_events",
    "subscription_messages",
    "to_payload",
]


def __getattr__(name: str) -> Any:
    """Load the strategies on first use, so the builders work without Hypothesis."""
    if name not in _STRATEGIES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        strategies = importlib.import_module("._strategies", __name__)
    except ModuleNotFoundError as missing:
        if missing.name != "hypothesis":
            raise
        raise ImportError(
            f"auditsync.testing.{name} is a Hypothesis strategy: pip install hypothesis"
        ) from missing
    return getattr(strategies, name)
