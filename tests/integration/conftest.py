"""The ``mariadb`` marker and fixtures: tests that need a real MariaDB server.

Most use the local server (``mariadb``); those that need start options the local server
must not be given (a ROW binlog) start a private one (``private_server``), and need its
programs rather than a running server. Outside CI what is missing skips those tests with
the reason; in CI (``CI=true``) the server is part of the job, so its absence fails them
instead of hiding the gap.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator

import mariadb_audit
import private_mariadb
import pytest

__all__ = ["mariadb", "private_server"]


@functools.cache
def _availability() -> tuple[bool, str]:
    """Ask the server once per session; every marked test gets the same answer."""
    return mariadb_audit.availability()


def in_ci() -> bool:
    """CI services set ``CI=true``; there the server must be present."""
    return os.environ.get("CI", "").strip().lower() == "true"


def _require(ok: bool, message: str) -> None:
    if ok:
        return
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_mariadb() -> None:
    """Skip the running test, or fail it in CI, when the server cannot be used."""
    ok, why = _availability()
    _require(ok, f"MariaDB with server_audit not reachable: {why}")


def require_private_mariadb() -> None:
    """Skip the running test, or fail it in CI, when no private server can be started."""
    ok, why = private_mariadb.availability()
    _require(ok, f"cannot start a private MariaDB server: {why}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Apply :func:`require_mariadb` to every test marked ``@pytest.mark.mariadb``, or
    :func:`require_private_mariadb` to those marked ``mariadb(private=True)``."""
    marker = item.get_closest_marker("mariadb")
    if marker is None:
        return
    if marker.kwargs.get("private"):
        require_private_mariadb()
    else:
        require_mariadb()


@pytest.fixture
def mariadb() -> dict[str, object]:
    """The server's connection parameters, for tests that ask for the fixture by name."""
    require_mariadb()
    return dict(mariadb_audit.connection_params())


@pytest.fixture(scope="module")
def private_server() -> Iterator[private_mariadb.PrivateMariaDB]:
    """A private server for the module (ROW binlog, server_audit to a file), removed after."""
    require_private_mariadb()
    with private_mariadb.private_mariadb() as server:
        yield server


#: The proofs whose printed figures are their result: the replay (events applied, refused,
#: the checksums), the workload's transactions and the binlog's, the change feed against
#: the binlog, the data lake read by DuckDB, the AWS chain and the Lambda runtime.
FIGURES = (
    "test_replay_mariadb",
    "test_binlog_oracle",
    "test_changes_binlog",
    "test_lake",
    "test_moto_chain",
    "test_lambda_runtime",
)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show what the proofs printed: those figures are their result, so they belong in
    the test output, not only in -s runs."""
    for report in terminalreporter.stats.get("passed", []):
        if any(name in report.nodeid for name in FIGURES) and report.capstdout.strip():
            terminalreporter.write_sep("-", f"figures of {report.nodeid}")
            terminalreporter.write_line(report.capstdout.rstrip())
