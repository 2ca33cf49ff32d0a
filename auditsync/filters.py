"""Predicates over events, composable with ``&``, ``|`` and ``~``.

``Pipeline(filter=...)`` keeps the events a predicate is true for. Each predicate knows
how to describe itself, so a pipeline's configuration reads back in logs.

>>> keep = operation("QUERY") & database("shop*") & ~user("rdsadmin")
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from fnmatch import fnmatchcase

from ._events import TABLE_OPERATIONS, AuditEvent
from .sql import KINDS

__all__ = [
    "EXCLUDE_RDSADMIN",
    "Predicate",
    "between",
    "database",
    "exclude_user",
    "failed",
    "kind",
    "operation",
    "table",
    "user",
    "writes_only",
]


class Predicate:
    """A test over events that composes: ``a & b``, ``a | b``, ``~a``."""

    __slots__ = ("description", "test")

    def __init__(self, test: Callable[[AuditEvent], bool], description: str):
        self.test = test
        self.description = description

    def __call__(self, event: AuditEvent) -> bool:
        return self.test(event)

    def __and__(self, other: Predicate) -> Predicate:
        first, second = self.test, other.test
        return Predicate(lambda event: first(event) and second(event), f"({self} & {other})")

    def __or__(self, other: Predicate) -> Predicate:
        first, second = self.test, other.test
        return Predicate(lambda event: first(event) or second(event), f"({self} | {other})")

    def __invert__(self) -> Predicate:
        test = self.test
        return Predicate(lambda event: not test(event), f"~{self}")

    def __repr__(self) -> str:
        return self.description

    __str__ = __repr__


def _matcher(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    """Exact names test by set membership; glob patterns (``*?[``) by fnmatch."""
    exact = frozenset(p for p in patterns if not any(c in p for c in "*?["))
    globs = tuple(p for p in patterns if p not in exact)
    if not globs:
        return exact.__contains__
    return lambda name: name in exact or any(fnmatchcase(name, glob) for glob in globs)


def operation(*names: str) -> Predicate:
    """Events whose operation is one of ``names`` (``QUERY``, ``CONNECT``, ``WRITE``…)."""
    wanted = frozenset(name.upper() for name in names)
    return Predicate(lambda event: event.operation in wanted, f"operation{names!r}")


def database(*patterns: str) -> Predicate:
    """Events whose database field matches one of the names or globs."""
    matches = _matcher(patterns)
    return Predicate(lambda event: matches(event.database), f"database{patterns!r}")


def user(*patterns: str) -> Predicate:
    """Events of the users named (names or globs)."""
    matches = _matcher(patterns)
    return Predicate(lambda event: matches(event.username), f"user{patterns!r}")


def exclude_user(*patterns: str) -> Predicate:
    """Events of everyone but the users named: ``exclude_user("rdsadmin")``."""
    return ~user(*patterns)


#: RDS and Aurora run health checks and housekeeping as ``rdsadmin`` every few seconds;
#: most consumers want them gone. Not applied by default: nothing is dropped unasked.
EXCLUDE_RDSADMIN = exclude_user("rdsadmin")


def failed() -> Predicate:
    """Events the server logged with a non-zero return code (errors, refused logins)."""
    return Predicate(lambda event: bool(event.retcode), "failed()")


def between(since: datetime | None = None, until: datetime | None = None) -> Predicate:
    """Events with ``since <= timestamp < until``; either bound may be left open.

    Naive datetimes are refused: an audit event's time is always aware (UTC).
    """
    for bound in (since, until):
        if bound is not None and bound.tzinfo is None:
            raise ValueError(f"between() needs aware datetimes, not {bound!r}")
    if since is not None and until is not None:
        low, high = since, until
        return Predicate(lambda event: low <= event.timestamp < high, f"between({since}, {until})")
    if since is not None:
        low = since
        return Predicate(lambda event: low <= event.timestamp, f"between({since}, None)")
    if until is not None:
        high = until
        return Predicate(lambda event: event.timestamp < high, f"between(None, {until})")
    return Predicate(lambda event: True, "between(None, None)")


def kind(*kinds: str) -> Predicate:
    """QUERY events whose statement is of one of ``kinds`` (see :data:`auditsync.sql.KINDS`).

    A kind that is not one of those is a ``ValueError``: a misspelt kind would otherwise
    match nothing, and a filter that silently drops every event looks like an empty log.
    """
    wanted = frozenset(name.upper() for name in kinds)
    unknown = sorted(wanted.difference(KINDS))
    if unknown:
        raise ValueError(
            f"unknown statement kind {', '.join(map(repr, unknown))}: a kind is one of "
            "auditsync.sql.KINDS, such as INSERT, UPDATE, DELETE, CREATE_TABLE or OTHER"
        )

    def test(event: AuditEvent) -> bool:
        statement = event.statement
        return statement is not None and statement.kind in wanted

    return Predicate(test, f"kind{kinds!r}")


def writes_only() -> Predicate:
    """QUERY events whose statement changes rows or definitions (``Statement.is_write``).

    Table events (``WRITE``, ``CREATE``…) are left out: they repeat, per table, what the
    statement's own QUERY event says.
    """

    def test(event: AuditEvent) -> bool:
        statement = event.statement
        return statement is not None and statement.is_write

    return Predicate(test, "writes_only()")


def table(*patterns: str, reads: bool = False) -> Predicate:
    """Events that write a table matching one of the globs on ``db.table``.

    QUERY events are matched through the tables their statement writes (and, with
    ``reads=True``, reads); a table named without its database takes the event's database
    field, the plugin's guess at the current one. Table events match on their own table.
    ``table("shop.orders*")`` follows writes to ``shop.orders`` and its siblings.
    """
    matches = _matcher(patterns)

    def test(event: AuditEvent) -> bool:
        statement = event.statement
        if statement is None:
            named = f"{event.database}.{event.object}"
            return event.operation in TABLE_OPERATIONS and matches(named)
        names = statement.writes + statement.reads if reads else statement.writes
        return any(matches(name if "." in name else f"{event.database}.{name}") for name in names)

    return Predicate(test, f"table{patterns!r}")
