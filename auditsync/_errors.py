"""The errors auditsync raises on bad input.

Every error is an :class:`AuditSyncError`, itself a :class:`ValueError`, so callers can
catch the family or the builtin. Each says what was wrong and where: ``where`` names the
input (a file and line, a Kinesis record, a CloudWatch event id) and ``offset`` points
into it, the way tomli's errors point at a line and column.
"""

from __future__ import annotations

__all__ = ["AuditSyncError", "DeliveryError", "EnvelopeError", "LineError", "PayloadError"]


class AuditSyncError(ValueError):
    """Bad input: a payload, message or line auditsync cannot read."""

    def __init__(self, message: str, *, where: str | None = None, offset: int | None = None):
        self.reason = message
        self.where = where
        self.offset = offset
        super().__init__(self._render())

    def _render(self) -> str:
        text = self.reason
        if self.offset is not None:
            text += f" (at offset {self.offset})"
        if self.where:
            text += f" [in {self.where}]"
        return text


class PayloadError(AuditSyncError):
    """A payload that is not valid base64, gzip, zlib or JSON, or that inflates too far."""


class EnvelopeError(AuditSyncError):
    """A CloudWatch Logs subscription message that is not valid; ``field`` names the culprit."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        where: str | None = None,
        offset: int | None = None,
    ):
        self.field = field
        super().__init__(message, where=where, offset=offset)


class LineError(AuditSyncError):
    """A line that is not a server_audit record; ``offset`` is where reading failed."""

    def __init__(
        self,
        message: str,
        *,
        line: str = "",
        where: str | None = None,
        offset: int | None = None,
    ):
        self.line = line
        super().__init__(message, where=where, offset=offset)


class DeliveryError(RuntimeError):
    """A sink failed to take a batch: not bad input, and a retry may well succeed.

    The sink's own exception is the ``__cause__``. Raised by the adapters whose retry is
    the caller's (a subscription-filter Lambda, the command line).
    """
