"""``MOASHAScheduler``: asynchronous multi-objective successive halving as a Ray Tune scheduler.

Neither Optuna 5 (``Trial.report`` raises for multi-objective studies) nor Tune 2.60 (ASHA and
HyperBand take one metric) stops multi-objective trials early, so it lives here, as a
``FIFOScheduler`` subclass deciding CONTINUE/STOP in ``on_trial_result``: it runs unchanged on
any Ray cluster. The trainable reports once per rung (status ``rung``); the decision uses the
PSNR at that rung plus the cheap objectives, which training does not change, ranked by
:func:`srnas.search.ranking.promote`. A stopped trial is told to the searcher by Tune with its
last (rung) result, and recorded PRUNED (``srnas.search.record``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from srnas.search.ranking import promote
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

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if result.get("status") != STATUS_RUNG:
            return TrialScheduler.CONTINUE
        step = int(result.get("step", -1))
        if step not in self.recorded:
            return TrialScheduler.CONTINUE
        vector = [_number(result.get(name)) for name in self.objectives]
        at_rung = self.recorded[step]
        at_rung[trial.trial_id] = vector
        keep = promote(trial.trial_id, at_rung, self.maximize, self.eta)
        self.decisions.append((trial.trial_id, step, keep))
        log.debug("trial %s at rung %d: %s", trial.trial_id, step, "continues" if keep else
                  "stops")
        return TrialScheduler.CONTINUE if keep else TrialScheduler.STOP

    def debug_string(self) -> str:
        sizes = ", ".join(f"{r}: {len(v)}" for r, v in self.recorded.items())
        return f"MO-ASHA eta={self.eta} rungs {list(self.rungs)} (results per rung {sizes})"


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


__all__ = ["MOASHAScheduler"]
