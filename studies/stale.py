"""Trials whose driver died: found by their lost heartbeat, failed with a reason.

A driver beats for its running trials (``srnas.search.heartbeat``). A RUNNING trial whose last
beat is older than the grace period has no live driver: it is failed through Optuna's own
``fail_stale_trials``, and the reason is kept in the study attr ``lost_trials`` ({number:
reason}; a finished trial's own attrs cannot change). A live driver's trials are never touched.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import optuna

from srnas.space.contract import ATTR_LOST_TRIALS
from srnas.studies.heartbeat import heartbeat_settings
from srnas.studies.retrying import heartbeat_backend

if TYPE_CHECKING:
    from optuna.storages import BaseStorage


def record_lost_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Optuna's stale-trial callback: say why the trial failed."""
    interval, grace = heartbeat_settings()
    lost = dict(study.user_attrs.get(ATTR_LOST_TRIALS) or {})
    lost[str(trial.number)] = (
        f"lost heartbeat: its driver stopped beating for more than {grace} s (it beats every "
        f"{interval} s), so the driver died or was killed")
    study.set_user_attr(ATTR_LOST_TRIALS, lost)


def fail_stale_trials(study_name: str, storage: BaseStorage) -> list[int]:
    """Fail the RUNNING trials of dead drivers of the study; returns their numbers. The storage
    must have been opened with heartbeats (``open_for_write`` or
    ``open_storage(heartbeat=True)``)."""
    # Optuna's check runs on its heartbeat storage only: a retrying writer's backend.
    study = optuna.load_study(study_name=study_name, storage=heartbeat_backend(storage))
    running = optuna.trial.TrialState.RUNNING
    before = {t.number for t in study.get_trials(deepcopy=False, states=[running])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    after = {t.number for t in study.get_trials(deepcopy=False, states=[running])}
    return sorted(before - after)


__all__ = ["fail_stale_trials", "record_lost_trial"]
