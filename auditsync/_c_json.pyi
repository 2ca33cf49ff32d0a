from collections.abc import Callable
from datetime import tzinfo
from typing import Any

from ._events import AuditEvent, Dialect, Origin, OriginDerived

FORMS: tuple[str, ...]

def configure(
    event_type: type[AuditEvent],
    event_fields: tuple[tuple[str, int], ...],
    event_members: tuple[str, ...],
    origin_type: type[Origin],
    origin_fields: tuple[tuple[str, int], ...],
    origin_members: tuple[str, ...],
    derived_type: type[OriginDerived],
    derived_fields: tuple[tuple[str, int], ...],
    derived_members: tuple[str, ...],
    derive: Callable[[Any], OriginDerived],
    derived_from: str,
    key_record: tuple[str, ...],
    key_place: tuple[str, ...],
    dialects: tuple[Dialect, Dialect, Dialect, Dialect],
    utc: tzinfo,
    blake2b: Callable[..., Any],
    digest_size: int,
) -> None: ...
def event_json(event: AuditEvent) -> bytes | None: ...
def json_lines(events: list[Any]) -> bytes | None: ...
