"""The docs' Python examples run, page by page, top to bottom, so they cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
PAGES = sorted(page for page in DOCS.glob("*.md") if BLOCK.search(page.read_text()))


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
