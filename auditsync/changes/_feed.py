"""The sink that calls your code once for each committed transaction: :class:`ChangeFeed`.

Every event goes through :class:`~auditsync.transactions.SessionMachine` with the feed's
policy; a write is held until its transaction ends, and a transaction that commits is read
(:func:`~._model.read_changes`) and handed to the handler, then to the routes. What must
outlive the invocation (sessions, held writes, the keys of the events handled) is written
to the store at a checkpoint: at the end of each write, and before a handler's failure is
raised, so that a retry starts exactly where the failure left off.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from .._errors import DeliveryError
from .._events import AuditEvent
from .._json import iso_timestamp
from ..sinks._base import Refused
from ..transactions import (
    TABLE_OPERATIONS,
    Commit,
    Discard,
    Forget,
    Hold,
    Order,
    Run,
    Session,
    SessionMachine,
    Wording,
    in_log_order,
)
from ._model import Change, FeedPolicy, Transaction, Write, read_changes
from ._state import Checkpoint, Seen, Store, connection_key, decode_write, encode_write, open_store

__all__ = ["ChangeFeed", "FeedStats", "HandlerError", "Route"]

Handler = Callable[[Transaction], object]
RouteHandler = Callable[[Change, Transaction], object]


class HandlerError(DeliveryError):
    """A handler raised: the transaction was not recorded and will be offered again.

    ``transaction`` is the one offered; the handler's exception is the ``__cause__``.
    """

    def __init__(self, transaction: Transaction, error: BaseException):
        self.transaction = transaction
        super().__init__(f"handler failed on transaction {transaction.key}: {error!r}")


@attrs.define
class FeedStats:
    """What a feed did, summed over its writes (a write that raised counts up to its failure).

    ``resumed`` counts transactions whose first write was held by an earlier ``write``
    (a BEGIN in one invocation, its COMMIT in another); ``keyed`` the changes whose
    ``keys`` the text decided; ``refused`` events by reason (the part before the colon).
    """

    events: int = 0
    duplicates: int = 0
    delivered: int = 0
    changes: int = 0
    keyed: int = 0
    resumed: int = 0
    rolled_back: int = 0
    handler_failures: int = 0
    refused: Counter[str] = attrs.Factory(Counter)


@attrs.frozen(slots=True)
class Route:
    """A function called with each change of a table glob and, if given, operations."""

    pattern: str
    operations: frozenset[str]
    function: RouteHandler

    def matches(self, change: Change) -> bool:
        if self.operations and change.operation not in self.operations:
            return False
        return fnmatch.fnmatchcase(change.table, self.pattern)


class _Work:
    """One write: the connections it touched, as loaded and as they are now."""

    def __init__(self, feed: ChangeFeed):
        self.feed = feed
        self.sessions: dict[str, Session] = {}
        self.stored_sessions: dict[str, str | None] = {}
        self.held: dict[str, dict[int, Write | str]] = {}
        self.stored_held: dict[str, set[int]] = {}
        self.gone: set[str] = set()
        self.seen: list[Seen] = []
        self.latest = ""

    def session(self, event: AuditEvent) -> tuple[str, Session]:
        key = connection_key(event.serverhost, event.connection_id)
        self.latest = max(self.latest, iso_timestamp(event.timestamp))
        self.gone.discard(key)
        if key not in self.sessions:
            text, held = self.feed._store.load(key)
            self.stored_sessions[key] = text
            self.sessions[key] = (
                self.feed._machine.session() if text is None else Session.load(text)
            )
            self.held[key] = dict(held)
            self.stored_held[key] = set(held)
        return key, self.sessions[key]

    def checkpoint(self) -> None:
        """Write what changed since the store was read, and take it as the stored state."""
        sessions: dict[str, str | None] = {}
        held: list[tuple[str, int, str]] = []
        dropped: list[tuple[str, int]] = []
        for key, session in self.sessions.items():
            text = None if key in self.gone else session.dump()
            if text != self.stored_sessions[key]:
                sessions[key] = text
            current = self.held[key]
            stored = self.stored_held[key]
            dropped.extend((key, seq) for seq in sorted(stored - set(current)))
            for seq in sorted(set(current) - stored):
                value = current[seq]
                held.append((key, seq, value if isinstance(value, str) else encode_write(value)))
        if sessions or held or dropped or self.seen:
            self.feed._store.save(Checkpoint(sessions, held, dropped, self.seen), self.latest)
        else:
            self.feed._store.rollback()  # end the read transaction: the next write reads anew
        for key, text in sessions.items():
            self.stored_sessions[key] = text
        for key, current in self.held.items():
            self.stored_held[key] = set(current)
        self.seen = []


class ChangeFeed:
    """A :class:`~auditsync.sinks.Sink` that calls ``handler(transaction)`` once for each
    committed transaction that wrote a followed table, in the log's order of the commits.

    Statements of rolled-back transactions, failed statements and reads never reach it.
    ``state`` is where sessions and open transactions live between writes: ``None``
    (memory), a SQLite path, or a DB-API connection or a function opening one (SQLite,
    PostgreSQL, MySQL/MariaDB). ``keys`` names key columns by ``db.table`` (globs allowed),
    so that changes carry the keys of the rows they target; ``tables`` and ``databases``
    select what is followed (globs); ``query_log_limit`` is the source's
    ``server_audit_query_log_limit``, since a statement that long may have been cut
    without a mark; ``ddl`` delivers DDL too; ``autocommit`` is the source's default;
    ``order`` how a batch is put in the log's order (:func:`~auditsync.transactions.in_log_order`:
    Aurora's batches are sorted by time).

    A handler (or route) that raises makes :meth:`write` raise :class:`HandlerError`
    after recording everything before that transaction; the transaction is offered again
    on the retry. A transaction is recorded as delivered at the end of the write that
    delivered it: should the process die in between, it is offered again, with the same
    :attr:`Transaction.key`. Writes the feed cannot place in a table are refused
    (:class:`~auditsync.sinks.Refused`), with their whole transaction.
    """

    def __init__(
        self,
        handler: Handler | None,
        *,
        state: Any = None,
        keys: Mapping[str, Sequence[str]] | None = None,
        tables: str | Sequence[str] | None = None,
        databases: str | Sequence[str] | None = None,
        query_log_limit: int | None = None,
        ddl: bool = False,
        autocommit: bool = True,
        order: Order = "auto",
    ):
        in_log_order([], order)  # refuses an unknown order now, not at the first write
        self.order: Order = order
        self.handler = handler
        self.keys = {name: tuple(columns) for name, columns in (keys or {}).items()}
        self.query_log_limit = query_log_limit
        self.routes: list[Route] = []
        self.stats = FeedStats()
        policy = FeedPolicy(tables=_globs(tables), databases=_globs(databases), ddl=ddl)
        self._machine = SessionMachine(
            policy, autocommit=autocommit, wording=Wording("delivered", "followed", "reads")
        )
        self._store: Store = open_store(state)
        self._closed = False

    def on(self, table: str, *operations: str) -> Callable[[RouteHandler], RouteHandler]:
        """Register the decorated function for the changes of ``table`` (a glob) and, if
        named, ``operations``; it is called with the change and its transaction."""

        def register(function: RouteHandler) -> RouteHandler:
            wanted = frozenset(operation.upper() for operation in operations)
            self.routes.append(Route(table, wanted, function))
            return function

        return register

    def write(self, events: Sequence[AuditEvent]) -> None:
        """Follow a batch; deliver what it commits; record it all at the end."""
        if self._closed:
            raise ValueError("write to a closed ChangeFeed")
        work = _Work(self)
        stats = FeedStats()
        refusals: list[tuple[AuditEvent, str]] = []
        try:
            keys = [event.key for event in events if event.operation not in TABLE_OPERATIONS]
            known = self._store.seen(keys)
            for event in in_log_order(events, self.order):
                stats.events += 1
                if event.operation in TABLE_OPERATIONS:
                    self._machine.table_event(work.session(event)[1], event)
                    continue
                key = event.key  # a digest where there is no event id: computed once
                if key in known:
                    stats.duplicates += 1
                    reason = known[key]
                    if reason is not None:
                        refusals.append((event, reason))  # again: its dead letter may be lost
                    continue
                reason = self._handle(work, event, key, stats)
                known[key] = reason
                work.seen.append(Seen(key, reason, iso_timestamp(event.timestamp)))
                if reason is not None:
                    refusals.append((event, reason))
                    stats.refused[reason.partition(":")[0]] += 1
            work.checkpoint()
        except HandlerError:
            stats.handler_failures += 1
            self._add(stats)
            raise
        except BaseException:
            self._store.rollback()
            raise
        self._add(stats)
        if refusals:
            reasons = {event.key: reason for event, reason in refusals}
            summary = "; ".join(sorted(set(reasons.values())))
            raise Refused([event for event, _ in refusals], summary, reasons)

    def _add(self, stats: FeedStats) -> None:
        for field in attrs.fields(FeedStats):
            mine, theirs = getattr(self.stats, field.name), getattr(stats, field.name)
            if isinstance(mine, Counter):
                mine.update(theirs)
            else:
                setattr(self.stats, field.name, mine + theirs)

    def _handle(
        self, work: _Work, event: AuditEvent, event_key: str, stats: FeedStats
    ) -> str | None:
        """One event through the machine; deliver what it commits. Its refusal, if any."""
        key, session = work.session(event)
        before = session.copy()
        held = work.held[key]
        # What to put back should a handler fail: the held writes as they were before the
        # first action that removes some (copied then, once per transaction, not per event).
        kept: dict[int, Write | str] | None = None
        added: list[int] = []
        step = self._machine.step(session, event)
        ready: list[list[Write | str]] = []
        for action in step.actions:
            if isinstance(action, Run):
                ready.append([action.value])
                continue
            if isinstance(action, Hold):
                held[action.seq] = action.value
                added.append(action.seq)
                continue
            if kept is None:
                kept = dict(held)
            if isinstance(action, Commit):
                ready.append([held[seq] for seq in sorted(held)])
                held.clear()
            elif isinstance(action, Discard):
                for seq in [seq for seq in held if seq >= action.seq]:
                    del held[seq]
                if action.outcome == "rolled back" and not action.to_savepoint:
                    stats.rolled_back += 1
            elif isinstance(action, Forget):
                work.gone.add(key)
                held.clear()
        for number, writes in enumerate(ready):
            transaction = self._transaction(event, event_key, number, writes)
            try:
                self._deliver(transaction)
            except Exception as error:
                # Not recorded: put the connection back as it was before this event, keep
                # everything before it, and let the retry offer the transaction again.
                restored = held if kept is None else kept
                for seq in added:
                    restored.pop(seq, None)
                work.sessions[key] = before
                work.held[key] = restored
                work.gone.discard(key)
                work.checkpoint()
                raise HandlerError(transaction, error) from error
            stats.delivered += 1
            stats.changes += len(transaction.changes)
            stats.keyed += sum(change.keys is not None for change in transaction.changes)
            stats.resumed += any(isinstance(write, str) for write in writes)
        return step.reason

    def _transaction(
        self, event: AuditEvent, event_key: str, number: int, writes: list[Write | str]
    ) -> Transaction:
        taken = [decode_write(write) if isinstance(write, str) else write for write in writes]
        changes = tuple(
            change
            for write in taken
            for change in read_changes(write, self.keys, self.query_log_limit)
        )
        statements = [write.event for write in taken]
        if all(statement is not event for statement in statements):
            statements.append(event)
        return Transaction(
            key=event_key if number == 0 else f"{event_key}/{number}",
            serverhost=event.serverhost,
            connection_id=event.connection_id,
            username=event.username,
            host=event.host,
            committed_at=event.timestamp,
            changes=changes,
            events=tuple(statements),
        )

    def _deliver(self, transaction: Transaction) -> None:
        if self.handler is not None:
            self.handler(transaction)
        for route in self.routes:
            for change in transaction.changes:
                if route.matches(change):
                    route.function(change, transaction)

    def prune(self, before: datetime) -> int:
        """Forget the keys of events older than ``before``; how many went.

        Only keys that can no longer be redelivered are safe to forget: older than the
        stream's retention (24 hours by default on Kinesis).
        """
        return self._store.prune(iso_timestamp(before))

    def close(self) -> None:
        """Stop taking writes; close the state's connection if the feed opened it."""
        self._closed = True
        self._store.close()

    def __enter__(self) -> ChangeFeed:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _globs(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)
