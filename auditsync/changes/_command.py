"""``auditsync changes``: a feed whose handler writes each transaction as a line of JSON.

The command line's other parts (inputs, filters, exit codes) are ``decode``'s, in
``auditsync._cli``; this is what the command adds.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Protocol

import orjson

from ._feed import ChangeFeed
from ._model import Transaction, transaction_to_dict

__all__ = ["open_feed", "parse_keys"]


def parse_keys(specs: list[str]) -> dict[str, tuple[str, ...]]:
    """``--keys shop.orders=id --keys shop.tags=doc,tag`` as ``ChangeFeed(keys=...)``."""
    keys: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        table, _, columns = spec.partition("=")
        names = tuple(column.strip() for column in columns.split(",") if column.strip())
        if "." not in table or not names:
            raise ValueError(f"--keys {spec!r}: write DB.TABLE=COLUMN[,COLUMN…]")
        keys[table.strip()] = names
    return keys


class _Output(Protocol):
    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class _Lines:
    """The handler: each transaction as one line of JSON, written at once."""

    def __init__(self, output: _Output, owned: bool):
        self.output = output
        self.owned = owned

    def __call__(self, transaction: Transaction) -> None:
        document = transaction_to_dict(transaction)
        try:
            line = orjson.dumps(document)
        except orjson.JSONEncodeError:
            # Lone surrogates (bytes that were not UTF-8) and integers beyond 64 bits:
            # the standard library escapes the one and writes the other.
            line = json.dumps(document, ensure_ascii=True, separators=(",", ":")).encode()
        self.output.write(line + b"\n")
        self.output.flush()

    def close(self) -> None:
        if self.owned:
            self.output.close()


class _CommandFeed(ChangeFeed):
    """A feed that closes its output with itself."""

    lines: _Lines

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.lines.close()


def open_feed(arguments: argparse.Namespace) -> ChangeFeed:
    """The feed ``auditsync changes`` runs, from its options; ``ValueError`` or
    ``OSError`` for options that do not work."""
    keys = parse_keys(arguments.keys)
    spec = arguments.to
    output: _Output
    if spec == "jsonl":
        output, owned = _stdout(), False
    else:
        kind, _, path = spec.partition(":")
        if kind != "jsonl" or not path:
            raise ValueError(f"unknown output {spec!r}: use jsonl or jsonl:PATH")
        output, owned = open(path, "ab"), True  # noqa: SIM115 - closed with the feed
    lines = _Lines(output, owned)
    feed = _CommandFeed(
        lines,
        state=arguments.state,
        keys=keys,
        tables=arguments.table,
        databases=arguments.database,
        query_log_limit=arguments.query_log_limit,
        ddl=arguments.ddl,
    )
    feed.lines = lines
    return feed


def _stdout() -> _Output:
    buffer: Any = getattr(sys.stdout, "buffer", None)
    if buffer is not None:
        sys.stdout.flush()
        output: _Output = buffer
        return output
    return _TextBytes()


class _TextBytes:
    """Standard output that takes no bytes (a test's capture): written as text."""

    def write(self, data: bytes) -> int:
        sys.stdout.write(data.decode("utf-8", "surrogateescape"))
        return len(data)

    def flush(self) -> None:
        sys.stdout.flush()

    def close(self) -> None:
        sys.stdout.flush()
