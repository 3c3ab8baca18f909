"""How a search writes its study: the study's attrs at creation and one trial's result.

The one writer of the contract in :mod:`srnas.space.contract`. The Ray searcher calls it for
every trial, and the tests' fabricated studies go through it too, so what the readers are
tested against is exactly what ``srnas search`` writes. No Ray here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import optuna
from optuna.trial import TrialState

from srnas.space.contract import (
    ATTR_BUDGETS,
    ATTR_MEASUREMENT,
    ATTR_OBJECTIVES,
    ATTR_SCALE,
    ATTR_SPACE,
    ATTR_VERSION,
    BUDGET_KEYS,
    OBJECTIVE_DIRECTIONS,
    STATUS_FAILED,
    STATUS_INFEASIBLE,
    STATUS_OK,
    STATUS_RUNG,
    STATUS_STOPPED_AT_RUNG,
    STATUS_STOPPED_BY_CAP,
    STATUS_TRAINING,
)
from srnas.space.version import srnas_version

# Figures of a partial schedule: a stopped trial keeps them only per rung (``rung_psnr``).
PARTIAL_KEYS = frozenset({"psnr", "ssim", "loss", "step"})

# Result keys that are Ray bookkeeping, not measurements.
RAY_KEYS = frozenset({
    "timestamp", "checkpoint_dir_name", "done", "training_iteration", "trial_id", "date",
    "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "config",
    "time_since_restore", "iterations_since_restore", "experiment_tag", "should_checkpoint",
})


class RecordableTrial(Protocol):
    """What recording needs of a trial: an ``optuna.Trial`` is one."""

    def set_user_attr(self, key: str, value: Any) -> None: ...

    def set_constraint(self, name: str, value: float) -> None: ...


def _jsonable(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int | bool | list | dict) or value is None


def init_study(study: optuna.Study, objectives: Sequence[str], *, scale: int,
               space: Mapping[str, Any], measurement: Mapping[str, Any]) -> None:
    """The study-level attrs of a new study (once, at creation)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(objectives))
    study.set_user_attr(ATTR_OBJECTIVES, [[o, OBJECTIVE_DIRECTIONS[o]] for o in objectives])
    study.set_user_attr(ATTR_VERSION, srnas_version())
    study.set_user_attr(ATTR_SCALE, scale)
    study.set_user_attr(ATTR_SPACE, dict(space))
    study.set_user_attr(ATTR_MEASUREMENT, dict(measurement))


def set_budgets(study: optuna.Study, budgets: Mapping[str, float]) -> None:
    """The latest launch's budgets (readers default to them)."""
    study.set_user_attr(ATTR_BUDGETS, dict(budgets))


def record_result(trial: RecordableTrial, result: Mapping[str, Any] | None,
                  objectives: Sequence[str], budgets: Mapping[str, float], *,
                  error: str | None = None) -> tuple[list[float] | None, TrialState]:
    """Write one trial's measurements, status and constraints; return what to tell Optuna.

    ``result`` is what the trainable reported last (nested dicts allowed). ``error`` is set when
    the trial raised instead of reporting. A last result at a rung means the scheduler stopped
    the trial there, and a time-capped schedule was cut: both are PRUNED, with their PSNR per
    rung reached and no ``psnr``. A last result still marked as training (stopped elsewhere
    mid-schedule) is recorded as failed.
    """
    result = dict(result or {})
    status = result.get("status")
    if error is None and status in (STATUS_RUNG, STATUS_STOPPED_BY_CAP):
        if status == STATUS_RUNG:
            result["steps"] = result.get("step")
        for key, value in result.items():
            if key not in RAY_KEYS and key not in PARTIAL_KEYS and _jsonable(value):
                trial.set_user_attr(key, value)
        trial.set_user_attr("status", STATUS_STOPPED_AT_RUNG if status == STATUS_RUNG
                            else STATUS_STOPPED_BY_CAP)
        return None, TrialState.PRUNED
    for key, value in result.items():
        if key not in RAY_KEYS and _jsonable(value):
            trial.set_user_attr(key, value)
    values = [result.get(m) for m in objectives]
    finite = all(isinstance(v, int | float) and math.isfinite(v) for v in values)
    reason = result.get("failure_reason")
    if status == STATUS_TRAINING:
        status, reason = STATUS_FAILED, (
            f"stopped during training after step {result.get('step', '?')}")
    elif status not in (None, STATUS_OK, STATUS_INFEASIBLE, STATUS_FAILED):
        status, reason = STATUS_FAILED, f"reported an unknown status {status!r}"
    if error is not None or status == STATUS_FAILED or not finite:
        got = dict(zip(objectives, values, strict=True))
        reason = reason or error or f"non-finite or missing objective values {got}"
        trial.set_user_attr("status", STATUS_FAILED)
        trial.set_user_attr("failure_reason", str(reason))
        return None, TrialState.FAIL
    for key, budget in budgets.items():
        if key not in BUDGET_KEYS:
            raise ValueError(f"budgets: must be among {list(BUDGET_KEYS)} (got {key!r})")
        measured = result.get(key)
        if isinstance(measured, int | float):
            trial.set_constraint(key, float(measured) - budget)
    trial.set_user_attr("status", status or STATUS_OK)
    return [float(v) for v in values], TrialState.COMPLETE  # type: ignore[arg-type]


def record_failure(trial: RecordableTrial, reason: str) -> tuple[None, TrialState]:
    """A trial that ended without a result of its own (stopped, interrupted)."""
    trial.set_user_attr("status", STATUS_FAILED)
    trial.set_user_attr("failure_reason", reason)
    return None, TrialState.FAIL


__all__ = ["RAY_KEYS", "init_study", "record_failure", "record_result", "set_budgets"]
