"""Apply the writes an audit log records to another database: :class:`ReplaySink`.

The audit log holds the text of every statement, not the rows it changed. Replaying that
text elsewhere is faithful only when the text alone decides the effect, and only when the
replay follows what the server followed for each connection. The package does both:
:func:`unsafe_reason` reads a statement's text the way MySQL decides what is "unsafe for
statement-based replication"; :mod:`auditsync.transactions` follows each source connection
(its database, autocommit, transactions); and the sink applies what is safe, in order,
through any DB-API 2 connection, refusing the rest by name (:class:`ReplayRefused`, which
the pipeline turns into dead letters). See docs/replay.md.

The modules, in the order a statement meets them: ``_analysis`` (what the text decides),
``_policy`` (what replay makes of a write), ``_targets`` (how to speak to each database),
``_sink`` (the sink and its bookkeeping tables).
"""

from ..transactions import SESSION_VARIABLES as MIRRORED_VARIABLES
from ._analysis import TableInfo, unsafe_reason
from ._sink import ReplayRefused, ReplaySink, ReplayStats
from ._targets import MySQLTarget, SQLiteTarget, Target

__all__ = [
    "MIRRORED_VARIABLES",
    "MySQLTarget",
    "ReplayRefused",
    "ReplaySink",
    "ReplayStats",
    "SQLiteTarget",
    "TableInfo",
    "Target",
    "unsafe_reason",
]
