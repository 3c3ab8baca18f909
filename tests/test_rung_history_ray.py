"""The issue's relaunch case through ``srnas search`` on a real local Ray: single-trial
launches continuing a study are ranked against the study's rung history, and stopped at the
first rung when the history beats them; each launch records and shows bicubic."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from srnas.search.cli import main
from srnas.space.contract import STATUS_STOPPED_AT_RUNG
from tests.conftest import SMALL_SPACE_YAML

pytestmark = [pytest.mark.ray, pytest.mark.slow]

RUNG = 2  # --steps 6 --min-steps 2 --eta 3: rungs 2, 6


@pytest.fixture(scope="module", autouse=True)
def ray_instance(ray_session: None) -> None:
    """Every test here runs on the session's one local Ray (tests/conftest.py)."""


def _launch(tmp_path: Path, space: Path) -> int:
    return main(["search", "--storage", f"sqlite:///{tmp_path / 'study.db'}", "--study", "r",
                 "--space", str(space), "--steps", "6", "--min-steps", str(RUNG), "--eta", "3",
                 "--input", "16x16", "--scale", "2", "--concurrency", "1", "--trials", "1"])


@pytest.mark.timeout(600)
def test_single_trial_relaunches_are_stopped_by_the_history(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(SMALL_SPACE_YAML)
    assert _launch(tmp_path, space) == 0
    out = capsys.readouterr().out
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{tmp_path / 'study.db'}")
    bicubic = study.user_attrs["bicubic"]
    assert bicubic["psnr"] > 10 and bicubic["device"].startswith("cpu")
    assert bicubic["input_hw"] == [16, 16] and bicubic["scale"] == 2
    assert study.user_attrs["reference_point"]["values"]["psnr"] == bicubic["psnr"]
    assert "bicubic: " in out  # the launch's line and the end summary's front header
    alone = study.get_trials(deepcopy=False)[0]
    assert alone.state == optuna.trial.TrialState.COMPLETE  # alone at its rung: continued
    # An earlier launch's 9 results at the first rung, far better than any tiny network:
    # recorded as a search records a stopped trial (rung_psnr and the cheap figures).
    for _ in range(9):
        trial = study.ask()
        trial.set_user_attr("rung_psnr", {str(RUNG): 60.0})
        trial.set_user_attr("latency_ms", 1e-6)
        trial.set_user_attr("memory_mb", 1e-6)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    stopped = 0
    for _ in range(2):
        assert _launch(tmp_path, space) == 0
        assert "rung history of the study: " in capsys.readouterr().out
        last = study.get_trials(deepcopy=False)[-1]
        stopped += (last.state == optuna.trial.TrialState.PRUNED
                    and last.user_attrs["status"] == STATUS_STOPPED_AT_RUNG
                    and last.user_attrs["steps"] == RUNG)
        assert last.user_attrs["rung_results"][str(RUNG)]["psnr"] < 60
    assert stopped == 2
