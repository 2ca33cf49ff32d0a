"""The ``mariadb`` marker and fixture: tests that need the local MariaDB server.

Outside CI a missing server skips those tests with the reason; in CI (``CI=true``) the
server is part of the job, so its absence fails them instead of hiding the gap.
"""

from __future__ import annotations

import functools
import os

import mariadb_audit
import pytest

__all__ = ["mariadb"]


@functools.cache
def _availability() -> tuple[bool, str]:
    """Ask the server once per session; every marked test gets the same answer."""
    return mariadb_audit.availability()


def in_ci() -> bool:
    """CI services set ``CI=true``; there the server must be present."""
    return os.environ.get("CI", "").strip().lower() == "true"


def require_mariadb() -> None:
    """Skip the running test, or fail it in CI, when the server cannot be used."""
    ok, why = _availability()
    if ok:
        return
    message = f"MariaDB with server_audit not reachable: {why}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Apply :func:`require_mariadb` to every test marked ``@pytest.mark.mariadb``."""
    if item.get_closest_marker("mariadb") is not None:
        require_mariadb()


@pytest.fixture
def mariadb() -> dict[str, object]:
    """The server's connection parameters, for tests that ask for the fixture by name."""
    require_mariadb()
    return dict(mariadb_audit.connection_params())


#: The proofs whose printed figures are their result: the replay (events applied, refused,
#: the checksums), the data lake read by DuckDB, the AWS chain and the Lambda runtime.
FIGURES = ("test_replay_mariadb", "test_lake", "test_moto_chain", "test_lambda_runtime")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show what the proofs printed: those figures are their result, so they belong in
    the test output, not only in -s runs."""
    for report in terminalreporter.stats.get("passed", []):
        if any(name in report.nodeid for name in FIGURES) and report.capstdout.strip():
            terminalreporter.write_sep("-", f"figures of {report.nodeid}")
            terminalreporter.write_line(report.capstdout.rstrip())
