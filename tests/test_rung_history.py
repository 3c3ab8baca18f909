"""MO-ASHA's rungs across launches and drivers: a scheduler with the study's rung history
decides as one long run with the same results would (``search/rung_history.py``).

The launches here are schedulers fed rung results directly (the decisions Tune would ask for),
on a real Optuna storage: a relaunch is a new scheduler object over the same study, a second
driver a second scheduler on a second connection. The Ray search itself: test_rung_history_ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import optuna
import pytest

from srnas.search.record import record_result
from srnas.search.rung_history import RungHistory, rung_vectors
from srnas.search.scheduler import MOASHAScheduler
from srnas.space.contract import ATTR_RUNG_RESULTS, STATUS_RUNG

optuna.logging.set_verbosity(optuna.logging.WARNING)

OBJECTIVES = ("psnr", "latency_ms", "memory_mb")
MODES = ("max", "min", "min")
RUNGS = (2, 6, 18)
ETA = 3


@dataclass
class FakeTrial:
    trial_id: str


class Driver:
    """One driver process: its own storage connection and scheduler, asking trials of one
    study as the searcher does and deciding at the first rung."""

    def __init__(self, storage: optuna.storages.BaseStorage, name: str, history: bool = True,
                 refresh_s: float = 0.0) -> None:
        self.storage = storage
        self.study = optuna.load_study(study_name=name, storage=storage)
        self.scheduler = MOASHAScheduler(OBJECTIVES, MODES, RUNGS, ETA)
        self.asked: dict[str, optuna.Trial] = {}
        study_id = storage.get_study_id_from_name(name)
        if history:
            def locate(trial_id: str) -> tuple[int, int] | None:
                trial = self.asked.get(trial_id)
                if trial is None:
                    return None
                return trial.number, storage.get_trial_id_from_study_id_trial_number(
                    study_id, trial.number)

            self.scheduler.attach_history(
                RungHistory(storage, name, OBJECTIVES, RUNGS[:-1], refresh_s=refresh_s), locate)

    def start(self, psnr: float, latency: float = 5.0, memory: float = 10.0) -> str:
        trial = self.study.ask()
        tid = f"{id(self)}-{trial.number}"
        self.asked[tid] = trial
        self.results = getattr(self, "results", {})
        self.results[tid] = {"status": STATUS_RUNG, "step": RUNGS[0], "psnr": psnr,
                             "latency_ms": latency, "memory_mb": memory,
                             "rung_psnr": {str(RUNGS[0]): psnr}}
        return tid

    def decide(self, tid: str) -> bool:
        decision = self.scheduler.on_trial_result(None, FakeTrial(tid), self.results[tid])
        return decision == MOASHAScheduler.CONTINUE

    def end(self, tid: str) -> None:
        """Record the trial as the searcher does when Tune ends it after its rung result."""
        values, state = record_result(self.asked[tid], self.results[tid], OBJECTIVES, {})
        self.study.tell(self.asked[tid], values, state=state)

    def run(self, psnr: float, **kw: float) -> bool:
        tid = self.start(psnr, **kw)
        keep = self.decide(tid)
        self.end(tid)
        return keep


def new_study(storage: optuna.storages.BaseStorage, name: str) -> None:
    optuna.create_study(study_name=name, storage=storage,
                        directions=["maximize", "minimize", "minimize"])


def one_long_run(results: list[float]) -> list[bool]:
    """The decisions of one scheduler that saw every result, in order (no storage)."""
    scheduler = MOASHAScheduler(OBJECTIVES, MODES, RUNGS, ETA)
    return [scheduler.on_trial_result(None, FakeTrial(str(i)), {
        "status": STATUS_RUNG, "step": RUNGS[0], "psnr": p, "latency_ms": 5.0,
        "memory_mb": 10.0}) == MOASHAScheduler.CONTINUE for i, p in enumerate(results)]


def test_single_trial_relaunches_decide_as_one_long_run(tmp_path) -> None:
    """The issue's case: a 9-trial launch, then single-trial launches continuing the study.
    Equal cheap figures, so the rank is the PSNR's: 22.5 and 23.5 dB are worse than two thirds
    of the history (20..28 dB) and must stop; 27.5 dB is second of 12 and continues."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'h.db'}")
    new_study(storage, "s")
    history = [20.0 + i for i in range(9)]
    first = Driver(storage, "s")
    launch_one = [first.run(p) for p in history]
    relaunches = [22.5, 23.5, 27.5]
    seeded = [Driver(storage, "s").run(p) for p in relaunches]
    assert launch_one + seeded == one_long_run(history + relaunches)
    assert seeded == [False, False, True]
    # Without the history (as before): each relaunch alone at its rung, all continue.
    new_study(storage, "blind")
    blind = Driver(storage, "blind", history=False)
    for p in history:
        blind.run(p)
    assert [Driver(storage, "blind", history=False).run(p) for p in relaunches] == [True] * 3


def test_history_from_rung_psnr_alone(tmp_path) -> None:
    """Trials recorded before ``rung_results`` existed still count: their ``rung_psnr`` and
    cheap figures make the vector (ssim, not measured at a rung, is NaN as in the scheduler)."""
    attrs = {"rung_psnr": {"2": 25.0, "6": 26.0}, "latency_ms": 3.0, "memory_mb": 7.0}
    assert rung_vectors(attrs, OBJECTIVES, (2, 6)) == {2: [25.0, 3.0, 7.0], 6: [26.0, 3.0, 7.0]}
    ssim = rung_vectors(attrs, ("psnr", "ssim"), (2,))[2]
    assert ssim[0] == 25.0 and math.isnan(ssim[1])
    written = {**attrs, ATTR_RUNG_RESULTS: {"2": {"psnr": 24.0, "latency_ms": 3.0,
                                                  "memory_mb": None}}}
    vector = rung_vectors(written, OBJECTIVES, (2, 6))
    assert vector[2][:2] == [24.0, 3.0] and math.isnan(vector[2][2]) and vector[6][0] == 26.0

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'o.db'}")
    new_study(storage, "old")
    study = optuna.load_study(study_name="old", storage=storage)
    for p in range(9):  # an old launch: pruned trials with rung_psnr only
        trial = study.ask()
        trial.set_user_attr("rung_psnr", {"2": 20.0 + p})
        trial.set_user_attr("latency_ms", 5.0)
        trial.set_user_attr("memory_mb", 10.0)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert Driver(storage, "old").run(22.5) is False
    assert Driver(storage, "old").run(28.5) is True


def test_refresh_is_bounded_and_incremental(tmp_path) -> None:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'r.db'}")
    new_study(storage, "s")
    writer = Driver(storage, "s")
    for p in (20.0, 21.0, 22.0):
        writer.run(p)
    now = [0.0]
    history = RungHistory(storage, "s", OBJECTIVES, RUNGS[:-1], refresh_s=5.0,
                          clock=lambda: now[0])
    assert history.reads == 1 and list(history.at(2).values()) == [
        [20.0, 5.0, 10.0], [21.0, 5.0, 10.0], [22.0, 5.0, 10.0]]
    running = writer.start(30.0)
    writer.decide(running)  # published while it runs
    now[0] = 4.9
    assert len(history.at(2)) == 3 and history.reads == 1  # within the interval: no read
    now[0] = 5.0
    assert len(history.at(2)) == 4 and history.reads == 2
    assert history.at(2)[3] == [30.0, 5.0, 10.0]  # a running trial's decision, seen


def decide_interleaved(a: Driver, b: Driver, steps: list[tuple[str, float]]) -> list[bool]:
    drivers = {"a": a, "b": b}
    out = []
    for who, psnr in steps:
        out.append(drivers[who].run(psnr))
    return out


STEPS = [("a", 30.0), ("b", 25.0), ("a", 20.0), ("b", 31.0), ("a", 26.0), ("b", 19.0),
         ("a", 32.0)]


def test_two_drivers_share_rungs_postgres(postgres_url) -> None:
    """Two drivers, each with its own connection, alternate on one PostgreSQL study: they
    decide as one scheduler that saw both streams would; alone, each would have kept more."""
    url = postgres_url
    setup = optuna.storages.RDBStorage(url)
    name = f"shared-{id(setup)}"
    new_study(setup, name)
    a, b = Driver(optuna.storages.RDBStorage(url), name), Driver(
        optuna.storages.RDBStorage(url), name)
    shared = decide_interleaved(a, b, STEPS)
    assert shared == one_long_run([p for _, p in STEPS])
    # b's 25 dB after a's 30 dB: stopped (1 of 2 kept); alone it would have continued.
    assert shared[1] is False
    alone_b = one_long_run([p for who, p in STEPS if who == "b"])
    assert alone_b[0] is True


def test_two_drivers_share_rungs_while_running(tmp_path) -> None:
    """A result another driver decided on but whose trial still runs (not yet told) counts."""
    storage = f"sqlite:///{tmp_path / 'two.db'}"
    new_study(optuna.storages.RDBStorage(storage), "s")
    a = Driver(optuna.storages.RDBStorage(storage), "s")
    b = Driver(optuna.storages.RDBStorage(storage), "s")
    ta = a.start(30.0)
    assert a.decide(ta) is True  # still running: told nothing yet
    tb = b.start(25.0)
    assert b.decide(tb) is False  # ranked against a's running trial
    a.scheduler.history.refresh()
    assert a.scheduler.history.sizes() == {2: 2, 6: 0}
    assert a.scheduler.debug_string().endswith("study history 2: 2, 6: 0)")


@pytest.mark.parametrize("refresh_s", [0.0, 3600.0])
def test_own_results_are_never_counted_twice(tmp_path, refresh_s) -> None:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'own.db'}")
    new_study(storage, "s")
    d = Driver(storage, "s", refresh_s=refresh_s)
    # 2 results: keep 1; a second look at the same rung must not see its own trial twice.
    assert [d.run(p) for p in (30.0, 25.0, 31.0, 24.0)] == one_long_run([30.0, 25.0, 31.0,
                                                                            24.0])
