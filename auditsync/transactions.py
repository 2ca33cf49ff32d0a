"""Follow each source connection as the server did: which statements committed, and when.

The audit log records statements one by one; whether a statement's change happened is
decided later, by the COMMIT or ROLLBACK of its transaction, and by state the log shows
only in passing: the connection's current database, its autocommit mode, its savepoints,
the implicit commits of DDL, a deadlock that rolled the transaction back, a DISCONNECT.
:class:`SessionMachine` follows all of it for each connection. It is pure: events in,
:class:`Step` values out, with the connection's :class:`Session` changed in place. The
consumer stores the session where it likes (it round-trips through :meth:`Session.dump`
and :meth:`Session.load`, a versioned storage format) and carries out the steps.

What a consumer cares about is not the machine's business: which tables it follows and
what it makes of a write is a :class:`Policy` the consumer hands in. The machine asks the
policy about each write and then says, in a :class:`Step`, what became of it: run now as
a transaction of its own (:class:`Run`), kept for the open transaction (:class:`Hold`),
and later :class:`Commit` or :class:`Discard` of what was held. :class:`ReplaySink
<auditsync.replay.ReplaySink>` is one such consumer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter
from typing import Any, Final, Generic, Literal, Protocol, TypeVar

import attrs

from ._errors import AuditSyncError
from ._events import TABLE_OPERATIONS, AuditEvent, Dialect
from .sql import DCL_KINDS, DDL_KINDS, Statement, classify
from .sql._lexer import IDENT, STRING, Lexed
from .sql._lexer import unquote_name as unquote

__all__ = [
    "LEXICAL_MODES",
    "SESSION_FORMAT",
    "SESSION_VARIABLES",
    "SYSTEM_DATABASES",
    "TABLE_OPERATIONS",
    "Action",
    "Commit",
    "Discard",
    "Forget",
    "Hold",
    "OpenStatement",
    "Order",
    "Outcome",
    "Policy",
    "Refuse",
    "Run",
    "Savepoint",
    "Session",
    "SessionFormatError",
    "SessionMachine",
    "Skip",
    "Step",
    "Take",
    "Verdict",
    "Wording",
    "escaped_length",
    "in_log_order",
]

#: The version of the storage format of :meth:`Session.dump`. Format 1 (unversioned, with
#: savepoints and open statements as positional lists) is still read.
SESSION_FORMAT: Final = 2

#: Session variables that change what a statement does; the session keeps their values.
SESSION_VARIABLES: Final[tuple[str, ...]] = (
    "time_zone",
    "sql_mode",
    "foreign_key_checks",
    "unique_checks",
    "check_constraint_checks",
    "div_precision_increment",
    "default_week_format",
    "lc_time_names",
)
#: The server's own databases: a statement that opened only their tables wrote nothing.
SYSTEM_DATABASES: Final = frozenset({"mysql", "information_schema", "performance_schema", "sys"})


#: sql_mode flags that change how the text is lexed: auditsync reads MariaDB's default lexis.
LEXICAL_MODES: Final = re.compile(r"NO_BACKSLASH_ESCAPES|ANSI_QUOTES|(?<![A-Z_])ANSI(?![A-Z_])")
_ESCAPED: Final = re.compile(r"[\b\t\n\f\r'\\]")


def escaped_length(text: str) -> int:
    """The statement's length in the log, in bytes: the plugin escapes seven characters.

    A statement at least ``server_audit_query_log_limit - 1`` bytes long may have been
    cut there without a mark (one byte less where an escape pair would have been split).
    """
    return len(text.encode("utf-8", "surrogateescape")) + len(_ESCAPED.findall(text))


#: How a batch is put in the log's order: see :func:`in_log_order`.
Order = Literal["auto", "arrival", "timestamp"]


def in_log_order(events: Sequence[AuditEvent], order: Order = "auto") -> list[AuditEvent]:
    """A batch in the order its statements ended: MariaDB writes one file in completion
    order, kept as it arrives; Aurora writes four at once, sorted by time (``"auto"``).

    Query ids are not used: they count statement *starts*, and a statement that waited
    for a lock starts before, and finishes after, the transaction it waited for.
    """
    if order not in ("auto", "arrival", "timestamp"):
        raise ValueError(f"order must be auto, arrival or timestamp, not {order!r}")
    if order == "timestamp" or (
        order == "auto" and any(event.dialect is Dialect.AURORA for event in events)
    ):
        return sorted(events, key=attrgetter("timestamp"))
    return list(events)


class SessionFormatError(AuditSyncError):
    """A stored session this version cannot read: a newer format, or not a session at all."""


# --- A connection's state, and its storage format ---------------------------------------------


@attrs.frozen(slots=True)
class Savepoint:
    """A savepoint of the open transaction: the statements held when it was set.

    ``seq`` is the number the next held statement was to get, so a rollback to it discards
    held statements from ``seq`` on; ``held`` is how many the transaction held then.
    """

    name: str
    seq: int
    held: int


@attrs.frozen(slots=True)
class OpenStatement:
    """A statement whose table events came but whose QUERY record has not yet.

    The server logs a statement's table events first and its QUERY record when it ends; a
    QUERY record with a higher id that comes in between ran inside it (a trigger, a stored
    function, a procedure's statement). ``wrote`` says whether it opened a table for
    writing, which tells a trigger's statement from a procedure's; ``wrote_followed``
    whether it wrote a table the policy follows (the server opens a function's tables with
    its caller's).
    """

    query_id: int
    wrote: bool
    wrote_followed: bool


@attrs.define
class Session:
    """What the server knew about one connection, as far as the log tells.

    ``held`` counts the statements the open transaction holds, ``seq`` numbers them.
    ``refusal`` is why the open transaction cannot be taken whole (the policy refused one
    of its statements, numbered ``refusal_seq``); ``lost`` why the connection's state can
    no longer be followed. ``latest`` is the highest query id of a write taken at the top
    level, ``popped`` that of the last statement whose QUERY record closed its
    :class:`OpenStatement`. ``settings`` holds :data:`SESSION_VARIABLES` set to literals,
    as the source wrote them; ``temporary`` the ``db.table`` names of temporary tables.
    """

    database: str | None = None
    seen: str | None = None  # the plugin's database field, last time we looked
    autocommit: bool = True
    begun: bool = False  # BEGIN / START TRANSACTION in effect
    held: int = 0
    seq: int = 0
    savepoints: list[Savepoint] = attrs.Factory(list)
    refusal: str | None = None
    refusal_seq: int = 0
    lost: str | None = None
    locked: bool = False
    stack: list[OpenStatement] = attrs.Factory(list)
    popped: int = 0
    latest: int = 0
    settings: dict[str, str] = attrs.Factory(dict)
    temporary: list[str] = attrs.Factory(list)

    @property
    def in_transaction(self) -> bool:
        """Whether a write now would wait for a COMMIT."""
        return self.begun or not self.autocommit

    def place(self, name: str) -> tuple[str, str] | None:
        """``db.table`` or ``table`` of the current database, as (database, table)."""
        database, dot, table = name.partition(".")
        if dot:
            return database, table
        return None if self.database is None else (self.database, name)

    def reset(self, autocommit: bool) -> None:
        """Forget everything: a new connection (the id may be reused) or a reset session."""
        fresh = Session(autocommit=autocommit)
        for field in attrs.fields(Session):
            setattr(self, field.name, getattr(fresh, field.name))

    def copy(self) -> Session:
        """An independent copy, for a consumer that may have to undo a step."""
        return attrs.evolve(
            self,
            savepoints=list(self.savepoints),
            stack=list(self.stack),
            settings=dict(self.settings),
            temporary=list(self.temporary),
        )

    def dump(self) -> str:
        """The session as JSON text in storage format :data:`SESSION_FORMAT` (docs/replay.md)."""
        # Standard json: names may hold lone surrogates, which it escapes and orjson refuses.
        fields = {"format": SESSION_FORMAT, **attrs.asdict(self)}
        return json.dumps(fields, ensure_ascii=True, separators=(",", ":"))

    @classmethod
    def load(cls, text: str | bytes) -> Session:
        """A session from :meth:`dump`'s text, in this format or format 1."""
        try:
            fields: dict[str, Any] = json.loads(text)
            version = fields.pop("format", 1)
            if version == 1:
                fields = _from_format_1(fields)
            elif version != SESSION_FORMAT:
                raise SessionFormatError(
                    f"stored session in format {version!r}:"
                    f" this version reads formats 1 to {SESSION_FORMAT}"
                )
            fields["savepoints"] = [Savepoint(**entry) for entry in fields.get("savepoints", [])]
            fields["stack"] = [OpenStatement(**entry) for entry in fields.get("stack", [])]
            names = {field.name for field in attrs.fields(cls)}
            return cls(**{name: value for name, value in fields.items() if name in names})
        except (TypeError, ValueError, AttributeError) as error:
            if isinstance(error, SessionFormatError):
                raise
            raise SessionFormatError(f"stored session is not one: {error}") from error


def _from_format_1(fields: dict[str, Any]) -> dict[str, Any]:
    """Format 1 (auditsync 0.1): ``[name, seq, held]`` and ``[query id, wrote, replicated]``."""
    fields = dict(fields)
    fields["savepoints"] = [
        {"name": name, "seq": seq, "held": held} for name, seq, held in fields.get("savepoints", [])
    ]
    fields["stack"] = [
        {"query_id": query_id, "wrote": bool(wrote), "wrote_followed": bool(followed)}
        for query_id, wrote, followed in fields.get("stack", [])
    ]
    fields["refusal"] = fields.pop("taint", None)
    fields["refusal_seq"] = fields.pop("taint_seq", 0)
    return fields


# --- What the policy says about a write, and what a step asks of the consumer ------------------

_V = TypeVar("_V")
_V_co = TypeVar("_V_co", covariant=True)


@attrs.frozen(slots=True)
class Take(Generic[_V_co]):
    """The policy takes the write; ``value`` comes back in the :class:`Run` or :class:`Hold`."""

    value: _V_co


@attrs.frozen(slots=True)
class Skip:
    """The write is none of the consumer's business (another database, a temporary table)."""

    why: str


@attrs.frozen(slots=True)
class Refuse:
    """The consumer cannot take the write; in a transaction, the whole transaction goes."""

    reason: str


Verdict = Take[_V_co] | Skip | Refuse


class Policy(Protocol[_V_co]):
    """What a consumer of the machine decides: which tables it follows, what a write is."""

    def follows(self, database: str, table: str) -> bool:
        """Whether writes to ``database.table`` are the consumer's (for statements that
        are not taken but wrote such a table through a trigger or a stored function)."""
        ...

    def judge(self, session: Session, event: AuditEvent, statement: Statement) -> Verdict[_V_co]:
        """What to make of a successful write (DML, DDL, TRUNCATE, LOAD DATA) of ``session``."""
        ...


@attrs.frozen(slots=True)
class Run(Generic[_V_co]):
    """Take a write now, as a transaction of its own (autocommit; DDL commits by itself)."""

    value: _V_co
    settings: Mapping[str, str]
    ddl: bool = False


@attrs.frozen(slots=True)
class Hold(Generic[_V_co]):
    """Keep a write of the open transaction, numbered ``seq``, until the transaction ends."""

    seq: int
    value: _V_co
    settings: Mapping[str, str]


@attrs.frozen(slots=True)
class Commit:
    """The connection's held writes committed, in order, as one transaction."""


@attrs.frozen(slots=True)
class Discard:
    """Held writes from ``seq`` on are gone: a rollback, or one to a savepoint.

    ``outcome`` is ``"refused"`` when a COMMIT ends a transaction the policy refused part
    of; ``to_savepoint`` when the transaction goes on.
    """

    seq: int = 0
    outcome: Literal["rolled back", "refused"] = "rolled back"
    to_savepoint: bool = False


@attrs.frozen(slots=True)
class Forget:
    """The connection ended: its stored session can go (the machine has reset it)."""


Action = Run[_V_co] | Hold[_V_co] | Commit | Discard | Forget

#: What became of an event: ``state`` (it changed the session only), ``applied`` (a write
#: run now), ``held``, ``committed``, ``rolled back``, ``skipped`` (see ``why``),
#: ``nested`` (ran inside another statement, which redoes it). A ``reason`` means refused.
Outcome = Literal["state", "applied", "held", "committed", "rolled back", "skipped", "nested"]


@attrs.define
class Step(Generic[_V]):
    """What one event asks of the consumer, and what it comes to."""

    outcome: Outcome = "state"
    #: Why the event is refused (several reasons joined by ``; ``), or ``None``.
    reason: str | None = None
    actions: list[Action[_V]] = attrs.Factory(list)
    #: Why nothing was taken, when the outcome is ``"skipped"``.
    why: str | None = None

    def skip(self, why: str) -> None:
        self.outcome = "skipped"
        self.why = why

    def note(self, reason: str) -> None:
        """Refuse the event for ``reason`` too (the consumer's own, or the machine's)."""
        self.reason = reason if self.reason is None else f"{self.reason}; {reason}"


# --- The machine -----------------------------------------------------------------------------

#: Statements that commit the open transaction before they run (MySQL's "statements that
#: cause an implicit commit") even when they then fail, unless the parser rejected them.
_IMPLICIT_COMMIT: Final = DDL_KINDS | DCL_KINDS | {
    "BEGIN", "LOCK_TABLES", "UNLOCK_TABLES", "ANALYZE_TABLE", "CHECK_TABLE", "OPTIMIZE_TABLE",
    "REPAIR_TABLE", "FLUSH", "RESET", "START_REPLICA", "STOP_REPLICA", "CHANGE_MASTER",
    "INSTALL_PLUGIN", "UNINSTALL_PLUGIN",
}  # fmt: skip
_PARSE_ERRORS: Final = frozenset({1064, 1149})
_DEADLOCKS: Final = frozenset({1213, 1614})
#: Statements a trigger or stored function cannot run: seen "inside" a writing statement,
#: they prove that statement's QUERY record never came, so its table events are stale.
_NEVER_NESTED: Final = frozenset({"BEGIN", "COMMIT", "ROLLBACK", "USE", "XA", "LOCK_TABLES"})
_DML: Final = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})
#: Statements that are not taken but may call stored functions, which may write.
_CALLING: Final = frozenset({"SELECT", "SET", "DO", "CALL"})
_LOADS: Final = frozenset({"LOAD_DATA", "LOAD_XML"})
_TEMPORARY: Final = re.compile(r"\s*(CREATE|DROP)\s+(?:OR\s+REPLACE\s+)?TEMPORARY\s")
_USE: Final = re.compile(rf"\s*USE\s+({IDENT})", re.IGNORECASE)
_ROLLBACK_TO: Final = re.compile(
    rf"\s*ROLLBACK(?:\s+WORK)?\s+TO\s+(?:SAVEPOINT\s+)?({IDENT})", re.IGNORECASE
)
_SAVEPOINT_NAME: Final = re.compile(rf"\s*(?:RELEASE\s+)?SAVEPOINT\s+({IDENT})", re.IGNORECASE)
_AND_CHAIN: Final = re.compile(r"(?<![\w$])AND\s+CHAIN(?![\w$])")
_SET_HEAD: Final = re.compile(r"\s*SET\s+(?!(?:TRANSACTION|ROLE|PASSWORD|STATEMENT)(?![\w$]))")
_SET_ITEM: Final = re.compile(
    r"\s*(?:(?P<scope>GLOBAL|SESSION|LOCAL|PERSIST|PERSIST_ONLY)\s+)?"
    r"(?P<at>@@(?:(?P<atscope>GLOBAL|SESSION|LOCAL)\s*\.\s*)?|@)?"
    r"(?P<name>`(?:[^`]|``)*`|[0-9A-Za-z_$]+)\s*(?::=|=)\s*(?P<value>[\s\S]*?)\s*\Z",
    re.IGNORECASE,
)
_SET_CHARSET: Final = re.compile(
    r"\s*(?:NAMES|CHARACTER\s+SET|CHARSET)\s+(?P<value>'[^']*'|\"[^\"]*\"|[0-9A-Za-z_]+)",
    re.IGNORECASE,
)
#: One literal token: what a session variable may be set to and still be followed. A
#: consumer may run it again as it stands (``SET SESSION name = <literal>``).
_LITERAL: Final = re.compile(rf"{STRING}|[-+]?[0-9]+(?:\.[0-9]+)?|[A-Za-z_][0-9A-Za-z_]*")
_CHARSET_VARIABLES: Final = frozenset(
    {"character_set_client", "character_set_connection", "collation_connection"}
)
_UTF8_CHARSETS: Final = frozenset({"utf8", "utf8mb3", "utf8mb4", "ascii", "default"})
_TRUE_WORDS: Final = frozenset({"1", "ON", "TRUE"})
_FALSE_WORDS: Final = frozenset({"0", "OFF", "FALSE"})


@attrs.frozen(slots=True)
class Wording:
    """How the machine's reasons name what the consumer does, in the consumer's words.

    A refused transaction "holds a statement not {taken}"; a stored function "wrote
    {followed} tables inside a statement that is not {taken}"; "auditsync {reads} UTF-8
    text only". The replay sink says ``Wording("replayed", "replicated", "replays")``.
    """

    taken: str = "taken"
    followed: str = "followed"
    reads: str = "reads"


class SessionMachine(Generic[_V]):
    """Follows each connection as the server did; says what each event comes to.

    Pure but for the ``policy``, which it asks about each write. It changes the session it
    is given; the consumer keeps it. ``autocommit`` is the source server's default for new
    sessions; ``wording`` how its reasons name what the consumer does.
    """

    def __init__(
        self, policy: Policy[_V], *, autocommit: bool = True, wording: Wording = Wording()
    ):
        self.policy = policy
        self.autocommit = autocommit
        self.wording = wording

    def session(self) -> Session:
        """The state of a connection the log has shown nothing of yet."""
        return Session(autocommit=self.autocommit)

    def step(self, session: Session, event: AuditEvent) -> Step[_V]:
        """What one event does: a QUERY, connection or table record."""
        operation = event.operation
        if operation == "QUERY":
            return self._query(session, event)
        if operation in TABLE_OPERATIONS:
            self.table_event(session, event)
            return Step()
        if operation in ("CONNECT", "CHANGEUSER") and not event.retcode:
            # A new connection (the id may be reused after a restart) or a reset session.
            step = self._end_transaction(session, Step[_V](), Discard())
            session.reset(self.autocommit)
            session.database = session.seen = event.database or None
            return step
        if operation == "DISCONNECT":
            step = self._end_transaction(session, Step[_V](), Discard())
            session.reset(self.autocommit)
            step.actions.append(Forget())
            return step
        step = Step[_V]()
        step.skip("failed or proxied connection")
        return step

    def table_event(self, session: Session, event: AuditEvent) -> None:
        """Open the statement's :class:`OpenStatement`: its table events come first.

        :meth:`step` calls it for table events; a consumer that keeps no record of table
        events (they are many, and say nothing of their own) may call it directly.
        """
        query_id = event.query_id
        wrote = event.operation != "READ" and event.database not in SYSTEM_DATABASES
        followed = event.operation == "WRITE" and self.policy.follows(event.database, event.object)
        if query_id <= session.popped:
            return  # a redelivered record of a statement already closed
        for index, entry in enumerate(session.stack):
            if entry.query_id == query_id:
                session.stack[index] = OpenStatement(
                    query_id, entry.wrote or wrote, entry.wrote_followed or followed
                )
                return
        if not session.stack or query_id > session.stack[-1].query_id:
            session.stack.append(OpenStatement(query_id, wrote, followed))

    # ---- statements

    def _query(self, session: Session, event: AuditEvent) -> Step[_V]:
        if event.database != (session.seen or ""):
            # The plugin's guess moved (COM_INIT_DB, or a USE it understood): follow it. A
            # USE it missed ("USE\ndb") leaves the field alone, and :meth:`_use` reads it.
            session.database = session.seen = event.database or None
        lexed = Lexed.of(event.object)
        statement = event.statement or classify(event.object)
        kind = statement.kind
        own, outer = self._close(session, event.query_id)
        if outer is not None and outer.wrote:
            if kind not in _NEVER_NESTED:
                return Step(outcome="nested")
            session.stack.clear()
        temporary = _TEMPORARY.match(lexed.bare)
        commits = (
            kind in _IMPLICIT_COMMIT
            and temporary is None
            and (kind != "UNLOCK_TABLES" or session.locked)
        )
        if event.retcode:
            return self._failed(session, event.retcode, commits)
        step = Step[_V]()
        if commits:
            self._end_transaction(session, step, Commit())
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, session, lexed, step)
        elif temporary is not None:
            self._track_temporary(session, statement, temporary.group(1) == "CREATE")
            step.skip("temporary table")
        elif kind in _DML or kind in _LOADS or kind in DDL_KINDS:
            if kind == "DROP_TABLE":  # DROP TABLE of a temporary table, no TEMPORARY
                self._track_temporary(session, statement, created=False)
            self._write(session, event, statement, step)
        elif kind == "OTHER" and (own is None or own.wrote):
            # Not understood, and no table events show that it only read: it may have written.
            self._refuse(session, step, "not understood: auditsync cannot tell what it does")
        if (
            own is not None
            and own.wrote_followed
            and step.reason is None
            and (kind in _CALLING or (kind in _DML and step.outcome == "skipped"))
        ):
            # Its triggers or functions wrote followed tables, and their own statements
            # were skipped as nested: without it, nothing would redo those writes.
            words = self.wording
            self._refuse(
                session,
                step,
                f"stored function or trigger: wrote {words.followed} tables inside a statement"
                f" that is not {words.taken}",
            )
        return step

    @staticmethod
    def _close(
        session: Session, query_id: int
    ) -> tuple[OpenStatement | None, OpenStatement | None]:
        """Close the statement's entry: (its entry, the entry of the one it ran inside)."""
        stack = session.stack
        own = None
        for index, entry in enumerate(stack):
            if entry.query_id == query_id:
                own = entry
                del stack[index:]
                session.popped = max(session.popped, query_id)
                break
        outer = stack[-1] if stack and stack[-1].query_id < query_id else None
        return own, outer

    def _failed(self, session: Session, retcode: int, commits: bool) -> Step[_V]:
        step = Step[_V]()
        step.skip("failed on the source")
        if retcode in _DEADLOCKS:
            # A deadlock rolls back the whole transaction and ends BEGIN (MariaDB 10.11).
            return self._end_transaction(session, step, Discard())
        if commits and retcode not in _PARSE_ERRORS:
            self._end_transaction(session, step, Commit())
        return step

    def _end_transaction(self, session: Session, step: Step[_V], end: Commit | Discard) -> Step[_V]:
        """Commit or roll back the open transaction, if it holds anything."""
        if session.held:
            if isinstance(end, Commit) and session.refusal is not None:
                end = Discard(outcome="refused")
                step.note(self._refused_transaction(session))
            else:
                step.outcome = "committed" if isinstance(end, Commit) else "rolled back"
            step.actions.append(end)
        session.begun = False
        session.held = 0
        session.savepoints = []
        session.refusal = None
        return step

    def _refused_transaction(self, session: Session) -> str:
        return (
            f"transaction refused: it holds a statement not {self.wording.taken}"
            f" ({session.refusal})"
        )

    @staticmethod
    def _refuse(session: Session, step: Step[_V], reason: str) -> None:
        """Refuse the event; in a transaction, the whole transaction (taking part diverges)."""
        if session.in_transaction and session.refusal is None:
            session.refusal = reason
            session.refusal_seq = session.seq
            session.held += 1  # a placeholder, so that its COMMIT is refused too
            session.seq += 1
        step.note(reason)

    def _write(
        self, session: Session, event: AuditEvent, statement: Statement, step: Step[_V]
    ) -> None:
        verdict = self.policy.judge(session, event, statement)
        if isinstance(verdict, Skip):
            step.skip(verdict.why)
            return
        if isinstance(verdict, Refuse):
            self._refuse(session, step, verdict.reason)
            return
        settings = dict(session.settings)
        if statement.kind in DDL_KINDS:  # DDL and TRUNCATE commit by themselves
            step.actions.append(Run(verdict.value, settings, ddl=True))
            step.outcome = "applied"
        elif session.in_transaction:
            if session.refusal is not None:
                step.note(self._refused_transaction(session))
                return
            step.actions.append(Hold(session.seq, verdict.value, settings))
            session.seq += 1
            session.held += 1
            step.outcome = "held"
        else:
            step.actions.append(Run(verdict.value, settings))
            step.outcome = "applied"
        session.latest = max(session.latest, event.query_id)

    def _track_temporary(self, session: Session, statement: Statement, created: bool) -> None:
        for name in statement.writes:
            place = session.place(name)
            key = None if place is None else ".".join(place)
            if key is not None and created:
                session.temporary.append(key)
            elif key in session.temporary:
                session.temporary.remove(key)

    # ---- transaction control and session settings, by kind

    def _use(self, session: Session, lexed: Lexed, step: Step[_V]) -> None:
        match = _USE.match(lexed.code)
        if match is not None:
            session.database = unquote(match.group(1))

    def _begin(self, session: Session, lexed: Lexed, step: Step[_V]) -> None:
        session.begun = True  # the implicit commit before it is done already

    def _commit(self, session: Session, lexed: Lexed, step: Step[_V]) -> None:
        self._end_transaction(session, step, Commit())
        session.begun = _AND_CHAIN.search(lexed.bare) is not None

    def _rollback(self, session: Session, lexed: Lexed, step: Step[_V]) -> None:
        target = _ROLLBACK_TO.match(lexed.code)
        if target is None:
            self._end_transaction(session, step, Discard())
            session.begun = _AND_CHAIN.search(lexed.bare) is not None
            return
        name = unquote(target.group(1)).lower()
        for index, savepoint in enumerate(session.savepoints):
            if savepoint.name == name:
                del session.savepoints[index + 1 :]
                step.actions.append(Discard(savepoint.seq, to_savepoint=True))
                session.held = savepoint.held
                if session.refusal is not None and session.refusal_seq >= savepoint.seq:
                    session.refusal = None  # what could not be taken is undone
                return

    def _savepoint(self, session: Session, lexed: Lexed, step: Step[_V]) -> None:
        match = _SAVEPOINT_NAME.match(lexed.code)
        if match is not None and session.in_transaction:
            name = unquote(match.group(1)).lower()
            kept = [savepoint for savepoint in session.savepoints if savepoint.name != name]
            session.savepoints = [*kept, Savepoint(name, session.seq, session.held)]

    def _release(self, session: Session, lexed: Lexed, step: Step[_V]) -> None:
        match = _SAVEPOINT_NAME.match(lexed.code)
        names = [savepoint.name for savepoint in session.savepoints]
        name = None if match is None else unquote(match.group(1)).lower()
        if name in names:
            del session.savepoints[names.index(name) :]

    def _lock(self, session: Session, lexed: Lexed, step: Step[_V]) -> None:
        session.locked = True

    def _unlock(self, session: Session, lexed: Lexed, step: Step[_V]) -> None:
        session.locked = False

    def _xa(self, session: Session, lexed: Lexed, step: Step[_V]) -> None:
        session.lost = f"XA transactions are not {self.wording.taken}"

    def _set(self, session: Session, lexed: Lexed, step: Step[_V]) -> None:
        """Follow SET of autocommit, of the session variables and of the character set."""
        head = _SET_HEAD.match(lexed.bare)
        if head is None:
            return
        scope = "SESSION"
        for first, last in lexed.items(head.end(), len(lexed.bare)):
            text = lexed.text[first:last]
            charset = _SET_CHARSET.match(text)
            item = None if charset else _SET_ITEM.match(text)
            if charset is not None:
                self._charset(session, charset.group("value"))
            if item is None:
                continue
            scope = (item.group("scope") or scope).upper()
            at = item.group("at") or ""
            if at == "@":
                continue  # a user variable: statements that read one are refused
            effective = (item.group("atscope") or "SESSION").upper() if at else scope
            if effective not in ("SESSION", "LOCAL"):
                continue  # a global changes later sessions' defaults: see docs/replay.md
            name = unquote(item.group("name")).lower()
            value = item.group("value")
            literal = value if _LITERAL.fullmatch(value) else None
            if name == "autocommit":
                self._autocommit(session, step, literal)
            elif name in SESSION_VARIABLES:
                if literal is None:
                    session.lost = f"SET {name} to an expression auditsync cannot evaluate"
                elif literal.upper() == "DEFAULT":
                    session.settings.pop(name, None)
                else:
                    session.settings[name] = literal
            elif name in _CHARSET_VARIABLES:
                self._charset(session, (literal or "?").split("_")[0])

    def _charset(self, session: Session, value: str) -> None:
        if value.strip("'\"").lower() not in _UTF8_CHARSETS:
            session.lost = f"character set {value}: auditsync {self.wording.reads} UTF-8 text only"

    def _autocommit(self, session: Session, step: Step[_V], literal: str | None) -> None:
        word = (literal or "").strip("'\"").upper()
        if word == "DEFAULT":
            value = self.autocommit
        elif word in _TRUE_WORDS or word in _FALSE_WORDS:
            value = word in _TRUE_WORDS
        else:
            session.lost = "SET autocommit to a value auditsync cannot read"
            return
        if value and not session.autocommit:
            self._end_transaction(session, step, Commit())  # 0 -> 1 commits, 1 -> 1 does not
        session.autocommit = value


_HANDLERS: Final[dict[str, Callable[[SessionMachine[Any], Session, Lexed, Step[Any]], None]]] = {
    "USE": SessionMachine._use,
    "BEGIN": SessionMachine._begin,
    "COMMIT": SessionMachine._commit,
    "ROLLBACK": SessionMachine._rollback,
    "SAVEPOINT": SessionMachine._savepoint,
    "RELEASE_SAVEPOINT": SessionMachine._release,
    "LOCK_TABLES": SessionMachine._lock,
    "UNLOCK_TABLES": SessionMachine._unlock,
    "XA": SessionMachine._xa,
    "SET": SessionMachine._set,
}
