"""What a front is judged against: the study's bicubic baseline and its fixed hypervolume
reference point (study attrs ``bicubic`` and ``reference_point``, see
:mod:`srnas.space.contract`).

Bicubic costs almost nothing, so a network not above its PSNR is dominated by it: no such
network is on a front. The reference point is fixed with the study (bicubic's value for the
quality objectives, the budget for a budgeted measure, else the worst value of the first launch
that completes a feasible trial pushed out by 10 % of its range), so a hypervolume never moves
when a trial is added, and two launches of one study compare. A study made before srnas
recorded one falls back to the rule of the moment (worst candidate value + 10 %), said so.
Reading only, no Optuna writes (the search writes these attrs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from srnas.space.contract import ATTR_BICUBIC, ATTR_REFERENCE_POINT
from srnas.studies import pareto

Objectives = Sequence[tuple[str, str]]

RULE_BICUBIC = "bicubic"
RULE_BUDGET = "budget"
RULE_FIRST_LAUNCH = "worst of the first launch + 10% of its range"
RULE_MOVING = "worst feasible value + 10% of its range (moves as trials are added)"
# Why a study may have no fixed reference point: the header says it in these words.
NOT_RECORDED = ("this study records no fixed reference point (made before srnas recorded "
                "one, or no feasible trial yet)")
PARTLY_RECORDED = "not yet fixed for {names} (fixed when a launch completes a feasible trial)"


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def bicubic_of(attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The recorded bicubic baseline of a study (its user attrs), or None (an older study)."""
    value = attrs.get(ATTR_BICUBIC)
    if isinstance(value, Mapping) and _finite(value.get("psnr")) is not None:
        return dict(value)
    return None


def recorded_reference(attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{"values": {...}, "rules": {...}}`` as recorded, or None."""
    value = attrs.get(ATTR_REFERENCE_POINT)
    if not isinstance(value, Mapping) or not isinstance(value.get("values"), Mapping):
        return None
    values = {str(k): float(v) for k, v in value["values"].items() if _finite(v) is not None}
    rules = {str(k): str(v) for k, v in (value.get("rules") or {}).items()}
    return {"values": values, "rules": rules}


def initial_reference(objectives: Objectives, bicubic: Mapping[str, Any] | None,
                      budgets: Mapping[str, float]) -> dict[str, Any]:
    """The reference point a new study records: bicubic's value for an objective it measures
    in the objective's direction of quality (psnr, ssim), the budget of a budgeted minimised
    objective; the others are left for :func:`completed_reference`."""
    values: dict[str, float] = {}
    rules: dict[str, str] = {}
    for name, direction in objectives:
        measured = _finite((bicubic or {}).get(name)) if direction == "maximize" else None
        if measured is not None:
            values[name], rules[name] = measured, RULE_BICUBIC
        elif direction == "minimize" and _finite(budgets.get(name)) is not None:
            values[name], rules[name] = float(budgets[name]), RULE_BUDGET
    return {"values": values, "rules": rules}


def missing(reference: Mapping[str, Any] | None, objectives: Objectives) -> list[str]:
    values = (reference or {}).get("values") or {}
    return [n for n, _ in objectives if n not in values]


def worst_bound(values: Sequence[float], direction: str,
                margin: float = pareto.REFERENCE_MARGIN) -> float | None:
    """The worst of ``values`` pushed ``margin`` x their range further out (None: no value)."""
    finite = np.asarray([v for v in values if _finite(v) is not None], dtype=float)
    if finite.size == 0:
        return None
    sign = -1.0 if direction == "maximize" else 1.0
    return float(sign * pareto.reference_point(sign * finite[:, None], margin)[0])


def completed_reference(reference: Mapping[str, Any], objectives: Objectives,
                        columns: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """``reference`` with the objectives it lacks fixed from ``columns`` (each objective's
    values over the feasible complete trials so far) by :data:`RULE_FIRST_LAUNCH`; an objective
    with no value yet stays missing."""
    values = dict(reference.get("values") or {})
    rules = dict(reference.get("rules") or {})
    for name, direction in objectives:
        if name in values:
            continue
        bound = worst_bound(list(columns.get(name, ())), direction)
        if bound is not None:
            values[name], rules[name] = bound, RULE_FIRST_LAUNCH
    return {"values": values, "rules": rules}


def bicubic_text(bicubic: Mapping[str, Any] | None) -> str:
    """One line on the baseline, or why there is none."""
    if bicubic is None:
        return ("bicubic: not recorded with this study (made before srnas measured it; "
                "`srnas evaluate --bicubic --val DIR --scale S` scores it)")
    parts = [f"bicubic: {bicubic['psnr']:.3f} dB PSNR"]
    if _finite(bicubic.get("ssim")) is not None:
        parts[0] += f", {bicubic['ssim']:.4f} SSIM"
    if bicubic.get("images"):
        parts[0] += f" on {bicubic['images']} validation images"
    if bicubic.get("scale"):
        parts[0] += f" at x{bicubic['scale']}"
    latency, memory = _finite(bicubic.get("latency_ms")), _finite(bicubic.get("memory_mb"))
    if latency is not None:
        hw = bicubic.get("input_hw")
        at = f" at {hw[0]}x{hw[1]}" if isinstance(hw, list | tuple) and len(hw) == 2 else ""
        mem = f", {memory:.3g} MB" if memory is not None else ""
        parts.append(f"as an upsampling on {bicubic.get('device', '?')}{at}: "
                     f"{latency:.3g} ms{mem}")
    return "; ".join(parts)


def below_bicubic(psnr: Sequence[float], bicubic: Mapping[str, Any] | None) -> np.ndarray:
    """Mask of PSNRs not above bicubic's (a missing PSNR is not judged here: False)."""
    values = np.asarray(psnr, dtype=float)
    if bicubic is None:
        return np.zeros(values.shape, dtype=bool)
    return np.nan_to_num(values, nan=np.inf) <= float(bicubic["psnr"])


__all__ = [
    "NOT_RECORDED",
    "RULE_BICUBIC",
    "RULE_BUDGET",
    "RULE_FIRST_LAUNCH",
    "RULE_MOVING",
    "below_bicubic",
    "bicubic_of",
    "bicubic_text",
    "completed_reference",
    "initial_reference",
    "missing",
    "recorded_reference",
    "worst_bound",
]
