"""The inputs the benchmark feeds every contender: audit lines as servers write them, and
Lambda Kinesis events carrying them the way CloudWatch Logs does.

Lines are built as :class:`auditsync.AuditEvent` values and written with
:func:`auditsync.format_line`, so each one is exactly what the plugin writes (escapes
included) and reads back. Everything is deterministic (a seeded ``random.Random``), so two
runs measure the same bytes.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import attrs

from auditsync import AuditEvent, Dialect, format_line
from auditsync.testing import data_message, kinesis_event, to_payload

__all__ = [
    "big_statement",
    "big_statement_event",
    "log_block",
    "mixed_lines",
    "standard_event",
    "statement_line",
    "subscription_payload",
]

_START = datetime(2024, 3, 14, 9, 26, 53, tzinfo=UTC)
_HOSTS = ("10.0.3.17", "10.0.7.201", "172.31.40.5", "52.94.133.136", "localhost")
_USERS = ("app", "report_ro", "admin", "etl", "rdsadmin")
_DATABASES = ("shop", "billing", "analytics", "mysql", "inventory")
_TABLES = ("orders", "order_items", "customers", "invoices", "table_stats", "stock")
_NAMES = ("Zoë Ångström", "O'Neil, Jr.", "東京 店", "Müller & Söhne", "Łódź, PL", "Renée")

#: Statements with what trips naive splitters: quoted commas, quotes (escaped as \'),
#: backslashes (escaped as \\), newlines and tabs (\n, \t), non-ASCII text.
_QUERIES = (
    "SELECT id, total FROM orders WHERE customer_id = {n} AND status IN ('new','paid')",
    "INSERT INTO customers (name, city, note) VALUES ('{name}', 'Leeds, UK', 'a,b,c')",
    "UPDATE stock SET qty = qty - 1, updated = NOW() WHERE sku = 'SKU-{n}'",
    "SELECT * FROM invoices WHERE path LIKE 'C:\\\\exports\\\\{n}\\\\%' LIMIT 10",
    "SELECT name FROM customers WHERE name = '{name}'\n  AND region = 'EU'\tORDER BY 1",
    "DELETE FROM order_items WHERE order_id = {n}",
    "SELECT COUNT(*), SUM(total) FROM orders WHERE created > '2024-03-01, 00:00'",
    "CALL refresh_totals({n}, 'it''s, \"quoted\"')",
    "SET NAMES utf8mb4",
    "COMMIT",
)


def _event(rng: random.Random, index: int, dialect: Dialect) -> AuditEvent:
    """One event of a mix close to a busy OLTP server with table events logged."""
    when = _START + timedelta(microseconds=index * 10_007)  # ~100 lines a second
    if dialect is not Dialect.AURORA:
        when = when.replace(microsecond=0)
    connection = 1000 + rng.randrange(40)
    query_id = 500_000 + index
    user = rng.choice(_USERS)
    host = rng.choice(_HOSTS)
    database = rng.choice(_DATABASES)
    roll = rng.random()
    retcode: int | None
    if roll < 0.55:
        template = rng.choice(_QUERIES)
        text = template.format(n=rng.randrange(10**6), name=_sql(rng.choice(_NAMES)))
        operation, obj, retcode = "QUERY", text, rng.choice((0, 0, 0, 0, 1064, 1146))
    elif roll < 0.85:
        operation = rng.choice(("READ", "READ", "WRITE"))
        obj = rng.choice(_TABLES)
        retcode = 0 if dialect is Dialect.AURORA else None
    elif roll < 0.93:
        operation, obj, retcode = "CONNECT", "", 0
    elif roll < 0.98:
        operation, obj, retcode = "DISCONNECT", "", 0
    else:
        operation, obj, retcode = "FAILED_CONNECT", "", 1045
    if operation != "QUERY":
        query_id = 0 if operation in ("CONNECT", "DISCONNECT", "FAILED_CONNECT") else query_id
    return AuditEvent(
        when,
        f"{'prod-instance-1' if dialect is Dialect.AURORA else 'db-primary'}",
        user,
        host,
        connection,
        query_id,
        operation,
        database,
        obj,
        retcode,
        dialect=dialect,
    )


def mixed_lines(count: int, dialect: Dialect, seed: int = 1) -> list[str]:
    """``count`` lines of mixed operations in one dialect (MariaDB date form or Aurora µs)."""
    rng = random.Random(seed)
    events = [_event(rng, index, dialect) for index in range(count)]
    index = 0
    while index < count - 1:
        if events[index].operation == "FAILED_CONNECT":
            # As the server writes a failed login: a connection of its own, then its
            # DISCONNECT (auditsync holds the lines before it until that comes).
            failed = attrs.evolve(events[index], connection_id=5000 + index)
            events[index : index + 2] = [
                failed,
                attrs.evolve(failed, operation="DISCONNECT", retcode=0),
            ]
            index += 1
        index += 1
    return [format_line(event) for event in events]


_NOTES = ("a,b", "x, y, z", "C:\\\\tmp\\\\", "none", "it''s, fine")


def _sql(text: str) -> str:
    """``text`` as the inside of an SQL string literal."""
    return text.replace("'", "''")


def _values_row(rng: random.Random, row: int) -> str:
    name = _sql(rng.choice(_NAMES))
    return (
        f"({row}, '{name}', '{rng.randrange(1, 999)} High St, Leeds, LS{rng.randrange(1, 30)}', "
        f"'{rng.choice(_NOTES)}', {rng.random():.4f})"
    )


def big_statement(size: int, seed: int = 2) -> str:
    """An INSERT of about ``size`` characters, many quoted values that hold commas."""
    rng = random.Random(seed)
    parts = ["INSERT INTO customers (id, name, address, note, score) VALUES "]
    length = len(parts[0])
    row = 0
    while length < size:
        piece = ("," if row else "") + _values_row(rng, row)
        parts.append(piece)
        length += len(piece)
        row += 1
    return "".join(parts)[:size]


@lru_cache(maxsize=256)
def statement_line(size: int, dialect: Dialect = Dialect.MARIADB, seed: int = 2) -> str:
    """A QUERY line of ``size`` characters (escapes included): a long multi-row INSERT."""
    statement = big_statement(size, seed)
    low, high = 0, len(statement)
    while low < high:  # the longest statement whose line still fits in ``size``
        middle = (low + high + 1) // 2
        if len(_query_line(statement[:middle], dialect)) <= size:
            low = middle
        else:
            high = middle - 1
    return _query_line(statement[:low], dialect)


def _query_line(statement: str, dialect: Dialect) -> str:
    event = AuditEvent(
        _START,
        "db-primary",
        "etl",
        "10.0.3.17",
        1042,
        777_000,
        "QUERY",
        "shop",
        statement,
        0,
        dialect=dialect,
    )
    return format_line(event)


def subscription_payload(lines: list[str], record: int, dialect: Dialect) -> str:
    """Base64 of gzip of one CloudWatch Logs DATA_MESSAGE carrying ``lines``."""
    if dialect is Dialect.AURORA:
        group, stream = "/aws/rds/cluster/prod/audit", "prod-instance-1.audit.log.0.2024-03-14"
    else:
        group, stream = "/aws/rds/instance/db-primary/audit", "db-primary.audit.log"
    message = data_message(
        lines,
        log_group=group,
        log_stream=stream,
        first_id=37_895_531_123_000_000 + record * 1000,
        first_timestamp=1_710_408_413_000 + record * 1000,
    )
    return to_payload(message)


def standard_event(records: int = 200, lines_per_record: int = 50) -> dict[str, Any]:
    """The standard batch: ``records`` Kinesis records of ``lines_per_record`` mixed lines,
    MariaDB (date form) and Aurora (epoch µs) records alternating."""
    payloads = []
    for record in range(records):
        dialect = Dialect.AURORA if record % 2 else Dialect.MARIADB
        lines = mixed_lines(lines_per_record, dialect, seed=record)
        payloads.append(subscription_payload(lines, record, dialect))
    return kinesis_event(payloads)


def big_statement_event(
    records: int, lines_per_record: int = 10, size: int = 4096
) -> dict[str, Any]:
    """``records`` Kinesis records of ``lines_per_record`` QUERY lines of ``size``-byte INSERTs."""
    payloads = []
    for record in range(records):
        lines = [
            statement_line(size, Dialect.MARIADB, seed=(record * lines_per_record + index) % 101)
            for index in range(lines_per_record)
        ]
        payloads.append(subscription_payload(lines, record, Dialect.MARIADB))
    return kinesis_event(payloads)


def log_block(lines: int, seed: int = 7) -> bytes:
    """A block of raw MariaDB server_audit log lines (file output), newline-terminated."""
    return ("\n".join(mixed_lines(lines, Dialect.MARIADB, seed=seed)) + "\n").encode("utf-8")
