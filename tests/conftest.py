"""Suite-wide settings, and the fixtures the sink and command tests share.

Hypothesis runs without deadlines (CI machines are slow and shared). Tests that need the
local PostgreSQL skip with the reason when it does not answer, except in CI (``CI=true``),
where its absence fails them instead of hiding the gap.
"""

import functools
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")

POSTGRES_DSN = os.environ.get(
    "AUDITSYNC_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test"
)


@functools.cache
def _postgres_unavailable() -> str | None:
    """Why the server cannot be used, or ``None``; asked once per session."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'auditsync[postgres]')"
    try:
        with psycopg.connect(POSTGRES_DSN, connect_timeout=5) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        return f"PostgreSQL not reachable at {POSTGRES_DSN!r}: {error}".strip()
    return None


@pytest.fixture
def postgres_dsn() -> str:
    """The connection string of a PostgreSQL that answers (else skip, or fail in CI)."""
    why = _postgres_unavailable()
    if why is not None:
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    return POSTGRES_DSN


WriteConcurrently = Callable[[Any, int, Callable[[int, int], Sequence[Any]]], list[BaseException]]


@pytest.fixture
def write_concurrently() -> WriteConcurrently:
    """``(sink, threads, events)``: each thread writes five overlapping batches through
    the one sink, ``events(count, start)`` making each; the errors they met."""

    def run(
        sink: Any, count: int, events: Callable[[int, int], Sequence[Any]]
    ) -> list[BaseException]:
        errors: list[BaseException] = []

        def write(worker: int) -> None:
            try:
                for batch in range(5):
                    sink.write(events(10, worker * 25 + batch * 10))
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return errors

    return run
