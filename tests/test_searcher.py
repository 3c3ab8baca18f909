"""The searcher driven directly, without Ray running: attrs, constraints, failures."""

from __future__ import annotations

import math
import time

import optuna
import pytest

from srnas.search.run import DefineByRun
from srnas.search.searcher import SrnasSearcher
from srnas.space import SearchSpace
from srnas.space.contract import STATUS_FAILED

OBJECTIVES = ["psnr", "latency_ms", "memory_mb"]


def _searcher(budgets: dict[str, float] | None = None) -> SrnasSearcher:
    storage = optuna.storages.InMemoryStorage()
    return SrnasSearcher(space=DefineByRun(SearchSpace(), 4), metric=OBJECTIVES,
                         mode=["max", "min", "min"], sampler=optuna.samplers.RandomSampler(0),
                         study_name="direct", storage=storage, budgets=budgets)


def _result(config: dict, **extra: object) -> dict:
    return {"psnr": 25.0, "latency_ms": 12.0, "memory_mb": 30.0, "params": 1000, "flops": 5,
            "arch": config["arch"], "arch_id": "abc", "device": "cpu: test", "status": "ok",
            "training_iteration": 1, "config": config, **extra}


def test_suggest_returns_a_buildable_config_and_complete_records_every_measure() -> None:
    searcher = _searcher()
    config = searcher.suggest("t1")
    assert set(config) >= {"arch", "train", "block_type"}
    searcher.on_trial_complete("t1", _result(config))
    (trial,) = searcher.study.get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.values == [25.0, 12.0, 30.0]
    for key in ("arch", "arch_id", "params", "flops", "device", "status"):
        assert key in trial.user_attrs
    assert "training_iteration" not in trial.user_attrs and "config" not in trial.user_attrs
    assert trial.constraints == {}


def test_budgets_become_constraints_and_infeasible_trials_leave_the_front() -> None:
    searcher = _searcher({"latency_ms": 10.0, "params": 5000})
    for tid, latency, psnr in (("fast", 8.0, 24.0), ("slow", 15.0, 30.0)):
        config = searcher.suggest(tid)
        searcher.on_trial_complete(tid, _result(config, latency_ms=latency, psnr=psnr))
    fast, slow = searcher.study.get_trials()
    assert fast.constraints == {"latency_ms": -2.0, "params": -4000.0}
    assert slow.constraints["latency_ms"] == 5.0
    assert [t.number for t in searcher.study.best_trials] == [fast.number]


@pytest.mark.parametrize(
    ("result", "error", "reason"),
    [
        ({"status": "failed", "failure_reason": "non-finite loss (nan) at step 3",
          "psnr": math.nan}, False, "non-finite loss (nan) at step 3"),
        (None, True, "its Ray worker raised or died"),
        ({"psnr": math.inf}, False, "non-finite or missing objective values"),
    ],
)
def test_failures_are_recorded_as_fail_with_the_reason(result: dict | None, error: bool,
                                                       reason: str) -> None:
    searcher = _searcher()
    config = searcher.suggest("t")
    payload = None if result is None else {**_result(config), **result}
    searcher.on_trial_complete("t", payload, error=error)
    # An errored trial waits for the live view's reason; at the latest the end of the launch
    # closes it with a generic one.
    searcher.fail_unfinished("stopped before it finished")
    (trial,) = searcher.study.get_trials()
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["status"] == STATUS_FAILED
    assert reason in trial.user_attrs["failure_reason"]


def test_unknown_budget_keys_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^budgets: must be among"):
        _searcher({"flops": 1.0})


def test_no_proposal_after_the_deadline_but_running_trials_are_still_recorded() -> None:
    from ray.tune.search import Searcher

    searcher = _searcher()
    config = searcher.suggest("before")
    assert isinstance(config, dict)
    searcher.deadline = time.time() - 1  # the deadline passes while "before" runs
    assert searcher.suggest("after") == Searcher.FINISHED
    searcher.on_trial_complete("before", _result(config))
    (trial,) = searcher.study.get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE


def test_trials_stopped_mid_training_or_never_completed_fail_with_a_reason() -> None:
    searcher = _searcher()
    config = searcher.suggest("mid")
    searcher.on_trial_complete("mid", _result(config, status="training", step=40))
    searcher.suggest("never")
    searcher.fail_unfinished("stopped before it finished (time budget or interrupt)")
    mid, never = searcher.study.get_trials()
    assert mid.state == never.state == optuna.trial.TrialState.FAIL
    assert mid.user_attrs["failure_reason"] == "stopped during training after step 40"
    assert "time budget" in never.user_attrs["failure_reason"]


def test_a_trial_stopped_at_a_rung_is_pruned_with_its_rung_psnr_and_no_psnr() -> None:
    searcher = _searcher()
    config = searcher.suggest("stopped")
    # Tune tells the searcher the last result of a trial its scheduler stopped: a rung report.
    searcher.on_trial_complete("stopped", _result(config, status="rung", step=23,
                                                  rung_psnr={"23": 24.5}, psnr=24.5))
    (trial,) = searcher.study.get_trials()
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["status"] == "stopped_at_rung" and trial.user_attrs["steps"] == 23
    assert trial.user_attrs["rung_psnr"] == {"23": 24.5}
    assert "psnr" not in trial.user_attrs and "ssim" not in trial.user_attrs
    assert trial.user_attrs["latency_ms"] == 12.0  # the cheap measures are kept
    assert searcher.study.best_trials == []  # a partial PSNR never enters the front


def test_a_time_capped_schedule_is_pruned_not_ranked() -> None:
    searcher = _searcher()
    config = searcher.suggest("capped")
    searcher.on_trial_complete("capped", _result(config, status="stopped_by_time_cap",
                                                 steps=58, rung_psnr={"23": 24.0}))
    (trial,) = searcher.study.get_trials()
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["status"] == "stopped_by_time_cap"
    assert "psnr" not in trial.user_attrs and trial.user_attrs["steps"] == 58


def _launch(storage: optuna.storages.BaseStorage, sampler: str, trials: int,
            seed: int = 0) -> list[dict]:
    """One launch of a search on ``storage`` (study 'shared'), driven without Ray."""
    from srnas.search.seeded import make_sampler

    searcher = SrnasSearcher(space=DefineByRun(SearchSpace(), 4), metric=OBJECTIVES,
                             mode=["max", "min", "min"], sampler=make_sampler(sampler, seed),
                             study_name="shared", storage=storage)
    configs = []
    for i in range(trials):
        config = searcher.suggest(f"t{i}")
        configs.append(config["arch"] | config["train"])
        searcher.on_trial_complete(f"t{i}", _result(config, psnr=20.0 + i))
    return configs


@pytest.mark.parametrize("sampler", ["random", "tpe", "nsga2"])
def test_a_relaunch_never_replays_proposals_and_a_fresh_study_is_reproducible(
        sampler: str) -> None:
    storage = optuna.storages.InMemoryStorage()
    first = _launch(storage, sampler, 5)
    second = _launch(storage, sampler, 5)  # same --seed, same study: a relaunch
    keys = [tuple(sorted((k, str(v)) for k, v in c.items())) for c in first + second]
    assert len(set(keys)) == len(keys)
    # A fresh study with the same seed proposes the same trials again.
    assert _launch(optuna.storages.InMemoryStorage(), sampler, 5) == first


def test_interleaved_drivers_on_one_study_propose_distinct_trials() -> None:
    from srnas.search.seeded import make_sampler

    storage = optuna.storages.InMemoryStorage()
    drivers = [SrnasSearcher(space=DefineByRun(SearchSpace(), 4), metric=OBJECTIVES,
                             mode=["max", "min", "min"], sampler=make_sampler("random", 0),
                             study_name="shared", storage=storage) for _ in range(3)]
    configs = []
    for i in range(4):
        for d, searcher in enumerate(drivers):  # three drivers asking in turn
            config = searcher.suggest(f"{d}-{i}")
            configs.append(tuple(sorted((k, str(v)) for k, v in
                                        (config["arch"] | config["train"]).items())))
    assert len(set(configs)) == len(configs) == 12


def test_the_pickled_searcher_holds_no_storage_url(tmp_path) -> None:
    """Tune pickles the searcher into its experiment state on disk; a storage URL (which may
    carry a password) must not be in it."""
    import pickle

    marker = tmp_path / "distinctive-s3cret-name.db"
    storage = optuna.storages.RDBStorage(f"sqlite:///{marker}")
    searcher = SrnasSearcher(space=DefineByRun(SearchSpace(), 4), metric=OBJECTIVES,
                             mode=["max", "min", "min"], sampler=optuna.samplers.RandomSampler(0),
                             study_name="p", storage=storage)
    searcher.suggest("t")
    assert b"distinctive-s3cret-name" not in pickle.dumps(searcher)



def _heartbeat_storage(tmp_path) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'beats.db'}",
                                      heartbeat_interval=1, grace_period=1)


def test_a_trial_has_its_heartbeat_before_the_sampler_samples_it(tmp_path) -> None:
    storage = _heartbeat_storage(tmp_path)
    events: list[tuple[str, int]] = []
    record = storage.record_heartbeat
    storage.record_heartbeat = lambda tid: (events.append(("beat", tid)), record(tid))[1]
    define = DefineByRun(SearchSpace(), 4)

    def space(trial: optuna.Trial) -> dict:
        events.append(("sample", trial.number))
        return define(trial)

    searcher = SrnasSearcher(space=space, metric=OBJECTIVES, mode=["max", "min", "min"],
                             sampler=optuna.samplers.RandomSampler(0), study_name="b",
                             storage=storage)
    config = searcher.suggest("t")
    study_id = storage.get_study_id_from_name("b")
    row = storage.get_trial_id_from_study_id_trial_number(study_id, 0)
    assert events == [("beat", row), ("sample", 0)]
    assert searcher.running_trial_ids() == [row]
    searcher.on_trial_complete("t", _result(config))
    assert searcher.running_trial_ids() == [] and searcher.finished == 1


@pytest.mark.parametrize("retrying", [False, True], ids=["rdb", "retrying"])
def test_a_driver_dying_while_the_sampler_samples_leaves_a_trial_found_stale(
        tmp_path, retrying: bool) -> None:
    from srnas.studies.retrying import RetryingStorage
    from srnas.studies.stale import fail_stale_trials

    storage = _heartbeat_storage(tmp_path)
    if retrying:  # a server writer's storage: the stale check must see through it
        storage = RetryingStorage(storage, retry_s=5)

    def dies(trial: optuna.Trial) -> dict:
        raise KeyboardInterrupt  # the driver goes down mid-sampling: no tell, no more beats

    searcher = SrnasSearcher(space=dies, metric=OBJECTIVES, mode=["max", "min", "min"],
                             sampler=optuna.samplers.RandomSampler(0), study_name="d",
                             storage=storage)
    with pytest.raises(KeyboardInterrupt):
        searcher.suggest("t")
    deadline = time.monotonic() + 30
    lost: list[int] = []
    while not lost and time.monotonic() < deadline:  # past the 1 s grace period
        lost = fail_stale_trials("d", storage)
        time.sleep(0.2)
    assert lost == [0]


def test_the_config_is_the_trials_params_with_the_spaces_constants_nested() -> None:
    def space(trial: optuna.Trial) -> dict:
        trial.suggest_int("a/b", 1, 1)
        trial.suggest_float("x", 0.5, 0.5)
        return {"c": {"d": 2}, "e/f": 3}

    searcher = SrnasSearcher(space=space, metric="psnr", mode="max",
                             sampler=optuna.samplers.RandomSampler(0))
    assert searcher.suggest("t") == {"a": {"b": 1}, "x": 0.5, "c": {"d": 2}, "e": {"f": 3}}
    assert searcher.study.directions == [optuna.study.StudyDirection.MAXIMIZE]
    searcher.on_trial_complete("t", {"psnr": 30.0, "status": "ok"})
    assert searcher.study.best_trial.values == [30.0]


def test_a_metric_without_its_mode_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^metric, mode: must name one mode per metric"):
        SrnasSearcher(space=DefineByRun(SearchSpace(), 4), metric=OBJECTIVES, mode=["max"])
