"""Fabricated srnas studies for the tests, written through the search's own writer.

Study attrs come from :func:`srnas.search.record.init_study` and every trial from
:func:`srnas.search.record.record_result` with a result shaped like the trainable's report
(an ``EvalResult`` dict), so the studies tests read exactly what ``srnas search`` writes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import optuna

from srnas.evaluators.evaluate import EvalResult
from srnas.search.record import init_study, record_result, set_budgets
from srnas.space.config import ArchConfig
from srnas.space.contract import DEFAULT_OBJECTIVES, OBJECTIVE_DIRECTIONS, STATUS_FAILED
from srnas.space.searchspace import SearchSpace

INPUT_HW = (180, 320)
# A measurement record like the one a CUDA search at x4 writes.
MEASUREMENT: dict[str, Any] = {
    "scale": 4, "space_id": "test", "steps": 200, "train_seconds": None, "scheduler": "fifo",
    "train_data": "built-in", "val_data": "built-in", "device_kind": "cuda",
    "input_hw": list(INPUT_HW),
}
# The searched parameters a fake trial records (a subset of the space, enough for p_ columns).
_SEARCHED = {"dim": (8, 128, 8), "kernel_size": (3, 31, 2), "n_blocks": (1, 8, 1)}


def make_study(storage: optuna.storages.BaseStorage | str, name: str,
               objectives: Sequence[str] = DEFAULT_OBJECTIVES,
               budgets: Mapping[str, float] | None = None, scale: int = 4) -> optuna.Study:
    """An empty study with the attrs a search's first launch writes."""
    study = optuna.create_study(study_name=name, storage=storage,
                                directions=[OBJECTIVE_DIRECTIONS[o] for o in objectives])
    init_study(study, objectives, scale=scale, space=SearchSpace().to_data(),
               measurement={**MEASUREMENT, "scale": scale})
    set_budgets(study, budgets or {})
    return study


def eval_result(arch: ArchConfig, *, psnr: float | None, latency_ms: float | None,
                memory_mb: float | None, params: int | None, flops: int | None,
                device: str) -> dict[str, Any]:
    """A trainable report: an ``EvalResult`` dict (measures left out where None)."""
    result = EvalResult(
        arch=arch.to_dict(), arch_id=arch.arch_id, params=params or 0, flops=flops or 0,
        input_hw=list(INPUT_HW), latency_ms=latency_ms or 0.0,
        latency_iqr_ms=round((latency_ms or 0.0) * 0.02, 6), latency_cv=0.01,
        memory_mb=memory_mb or 0.0, memory_bytes=int((memory_mb or 0.0) * 2**20),
        memory_method="test", device=device, dtype="float32", threads=1,
        versions={"torch": "test"}, psnr=psnr, ssim=None if psnr is None else psnr / 40,
        steps=200, train_seconds=1.0,
    ).to_dict()
    for key, given in (("params", params), ("flops", flops), ("latency_ms", latency_ms),
                       ("latency_iqr_ms", latency_ms), ("memory_mb", memory_mb)):
        if given is None:
            result.pop(key)
    result["eval_seconds"] = 1.0
    return result


def fake_trial(study: optuna.Study, *, psnr: float | None = None,
               latency_ms: float | None = None, memory_mb: float | None = None,
               arch: ArchConfig | None = None, params: int | None = None,
               flops: int | None = None, device: str = "cpu: test", state: str = "COMPLETE",
               extra: Mapping[str, Any] | None = None) -> optuna.trial.FrozenTrial:
    """Add one trial the way a search does: ask (with the searched parameters), record the
    trainable's report, tell. ``state`` RUNNING leaves it asked; PRUNED tells it pruned;
    FAIL reports a non-finite loss. ``extra`` overrides report keys (e.g. ``baseline``)."""
    arch = arch or ArchConfig()
    study.enqueue_trial({k: getattr(arch, k) for k in _SEARCHED})
    trial = study.ask()
    for name, (low, high, step) in _SEARCHED.items():
        trial.suggest_int(name, low, high, step=step)
    trial.suggest_categorical("block_type", ["convattn", "milk"])
    if state == "RUNNING":
        return study.get_trials(deepcopy=False)[-1]
    if state == "PRUNED":
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return study.get_trials(deepcopy=False)[-1]
    result = eval_result(arch, psnr=psnr, latency_ms=latency_ms, memory_mb=memory_mb,
                         params=params, flops=flops, device=device)
    if state == "FAIL":
        result.update(status=STATUS_FAILED, failure_reason="non-finite loss (nan) at step 3",
                      psnr=math.nan, ssim=math.nan)
    elif state != "COMPLETE":
        raise ValueError(f"state: must be COMPLETE, FAIL, RUNNING or PRUNED (got {state!r})")
    result.update(extra or {})
    objectives = study.metric_names or list(DEFAULT_OBJECTIVES)
    values, final = record_result(trial, result, objectives,
                                  study.user_attrs.get("budgets") or {})
    study.tell(trial, values, state=final)
    return study.get_trials(deepcopy=False)[-1]


# The reference study of the tests and docs: (psnr, latency_ms, memory_mb, params, state,
# extra). Launch budget latency_ms <= 50. Its front is trials {0, 1, 2, 4, 8}: 3 is dominated
# by 0, 5 breaks the latency budget (it would otherwise lead on PSNR), 6 failed, 7 is still
# running, 9 was pruned; 8 is the esc-light baseline.
KNOWN_TRIALS: tuple[tuple[float | None, float | None, float | None, int | None, str,
                          dict[str, Any]], ...] = (
    (30.0, 10.0, 100.0, 500_000, "COMPLETE", {}),
    (31.0, 20.0, 150.0, 600_000, "COMPLETE", {}),
    (29.0, 5.0, 90.0, 300_000, "COMPLETE", {}),
    (29.5, 12.0, 110.0, 200_000, "COMPLETE", {}),
    (28.0, 30.0, 80.0, 250_000, "COMPLETE", {}),
    (33.0, 60.0, 200.0, 1_000_000, "COMPLETE", {}),
    (None, None, None, None, "FAIL", {}),
    (None, None, None, None, "RUNNING", {}),
    (32.0, 40.0, 300.0, 900_000, "COMPLETE", {"baseline": "esc-light"}),
    (None, None, None, None, "PRUNED", {}),
)
KNOWN_BUDGETS = {"latency_ms": 50.0}


def make_known_study(storage: optuna.storages.BaseStorage | str, name: str = "known",
                     device: str = "cpu: test") -> optuna.Study:
    """The reference study (``KNOWN_TRIALS``); trial i gets a distinct valid architecture."""
    study = make_study(storage, name, budgets=KNOWN_BUDGETS)
    for i, (psnr, latency, memory, params, state, extra) in enumerate(KNOWN_TRIALS):
        arch = ArchConfig(dim=16 + 8 * i, kernel_size=7 + 2 * (i % 4), n_blocks=1 + i % 3)
        fake_trial(study, psnr=psnr, latency_ms=latency, memory_mb=memory, params=params,
                   flops=None if params is None else params * 1000, arch=arch, device=device,
                   state=state, extra=extra)
    return study



def make_mixed_study(storage: optuna.storages.BaseStorage | str,
                     name: str = "mixed") -> optuna.Study:
    """One study measured on two devices and, on the H100, at two inputs: trial 0 on a CPU at
    180x320, 1 on an H100 at 180x320, 2 on the H100 at 90x160."""
    study = make_study(storage, name)
    fake_trial(study, psnr=30.0, latency_ms=40.0, memory_mb=100.0, device="cpu: AMD EPYC")
    fake_trial(study, psnr=30.5, latency_ms=4.0, memory_mb=100.0, device="cuda: NVIDIA H100")
    fake_trial(study, psnr=29.0, latency_ms=1.0, memory_mb=100.0, device="cuda: NVIDIA H100",
               extra={"input_hw": [90, 160]})
    return study
