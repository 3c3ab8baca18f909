"""``srnas fidelity``: selection, the agreement figures against hand computation, the sibling
study, ``pareto --fidelity``, bad input; and one real retrain run on local Ray + SQLite."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from srnas.search.cli import main
from srnas.search.fidelity import open_sibling, record_retrain
from srnas.space.config import ArchConfig
from srnas.studies import fidelity as fid
from srnas.studies.frame import trials_frame
from srnas.studies.schema import fidelity_study_name
from tests.conftest import SMALL_SPACE_YAML
from tests.fabricate import fake_trial, make_study

# (brief psnr, latency_ms, long psnr). Brief front: {0, 1, 2, 4} (4 is the fastest, 1 the
# best, 0 and 2 trade between them; 3 is dominated by 0). With the long PSNR, 4 (29.0 at 4 ms)
# dominates 2 (28.9 at 5 ms) and 3 (30.6 at 12 ms) escapes 0 (30.5 at 10 ms).
# Brief order 1 > 0 > 3 > 2 > 4, long order 1 > 3 > 0 > 4 > 2: discordant pairs (0, 3) and
# (2, 4) of 10 -> tau = (8 - 2) / 10 = 0.6; rank differences 0, 1, 1, 1, 1 -> rho =
# 1 - 6 * 4 / (5 * 24) = 0.8. Top-2: {1, 0} vs {1, 3} -> 1; top-3: {1, 0, 3} both -> 3.
KNOWN = ((30.0, 10.0, 30.5), (31.0, 20.0, 31.2), (29.0, 5.0, 28.9), (29.5, 12.0, 30.6),
         (28.0, 4.0, 29.0))


def _arch(i: int) -> ArchConfig:
    return ArchConfig(dim=16 + 8 * i, kernel_size=7 + 2 * (i % 4), n_blocks=1 + i % 3)


def _known(storage: str, retrain: bool = True) -> optuna.Study:
    study = make_study(storage, "s")
    for i, (brief, latency, _) in enumerate(KNOWN):
        fake_trial(study, psnr=brief, latency_ms=latency, memory_mb=100.0, params=1000,
                   flops=10_000, arch=_arch(i))
    if retrain:
        sibling = open_sibling(study, storage)
        for i, (brief, _, long) in enumerate(KNOWN):
            job = {"source_trial": i, "arch_id": _arch(i).arch_id, "seed": 0,
                   "train": {"lr": 5e-4}, "brief_psnr": brief, "brief_steps": 200}
            assert record_retrain(sibling, job, 2000, {"status": "ok", "psnr": long,
                                                       "ssim": 0.8, "device": "cpu: test"})
    return study


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'f.db'}"


def test_agreement_figures_match_hand_computation(url: str) -> None:
    study = _known(url)
    pairs = fid.pairs_frame(trials_frame(study), 2000, fid.load_sibling("s", url), study)
    assert list(pairs["number"]) == [0, 1, 2, 3, 4]
    assert list(pairs["on_brief_front"]) == [True, True, True, False, True]
    figures = fid.agreement(pairs, top_k=2)
    assert figures["kendall_tau"] == pytest.approx(0.6)
    assert figures["spearman_rho"] == pytest.approx(0.8)
    assert (figures["top_k_overlap"], figures["top_brief"], figures["top_long"]) == \
        (1, [1, 0], [1, 3])
    assert fid.agreement(pairs, top_k=3)["top_k_overlap"] == 3
    assert figures["brief_front"] == [0, 1, 2, 4]
    assert figures["brief_front_kept"] == [0, 1, 4]
    assert figures["long_front"] == [0, 1, 3, 4]
    assert figures["mean_gain"] == pytest.approx((0.5 + 0.2 - 0.1 + 1.1 + 1.0) / 5)
    for name in ("kendall", "spearman"):
        low, high = figures[f"{name}_ci"]
        assert -1.0 <= low <= high <= 1.0
    assert figures["same_budget"] is None  # every brief PSNR after 200 steps
    # Trials 3 and 4 measured at an earlier rung instead: the figures among 0, 1, 2 alone
    # (brief 1 > 0 > 2, long 1 > 0 > 2: tau 1).
    mixed = pairs.assign(brief_steps=[200, 200, 200, 69, 23])
    mixed.attrs = dict(pairs.attrs)
    same = fid.agreement(mixed)["same_budget"]
    assert (same["brief_steps"], same["pairs"], same["kendall_tau"]) == (200, 3, 1.0)


def test_selection_takes_the_front_then_spreads_over_the_psnr_range(url: str) -> None:
    study = make_study(url, "sel")
    # Trial 0 dominates every other (best PSNR, lowest latency): the front is {0}.
    fake_trial(study, psnr=33.0, latency_ms=1.0, memory_mb=1.0, arch=_arch(0))
    for i, psnr in enumerate((20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0), start=1):
        fake_trial(study, psnr=psnr, latency_ms=10.0, memory_mb=10.0, arch=_arch(i))
    # Four more: targets 20, 22.67, 25.33, 28 -> the nearest unused trials 1, 4 (22.67 is
    # nearest 23), 6 (25.33 nearest 25) and 9.
    assert fid.select_trials(study, 5) == [0, 1, 4, 6, 9]
    assert fid.select_trials(study, 20) == list(range(10))
    with pytest.raises(Exception, match="at least 3"):
        fid.select_trials(study, 2)


def _pruned(study: optuna.Study, arch: ArchConfig, rungs: dict[str, float]) -> int:
    """A trial MO-ASHA stopped at its last rung, as the search records one."""
    trial = study.ask()
    trial.set_user_attr("arch", arch.to_dict())
    trial.set_user_attr("rung_psnr", rungs)
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return trial.number


def test_selection_fills_with_pruned_trials_from_the_highest_rung_down(url: str) -> None:
    study = make_study(url, "p")
    fake_trial(study, psnr=30.0, latency_ms=1.0, memory_mb=1.0, arch=_arch(0))  # the front
    fake_trial(study, psnr=29.0, latency_ms=2.0, memory_mb=2.0, arch=_arch(1))
    low = [_pruned(study, _arch(2 + i), {"23": 20.0 + i}) for i in range(3)]  # 2, 3, 4
    high = [_pruned(study, _arch(5 + i), {"23": 25.0, "69": 26.0 + i}) for i in range(3)]
    assert fid.select_trials(study, 4) == [0, 1]  # complete trials only by default
    # Two slots left after the complete trials: the rung-69 trials' lowest and highest.
    assert fid.select_trials(study, 4, include_pruned=True) == [0, 1, high[0], high[2]]
    # More slots than rung 69 holds: then rung 23, spread over its PSNR range.
    assert fid.select_trials(study, 7, include_pruned=True) == [0, 1, *high, low[0], low[2]]
    assert fid.brief_of(study.trials[high[1]], [("psnr", "maximize")]) == fid.Brief(
        high[1], 27.0, 69, False)


def _cli(url: str, *args: str) -> int:
    return main(["fidelity", "s", "--storage", url, *args])


def test_report_only_prints_the_figures_and_json_and_csv_agree(
        url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _known(url)
    assert _cli(url, "--steps", "2000", "--report-only", "--plot",
                str(tmp_path / "f.png")) == 0
    out = capsys.readouterr().out
    assert "Kendall tau +0.600" in out and "Spearman rho +0.800" in out
    assert "brief front kept after retraining: 3/4 [0, 1, 4]" in out
    assert (tmp_path / "f.png").stat().st_size > 1000
    assert _cli(url, "--steps", "2000", "--report-only", "--format", "json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["kendall_tau"] == pytest.approx(0.6) and len(document["trials"]) == 5
    assert _cli(url, "--steps", "2000", "--report-only", "--format", "csv") == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("number,state,arch_id,brief_psnr")


def test_pareto_fidelity_ranks_with_the_long_psnr(url: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _known(url)
    assert main(["pareto", "s", "--storage", url, "--format", "json"]) == 0
    brief = {t["number"] for t in json.loads(capsys.readouterr().out)["trials"]}
    assert brief == {0, 1, 2, 4}
    assert main(["pareto", "s", "--storage", url, "--fidelity", "2000", "--format",
                 "json"]) == 0
    trials = json.loads(capsys.readouterr().out)["trials"]
    assert {t["number"] for t in trials} == {0, 1, 3, 4}
    assert {t["number"]: t["psnr"] for t in trials}[3] == pytest.approx(30.6)
    assert main(["pareto", "s", "--storage", url, "--fidelity", "2000"]) == 0
    out = capsys.readouterr().out
    assert "2000 steps for the 5 retrained trial(s)" in out and "psnr_steps" in out
    assert main(["pareto", "s", "--storage", url, "--fidelity", "999"]) == 2
    assert "--fidelity: study 's' has no retrains at that budget; budgets measured: 2000" \
        in capsys.readouterr().err
    assert main(["pareto", "--all-studies", "--storage", url, "--fidelity", "2000"]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "--fidelity: reads one study's retrains; give a study, not --all-studies (got 2000)")


def test_sibling_study_stays_out_of_listings_and_merges(url: str,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    _known(url)
    assert fidelity_study_name("s") in optuna.get_all_study_names(url)
    assert main(["studies", "list", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "s:fidelity" not in out and "5 at 2000 steps" in out
    assert main(["pareto", "--all-studies", "--storage", url, "--format", "csv"]) == 0


@pytest.mark.parametrize(("args", "message"), [
    (("--steps", "200"), "--steps: must be an integer above the study's 200 training steps"),
    (("--trial", "42"), "--trial: study 's' has no trial of that number (trials: 0..5)"),
    (("--trial", "5"), "--trial: trial 5 records no architecture"),
    (("--trials", "2"), "--trials: must be at least 3"),
    (("--format", "xml"), "--format: must be one of table, csv, json, markdown (got 'xml')"),
    (("--plot", "no-such-folder/f.png"), "--plot: its folder does not exist"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
        url: str, args: tuple[str, ...], message: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    study = _known(url, retrain=False)
    fake_trial(study, state="PRUNED")  # trial 5: no architecture recorded
    before = optuna.get_all_study_names(url)
    assert _cli(url, *args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert optuna.get_all_study_names(url) == before


def test_too_few_complete_trials_is_refused(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    study = make_study(url, "s")
    for i in range(2):
        fake_trial(study, psnr=28.0 + i, latency_ms=5.0, memory_mb=5.0, arch=_arch(i))
    assert _cli(url) == 2
    assert "needs at least 3 complete trials with a PSNR for a rank correlation; 's' has 2" \
        in capsys.readouterr().err


# -- the real thing: a tiny search, then its retrains on local Ray ------------------------------
@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    import ray

    yield
    ray.shutdown()


@pytest.mark.ray
@pytest.mark.slow
def test_retrains_run_on_ray_are_recorded_resumable_and_repeat_the_recipe(
        tmp_path: Path, ray_instance: None, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from srnas.evaluators.evaluate import DataSpec, evaluate
    from srnas.evaluators.recipe import Recipe
    from srnas.space.config import from_dict

    space = tmp_path / "space.yaml"
    space.write_text(SMALL_SPACE_YAML)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    assert main(["search", "--storage", url, "--study", "s", "--space", str(space),
                 "--steps", "3", "--input", "16x16", "--scale", "2", "--concurrency", "2",
                 "--scheduler", "fifo", "--trials", "3", "--seed", "5"]) == 0
    capsys.readouterr()
    assert _cli(url, "--steps", "6", "--trials", "3") == 0
    out = capsys.readouterr().out
    assert "retraining 3 of 3 trials for 6 steps (brief: 3 steps)" in out
    assert "Kendall tau" in out
    sibling = optuna.load_study(study_name="s:fidelity", storage=url)
    done = sibling.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(done) == 3
    study = optuna.load_study(study_name="s", storage=url)
    source = {t.number: t for t in study.trials}
    for retrain in done:
        attrs = retrain.user_attrs
        trial = source[attrs["source_trial"]]
        assert attrs["steps"] == 6 and attrs["brief_steps"] == 3 and attrs["seed"] == 5
        assert attrs["brief_psnr"] == pytest.approx(trial.values[0])
    # Independent truth: the retrain is the search's evaluation at 6 steps, same seed and
    # recipe (evaluated here in-process, without Ray).
    first = done[0]
    trial = source[first.user_attrs["source_trial"]]
    config = from_dict(trial.user_attrs["arch"])
    # CPU gradients depend on torch's thread count (a Ray trial gets its CPU share): the
    # retrain records it, and the rerun uses it.
    threads = torch.get_num_threads()
    torch.set_num_threads(first.user_attrs["threads"])
    try:
        again = evaluate(config, Recipe.brief(steps=6, seed=5, **first.user_attrs["train"]),
                         DataSpec(), "cpu", input_hw=(16, 16))
    finally:
        torch.set_num_threads(threads)
    assert again.psnr == pytest.approx(first.value, abs=1e-9)
    # A rerun skips what is done and adds nothing.
    assert _cli(url, "--steps", "6", "--trials", "3") == 0
    assert "retraining 0 of 3 trials" in capsys.readouterr().out
    assert len(optuna.load_study(study_name="s:fidelity", storage=url).trials) == 3


@pytest.mark.parametrize(("train", "val"), [(None, None), ("imgs", None), ("imgs", "Set5"),
                                          (("a", "b"), "Set5")])
def test_retrains_read_back_the_data_the_search_recorded(
        tmp_path: Path, train: str | tuple[str, ...] | None, val: str | None) -> None:
    """Round trip: the data a search records at creation is the data its retrains train on
    (several training folders included)."""
    from srnas.search.fidelity import recorded_data
    from srnas.search.settings import SearchSettings
    from srnas.space.contract import ATTR_MEASUREMENT

    names = train if isinstance(train, tuple) else (train,)
    trains = tuple(str(tmp_path / f) for f in names if f is not None)
    for folder in (*trains, *([str(tmp_path / val)] if val else [])):
        Path(folder).mkdir()
    given = trains if len(trains) > 1 else (trains[0] if trains else None)
    settings = SearchSettings(train=given, val=str(tmp_path / val) if val else None)
    study = optuna.create_study(directions=["maximize", "minimize"])
    # Through JSON, as the storage keeps it (a tuple comes back as a list).
    import json

    study.set_user_attr(ATTR_MEASUREMENT, json.loads(json.dumps(settings.measurement("cpu"))))
    assert recorded_data(study) == (given, str(tmp_path / val) if val else None)
    assert recorded_data(optuna.create_study()) == (None, None)  # a study from before records
