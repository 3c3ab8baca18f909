"""The study's references, measured and recorded by the search: bicubic under the study's own
settings, and the fixed hypervolume reference point (see :mod:`srnas.studies.reference`).

Bicubic is scored where the trials are: in a Ray task with a trial's resources, so its PSNR
comes from the same validation pairs (``evaluate.load_data``) through the same scorer as
``srnas evaluate --bicubic`` (``bicubic_baseline``), and its latency and memory are those of a
bicubic upsampling (``torch.nn.functional.interpolate``) on the trial's device, at the study's
latency input, timed by the trials' own ``measure_latency`` / ``measure_memory``. Recorded once
(at creation, or at the first launch of an older study); a failure to measure it is said in
one line and tried again at the next launch, never fatal to the search.
"""

from __future__ import annotations

import math
from typing import Any, TextIO

import optuna

from srnas.space.contract import ATTR_BICUBIC, ATTR_REFERENCE_POINT
from srnas.studies import reference as refs
from srnas.studies.frame import is_feasible

# What the latency and memory of the baseline are: said wherever it is shown.
BICUBIC_METHOD = "bicubic upsampling (torch interpolate), timed as an upsampling"
BICUBIC_TIMEOUT_S = 600.0


def bicubic_figures(val: str | None, scale: int, input_hw: tuple[int, int] | None,
                    gpus: float) -> dict[str, Any]:
    """Bicubic's scores on the study's validation pairs and its cost as an upsampling on the
    trial's device (run where a trial runs: it picks the device as a trial does)."""
    import torch

    from srnas.evaluators.bicubic import bicubic_baseline
    from srnas.evaluators.device import device_name
    from srnas.evaluators.evaluate import DataSpec, load_data
    from srnas.evaluators.latency import default_latency_input_hw, measure_latency
    from srnas.evaluators.memory import measure_memory
    from srnas.search.trainable import trial_device

    _, pairs = load_data(DataSpec(None, val), scale)
    scores = bicubic_baseline(pairs, scale)
    device = torch.device(trial_device(gpus))
    hw = tuple(input_hw or default_latency_input_hw(device, scale))
    upsample = _upsampling(scale)
    latency = measure_latency(upsample, hw, device)
    memory = measure_memory(upsample, hw, device)
    return {**scores, "scale": scale, "latency_ms": latency.median_ms,
            "latency_iqr_ms": latency.iqr_ms, "memory_mb": memory.peak_mb,
            "device": device_name(device), "input_hw": list(hw), "method": BICUBIC_METHOD}


def _upsampling(scale: int) -> Any:
    """A module that only upsamples: what "bicubic as a network" costs on a device."""
    import torch

    class BicubicUpsampling(torch.nn.Module):
        def __init__(self, factor: int) -> None:
            super().__init__()
            self.scale = factor

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.interpolate(x, scale_factor=self.scale, mode="bicubic",
                                                   align_corners=False)

    return BicubicUpsampling(scale)


def measure_bicubic(settings: Any, cpus: float, gpus: float) -> dict[str, Any]:
    """:func:`bicubic_figures` in a Ray task with a trial's resources."""
    import ray

    task = ray.remote(num_cpus=cpus, num_gpus=gpus)(bicubic_figures)
    return ray.get(task.remote(settings.val, settings.scale, settings.input_hw, gpus),
                   timeout=BICUBIC_TIMEOUT_S)


def record_bicubic(study: optuna.Study, settings: Any, cpus: float, gpus: float,
                   out: TextIO) -> dict[str, Any] | None:
    """The study's bicubic baseline: the recorded one, else measured now and recorded."""
    recorded = refs.bicubic_of(study.user_attrs)
    if recorded is not None:
        return recorded
    try:
        figures = measure_bicubic(settings, cpus, gpus)
    except Exception as exc:  # never fatal: the fronts say it is not recorded
        print(f"bicubic baseline not measured ({type(exc).__name__}: {exc}); the next launch "
              "tries again", file=out, flush=True)
        return None
    study.set_user_attr(ATTR_BICUBIC, figures)
    print(refs.bicubic_text(figures) + " (recorded with the study)", file=out, flush=True)
    return figures


def record_initial_reference(study: optuna.Study, objectives: list[tuple[str, str]],
                             bicubic: dict[str, Any] | None,
                             budgets: dict[str, float]) -> None:
    """A new study's reference point: bicubic's value, the budgets; the rest later."""
    if refs.recorded_reference(study.user_attrs) is None:
        study.set_user_attr(ATTR_REFERENCE_POINT,
                            refs.initial_reference(objectives, bicubic, budgets))


def complete_reference(study: optuna.Study, objectives: list[tuple[str, str]]) -> None:
    """Fix the coordinates the study's reference point still lacks from its feasible complete
    trials (the first launch that completes one); a study that records none is left alone
    (made before srnas recorded one: its fronts use the moving rule, said so)."""
    recorded = refs.recorded_reference(study.user_attrs)
    if recorded is None or not refs.missing(recorded, objectives):
        return
    done = [t for t in study.get_trials(deepcopy=False, states=(
        optuna.trial.TrialState.COMPLETE,)) if is_feasible(t)]
    columns = {name: [v for v in (_value(t, i, name) for t in done) if v is not None]
               for i, (name, _) in enumerate(objectives)}
    completed = refs.completed_reference(recorded, objectives, columns)
    if completed != recorded:
        study.set_user_attr(ATTR_REFERENCE_POINT, completed)


def _value(trial: optuna.trial.FrozenTrial, index: int, name: str) -> float | None:
    values = trial.values or []
    value = values[index] if index < len(values) else trial.user_attrs.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


__all__ = ["BICUBIC_METHOD", "bicubic_figures", "complete_reference", "measure_bicubic",
           "record_bicubic", "record_initial_reference"]
