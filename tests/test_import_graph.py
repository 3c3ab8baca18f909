"""The import graph of srnas, read from the source with ``ast``: no cycle, and the layering rule.

Every import counts, module-level and function-level alike (a function-level import hides a
cycle from Python, not from the design); ``if TYPE_CHECKING:`` imports count for the layering
(a type annotation still names what a package depends on) but not for cycles (they never run).

Layering: space imports no other srnas package; evaluators imports only space; studies imports
only space (never evaluators, search, torch or Ray); only search imports Ray.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("space", "evaluators", "studies", "search")
# Which other srnas packages each package may import (its own is always allowed).
ALLOWED = {
    "space": set(),
    "evaluators": {"space"},
    "studies": {"space"},
    "search": {"space", "evaluators", "studies"},
}
# Third-party roots a package must never import.
FORBIDDEN_EXTERNAL = {
    "space": {"ray"},
    "evaluators": {"ray"},
    "studies": {"ray", "torch", "torchvision", "safetensors"},
}


@dataclass(frozen=True)
class Edge:
    source: str  # srnas.studies.front
    target: str  # srnas.studies.pareto, or a third-party dotted name (numpy.linalg)
    line: int
    type_only: bool  # under ``if TYPE_CHECKING:``

    def __str__(self) -> str:
        return f"{self.source}:{self.line} -> {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["srnas", *parts])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def edges_of(path: Path, modules: set[str]) -> list[Edge]:
    """Every import in ``path``, as edges to modules (``from pkg import mod`` names the
    submodule when there is one, else the package)."""
    module = module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Edge] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        if isinstance(node, ast.Import):
            found.extend(Edge(module, alias.name, node.lineno, type_only)
                         for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append(Edge(module, sub if sub in modules else target, node.lineno,
                                  type_only))
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(tree, False)
    return found


def source_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def import_graph() -> tuple[set[str], list[Edge]]:
    files = source_files()
    modules = {module_name(p) for p in files}
    return modules, [e for p in files for e in edges_of(p, modules)]


def find_cycle(modules: set[str], edges: list[Edge]) -> list[str] | None:
    """One cycle of runtime imports between srnas modules, or None."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for edge in edges:
        if edge.target in modules and not edge.type_only and edge.target != edge.source:
            graph[edge.source].add(edge.target)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "srnas" and parts[1] in PACKAGES else None


def layering_violations(edges: list[Edge]) -> list[str]:
    broken = []
    for edge in edges:
        source = package_of(edge.source)
        assert source is not None
        target = package_of(edge.target)
        if target is not None:
            if target != source and target not in ALLOWED[source]:
                broken.append(f"{edge} ({source} may not import {target})")
        elif edge.target.split(".")[0] in FORBIDDEN_EXTERNAL.get(source, set()):
            broken.append(f"{edge} ({source} may not import {edge.target.split('.')[0]})")
    return broken


def test_the_graph_is_read_from_the_source() -> None:
    """Guards the test itself: the graph holds known edges of each kind."""
    modules, edges = import_graph()
    pairs = {(e.source, e.target) for e in edges}
    assert "srnas.studies.front" in modules and "srnas.search.scheduler" in modules
    assert ("srnas.search.scheduler", "ray.tune.schedulers") in pairs  # module level
    assert ("srnas.search.scheduler", "srnas.search.ranking") in pairs  # from-import
    # function-level, from-import of a module
    assert ("srnas.studies.export", "srnas.studies.storage") in pairs


def test_find_cycle_and_layering_catch_what_they_should() -> None:
    """The checks on a made-up graph: a hidden cycle, a forbidden import, a type-only edge."""
    modules = {"srnas.studies.a", "srnas.studies.b", "srnas.space.c"}
    cyclic = [Edge("srnas.studies.a", "srnas.studies.b", 1, False),
              Edge("srnas.studies.b", "srnas.studies.a", 9, False)]
    assert find_cycle(modules, cyclic) == ["srnas.studies.a", "srnas.studies.b",
                                           "srnas.studies.a"]
    assert find_cycle(modules, [cyclic[0], Edge("srnas.studies.b", "srnas.studies.a", 3,
                                                True)]) is None
    assert layering_violations([Edge("srnas.space.c", "srnas.studies.a", 1, False)])
    assert layering_violations([Edge("srnas.studies.a", "torch.nn", 1, True)])
    assert layering_violations([Edge("srnas.evaluators.x", "ray", 1, False)])
    assert not layering_violations([Edge("srnas.search.x", "ray.tune", 1, False),
                                    Edge("srnas.studies.a", "srnas.space.c", 1, False)])


def test_no_import_cycle() -> None:
    modules, edges = import_graph()
    cycle = find_cycle(modules, edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("package", PACKAGES)
def test_layering(package: str) -> None:
    _, edges = import_graph()
    broken = layering_violations([e for e in edges if package_of(e.source) == package])
    assert not broken, "\n".join(broken)


SOURCE_FOLDERS = ("space", "evaluators", "studies", "search", "tests", "benchmarks", "scripts")


def _from_imports() -> list[tuple[Path, ast.ImportFrom]]:
    found = []
    for folder in SOURCE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            found += [(path, node) for node in ast.walk(ast.parse(path.read_text()))
                      if isinstance(node, ast.ImportFrom) and node.module and not node.level]
    return found


def test_code_imports_srnas_by_its_installed_name() -> None:
    """``from srnas.space import x``, never ``from space import x``: the folders are only
    packages under the installed name."""
    wrong = [f"{path.relative_to(ROOT)}:{node.lineno}: {node.module}"
             for path, node in _from_imports() if node.module.split(".")[0] in PACKAGES]
    assert not wrong, "\n".join(wrong)


def test_no_private_name_crosses_a_module() -> None:
    """A leading ``_`` means "this module's own": another module (a test included) that needs
    it gets a public name instead, so a module's internals can change without breaking others."""
    crossing = [f"{path.relative_to(ROOT)}:{node.lineno}: {node.module}.{alias.name}"
                for path, node in _from_imports() if node.module.split(".")[0] == "srnas"
                for alias in node.names
                if (alias.name.startswith("_") and not alias.name.startswith("__"))
                or any(p.startswith("_") for p in node.module.split("."))]
    assert not crossing, "\n".join(crossing)
