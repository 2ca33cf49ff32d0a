"""Records a raw newline in a name split: when two physical lines may be one record.

The server writes user, database and table names raw, so a name holding a newline cuts
its record into physical lines, and whoever chooses the name chooses what those lines
say: one of them can be a well-formed record nobody caused (docs/security.md). A log
does not say which reading is true; this module says when both are possible, for the
two places that meet physical lines in order — the file reader rejoining a record
(:mod:`auditsync._sources`) and the pipeline judging neighbours before anything reaches
a sink (:class:`Seams`), on every path, CloudWatch log events included.

The judge is the grammar, asked about the two lines joined: *could* ``head`` + newline +
``tail`` be one record whose newline lies inside a name no longer than the server
allows? Where it could, and one of the lines does not read on its own, or the second
has a shape no server writes after the first, the pair is *suspect*: its record is a
dead letter, never an event.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence

import attrs

from ._auditlog import parse_line
from ._errors import LineError
from ._events import TABLE_OPERATIONS, AuditEvent, Dialect

__all__ = ["LONGEST_HEAD", "Seams", "could_be_one", "reads", "suspect_pair", "suspects"]

#: The longest names the server accepts, in characters (MariaDB 10.11: ``NAME_CHAR_LEN``
#: for databases and tables, ``USERNAME_CHAR_LENGTH`` for users; checked on the real
#: server by tests/integration/test_forged_names.py).
LONGEST_DATABASE = 64
LONGEST_TABLE = 64
LONGEST_USER = 128
#: No line longer than this can be the first part of a split record: the fields before a
#: name (time, server host, user, client host, ids, operation, database) and the part of a
#: name before its newline fit well within it. A longer line is remembered by its shape only.
LONGEST_HEAD = 4096
#: Streams whose last line :class:`Seams` remembers; the least recently seen go first.
STREAMS = 1024

_RDS_MYSQL = Dialect.RDS_MYSQL  # read once: an enum member looked up per event costs more
#: After the user name: the client host, the connection and query ids, the operation.
_AFTER_USER = re.compile(r",[^,\n]*,\d{1,20},\d{1,20},[A-Z][A-Z_]*,", re.ASCII)


def reads(record: str | bytes) -> AuditEvent | None:
    """The record read on its own, or None where the grammar refuses it."""
    try:
        return parse_line(record)
    except LineError:
        return None


def could_be_one(head: str | bytes, tail: str | bytes, *, users: bool = True) -> bool:
    """Whether ``head``, a newline and ``tail`` can be one record whose newline lies in a
    user, database or table name no longer than the server allows.

    Two readings are tried: the grammar's own of the joined text, and (with ``users``) the
    one it does not try first — the newline inside the user name, where ``head`` is the
    time, the server host and the start of the name, and ``tail`` ends with the rest of a
    record.
    """
    text_head = head if isinstance(head, str) else head.decode("utf-8", "surrogateescape")
    text_tail = tail if isinstance(tail, str) else tail.decode("utf-8", "surrogateescape")
    if len(text_head) > LONGEST_HEAD:
        return False
    joined = reads(text_head + "\n" + text_tail)
    if joined is not None and _newline_in_a_name(joined):
        return True
    return users and _user_split(text_head, text_tail)


def _newline_in_a_name(event: AuditEvent) -> bool:
    """Whether the event's newline lies in a name, and its names are of lengths the server
    allows."""
    if event.operation in TABLE_OPERATIONS:
        inside = "\n" in event.database or "\n" in event.object
    else:
        inside = "\n" in event.database
    return (inside or "\n" in event.username) and _names_fit(event)


def _names_fit(event: AuditEvent) -> bool:
    """Whether the event's names are no longer than the server allows. A table event's
    database and table are one run of text to the grammar (either may hold commas), so the
    run counts as both names."""
    if len(event.username) > LONGEST_USER:
        return False
    if event.operation in TABLE_OPERATIONS:
        return len(event.database) + 1 + len(event.object) <= LONGEST_DATABASE + 1 + LONGEST_TABLE
    return len(event.database) <= LONGEST_DATABASE


def _user_split(head: str, tail: str) -> bool:
    """The newline inside the user name: ``head`` is ``time,serverhost,`` and the name's
    start, ``tail`` the name's end and the rest of the record, from the client host on."""
    parts = head.split(",", 2)
    if len(parts) < 3:
        return False
    start = len(head) - len(parts[2])
    for after in _AFTER_USER.finditer(tail, 0, LONGEST_USER + 64):
        if len(head) - start + 1 + after.start() > LONGEST_USER:
            return False
        rest = reads(head[:start] + "u" + tail[after.start() :])
        if rest is not None and _names_fit(rest):
            return True
    return False


def suspect_pair(
    head: str | bytes,
    head_event: AuditEvent | None,
    tail: str | bytes,
    tail_event: AuditEvent | None,
    host: str | None = None,
) -> bool:
    """Whether two neighbouring lines of one stream may be parts of one record a name
    split, where that, and not two records, is what explains them — so that neither may
    pass as a record:

    - the first does not read alone and the second does, and together they can be one
      record (the first is the start of a record, the second begins inside its name);
    - the first reads alone, not as a table event, and the second does not, and together
      they can be one record (the first ends inside a user or database name: everything of
      it after the name's start was chosen);
    - both read alone, and together they can be one record, and the second shows what one
      server's log never does after the first: a server host other than ``host``, the
      stream's own; or an RDS for MySQL line ending in the comma that closes a table
      event, after a table event (RDS writes no table events; a table name ending in
      ``…',0,`` makes that comma the RDS form's second one).
    """
    if head_event is None:
        return tail_event is not None and could_be_one(head, tail)
    if tail_event is None:
        # A table event's fields before its name are the server's own: cut inside the name,
        # it misnames a table, no more. So junk after one stays a dead letter of its own.
        return head_event.operation not in TABLE_OPERATIONS and could_be_one(head, tail)
    if host is not None and tail_event.serverhost != host:
        # Not the user-name reading: any two short records of two servers read so.
        return could_be_one(head, tail, users=False)
    return (
        tail_event.dialect is _RDS_MYSQL
        and head_event.operation in TABLE_OPERATIONS
        and tail[-1:] in (",", b",")
        and could_be_one(head, tail)
    )


@attrs.define
class _Last:
    """A stream's last line and how it read; a line too long to head a record is kept as
    its reading alone."""

    text: str | bytes
    event: AuditEvent | None
    #: Whether it was judged suspect (the line after it is then judged as a stranger).
    suspect: bool = False
    #: The stream's server host: that of its first line that read.
    host: str | None = None


@attrs.define
class Seams:
    """The last line of each stream (a file, a CloudWatch log stream), so that a line is
    judged with the one before it even when the two came in different blocks, messages
    or, in a warm Lambda container, invocations. Bounded: :data:`STREAMS` streams, each
    one line of at most :data:`LONGEST_HEAD` characters."""

    last: OrderedDict[Hashable, _Last] = attrs.field(factory=OrderedDict)

    def before(self, stream: Hashable) -> _Last | None:
        """The line the stream ended with, if remembered."""
        return self.last.get(stream)

    def remember(self, stream: Hashable, line: _Last) -> None:
        """Remember ``line`` as the stream's last."""
        last = self.last
        if len(line.text) > LONGEST_HEAD:  # it cannot head a record: nothing of it is needed
            line = _Last("", None, line.suspect, line.host)
        last[stream] = line
        last.move_to_end(stream)
        if len(last) > STREAMS:
            last.popitem(last=False)


def suspects(
    texts: Sequence[str | bytes],
    events: Sequence[AuditEvent],
    failed: Sequence[str | bytes],
    before: _Last | None,
) -> tuple[list[tuple[str | bytes, AuditEvent]], _Last | None]:
    """Which of ``texts``, neighbouring lines of one stream read into ``events`` (in order)
    and ``failed`` (the texts that did not read, in order, as the reader returned them),
    must not pass as records (:func:`suspect_pair`), each with its event; ``before`` is the
    stream's line before them, if remembered. Also the last line, with its reading, for
    the stream to remember. A suspect ``before`` comes first, for the caller to take back
    if it still can (docs/security.md says when it cannot).

    Cheap where nothing is suspect, as nearly always: a block whose lines all read is
    looked at only around the few lines one pass over its events marks — an RDS for
    MySQL line, another server host; a block with a line that does not read, or after
    one, pair by pair.
    """
    if not texts:
        return [], before
    host = before.host if before is not None else None
    if host is None and events:
        host = events[0].serverhost
    if failed or (before is not None and before.event is None):
        readings = _aligned(texts, events, failed)
        pairs: Iterable[int] = range(len(texts))
    else:
        # The cheapest pass over a block: a list display of what needs a look, nearly
        # always empty (a set would hash each dialect through Enum.__hash__, in Python).
        rds = _RDS_MYSQL
        if not [event for event in events if event.serverhost != host or event.dialect is rds]:
            return [], _Last(texts[-1], events[-1], host=host)
        readings = list(events)
        marked = [
            index
            for index, event in enumerate(events)
            if event.serverhost != host or event.dialect is rds
        ]
        # The pairs each marked line is the second of.
        pairs = marked
    found: dict[int, tuple[str | bytes, AuditEvent]] = {}
    for index in pairs:
        if index > 0:
            head, head_event = texts[index - 1], readings[index - 1]
        elif before is not None:
            head, head_event = before.text, before.event
        else:
            continue
        text, event = texts[index], readings[index]
        # Another server host counts where it comes in, or after a suspect line: a run of
        # one other server's lines (logs concatenated) is judged at its start.
        other = (
            host
            if head_event is None
            or event is None
            or head_event.serverhost != event.serverhost
            or (index - 1 in found if index > 0 else before is not None and before.suspect)
            else None
        )
        if not suspect_pair(head, head_event, text, event, other):
            continue
        if event is not None:
            found[index] = (text, event)
        if head_event is not None and head_event.operation not in TABLE_OPERATIONS:
            # A table event's fields before its name are the server's own (see above).
            found[index - 1] = (head, head_event)
    last = _Last(texts[-1], readings[-1], len(texts) - 1 in found, host)
    return [found[index] for index in sorted(found)], last


def _aligned(
    texts: Sequence[str | bytes], events: Sequence[AuditEvent], failed: Sequence[str | bytes]
) -> list[AuditEvent | None]:
    """Each text's event, or None where it failed (the reader returns the failing texts
    themselves, in order)."""
    readings: list[AuditEvent | None] = []
    next_event = iter(events)
    at = 0
    for text in texts:
        if at < len(failed) and failed[at] is text:
            readings.append(None)
            at += 1
        else:
            readings.append(next(next_event))
    return readings
