"""A private MariaDB server for one test module: its own datadir, socket, port and logs.

The change feed's proof needs what the shared server of :mod:`mariadb_audit` cannot give
without disturbing its other users: binary logging in ROW format (a server start option)
next to the ``server_audit`` log. So the proof starts a server of its own in a temporary
directory — ``mariadb-install-db`` for a fresh datadir, then ``mariadbd`` with both logs
— and removes it all afterwards. It starts in about a second and is kept small
(16 MiB buffer pool, 8 MiB redo log, no performance schema), because the machines that
run the suite are shared.

It never speaks to the machine's main server: it listens on 127.0.0.1 on a port above
33400 (within ``AUDITSYNC_PRIVATE_PORTS``, ``33411-33419``, where that is set) and on a
socket inside its own directory, and every connection it hands out goes through that
socket.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

try:
    import pymysql
except ImportError:  # availability() says so
    HAVE_PYMYSQL = False
else:
    HAVE_PYMYSQL = True

__all__ = ["PrivateMariaDB", "ServerFailed", "availability", "private_mariadb"]

PROGRAMS = ("mariadbd", "mariadb-install-db", "mariadb-binlog")
SEARCH_PATH = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")
PLUGIN_DIRS = ("/usr/lib/mysql/plugin", "/usr/lib64/mysql/plugin", "/usr/local/mysql/lib/plugin")


def _ports() -> range:
    """Ports above the range the brief leaves to the machine's own servers, or the range
    ``AUDITSYNC_PRIVATE_PORTS`` names (``33411-33419``) where sessions sharing the machine
    are each given their own."""
    chosen = os.environ.get("AUDITSYNC_PRIVATE_PORTS", "")
    first, dash, last = chosen.partition("-")
    if dash and first.isdigit() and last.isdigit() and int(first) <= int(last):
        return range(int(first), int(last) + 1)
    return range(33401, 39999)


PORTS = _ports()
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


class ServerFailed(RuntimeError):
    """The private server did not install, start or stop; the message carries its error log."""


def _program(name: str) -> str | None:
    """``mariadbd`` lives in sbin, which a non-root PATH often lacks."""
    found = shutil.which(name)
    if found:
        return found
    return next(
        (str(Path(d, name)) for d in SEARCH_PATH if os.access(Path(d, name), os.X_OK)), None
    )


def _plugin_dir() -> str | None:
    return next((d for d in PLUGIN_DIRS if Path(d, "server_audit.so").exists()), None)


def availability() -> tuple[bool, str]:
    """Whether a private server can be made here, and if not, why not (no side effects)."""
    if not HAVE_PYMYSQL:
        return False, "pymysql is not installed (the 'test' extra)"
    missing = [name for name in PROGRAMS if _program(name) is None]
    if missing:
        return False, f"{', '.join(missing)} not found (PATH and {', '.join(SEARCH_PATH)})"
    if _plugin_dir() is None:
        return False, f"server_audit.so not found in {', '.join(PLUGIN_DIRS)}"
    return True, "ok"


def _root_options() -> list[str]:
    """mariadbd refuses to run as root unless told to; CI runs as root."""
    return ["--user=root"] if os.geteuid() == 0 else []


def _install(datadir: Path) -> None:
    command = [
        str(_program("mariadb-install-db")),
        "--no-defaults",
        f"--datadir={datadir}",
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
        "--skip-name-resolve",
        *_root_options(),
        # Passed on to the bootstrap server: a small redo log, made once, not resized.
        "--innodb-log-file-size=8M",
        "--innodb-buffer-pool-size=16M",
    ]
    done = subprocess.run(command, capture_output=True, timeout=120, check=False)
    if done.returncode:
        output = (done.stdout + done.stderr).decode("utf-8", "replace")[-3000:]
        raise ServerFailed(f"mariadb-install-db failed ({done.returncode}):\n{output}")


_template: Path | None = None
_template_lock = threading.Lock()


def _datadir_template() -> Path:
    """A datadir installed once per process, copied for each server: on a busy machine
    mariadb-install-db takes seconds, a copy of its 26 MB a fraction of one. Removed when
    the process exits."""
    global _template
    with _template_lock:
        if _template is None or not _template.exists():
            directory = Path(tempfile.mkdtemp(prefix="auditsync-private-mariadb-template-"))
            try:
                _install(directory / "data")
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise
            atexit.register(shutil.rmtree, directory, True)
            _template = directory / "data"
        return _template


def _free_port(rng: random.Random) -> int:
    """A port nothing listens on now; the server may still lose the race, so we retry."""
    for _ in range(100):
        port = rng.choice(PORTS)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ServerFailed(f"no free port in {PORTS.start}..{PORTS.stop - 1}")


class PrivateMariaDB:
    """One private server, with ``server_audit`` logging to a file and a ROW binlog.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`). The audit
    settings are start options, so the log holds every session from the first one on;
    :meth:`audit_offset` and :meth:`audit_log` cut out the part a test made.
    """

    def __init__(
        self,
        *,
        audit_events: str = "CONNECT,QUERY,TABLE",
        query_log_limit: int = 1024,
        server_id: int = 1,
        extra_options: Sequence[str] = (),
    ) -> None:
        self.audit_events = audit_events
        #: The server's ``server_audit_query_log_limit``, which the feed must be told.
        self.query_log_limit = query_log_limit
        self.server_id = server_id
        self.extra_options = tuple(extra_options)
        self.directory: Path | None = None
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.version = ""
        self.hostname = ""
        #: mariadbd's own zone, which the audit log's timestamps are in (pass it as ``tz``).
        self.time_zone = ""

    # paths

    def _path(self, name: str) -> Path:
        if self.directory is None:
            raise ServerFailed("the server is not started")
        return self.directory / name

    @property
    def socket(self) -> Path:
        return self._path("mariadbd.sock")

    @property
    def audit_path(self) -> Path:
        return self._path("server_audit.log")

    @property
    def binlog_index(self) -> Path:
        return self._path("binlog.index")

    @property
    def error_log(self) -> Path:
        return self._path("error.log")

    # life cycle

    def __enter__(self) -> PrivateMariaDB:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        ok, why = availability()
        if not ok:
            raise ServerFailed(why)
        self.directory = Path(tempfile.mkdtemp(prefix="auditsync-private-mariadb-"))
        try:
            shutil.copytree(_datadir_template(), self._path("data"))
            rng = random.Random()
            for _ in range(5):
                self.port = _free_port(rng)
                if self._launch():
                    break
            else:
                raise ServerFailed(f"mariadbd would not start:\n{self._error_tail()}")
            with self.connect() as admin, admin.cursor() as cursor:
                cursor.execute(
                    "SELECT VERSION(), @@hostname, @@system_time_zone, @@log_bin,"
                    " @@server_audit_logging"
                )
                self.version, self.hostname, self.time_zone, log_bin, logging = cursor.fetchone()
            if not (log_bin and logging):
                raise ServerFailed(f"binlog {log_bin}, server_audit logging {logging}")
        except BaseException:
            self.stop()
            raise

    def _options(self) -> list[str]:
        return [
            str(_program("mariadbd")),
            "--no-defaults",
            *_root_options(),
            f"--datadir={self._path('data')}",
            f"--socket={self.socket}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={self._path('mariadbd.pid')}",
            f"--log-error={self.error_log}",
            f"--tmpdir={self.directory}",
            f"--plugin-dir={_plugin_dir()}",
            "--skip-name-resolve",
            "--character-set-server=utf8mb4",
            "--innodb-buffer-pool-size=16M",
            "--innodb-log-file-size=8M",
            "--innodb-use-native-aio=0",
            # Durability is not under test, and fsyncs are slow on a shared machine.
            "--innodb-flush-log-at-trx-commit=2",
            "--sync-binlog=0",
            "--innodb-doublewrite=0",
            "--performance-schema=OFF",
            "--query-cache-type=0",
            "--query-cache-size=0",
            "--max-connections=40",
            # Lock waits end sooner than the default 50 s: the workload records the failure.
            "--innodb-lock-wait-timeout=3",
            f"--log-bin={self._path('binlog')}",
            "--binlog-format=ROW",
            f"--server-id={self.server_id}",
            "--plugin-load-add=server_audit",
            "--server-audit-logging=ON",
            "--server-audit-output-type=file",
            f"--server-audit-file-path={self.audit_path}",
            f"--server-audit-events={self.audit_events}",
            f"--server-audit-query-log-limit={self.query_log_limit}",
            "--server-audit-file-rotate-size=1G",
            *self.extra_options,
        ]

    def _launch(self) -> bool:
        """Start mariadbd and wait for its socket; False if it lost the port to another."""
        self.error_log.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            self._options(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                if "Address already in use" in self._error_tail():
                    return False
                raise ServerFailed(f"mariadbd exited at start:\n{self._error_tail()}")
            if self.socket.exists():
                try:
                    self.connect(connect_timeout=2).close()
                    return True
                except pymysql.MySQLError:
                    pass
            time.sleep(0.05)
        tail = self._error_tail()
        raise ServerFailed(f"mariadbd did not answer in {START_TIMEOUT:.0f} s:\n{tail}")

    def _error_tail(self) -> str:
        try:
            return self.error_log.read_text("utf-8", "replace")[-3000:]
        except OSError:
            return "(no error log)"

    def stop(self) -> None:
        """Shut the server down (SIGTERM, then SIGKILL) and remove its directory."""
        process, self.process = self.process, None
        try:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(STOP_TIMEOUT)
        finally:
            if self.directory is not None:
                shutil.rmtree(self.directory, ignore_errors=True)
                self.directory = None

    # use

    def connect(self, **params: Any) -> pymysql.connections.Connection[Any]:
        """A connection through the server's own socket; root with no password by default."""
        settings: dict[str, Any] = {
            "unix_socket": str(self.socket),
            "user": "root",
            "password": "",
            "charset": "utf8mb4",
            "autocommit": True,
            "connect_timeout": 5,
            "read_timeout": 60,
            "write_timeout": 60,
            **params,
        }
        return pymysql.connect(**settings)

    def execute(self, *statements: str) -> None:
        """Run statements as root, autocommitted, on a connection of their own."""
        with self.connect() as admin, admin.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)

    def audit_offset(self) -> int:
        """Where the audit log ends now; the plugin writes whole records, so between
        statements this is the start of the next record."""
        return self.audit_path.stat().st_size

    def audit_log(self, start: int = 0, end: int | None = None) -> bytes:
        """The audit log's bytes from ``start`` (an :meth:`audit_offset`) to ``end``."""
        with self.audit_path.open("rb") as log:
            log.seek(start)
            return log.read() if end is None else log.read(end - start)

    def audit_settled(self, start: int = 0, timeout: float = 10.0) -> int:
        """Wait until every connection the log shows connecting after ``start`` has its
        DISCONNECT record, and return where the log ends then.

        The plugin writes a statement's record after the client has its answer, so a
        client that is done does not mean the log is; a connection's records are written
        in order, so its DISCONNECT means all of them are there.
        """
        deadline = time.monotonic() + timeout
        while True:
            end = self.audit_offset()
            open_connections: set[bytes] = set()
            for line in self.audit_log(start, end).splitlines():
                fields = line.split(b",", 7)
                if len(fields) > 6 and fields[6] == b"CONNECT":
                    open_connections.add(fields[4])
                elif len(fields) > 6 and fields[6] == b"DISCONNECT":
                    open_connections.discard(fields[4])
            if not open_connections:
                return end
            if time.monotonic() > deadline:
                raise ServerFailed(f"connections {sorted(open_connections)} never disconnected")
            time.sleep(0.02)

    def binlog_files(self) -> list[Path]:
        """The binary logs in order, as the server's index lists them."""
        names = self.binlog_index.read_text().split()
        return [Path(name) if os.path.isabs(name) else self._path(name) for name in names]

    def binlog_text(self) -> bytes:
        """``mariadb-binlog --verbose --base64-output=decode-rows`` over every binlog.

        Bytes, not text: string values are printed as the server stores them, which for
        binary columns is not UTF-8.
        """
        with self.connect() as admin, admin.cursor() as cursor:
            cursor.execute("FLUSH BINARY LOGS")  # the files read are closed, complete ones
        command = [
            str(_program("mariadb-binlog")),
            "--no-defaults",
            "--verbose",
            "--base64-output=decode-rows",
            *map(str, self.binlog_files()),
        ]
        done = subprocess.run(command, capture_output=True, timeout=120, check=False)
        if done.returncode:
            raise ServerFailed(f"mariadb-binlog failed: {done.stderr.decode(errors='replace')}")
        return done.stdout


@contextlib.contextmanager
def private_mariadb(**options: Any) -> Iterator[PrivateMariaDB]:
    """A started :class:`PrivateMariaDB`, stopped and removed when the block ends."""
    server = PrivateMariaDB(**options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
