"""``SrnasSearcher``: Ray's ``OptunaSearch`` that keeps every measurement in the study.

Ray's searcher tells Optuna only the objective values; everything else a user later queries
(params, FLOPs, latency spread, device, the architecture, why a trial failed) would be lost.
This subclass writes those as user attrs, sets the budgets as Optuna constraints with
``trial.set_constraint`` and only then tells, so ``study.best_trials`` and the samplers see
feasibility. It is usable without Ray running: call ``suggest`` / ``on_trial_complete``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch
from ray.tune.utils.util import unflatten_dict

from studies.schema import BUDGET_KEYS, STATUS_FAILED, STATUS_INFEASIBLE, STATUS_OK

log = logging.getLogger(__name__)

# Result keys that are Ray bookkeeping, not measurements.
_RAY_KEYS = {
    "timestamp", "checkpoint_dir_name", "done", "training_iteration", "trial_id", "date",
    "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "config",
    "time_since_restore", "iterations_since_restore", "experiment_tag", "should_checkpoint",
}


def _jsonable(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int | bool | list | dict) or value is None


class SrnasSearcher(OptunaSearch):
    """OptunaSearch + user attrs + constraints + typed failures."""

    def __init__(self, *args: Any, budgets: Mapping[str, float] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.budgets = dict(budgets or {})
        unknown = set(self.budgets) - set(BUDGET_KEYS)
        if unknown:
            raise ValueError(f"unknown budget keys {sorted(unknown)}; known: {list(BUDGET_KEYS)}")

    @property
    def study(self) -> optuna.Study:
        assert self._ot_study is not None
        return self._ot_study

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        ot_trial = self._ot_trials[trial_id]
        # Tune flattens nested results ("arch/dim"); the study keeps them as nested objects.
        result = unflatten_dict(dict(result or {}))
        for key, value in result.items():
            if key not in _RAY_KEYS and _jsonable(value):
                ot_trial.set_user_attr(key, value)
        status = result.get("status")
        values = [result.get(m) for m in self.metric]
        finite = all(isinstance(v, int | float) and math.isfinite(v) for v in values)
        if status not in (None, STATUS_OK, STATUS_INFEASIBLE) and status != STATUS_FAILED:
            # A last result from mid-training (the trial was stopped): its PSNR is partial.
            status, result["failure_reason"] = STATUS_FAILED, (
                f"stopped during {status} after step {result.get('step', '?')}")
        if error or status == STATUS_FAILED or not finite:
            got = dict(zip(self.metric, values, strict=True))
            reason = result.get("failure_reason") or (
                "the trial raised in its Ray worker (see the Ray logs)" if error
                else f"non-finite or missing objective values {got}")
            ot_trial.set_user_attr("status", STATUS_FAILED)
            ot_trial.set_user_attr("failure_reason", str(reason))
            self._tell(trial_id, None, TrialState.FAIL)
            return None
        for key, budget in self.budgets.items():
            measured = result.get(key)
            if isinstance(measured, int | float):
                ot_trial.set_constraint(key, float(measured) - budget)
        if status is None:
            ot_trial.set_user_attr("status", STATUS_OK)
        self._tell(trial_id, [float(v) for v in values], TrialState.COMPLETE)
        return None

    def fail_unfinished(self, reason: str) -> None:
        """Tell FAIL (with ``reason``) for every trial Tune stopped without completing."""
        for trial_id, ot_trial in list(self._ot_trials.items()):
            if trial_id in self._completed_trials:
                continue
            ot_trial.set_user_attr("status", STATUS_FAILED)
            ot_trial.set_user_attr("failure_reason", reason)
            self._tell(trial_id, None, TrialState.FAIL)

    # The study in SQL is the search's state (a relaunch continues it), so Tune's experiment
    # checkpoints need no pickled copy of the searcher: pickling would drag the storage engine
    # and sampler along on every checkpoint.
    def save(self, checkpoint_path: str) -> None:
        return None

    def restore(self, checkpoint_path: str) -> None:
        return None

    def _tell(self, trial_id: str, values: list[float] | None, state: TrialState) -> None:
        try:
            self.study.tell(self._ot_trials[trial_id], values, state=state)
        except Exception as exc:  # keep the search going; say why the tell failed
            log.warning("could not record trial %s in the study: %s", trial_id, exc)
        self._completed_trials.add(trial_id)


__all__ = ["SrnasSearcher"]
