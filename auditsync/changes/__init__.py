"""Run code when rows change: committed transactions from the audit log, :class:`ChangeFeed`.

The audit log records statements one by one, including those of transactions that were
later rolled back and those that failed. :class:`ChangeFeed` follows each connection with
:mod:`auditsync.transactions` and calls your handler once for each transaction that
committed, with what each statement's text decides about the rows it changed
(:class:`Change`). See docs/changes.md.

The modules, in the order an event meets them: ``_model`` (the policy, and what a
statement's text decides), ``_state`` (where state lives, and its storage format),
``_feed`` (the sink, delivery and the router).
"""

from ._feed import ChangeFeed, FeedStats, HandlerError, Route
from ._model import MAX_KEYS, Change, Transaction, transaction_to_dict, value_to_json
from ._state import FEED_FORMAT, FeedFormatError

__all__ = [
    "FEED_FORMAT",
    "MAX_KEYS",
    "Change",
    "ChangeFeed",
    "FeedFormatError",
    "FeedStats",
    "HandlerError",
    "Route",
    "Transaction",
    "transaction_to_dict",
    "value_to_json",
]
