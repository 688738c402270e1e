"""The package's shape: layers, no import cycles, no private names across modules, small modules.

The layers themselves are import-linter's contract (``[tool.importlinter]`` in
``pyproject.toml``, run by ``make test``); these tests check what it does not: that the contract
covers every subpackage, that no two modules import each other (directly or round a loop, hidden
in a function or not), that no module reaches into another's private names, that every package
says in its docstring what it holds and may import, and that no module outgrows 700 lines.
"""

from __future__ import annotations

import ast
import importlib.util
import pkgutil
import tomllib
from pathlib import Path

import grimp
import pytest

import cbcv

SRC = Path(cbcv.__file__).resolve().parent
ROOT = SRC.parents[1]
MAX_LINES = 700


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module (each one a cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def _is_parent_package(a: str, b: str) -> bool:
    return b.startswith(a + ".") or a.startswith(b + ".")


def test_no_import_cycles_between_modules() -> None:
    """No module imports another that imports it back, directly or round a loop (a package's
    ``__init__`` re-exporting its own submodules is not a cycle)."""
    graph = grimp.build_graph("cbcv")
    cycles = [
        c for c in _strongly_connected(graph)
        if not all(_is_parent_package(a, b) for i, a in enumerate(c) for b in c[i + 1:])
    ]
    assert cycles == []


def test_the_layers_contract_covers_every_subpackage() -> None:
    """Every subpackage and top-level module of ``cbcv`` is a layer of the contract (import-linter
    also checks this, with ``exhaustive = true``)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    assert contract["exhaustive"] is True
    named = {name.strip() for layer in contract["layers"] for name in layer.split("|")}
    children = {m.name for m in pkgutil.iter_modules([str(SRC)])}
    assert children - named == set()
    assert named - children == set()


def _private_uses(path: Path, module: str) -> list[str]:
    """``from cbcv.x import _y``, or ``X._y`` on a cbcv module imported as ``X``, in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("cbcv"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{module}: from {node.module} import {alias.name}")
                target = f"{node.module}.{alias.name}"
                if _is_module(target):
                    aliases[alias.asname or alias.name] = target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("cbcv"):
                    aliases[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_") and not node.attr.startswith("__")):
            target = aliases[node.value.id]
            if target != module and not target.startswith(package + "._"):
                found.append(f"{module}: {node.value.id}.{node.attr} ({target})")
    return found


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ModuleNotFoundError, ValueError):
        return False


def test_no_module_imports_another_modules_private_names() -> None:
    found = [use for module, path in _modules().items() for use in _private_uses(path, module)]
    assert found == []


def test_every_package_says_what_it_holds_and_may_import() -> None:
    """Each layer's ``__init__`` docstring says what it may import."""
    missing = []
    for module, path in _modules().items():
        if path.name != "__init__.py" or module.count(".") != 1:  # the layers: cbcv.<package>
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if "May import" not in doc and "may import" not in doc:
            missing.append(module)
    assert missing == []


@pytest.mark.parametrize("module", sorted(_modules()))
def test_no_module_is_over_700_lines(module: str) -> None:
    lines = len(_modules()[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module}: {lines} lines"
