"""The package's shape: one import name, public APIs that resolve, cheap command declarations."""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from srnas.search.cli import COMMANDS, main

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("space", "evaluators", "search", "studies")
# The direction of imports between the packages is tests/test_import_graph.py's.


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


def test_the_command_table_and_every_help_load_no_numpy() -> None:
    """Declaring the commands (what ``srnas --help`` and shell completion pay for) stays
    light: numpy alone costs about a tenth of a second."""
    code = """
import contextlib, io, sys
from srnas.search.cli import COMMANDS, main
for argv in (["--help"], *([name, "--help"] for name in COMMANDS)):
    with contextlib.redirect_stdout(io.StringIO()):
        main(argv)
print(sorted({"numpy", "torch", "ray", "optuna"} & set(sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, check=True)
    assert done.stdout.strip() == "[]", done.stderr
