"""The public surface is chosen: what users import is named, everything else is private.

Public are ``auditsync`` itself and the documented modules below; every other module's
name starts with an underscore, and no docs page, example or README imports one.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import auditsync

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_MODULES = {
    "auditsync",
    "auditsync.arrow",
    "auditsync.aws",
    "auditsync.ecs",
    "auditsync.filters",
    "auditsync.ocsf",
    "auditsync.sinks",
    "auditsync.sql",
    "auditsync.testing",
    "auditsync.replay",
    "auditsync.transactions",
    "auditsync.changes",
}
PRIVATE_IMPORT = re.compile(
    r"\bauditsync(?:\.\w+)*\._\w+|from auditsync(?:\.\w+)* import (?:.*\b_\w+)"
)


def _modules() -> list[str]:
    found = ["auditsync"]
    for module in pkgutil.walk_packages(auditsync.__path__, "auditsync."):
        found.append(module.name)
    return found


def _strip(name: str) -> str:
    return name.rsplit(".", 1)[-1]


@pytest.mark.parametrize("name", _modules())
def test_a_module_is_public_by_choice_or_private_by_name(name: str) -> None:
    if name in PUBLIC_MODULES or name == "auditsync.__main__":
        return
    parts = name.split(".")[1:]
    assert any(part.startswith("_") for part in parts), (
        f"{name} is neither in the public list nor private by name"
    )


@pytest.mark.parametrize("name", sorted(PUBLIC_MODULES))
def test_public_names_exist_and_are_listed(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported)
    for attribute in exported:
        assert not attribute.startswith("_") or attribute == "__version__"
        assert getattr(module, attribute) is not None


def _user_facing_texts() -> list[Path]:
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "examples").glob("*.py")),
    ]


@pytest.mark.parametrize("path", _user_facing_texts(), ids=lambda path: path.name)
def test_docs_and_examples_use_public_names_only(path: Path) -> None:
    text = path.read_text()
    if path.suffix == ".md":  # only the code users copy: the python blocks
        text = "\n".join(re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL))
    found = PRIVATE_IMPORT.findall(text)
    assert not found, f"{path.name} reaches into private modules: {found}"


def test_the_version_is_the_installed_one() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", auditsync.__version__)


#: The order data flows in (docs/architecture.md): a module imports only from groups above
#: its own, or from its own package.
LAYERS = (
    "_errors",
    "sql",
    "_rds",
    "_events",
    "_gzip",
    "_payload",
    "_envelope",
    "_native",
    "_auditlog",
    "_splits",
    "_json",
    "filters",
    "transactions",
    "arrow",
    "ocsf",
    "ecs",
    "sinks",
    "replay",
    "changes",
    "_pipeline",
    "_stored",
    "_sources",
    "aws",
    "_cli",
    "testing",
)


def _imports(path: Path, module: str) -> list[tuple[str, int]]:
    """The auditsync modules ``path`` imports (relative imports, at any depth)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            if node.module:
                found.append((".".join([*base, node.module]), node.lineno))
            else:
                found += [(".".join([*base, alias.name]), node.lineno) for alias in node.names]
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_data_flows_one_way() -> None:
    rank = {layer: index for index, layer in enumerate(LAYERS)}
    package = ROOT / "auditsync"
    wrong = []
    for path in sorted(package.rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        layer = _layer(module)
        if layer not in rank:
            assert layer in (None, "__main__"), f"{module} is in no layer of LAYERS"
            continue
        for target, line in _imports(path, module):
            other = _layer(target)
            if other in rank and rank[other] > rank[layer]:
                wrong.append(f"{module}:{line} imports {target}")
    assert not wrong, "imports against the flow:\n" + "\n".join(wrong)
