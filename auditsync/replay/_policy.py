"""What replay makes of a write: the :class:`~auditsync.transactions.Policy` of ReplaySink.

The session machine says when a write commits; this says whether the replica takes it at
all (is it a replicated table?), refuses it (does its text, its connection or the target's
table leave its effect undecided?), and what the target runs (the text, with its database
names mapped).
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Mapping
from typing import Final

import attrs

from .._events import AuditEvent
from ..sql import DDL_KINDS, Statement
from ..sql._lexer import Lexed
from ..transactions import Refuse, Session, Skip, Take, Verdict
from ._analysis import (
    LEXICAL_MODES,
    TableInfo,
    escaped_length,
    insert_rules,
    insert_shape,
    map_databases,
    unsafe,
    update_assigns,
)

__all__ = ["Options", "ReplayPolicy", "Replayed"]

logger = logging.getLogger("auditsync.replay")

_DML: Final = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})
_DATABASE_DDL: Final = frozenset({"CREATE_DATABASE", "ALTER_DATABASE", "DROP_DATABASE"})


@attrs.frozen
class Options:
    """What the sink was told to replicate, and what it knows of the source server."""

    databases: Mapping[str, str] | None
    tables: tuple[str, ...] | None
    apply_ddl: bool
    excluded: frozenset[str]
    query_log_limit: int


@attrs.frozen(slots=True)
class Replayed:
    """What the target runs for a write: in ``database``, the source's text, names mapped."""

    database: str
    text: str


@attrs.frozen(slots=True)
class _Placed:
    """Where a write goes on the target: its database, its text there, the tables it writes."""

    database: str
    text: str
    tables: tuple[tuple[str, str], ...]


class ReplayPolicy:
    """Which tables are replicated, and which writes to them can be replayed faithfully.

    Pure but for ``info``, which asks the target about a table.
    """

    def __init__(self, options: Options, info: Callable[[str, str], TableInfo | None]):
        self.options = options
        self.info = info

    def follows(self, database: str, table: str | None = None) -> bool:
        """Whether ``database`` (and ``table`` in it) is replicated."""
        options = self.options
        if database in options.excluded:
            return False
        if options.databases is not None and database not in options.databases:
            return False
        if table is None or options.tables is None:
            return True
        name = f"{database}.{table}"
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in options.tables)

    def judge(self, session: Session, event: AuditEvent, statement: Statement) -> Verdict[Replayed]:
        kind = statement.kind
        if kind in DDL_KINDS and kind != "TRUNCATE":
            if kind in _DATABASE_DDL:
                return Skip("database DDL")  # create, alter and drop target databases yourself
            if not self.options.apply_ddl:
                logger.info("DDL not applied (apply_ddl=False): %.200s", event.object)
                return Skip("DDL (apply_ddl=False)")
        lexed = Lexed.of(event.object)
        placed = self._place(session, lexed, statement)
        if not isinstance(placed, _Placed):
            return placed
        reason = self._unsafe(session, event, lexed, statement, placed.tables)
        if reason is not None:
            return Refuse(reason)
        return Take(Replayed(placed.database, placed.text))

    def _mapped(self, database: str) -> str:
        databases = self.options.databases
        return database if databases is None else databases[database]

    def _place(
        self, session: Session, lexed: Lexed, statement: Statement
    ) -> _Placed | Skip | Refuse:
        """Where a write goes on the target, and its text there; or why it does not.

        Not replicated (no table it writes is) is a skip; writing or reading some table
        that is not replicated, or a temporary one, is a refusal: applying it would read
        or write what the target does not mirror.
        """
        current = session.database
        placed = [session.place(name) for name in statement.writes]
        written = [place for place in placed if place is not None]
        if len(written) != len(placed):
            return Refuse("connection state unknown: no current database")
        if not written and statement.kind not in DDL_KINDS:
            return Refuse("not understood: no table found in it")
        temporary = [place for place in written if ".".join(place) in session.temporary]
        ours = [place for place in written if self.follows(*place)]
        if not written:  # routines, triggers, events: defined in the current database
            if current is None or not self.follows(current):
                return Skip("not replicated")
        elif len(temporary) == len(written) or not ours:
            return Skip("temporary table" if temporary else "not replicated")
        elif len(ours) != len(written) or temporary:
            odd = next(place for place in written if place not in ours or place in temporary)
            return Refuse(f"not replicated: also writes {'.'.join(odd)}")
        for name in statement.reads:
            place = session.place(name)
            if place is None or ".".join(place) in session.temporary:
                return Refuse(f"temporary table: reads {name}")
            if not self.follows(*place):
                return Refuse(f"not replicated: reads {'.'.join(place)}")
        text = lexed.text
        if self.options.databases is not None:
            text, refusal = map_databases(lexed, self.options.databases)
            if refusal is not None:
                return Refuse(refusal)
        home = current if current is not None and self.follows(current) else written[0][0]
        tables = tuple((self._mapped(db), table) for db, table in ours)
        return _Placed(self._mapped(home), text, tables)

    def _unsafe(
        self,
        session: Session,
        event: AuditEvent,
        lexed: Lexed,
        statement: Statement,
        tables: tuple[tuple[str, str], ...],
    ) -> str | None:
        """Every rule, the event's and the target's included; the first one broken."""
        if session.lost is not None:
            return f"connection state unknown: {session.lost}"
        if event.truncated or event.retcode is None:
            return "truncated: the server logged part of the statement"
        limit = self.options.query_log_limit
        if limit and escaped_length(event.object) >= limit - 1:
            # The server cuts at the limit without a mark; one byte less where an escape
            # pair would have been split.
            return f"truncated: as long as server_audit_query_log_limit ({limit} bytes)"
        mode = session.settings.get("sql_mode", "").upper()
        if LEXICAL_MODES.search(mode):
            return f"sql_mode: {mode} changes how the text reads"
        reason = unsafe(lexed, statement)
        if reason is not None:
            return reason
        if statement.kind not in _DML:
            return None
        if event.query_id < session.latest:
            return (
                "nested order: statements it ran (triggers, stored functions) were applied"
                " on their own; log TABLE events so that auditsync can tell"
            )
        return self._table_rules(session, lexed, statement.kind, tables)

    def _table_rules(
        self, session: Session, lexed: Lexed, kind: str, tables: tuple[tuple[str, str], ...]
    ) -> str | None:
        """The rules that need the target's view of the tables written."""
        shape = insert_shape(lexed) if kind in ("INSERT", "REPLACE") else None
        assigned = set(update_assigns(lexed)) if kind == "UPDATE" else set()
        for database, table in tables:
            info = self.info(database, table)
            if info is None:
                continue  # the target lacks it: applying fails, and says so
            if info.view:
                return f"view: writes through {table}, whose base table auditsync cannot see"
            if session.in_transaction and not info.transactional:
                return f"non-transactional table: {table} keeps what a rollback undoes"
            reason = None
            if kind in ("INSERT", "REPLACE"):
                reason = insert_rules(shape, info, table)
            elif kind == "UPDATE" and not info.on_update <= assigned:
                name = min(info.on_update - assigned)
                reason = f"column default: {table}.{name} is set to the current time on update"
            if reason is not None:
                return reason
        return None
