"""Events as Elastic Common Schema documents, for Elasticsearch and OpenSearch: a pure mapping.

Connection records are ``event.category: authentication`` (``start`` for a logon,
``end`` for a logoff) and everything else ``database``; the return code decides
``event.outcome`` (``success`` for 0, ``failure`` otherwise, ``unknown`` where the
record has none) — as AWS's SIEM on OpenSearch solution maps this log.

ECS has no field set for databases, so what is the database's own (its name, the
statement, the table, the ids the server gives connections and queries) goes under the
custom namespace ``auditsync``, which ECS leaves to users (docs/sinks.md lists it). Text
that is not UTF-8 is written readably, its exact bytes beside it as ``<member>_base64``
under ``auditsync``, the convention of the JSON form.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from ._auditlog import format_line
from ._events import AuditEvent, client_address
from ._json import event_to_dict

__all__ = ["ECS_VERSION", "to_ecs"]

ECS_VERSION = "8.11.0"

#: Connection records: operation → event.type.
_AUTHENTICATION: Mapping[str, str] = {
    "CONNECT": "start",
    "FAILED_CONNECT": "start",
    "CHANGEUSER": "start",
    "PROXY_CONNECT": "start",
    "DISCONNECT": "end",
}
#: Table records that change the table (ECS type ``change``); READ is an ``access``.
_CHANGES = frozenset(("WRITE", "CREATE", "DROP", "ALTER", "RENAME"))


#: A TLS version as OpenSSL names it (``TLSv1.3``): ECS's ``tls.version_protocol`` and
#: ``tls.version``.
_TLS_VERSION = re.compile(r"(TLS|SSL|DTLS|QUIC)v(\d+)(\.\d+)?", re.ASCII)


def _tls(version: str | None) -> dict[str, str] | None:
    """ECS's ``tls`` of a MariaDB Enterprise 12.3 TLS version: ``TLSv1.3`` is ``tls`` 1.3,
    OpenSSL's ``TLSv1`` is 1.0. None for no version, or one of another shape."""
    match = _TLS_VERSION.fullmatch(version or "")
    if match is None:
        return None
    protocol, major, minor = match.groups()
    return {"version_protocol": protocol.lower(), "version": major + (minor or ".0")}


def _outcome(retcode: int | None) -> str:
    if retcode is None:
        return "unknown"
    return "success" if retcode == 0 else "failure"


def _event_type(event: AuditEvent) -> str:
    operation = event.operation
    if operation in _AUTHENTICATION:
        return _AUTHENTICATION[operation]
    if operation in _CHANGES:
        return "change"
    statement = event.statement
    if statement is not None and statement.is_write:  # rows or definitions
        return "change"
    return "access"


def to_ecs(event: AuditEvent) -> dict[str, Any]:
    """The event as one ECS document: a JSON-ready dict of nested objects."""
    document = event_to_dict(event)
    operation = event.operation
    authentication = operation in _AUTHENTICATION
    retcode = event.retcode
    client, port = client_address(document["host"], event.dialect)
    source: dict[str, Any] = {"address": client}
    try:
        source["ip"] = str(ipaddress.ip_address(client))
    except ValueError:
        source["domain"] = client
    if port is not None:
        source["port"] = port
    database: dict[str, Any] = {"name": document["database"]}
    if operation == "QUERY":
        database["statement"] = document["object"]
    elif not authentication:
        database["table"] = document["object"]
    own: dict[str, Any] = {
        "database": database,
        "operation": operation,
        "connection_id": event.connection_id,
        "query_id": event.query_id,
        "retcode": retcode,
        "connection_type": document["connection_type"],
        "truncated": document["truncated"],
        "dialect": document["dialect"],
        "tls_version": document["tls_version"],
        "origin": document["origin"],
    }
    if authentication and document["object"]:
        own["object"] = document["object"]  # the proxied user, the TLS version
    own.update((name, value) for name, value in document.items() if name.endswith("_base64"))
    result: dict[str, Any] = {
        "@timestamp": document["timestamp"],
        "ecs": {"version": ECS_VERSION},
        "event": {
            "kind": "event",
            "id": document["key"],
            "category": ["authentication" if authentication else "database"],
            "type": [_event_type(event)],
            "action": operation.lower(),
            "outcome": _outcome(retcode),
            "dataset": "auditsync.server_audit",
            "original": format_line(event)
            .encode("utf-8", "surrogateescape")
            .decode("utf-8", "replace"),
        },
        "user": {"name": document["username"]},
        "source": source,
        "host": {"name": document["serverhost"]},
        "related": {"user": [document["username"]]},
        "auditsync": own,
    }
    if "ip" in source:
        result["related"]["ip"] = [source["ip"]]
    tls = _tls(event.tls_version)
    if tls is not None:
        result["tls"] = tls
    if retcode:
        result["error"] = {"code": str(retcode)}
    resource = event.origin.rds if event.origin else None
    if resource is not None:
        result["cloud"] = {"provider": "aws", "service": {"name": "rds"}}
        if resource.kind == "instance":
            result["cloud"]["instance"] = {"name": resource.identifier}
        own["rds"] = {resource.kind: resource.identifier}
    return result
