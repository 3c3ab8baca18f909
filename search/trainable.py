"""The Ray Tune function trainable: one call evaluates one sampled architecture.

It never raises for a trial's own failure: a non-finite loss, an exception or an out-of-memory
error is reported as ``status='failed'`` with the reason, so the searcher records it as FAIL in
the study and the search goes on.

Every report carries where the trial runs (:func:`placement`): the Ray node and the GPUs Ray
assigned it. A trial that Ray gave a GPU runs on CUDA when torch sees one and on the CPU
otherwise (a node that declares logical GPUs with ``ray start --num-gpus N`` but has no CUDA
device); its ``device`` attr says which, its ``gpu_ids`` what Ray assigned.
"""

from __future__ import annotations

import math
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from srnas.evaluators.evaluate import DataSpec

NAN = math.nan


def _objective_defaults(objectives: tuple[str, ...]) -> dict[str, float]:
    # Tune checks that every result carries the searcher's metrics; NaN marks "not yet known".
    return dict.fromkeys(objectives, NAN)


def placement() -> dict[str, Any]:
    """Where the calling trial runs: ``node`` (the Ray node id, unique even when several nodes
    share a machine), ``host`` (that node's IP address) and ``gpu_ids`` (the GPU ids Ray
    assigned the trial, as strings, e.g. ``["1"]``; ``[]`` without a GPU). Ray also sets
    ``CUDA_VISIBLE_DEVICES`` to these ids, so the trial sees its GPU as ``cuda:0``."""
    import ray

    return {"node": ray.get_runtime_context().get_node_id(),
            "host": ray.util.get_node_ip_address(),
            "gpu_ids": [str(i) for i in ray.get_gpu_ids()]}


def trial_device(gpus_per_trial: float | None) -> str:
    """CUDA when Ray gave the trial a GPU and torch sees one; the CPU otherwise (a logical GPU
    on a machine without CUDA, or a CPU-only trial)."""
    import torch

    return "cuda" if (gpus_per_trial or 0) > 0 and torch.cuda.is_available() else "cpu"


def trial_data(settings: SearchSettings) -> DataSpec:
    """The trials' data, resolved once in the driver: the training folders' manifest (one
    listing here, so a trial opens its node's store without listing anything) and the store
    cache the driver was given (``$SRNAS_CACHE``; unset: each node's platform cache)."""
    from srnas.evaluators.evaluate import DataSpec
    from srnas.evaluators.store import CACHE_ENV, train_manifest
    from srnas.evaluators.train_folders import as_folders

    # Absolute: a trial runs in its own working folder (Ray Tune changes into it).
    train = tuple(str(Path(f).resolve()) for f in as_folders(settings.train))
    val = str(Path(settings.val).resolve()) if settings.val is not None else None
    manifest = train_manifest(train) if train else None
    return DataSpec(train, val, manifest, os.environ.get(CACHE_ENV) or None)


def trial_measure(settings: SearchSettings) -> Any:
    """evaluate()'s ``measure``: on the target node, or under a runtime here; None for eager
    PyTorch fp32 here (evaluate's own measurement)."""
    from srnas.evaluators.runtime import RuntimeSpec

    spec = RuntimeSpec(settings.runtime, settings.precision)
    if settings.target is not None:
        from srnas.search.target import target_measurer

        return target_measurer(settings.target, spec, seed=settings.seed or 0)
    if (spec.runtime, spec.precision) == ("torch", "fp32"):
        return None
    return spec.measure


def search_trainable(settings: SearchSettings) -> Callable[[dict[str, Any]], None]:
    """The search's trial: evaluate one sampled architecture at the search's budget, reporting
    at each rung for the scheduler and once at the end for the searcher."""
    objectives = settings.objectives
    rungs = settings.rungs
    data = trial_data(settings)

    def trainable(config: dict[str, Any]) -> None:
        import torch

        from srnas.evaluators.evaluate import evaluate
        from srnas.evaluators.recipe import Recipe
        from srnas.space.config import from_dict

        # Where the trial runs rides along in every report, so a stopped trial keeps it too.
        measured: dict[str, Any] = placement()
        # The training seed: a later retrain (srnas fidelity) repeats the trial's recipe with it.
        measured["train_seed"] = settings.seed or 0
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
            # The sampled training dims (lr, batch_size, patch_size) are Recipe's fields.
            recipe = Recipe.brief(steps=settings.steps, seed=settings.seed or 0, **train)
            result = evaluate(arch, recipe, data,
                              trial_device(settings.gpus_per_trial),
                              seconds=settings.train_seconds,
                              val_every=settings.effective_val_every, val_at=rungs[:-1],
                              input_hw=settings.input_hw, budgets=settings.budgets,
                              on_measured=on_measured, progress=progress,
                              measure=trial_measure(settings)).to_dict()
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
            report = {**_objective_defaults(objectives), **measured, **result}
        except Exception as exc:  # a trial's own failure, recorded, never fatal to the search
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
            if isinstance(exc, torch.OutOfMemoryError):
                reason = f"out of memory: {reason}"
            report = {**_objective_defaults(objectives), **measured, "status": STATUS_FAILED,
                      "failure_reason": reason,
                      "failure_trace": traceback.format_exc(limit=6)[-2000:]}
        tune.report(report)

    return trainable

