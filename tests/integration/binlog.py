"""The binlog oracle: the server's own record of what was committed, row by row.

``mariadb-binlog --verbose --base64-output=decode-rows`` prints a ROW-format binlog as
text: each transaction starts with a GTID event, each statement that changed rows with an
``Annotate_rows`` event (its text, after ``#Q>``), and each changed row as ``###`` lines
with its columns as ``@1``, ``@2``… :func:`parse_binlog` reads that text back into
committed transactions, with the columns named and typed from the table definitions the
workload knows; :func:`check_against` holds it against the workload's own record before
the proof trusts it.

What the printed form loses, and how it is read back here:

- Row events carry no connection id. The GTID's domain does, because every workload
  session sets ``gtid_domain_id`` to its connection id (see :mod:`workload`).
- Strings are printed between quotes with no escaping of ``'`` or ``\\``; bytes below
  0x20 become ``\\xNN``. Every value runs to the end of its line, so the quotes are
  simply stripped, and ``\\xNN`` is read as a byte: a string holding a backslash, an
  ``x`` and two hex digits cannot be told from a control byte (the workload writes none).
- A negative integer is printed with its unsigned reading after it, ``-2 (4294967294)``;
  the signed one is taken.
- ``Annotate_rows`` drops empty lines and prints ``\\r`` as a line break, so statement
  texts are compared after :func:`normalize_statement`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from workload import TABLES, Table, WorkloadRecord

__all__ = [
    "BinlogTransaction",
    "RowChange",
    "Value",
    "check_against",
    "normalize_statement",
    "parse_binlog",
    "read_value",
]

Value = int | Decimal | str | bytes | None

_HEADER = re.compile(rb"^#\d{6} +\d+:\d\d:\d\d server id (\d+) +end_log_pos (\d+) .*?\t(\w+)(.*)$")
_GTID = re.compile(rb"^ (\d+)-(\d+)-(\d+)(.*)$")
_THREAD = re.compile(rb"thread_id=(\d+)")
_ROW_START = re.compile(
    rb"^### (INSERT INTO|UPDATE|DELETE FROM) `((?:[^`]|``)+)`\.`((?:[^`]|``)+)`$"
)
_COLUMN = re.compile(rb"^###   @(\d+)=(.*)$")
_HEX = re.compile(rb"\\x([0-9a-f]{2})")
_KINDS = {b"INSERT INTO": "INSERT", b"UPDATE": "UPDATE", b"DELETE FROM": "DELETE"}


@dataclass(frozen=True)
class RowChange:
    """One row an ``Write_rows``, ``Update_rows`` or ``Delete_rows`` event changed."""

    table: str  #: ``db.table``
    kind: str  #: ``INSERT``, ``UPDATE`` or ``DELETE``
    #: The row before (UPDATE, DELETE) and after (INSERT, UPDATE), column name → value.
    before: Mapping[str, Value] | None
    after: Mapping[str, Value] | None
    #: The text of the statement that changed it (its ``Annotate_rows`` event).
    statement: str
    #: Which statement of its transaction (counted from 0) changed it: two runs of the
    #: same text are two statements.
    statement_number: int
    #: The values as mariadb-binlog printed them (``surrogateescape`` text), by name.
    printed_before: Mapping[str, str] | None = None
    printed_after: Mapping[str, str] | None = None

    def key(self, columns: Sequence[str], image: str = "after") -> tuple[Value, ...] | None:
        """The values of ``columns`` in the ``before`` or ``after`` image, if it has one."""
        row = self.before if image == "before" else self.after
        return None if row is None else tuple(row[c] for c in columns)


@dataclass(frozen=True)
class BinlogTransaction:
    """One committed transaction: a GTID event and what followed it up to the next."""

    domain: int
    server_id: int
    sequence: int
    #: What the GTID event says beyond its number: ``trans``, ``ddl``, ``waited``, ``cid=N``.
    flags: tuple[str, ...]
    #: Its place among the transactions of the binlog: commit order across connections.
    index: int
    changes: tuple[RowChange, ...]
    #: The statements of its Query events (DDL, ``SAVEPOINT``), without the session lines.
    queries: tuple[str, ...]
    #: Connection ids from its Query events; row events carry none.
    thread_ids: tuple[int, ...]
    xid: int | None

    @property
    def gtid(self) -> str:
        return f"{self.domain}-{self.server_id}-{self.sequence}"

    def statements(self) -> list[tuple[str, list[RowChange]]]:
        """Its row changes grouped by the statement that made them, in order."""
        groups: dict[int, tuple[str, list[RowChange]]] = {}
        for change in self.changes:
            groups.setdefault(change.statement_number, (change.statement, []))[1].append(change)
        return list(groups.values())


@dataclass
class _Open:
    domain: int
    server_id: int
    sequence: int
    flags: tuple[str, ...]
    changes: list[RowChange] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    thread_ids: list[int] = field(default_factory=list)
    xid: int | None = None
    statement: str = ""
    statements: int = -1

    def close(self, index: int) -> BinlogTransaction:
        return BinlogTransaction(
            self.domain,
            self.server_id,
            self.sequence,
            self.flags,
            index,
            tuple(self.changes),
            tuple(self.queries),
            tuple(self.thread_ids),
            self.xid,
        )


def _unquote(printed: bytes) -> bytes:
    if len(printed) >= 2 and printed[:1] == b"'" and printed[-1:] == b"'":
        printed = printed[1:-1]
    return _HEX.sub(lambda m: bytes([int(m.group(1), 16)]), printed)


def read_value(printed: bytes, kind: str) -> Value:
    """A printed value as the Python value of a column of ``kind`` (see :class:`Column`)."""
    if printed == b"NULL":
        return None
    if kind == "int":
        return int(printed.split(b" ", 1)[0])
    if kind == "decimal":
        return Decimal(printed.decode("ascii"))
    if kind == "bytes":
        return _unquote(printed)
    return _unquote(printed).decode("utf-8", "surrogateescape")


class _Row:
    """A row change being read: ``WHERE`` fills the before image, ``SET`` the after."""

    def __init__(self, table: str, kind: str, definition: Table | None) -> None:
        self.table, self.kind, self.definition = table, kind, definition
        self.images: dict[str, dict[int, bytes]] = {}
        self.filling = ""

    def add(self, number: int, printed: bytes) -> None:
        self.images[self.filling][number] = printed

    def image(self, which: str) -> tuple[dict[str, Value], dict[str, str]] | None:
        columns = self.images.get(which)
        if columns is None:
            return None
        values: dict[str, Value] = {}
        printed: dict[str, str] = {}
        for number, text in columns.items():
            if self.definition is not None and number <= len(self.definition.columns):
                column = self.definition.columns[number - 1]
                name, value = column.name, read_value(text, column.kind)
            else:  # a table the workload did not describe: named by position, as printed
                name, value = f"@{number}", text.decode("utf-8", "surrogateescape")
            values[name] = value
            printed[name] = text.decode("utf-8", "surrogateescape")
        return values, printed

    def finish(self, statement: str, number: int) -> RowChange:
        before, after = self.image("WHERE"), self.image("SET")
        return RowChange(
            self.table,
            self.kind,
            before[0] if before else None,
            after[0] if after else None,
            statement,
            number,
            before[1] if before else None,
            after[1] if after else None,
        )


def _unbacktick(name: bytes) -> str:
    return name.replace(b"``", b"`").decode("utf-8", "surrogateescape")


def parse_binlog(text: bytes, tables: Mapping[str, Table] = TABLES) -> list[BinlogTransaction]:
    """The committed transactions in mariadb-binlog's verbose output, in binlog order.

    Events before the first GTID (format description, GTID lists) belong to none. A
    transaction runs from its GTID event to the next one; its ``Xid`` (or a ``COMMIT``
    query, for non-transactional tables) is inside that span.
    """
    transactions: list[BinlogTransaction] = []
    current: _Open | None = None
    row: _Row | None = None
    query: list[bytes] | None = None
    annotating = False

    def finish_row() -> None:
        nonlocal row
        if row is not None and current is not None:
            current.changes.append(row.finish(current.statement, current.statements))
        row = None

    for line in text.split(b"\n"):
        header = _HEADER.match(line)
        if header:
            finish_row()
            annotating = False
            query = None
            event, rest = header.group(3), header.group(4)
            if event == b"GTID":
                if current is not None:
                    transactions.append(current.close(len(transactions)))
                gtid = _GTID.match(rest)
                if gtid is None:
                    raise ValueError(f"unreadable GTID event: {line!r}")
                domain, server_id, sequence = (int(gtid.group(i)) for i in (1, 2, 3))
                flags = tuple(gtid.group(4).decode().split())
                current = _Open(domain, server_id, sequence, flags)
            elif current is None:
                continue
            elif event == b"Xid":
                current.xid = int(rest.split(b"=")[1])
            elif event == b"Annotate_rows":
                annotating = True
                current.statement = ""
                current.statements += 1
            elif event == b"Query":
                thread = _THREAD.search(rest)
                if thread:
                    current.thread_ids.append(int(thread.group(1)))
                query = []
            continue
        if current is None:
            continue
        if annotating and line.startswith(b"#Q> "):
            text_line = line[4:].decode("utf-8", "surrogateescape")
            current.statement = (
                f"{current.statement}\n{text_line}" if current.statement else text_line
            )
            continue
        if query is not None:
            if line == b"/*!*/;":
                statement = b"\n".join(query).decode("utf-8", "surrogateescape")
                if statement:
                    current.queries.append(statement)
                query = None
            elif not line.endswith(b"/*!*/;"):  # session settings end in it, statements don't
                query.append(line)
            continue
        started = _ROW_START.match(line)
        if started:
            finish_row()
            table = f"{_unbacktick(started.group(2))}.{_unbacktick(started.group(3))}"
            row = _Row(table, _KINDS[started.group(1)], tables.get(table))
            row.filling = "SET" if row.kind == "INSERT" else "WHERE"
            row.images[row.filling] = {}
        elif row is not None and line in (b"### WHERE", b"### SET"):
            row.filling = line[4:].decode()
            row.images[row.filling] = {}
        elif row is not None and (column := _COLUMN.match(line)):
            row.add(int(column.group(1)), column.group(2))
        else:
            finish_row()
    finish_row()
    if current is not None:
        transactions.append(current.close(len(transactions)))
    return transactions


def normalize_statement(text: str) -> str:
    """A statement as ``Annotate_rows`` prints it: line breaks (``\\r``, ``\\n``, runs of
    them) as one ``\\n``, no empty lines."""
    return "\n".join(part for part in re.split(r"[\r\n]+", text) if part)


def check_against(transactions: Iterable[BinlogTransaction], record: WorkloadRecord) -> list[str]:
    """What the binlog and the workload's record disagree on; empty when they agree.

    For each session (GTID domain = connection id): the binlog transactions with row
    changes, in order, are exactly the committed transactions of the record that left
    rows, and each holds exactly the statements that left rows, in order, with as many
    rows as the record says. That rules out, among others, a rolled-back transaction in
    the binlog, rows of a statement rolled back to a savepoint, and a committed write
    missing. A transaction that committed and changed no row must leave no trace, and
    transactions in domains of no session (the setup's, domain 0) are not workload's.
    """
    problems: list[str] = []
    by_domain: dict[int, list[BinlogTransaction]] = {}
    for transaction in transactions:
        by_domain.setdefault(transaction.domain, []).append(transaction)
    sessions = {session.connection_id: session for session in record.sessions}
    for domain in sorted(set(by_domain) - set(sessions) - {0}):
        problems.append(f"domain {domain}: {len(by_domain[domain])} transactions of no session")
    for connection_id, session in sessions.items():
        expected = [
            [(normalize_statement(s.sql), s.rows) for s in t.writes]
            for t in session.transactions
            if t.committed and t.rows
        ]
        found = [
            [(normalize_statement(text), len(rows)) for text, rows in t.statements()]
            for t in by_domain.get(connection_id, [])
            if t.changes
        ]
        if expected == found:
            continue
        for index, (want, got) in enumerate(zip(expected, found, strict=False)):
            if want != got:
                problems.append(
                    f"connection {connection_id}, transaction {index} with rows:"
                    f" the record has {want!r}, the binlog {got!r}"
                )
                break
        else:
            problems.append(
                f"connection {connection_id}: {len(expected)} committed transactions with rows"
                f" in the record, {len(found)} in the binlog"
            )
    return problems
