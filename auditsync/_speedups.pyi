from datetime import datetime, tzinfo
from typing import Any

from ._events import AuditEvent, Dialect, Origin

def configure(
    event_type: type[AuditEvent],
    event_slots: tuple[Any, ...],
    origin_type: type[Origin],
    origin_slots: tuple[Any, ...],
    dialects: tuple[Dialect, Dialect, Dialect, Dialect],
    utc: tzinfo,
) -> None: ...
def parse_line(
    text: str,
    dialect: Dialect | None,
    tz: tzinfo,
    cache: dict[str, datetime],
    origin: Origin | None,
) -> AuditEvent | None: ...
def read_log_events(
    items: list[Any],
    origin_fields: tuple[Any, ...],
    dialect: Dialect,
    tz: tzinfo,
    cache: dict[str, datetime],
) -> tuple[list[AuditEvent | Origin], int] | None: ...
def read_lines(
    texts: list[str | bytes],
    numbers: list[int | None],
    origin_fields: tuple[Any, ...],
    dialect: Dialect,
    tz: tzinfo,
    cache: dict[str, datetime],
) -> tuple[list[AuditEvent | Origin], int] | None: ...
def event_json(event: AuditEvent) -> bytes | None: ...
def json_lines(events: list[Any]) -> bytes | None: ...
def blake2b_128(data: bytes) -> str: ...
