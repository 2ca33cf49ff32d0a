"""One run of the proof's other half: what the change feed will be held against.

:func:`observe` runs the seeded workload on a private server and collects the three
accounts of it: the workload's own record, the binlog's committed transactions, and the
audit log the server wrote meanwhile (bytes, and as Lambda Kinesis events on request).
The feed's proof calls it once per module, feeds the Kinesis events through
``handle_kinesis_event`` into the feed, and compares what the feed delivered with the
binlog per connection (``BinlogTransaction.domain`` is the audit log's connection id)::

    run = observe(private_server, seed)              # the conftest fixture's server
    assert not run.problems()                        # the binlog agrees with the record
    feed = ChangeFeed(handler, keys=KEYS, query_log_limit=run.query_log_limit)
    for event in run.kinesis_events(seed):
        handle_kinesis_event(event, Pipeline(feed))
    for record_transaction, binlog_transaction in run.matched():
        ...                                          # each binlog row covered by a change
    run.logged()[connection_id, query_id].statement  # what became of a delivered event
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from binlog import BinlogTransaction, check_against, parse_binlog
from private_mariadb import PrivateMariaDB
from shipping import audit_records, kinesis_events
from workload import KEYS, TABLES, Session, Statement, Transaction, WorkloadRecord, run_workload

from auditsync import AuditEvent, parse_line

__all__ = ["KEYS", "TABLES", "Logged", "Observation", "observe"]


@dataclass(frozen=True)
class Logged:
    """A QUERY record of the audit log and the statement of the record it logs."""

    event: AuditEvent
    #: The record's number in the audit log, from 0.
    place: int
    session: Session
    transaction: Transaction
    statement: Statement


@dataclass(frozen=True)
class Observation:
    record: WorkloadRecord
    #: Every committed transaction of the binlog, in commit order; the workload's are
    #: those whose ``domain`` is the connection id of one of ``record.sessions``.
    binlog: list[BinlogTransaction]
    #: The audit log between the settled points around the workload, as the file holds it.
    audit_log: bytes
    #: mariadb-binlog's output, for a failure message or a look by hand.
    binlog_text: bytes
    #: What the feed must be told: ``server_audit_query_log_limit``; the zone of the
    #: log's timestamps (mariadbd's ``@@system_time_zone``). And the server's host name
    #: (the records' serverhost) and version.
    query_log_limit: int
    time_zone: str
    serverhost: str
    version: str

    def workload_binlog(self) -> list[BinlogTransaction]:
        """The binlog transactions of workload sessions (the setup's are left out)."""
        ids = {session.connection_id for session in self.record.sessions}
        return [t for t in self.binlog if t.domain in ids]

    def problems(self) -> list[str]:
        """Where the binlog and the record disagree: the proof trusts neither unless empty."""
        return check_against(self.binlog, self.record)

    def matched(self) -> list[tuple[Transaction, BinlogTransaction]]:
        """Each committed transaction of the record that left rows with its binlog
        transaction, in commit (binlog) order. Only meaningful when :meth:`problems`
        is empty: then the n-th of a session is the n-th of its domain."""
        by_domain: dict[int, list[BinlogTransaction]] = {}
        for transaction in self.workload_binlog():
            if transaction.changes:
                by_domain.setdefault(transaction.domain, []).append(transaction)
        pairs = []
        for session in self.record.sessions:
            written = [t for t in session.transactions if t.committed and t.rows]
            found = by_domain.get(session.connection_id, [])
            if len(written) != len(found):
                raise ValueError(f"connection {session.connection_id}: the binlog disagrees")
            pairs += zip(written, found, strict=True)
        return sorted(pairs, key=lambda pair: pair[1].index)

    @functools.cached_property
    def _logged(self) -> dict[tuple[int, int], Logged]:
        queries: dict[int, list[tuple[int, AuditEvent]]] = {}
        for place, line in enumerate(self.audit_log.splitlines()):
            event = parse_line(line, dialect="mariadb")
            if event.operation == "QUERY":
                queries.setdefault(event.connection_id, []).append((place, event))
        logged = {}
        for session in self.record.sessions:
            records = queries.get(session.connection_id, [])
            sent = [(t, s) for t in session.transactions for s in t.statements]
            if len(records) != len(sent):
                raise ValueError(
                    f"connection {session.connection_id}: {len(sent)} statements sent,"
                    f" {len(records)} QUERY records"
                )
            for (place, event), (transaction, statement) in zip(records, sent, strict=True):
                key = (event.connection_id, event.query_id)
                logged[key] = Logged(event, place, session, transaction, statement)
        return logged

    def logged(self) -> dict[tuple[int, int], Logged]:
        """Every QUERY record of a workload session, by (connection id, query id), with
        the statement it logs: a connection's records come in the order it sent them."""
        return self._logged

    def audit_records(self) -> list[str]:
        return audit_records(self.audit_log)

    def kinesis_events(self, seed: int, **options: Any) -> list[dict[str, Any]]:
        """The audit log as Lambda Kinesis events (see :func:`shipping.kinesis_events`)."""
        return kinesis_events(self.audit_records(), seed=seed, **options)


def observe(server: PrivateMariaDB, seed: int, workers: int = 6, scenes: int = 40) -> Observation:
    """Run the workload on ``server`` and read back its binlog and its audit log."""
    record = run_workload(server, seed, workers=workers, scenes=scenes)
    text = server.binlog_text()
    return Observation(
        record=record,
        binlog=parse_binlog(text, TABLES),
        audit_log=server.audit_log(record.audit_start, record.audit_end),
        binlog_text=text,
        query_log_limit=server.query_log_limit,
        time_zone=server.time_zone,
        serverhost=server.hostname,
        version=server.version,
    )
