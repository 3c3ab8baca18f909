"""``srnas fidelity`` under bad requests and interruptions (issue 23, items 7, 13, 14): resource
requests Ray would leave PENDING forever are refused; the cluster and resources are checked
before the sibling study is created or "retraining N of N" is printed; Ctrl-C exits 130 with a
resume hint; a killed driver's temporary experiment folder is swept by the next one.

Ray itself is replaced here (``start_cluster``, ``run_tuner``): what is tested is the order of
the checks and the exit, not Ray.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from srnas.search import fidelity as search_fidelity
from srnas.search.fidelity import FidelitySettings
from srnas.search.resources import check_time_budget, check_trial_resources
from srnas.search.tuner import TrialResources
from srnas.space.errors import ConfigError
from tests.cli import assert_usage_error, run
from tests.test_reliability_names import _study


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    _study(url)
    return url


@pytest.mark.parametrize(("field", "kwargs"), [
    ("gpus_per_trial", {"gpus_per_trial": -1.0}),
    ("gpus_per_trial", {"gpus_per_trial": math.nan}),
    ("gpus_per_trial", {"gpus_per_trial": math.inf}),
    ("cpus_per_trial", {"cpus_per_trial": math.inf}),
    ("cpus_per_trial", {"cpus_per_trial": math.nan}),
    ("cpus_per_trial", {"cpus_per_trial": -2.0}),
    ("concurrency", {"concurrency": 0}),
    ("storage_retry_s", {"storage_retry_s": math.nan}),
    ("storage_retry_s", {"storage_retry_s": -1.0}),
])
def test_fidelity_settings_refuse_requests_ray_would_leave_pending(field: str,
                                                                   kwargs: dict) -> None:
    with pytest.raises(ConfigError) as info:
        FidelitySettings(study="s", **kwargs)
    assert info.value.field == field


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0, 0.0])
def test_a_time_budget_must_be_finite_and_positive(value: float) -> None:
    with pytest.raises(ConfigError):
        check_time_budget(value)
    check_time_budget(None)
    check_time_budget(0.5)
    check_trial_resources(0.5, 0.0, 2)


@pytest.mark.parametrize("flag", [("--gpus-per-trial", "-1"), ("--gpus-per-trial", "nan"),
                                  ("--cpus-per-trial", "inf"), ("--concurrency", "0")])
def test_the_cli_refuses_them_in_one_line_and_writes_nothing(
        url: str, flag: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    before = optuna.get_all_study_names(url)
    assert_usage_error(capsys, "fidelity", "s", "--storage", url, "--steps", "2000", *flag,
                       needles=(flag[0],))
    assert optuna.get_all_study_names(url) == before


def test_cluster_and_resources_are_checked_before_the_sibling_is_made(
        url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(address: str | None, *args: object, **kwargs: object) -> TrialResources:
        raise ConfigError("address", "is not a Ray cluster (nothing answers there)", address)

    monkeypatch.setattr(search_fidelity, "start_cluster", refuse)
    code, out, err = run(capsys, "fidelity", "s", "--storage", url, "--steps", "2000",
                         "--address", "10.0.0.1:6379")
    assert code == 2 and "--address: is not a Ray cluster" in err, err
    assert "retraining" not in out + err
    assert optuna.get_all_study_names(url) == ["s"]  # no sibling created


def _no_ray(monkeypatch: pytest.MonkeyPatch, tuner: object) -> None:
    monkeypatch.setattr(search_fidelity, "start_cluster",
                        lambda *a, **k: TrialResources(1.0, 0.0, 1))
    monkeypatch.setattr(search_fidelity, "run_tuner", tuner)


def test_ctrl_c_while_retraining_exits_130_with_a_resume_hint(
        url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def stopped_by_sigint(*args: object, **kwargs: object) -> None:
        return None  # Tune's own SIGINT handling: fit() returns with nothing finished

    _no_ray(monkeypatch, stopped_by_sigint)
    code, out, err = run(capsys, "fidelity", "s", "--storage", url, "--steps", "2000")
    assert code == 130, err
    assert "retraining 5 of 5" in out
    assert err.strip().splitlines()[-1].startswith("srnas fidelity: interrupted: run the "
                                                    "same command again")
    assert "error" not in err


def test_a_keyboard_interrupt_outside_tune_exits_130_too(
        url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    _no_ray(monkeypatch, interrupted)
    code, _, err = run(capsys, "fidelity", "s", "--storage", url, "--steps", "2000")
    assert code == 130 and "run the same command again" in err, err


def test_a_killed_drivers_experiment_folder_is_swept(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    host = search_fidelity.socket.gethostname()
    leftover = tmp_path / f"srnas-fidelity-{dead.stdout.strip()}@{host}-abc123"
    mine = tmp_path / f"{search_fidelity.experiment_prefix()}def456"
    elsewhere = tmp_path / f"srnas-fidelity-{dead.stdout.strip()}@other-host-ghi789"
    unrelated = tmp_path / "srnas-fidelity-notes"
    for folder in (leftover, mine, elsewhere, unrelated):
        (folder / "exp").mkdir(parents=True)
    assert search_fidelity.sweep_dead_experiments(tmp_path) == [leftover]
    assert not leftover.exists()
    assert mine.exists() and elsewhere.exists() and unrelated.exists()
    assert str(os.getpid()) in mine.name
