"""srnas uses Ray and Optuna through their public names only: a private one (a leading ``_``)
may change in any minor release and break the search silently.

The source is read, not run. Flagged:

- an import of a module or name with a ``_`` component under ``ray`` or ``optuna``
  (``import optuna._hypervolume``, ``from ray._private.dict import unflatten_dict``);
- ``X._name`` (not a dunder) where ``X`` is a Ray/Optuna module or name, or, in a file that
  imports Ray or Optuna, any object but ``self``/``cls`` and other libraries' modules (so
  ``torch._C`` or ``sys._getframe`` stay allowed: the rule is about Ray's and Optuna's
  objects, which such a file handles in its variables);
- the same through ``getattr``/``setattr``/``hasattr``/``delattr`` with a constant name;
- ``self._name`` in a subclass of a Ray/Optuna class, when ``_name`` is a private attribute
  or method of one of its Ray/Optuna bases (inherited state, e.g. ``OptunaSearch._ot_study``).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("space", "evaluators", "studies", "search", "benchmarks", "scripts", "tests")
GUARDED = ("ray", "optuna")
REFLECTION = ("getattr", "setattr", "hasattr", "delattr")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _guarded(path: str) -> bool:
    return path.split(".")[0] in GUARDED


def _bindings(tree: ast.AST) -> dict[str, str]:
    """Every name an import binds (at any level of the file) -> the dotted path it names."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    root = alias.name.split(".")[0]
                    bound[root] = root
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return bound


def _root(node: ast.expr) -> tuple[ast.expr, int]:
    """The start of an attribute chain (through calls and subscripts) and how many
    attributes deep ``node`` is."""
    depth = 0
    while True:
        if isinstance(node, ast.Attribute):
            node, depth = node.value, depth + 1
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Subscript):
            node = node.value
        else:
            return node, depth


def _dotted(node: ast.expr, bound: dict[str, str]) -> str | None:
    """``a.b.C`` as the full path it names through the file's imports."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in bound:
        return None
    return ".".join([bound[node.id], *reversed(parts)])


@cache
def _inherited_private(path: str) -> frozenset[str]:
    """The private attributes and methods of a Ray/Optuna class and its Ray/Optuna bases."""
    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), name, None)
    if not inspect.isclass(cls):
        return frozenset()
    names: set[str] = set()
    for base in cls.__mro__:
        if not _guarded(base.__module__):
            continue
        names.update(n for n in vars(base) if _private(n))
        try:
            source = textwrap.dedent(inspect.getsource(base))
        except (OSError, TypeError):
            continue
        names.update(node.attr for node in ast.walk(ast.parse(source))
                     if isinstance(node, ast.Attribute) and _private(node.attr))
    return frozenset(names)


def violations(source: str, filename: str = "<source>") -> list[str]:
    """Every use of a private Ray/Optuna name in one file, as ``file:line: what``."""
    tree = ast.parse(source, filename)
    bound = _bindings(tree)
    handles_guarded = any(_guarded(path) for path in bound.values())
    found: list[str] = []

    def flag(node: ast.AST, what: str) -> None:
        found.append(f"{filename}:{getattr(node, 'lineno', '?')}: {what}")

    def check_access(node: ast.AST, obj: ast.expr, attr: str) -> None:
        root, depth = _root(obj)
        if isinstance(root, ast.Name):
            if root.id in ("self", "cls") and depth == 0:
                return  # own state; inherited private state: the subclass rule below
            if root.id in bound and not _guarded(bound[root.id]):
                return  # another library's module or name (torch._C, sys._getframe)
            if root.id in bound or handles_guarded:
                flag(node, f"private attribute {attr!r} of {ast.unparse(obj)!r}")
        elif handles_guarded:
            flag(node, f"private attribute {attr!r} of {ast.unparse(obj)!r}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _guarded(alias.name) and any(map(_private, alias.name.split("."))):
                    flag(node, f"import of private module {alias.name!r}")
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if _guarded(node.module):
                for alias in node.names:
                    path = f"{node.module}.{alias.name}"
                    if any(map(_private, path.split("."))):
                        flag(node, f"import of private name {path!r}")
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            check_access(node, node.value, node.attr)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in REFLECTION and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant)
              and isinstance(node.args[1].value, str) and _private(node.args[1].value)):
            check_access(node, node.args[0], node.args[1].value)
        elif isinstance(node, ast.ClassDef):
            inherited: set[str] = set()
            for base in node.bases:
                path = _dotted(base, bound)
                if path is not None and _guarded(path):
                    inherited |= _inherited_private(path)
            for inner in ast.walk(node):
                if (isinstance(inner, ast.Attribute) and inner.attr in inherited
                        and isinstance(inner.value, ast.Name)
                        and inner.value.id in ("self", "cls")):
                    flag(inner, f"{inner.attr!r} inherited from Ray/Optuna "
                                f"(class {node.name})")
    return found


def _sources() -> list[Path]:
    return sorted(p for folder in FOLDERS if (ROOT / folder).is_dir()
                  for p in (ROOT / folder).rglob("*.py"))


def test_srnas_uses_no_private_name_of_ray_or_optuna() -> None:
    found = [v for path in _sources()
             for v in violations(path.read_text(encoding="utf-8"),
                                 str(path.relative_to(ROOT)))]
    assert not found, "\n".join(found)


def test_the_scan_sees_every_package() -> None:
    scanned = {p.relative_to(ROOT).parts[0] for p in _sources()}
    assert {"space", "evaluators", "studies", "search", "benchmarks"} <= scanned


# The rule itself, on small sources: what it must catch and what it must leave alone.
CAUGHT = [
    "import optuna._hypervolume",
    "from optuna._hypervolume import compute_hypervolume",
    "from ray._private.dict import unflatten_dict",
    "from optuna.study import _multi_objective",
    "import optuna\nx = optuna.storages._rdb",
    "import optuna\n\ndef f(trial):\n    return trial._trial_id",
    "import optuna\n\ndef f(study):\n    return getattr(study, '_storage')",
    "import optuna\n\nclass A:\n    def f(self):\n        return self.study._storage",
    "from ray.tune.search.optuna import OptunaSearch\n\nclass S(OptunaSearch):\n"
    "    def f(self):\n        return self._ot_study",
    "from ray.tune import search\n\nclass S(search.Searcher):\n"
    "    def f(self):\n        return self._metric",
    "import optuna\n\ndef f(study):\n    return super()._x",
]
ALLOWED = [
    "import torch\nx = torch._C._get_tracing_state",
    "import optuna\nimport torch\n\ndef f(op: torch._ops.OpOverload): ...",
    "import argparse\np = argparse.ArgumentParser()\nq = p._actions",  # no Ray/Optuna here
    "import optuna\nimport sys\nframe = sys._getframe(0)",
    "import optuna\n\nclass A:\n    def f(self):\n        return self._own",
    "from ray.tune.search import Searcher\n\nclass S(Searcher):\n"
    "    def f(self):\n        return self._pending, self.metric",
    "x = 1\n\ndef f(study):\n    return study.__class__, study.__dict__",
    '"""Mentions optuna._hypervolume in a docstring only."""',
]


def test_the_rule_catches_private_uses() -> None:
    for source in CAUGHT:
        assert violations(source), source


def test_the_rule_leaves_other_libraries_and_own_names_alone() -> None:
    for source in ALLOWED:
        assert violations(source) == [], source
