"""End to end with a real local Ray instance and SQLite, tiny budgets."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from srnas.search.cli import main
from srnas.space import from_dict
from srnas.studies.front import pareto_front
from tests.conftest import SMALL_SPACE_YAML

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ATTRS = ("arch", "arch_id", "params", "flops", "latency_ms", "latency_iqr_ms", "memory_mb",
         "psnr", "ssim", "device", "steps", "train_seconds", "versions", "status")


@pytest.fixture(scope="module", autouse=True)
def ray_instance(ray_session: None) -> None:
    """Every test here runs on the session's one local Ray (tests/conftest.py)."""


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(SMALL_SPACE_YAML)
    return path


def _search(tmp_path: Path, space_file: Path, *extra: str) -> int:
    """A tiny search; fifo unless the test names a scheduler (most tests are about other
    things than early stopping, and fifo completes every trial)."""
    scheduler = () if "--scheduler" in extra else ("--scheduler", "fifo")
    return main(["search", "--storage", f"sqlite:///{tmp_path / 'study.db'}", "--study", "t",
                 "--space", str(space_file), "--steps", "3", "--input", "16x16",
                 "--scale", "2", "--concurrency", "2", *scheduler, *extra])


def _study(tmp_path: Path) -> optuna.Study:
    return optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 'study.db'}")


def test_search_records_every_measure_and_a_front_and_relaunch_continues(
        tmp_path: Path, space_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Baselines come on top of --trials: 2 sampled + the tiny preset.
    assert _search(tmp_path, space_file, "--trials", "2", "--baseline", "tiny") == 0
    out = capsys.readouterr().out
    # 3 steps may leave every network below bicubic: then no export is suggested, and why.
    assert "hypervolume" in out and ("srnas export t" in out
                                     or "no network above bicubic yet" in out)
    study = _study(tmp_path)
    trials = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(trials) == 3
    assert study.metric_names == ["psnr", "latency_ms", "memory_mb"]
    for t in trials:
        missing = [a for a in ATTRS if a not in t.user_attrs]
        assert not missing, (t.number, missing)
        assert from_dict(t.user_attrs["arch"]).arch_id == t.user_attrs["arch_id"]
        assert t.values[0] == t.user_attrs["psnr"] > 10
    baseline = [t for t in trials if t.user_attrs.get("baseline") == "tiny"]
    assert len(baseline) == 1 and baseline[0].user_attrs["arch"]["dim"] == 16
    front = pareto_front(study)
    # 3 steps may leave every network below bicubic: the front may then be empty, and says why.
    assert front.attrs["bicubic"]["psnr"] > 0
    assert len(front) + len(front.attrs["below_bicubic"]) >= 1

    # Relaunch: same study, more trials; the sampler sees the earlier ones.
    assert _search(tmp_path, space_file, "--trials", "2", "--baseline", "tiny") == 0
    assert "continuing, 3 trials so far" in capsys.readouterr().out
    assert len(_study(tmp_path).get_trials()) == 5  # the baseline was not queued again

    # The study recorded what its figures were measured under...
    measurement = _study(tmp_path).user_attrs["measurement"]
    assert measurement["steps"] == 3 and measurement["input_hw"] == [16, 16]
    assert measurement["device_kind"] == "cpu" and measurement["scale"] == 2
    # ...and refuses a launch whose figures would not compare, naming both values.
    assert _search(tmp_path, space_file, "--trials", "1", "--steps", "4") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("srnas search: error: --steps: study 't' was measured with training "
                          "steps per trial 3, this launch would use 4") and "--study NAME" in err
    assert _search(tmp_path, space_file, "--trials", "1", "--input", "8x8") == 2
    assert "--input: " in capsys.readouterr().err
    assert len(_study(tmp_path).get_trials()) == 5  # nothing written


def test_time_budget_stops_proposing_but_running_trials_finish(
        tmp_path: Path, space_file: Path) -> None:
    assert _search(tmp_path, space_file, "--trials", "40", "--time-budget", "3",
                   "--concurrency", "1") == 0
    trials = _study(tmp_path).get_trials()
    assert 1 <= len(trials) < 40
    # Tune's own time budget would have stopped the running trial (FAIL); ours lets it end.
    assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}


def test_too_tight_latency_budget_leaves_no_feasible_trial(
        tmp_path: Path, space_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _search(tmp_path, space_file, "--trials", "2", "--max-latency-ms", "0.0001") == 0
    out = capsys.readouterr().out
    assert "no Pareto front yet" in out and "feasible" in out
    study = _study(tmp_path)
    for t in study.trials:
        assert t.user_attrs["status"] == "infeasible_untrained"
        assert t.user_attrs["steps"] == 0  # not trained
        assert t.constraints["latency_ms"] > 0
    assert study.best_trials == []


def test_a_failing_config_is_recorded_as_fail_while_others_complete(
        tmp_path: Path, space_file: Path) -> None:
    # lr 1e9 makes the loss blow up to inf/nan within a few steps: a real training failure.
    space_file.write_text(SMALL_SPACE_YAML + "lr: [0.0005, 1000000000.0]\n")
    assert _search(tmp_path, space_file, "--trials", "4", "--sampler", "random") == 0
    study = _study(tmp_path)
    failed = study.get_trials(states=[optuna.trial.TrialState.FAIL])
    done = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert failed and done
    for t in failed:
        assert t.params["lr"] == 1e9
        assert "non-finite loss" in t.user_attrs["failure_reason"]
    assert all(t.params["lr"] == 0.0005 for t in done)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--gpus-per-trial", "1"], "--gpus-per-trial: must not exceed the 0 GPU(s) Ray sees"),
        (["--cpus-per-trial", "64"], "--cpus-per-trial: must not exceed the largest node's"),
    ],
)
def test_resources_ray_cannot_give_are_refused_before_the_study_is_written(
        tmp_path: Path, space_file: Path, capsys: pytest.CaptureFixture[str],
        argv: list[str], fragment: str) -> None:
    import torch

    if torch.cuda.is_available() and "--gpus-per-trial" in argv:
        pytest.skip("this machine has a GPU")
    assert _search(tmp_path, space_file, "--trials", "1", *argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1
    assert not (tmp_path / "study.db").exists()


@pytest.mark.postgres
def test_search_writes_to_postgresql(postgres_url: str, tmp_path: Path,
                                     space_file: Path) -> None:
    assert main(["search", "--storage", postgres_url, "--study", "pg", "--space",
                 str(space_file), "--steps", "2", "--input", "16x16", "--scale", "2",
                 "--trials", "2", "--concurrency", "2", "--scheduler", "fifo"]) == 0
    study = optuna.load_study(study_name="pg", storage=postgres_url)
    done = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(done) == 2 and all("arch" in t.user_attrs for t in done)


@pytest.mark.e2e
def test_search_joins_an_existing_multi_node_cluster(tmp_path: Path, space_file: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A head and a worker node (separate raylets), joined by address like a real cluster."""
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()  # the driver must connect to the cluster, not to an in-process instance
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        assert main(["search", "--address", cluster.address, "--storage",
                     f"sqlite:///{tmp_path / 'c.db'}", "--study", "c", "--space",
                     str(space_file), "--steps", "2", "--input", "16x16", "--scale", "2",
                     "--trials", "2", "--concurrency", "2", "--scheduler", "fifo"]) == 0
        assert ray.cluster_resources()["CPU"] == 2
        study = optuna.load_study(study_name="c", storage=f"sqlite:///{tmp_path / 'c.db'}")
        assert len(study.get_trials(states=[optuna.trial.TrialState.COMPLETE])) == 2
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_mo_asha_prunes_at_rungs_and_completes_only_full_schedules(
        tmp_path: Path, space_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _search(tmp_path, space_file, "--trials", "8", "--steps", "9", "--min-steps", "1",
                   "--scheduler", "mo-asha", "--sampler", "random") == 0
    out = capsys.readouterr().out
    assert "mo-asha: rungs at 1, 3, 9 steps" in out
    assert "stopped early (PRUNED)" in out
    study = _study(tmp_path)
    assert study.user_attrs["measurement"]["scheduler"] == "mo-asha eta=3 rungs=1/3/9"
    states = {t.state for t in study.trials}
    assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    pruned = study.get_trials(states=[optuna.trial.TrialState.PRUNED])
    done = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert pruned and done
    for t in done:  # trained to the last rung, with every rung's PSNR
        assert t.user_attrs["steps"] == 9 and t.user_attrs["status"] == "ok"
        assert set(t.user_attrs["rung_psnr"]) == {"1", "3", "9"}
        assert t.user_attrs["rung_psnr"]["9"] == t.values[0] == t.user_attrs["psnr"]
    for t in pruned:  # stopped at a rung: PSNR per rung reached, never a psnr of its own
        rungs = t.user_attrs["rung_psnr"]
        assert t.user_attrs["status"] == "stopped_at_rung" and "psnr" not in t.user_attrs
        assert set(rungs) in ({"1"}, {"1", "3"}) and t.user_attrs["steps"] == max(map(int, rungs))
        assert "latency_ms" in t.user_attrs and "arch" in t.user_attrs
    assert {t.number for t in study.best_trials} <= {t.number for t in done}
    assert main(["studies", "list", "--storage", f"sqlite:///{tmp_path / 'study.db'}"]) == 0
    assert "pruned" in capsys.readouterr().out


def test_a_trial_promoted_through_every_rung_ends_as_the_fifo_run(
        tmp_path: Path, space_file: Path) -> None:
    """Alone at each rung, the tiny baseline is promoted to the end: the learning-rate schedule
    spans --steps, not the rung, so it ends with the PSNR of the same config under fifo."""
    psnr = {}
    for scheduler in ("mo-asha", "fifo"):
        folder = tmp_path / scheduler
        folder.mkdir()
        assert _search(folder, space_file, "--trials", "0", "--baseline", "tiny", "--steps",
                       "12", "--min-steps", "2", "--scheduler", scheduler) == 0
        (trial,) = _study(folder).trials
        assert trial.state == optuna.trial.TrialState.COMPLETE
        psnr[scheduler] = trial.values[0]
    assert psnr["mo-asha"] == pytest.approx(psnr["fifo"], abs=1e-9)
