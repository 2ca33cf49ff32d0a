"""Records a raw newline in a name split: when two physical lines may be one record.

The server writes user, database and table names raw, so a name holding a newline cuts
its record into physical lines, and whoever chooses the name chooses what those lines
say: one of them can be a well-formed record nobody caused (docs/security.md). A log
does not say which reading is true; this module says when both are possible, for the
two places that meet physical lines in order — the file reader rejoining a record
(:mod:`auditsync._sources`) and the pipeline judging neighbours before anything reaches
a sink (:class:`Seams`), on every path, CloudWatch log events included.

The judge is the grammar, asked about the lines joined: *could* ``head`` + newline +
``tail`` be one record whose newline lies inside a name no longer than the server
allows? Where it could, and one of the lines does not read on its own, or the second
has a shape no server writes after the first, the pair is *suspect*: its record is a
dead letter, never an event. A failed login is the one record whose name anyone may
choose, and the server writes it twice (``FAILED_CONNECT``, then ``DISCONNECT``): the
lines its name can hold are held until the second shows whether the name held them.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Container, Hashable, Iterator, Sequence

import attrs

from ._auditlog import parse_line
from ._errors import LineError
from ._events import TABLE_OPERATIONS, AuditEvent, Dialect

__all__ = [
    "LOGINS",
    "LONGEST_HEAD",
    "RUN",
    "STREAMS",
    "Seams",
    "could_be_one",
    "failed_login",
    "login_names",
    "reads",
    "suspect_pair",
]

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
#: Streams whose last lines :class:`Seams` remembers; the least recently seen go first.
STREAMS = 1024
#: The most lines a user name can hold whole, and so the most lines before a failed login
#: it can have written: 128 characters, and a line that reads is 30 or more.
RUN = 4
#: Failed logins whose name :class:`Seams` remembers until their connection's DISCONNECT
#: shows it again, over all streams; the oldest go first.
LOGINS = 1024

_RDS_MYSQL = Dialect.RDS_MYSQL  # read once: an enum member looked up per event costs more
#: Besides FAILED_CONNECT, the records of a failed login where their status is an error.
_CHANGES = frozenset({"CONNECT", "CHANGEUSER"})
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
    text_head, text_tail = _text(head), _text(tail)
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
    return next(_user_names(head, "", tail), None) is not None


def _user_names(head: str, middle: str, tail: str) -> Iterator[str]:
    """The user names that make ``head``, ``middle`` (whole lines, each ending in a
    newline, or nothing) and ``tail`` one record: ``head`` holds the time, the server host
    and the name's start, ``tail`` the name's end and the rest of the record."""
    parts = head.split(",", 2)
    if len(parts) < 3:
        return
    start = len(head) - len(parts[2])
    room = LONGEST_USER - (len(head) - start) - 1 - len(middle)
    for end in _name_ends(head[:start], tail, room):
        yield head[start:] + "\n" + middle + tail[:end]


def _name_ends(prefix: str, tail: str, room: int) -> Iterator[int]:
    """Where in ``tail`` a user name can end, at most ``room`` characters in: the rest of
    the record, from the client host on, reads after ``prefix`` (a time and server host)
    and a name, whose names the server allows."""
    for after in _AFTER_USER.finditer(tail, 0, LONGEST_USER + 64):
        if after.start() > room:
            return
        rest = reads(prefix + "u" + tail[after.start() :])
        if rest is not None and _names_fit(rest):
            yield after.start()


def failed_login(event: AuditEvent) -> bool:
    """Whether the record is a login or change of user that failed: its user name is what
    the client sent, so anyone who reaches the port chooses it (a change of user, anyone
    logged in)."""
    operation = event.operation
    return operation == "FAILED_CONNECT" or (operation in _CHANGES and bool(event.retcode))


def login_names(
    before: Sequence[tuple[str | bytes, AuditEvent | None]],
    login: str | bytes,
    event: AuditEvent | None = None,
) -> list[tuple[int, str]]:
    """The user names with which the last lines of ``before`` (each with its reading, or
    None) and ``login``, a record of a failed login (``event``, its reading, if known),
    can be one record: each with how many of those lines it holds, the first of them from
    its time and server host on."""
    tail = _text(login)
    parts = tail.split(",", 2)
    if len(parts) < 3:
        return []
    own = tail[: len(tail) - len(parts[2])]  # the login's own time and server host
    # Where the name can end: the rest of the record reads after it. That is the same for
    # every head that reads (its time and host are good), so it is asked once, with the
    # login's own. Its own user name ends where its reading says; only a name holding
    # commas and digits can end sooner, and is asked.
    own_end = LONGEST_USER
    if event is not None and tail[len(own) : len(own) + len(event.username)] == event.username:
        own_end = len(own) + len(event.username)
    else:
        event = None  # its name is not its text's (bytes that are not UTF-8): ask each end
    ends = list(_name_ends(own, tail, own_end - 1))
    if event is not None and own_end <= LONGEST_USER and _names_fit(event):
        ends.append(own_end)
    found: list[tuple[int, str]] = []
    middle = ""
    for count in range(1, min(len(before), RUN) + 1):
        text, reading = before[-count]
        head = _text(text)
        if len(head) > LONGEST_HEAD:
            break
        if reading is not None:
            start = len(head) - len(head.split(",", 2)[2])
            for end in ends:
                name = head[start:] + "\n" + middle + tail[:end]
                if len(name) <= LONGEST_USER:
                    found.append((count, name))
        else:
            found.extend((count, name) for name in _user_names(head, middle, tail))
        middle = head + "\n" + middle
        if len(middle) > LONGEST_USER:
            break
    return found


def _reach(
    line: Callable[[int], tuple[str | bytes, AuditEvent | None, bool]],
    index: int,
    login: str | bytes,
) -> tuple[list[tuple[str | bytes, AuditEvent | None]], int]:
    """The lines before the failed login at ``index`` that a name could hold, by length
    alone (oldest first, with their readings), and how many: the first from its server
    host on, the others whole, each with its newline, and the login's own time and
    server host — the quick test before :func:`login_names`."""
    comma = "," if isinstance(login, str) else b","
    own = len(login) - len(login.split(comma, 2)[-1])  # type: ignore[arg-type]
    before: list[tuple[str | bytes, AuditEvent | None]] = []
    whole = reach = 0
    for back in range(1, RUN + 1):
        text, event, _ = line(index - back)
        if not text:
            break
        before.append((text, event))
        if len(text.split(comma, 2)[-1]) + 1 + whole + own <= LONGEST_USER:  # type: ignore[arg-type]
            reach = back
        whole += len(text) + 1
        if whole + own > LONGEST_USER:
            break
    del before[reach:]
    before.reverse()
    return before, reach


def _after_time(line: str | bytes) -> str | bytes:
    """A line without its time: what a name written twice repeats exactly."""
    if isinstance(line, str):
        return line[line.find(",") + 1 :]
    return line[line.find(b",") + 1 :]


def _text(line: str | bytes) -> str:
    return line if isinstance(line, str) else line.decode("utf-8", "surrogateescape")


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
class _Stream:
    """What a stream's next lines are judged with: its last :data:`RUN` lines (a line too
    long to head a record as an empty text), their readings, which of them were found
    suspect (the line after one is judged as a stranger), and the stream's server host
    (that of its first line that read)."""

    texts: list[str | bytes]
    events: list[AuditEvent | None]
    suspect: set[int]
    host: str | None


@attrs.define
class _Login:
    """A failed login whose user name may hold the lines before it: its line, its reading
    and those lines with theirs (oldest first), which its names are read from when its
    DISCONNECT asks. The lines are held until then, or until their batch is delivered."""

    text: str | bytes
    event: AuditEvent
    before: list[tuple[str | bytes, AuditEvent | None]]

    def held(self, count: int) -> list[tuple[str | bytes, AuditEvent]]:
        """The last ``count`` lines before the login that read (the caller takes them back,
        or says they went)."""
        return [(text, event) for text, event in self.before[-count:] if event is not None]


@attrs.define
class Seams:
    """The judge of neighbouring lines, with what it remembers of each stream (a file, a
    CloudWatch log stream), so that a line is judged with those before it even when they
    came in different blocks, messages or, in a warm Lambda container, invocations.

    Bounded: :data:`STREAMS` streams, each its last :data:`RUN` lines of at most
    :data:`LONGEST_HEAD` characters; :data:`LOGINS` failed logins, each its line and the
    lines before it that a user name can hold (128 characters, and a time and server host).
    """

    streams: OrderedDict[Hashable, _Stream] = attrs.field(factory=OrderedDict)
    logins: OrderedDict[tuple[Hashable, int], _Login] = attrs.field(factory=OrderedDict)
    #: Failed logins holding lines since the last :meth:`settle`.
    pending: dict[tuple[Hashable, int], None] = attrs.field(factory=dict)
    #: The connections of each stream whose failed login is remembered.
    waiting: dict[Hashable, set[int]] = attrs.field(factory=dict)

    def judge(
        self,
        stream: Hashable,
        texts: Sequence[str | bytes],
        events: Sequence[AuditEvent],
        failed: Sequence[str | bytes],
    ) -> list[tuple[str | bytes, AuditEvent]]:
        """Which lines must not pass as records, each with its event: of ``texts``,
        neighbouring lines of ``stream`` read into ``events`` (in order) and ``failed``
        (the texts that did not read, in order, as the reader returned them), and of the
        stream's lines before them — those come first, for the caller to take back if it
        still can (docs/security.md says when it cannot).

        Two rules. A pair of neighbours is suspect by :func:`suspect_pair`. And a failed
        login (:func:`failed_login`), whose user name anyone can choose, can have written
        the lines before it: they are held until its DISCONNECT, which the server writes
        with the same name, shows whether the same lines come before it again — then
        they were the name's, and suspect — or not; or until their batch is delivered
        (:meth:`settle`), when nothing has shown them to be the name's. A failed change of
        user has no second record: the lines its name can hold are suspect at once.

        Cheap where nothing is to be looked at, as nearly always: a block whose lines all
        read is looked at only around the few lines one pass over its events marks — a
        failed login (and a DISCONNECT while one awaits it), an RDS for MySQL line, another
        server host; a block with a line that does not read, or after one, pair by pair.
        """
        if not texts:
            return []
        memory = self.streams.get(stream)
        if memory is None:
            memory = _Stream([], [], set(), None)
        before, before_events, before_suspect = memory.texts, memory.events, memory.suspect
        host = memory.host
        if host is None and events:
            host = events[0].serverhost
        # Every line is looked at where one does not read; else what a quick pass marks:
        # another server host, an RDS for MySQL line, a failed login, a DISCONNECT awaited.
        awaited = self.waiting.get(stream, ())
        every_line = bool(failed or (before_events and before_events[-1] is None))
        if every_line:
            readings = _aligned(texts, events, failed)
            marked: Sequence[int] = range(len(texts))
        else:
            # The cheapest pass over a block: a list display of what needs a look, nearly
            # always short (a set would hash each dialect through Enum.__hash__, in Python).
            rds = _RDS_MYSQL
            flagged = [
                event
                for event in events
                if event.serverhost != host
                or event.dialect is rds
                or (event.query_id == 0 and (event.retcode or event.connection_id in awaited))
            ]
            if not flagged:
                self._remember(stream, memory, texts, events, (), host)
                return []
            # Now with indexes (enumerate costs a tuple an event: not in the pass above), and
            # the DISCONNECTs of this block's failed logins as well.
            conns = set(awaited)
            conns.update(event.connection_id for event in flagged if event.query_id == 0)
            marked = [
                index
                for index in range(len(events))
                if (read := events[index]).serverhost != host
                or read.dialect is rds
                or (read.query_id == 0 and (read.retcode or read.connection_id in conns))
            ]
            readings = events  # type: ignore[assignment]  # every line read
        found: dict[int, tuple[str | bytes, AuditEvent]] = {}
        taken: list[tuple[str | bytes, AuditEvent]] = []
        count = len(before)

        def line(index: int) -> tuple[str | bytes, AuditEvent | None, bool]:
            """The stream's line at ``index`` of this block; negative: before it (an empty
            text where the stream remembers none)."""
            if index >= 0:
                return texts[index], readings[index], index in found
            if index < -count:
                return "", None, False
            at = count + index
            return before[at], before_events[at], at in before_suspect

        def take(index: int) -> None:
            """Find the stream's line at ``index`` suspect, where it read."""
            text, event, _ = line(index)
            if event is None:
                return
            if index >= 0:
                found[index] = (text, event)
            elif count + index not in before_suspect:
                before_suspect.add(count + index)
                taken.append((text, event))

        for index in marked:
            text, event, _ = line(index)
            if index > -count:
                head, head_event, head_suspect = line(index - 1)
                # Another server host counts where it comes in, or after a suspect line: a
                # run of one other server's lines (logs concatenated) is judged at its start.
                other = (
                    host
                    if head_event is None
                    or event is None
                    or head_event.serverhost != event.serverhost
                    or head_suspect
                    else None
                )
                if suspect_pair(head, head_event, text, event, other):
                    take(index)
                    if head_event is not None and head_event.operation not in TABLE_OPERATIONS:
                        # A table event's fields before its name are the server's own.
                        take(index - 1)
            if event is not None and event.query_id == 0:
                self._login(stream, index, event, line, take, taken)
        self._remember(stream, memory, texts, readings, found, host)
        suspect: list[tuple[str | bytes, AuditEvent]] = []
        once: set[int] = set()
        for pair in taken + [found[index] for index in sorted(found)]:
            if id(pair[1]) not in once:  # a line two rules found is one dead letter
                once.add(id(pair[1]))
                suspect.append(pair)
        return suspect

    def _login(
        self,
        stream: Hashable,
        index: int,
        event: AuditEvent,
        line: Callable[[int], tuple[str | bytes, AuditEvent | None, bool]],
        take: Callable[[int], None],
        taken: list[tuple[str | bytes, AuditEvent]],
    ) -> bool:
        """The failed-login rule (:meth:`judge`) for the connection record at ``index``;
        whether it holds the lines before it now."""
        key = (stream, event.connection_id)
        operation = event.operation
        if operation == "DISCONNECT":
            if key in self.logins:
                self._closing(key, index, event, line, take, taken)
            return False
        if not failed_login(event):
            return False
        text = line(index)[0]
        before, reach = _reach(line, index, text)
        if not reach:
            return False
        if operation == "CHANGEUSER":  # no second record to wait for
            counts = [count for count, _ in login_names(before, text, event)]
            for back in range(1, max(counts, default=0) + 1):
                take(index - back)
            return False
        if key in self.logins:
            self._forget(key)
        self.logins[key] = _Login(text, event, before)
        self.pending[key] = None
        self.waiting.setdefault(stream, set()).add(key[1])
        if len(self.logins) > LOGINS:
            # Forgotten before its DISCONNECT came: what it held is suspect.
            oldest = next(iter(self.logins))
            held = oldest in self.pending
            forgotten = self._forget(oldest)
            if held:  # its lines are in the batch still: suspect, as nothing cleared them
                taken.extend(forgotten.held(RUN))
        return True

    def _closing(
        self,
        key: tuple[Hashable, int],
        index: int,
        event: AuditEvent,
        line: Callable[[int], tuple[str | bytes, AuditEvent | None, bool]],
        take: Callable[[int], None],
        taken: list[tuple[str | bytes, AuditEvent]],
    ) -> None:
        """A DISCONNECT of a remembered failed login's connection: where the same name holds
        the lines before both, they were its own, and suspect (those already delivered
        are said to be, by the caller). Otherwise the login is remembered still: a line of
        the name may read as that DISCONNECT, and the real one is still to come."""
        held = self.logins[key]
        nearest = line(index - 1)[0]
        if nearest and held.before and _after_time(nearest) == _after_time(held.before[-1][0]):
            names = {name: count for count, name in login_names(held.before, held.text, held.event)}
            text = line(index)[0]
            before, _ = _reach(line, index, text)
            again = [
                (count, names[name])
                for count, name in login_names(before, text, event)
                if name in names
            ]
            if again:
                self._forget(key)
                for back in range(1, max(count for count, _ in again) + 1):
                    take(index - back)
                taken.extend(held.held(max(count for _, count in again)))

    def _forget(self, key: tuple[Hashable, int]) -> _Login:
        """Forget a failed login, everywhere it is remembered."""
        login = self.logins.pop(key)
        self.pending.pop(key, None)
        stream = key[0]
        awaited = self.waiting[stream]
        awaited.discard(key[1])
        if not awaited:
            del self.waiting[stream]
        return login

    def holding(self) -> bool:
        """Whether a failed login holds lines that await its DISCONNECT."""
        return bool(self.pending)

    def settle(self) -> None:
        """Let the lines failed logins hold go as records with their batch (a call ends, or
        the batch waited as long as it may): nothing has shown them to be a name's. The
        logins are remembered still (:data:`LOGINS`), so that a DISCONNECT that repeats
        the name, and the name's copy before it, are judged when they come."""
        self.pending = {}

    def _remember(
        self,
        stream: Hashable,
        memory: _Stream,
        texts: Sequence[str | bytes],
        readings: Sequence[AuditEvent | None],
        found: Container[int],
        host: str | None,
    ) -> None:
        """Keep the stream's last :data:`RUN` lines, a line too long to head a record as
        its reading alone."""
        last = list(texts[-RUN:])
        events = list(readings[-RUN:])
        first = len(texts) - len(last)
        suspect = {at for at in range(len(last)) if first + at in found} if found else set()
        if len(last) < RUN:  # a short block: the lines before it stay, the oldest go
            suspect = memory.suspect | {len(memory.texts) + at for at in suspect}
            last, events = memory.texts + last, memory.events + events
            drop = max(0, len(last) - RUN)
            last, events = last[drop:], events[drop:]
            suspect = {at - drop for at in suspect if at >= drop}
        if max(map(len, last)) > LONGEST_HEAD:  # it cannot head a record: nothing of it is needed
            last = [text if len(text) <= LONGEST_HEAD else "" for text in last]
        streams = self.streams
        streams[stream] = _Stream(last, events, suspect, host)
        streams.move_to_end(stream)
        if len(streams) > STREAMS:
            streams.popitem(last=False)


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
