"""What a statement is: the kinds :func:`~auditsync.sql.classify` tells apart, their
groups, and :class:`Statement`, the value it returns."""

from __future__ import annotations

from typing import Final

import attrs

from ._fingerprint import fingerprint
from ._lexer import words

__all__ = [
    "DCL_KINDS",
    "DDL_KINDS",
    "KINDS",
    "TRANSACTION_KINDS",
    "WRITE_KINDS",
    "Statement",
]

#: Every value :attr:`Statement.kind` takes. ``OTHER`` means "not understood" and comes
#: with no tables.
KINDS: Final = words(
    """
    SELECT INSERT UPDATE DELETE REPLACE LOAD_DATA LOAD_XML CALL DO HANDLER

    CREATE_TABLE ALTER_TABLE DROP_TABLE RENAME_TABLE TRUNCATE CREATE_INDEX DROP_INDEX
    CREATE_DATABASE ALTER_DATABASE DROP_DATABASE CREATE_VIEW ALTER_VIEW DROP_VIEW
    CREATE_SEQUENCE ALTER_SEQUENCE DROP_SEQUENCE CREATE_PROCEDURE ALTER_PROCEDURE
    DROP_PROCEDURE CREATE_FUNCTION ALTER_FUNCTION DROP_FUNCTION CREATE_PACKAGE DROP_PACKAGE
    CREATE_TRIGGER DROP_TRIGGER CREATE_EVENT ALTER_EVENT DROP_EVENT CREATE_SERVER
    ALTER_SERVER DROP_SERVER CREATE_TABLESPACE ALTER_TABLESPACE DROP_TABLESPACE

    GRANT REVOKE CREATE_USER ALTER_USER DROP_USER RENAME_USER SET_PASSWORD CREATE_ROLE
    DROP_ROLE SET_DEFAULT_ROLE

    BEGIN COMMIT ROLLBACK SAVEPOINT RELEASE_SAVEPOINT XA LOCK_TABLES UNLOCK_TABLES

    ANALYZE_TABLE CHECK_TABLE CHECKSUM_TABLE OPTIMIZE_TABLE REPAIR_TABLE

    SET USE SHOW EXPLAIN PREPARE EXECUTE DEALLOCATE FLUSH KILL RESET PURGE SHUTDOWN
    INSTALL_PLUGIN UNINSTALL_PLUGIN CHANGE_MASTER START_REPLICA STOP_REPLICA

    OTHER
    """
)

#: Kinds that define, change or drop a schema object (MySQL's "data definition").
DDL_KINDS: Final = frozenset(
    {"RENAME_TABLE", "TRUNCATE"}.union(
        kind
        for kind in KINDS
        if kind.startswith(("CREATE_", "ALTER_", "DROP_")) and not kind.endswith(("USER", "ROLE"))
    )
)

#: Kinds that change rows or definitions. ``CALL``, ``DO`` and ``EXECUTE`` are not among
#: them: the statements they run are logged, and classified, on their own.
WRITE_KINDS: Final = DDL_KINDS.union(
    words("INSERT UPDATE DELETE REPLACE LOAD_DATA LOAD_XML OPTIMIZE_TABLE REPAIR_TABLE")
)

#: Kinds that begin, end or mark a transaction.
TRANSACTION_KINDS: Final = frozenset(words("BEGIN COMMIT ROLLBACK SAVEPOINT RELEASE_SAVEPOINT XA"))

#: Kinds that manage accounts and privileges.
DCL_KINDS: Final = frozenset(
    words(
        """GRANT REVOKE CREATE_USER ALTER_USER DROP_USER RENAME_USER SET_PASSWORD
        CREATE_ROLE DROP_ROLE SET_DEFAULT_ROLE"""
    )
)


@attrs.frozen(slots=True)
class Statement:
    """What one statement does: its kind and the tables it writes and reads.

    Table names are as written (``db.table`` or ``table``, backquotes undone), each listed
    once, in order of appearance. Statements that do the same to the same tables compare
    equal whatever their text; :attr:`fingerprint` tells their shapes apart.
    """

    kind: str
    writes: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    query: str = attrs.field(default="", eq=False, repr=False)
    _fingerprint: str | None = attrs.field(default=None, init=False, eq=False, repr=False)

    @property
    def is_write(self) -> bool:
        """The statement changes rows (INSERT, UPDATE, ...) or definitions (DDL)."""
        return self.kind in WRITE_KINDS

    @property
    def is_ddl(self) -> bool:
        """The statement defines, changes or drops a schema object."""
        return self.kind in DDL_KINDS

    @property
    def is_dcl(self) -> bool:
        """The statement manages accounts or privileges."""
        return self.kind in DCL_KINDS

    @property
    def is_transaction_control(self) -> bool:
        """The statement begins, commits, rolls back or marks a transaction."""
        return self.kind in TRANSACTION_KINDS

    @property
    def fingerprint(self) -> str:
        """:func:`fingerprint` of :attr:`query`, computed when first asked for."""
        cached = self._fingerprint
        if cached is None:
            cached = fingerprint(self.query)
            object.__setattr__(self, "_fingerprint", cached)
        return cached
