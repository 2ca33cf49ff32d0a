"""Events as Apache Arrow tables, with one fixed schema, and back.

A data lake needs every file to have the same columns of the same types, whatever a
batch happens to hold: DuckDB and Athena type a JSON member that is null throughout a
file as ``NULL``, and a table built from such files breaks on the day a value turns up.
So the schema here is fixed: each field of :class:`~auditsync.AuditEvent` and
:class:`~auditsync.Origin`, from the event's field table (auditsync/_events.py), is a
column of the kind its form gives (:data:`EVENT_FIELDS`, :data:`ORIGIN_FIELDS`).

The values come from the JSON form (:func:`auditsync.sinks.event_to_dict`) and go back
through :func:`auditsync.sinks.event_from_dict`, so the two forms cannot drift apart.
Text the server wrote in bytes that are not UTF-8 is stored as readable text with U+FFFD
in place of each bad byte, as in the SQL sinks, and its exact bytes beside it: the
query's in ``object_bytes``, any other member's in ``raw_fields`` (member name → bytes;
``origin.path`` for the origin's). ``origin`` is a struct, so an event without one
stays distinct from one whose origin knows nothing.

pyarrow is an optional dependency (``pip install 'auditsync[parquet]'``), imported on
first use.
"""

from __future__ import annotations

import base64
import importlib
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from . import _events
from ._errors import AuditSyncError
from ._events import AuditEvent, Form
from ._json import event_from_dict, event_to_dict, iso_timestamp

#: pyarrow's objects (pyarrow ships no type information).
Table = Any

__all__ = [
    "COLUMNS",
    "EVENT_FIELDS",
    "ORIGIN_FIELDS",
    "read_events",
    "schema",
    "to_events",
    "to_table",
]

Kind = Literal["text", "integer", "boolean", "time", "bytes", "raw", "origin"]

#: The column kind of each form of field (the event's table, auditsync/_events.py).
_KINDS: Mapping[Form, Kind] = {
    Form.TEXT: "text",
    Form.OPTIONAL_TEXT: "text",
    Form.INTEGER: "integer",
    Form.OPTIONAL_INTEGER: "integer",
    Form.FLAG: "boolean",
    Form.TIMESTAMP: "time",
    Form.DIALECT: "text",
    Form.ORIGIN: "origin",
}

#: Each field of :class:`~auditsync.AuditEvent` and the kind of its column.
EVENT_FIELDS: Mapping[str, Kind] = {
    field.name: _KINDS[field.form] for field in _events.EVENT_FIELDS
}

#: Each field of :class:`~auditsync.Origin`, then its derived members (the field table's
#: ``ORIGIN_DERIVED``): the RDS DB instance or Aurora cluster named by the log group (at
#: most one of the two is set).
ORIGIN_FIELDS: Mapping[str, Kind] = {
    field.name: _KINDS[field.form] for field in (*_events.ORIGIN_FIELDS, *_events.ORIGIN_DERIVED)
}


def _columns() -> dict[str, Kind]:
    columns: dict[str, Kind] = {"key": "text"}
    for name, kind in EVENT_FIELDS.items():
        if name != "origin":
            columns[name] = kind
        if name == "object":
            columns["object_bytes"] = "bytes"
    return columns | {"origin": "origin", "raw_fields": "raw"}


#: The columns in the order written: the key first, the exact query bytes beside the
#: query, the origin, then the exact bytes of any other lossy text.
COLUMNS: Mapping[str, Kind] = _columns()


def _pyarrow() -> Any:
    """pyarrow, or an ImportError that says how to get it."""
    try:
        return importlib.import_module("pyarrow")
    except ImportError as missing:
        raise ImportError(
            "the Arrow and Parquet forms need pyarrow: pip install 'auditsync[parquet]'"
        ) from missing


def _arrow_type(kind: Kind) -> Any:
    pa = _pyarrow()
    if kind == "origin":
        return pa.struct([pa.field(name, _arrow_type(k)) for name, k in ORIGIN_FIELDS.items()])
    types: dict[str, Any] = {
        "text": pa.string(),
        "integer": pa.int64(),
        "boolean": pa.bool_(),
        # Microseconds: Aurora's timestamps carry them.
        "time": pa.timestamp("us", tz="UTC"),
        "bytes": pa.binary(),
        "raw": pa.map_(pa.string(), pa.binary()),
    }
    return types[kind]


#: Columns that always hold a value: the key, and each field whose form is not optional.
_REQUIRED = frozenset(
    ["key", *(field.name for field in _events.EVENT_FIELDS if not field.form.optional)]
)


def schema() -> Any:
    """The Arrow schema of every table and Parquet file of events."""
    pa = _pyarrow()
    return pa.schema(
        [
            pa.field(name, _arrow_type(kind), nullable=name not in _REQUIRED)
            for name, kind in COLUMNS.items()
        ]
    )


# --- events to rows -----------------------------------------------------------------------


def _exact(document: dict[str, Any], prefix: str, raw: list[tuple[str, bytes]]) -> bytes | None:
    """Take the ``<name>_base64`` members out of ``document``; ``object``'s bytes returned."""
    object_bytes = None
    for name in [name for name in document if name.endswith("_base64")]:
        member = name[: -len("_base64")]
        data = base64.b64decode(document.pop(name))
        if member == "object" and not prefix:
            object_bytes = data
        else:
            raw.append((prefix + member, data))
    return object_bytes


def _row(event: AuditEvent) -> dict[str, Any]:
    document = event_to_dict(event)
    raw: list[tuple[str, bytes]] = []
    document["timestamp"] = event.timestamp
    document["object_bytes"] = _exact(document, "", raw)
    origin = document["origin"]  # its derived members included, as in the JSON form
    if origin is not None:
        _exact(origin, "origin.", raw)
    document["raw_fields"] = raw or None
    return document


def to_table(events: Iterable[AuditEvent]) -> Table:
    """The events as a table of :func:`schema`, in order.

    Raises :class:`~auditsync.AuditSyncError` for an id beyond 64 bits, which no Arrow
    integer holds (the Parquet sink refuses such events instead).
    """
    pa = _pyarrow()
    rows = [_row(event) for event in events]
    try:
        return pa.Table.from_pylist(rows, schema=schema())
    except OverflowError as error:
        raise AuditSyncError(f"an id does not fit a 64-bit integer: {error}") from None


# --- rows to events -----------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _document(row: dict[str, Any]) -> dict[str, Any]:
    """A row of :func:`schema` in the JSON form, for :func:`event_from_dict`."""
    row["timestamp"] = iso_timestamp(row["timestamp"])
    object_bytes = row.pop("object_bytes", None)
    if object_bytes is not None:
        row["object_base64"] = _b64(object_bytes)
    origin: dict[str, Any] | None = row.get("origin")
    for name, data in row.pop("raw_fields", None) or ():
        where, _, member = name.rpartition(".")
        target = origin if where == "origin" and origin is not None else row
        target[member + "_base64"] = _b64(data)
    return row


def to_events(table: Table) -> list[AuditEvent]:
    """The events a table of :func:`schema` holds; extra columns (partitions) are ignored."""
    rows: Sequence[dict[str, Any]] = table.to_pylist()
    return [event_from_dict(_document(row)) for row in rows]


def read_events(
    source: str | os.PathLike[str], *, filesystem: Any = None, sort: bool = True
) -> list[AuditEvent]:
    """Every event in a Parquet file or directory tree of them, such as a day's partition.

    ``source`` is a local path, an URI (``s3://bucket/prefix``), or a path inside
    ``filesystem`` (any :mod:`pyarrow.fs` filesystem). Events come out in time order
    (then by key) unless ``sort`` is false; repeats of a key written by retried batches
    are dropped.
    """
    _pyarrow()
    dataset = importlib.import_module("pyarrow.dataset")
    table = dataset.dataset(
        os.fspath(source), schema=schema(), format="parquet", filesystem=filesystem
    ).to_table()
    if sort:
        table = table.sort_by([("timestamp", "ascending"), ("key", "ascending")])
    events: list[AuditEvent] = []
    seen: set[str] = set()
    for event, key in zip(to_events(table), table.column("key").to_pylist(), strict=True):
        if key not in seen:
            seen.add(key)
            events.append(event)
    return events
