"""``SrnasSearcher``: Ray's ``OptunaSearch`` that keeps every measurement in the study.

Ray's searcher tells Optuna only the objective values; everything else a user later queries
(params, FLOPs, latency spread, device, the architecture, why a trial failed) would be lost.
This subclass writes those as user attrs, sets the budgets as Optuna constraints with
``trial.set_constraint`` and only then tells, so ``study.best_trials`` and the samplers see
feasibility. It is usable without Ray running: call ``suggest`` / ``on_trial_complete``.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch
from ray.tune.utils.util import unflatten_dict

from srnas.search.record import record_failure, record_result
from srnas.space.contract import BUDGET_KEYS

log = logging.getLogger(__name__)


class _BeatFirst:
    """The define-by-run space, with a heartbeat for the trial before it is sampled: a trial
    with no beat at all can never be found stale, and a driver killed while the sampler
    works (tens of ms per trial) would otherwise leave one RUNNING forever."""

    def __init__(self, space: Callable[[Any], Any], searcher: SrnasSearcher) -> None:
        self.space, self.searcher = space, searcher

    def __call__(self, trial: Any) -> Any:
        self.searcher.beat(trial._trial_id)
        return self.space(trial)


class SrnasSearcher(OptunaSearch):
    """OptunaSearch + user attrs + constraints + typed failures + a proposal deadline.

    ``deadline`` (a ``time.time()`` value) stops *proposing* trials once passed; trials already
    running finish and are recorded (Optuna's ``timeout`` meaning, not Tune's
    ``time_budget_s``, which would stop them and throw their compute away).
    """

    def __init__(self, *args: Any, budgets: Mapping[str, float] | None = None,
                 deadline: float | None = None, **kwargs: Any) -> None:
        if callable(kwargs.get("space")):
            kwargs["space"] = _BeatFirst(kwargs["space"], self)
        super().__init__(*args, **kwargs)
        self.budgets = dict(budgets or {})
        unknown = set(self.budgets) - set(BUDGET_KEYS)
        if unknown:
            raise ValueError(f"budgets: must be among {list(BUDGET_KEYS)} (got {sorted(unknown)})")
        self.deadline = deadline
        self.deadline_passed = False
        self._errored: dict[str, dict] = {}  # trial id -> last result, until closed

    @property
    def study(self) -> optuna.Study:
        assert self._ot_study is not None
        return self._ot_study

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.deadline is not None and time.time() >= self.deadline:
            self.deadline_passed = True
            return Searcher.FINISHED
        with warnings.catch_warnings():
            # Optuna warns on every ask that heartbeats are meant for Study.optimize: the
            # driver beats for its ask/tell trials itself (srnas.search.heartbeat).
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
            return super().suggest(trial_id)

    def beat(self, storage_trial_id: int) -> None:
        """One heartbeat for a trial of this driver (when the storage keeps heartbeats)."""
        if getattr(self._storage, "heartbeat_interval", None):
            self._storage.record_heartbeat(storage_trial_id)

    def running_trial_ids(self) -> list[int]:
        """Storage ids of this launch's trials that have not ended (for the heartbeat)."""
        return [t._trial_id for tid, t in list(self._ot_trials.items())
                if tid not in self._completed_trials]

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles the searcher into its experiment state on disk: the storage (its URL
        # may hold a password), the study and its trials stay out of it. A restored copy would
        # need them, but srnas never restores from Tune's state: the study in SQL is the state.
        hidden = ("_storage", "_ot_study", "_ot_trials", "_sampler")
        return {k: v for k, v in self.__dict__.items() if k not in hidden}

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        if error:
            # Tune tells the searcher before its callbacks see the error itself: the live view
            # closes the trial with the reason (close_errored), fail_unfinished otherwise.
            self._errored[trial_id] = dict(result or {})
            return None
        # Tune flattens nested results ("arch/dim"); the study keeps them as nested objects.
        values, state = record_result(
            self._ot_trials[trial_id], unflatten_dict(dict(result or {})), self.metric,
            self.budgets)
        self._tell(trial_id, values, state)
        return None

    def close_errored(self, trial_id: str, reason: str) -> None:
        """Record a trial whose Ray worker raised or died, with why."""
        if trial_id not in self._errored or trial_id in self._completed_trials:
            return
        values, state = record_result(
            self._ot_trials[trial_id], unflatten_dict(self._errored.pop(trial_id)),
            self.metric, self.budgets, error=reason)
        self._tell(trial_id, values, state)

    def fail_unfinished(self, reason: str) -> int:
        """Tell FAIL (with ``reason``) for every trial Tune stopped without completing; returns
        how many there were."""
        for trial_id in list(self._errored):
            self.close_errored(trial_id, "its Ray worker raised or died (see the Ray logs)")
        unfinished = [t for t in self._ot_trials if t not in self._completed_trials]
        for trial_id in unfinished:
            self._tell(trial_id, *record_failure(self._ot_trials[trial_id], reason))
        return len(unfinished)

    @property
    def finished(self) -> int:
        """Trials of this launch that ended with a result (complete, pruned or failed)."""
        return len(self._completed_trials)

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
