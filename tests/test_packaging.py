"""What ``python -m build`` makes of the checkout: an sdist that runs its own tests, and a
wheel that carries the package (and the compiled reader where a compiler was found), not
the C source it was compiled from, nor the tests."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("build") is None,
    reason="needs the build package (pip install 'auditsync[test]')",
)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist, and the wheel built from it, as ``python -m build`` makes them."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    return out


def test_the_sdist_runs_its_own_tests(dist: Path, tmp_path: Path) -> None:
    (sdist,) = dist.glob("auditsync-*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    (tree,) = tmp_path.iterdir()
    for needed in (
        "tests/conftest.py",
        "tests/bombs.py",
        "tests/data/golden",
        "docs/cli.md",
        "examples/server_audit.log",
        "benchmarks/run.py",
        "mkdocs.yml",
        "auditsync/_c_reader.c",
        "auditsync/_c_json.c",
    ):
        assert (tree / needed).exists(), f"the sdist lacks {needed}"
    # From the unpacked tree, so that its own auditsync is imported, with the suite's own
    # conftest and data; on the pure-Python reader, since nothing is compiled there (an
    # editable install could otherwise lend it the checkout's extension).
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_payload.py",
            "tests/test_filters.py",
            "tests/test_docs.py::test_readme_commands_run",
            "tests/test_docs.py::test_page_shell_examples_run[ocsf-ecs.md]",
        ],
        cwd=tree,
        env=os.environ | {"AUDITSYNC_PURE_PYTHON": "1"},
        capture_output=True,
        timeout=600,
        check=False,
    )
    report = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, report
    assert " passed" in report
    assert "skipped" not in report, report


def test_the_wheel_carries_the_package_not_its_sources(dist: Path) -> None:
    (wheel,) = dist.glob("auditsync-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [name for name in names if name.endswith((".c", ".h"))], names
    assert not [name for name in names if name.startswith(("tests/", "docs/", "benchmarks/"))]
    for needed in ("auditsync/__init__.py", "auditsync/py.typed", "auditsync/_c_reader.pyi"):
        assert needed in names
    if "linux" in wheel.name:  # a platform wheel: the extensions were compiled into it
        for extension in ("_c_reader", "_c_json"):
            assert [
                name
                for name in names
                if name.startswith(f"auditsync/{extension}.") and name.endswith(".so")
            ], names
