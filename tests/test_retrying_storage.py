"""A storage call cut off by the database going away is run again (studies/retrying.py): the
disconnect is recognised through Optuna's wrapping, the wait is bounded, other errors pass at
once, and a state change that had committed before the disconnect is not applied twice. The
whole path against a real PostgreSQL server that stops mid-search: test_reliability_outage."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import sqlalchemy.exc
from optuna.exceptions import StorageInternalError
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from srnas.studies.retrying import RETRIED_CALLS, RetryingRDBStorage, is_disconnect
from tests.fakeclock import FakeClock


def _disconnect() -> StorageInternalError:
    """What Optuna raises when the server terminates the session under a statement."""
    cause = sqlalchemy.exc.OperationalError(
        "SELECT 1", {}, Exception("server closed the connection unexpectedly"),
        connection_invalidated=True)
    error = StorageInternalError("An exception is raised during the commit.")
    error.__cause__ = cause
    return error


@pytest.fixture
def storage(tmp_path: Path) -> tuple[RetryingRDBStorage, FakeClock]:
    clock = FakeClock()
    store = RetryingRDBStorage(f"sqlite:///{tmp_path / 's.db'}", retry_s=30, clock=clock,
                               sleep=clock.sleep)
    return store, clock


def test_the_public_calls_and_the_heartbeat_are_retried() -> None:
    for name in ("create_new_trial", "set_trial_state_values", "get_all_trials",
                 "set_trial_user_attr", "record_heartbeat", "get_trial"):
        assert name in RETRIED_CALLS
    assert all(not name.startswith("_") for name in RETRIED_CALLS)


def test_a_disconnect_is_recognised_through_optunas_wrapping() -> None:
    assert is_disconnect(_disconnect())
    refused = sqlalchemy.exc.OperationalError("connect", {}, Exception("Connection refused"))
    assert is_disconnect(refused)
    integrity = sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
    assert not is_disconnect(integrity) and not is_disconnect(ValueError("x"))


def test_a_read_cut_off_twice_is_run_again_and_answers(storage, monkeypatch) -> None:
    store, clock = storage
    study = optuna.create_study(storage=store, study_name="s")
    study.add_trial(optuna.trial.create_trial(value=1.0))
    plain = RDBStorage.get_all_trials
    failures = iter([_disconnect(), _disconnect()])

    def flaky(self, *args, **kwargs):
        for error in failures:
            raise error
        return plain(self, *args, **kwargs)

    monkeypatch.setattr(RDBStorage, "get_all_trials", flaky)
    trials = store.get_all_trials(store.get_study_id_from_name("s"))
    assert [t.value for t in trials] == [1.0]
    assert clock.slept == [0.5, 1.0] and store.disconnects == 1


def test_past_the_bound_the_disconnect_comes_through(storage, monkeypatch) -> None:
    store, clock = storage

    def down(self, *args, **kwargs):
        raise _disconnect()

    monkeypatch.setattr(RDBStorage, "get_all_studies", down)
    with pytest.raises(StorageInternalError):
        store.get_all_studies()
    assert 30 <= clock.now <= 31 and len(clock.slept) >= 4


def test_other_errors_are_not_retried(storage, monkeypatch) -> None:
    store, clock = storage

    def broken(self, *args, **kwargs):
        raise StorageInternalError("exceeding max length")

    monkeypatch.setattr(RDBStorage, "get_all_studies", broken)
    with pytest.raises(StorageInternalError):
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
            raise _disconnect()
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
            raise _disconnect()
        return plain(self, trial_id, state, values)

    monkeypatch.setattr(RDBStorage, "set_trial_state_values", another_writer_failed_it)
    with pytest.raises(RuntimeError):
        study.tell(trial, 3.0)
    assert study.get_trials()[0].state == TrialState.FAIL


def test_it_pickles_as_an_rdb_storage_does(storage) -> None:
    import pickle

    store, _ = storage
    optuna.create_study(storage=store, study_name="s")
    again = pickle.loads(pickle.dumps(store))
    assert again.retry_s == 30 and again.get_all_studies()[0].study_name == "s"
