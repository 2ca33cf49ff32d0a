"""The docs' examples run, page by page, top to bottom, so they cannot rot.

Python blocks run in one namespace per page. Shell blocks — fenced ``sh`` (or ``shell``,
``bash``, ``console``: one rule for all) — run with bash, in order, in a scratch
directory holding the files the examples name, made from ``examples/`` (:func:`prepare`),
with this interpreter's ``auditsync`` first on the PATH. A shell block that cannot run
here (it needs AWS, a package index, a MariaDB server, or minutes) says so on the line
before it, ``<!-- not run: why -->``, and is listed in :data:`NOT_RUN`, so that the list
only grows on purpose. Every fenced block names its kind, so no example hides from this.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditsync import format_line, parse_line
from auditsync._pipeline import Lines
from auditsync._sources import read_file

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
EXAMPLES = REPO / "examples"
FENCE = re.compile(r"^```(?P<kind>[^\n]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
SHELL_KINDS = frozenset({"sh", "shell", "bash", "console"})
KINDS = SHELL_KINDS | {"python", "text", "sql"}
NOT_RUN_MARK = re.compile(r"<!-- not run: (?P<reason>[^\n]+?) -->\n\Z")

#: The shell blocks that do not run here, by page and first line; the page says why.
NOT_RUN = {
    (
        "cli.md",
        "aws s3 cp s3://audit-bucket/2024/01/31/14/audit-1-2024-01-31-14-02-07-uuid - "
        "| auditsync decode",
    ),
    ("index.md", "pip install auditsync              # the core"),
    ("lambda.md", "pip install awslambdaric 'auditsync[postgres]'"),
    ("performance.md", "python benchmarks/run.py            # the full run, about 5 minutes"),
    (
        "release.md",
        ".ci/build-wheel --quick                 "
        "# about 2 min: cp311, cp312, cp313 x86_64, the C parts' tests",
    ),
    ("release.md", "ls dist/    # 1 .tar.gz, 6 .whl: cp311, cp312, cp313 x (x86_64, aarch64)"),
    ("release.md", "pipx run twine upload --repository testpypi dist/*"),
    ("release.md", "pip install auditsync && auditsync --version    # line reader: C extension"),
    (
        "server-observations.md",
        "python tests/golden/capture.py tests/data/golden/mariadb-10.11   "
        "# regenerate (needs root for /dev/log)",
    ),
}


def blocks(page: Path) -> Iterator[tuple[str, str, int, str | None]]:
    """Each fenced block of a page: its kind, its text, its line, why it does not run."""
    text = page.read_text()
    for match in FENCE.finditer(text):
        mark = NOT_RUN_MARK.search(text, 0, match.start())
        line = text.count("\n", 0, match.start()) + 2
        yield match["kind"], match["body"], line, mark["reason"] if mark else None


ALL = sorted(DOCS.glob("*.md"))
PAGES = [page for page in ALL if any(kind == "python" for kind, *_ in blocks(page))]
SHELL_PAGES = [
    page
    for page in ALL
    if any(kind in SHELL_KINDS and why is None for kind, _, _, why in blocks(page))
]


def test_there_are_examples_to_run() -> None:
    assert PAGES, "no docs page holds a python example"
    assert SHELL_PAGES, "no docs page holds a shell example"


def test_every_block_names_its_kind() -> None:
    unnamed = [
        f"{page.name}:{line} ({kind or 'no kind'})"
        for page in ALL
        for kind, _, line, _ in blocks(page)
        if kind not in KINDS
    ]
    assert not unnamed, f"fence these blocks as one of {sorted(KINDS)}: {unnamed}"


def test_shell_blocks_that_do_not_run_are_listed_and_say_why() -> None:
    marked = {
        (page.name, body.splitlines()[0]): why
        for page in ALL
        for kind, body, _, why in blocks(page)
        if why is not None
    }
    assert set(marked) == NOT_RUN
    assert all(len(why.split()) >= 3 for why in marked.values()), marked
    # Only shell blocks are ever marked; the others run or are not code.
    assert all(
        kind in SHELL_KINDS for page in ALL for kind, _, _, why in blocks(page) if why is not None
    )


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for number, (kind, body, line, _) in enumerate(blocks(page), 1):
        if kind == "python":
            exec(compile(body, f"{page.name} (block {number}, line {line})", "exec"), namespace)


@pytest.mark.parametrize("page", SHELL_PAGES, ids=[page.name for page in SHELL_PAGES])
def test_page_shell_examples_run(
    page: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    prepare(tmp_path)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = os.environ | {"PATH": path}
    runnable = [
        (line, body)
        for kind, body, line, why in blocks(page)
        if kind in SHELL_KINDS and why is None
    ]
    with contextlib.ExitStack() as stack:
        if any("$PGDATABASE" in body for _, body in runnable):
            env |= stack.enter_context(scratch_database(request.getfixturevalue("postgres_dsn")))
        for line, body in runnable:
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", body],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                timeout=300,
                check=False,
            )
            assert result.returncode == 0, (
                f"{page.name} (shell block at line {line}) exited {result.returncode}:\n"
                f"{result.stderr.decode(errors='replace')}"
            )


def test_readme_commands_run(tmp_path: Path) -> None:
    """The README's two commands: what follows their ``pip install`` runs from a checkout
    (the second is ``python -m pytest``, this very suite)."""
    commands = [
        body.strip() for kind, body, _, _ in blocks(REPO / "README.md") if kind in SHELL_KINDS
    ]
    assert commands == [
        "pip install . && auditsync decode examples/kinesis-event.json",
        "pip install -e '.[test]' && python -m pytest",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "auditsync", "decode", "examples/kinesis-event.json"],
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert len(result.stdout.splitlines()) == 346


def prepare(scratch: Path) -> None:
    """The files the examples name, made from ``examples/``: its files as they are, a
    ``logs/`` directory, rotated ``.gz`` logs, a Firehose object and a saved Kinesis event
    under the names S3 and a Lambda give them, a CloudWatch export, Aurora's four files
    (in ``audit/`` and beside it), and ``benchmarks/`` of the checkout."""
    shutil.copytree(EXAMPLES, scratch, dirs_exist_ok=True)
    log = (EXAMPLES / "server_audit.log").read_bytes()
    (scratch / "logs").mkdir()
    (scratch / "logs" / "server_audit.log").write_bytes(log)
    (scratch / "today.log").write_bytes(log)
    for number in (1, 2):
        (scratch / f"server_audit.log.{number}.gz").write_bytes(gzip.compress(log))
    shutil.copy(EXAMPLES / "kinesis-event.json", scratch / "saved-kinesis-event.json")
    shutil.copy(EXAMPLES / "firehose-object.gz", scratch / "audit-1-2024-01-31-14-02-07-uuid")
    records = example_records()
    export = b"".join(b"2026-11-27T08:10:00.000Z " + record + b"\n" for record in records)
    (scratch / "exports" / "task" / "stream").mkdir(parents=True)
    (scratch / "exports" / "task" / "stream" / "000000.gz").write_bytes(gzip.compress(export))
    aurora = [
        format_line(parse_line(record), dialect="aurora").encode("utf-8", "surrogateescape")
        for record in records
    ]
    (scratch / "audit").mkdir()
    for number in range(4):
        text = b"".join(line + b"\n" for line in aurora[number::4])
        (scratch / "audit" / f"audit.log.{number}").write_bytes(text)
        (scratch / f"audit.log.{number}").write_bytes(text)
    (scratch / "benchmarks").symlink_to(REPO / "benchmarks")


def example_records() -> list[bytes]:
    """The records of the example log, a raw newline in a name joined as the reader does."""
    with (EXAMPLES / "server_audit.log").open("rb") as raw:
        return [
            text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")
            for item in read_file(raw, "server_audit.log")
            if isinstance(item, Lines)
            for text in item.texts
        ]


@contextlib.contextmanager
def scratch_database(dsn: str) -> Iterator[dict[str, str]]:
    """A PostgreSQL database of the test's own, dropped after; libpq's variables naming it."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"auditsync_docs_{uuid.uuid4().hex[:12]}"
    admin = make_conninfo(dsn, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        parts = conninfo_to_dict(dsn)
        variables = {
            "PGHOST": str(parts.get("host", "127.0.0.1")),
            "PGPORT": str(parts.get("port", 5432)),
            "PGUSER": str(parts.get("user", "postgres")),
            "PGDATABASE": name,
        }
        if parts.get("password"):
            variables["PGPASSWORD"] = str(parts["password"])
        yield variables
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
