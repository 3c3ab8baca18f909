"""The one training recipe of srnas: what decides the weights a run ends with, for the brief
training of a search trial (:mod:`evaluators.train`) and the long training of ``srnas train``
(:mod:`evaluators.fit`), and the learning rate it gives at every step.

Two presets, one set of fields. :meth:`Recipe.long` (the plain constructor's defaults) is ESC's
recipe for its lightweight models (ICCV 2025, options/train/ESC_*.yaml): AdamW lr 5e-4, betas
0.9/0.9, no weight decay, L1 loss, EMA 0.999, batch 16, 64-pixel LR patches, 500,000 iterations
with 20,000 of linear warm-up and the learning rate halved at 50, 80, 90, 95 and 98 % of them.
A shorter run keeps the same shape: warm-up min(20,000, 4 % of the steps), milestones at the
same fractions, and an EMA horizon of min(1,000, steps / 10) steps (0.999 from 10,000 steps on).
:meth:`Recipe.brief` is the search's few-hundred-step ranking run; :data:`BRIEF` says where and
why it departs from ESC's.

The schedule is a pure function of the step (no scheduler object), so a checkpoint's step is the
whole of the scheduler's position.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import asdict, dataclass, fields, replace
from types import MappingProxyType
from typing import Any, Literal

from srnas.space.errors import ConfigError

ESC_STEPS = 500_000
ESC_WARMUP = 20_000
ESC_LR = 5e-4
ESC_BETAS = (0.9, 0.9)
ESC_EMA = 0.999
ESC_BATCH = 16
ESC_LR_PATCH = 64  # ESC crops 64x64 LR pixels (gt_size 64 * scale)
ESC_MILESTONE_FRACTIONS = (0.5, 0.8, 0.9, 0.95, 0.98)  # 250k, 400k, 450k, 475k, 490k of 500k
ESC_GAMMA = 0.5
SCHEDULES = ("multistep", "cosine")

Schedule = Literal["multistep", "cosine"]

# The brief recipe: ESC's optimiser (lr, betas) and loss, and where it departs from ESC's, why.
# Every search trial, `srnas evaluate` and `srnas fidelity`'s retrains train with it; a study's
# brief PSNRs are only comparable (between its trials, and with the retrains that check their
# ranking) while these stay what the study was trained with, so they are kept as they are.
BRIEF: MappingProxyType[str, Any] = MappingProxyType({
    # `srnas evaluate`'s default budget; a search sets its own (`--steps`).
    "steps": 300,
    # The value every recorded study trained with (ESC: none). Over a brief run it barely acts:
    # AdamW scales the weights by (1 - lr * decay) per step, 1 - 1.5e-5 over 300 steps at 5e-4.
    "weight_decay": 1e-4,
    # No warm-up, as every recorded study trained (ESC's 4 % share would be 12 steps of 300).
    "warmup": 0,
    # Cosine decay to zero within the budget, as every recorded study trained: whatever the
    # budget, its last PSNR is that of a finished schedule.
    "schedule": "cosine",
    # Raw weights: the brief trainer keeps no moving average; the search ranks the weights it
    # trained (ESC's horizon scaled to 300 steps would average the last ~30 of them).
    "ema": 0.0,
    # The search space's default training dims: 8 patches of 48x48 HR pixels at every scale
    # (12 LR pixels at x4), a step a CPU affords; ESC's 16 x (64 * scale)^2 is 57x the pixels
    # of a step at x4.
    "batch_size": 8,
    "patch_size": 48,
})


def warmup_cosine(step: int, lr: float, warmup: int, steps: int) -> float:
    """The rate of 0-based ``step``: linear warm-up ((step + 1) / warmup of ``lr``, as
    BasicSR's), then cosine decay to zero at the last of ``steps``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    span = max(steps - warmup, 1)
    t = min(step - warmup, span) / span
    return lr * 0.5 * (1 + math.cos(math.pi * t))


def default_warmup(steps: int) -> int:
    """ESC's 20,000 warm-up steps, or its 4 % share of a shorter run."""
    return min(ESC_WARMUP, steps * ESC_WARMUP // ESC_STEPS)


def default_ema(steps: int) -> float:
    """ESC's decay 0.999 averages over ~1,000 steps, 0.2 % of its run; a run too short for
    that gets a horizon of a tenth of its steps (0.995 for 2,000 steps), and none under 20:
    an average over half a short run would mostly remember the initial weights."""
    horizon = min(round(1 / (1 - ESC_EMA)), steps // 10)
    return 1 - 1 / horizon if horizon >= 2 else 0.0


def default_milestones(steps: int) -> tuple[int, ...]:
    """ESC's milestones at the same fractions of ``steps`` (duplicates of a short run merged)."""
    return tuple(sorted({max(1, round(f * steps)) for f in ESC_MILESTONE_FRACTIONS}))


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the weights a run ends with (seed included); validated on
    construction. The defaults are ESC's (:meth:`long`); :meth:`brief` is the search's.
    ``warmup``, ``milestones`` and ``ema`` left ``None`` follow ESC's recipe scaled to
    ``steps`` (:func:`default_warmup`, :func:`default_milestones`, :func:`default_ema`);
    ``patch_size`` (HR pixels) left ``None`` is ESC's 64 LR pixels at the network's scale
    (:meth:`for_scale`). ``ema`` 0 turns the moving average off."""

    steps: int = ESC_STEPS  # ESC's 500,000 iterations
    lr: float = ESC_LR  # ESC's AdamW rate
    betas: tuple[float, float] = ESC_BETAS  # ESC's 0.9/0.9
    weight_decay: float = 0.0  # ESC trains without decay
    warmup: int | None = None  # ESC's 20,000 steps, scaled
    schedule: Schedule = "multistep"  # ESC's halvings
    milestones: tuple[int, ...] | None = None  # ESC's fractions of the steps
    gamma: float = ESC_GAMMA  # ESC halves the rate at each milestone
    ema: float | None = None  # ESC's 0.999, its horizon scaled to the steps
    batch_size: int = ESC_BATCH  # ESC's 16
    patch_size: int | None = None  # ESC's 64 LR pixels at the network's scale
    seed: int = 0  # one run of a seed is one set of weights; 0 unless asked
    amp: bool = False  # float32 unless asked: bf16 autocast is CUDA-only and changes numbers

    @classmethod
    def long(cls, **changes: Any) -> Recipe:
        """ESC's recipe (the defaults) with ``changes``: ``srnas train``'s."""
        return cls(**changes)

    @classmethod
    def brief(cls, **changes: Any) -> Recipe:
        """The search's brief recipe (:data:`BRIEF` over ESC's) with ``changes``: what every
        search trial, ``srnas evaluate`` and the fidelity retrains train with."""
        return cls(**{**BRIEF, **changes})

    def __post_init__(self) -> None:
        _positive_int("steps", self.steps)
        if self.warmup is None:
            object.__setattr__(self, "warmup", default_warmup(self.steps))
        if self.milestones is None:
            object.__setattr__(self, "milestones", default_milestones(self.steps))
        if self.ema is None:
            object.__setattr__(self, "ema", default_ema(self.steps))
        object.__setattr__(self, "betas", tuple(self.betas))
        object.__setattr__(self, "milestones", tuple(self.milestones))  # type: ignore[arg-type]
        _validate(self)

    def for_scale(self, scale: int) -> Recipe:
        """This recipe with its patch size filled in (ESC's 64 LR pixels) and checked against
        ``scale``: what a run records."""
        patch = self.patch_size if self.patch_size is not None else ESC_LR_PATCH * scale
        if patch % scale:
            raise ConfigError("patch_size", f"must be a multiple of the scale {scale}", patch)
        return replace(self, patch_size=patch)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["betas"], data["milestones"] = list(self.betas), list(self.milestones or ())
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(unknown[0], "is not a recipe field", data[unknown[0]])
        return cls(**data)


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(name, "must be a positive integer", value)


def _validate(r: Recipe) -> None:
    if not isinstance(r.lr, int | float) or not math.isfinite(r.lr) or r.lr <= 0:
        raise ConfigError("lr", "must be a positive finite number", r.lr)
    if len(r.betas) != 2 or not all(0 <= b < 1 for b in r.betas):
        raise ConfigError("betas", "must be two numbers in [0, 1)", list(r.betas))
    if not r.weight_decay >= 0:
        raise ConfigError("weight_decay", "must be >= 0", r.weight_decay)
    if isinstance(r.warmup, bool) or not isinstance(r.warmup, int) or not 0 <= r.warmup <= r.steps:
        raise ConfigError("warmup", f"must be an integer between 0 and the {r.steps} steps",
                          r.warmup)
    if r.schedule not in SCHEDULES:
        raise ConfigError("schedule", f"must be one of {', '.join(SCHEDULES)}", r.schedule)
    ms = r.milestones or ()
    if any(isinstance(m, bool) or not isinstance(m, int) for m in ms) or list(ms) != sorted(
            set(ms)) or (ms and not 1 <= ms[0] <= ms[-1] <= r.steps):
        raise ConfigError("milestones", f"must be increasing steps between 1 and {r.steps}",
                          list(ms))
    if not 0 < r.gamma <= 1:
        raise ConfigError("gamma", "must be in (0, 1]", r.gamma)
    if not isinstance(r.ema, int | float) or not 0 <= r.ema < 1:
        raise ConfigError("ema", "must be in [0, 1) (0 turns the moving average off)", r.ema)
    _positive_int("batch_size", r.batch_size)
    if r.patch_size is not None:
        _positive_int("patch_size", r.patch_size)
        if r.patch_size < 8:
            raise ConfigError("patch_size", "must be >= 8 HR pixels", r.patch_size)
    if isinstance(r.seed, bool) or not isinstance(r.seed, int) or not 0 <= r.seed < 2**32:
        raise ConfigError("seed", "must be an integer between 0 and 2**32 - 1", r.seed)
    if not isinstance(r.amp, bool):
        raise ConfigError("amp", "must be true or false", r.amp)


def lr_at_step(step: int, recipe: Recipe) -> float:
    """The learning rate of optimisation step ``step`` (0-based): linear warm-up as BasicSR's
    ((step + 1) / warmup of the rate), then multistep decay (counted, as BasicSR's
    MultiStepLR, in 1-based iterations) or cosine decay to zero at the last step."""
    warmup = recipe.warmup or 0
    if recipe.schedule == "multistep" and step >= warmup:
        return recipe.lr * recipe.gamma ** bisect_right(recipe.milestones or (), step + 1)
    return warmup_cosine(step, recipe.lr, warmup, recipe.steps)


__all__ = ["BRIEF", "ESC_LR_PATCH", "SCHEDULES", "Recipe", "default_ema", "default_milestones",
           "default_warmup", "lr_at_step", "warmup_cosine"]
