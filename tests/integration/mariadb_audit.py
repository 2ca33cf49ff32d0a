"""Access to the local MariaDB server and its ``server_audit`` plugin, for tests.

Tests that need real audit lines share one server, and the audit settings are global to
that server, so every use goes through :func:`audit_logging`: it takes a file lock,
installs the plugin if it is missing, points the log at the caller's file, and puts every
setting back (and uninstalls what it installed) when the caller is done.

The server is the local one (unix socket, else 127.0.0.1:3306), user ``root`` with an
empty password. ``AUDITSYNC_MARIADB_SOCKET``, ``AUDITSYNC_MARIADB_HOST``,
``AUDITSYNC_MARIADB_PORT``, ``AUDITSYNC_MARIADB_USER`` and ``AUDITSYNC_MARIADB_PASSWORD``
point elsewhere when needed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import pymysql
except ImportError:  # the stored-corpus tests run without it; availability() says so
    HAVE_PYMYSQL = False
else:
    HAVE_PYMYSQL = True

__all__ = [
    "LOCK_PATH",
    "AuditSession",
    "ServerUnavailable",
    "audit_logging",
    "availability",
    "connect",
    "connection_params",
    "exclusive",
]

LOCK_PATH = Path("/tmp/auditsync-mariadb-audit.lock")
SOCKET_CANDIDATES = (
    "/run/mysqld/mysqld.sock",
    "/var/run/mysqld/mysqld.sock",
    "/tmp/mysql.sock",
)
#: Settings that are never saved or restored: logging is switched last, and writing
#: ``file_rotate_now`` rotates the log.
_NOT_RESTORED = frozenset({"server_audit_logging", "server_audit_file_rotate_now"})
_LOCK_TIMEOUT = 120.0


class ServerUnavailable(RuntimeError):
    """The server, or its server_audit plugin, cannot be used; the message says why."""


@functools.cache
def connection_params() -> dict[str, Any]:
    """Where the server is: the first unix socket that exists, else TCP on localhost."""
    env = os.environ
    params: dict[str, Any] = {
        "user": env.get("AUDITSYNC_MARIADB_USER", "root"),
        "password": env.get("AUDITSYNC_MARIADB_PASSWORD", ""),
    }
    sock = env.get("AUDITSYNC_MARIADB_SOCKET")
    if sock is None and "AUDITSYNC_MARIADB_HOST" not in env:
        sock = next((s for s in SOCKET_CANDIDATES if os.path.exists(s)), None)
    if sock:
        params["unix_socket"] = sock
    else:
        params["host"] = env.get("AUDITSYNC_MARIADB_HOST", "127.0.0.1")
        params["port"] = int(env.get("AUDITSYNC_MARIADB_PORT", "3306"))
    return params


def connect(**overrides: Any) -> pymysql.connections.Connection[Any]:
    """A new autocommit connection; ``overrides`` replace the default parameters."""
    if not HAVE_PYMYSQL:
        raise ServerUnavailable("pymysql is not installed")
    params = {
        **connection_params(),
        "charset": "utf8mb4",
        "autocommit": True,
        "connect_timeout": 5,
        "read_timeout": 30,
        "write_timeout": 30,
        **overrides,
    }
    return pymysql.connect(**params)


def availability() -> tuple[bool, str]:
    """Whether the server answers and can load server_audit, and if not, why not.

    Cheap and side-effect free: it looks at the plugin list, it does not install anything.
    """
    if not HAVE_PYMYSQL:
        return False, "pymysql is not installed"
    try:
        conn = connect()
    except pymysql.MySQLError as exc:
        params = connection_params()
        where = params.get("unix_socket") or f"{params['host']}:{params['port']}"
        return False, f"cannot connect to {where}: {exc}"
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT PLUGIN_STATUS FROM information_schema.ALL_PLUGINS"
                " WHERE PLUGIN_NAME = 'SERVER_AUDIT'"
            )
            row = cur.fetchone()
            if row is None:
                return False, "the server_audit plugin is not available on this server"
            cur.execute("SELECT CURRENT_USER()")
            user = cur.fetchone()[0]
            cur.execute("SHOW GRANTS")
            grants = " ".join(r[0] for r in cur.fetchall())
            if "ALL PRIVILEGES ON *.*" not in grants or "WITH GRANT OPTION" not in grants:
                return False, f"{user} lacks the privileges to configure server_audit"
    except pymysql.MySQLError as exc:
        return False, f"cannot inspect the server: {exc}"
    finally:
        conn.close()
    return True, "ok"


_lock_guard = threading.RLock()
_lock_depth = 0


@contextlib.contextmanager
def exclusive(timeout: float = _LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the server's audit settings alone: an fcntl lock on :data:`LOCK_PATH`.

    Parallel test runs take turns. Re-entrant within a process, so a caller holding it
    (to create and drop its objects unlogged) can still open :func:`audit_logging`.
    """
    global _lock_depth
    with _lock_guard:
        if _lock_depth:
            _lock_depth += 1
            try:
                yield
            finally:
                _lock_depth -= 1
            return
        fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() > deadline:
                        raise ServerUnavailable(
                            f"{LOCK_PATH} stayed locked for {timeout:.0f} s"
                        ) from exc
                    time.sleep(0.05)
            _lock_depth = 1
            try:
                yield
            finally:
                _lock_depth = 0
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _prepare_log_file(path: Path) -> None:
    """Create the log file writable by all, as mariadbd runs under its own user."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(exist_ok=True)
    with contextlib.suppress(PermissionError):
        path.chmod(0o666)


def _sql_value(value: str | int | bool) -> str | int:
    """A value for ``SET GLOBAL``: booleans as ON/OFF, the rest as given."""
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    return value


@dataclass
class AuditSession:
    """The live session :func:`audit_logging` yields: an admin connection and the log."""

    admin: pymysql.connections.Connection[Any]
    log_path: Path
    installed: bool
    version: str
    hostname: str
    #: The zone of mariadbd's process, which the plugin's ``localtime_r`` uses (the
    #: session ``@@time_zone`` does not matter to the log).
    time_zone: str

    def set(self, name: str, value: str | int | bool) -> None:
        """Change one ``server_audit_*`` setting for the rest of the session."""
        name = name if name.startswith("server_audit_") else f"server_audit_{name}"
        with self.admin.cursor() as cur:
            cur.execute(f"SET GLOBAL {name} = %s", (_sql_value(value),))

    def get(self, name: str) -> str:
        """The current value of one ``server_audit_*`` setting."""
        name = name if name.startswith("server_audit_") else f"server_audit_{name}"
        with self.admin.cursor() as cur:
            cur.execute("SHOW GLOBAL VARIABLES LIKE %s", (name,))
            row = cur.fetchone()
        if row is None:
            raise KeyError(name)
        return str(row[1])

    def switch_file(self, path: Path) -> None:
        """Send the following records to another file (the plugin reopens its log)."""
        _prepare_log_file(path)
        self.set("file_path", str(path))
        self._check_logging(path)
        self.log_path = path

    def _check_logging(self, path: Path) -> None:
        if self.get("logging") != "ON":
            raise ServerUnavailable(
                f"server_audit could not open {path}: is its directory reachable"
                " by the server's user (mysqld usually runs as 'mysql')?"
            )


def _saved_settings(cur: Any) -> dict[str, str]:
    cur.execute("SHOW GLOBAL VARIABLES LIKE 'server\\_audit\\_%'")
    return {name: value for name, value in cur.fetchall() if name not in _NOT_RESTORED}


@contextlib.contextmanager
def audit_logging(
    log_path: str | os.PathLike[str],
    *,
    events: str = "CONNECT,QUERY,TABLE",
    query_log_limit: int | None = None,
    output_type: str = "file",
    settings: Mapping[str, str | int | bool] | None = None,
    lock_timeout: float = _LOCK_TIMEOUT,
) -> Iterator[AuditSession]:
    """Log to ``log_path`` while the block runs, then put the server back as it was.

    The server writes the file itself, so its directory must be reachable by the server's
    user (a world-writable temporary directory is). ``settings`` are further
    ``server_audit_*`` values, with or without the prefix.
    """
    path = Path(log_path).absolute()
    with exclusive(lock_timeout):
        admin = connect()
        installed = False
        saved: dict[str, str] = {}
        logging_was = "OFF"
        try:
            with admin.cursor() as cur:
                cur.execute(
                    "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS"
                    " WHERE PLUGIN_NAME = 'SERVER_AUDIT'"
                )
                row = cur.fetchone()
                if row is None or row[0] != "ACTIVE":
                    cur.execute("INSTALL SONAME 'server_audit'")
                    installed = True
                saved = _saved_settings(cur)
                cur.execute("SELECT @@global.server_audit_logging")
                logging_was = "ON" if cur.fetchone()[0] else "OFF"
                cur.execute("SET GLOBAL server_audit_logging = OFF")
                cur.execute("SELECT VERSION(), @@hostname, @@system_time_zone")
                version, hostname, system_tz = cur.fetchone()
            session = AuditSession(
                admin=admin,
                log_path=path,
                installed=installed,
                version=version,
                hostname=hostname,
                time_zone=system_tz,
            )
            _prepare_log_file(path)
            wanted: dict[str, str | int | bool] = {
                "file_path": str(path),
                "output_type": output_type,
                "events": events,
                "file_rotate_size": 1 << 40,
                "incl_users": "",
                "excl_users": "",
            }
            if query_log_limit is not None:
                wanted["query_log_limit"] = query_log_limit
            wanted.update(settings or {})
            for name, value in wanted.items():
                session.set(name, value)
            session.set("logging", True)
            if output_type == "file":
                session._check_logging(path)
            yield session
        finally:
            _restore(admin, saved, logging_was, installed)


def _restore(
    admin: pymysql.connections.Connection[Any],
    saved: Mapping[str, str],
    logging_was: str,
    installed: bool,
) -> None:
    """Logging off, every saved setting back, then the plugin out if we put it in.

    An interrupted caller may leave the admin connection broken; a fresh one does then.
    """
    try:
        admin.ping()
    except pymysql.MySQLError:
        admin.close()
        admin = connect()
    try:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.PLUGINS"
                " WHERE PLUGIN_NAME = 'SERVER_AUDIT' AND PLUGIN_STATUS = 'ACTIVE'"
            )
            if cur.fetchone()[0]:
                cur.execute("SET GLOBAL server_audit_logging = OFF")
                for name, value in saved.items():
                    restored = int(value) if value.isdigit() else value
                    cur.execute(f"SET GLOBAL {name} = %s", (restored,))
                if installed:
                    cur.execute("UNINSTALL SONAME 'server_audit'")
                elif logging_was == "ON":
                    cur.execute("SET GLOBAL server_audit_logging = ON")
    finally:
        admin.close()
