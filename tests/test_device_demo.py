"""The README's "Search for the device you ship to" recipe, run as written by
``scripts/device_demo.sh``: a Ray head that trains and a second node with no CPU that
advertises ``srnas-target-edge``, a tiny search measured with ONNX Runtime on that target, and
the front, which says so. The study is read back: every trial trained on the head and was
measured on the edge node, each recorded apart."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import optuna
import pytest

from srnas.studies.frame import nested_attr

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SCRIPT = REPO / "scripts" / "device_demo.sh"
MARKER = "<!-- device-recipe"
TRIALS = 3
TIMEOUT_S = 540


def recipe_lines() -> list[str]:
    """The non-comment lines of the README's ```sh block after the device-recipe marker."""
    text = README.read_text()
    block = re.search(r"```sh\n(.*?)```", text[text.index(MARKER):], re.DOTALL)
    assert block is not None, f"no ```sh block after {MARKER!r}"
    return [line.strip() for line in block.group(1).splitlines()
            if line.strip() and not line.strip().startswith("#")]


def test_the_demo_script_runs_every_line_of_the_readme_recipe_as_written() -> None:
    lines = recipe_lines()
    assert any(line.startswith("ray start --head") for line in lines)
    assert any("--num-cpus=0" in line and "srnas-target-edge" in line for line in lines)
    assert any(line.startswith("srnas search ") and "--target edge" in line
               and "--runtime onnxruntime" in line for line in lines)
    assert any(line.startswith("srnas pareto ") for line in lines)
    script = [line.strip() for line in SCRIPT.read_text().splitlines()]
    missing = [line for line in lines if line not in script]
    assert not missing, f"README recipe lines the demo script does not run: {missing}"


@pytest.mark.e2e
@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT_S + 60)
def test_every_trial_trains_on_the_head_and_is_measured_on_the_target(tmp_path: Path) -> None:
    db = tmp_path / "edge.db"
    env = {**os.environ, "SRNAS_STORAGE": f"sqlite:///{db}", "TRIALS": str(TRIALS),
           "SRNAS_LOCK_DIR": str(tmp_path / "locks")}
    started = time.monotonic()
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env,
                          timeout=TIMEOUT_S, check=False)
    wall = time.monotonic() - started
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-4000:])
    out = done.stdout
    assert "srnas-target-edge" in out  # ray status lists the target's resource
    nodes = json.loads(re.search(r"^nodes: (.*)$", out, re.MULTILINE).group(1))
    assert set(nodes) == {"head", "edge"} and nodes["head"] != nodes["edge"]
    # The front's header (pareto, printed after the search's own summary) says how and where.
    assert "measured with: onnxruntime fp32 on target edge" in out

    study = optuna.load_study(study_name="edge-demo", storage=f"sqlite:///{db}")
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == TRIALS
    for trial in trials:
        attrs = trial.user_attrs
        assert trial.state.name == "COMPLETE", (trial.number, attrs.get("failure_reason"))
        # Trained on the head (the only node with CPUs for trials), measured on the edge node.
        assert attrs["node"] == nodes["head"] and attrs["measured_node"] == nodes["edge"]
        assert attrs["runtime"] == "onnxruntime" and attrs["precision"] == "fp32"
        assert attrs["target"] == "edge" and attrs["measured_device"].startswith("cpu: ")
        assert nested_attr(attrs, "runtime_settings")["intra_op_num_threads"] >= 1
        assert attrs["memory_method"].startswith("proxy:")
        assert 0 <= attrs["measure_dispatch_seconds"] < attrs["measure_seconds"]
        assert attrs["runtime_check_max_abs_diff"] <= 1e-4
    measure = [t.user_attrs["measure_seconds"] for t in trials]
    print(f"device demo: {TRIALS} trials in {wall:.0f} s; measure_seconds "
          f"{', '.join(f'{s:.2f}' for s in measure)}")
