"""The package's shape (DESIGN.md, Layout): no import circles (imsim, lab, benchmarks).

Imports are read from the source (every ``import``, also those inside functions and
under ``TYPE_CHECKING``), so a circle hidden by a late import is still one."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import ROOT

PACKAGES = ("imsim", "lab")
SCRIPTS = "benchmarks"   # run as scripts: they import each other by bare name


def module_name(path: Path) -> str:
    if path.parent.name == SCRIPTS:
        return path.stem
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))
    yield from sorted((ROOT / SCRIPTS).glob("*.py"))


def imported(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports (``from a import b``: ``a.b`` when it is a
    module, else ``a``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if name in known else node.module)
    return {name for name in found if name in known}


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in sources()}
    known = set(paths)
    return {name: imported(path, known) - {name} for name, path in paths.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def test_the_circle_finder_finds_a_circle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(edges) == [["a", "b", "c"]]


def test_no_module_imports_itself_round_a_circle():
    found = circles(graph())
    assert found == [], "import circles: " + "; ".join(" <-> ".join(g) for g in found)


ALLOWED_BELOW = {
    "imsim.model": ("imsim.model", "imsim.errors"),
    "imsim.rules": ("imsim.rules", "imsim.model", "imsim.errors"),
}


def test_arrows_point_down_the_model_and_the_rules_import_nothing_above():
    """DESIGN.md: the rules use the model; the model uses nothing else of imsim."""
    edges = graph()
    wrong = [f"{module} imports {target}" for module, targets in sorted(edges.items())
             for package, allowed in ALLOWED_BELOW.items()
             if module == package or module.startswith(package + ".")
             for target in sorted(targets)
             if not any(target == a or target.startswith(a + ".") for a in allowed)]
    assert wrong == []
