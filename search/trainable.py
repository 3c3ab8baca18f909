"""The Ray Tune function trainable: one call evaluates one sampled architecture.

It never raises for a trial's own failure: a non-finite loss, an exception or an out-of-memory
error is reported as ``status='failed'`` with the reason, so the searcher records it as FAIL in
the study and the search goes on.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable
from typing import Any

from ray import tune

from srnas.search.settings import SearchSettings
from srnas.space.contract import (
    STATUS_FAILED,
    STATUS_OK,
    STATUS_RUNG,
    STATUS_STOPPED_BY_CAP,
    STATUS_TRAINING,
    UNTRAINED_VALUES,
)

NAN = math.nan


def _objective_defaults(objectives: tuple[str, ...]) -> dict[str, float]:
    # Tune checks that every result carries the searcher's metrics; NaN marks "not yet known".
    return dict.fromkeys(objectives, NAN)


def make_trainable(settings: SearchSettings) -> Callable[[dict[str, Any]], None]:
    objectives = settings.objectives
    rungs = settings.rungs

    def trainable(config: dict[str, Any]) -> None:
        import torch

        from srnas.evaluators.evaluate import DataSpec, evaluate
        from srnas.evaluators.train import TrainBudget
        from srnas.space.config import from_dict

        measured: dict[str, Any] = {}
        rung_psnr: dict[str, float] = {}  # {steps: psnr} per rung reached (JSON keys)

        def on_measured(figures: dict[str, Any]) -> None:
            measured.update(figures)

        def progress(step: int, loss: float, psnr: float | None) -> None:
            if psnr is None:
                return
            # A mid-training validation. At a rung the scheduler decides on it (a STOP ends
            # this function inside tune.report); elsewhere it only makes progress visible.
            at_rung = step in rungs
            if at_rung:
                rung_psnr[str(step)] = psnr
            # Everything measured so far rides along: a trial stopped here keeps its
            # architecture, device and cheap figures in the study.
            tune.report({**_objective_defaults(objectives), **measured,
                         "psnr": psnr, "step": step, "loss": loss,
                         "status": STATUS_RUNG if at_rung else STATUS_TRAINING,
                         "rung_psnr": dict(rung_psnr)})

        try:
            arch = from_dict(config["arch"])
            train = config.get("train", {})
            # The sampled training dims (lr, batch_size, patch_size) are TrainBudget's fields.
            budget = TrainBudget(steps=settings.steps, seconds=settings.train_seconds,
                                 val_every=settings.effective_val_every, val_at=rungs[:-1],
                                 seed=settings.seed or 0, **train)
            device = "cuda" if torch.cuda.is_available() and (settings.gpus_per_trial or 0) > 0 \
                else "cpu"
            result = evaluate(arch, budget, DataSpec(settings.train, settings.val), device,
                              input_hw=settings.input_hw, budgets=settings.budgets,
                              on_measured=on_measured, progress=progress).to_dict()
            if result["status"] == STATUS_OK and result["steps"] < settings.steps:
                # The wall-time cap cut the schedule: its PSNR is not a result of the
                # schedule the study promises, so the trial ends PRUNED at its last rung.
                result["status"] = STATUS_STOPPED_BY_CAP
            elif result["status"] == STATUS_OK:
                rung_psnr[str(settings.steps)] = result["psnr"]
            result["rung_psnr"] = rung_psnr
            if result["status"] not in (STATUS_OK, STATUS_STOPPED_BY_CAP):
                # Failed (NaN: no value) or untrained (a budget broken: the contract's worst
                # values, with a violated constraint).
                for key, untrained in UNTRAINED_VALUES.items():
                    result.setdefault(key, NAN if result["status"] == STATUS_FAILED
                                      else untrained)
            result["eval_seconds"] = float(sum(result.get("phase_seconds", {}).values()))
            report = {**_objective_defaults(objectives), **result}
        except Exception as exc:  # a trial's own failure, recorded, never fatal to the search
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
            if isinstance(exc, torch.OutOfMemoryError):
                reason = f"out of memory: {reason}"
            report = {**_objective_defaults(objectives), **measured, "status": STATUS_FAILED,
                      "failure_reason": reason,
                      "failure_trace": traceback.format_exc(limit=6)[-2000:]}
        tune.report(report)

    return trainable

