"""``SrnasSearcher``: a Ray Tune searcher that owns its Optuna study and keeps every
measurement in it.

Built on Tune's public ``Searcher`` API (``suggest``, ``on_trial_complete``, ``save`` /
``restore``) and Optuna's public ask/tell: each suggestion asks the study for a trial and runs
the define-by-run space on it; each completion writes the trial's measurements as user attrs
(params, FLOPs, latency spread, device, the architecture, why a trial failed), sets the budgets
as Optuna constraints with ``trial.set_constraint`` and only then tells, so
``study.best_trials`` and the samplers see feasibility. Usable without Ray running: call
``suggest`` / ``on_trial_complete``.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from srnas.search.record import record_failure, record_result
from srnas.space.contract import BUDGET_KEYS
from srnas.studies.schema import check_search_study_name

log = logging.getLogger(__name__)

# Tune's "min"/"max" -> Optuna's study directions.
DIRECTIONS = {"min": "minimize", "max": "maximize"}


def unflatten(flat: Mapping[str, Any], delimiter: str = "/") -> dict[str, Any]:
    """``{"a/b": 1}`` -> ``{"a": {"b": 1}}``: Tune flattens nested results (and a nested
    suggestion's keys) with ``/``; the study and the trainable see them nested."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, last = key.split(delimiter)
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise TypeError(f"cannot unflatten {key!r}: {part!r} holds a value, not a dict")
        node[last] = value
    return out


class SrnasSearcher(Searcher):
    """Ask/tell around a define-by-run space + user attrs + constraints + typed failures + a
    proposal deadline, on a study this searcher opens (or joins) in ``storage``.

    ``space`` is called with each asked ``optuna.Trial``; it suggests through it and may
    return a dict of constants. A suggestion is the trial's params with that dict on top
    (keys with ``/`` nested), what Ray's ``OptunaSearch`` hands Tune.

    ``deadline`` (a ``time.time()`` value) stops *proposing* trials once passed; trials already
    running finish and are recorded (Optuna's ``timeout`` meaning, not Tune's
    ``time_budget_s``, which would stop them and throw their compute away).
    """

    def __init__(self, space: Callable[[optuna.Trial], Mapping[str, Any] | None],
                 metric: str | Sequence[str], mode: str | Sequence[str], *,
                 sampler: optuna.samplers.BaseSampler | None = None,
                 study_name: str = "optuna",
                 storage: optuna.storages.BaseStorage | None = None,
                 budgets: Mapping[str, float] | None = None,
                 deadline: float | None = None) -> None:
        objectives = [metric] if isinstance(metric, str) else list(metric)
        modes = [mode] if isinstance(mode, str) else list(mode)
        if len(objectives) != len(modes) or not objectives:
            raise ValueError(f"metric, mode: must name one mode per metric (got {objectives}, "
                             f"{modes})")
        unknown_modes = set(modes) - set(DIRECTIONS)
        if unknown_modes:
            raise ValueError(f"mode: must be 'min' or 'max' (got {sorted(unknown_modes)})")
        self.budgets = dict(budgets or {})
        unknown = set(self.budgets) - set(BUDGET_KEYS)
        if unknown:
            raise ValueError(f"budgets: must be among {list(BUDGET_KEYS)} (got {sorted(unknown)})")
        # Tune checks every result for the searcher's metrics (its public ``metric``).
        super().__init__(metric=objectives, mode=modes)
        self.objectives = tuple(objectives)
        self.space = space
        self.deadline = deadline
        self.deadline_passed = False
        # The searcher keeps the storage object it opened the study on: the heartbeat needs it,
        # and a study does not hand its storage out publicly.
        self.storage = storage if storage is not None else optuna.storages.InMemoryStorage()
        check_search_study_name(study_name)  # before a study of a reserved name is created
        # Optuna's TPE when no sampler is given and no pruner: what OptunaSearch did; stopping
        # trials early is the scheduler's job.
        self.study = optuna.create_study(
            storage=self.storage, sampler=sampler or optuna.samplers.TPESampler(),
            pruner=optuna.pruners.NopPruner(), study_name=study_name, load_if_exists=True,
            directions=[DIRECTIONS[m] for m in modes])
        # With a trial's number, the study's id names the trial's row in the storage (for its
        # heartbeats): public storage methods, not Optuna's private trial id.
        self.study_id = self.storage.get_study_id_from_name(study_name)
        self.trials: dict[str, optuna.Trial] = {}  # Tune trial id -> asked Optuna trial
        self.storage_ids: dict[str, int] = {}  # Tune trial id -> the trial's storage id
        self.completed: set[str] = set()  # told (or given up on)
        self.errored: dict[str, dict] = {}  # trial id -> last result, until closed

    def set_search_properties(self, metric: str | None, mode: str | None,
                              config: dict, **spec: Any) -> bool:
        """The space, metrics and modes are fixed at construction: Tune's are not taken."""
        return False

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.deadline is not None and time.time() >= self.deadline:
            self.deadline_passed = True
            return Searcher.FINISHED
        trial = self.trials.get(trial_id)
        if trial is None:
            with warnings.catch_warnings():
                # Optuna warns on every ask that heartbeats are meant for Study.optimize: the
                # driver beats for its ask/tell trials itself (srnas.search.heartbeat).
                warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
                trial = self.study.ask()
            self.trials[trial_id] = trial
            self.storage_ids[trial_id] = self.storage.get_trial_id_from_study_id_trial_number(
                self.study_id, trial.number)
        # A beat before the sampler samples: a trial with no beat at all can never be found
        # stale, and a driver killed while the sampler works (tens of ms per trial) would
        # otherwise leave one RUNNING forever.
        self.beat(self.storage_ids[trial_id])
        constants = self.space(trial)
        if constants is not None and not isinstance(constants, Mapping):
            raise TypeError(f"space: must return None or a dict (got {type(constants)})")
        return unflatten({**trial.params, **(constants or {})})

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Nothing: the study keeps each trial's final result only (the scheduler decides on
        intermediate ones)."""

    def beat(self, storage_trial_id: int) -> None:
        """One heartbeat for a trial of this driver (when the storage keeps heartbeats)."""
        if getattr(self.storage, "heartbeat_interval", None):
            self.storage.record_heartbeat(storage_trial_id)

    def running_trial_ids(self) -> list[int]:
        """Storage ids of this launch's trials that have not ended (for the heartbeat)."""
        return [sid for tid, sid in list(self.storage_ids.items()) if tid not in self.completed]

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles the searcher into its experiment state on disk: the storage (its URL
        # may hold a password), the study and its trials stay out of it. A restored copy would
        # need them, but srnas never restores from Tune's state: the study in SQL is the state.
        hidden = ("storage", "study", "trials")
        return {k: v for k, v in self.__dict__.items() if k not in hidden}

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if trial_id in self.completed or trial_id not in self.trials:
            log.warning("completion of trial %s ignored: %s", trial_id,
                        "already recorded" if trial_id in self.completed else "not proposed here")
            return
        if error:
            # Tune tells the searcher before its callbacks see the error itself: the live view
            # closes the trial with the reason (close_errored), fail_unfinished otherwise.
            self.errored[trial_id] = dict(result or {})
            return
        values, state = record_result(self.trials[trial_id], unflatten(dict(result or {})),
                                      self.objectives, self.budgets)
        self._tell(trial_id, values, state)

    def close_errored(self, trial_id: str, reason: str) -> None:
        """Record a trial whose Ray worker raised or died, with why."""
        if trial_id not in self.errored or trial_id in self.completed:
            return
        values, state = record_result(self.trials[trial_id],
                                      unflatten(self.errored.pop(trial_id)),
                                      self.objectives, self.budgets, error=reason)
        self._tell(trial_id, values, state)

    def fail_unfinished(self, reason: str) -> int:
        """Tell FAIL (with ``reason``) for every trial Tune stopped without completing; returns
        how many there were."""
        for trial_id in list(self.errored):
            self.close_errored(trial_id, "its Ray worker raised or died (see the Ray logs)")
        unfinished = [t for t in self.trials if t not in self.completed]
        for trial_id in unfinished:
            self._tell(trial_id, *record_failure(self.trials[trial_id], reason))
        return len(unfinished)

    @property
    def finished(self) -> int:
        """Trials of this launch that ended with a result (complete, pruned or failed)."""
        return len(self.completed)

    # The study in SQL is the search's state (a relaunch continues it), so Tune's experiment
    # checkpoints need no pickled copy of the searcher: pickling would drag the storage engine
    # and sampler along on every checkpoint.
    def save(self, checkpoint_path: str) -> None:
        return None

    def restore(self, checkpoint_path: str) -> None:
        return None

    def _tell(self, trial_id: str, values: list[float] | None, state: TrialState) -> None:
        try:
            self.study.tell(self.trials[trial_id], values, state=state)
        except Exception as exc:  # keep the search going; say why the tell failed
            log.warning("could not record trial %s in the study: %s", trial_id, exc)
        self.completed.add(trial_id)


__all__ = ["SrnasSearcher", "unflatten"]
