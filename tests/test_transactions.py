"""SessionMachine on its own: events in, steps out, the session changed in place.

The policy here takes every write to ``shop`` (its value is the statement's text) and
refuses those that call ``RAND()``; what the steps say is what any consumer relies on.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

import pytest

from auditsync import AuditEvent, AuditSyncError, Dialect
from auditsync.sql import Statement
from auditsync.transactions import (
    SESSION_FORMAT,
    Commit,
    Discard,
    Forget,
    Hold,
    OpenStatement,
    Refuse,
    Run,
    Savepoint,
    Session,
    SessionFormatError,
    SessionMachine,
    Skip,
    Step,
    Take,
    Verdict,
    Wording,
)


class Shop:
    """Follows the ``shop`` database; takes each write's text, refuses RAND()."""

    def follows(self, database: str, table: str) -> bool:
        return database == "shop"

    def judge(self, session: Session, event: AuditEvent, statement: Statement) -> Verdict[str]:
        if not all(name.startswith("shop.") or "." not in name for name in statement.writes):
            return Skip("not followed")
        if "RAND()" in event.object:
            return Refuse("not deterministic: RAND()")
        return Take(event.object)


_query_ids = itertools.count(1000)


def event(
    operation: str, text: str = "", *, retcode: int = 0, query_id: int | None = None
) -> AuditEvent:
    """A record of connection 1, as the server writes it."""
    if query_id is None:
        query_id = next(_query_ids) if operation == "QUERY" else 0
    return AuditEvent(
        timestamp=datetime(2024, 1, 31, 14, 2, 7, tzinfo=UTC),
        serverhost="db1",
        username="app",
        host="10.0.0.7",
        connection_id=1,
        query_id=query_id,
        operation=operation,
        database="shop",
        object=text,
        retcode=retcode,
        dialect=Dialect.MARIADB,
    )


def run(machine: SessionMachine[str], session: Session, *texts: str) -> list[Step[str]]:
    return [machine.step(session, event("QUERY", text)) for text in texts]


@pytest.fixture
def machine() -> SessionMachine[str]:
    return SessionMachine(Shop())


def test_an_autocommitted_write_runs_at_once_with_the_session_variables(
    machine: SessionMachine[str],
) -> None:
    session = machine.session()
    _, step = run(machine, session, "SET time_zone = '+02:00'", "INSERT INTO t VALUES (1)")
    assert step.outcome == "applied"
    assert step.actions == [Run("INSERT INTO t VALUES (1)", {"time_zone": "'+02:00'"})]


def test_a_transaction_holds_its_writes_until_commit_and_a_savepoint_discards_some(
    machine: SessionMachine[str],
) -> None:
    session = machine.session()
    steps = run(
        machine,
        session,
        "BEGIN",
        "INSERT INTO t VALUES (1)",
        "SAVEPOINT a",
        "INSERT INTO t VALUES (2)",
        "ROLLBACK TO SAVEPOINT a",
        "COMMIT",
    )
    assert [step.outcome for step in steps] == [
        "state",
        "held",
        "state",
        "held",
        "state",
        "committed",
    ]
    assert steps[1].actions == [Hold(0, "INSERT INTO t VALUES (1)", {})]
    assert steps[3].actions == [Hold(1, "INSERT INTO t VALUES (2)", {})]
    assert steps[4].actions == [Discard(1, to_savepoint=True)]
    assert steps[5].actions == [Commit()]
    assert not session.in_transaction


def test_implicit_commits_deadlocks_and_failures(machine: SessionMachine[str]) -> None:
    session = machine.session()
    *_, ddl = run(machine, session, "BEGIN", "INSERT INTO t VALUES (1)", "CREATE TABLE x (a INT)")
    assert ddl.actions == [Commit(), Run("CREATE TABLE x (a INT)", {}, ddl=True)]

    run(machine, session, "BEGIN", "INSERT INTO t VALUES (2)")
    duplicate = machine.step(session, event("QUERY", "INSERT INTO t VALUES (2)", retcode=1062))
    assert (duplicate.outcome, duplicate.why, duplicate.actions) == (
        "skipped",
        "failed on the source",
        [],
    )
    assert session.in_transaction  # a failed statement does not end the transaction
    deadlock = machine.step(session, event("QUERY", "UPDATE t SET a = 1", retcode=1213))
    assert (deadlock.outcome, deadlock.actions) == ("rolled back", [Discard()])
    assert not session.in_transaction


def test_disconnect_rolls_back_and_forgets_the_session(machine: SessionMachine[str]) -> None:
    session = machine.session()
    run(machine, session, "SET autocommit = 0", "USE other", "INSERT INTO shop.t VALUES (1)")
    step = machine.step(session, event("DISCONNECT"))
    assert (step.outcome, step.actions) == ("rolled back", [Discard(), Forget()])
    assert session == machine.session()


def test_a_refused_write_refuses_its_whole_transaction(machine: SessionMachine[str]) -> None:
    session = machine.session()
    steps = run(
        machine,
        session,
        "BEGIN",
        "INSERT INTO t VALUES (1)",
        "INSERT INTO t VALUES (RAND())",
        "INSERT INTO t VALUES (3)",
        "COMMIT",
    )
    assert steps[2].reason == "not deterministic: RAND()"
    assert steps[3].reason == steps[4].reason
    assert steps[4].reason == (
        "transaction refused: it holds a statement not taken (not deterministic: RAND())"
    )
    assert steps[4].actions == [Discard(outcome="refused")]


def test_the_reasons_speak_the_consumers_words() -> None:
    machine = SessionMachine(Shop(), wording=Wording("delivered", "followed", "reads"))
    session = machine.session()
    steps = run(machine, session, "BEGIN", "INSERT INTO t VALUES (RAND())", "COMMIT")
    assert steps[2].reason == (
        "transaction refused: it holds a statement not delivered (not deterministic: RAND())"
    )
    run(machine, session, "SET NAMES latin1")
    assert session.lost == "character set latin1: auditsync reads UTF-8 text only"


def test_a_statement_run_inside_another_is_nested(machine: SessionMachine[str]) -> None:
    session = machine.session()
    assert machine.step(session, event("WRITE", "t", query_id=50)) == Step()
    assert session.stack == [OpenStatement(50, wrote=True, wrote_followed=True)]
    inner = machine.step(session, event("QUERY", "INSERT INTO log VALUES (1)", query_id=51))
    outer = machine.step(session, event("QUERY", "INSERT INTO t VALUES (1)", query_id=50))
    assert (inner.outcome, outer.outcome) == ("nested", "applied")
    assert (session.stack, session.popped) == ([], 50)


def test_a_session_round_trips_through_its_storage_format(machine: SessionMachine[str]) -> None:
    session = machine.session()
    run(machine, session, "SET sql_mode = 'STRICT_ALL_TABLES'", "BEGIN", "SAVEPOINT `a``b`")
    machine.table_event(session, event("WRITE", "t", query_id=7))
    text = session.dump()
    assert json.loads(text)["format"] == SESSION_FORMAT == 2
    assert json.loads(text)["savepoints"] == [{"name": "a`b", "seq": 0, "held": 0}]
    assert Session.load(text) == session


def test_format_1_is_read_into_named_fields() -> None:
    legacy = {
        "database": "shop",
        "seen": "shop",
        "autocommit": True,
        "begun": True,
        "held": 2,
        "seq": 2,
        "savepoints": [["a", 1, 1]],
        "taint": "not deterministic: RAND()",
        "taint_seq": 1,
        "lost": None,
        "locked": False,
        "stack": [[5000, 1, 0]],
        "popped": 0,
        "latest": 1004,
        "settings": {"time_zone": "'+02:00'"},
        "temporary": ["shop.tmp"],
    }
    session = Session.load(json.dumps(legacy))
    assert session.savepoints == [Savepoint("a", seq=1, held=1)]
    assert session.stack == [OpenStatement(5000, wrote=True, wrote_followed=False)]
    assert (session.refusal, session.refusal_seq) == ("not deterministic: RAND()", 1)
    assert json.loads(session.dump())["format"] == 2


def test_a_format_from_the_future_or_a_damaged_session_is_an_error() -> None:
    with pytest.raises(SessionFormatError, match="format 3") as raised:
        Session.load('{"format": 3}')
    assert isinstance(raised.value, AuditSyncError)
    with pytest.raises(SessionFormatError, match="not one"):
        Session.load('{"format": 2, "savepoints": [{"name": "a"}]}')
    with pytest.raises(SessionFormatError, match="not one"):
        Session.load("[")
