"""``MOASHAScheduler``: asynchronous multi-objective successive halving as a Ray Tune scheduler.

Neither Optuna 5 (``Trial.report`` raises for multi-objective studies) nor Tune 2.60 (ASHA and
HyperBand take one metric) stops multi-objective trials early, so it lives here, as a
``FIFOScheduler`` subclass deciding CONTINUE/STOP in ``on_trial_result``: it runs unchanged on
any Ray cluster. The trainable reports once per rung (status ``rung``); the decision uses the
PSNR at that rung plus the cheap objectives, which training does not change, ranked by
:func:`srnas.search.ranking.promote`. A stopped trial is told to the searcher by Tune with its
last (rung) result, and recorded PRUNED (``srnas.search.record``).

With a :class:`~srnas.search.rung_history.RungHistory` attached (``attach_history``; every
``srnas search`` does), a rung holds the study's whole history, not this process's results
alone: what earlier launches and other drivers recorded there, read from the storage, ranked
before this driver's own results (they came first). Each decision is written to the trial's
``rung_results`` for the others.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from srnas.search.ranking import promote
from srnas.search.rung_history import RungHistory
from srnas.space.contract import STATUS_RUNG

log = logging.getLogger(__name__)


class MOASHAScheduler(FIFOScheduler):
    """Stops a trial at a rung unless it is in the top ``ceil(n / eta)`` of that rung."""

    def __init__(self, objectives: Sequence[str], modes: Sequence[str], rungs: Sequence[int],
                 eta: int) -> None:
        super().__init__()
        self.objectives = list(objectives)
        self.maximize = [m == "max" for m in modes]
        self.rungs = tuple(rungs)
        self.eta = eta
        # Decision rungs (the last one is the end of training: nothing left to decide), each
        # with the vectors recorded there so far, in arrival order.
        self.recorded: dict[int, dict[str, list[float]]] = {r: {} for r in self.rungs[:-1]}
        self.decisions: list[tuple[str, int, bool]] = []  # (trial_id, rung, continued)
        self.history: RungHistory | None = None
        # Tune trial id -> (its study trial number, its storage trial id), or None when the
        # study does not know it (yet).
        self.locate: Callable[[str], tuple[int, int] | None] = lambda trial_id: None

    def attach_history(self, history: RungHistory,
                       locate: Callable[[str], tuple[int, int] | None]) -> None:
        """Rank against ``history`` too; ``locate`` maps a Tune trial id to the trial's number
        and storage id in the study (the searcher knows them)."""
        self.history, self.locate = history, locate

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its scheduler into the experiment state: the storage stays out of it
        # (its URL may hold a password; srnas never restores from Tune's state).
        return {k: v for k, v in self.__dict__.items() if k not in ("history", "locate")}

    def _rung(self, step: int) -> dict[Any, list[float]]:
        """Everything recorded at rung ``step``: the history (earlier launches, other
        drivers) first, then this driver's own results in arrival order."""
        own = self.recorded[step]
        if self.history is None:
            return own
        mine = {where[0] for where in map(self.locate, own) if where is not None}
        earlier: dict[Any, list[float]] = {("study", n): v for n, v in
                                           self.history.at(step, exclude=mine).items()}
        return {**earlier, **own}

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if result.get("status") != STATUS_RUNG:
            return TrialScheduler.CONTINUE
        step = int(result.get("step", -1))
        if step not in self.recorded:
            return TrialScheduler.CONTINUE
        vector = [_number(result.get(name)) for name in self.objectives]
        self.recorded[step][trial.trial_id] = vector
        keep = promote(trial.trial_id, self._rung(step), self.maximize, self.eta)
        self.decisions.append((trial.trial_id, step, keep))
        where = self.locate(trial.trial_id)
        if self.history is not None and where is not None:
            self.history.publish(where[1], {r: v[trial.trial_id] for r, v in
                                            self.recorded.items() if trial.trial_id in v})
        log.debug("trial %s at rung %d: %s", trial.trial_id, step, "continues" if keep else
                  "stops")
        return TrialScheduler.CONTINUE if keep else TrialScheduler.STOP

    def debug_string(self) -> str:
        sizes = ", ".join(f"{r}: {len(v)}" for r, v in self.recorded.items())
        text = f"MO-ASHA eta={self.eta} rungs {list(self.rungs)} (results per rung {sizes}"
        if self.history is not None:
            text += "; study history " + ", ".join(
                f"{r}: {n}" for r, n in self.history.sizes().items() if r in self.recorded)
        return text + ")"


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


__all__ = ["MOASHAScheduler"]
