"""Events as OCSF 1.1.0, the schema Amazon Security Lake stores: a pure mapping.

Connection records become **Authentication** (class 3002): ``CONNECT`` and ``CHANGEUSER``
a logon, ``FAILED_CONNECT`` a failed logon, ``DISCONNECT`` a logoff. Everything else
becomes **Datastore Activity** (class 6005): ``QUERY`` a query (the statement in
``query_info.query_string``), the table records a read, write, create, delete or update
of their table. The return code is ``status_code``, and decides ``status_id`` (success
for 0, failure otherwise, unknown where the record has none).

OCSF 1.1.0 because that is the version Security Lake's custom sources take; class 6005
first appeared in it. Fields OCSF has no place for (connection and query ids, the line
dialect, where the record came from) are kept under ``unmapped``, so nothing is lost;
text that is not UTF-8 is written readably, with its exact bytes under ``unmapped`` as
``<member>_base64``, the convention of the JSON form (docs/sinks.md).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ._auditlog import format_line
from ._events import AuditEvent, Dialect, client_address
from ._json import event_to_dict

__all__ = [
    "AUTHENTICATION",
    "DATASTORE_ACTIVITY",
    "OCSF_VERSION",
    "arrow_schema",
    "ocsf_class",
    "to_ocsf",
    "to_table",
]

OCSF_VERSION = "1.1.0"
AUTHENTICATION = 3002
DATASTORE_ACTIVITY = 6005

#: Connection records: operation → (Authentication activity_id, its name).
_AUTHENTICATION: Mapping[str, tuple[int, str]] = {
    "CONNECT": (1, "Logon"),
    "FAILED_CONNECT": (1, "Logon"),
    "CHANGEUSER": (1, "Logon"),
    "PROXY_CONNECT": (1, "Logon"),
    "DISCONNECT": (2, "Logoff"),
}

#: Everything else: operation → (Datastore Activity activity_id, its name).
_DATASTORE: Mapping[str, tuple[int, str]] = {
    "QUERY": (4, "Query"),
    "READ": (1, "Read"),
    "WRITE": (5, "Write"),
    "CREATE": (6, "Create"),
    "DROP": (7, "Delete"),
    "ALTER": (2, "Update"),
    "RENAME": (2, "Update"),
}
_OTHER = (99, "Other")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: OCSF's times are milliseconds since the epoch; the microseconds stay in ``raw_data``.
_MILLISECOND = timedelta(milliseconds=1)

#: The class's category: (category_uid, category_name, class_name).
_CLASSES: Mapping[int, tuple[int, str, str]] = {
    AUTHENTICATION: (3, "Identity & Access Management", "Authentication"),
    DATASTORE_ACTIVITY: (6, "Application Activity", "Datastore Activity"),
}

#: Who wrote the log, by dialect: OCSF's metadata.product.
_PRODUCTS: Mapping[Dialect, dict[str, str]] = {
    Dialect.MARIADB: {"name": "MariaDB Audit Plugin", "vendor_name": "MariaDB"},
    Dialect.AURORA: {"name": "Amazon Aurora MySQL", "vendor_name": "Amazon Web Services"},
    Dialect.RDS_MYSQL: {
        "name": "Amazon RDS for MySQL (MariaDB Audit Plugin)",
        "vendor_name": "Amazon Web Services",
    },
    Dialect.MARIADB_ENTERPRISE: {"name": "MariaDB Enterprise Audit", "vendor_name": "MariaDB"},
}
_PRODUCTS_AUTO = {"name": "MariaDB Audit Plugin", "vendor_name": "MariaDB"}

#: Members of the JSON form that OCSF has no place for, kept under ``unmapped``.
_UNMAPPED = (
    "connection_id",
    "query_id",
    "connection_type",
    "truncated",
    "dialect",
    "tls_version",
)


def ocsf_class(event: AuditEvent) -> int:
    """The OCSF class an event maps to: :data:`AUTHENTICATION` or :data:`DATASTORE_ACTIVITY`."""
    return AUTHENTICATION if event.operation in _AUTHENTICATION else DATASTORE_ACTIVITY


def _endpoint(address: str) -> dict[str, str]:
    """An OCSF endpoint for a host as the server wrote it: an IP address, or a name."""
    try:
        return {"ip": str(ipaddress.ip_address(address))}
    except ValueError:
        return {"hostname": address}


def _status(retcode: int | None) -> dict[str, Any]:
    if retcode is None:
        return {"status_id": 0, "status": "Unknown"}
    status = (
        {"status_id": 1, "status": "Success"}
        if retcode == 0
        else {
            "status_id": 2,
            "status": "Failure",
        }
    )
    return status | {"status_code": str(retcode)}


def to_ocsf(event: AuditEvent) -> dict[str, Any]:
    """The event as one OCSF 1.1.0 event: a JSON-ready dict (see the module's notes)."""
    document = event_to_dict(event)
    class_uid = ocsf_class(event)
    category_uid, category_name, class_name = _CLASSES[class_uid]
    table = _AUTHENTICATION if class_uid == AUTHENTICATION else _DATASTORE
    activity_id, activity_name = table.get(event.operation, _OTHER)
    user = {"name": document["username"]}
    destination = _endpoint(document["serverhost"])
    client, port = client_address(document["host"], event.dialect)
    source: dict[str, Any] = _endpoint(client)
    if port is not None:
        source["port"] = port
    unmapped: dict[str, Any] = {name: document[name] for name in _UNMAPPED}
    unmapped["operation"] = document["operation"]
    if document["origin"] is not None:
        unmapped["origin"] = document["origin"]
        resource = event.origin.rds if event.origin else None
        if resource is not None:
            unmapped[f"rds_{resource.kind}"] = resource.identifier
            destination["name"] = resource.identifier
    unmapped.update((name, value) for name, value in document.items() if name.endswith("_base64"))
    origin = event.origin
    raw_line = format_line(event).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    result: dict[str, Any] = {
        "category_uid": category_uid,
        "category_name": category_name,
        "class_uid": class_uid,
        "class_name": class_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {activity_name}",
        "time": (event.timestamp - _EPOCH) // _MILLISECOND,
        "severity_id": 1,
        "severity": "Informational",
        "metadata": {
            "version": OCSF_VERSION,
            "uid": document["key"],
            "product": dict(_PRODUCTS.get(event.dialect, _PRODUCTS_AUTO)),
            "log_name": (origin.log_group if origin else None) or "server_audit",
            "log_provider": "auditsync",
        },
        "actor": {"user": user, "session": {"uid": str(event.connection_id)}},
        "src_endpoint": source,
        "dst_endpoint": destination,
        "raw_data": raw_line,
        "unmapped": unmapped,
        **_status(event.retcode),
    }
    if class_uid == AUTHENTICATION:
        result["user"] = user
        result["session"] = {"uid": str(event.connection_id)}
        result["is_remote"] = client != "localhost"
        unmapped["database"] = document["database"]
        unmapped["object"] = document["object"]
        return result
    result["database"] = {"name": document["database"], "type_id": 1, "type": "Relational"}
    if event.operation == "QUERY":
        result["type_id"], result["type"] = 1, "Database"
        result["query_info"] = {"query_string": document["object"]}
    elif event.operation in _DATASTORE:
        result["type_id"], result["type"] = 3, "Table"
        result["table"] = {"name": document["object"]}
    else:
        unmapped["object"] = document["object"]
    return result


# --- OCSF in Parquet: one fixed Arrow schema per class -----------------------------------------

#: The members :func:`to_ocsf` writes, class by class, and their types; nested mappings are
#: OCSF objects. ``unmapped`` is a map of text to JSON text, as Security Lake's own tables
#: hold it: what it carries varies from event to event, the schema must not.
_COMMON: Mapping[str, Any] = {
    "category_uid": "integer",
    "category_name": "text",
    "class_uid": "integer",
    "class_name": "text",
    "activity_id": "integer",
    "activity_name": "text",
    "type_uid": "integer",
    "type_name": "text",
    "time": "integer",
    "severity_id": "integer",
    "severity": "text",
    "status_id": "integer",
    "status": "text",
    "status_code": "text",
    "metadata": {
        "version": "text",
        "uid": "text",
        "product": {"name": "text", "vendor_name": "text"},
        "log_name": "text",
        "log_provider": "text",
    },
    "actor": {"user": {"name": "text"}, "session": {"uid": "text"}},
    "src_endpoint": {"ip": "text", "hostname": "text", "port": "integer"},
    "dst_endpoint": {"ip": "text", "hostname": "text", "name": "text"},
    "raw_data": "text",
}
_MEMBERS: Mapping[int, Mapping[str, Any]] = {
    AUTHENTICATION: {
        **_COMMON,
        "user": {"name": "text"},
        "session": {"uid": "text"},
        "is_remote": "boolean",
        "unmapped": "unmapped",
    },
    DATASTORE_ACTIVITY: {
        **_COMMON,
        "type_id": "integer",
        "type": "text",
        "database": {"name": "text", "type_id": "integer", "type": "text"},
        "table": {"name": "text"},
        "query_info": {"query_string": "text"},
        "unmapped": "unmapped",
    },
}


def _arrow_type(spec: Any) -> Any:
    from .arrow import _pyarrow

    pa = _pyarrow()
    if isinstance(spec, Mapping):
        return pa.struct([pa.field(name, _arrow_type(kind)) for name, kind in spec.items()])
    types = {
        "text": pa.string(),
        "integer": pa.int64(),
        "boolean": pa.bool_(),
        "unmapped": pa.map_(pa.string(), pa.string()),
    }
    return types[spec]


def arrow_schema(class_uid: int) -> Any:
    """The Arrow schema of OCSF events of one class, as the OCSF Parquet sink writes them."""
    return _arrow_type(_MEMBERS[class_uid]).fields  # a struct's fields are the columns


def to_table(events: Iterable[AuditEvent], class_uid: int) -> Any:
    """The events of one OCSF class as a ``pyarrow.Table`` of :func:`arrow_schema`.

    Raises :class:`ValueError` for an event of another class: a Security Lake source
    holds one class, and its files must too.
    """
    from .arrow import _pyarrow

    pa = _pyarrow()
    rows = []
    for event in events:
        document = to_ocsf(event)
        if document["class_uid"] != class_uid:
            raise ValueError(f"an event of OCSF class {document['class_uid']}, not {class_uid}")
        document["unmapped"] = [
            (name, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
            for name, value in document["unmapped"].items()
        ]
        rows.append(document)
    return pa.Table.from_pylist(rows, schema=pa.schema(arrow_schema(class_uid)))
