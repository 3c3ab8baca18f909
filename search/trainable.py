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
from srnas.space.contract import STATUS_FAILED, STATUS_OK, STATUS_TRAINING, UNTRAINED_VALUES

NAN = math.nan


def _objective_defaults(objectives: tuple[str, ...]) -> dict[str, float]:
    # Tune checks that every result carries the searcher's metrics; NaN marks "not yet known".
    return dict.fromkeys(objectives, NAN)


def make_trainable(settings: SearchSettings) -> Callable[[dict[str, Any]], None]:
    objectives = settings.objectives

    def trainable(config: dict[str, Any]) -> None:
        import torch

        from srnas.evaluators.evaluate import DataSpec, evaluate
        from srnas.evaluators.train import TrainBudget
        from srnas.space.config import from_dict

        measured: dict[str, Any] = {}

        def on_measured(figures: dict[str, Any]) -> None:
            measured.update(figures)

        def progress(step: int, loss: float, psnr: float | None) -> None:
            if psnr is not None:  # a mid-training validation: make progress visible in Tune
                tune.report({**_objective_defaults(objectives), **_cheap(measured),
                             "psnr": psnr, "step": step, "loss": loss,
                             "status": STATUS_TRAINING})

        try:
            arch = from_dict(config["arch"])
            train = config.get("train", {})
            # The sampled training dims (lr, batch_size, patch_size) are TrainBudget's fields.
            budget = TrainBudget(steps=settings.steps, seconds=settings.train_seconds,
                                 val_every=settings.effective_val_every, seed=settings.seed or 0,
                                 **train)
            device = "cuda" if torch.cuda.is_available() and (settings.gpus_per_trial or 0) > 0 \
                else "cpu"
            result = evaluate(arch, budget, DataSpec(settings.train, settings.val), device,
                              input_hw=settings.input_hw, budgets=settings.budgets,
                              on_measured=on_measured, progress=progress).to_dict()
            if result["status"] != STATUS_OK:
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


def _cheap(measured: dict[str, Any]) -> dict[str, Any]:
    keys = ("latency_ms", "memory_mb", "params", "flops")
    return {k: measured[k] for k in keys if k in measured}
