"""The sink that applies what the audit log records to a replica: :class:`ReplaySink`.

A Lambda container can be replaced between any two invocations, so nothing lives only in
memory: each connection's :class:`~auditsync.transactions.Session`, the statements of
transactions not yet committed and the key of every event handled are kept on the target,
in bookkeeping tables written in the same transaction as the change they describe. A
redelivered event finds its key and changes nothing; a transaction begun in one invocation
is applied, whole, by whichever invocation sees its COMMIT. See docs/replay.md for the
rules and their limits, and for the bookkeeping tables as a storage format.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple

import attrs

from .._events import AuditEvent
from ..sinks._base import Refused
from ..transactions import (
    SESSION_VARIABLES,
    SYSTEM_DATABASES,
    TABLE_OPERATIONS,
    Action,
    Commit,
    Discard,
    Hold,
    Order,
    Run,
    Session,
    SessionMachine,
    Wording,
    in_log_order,
)
from ._analysis import TableInfo
from ._policy import Options, Replayed, ReplayPolicy
from ._targets import APPLIED, PENDING, STATE, Target, decoded

__all__ = ["ReplayRefused", "ReplaySink", "ReplayStats"]

_UNKNOWN: Final = "\x00unknown"  # the target session's database before the first USE


@attrs.define
class ReplayStats:
    """What a sink did, summed over its writes (a failed write counts nothing).

    ``applied`` counts statements run on the target, those of committed transactions
    included; ``held`` statements kept for a transaction still open; ``committed`` and
    ``rolled_back`` transactions; ``resumed`` transactions whose COMMIT came in a later
    write than their first statement; ``duplicates`` redelivered events recognised by key.
    ``refused`` and ``skipped`` count events by reason (the part before the colon).
    """

    events: int = 0
    applied: int = 0
    held: int = 0
    committed: int = 0
    rolled_back: int = 0
    resumed: int = 0
    duplicates: int = 0
    nested: int = 0
    refused: Counter[str] = attrs.Factory(Counter)
    skipped: Counter[str] = attrs.Factory(Counter)

    def add(self, other: ReplayStats) -> None:
        for field in attrs.fields(ReplayStats):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            if isinstance(mine, Counter):
                mine.update(theirs)
            else:
                setattr(self, field.name, mine + theirs)

    def summary(self) -> str:
        refused = ", ".join(f"{n} {why}" for why, n in self.refused.most_common()) or "none"
        return (
            f"{self.events} events: {self.applied} statements applied, {self.held} held,"
            f" {self.committed} transactions committed ({self.resumed} resumed),"
            f" {self.rolled_back} rolled back, {self.nested} nested, {self.duplicates}"
            f" duplicates, {sum(self.skipped.values())} skipped; refused: {refused}"
        )


class ReplayRefused(Refused):
    """:class:`~auditsync.sinks.Refused` with each event's own reason in ``reasons`` (by key);
    ``reason`` names each distinct reason and how many events it refused."""

    def __init__(self, refusals: Sequence[tuple[AuditEvent, str]]):
        counts = Counter(reason for _, reason in refusals)
        if len(counts) == 1:
            summary = next(iter(counts))
        else:
            summary = "; ".join(f"{reason} ({n} event(s))" for reason, n in counts.items())
        reasons = {event.key: reason for event, reason in refusals}
        super().__init__([event for event, _ in refusals], summary, reasons)


def _code(reason: str) -> str:
    return reason.partition(":")[0]


def _event_time(event: AuditEvent) -> str:
    return event.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Connection(NamedTuple):
    """A source connection, as the bookkeeping tables key it."""

    serverhost: bytes
    connection_id: int


class _Record(NamedTuple):
    """A row of the applied table: what became of one event."""

    event_key: str
    serverhost: bytes
    connection_id: int
    outcome: str
    reason: str | None
    event_time: str


class _Held(NamedTuple):
    """A row of the pending table: a statement of an open transaction, ready to run."""

    serverhost: bytes
    connection_id: int
    seq: int
    event_key: str
    target_db: bytes
    settings: str
    statement: bytes


class _Unit(NamedTuple):
    """A statement to run on the target, in its database, with the source's settings."""

    database: str | None
    settings: Mapping[str, str]
    text: str


class _Work:
    """One write: a transaction on the target, the sessions it touched, the keys it records."""

    def __init__(self, sink: ReplaySink, cursor: Any):
        self.sink = sink
        self.cursor = cursor
        self.sessions: dict[_Connection, Session] = {}
        self.stored: dict[_Connection, str | None] = {}
        self.times: dict[_Connection, str] = {}
        self.gone: set[_Connection] = set()
        self.known: dict[str, str | None] = {}
        self.records: list[_Record] = []
        self.held: set[str] = set()
        self.stats = ReplayStats()

    def load_known(self, keys: Sequence[str]) -> None:
        """The keys of this batch handled before, with their refusal reasons."""
        sql = self.sink._sql
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            self.cursor.execute(sql.known(len(chunk)), chunk)
            for key, outcome, reason in self.cursor.fetchall():
                self.known[decoded(key)] = decoded(reason) if outcome == "refused" else None

    def session(self, event: AuditEvent) -> tuple[_Connection, Session]:
        connection = _Connection(
            event.serverhost.encode("utf-8", "surrogateescape"), event.connection_id
        )
        self.times[connection] = _event_time(event)
        self.gone.discard(connection)
        if connection not in self.sessions:
            self.cursor.execute(self.sink._sql.load_session, connection)
            row = self.cursor.fetchone()
            stored = None if row is None else decoded(row[0])
            self.stored[connection] = stored
            # A session stored in an older format is read, and written back in this one.
            self.sessions[connection] = (
                self.sink._machine.session() if stored is None else Session.load(stored)
            )
        return connection, self.sessions[connection]

    def record(
        self, event: AuditEvent, connection: _Connection, outcome: str, reason: str | None
    ) -> None:
        self.known[event.key] = reason
        safe = None if reason is None else reason.encode("utf-8", "replace").decode("utf-8")
        self.records.append(_Record(event.key, *connection, outcome, safe, _event_time(event)))

    def flush(self) -> None:
        """Write the sessions that changed and the keys recorded, inside the transaction."""
        sql = self.sink._sql
        cursor = self.cursor
        for connection, session in self.sessions.items():
            text = None if connection in self.gone else session.dump()
            if text == self.stored[connection]:
                continue
            if self.stored[connection] is not None:
                cursor.execute(sql.delete_session, connection)
            if text is not None:
                cursor.execute(sql.insert_session, (*connection, text, self.times[connection]))
            self.stored[connection] = text
        if self.records:
            cursor.executemany(sql.insert_record, self.records)
            self.records = []


class _Bookkeeping:
    """The bookkeeping statements, in the target's quoting and paramstyle."""

    def __init__(self, target: Target, schema: str):
        p = target.mark
        state = target.table(schema, STATE)
        pending = target.table(schema, PENDING)
        applied = target.table(schema, APPLIED)
        where = f"serverhost = {p} AND connection_id = {p}"
        self.applied = applied
        self.load_session = f"SELECT session FROM {state} WHERE {where}{target.lock_rows}"
        self.delete_session = f"DELETE FROM {state} WHERE {where}"
        self.insert_session = (
            f"INSERT INTO {state} (serverhost, connection_id, session, updated_at)"
            f" VALUES ({p}, {p}, {p}, {p})"
        )
        self.insert_record = (
            f"INSERT INTO {applied}"
            " (event_key, serverhost, connection_id, outcome, reason, event_time)"
            f" VALUES ({p}, {p}, {p}, {p}, {p}, {p})"
        )
        self.hold = (
            f"INSERT INTO {pending}"
            " (serverhost, connection_id, seq, event_key, target_db, settings, statement)"
            f" VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})"
        )
        self.pending = (
            f"SELECT event_key, target_db, settings, statement FROM {pending}"
            f" WHERE {where} ORDER BY seq"
        )
        self.mark = (
            f"UPDATE {applied} SET outcome = {p} WHERE event_key IN"
            f" (SELECT event_key FROM {pending} WHERE {where} AND seq >= {p})"
        )
        self.drop = f"DELETE FROM {pending} WHERE {where} AND seq >= {p}"
        self.prune = f"DELETE FROM {applied} WHERE event_time < {p}"
        self._mark = p

    def known(self, count: int) -> str:
        marks = ", ".join([self._mark] * count)
        return f"SELECT event_key, outcome, reason FROM {self.applied} WHERE event_key IN ({marks})"


class ReplaySink:
    """A :class:`~auditsync.sinks.Sink` that applies the captured writes to a target database.

    ``connection`` is a DB-API 2 connection to the target, used by this sink alone and left
    open by :meth:`close`; or a function that opens one, which makes the connection the
    sink's: opened again after a write failed (a warm Lambda container outlives the
    database's idle timeout) and closed by :meth:`close`. ``target`` says how to speak to
    it, told from the connection's module when omitted.

    Successful INSERT, UPDATE, DELETE, REPLACE and TRUNCATE are applied, and DDL too with
    ``apply_ddl``; a transaction is applied whole at its COMMIT, or not at all.
    ``databases`` maps source databases to target ones and selects them (default: every
    database to itself, system databases aside); ``tables`` selects ``db.table`` names by
    glob. ``bookkeeping`` names the schema of the bookkeeping tables, which ``create``
    makes. ``order``: ``"arrival"`` keeps a batch's order, ``"timestamp"`` sorts it by time
    (stable), ``"auto"`` sorts Aurora batches only. ``autocommit`` is the source server's
    default for new sessions; ``query_log_limit`` its ``server_audit_query_log_limit``
    (0: none), since a statement that long may have been cut without a mark.

    What cannot be replayed faithfully is refused: :class:`ReplayRefused` names it after
    everything else of the batch was applied (see :func:`unsafe_reason` and docs/replay.md).
    An error of a replayed statement that a retry cannot fix refuses it too; any other
    error fails the whole write, which changed nothing, so that it can be retried.
    """

    def __init__(
        self,
        connection: Any,
        *,
        target: Target | None = None,
        databases: Mapping[str, str] | None = None,
        tables: str | Sequence[str] | None = None,
        apply_ddl: bool = False,
        bookkeeping: str | None = None,
        create: bool = True,
        order: Order = "auto",
        autocommit: bool = True,
        query_log_limit: int = 1024,
    ):
        if order not in ("auto", "arrival", "timestamp"):
            raise ValueError(f"order must be auto, arrival or timestamp, not {order!r}")
        owned = callable(connection) and not hasattr(connection, "cursor")
        self._connect: Callable[[], Any] | None = connection if owned else None
        self._connection: Any = None if owned else connection
        self._database = _UNKNOWN
        self._settings: dict[str, str] = {}
        self.target = target if target is not None else Target.for_connection(self.connection)
        self.target.check(databases)
        schema = bookkeeping or self.target.default_schema
        patterns = (
            (tables,) if isinstance(tables, str) else None if tables is None else tuple(tables)
        )
        options = Options(
            databases=None if databases is None else dict(databases),
            tables=patterns,
            apply_ddl=apply_ddl,
            excluded=SYSTEM_DATABASES | {schema},
            query_log_limit=query_log_limit,
        )
        policy = ReplayPolicy(options, self._table_info)
        self._machine = SessionMachine(
            policy, autocommit=autocommit, wording=Wording("replayed", "replicated", "replays")
        )
        self._sql = _Bookkeeping(self.target, schema)
        self._order: Order = order
        self._tables: dict[tuple[str, str], TableInfo | None] = {}
        self._cursor: Any = None
        self._closed = False
        self.stats = ReplayStats()
        if create:
            self._create(schema)

    def _create(self, schema: str) -> None:
        connection = self.connection
        cursor = connection.cursor()
        try:
            for statement in self.target.create(schema):
                cursor.execute(statement)
            connection.commit()
        finally:
            cursor.close()

    @property
    def connection(self) -> Any:
        """The DB-API connection the sink applies through (opened now, if it is the sink's)."""
        if self._connection is None:
            assert self._connect is not None
            self._connection = self._connect()
            self._database = _UNKNOWN  # a new session: nothing is set in it yet
            self._settings = {}
        return self._connection

    def _drop_connection(self) -> None:
        """Close a connection of the sink's own, so that the next write opens a new one."""
        if self._connect is not None and self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(Exception):  # already broken: that is why it goes
                connection.close()

    def write(self, events: Sequence[AuditEvent]) -> None:
        """Apply a batch in one transaction with its bookkeeping; refuse what cannot be."""
        if self._closed:
            raise ValueError("write to a closed ReplaySink")
        ordered = in_log_order(events, self._order)
        connection = self.connection
        cursor = self._cursor = connection.cursor()
        self._tables.clear()  # the target's tables may have changed since the last write
        work = _Work(self, cursor)
        refusals: list[tuple[AuditEvent, str]] = []
        try:
            self.target.begin(connection, cursor)
            work.load_known([e.key for e in ordered if e.operation not in TABLE_OPERATIONS])
            for event in ordered:
                work.stats.events += 1
                reason = self._handle(work, event)
                if reason is not None:
                    refusals.append((event, reason))
            work.flush()
            connection.commit()
        except BaseException:
            # The connection may be gone: the error that matters is the one raised.
            with contextlib.suppress(Exception):
                connection.rollback()
            with contextlib.suppress(Exception):
                cursor.close()
            self._cursor = None
            self._drop_connection()
            raise
        self._cursor = None
        cursor.close()
        self.stats.add(work.stats)
        if refusals:
            raise ReplayRefused(refusals)

    def _handle(self, work: _Work, event: AuditEvent) -> str | None:
        """One event: its effect on its connection and on the target; its refusal, if any."""
        if event.operation in TABLE_OPERATIONS:
            self._machine.table_event(work.session(event)[1], event)
            return None
        if event.key in work.known:
            work.stats.duplicates += 1
            return work.known[event.key]
        connection, session = work.session(event)
        step = self._machine.step(session, event)
        ddl = False
        for action in step.actions:
            failure = self._act(work, connection, event, action)
            if failure is not None:
                step.note(failure)
            ddl = ddl or (isinstance(action, Run) and action.ddl)
        if step.outcome == "nested":
            work.stats.nested += 1
        elif step.outcome == "skipped":
            work.stats.skipped[step.why or "not applied"] += 1
        if step.reason is not None:
            work.stats.refused[_code(step.reason)] += 1
        work.record(event, connection, "refused" if step.reason else step.outcome, step.reason)
        if ddl and not self.target.transactional_ddl:
            work.flush()  # record the DDL at once: it committed by itself
            self.connection.commit()
            self.target.begin(self.connection, work.cursor)
        return step.reason

    def _act(
        self, work: _Work, connection: _Connection, event: AuditEvent, action: Action[Replayed]
    ) -> str | None:
        """Carry out one action; a reason when the target refused the statements."""
        cursor = work.cursor
        sql = self._sql
        stats = work.stats
        if isinstance(action, Run):
            if action.ddl and not self.target.transactional_ddl:
                work.flush()  # what came before is durable before DDL commits it anyway
                self.connection.commit()
            failure = self._unit(
                [_Unit(action.value.database, action.settings, action.value.text)],
                savepoint=not (action.ddl and not self.target.transactional_ddl),
            )
            if action.ddl:
                self._tables.clear()
            if failure is None:
                stats.applied += 1
            return failure
        if isinstance(action, Hold):
            row = _Held(
                *connection,
                seq=action.seq,
                event_key=event.key,
                target_db=action.value.database.encode("utf-8", "surrogateescape"),
                settings=json.dumps(action.settings, ensure_ascii=True),
                statement=action.value.text.encode("utf-8", "surrogateescape"),
            )
            cursor.execute(sql.hold, row)
            work.held.add(event.key)
            stats.held += 1
            return None
        if isinstance(action, Commit):
            cursor.execute(sql.pending, connection)
            rows = cursor.fetchall()
            units = [
                _Unit(
                    None if db is None else decoded(db),
                    json.loads(decoded(settings)),
                    decoded(statement),
                )
                for _, db, settings, statement in rows
            ]
            failure = self._unit(units)
            self._end(work, connection, 0, "applied" if failure is None else "refused")
            if failure is None:
                stats.applied += len(units)
                stats.committed += 1
                stats.resumed += any(decoded(key) not in work.held for key, *_ in rows)
                return None
            return f"transaction refused: {failure}"
        if isinstance(action, Discard):
            self._end(work, connection, action.seq, action.outcome)
            stats.rolled_back += not action.to_savepoint and action.outcome == "rolled back"
            return None
        work.gone.add(connection)  # Forget: its id may come again, for a new connection
        return None

    def _end(self, work: _Work, connection: _Connection, seq: int, outcome: str) -> None:
        """Mark held statements from ``seq`` on with what became of them, and drop them."""
        work.flush()  # so that statements held in this write are marked too
        work.cursor.execute(self._sql.mark, (outcome, *connection, seq))
        work.cursor.execute(self._sql.drop, (*connection, seq))

    def _unit(
        self,
        statements: Sequence[_Unit],
        *,
        savepoint: bool = True,
    ) -> str | None:
        """Run statements as one unit: all, or (on a permanent error) none and the reason."""
        cursor = self._cursor
        if savepoint:
            cursor.execute("SAVEPOINT auditsync_unit")
        try:
            for database, settings, text in statements:
                self._prepare(cursor, database, settings)
                cursor.execute(self.target.statement(text))
        except Exception as error:
            if not self.target.permanent(error):
                raise
            if savepoint:
                cursor.execute("ROLLBACK TO SAVEPOINT auditsync_unit")
            return f"failed on target: {error}"
        if savepoint:
            cursor.execute("RELEASE SAVEPOINT auditsync_unit")
        return None

    def _prepare(self, cursor: Any, database: str | None, settings: Mapping[str, str]) -> None:
        """Put the target session where the source session was: database and variables."""
        if database is not None and database != self._database:
            self.target.use(cursor, database)
            self._database = database
        for name in SESSION_VARIABLES:
            wanted = settings.get(name)
            if self._settings.get(name) != wanted:
                self.target.set_variable(cursor, name, wanted)
                if wanted is None:
                    self._settings.pop(name, None)
                else:
                    self._settings[name] = wanted

    def _table_info(self, database: str, table: str) -> TableInfo | None:
        key = (database, table)
        if key not in self._tables:
            self._tables[key] = self.target.table_info(self._cursor, database, table)
        return self._tables[key]

    def prune(self, before: datetime) -> int:
        """Forget the keys of events older than ``before``; how many went.

        Only keys that can no longer be redelivered are safe to forget: older than the
        stream's retention (24 hours by default on Kinesis).
        """
        connection = self.connection
        cursor = connection.cursor()
        try:
            cursor.execute(self._sql.prune, (before.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),))
            count = int(cursor.rowcount)
            connection.commit()
        finally:
            cursor.close()
        return count

    def close(self) -> None:
        """Stop taking writes; close the connection if the sink opened it, not otherwise."""
        self._closed = True
        self._drop_connection()

    def __enter__(self) -> ReplaySink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
