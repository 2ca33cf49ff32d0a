from datetime import tzinfo
from typing import Any

from ._events import AuditEvent, Dialect, Origin

READ_FIELDS: tuple[str, ...]

def configure(
    event_type: type[AuditEvent],
    defaults: tuple[tuple[str, Any], ...],
    origin_type: type[Origin],
    origin_fields: tuple[str, ...],
    dialects: tuple[Dialect, Dialect, Dialect, Dialect],
    utc: tzinfo,
) -> None: ...
def parse_line(
    text: str,
    dialect: Dialect | None,
    tz: tzinfo,
    origin: Origin | None,
) -> AuditEvent | None: ...
def read_log_events(
    items: list[Any],
    origin_fields: tuple[Any, ...],
    dialect: Dialect,
    tz: tzinfo,
) -> tuple[list[AuditEvent | Origin], int] | None: ...
def read_lines(
    texts: list[str | bytes],
    numbers: list[int | None],
    origin_fields: tuple[Any, ...],
    dialect: Dialect,
    tz: tzinfo,
) -> tuple[list[AuditEvent | Origin], int] | None: ...
