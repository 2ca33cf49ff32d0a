"""The docs' examples run, page by page, top to bottom, so they cannot rot.

Python blocks run in one namespace per page. ``shell`` blocks run with bash, in order, in a
scratch directory holding a copy of examples/, with this interpreter's ``auditsync``
first on the PATH; ``sh`` blocks are illustrations (paths of the reader's own machine,
calls to AWS) and are not run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
EXAMPLES = DOCS.parent / "examples"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
PAGES = sorted(page for page in DOCS.glob("*.md") if BLOCK.search(page.read_text()))
SHELL = re.compile(r"^```shell\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELL_PAGES = sorted(page for page in DOCS.glob("*.md") if SHELL.search(page.read_text()))


def test_there_are_examples_to_run() -> None:
    assert PAGES, "no docs page holds a python example"


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for number, match in enumerate(BLOCK.finditer(page.read_text()), 1):
        line = page.read_text().count("\n", 0, match.start()) + 2
        code = compile(match.group(1), f"{page.name} (block {number}, line {line})", "exec")
        exec(code, namespace)


@pytest.mark.parametrize("page", SHELL_PAGES, ids=[page.name for page in SHELL_PAGES])
def test_page_shell_examples_run(page: Path, tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path, dirs_exist_ok=True)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    text = page.read_text()
    for number, match in enumerate(SHELL.finditer(text), 1):
        line = text.count("\n", 0, match.start()) + 2
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", match.group(1)],
            cwd=tmp_path,
            env=os.environ | {"PATH": path},
            capture_output=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, (
            f"{page.name} (shell block {number}, line {line}) exited {result.returncode}:\n"
            f"{result.stderr.decode(errors='replace')}"
        )
