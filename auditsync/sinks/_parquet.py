"""Parquet files in Hive-style partitions, for Athena, DuckDB, pandas and polars.

:class:`ParquetSink` writes events in the schema of :mod:`auditsync.arrow` under
``dt=YYYY-MM-DD/hour=HH/`` (UTC, from the event's timestamp); the OCSF sink in
:mod:`auditsync.ocsf` shares the writer, :class:`PartitionedWriter`.

A sink must take a batch whole or raise, so nothing is held back between writes: every
``write`` writes its files before it returns. Each file's name is a digest of the keys
of its rows, so a batch written again writes the same names and overwrites its files
instead of adding copies.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import hashlib
import importlib
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import ocsf
from .._events import AuditEvent
from ..arrow import _pyarrow, to_table
from ._base import Refused, Stored
from ._sqlite import sql_refusal

__all__ = ["OcsfParquetSink", "ParquetSink", "PartitionedWriter"]

#: Rows of one file at most, and its size at most (before compression, roughly).
MAX_ROWS = 100_000
MAX_BYTES = 128 * 1024 * 1024
# What a row costs beside its query text, for the size estimate.
_ROW_OVERHEAD = 200


class PartitionedWriter:
    """Writes rows to ``<root>/<partition>/part-<digest>.parquet`` on a pyarrow filesystem.

    ``root`` is a local directory (created if missing), an URI that pyarrow knows
    (``s3://bucket/prefix``), or, with ``filesystem``, a path inside that filesystem.
    A local file is written under a temporary name and renamed, so a reader never sees
    half of one; object stores make a whole object visible at once anyway.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        filesystem: Any = None,
        compression: str = "zstd",
        max_rows: int = MAX_ROWS,
        max_bytes: int = MAX_BYTES,
    ):
        _pyarrow()
        fs = importlib.import_module("pyarrow.fs")
        self._parquet = importlib.import_module("pyarrow.parquet")
        self._missing = fs.FileType.NotFound
        path = os.fspath(root)
        if filesystem is None:
            if "://" in path:
                filesystem, path = fs.FileSystem.from_uri(path)
            else:
                filesystem, path = fs.LocalFileSystem(), os.path.abspath(path)
        self.filesystem = filesystem
        self.root = path.rstrip("/")
        self._local = filesystem.type_name == "local"
        self.compression = compression
        if max_rows < 1 or max_bytes < 1:
            raise ValueError("max_rows and max_bytes must be at least 1")
        self.max_rows = max_rows
        self.max_bytes = max_bytes

    def write(
        self,
        partition: str,
        events: Sequence[AuditEvent],
        table: Callable[[Sequence[AuditEvent]], Any],
    ) -> Stored:
        """Write ``table(chunk)`` for each chunk of ``events`` into ``partition``.

        A file's name is the digest of its keys, so a file that was there already held
        these very events: they count as present, the others as new.
        """
        new = present = 0
        for chunk in self._chunks(events):
            digest = hashlib.blake2b(digest_size=16)
            for event in chunk:
                digest.update(event.key.encode("utf-8", "surrogatepass") + b"\n")
            directory = f"{self.root}/{partition}"
            path = f"{directory}/part-{digest.hexdigest()}.parquet"
            if self.filesystem.get_file_info(path).type == self._missing:
                new += len(chunk)
            else:
                present += len(chunk)
            self._write(table(chunk), directory, path)
        return Stored(new, present)

    def _chunks(self, events: Sequence[AuditEvent]) -> list[Sequence[AuditEvent]]:
        chunks: list[Sequence[AuditEvent]] = []
        start = size = 0
        for index, event in enumerate(events):
            cost = len(event.object) + _ROW_OVERHEAD
            if index > start and (index - start >= self.max_rows or size + cost > self.max_bytes):
                chunks.append(events[start:index])
                start, size = index, 0
            size += cost
        if start < len(events):
            chunks.append(events[start:])
        return chunks

    def _write(self, table: Any, directory: str, path: str) -> None:
        self.filesystem.create_dir(directory, recursive=True)
        if not self._local:
            self._parquet.write_table(
                table, path, filesystem=self.filesystem, compression=self.compression
            )
            return
        temporary = f"{directory}/.{uuid.uuid4().hex}.tmp"
        try:
            self._parquet.write_table(
                table, temporary, filesystem=self.filesystem, compression=self.compression
            )
            self.filesystem.move(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                self.filesystem.delete_file(temporary)
            raise


def hive_partition(event: AuditEvent) -> str:
    """``dt=YYYY-MM-DD/hour=HH`` of the event's time in UTC."""
    moment = event.timestamp
    return f"dt={moment:%Y-%m-%d}/hour={moment:%H}"


class _PartitionedSink(abc.ABC):
    """What both Parquet sinks share: events whose ids fit no Parquet integer refused
    after the rest is written, the rest grouped by a partition and written a group at a
    time through one :class:`PartitionedWriter`, and what each group stored summed."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        filesystem: Any = None,
        compression: str = "zstd",
        max_rows: int = MAX_ROWS,
        max_bytes: int = MAX_BYTES,
    ):
        self.writer = PartitionedWriter(
            root,
            filesystem=filesystem,
            compression=compression,
            max_rows=max_rows,
            max_bytes=max_bytes,
        )

    @abc.abstractmethod
    def _partition(self, event: AuditEvent) -> Any:
        """The sortable key of the group *event* is written in."""

    @abc.abstractmethod
    def _write_group(self, partition: Any, group: list[AuditEvent]) -> Stored:
        """Write one partition's events; what was new and what was there."""

    def write(self, events: Sequence[AuditEvent]) -> Stored:
        """Write the batch's files, one or more per partition it touches."""
        partitions: dict[Any, list[AuditEvent]] = {}
        refused: list[AuditEvent] = []
        reasons: dict[str, str] = {}
        for event in events:
            reason = sql_refusal(event)
            if reason is not None:
                refused.append(event)
                reasons[event.key] = reason
                continue
            partitions.setdefault(self._partition(event), []).append(event)
        new = present = 0
        for partition, group in sorted(partitions.items()):
            stored = self._write_group(partition, group)
            new, present = new + stored.new, present + stored.present
        if refused:
            raise Refused(
                refused, "an id does not fit a 64-bit integer", reasons, Stored(new, present)
            )
        return Stored(new, present)

    def close(self) -> None:  # noqa: B027 - nothing to close, on purpose
        """Nothing is held between writes: every file is complete when ``write`` returns."""

    def __enter__(self) -> _PartitionedSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ParquetSink(_PartitionedSink):
    """Events as Parquet files under ``dt=YYYY-MM-DD/hour=HH/`` (see docs/sinks.md).

    Idempotency: an event's partition follows from its timestamp, and a file's name from
    the keys it holds, so a batch delivered again overwrites its own files. A batch
    delivered again with *other* events beside (Kinesis retries from the failed record
    on) writes new files, so within a partition a key may be stored twice: readers keep
    one row per ``key`` (:func:`auditsync.arrow.read_events` does).

    An id beyond 64 bits fits no Parquet integer: such events are refused after the
    rest of the batch is written.
    """

    def _partition(self, event: AuditEvent) -> str:
        return hive_partition(event)

    def _write_group(self, partition: str, group: list[AuditEvent]) -> Stored:
        return self.writer.write(partition, group, to_table)


class OcsfParquetSink(_PartitionedSink):
    """OCSF events as Parquet in the layout of Amazon Security Lake's custom sources.

    Security Lake takes one OCSF class per custom source, each under its own location, in
    ``region=<region>/accountId=<account>/eventDay=<YYYYMMDD>/`` partitions. ``sources``
    names each class's location under ``root`` (the defaults are below; use the ones
    Security Lake gave your custom sources, e.g. ``ext/rds-audit-auth``). Files are named
    and retried as in :class:`ParquetSink`.
    """

    #: Where each class goes under ``root`` unless ``sources`` says otherwise.
    SOURCES: Mapping[int, str] = {
        ocsf.AUTHENTICATION: "ext/auditsync-authentication",
        ocsf.DATASTORE_ACTIVITY: "ext/auditsync-datastore-activity",
    }

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        account_id: str,
        region: str,
        sources: Mapping[int, str] | None = None,
        filesystem: Any = None,
        compression: str = "zstd",
        max_rows: int = MAX_ROWS,
        max_bytes: int = MAX_BYTES,
    ):
        super().__init__(
            root,
            filesystem=filesystem,
            compression=compression,
            max_rows=max_rows,
            max_bytes=max_bytes,
        )
        self.sources = dict(self.SOURCES) | dict(sources or {})
        self._place = f"region={region}/accountId={account_id}"

    def _partition(self, event: AuditEvent) -> tuple[int, str]:
        class_uid = ocsf.ocsf_class(event)
        day = f"{self.sources[class_uid]}/{self._place}/eventDay={event.timestamp:%Y%m%d}"
        return class_uid, day

    def _write_group(self, partition: tuple[int, str], group: list[AuditEvent]) -> Stored:
        class_uid, day = partition
        group.sort(key=lambda event: event.timestamp)  # Security Lake wants files in time order
        return self.writer.write(day, group, functools.partial(ocsf.to_table, class_uid=class_uid))
