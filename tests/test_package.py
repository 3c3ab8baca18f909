"""The package's shape: one import name, public APIs that resolve, imports that point one way."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from srnas.search.cli import COMMANDS, main

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("space", "evaluators", "search", "studies")
# What each package may import of srnas and of the heavy libraries (space <- evaluators <-
# search; studies reads configs and the contract; only search imports Ray).
ALLOWED = {
    "space": {"space"},
    "evaluators": {"space", "evaluators"},
    "search": {"space", "evaluators", "search", "studies"},
    "studies": {"space", "studies"},
}
NEVER = {"space": set(), "evaluators": {"ray"}, "search": set(), "studies": {"ray", "torch"}}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # A name imported from another module counts as that module's attribute path.
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_one_way(package: str) -> None:
    for path in sorted((REPO / package).rglob("*.py")):
        for name in _imports(path):
            parts = name.split(".")
            assert parts[0] not in PACKAGES, f"{path.name}: import {name} (use srnas.{name})"
            if parts[0] == "srnas" and len(parts) > 1:
                assert parts[1] in ALLOWED[package], f"{package}/{path.name} imports {name}"
                if parts[1] != package:
                    assert not any(p.startswith("_") for p in parts[2:]), f"private: {name}"
            assert parts[0] not in NEVER[package], f"{package}/{path.name} imports {name}"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_resolves(package: str) -> None:
    module = importlib.import_module(f"srnas.{package}")
    assert module.__all__
    for name in module.__all__:
        assert getattr(module, name) is not None, name


def test_reading_studies_loads_neither_torch_nor_ray() -> None:
    code = ("import sys, srnas.studies, srnas.studies.storage, srnas.studies.front; "
            "print(sorted({'torch', 'ray'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"srnas {version('srnas')}"


def test_reading_commands_load_neither_torch_nor_ray(tmp_path: Path) -> None:
    """``srnas --help``, ``studies list``, ``pareto`` and ``plot`` (and every command's --help)
    run without importing torch or Ray: declaring the commands is cheap."""
    from tests.fabricate import make_known_study

    url = f"sqlite:///{tmp_path / 's.db'}"
    make_known_study(url, "known")
    png = tmp_path / "front.png"
    code = f"""
import contextlib, io, sys
from srnas.search.cli import COMMANDS, main
runs = [["--help"], ["studies", "list", "--storage", {url!r}],
        ["pareto", "known", "--storage", {url!r}],
        ["plot", "known", "--storage", {url!r}, "--out", {str(png)!r}],
        *([name, "--help"] for name in COMMANDS)]
codes = []
for argv in runs:
    with contextlib.redirect_stdout(io.StringIO()):
        codes.append(main(argv))
print(codes, sorted({{"torch", "ray"}} & set(sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, check=True)
    assert done.stdout.strip() == f"{[0] * (4 + len(COMMANDS))} []", done.stderr
    assert png.read_bytes()[:4] == b"\x89PNG"
