"""A storage call cut off by the database going away is run again (studies/retrying.py): the
disconnect is recognised through Optuna's wrapping, the wait is bounded, other errors pass at
once, and a state change that had committed before the disconnect is not applied twice.

The faults are injected under Optuna, at SQLAlchemy's cursor (a statement that fails as a
terminated session fails), so every path a study takes to the database is covered, Optuna's
trial cache included, without naming any of its methods. The whole path against a real
PostgreSQL server that stops mid-search: test_reliability_outage."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
import sqlalchemy.exc
from optuna.exceptions import StorageInternalError
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from srnas.studies.retrying import RETRIED_CALLS, RetryingStorage, is_disconnect
from tests.fakeclock import FakeClock


class Cuts:
    """Fails chosen statements of an engine as a server that went away does: ``cut(n)`` fails
    the next ``n`` statements; ``at`` fails the statement of that index (0-based, counted from
    when the hook was attached). ``error`` makes the DB-API exception."""

    def __init__(self, engine: Any, error: Callable[[], Exception] | None = None) -> None:
        self.seen = 0
        self.pending = 0
        self.at: int | None = None
        self.failed: list[str] = []
        self.error = error or (lambda: sqlite3.OperationalError(
            "server closed the connection unexpectedly"))
        sqlalchemy.event.listen(engine, "before_cursor_execute", self.hook)

    def cut(self, n: int) -> None:
        self.pending = n

    def hook(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        index = self.seen
        self.seen += 1
        if self.pending > 0 or index == self.at:
            self.pending = max(self.pending - 1, 0)
            self.failed.append(statement.split()[0])
            raise self.error()


def _retrying(path: Path, **kwargs: Any) -> tuple[RetryingStorage, FakeClock]:
    clock = FakeClock()
    backend = RDBStorage(f"sqlite:///{path}", **kwargs)
    return RetryingStorage(backend, retry_s=30, clock=clock, sleep=clock.sleep), clock


@pytest.fixture
def storage(tmp_path: Path) -> tuple[RetryingStorage, FakeClock]:
    return _retrying(tmp_path / "s.db")


def test_the_public_calls_and_the_heartbeat_are_retried() -> None:
    for name in ("create_new_trial", "set_trial_state_values", "get_all_trials", "set_trial_param",
                 "set_trial_user_attr", "record_heartbeat", "get_trial"):
        assert name in RETRIED_CALLS
    assert all(not name.startswith("_") for name in RETRIED_CALLS)


def test_a_disconnect_is_recognised_through_optunas_wrapping() -> None:
    cause = sqlalchemy.exc.OperationalError(
        "SELECT 1", {}, Exception("server closed the connection unexpectedly"),
        connection_invalidated=True)
    error = StorageInternalError("An exception is raised during the commit.")
    error.__cause__ = cause
    assert is_disconnect(error)
    refused = sqlalchemy.exc.OperationalError("connect", {}, Exception("Connection refused"))
    assert is_disconnect(refused)
    integrity = sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
    assert not is_disconnect(integrity) and not is_disconnect(ValueError("x"))


def _workflow(storage: optuna.storages.BaseStorage) -> None:
    """What a driver does to a study: create, enqueue, ask (the cache's new-trial path),
    suggest (its param path), attrs, heartbeats, tell, read (its trial reads)."""
    # load_if_exists, as srnas opens its studies: a retried creation that had committed loads.
    study = optuna.create_study(storage=storage, study_name="w", load_if_exists=True,
                                directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(0))
    study.set_user_attr("scale", 4)
    study.enqueue_trial({"x": 0.5, "k": 7})
    for number in range(2):
        trial = study.ask()
        x = trial.suggest_float("x", 0.0, 1.0)
        k = trial.suggest_categorical("k", [3, 5, 7])
        trial.set_user_attr("arch_id", f"a{number}")
        storage.record_heartbeat(storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name("w"), trial.number))
        study.get_trials(deepcopy=False)  # the live view and rung history read between tells
        if number == 0:
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, [x * 30, float(k)])
    assert len(study.best_trials) >= 1


def _dump(path: Path) -> list[tuple]:
    study = optuna.load_study(study_name="w", storage=f"sqlite:///{path}")
    return [(t.number, t.state.name, t.values, t.params, t.user_attrs) for t in study.trials] \
        + [("study", study.user_attrs)]


# Every statement (slow), or every 5th in the edit loop.
@pytest.mark.parametrize("stride", [pytest.param(1, marks=pytest.mark.slow), 5],
                         ids=["every-statement", "every-5th"])
def test_a_cut_at_any_statement_of_a_drivers_work_leaves_the_same_study(
        tmp_path: Path, stride: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every statement the workflow sends, cut in turn (one run per statement): the call that
    met it is run again and the stored study is the one a run without a fault leaves (no trial
    twice, no param or value lost)."""
    # Optuna's own retry of a new trial sleeps up to 2 s with time.sleep: not what is tested.
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    beats = {"heartbeat_interval": 60, "grace_period": 120}
    empty = tmp_path / "empty.db"
    _retrying(empty, **beats)[0].engine.dispose()  # Optuna's schema, made once and copied
    reference = tmp_path / "reference.db"
    shutil.copy(empty, reference)
    store, _ = _retrying(reference, **beats)
    counter = Cuts(store.engine)
    _workflow(store)
    expected, statements = _dump(reference), counter.seen
    assert statements > 40  # the workflow reaches the database through many paths
    failed: set[str] = set()
    ours = 0
    for index in range(0, statements, stride):
        path = tmp_path / f"cut-{index}.db"
        shutil.copy(empty, path)
        store, clock = _retrying(path, **beats)
        cuts = Cuts(store.engine)
        cuts.at = index
        _workflow(store)
        assert _dump(path) == expected, f"cut at statement {index} ({cuts.failed})"
        # Optuna runs a new trial's insert again itself (its deadlock retry): no wait of ours.
        assert (store.disconnects, clock.slept) in ((1, [0.5]), (0, [])), index
        ours += store.disconnects
        failed.update(cuts.failed)
        path.unlink()
    cut = len(range(0, statements, stride))
    assert {"SELECT", "INSERT", "UPDATE"} <= failed and ours > cut / 2
    print(f"{cut} of {statements} statements cut in turn: {ours} calls run again here, "
          f"{cut - ours} by Optuna itself (its own fallbacks); the same study each time")


def test_a_call_cut_twice_waits_with_backoff_and_answers(storage) -> None:
    store, clock = storage
    study = optuna.create_study(storage=store, study_name="s")
    study.add_trial(optuna.trial.create_trial(value=1.0))
    Cuts(store.engine).cut(2)
    assert [t.value for t in study.get_trials()] == [1.0]
    assert clock.slept == [0.5, 1.0] and store.disconnects == 1


def test_past_the_bound_the_disconnect_comes_through(storage) -> None:
    store, clock = storage
    optuna.create_study(storage=store, study_name="s")
    Cuts(store.engine).cut(10**6)
    with pytest.raises(StorageInternalError):
        store.get_all_studies()
    assert 30 <= clock.now <= 31 and len(clock.slept) >= 4


def test_other_errors_are_not_retried(storage) -> None:
    store, clock = storage
    optuna.create_study(storage=store, study_name="s")
    Cuts(store.engine, error=lambda: sqlite3.IntegrityError("UNIQUE constraint failed")).cut(1)
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        store.get_all_studies()
    assert clock.slept == []


def test_a_state_change_that_committed_before_the_disconnect_is_done_once(storage, monkeypatch
                                                                          ) -> None:
    store, _ = storage
    study = optuna.create_study(storage=store, study_name="s")
    trial = study.ask()
    plain = RDBStorage.set_trial_state_values
    calls = []

    def commits_then_loses_the_ack(self, *args, **kwargs):
        calls.append(args)
        result = plain(self, *args, **kwargs)
        if len(calls) == 1:
            raise StorageInternalError("lost") from sqlalchemy.exc.OperationalError(
                "COMMIT", {}, Exception("server closed the connection unexpectedly"))
        return result

    monkeypatch.setattr(RDBStorage, "set_trial_state_values", commits_then_loses_the_ack)
    study.tell(trial, 3.0)
    assert len(calls) == 2  # run again: Optuna found the trial finished, with these values
    [done] = study.get_trials()
    assert done.state == TrialState.COMPLETE and done.value == 3.0


def test_a_different_finished_state_is_still_an_error(storage, monkeypatch) -> None:
    store, _ = storage
    study = optuna.create_study(storage=store, study_name="s")
    trial = study.ask()
    plain = RDBStorage.set_trial_state_values
    calls = []

    def another_writer_failed_it(self, trial_id, state, values=None):
        calls.append(state)
        if len(calls) == 1:
            plain(self, trial_id, TrialState.FAIL)  # someone else closed it meanwhile
            raise StorageInternalError("lost") from sqlalchemy.exc.OperationalError(
                "COMMIT", {}, Exception("server closed the connection unexpectedly"))
        return plain(self, trial_id, state, values)

    monkeypatch.setattr(RDBStorage, "set_trial_state_values", another_writer_failed_it)
    with pytest.raises(RuntimeError):
        study.tell(trial, 3.0)
    assert study.get_trials()[0].state == TrialState.FAIL


def test_a_study_on_it_is_not_wrapped_again_and_it_pickles(storage) -> None:
    import pickle

    store, _ = storage
    assert optuna.storages.get_storage(store) is store  # Optuna adds no cache of its own
    optuna.create_study(storage=store, study_name="s")
    again = pickle.loads(pickle.dumps(store))
    assert again.retry_s == 30 and again.get_all_studies()[0].study_name == "s"
