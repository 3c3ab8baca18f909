"""Everything one ``srnas search`` launch needs, validated before anything is written.

``trials``, ``train_seconds``, ``min_steps`` and ``eta`` default to the chosen scheduler's
values (``search/schedulers.py``), so ``SearchSettings()`` is the search ``srnas search`` runs
with no flags. ``dataclasses.replace(settings, scheduler=...)`` keeps the values already
resolved; build new settings to get the other scheduler's defaults."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srnas.evaluators.train_folders import as_folders, check_train_folders, one_or_more
from srnas.search.resources import check_storage_retry, check_time_budget, check_trial_resources
from srnas.search.samplers import SAMPLER_TYPES, SAMPLERS
from srnas.search.schedulers import (
    DEFAULT_TRAIN_SECONDS,
    DEFAULT_TRIALS,
    DEFAULTED,
    SCHEDULER_DEFAULT,
    SCHEDULERS,
    get_scheduler,
)
from srnas.space.contract import (
    BUDGET_KEYS,
    DEFAULT_OBJECTIVES,
    OBJECTIVE_DIRECTIONS,
)
from srnas.space.errors import ConfigError
from srnas.space.objectives import check_objectives
from srnas.space.searchspace import SearchSpace
from srnas.studies.schema import check_search_study_name
from srnas.studies.storage import resolve_url


@dataclass(frozen=True)
class SearchSettings:
    study: str | None = None
    storage: str | None = None
    space: SearchSpace = field(default_factory=SearchSpace)
    trials: int = SCHEDULER_DEFAULT  # mo-asha 24, fifo 8
    time_budget_s: float | None = None
    concurrency: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None
    address: str | None = None
    sampler: str = "tpe"
    seed: int | None = 0
    steps: int = 200
    # Multi-fidelity: "mo-asha" trains every trial to the first rung and only the best
    # 1/eta of each rung further; "fifo" trains every trial for all --steps.
    scheduler: str = "mo-asha"
    min_steps: int | None = SCHEDULER_DEFAULT  # first rung; None: three rungs
    eta: int = SCHEDULER_DEFAULT  # 3
    # Caps a trial's training (whichever of steps / seconds comes first; the steps done are
    # recorded): a laptop search stays bounded when the sampler proposes a heavy network.
    # None: no cap (mo-asha's default); fifo's default is 120 s.
    train_seconds: float | None = SCHEDULER_DEFAULT
    # One training folder (a str) or several (a tuple, in order; a list is taken as one).
    train: str | tuple[str, ...] | None = None
    val: str | None = None
    scale: int = 4
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES
    budgets: dict[str, float] = field(default_factory=dict)
    baselines: tuple[str, ...] = ()
    dry_run: bool = False
    verbose: bool = False
    input_hw: tuple[int, int] | None = None
    val_every: int | None = None  # None: one mid-training validation (at steps // 2)
    # How and where latency/memory are measured (evaluators.runtime, search.target).
    runtime: str = "torch"
    precision: str = "fp32"
    target: str | None = None
    # How long storage calls wait out a database outage (None: studies.retry's default).
    storage_retry_s: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "train", one_or_more(self.train))
        defaults = get_scheduler(self.scheduler).defaults  # "scheduler: must be one of [...]"
        for name in DEFAULTED:
            if getattr(self, name) is SCHEDULER_DEFAULT:
                object.__setattr__(self, name, getattr(defaults, name))
        _validate(self)

    @property
    def storage_url(self) -> str:
        return resolve_url(self.storage)

    @property
    def study_name(self) -> str:
        """Default: derived from the scale and the search space, so a relaunch continues it."""
        return self.study or f"srnas-x{self.scale}-{self.space.space_id}"

    @property
    def effective_val_every(self) -> int:
        if self.val_every is not None:
            return self.val_every
        # fifo: one mid-training validation (progress in the live view); mo-asha: the rungs.
        return get_scheduler(self.scheduler).val_every(self)

    @property
    def rungs(self) -> tuple[int, ...]:
        """Steps at which a trial is validated and ranked; the last is ``steps``."""
        return get_scheduler(self.scheduler).rungs(self)

    @property
    def scheduler_label(self) -> str:
        return get_scheduler(self.scheduler).label(self)

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVE_DIRECTIONS[o] for o in self.objectives]

    def measurement(self, device_kind: str) -> dict[str, Any]:
        """The settings every figure of the study is measured under (``MEASUREMENT_KEYS``):
        a study records them at creation and refuses a launch that differs."""
        import torch

        from srnas.evaluators.latency import default_latency_input_hw

        hw = self.input_hw or default_latency_input_hw(torch.device(device_kind), self.scale)
        return {
            "scale": self.scale, "space_id": self.space.space_id, "steps": self.steps,
            "train_seconds": self.train_seconds, "scheduler": self.scheduler_label,
            "train_data": _data_label(self.train), "val_data": _data_label(self.val),
            "device_kind": device_kind, "input_hw": list(hw),
            "runtime": self.runtime, "precision": self.precision, "target": self.target,
        }

    def tune_modes(self) -> list[str]:
        return ["max" if d == "maximize" else "min" for d in self.directions]


def _data_label(folder: str | tuple[str, ...] | None) -> str | list[str]:
    # The absolute path: on a cluster every node mounts the data at the same place. Several
    # training folders: a list (one stays a str, so studies recorded before still match).
    if folder is None:
        return "built-in"
    if isinstance(folder, tuple):
        return [str(Path(f).resolve()) for f in folder]
    return str(Path(folder).resolve())


def _validate(s: SearchSettings) -> None:
    SAMPLER_TYPES.get(s.sampler)  # "sampler: must be one of [...]"
    check_objectives(tuple(s.objectives))
    for key, value in s.budgets.items():
        if key not in BUDGET_KEYS:
            raise ConfigError("budgets", f"must be among {list(BUDGET_KEYS)}", key)
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ConfigError(BUDGET_KEYS[key], "must be a positive number", value)
    if s.trials < 0:
        raise ConfigError("trials", "must be >= 0", s.trials)
    if s.steps < 1:
        raise ConfigError("steps", "must be a positive integer", s.steps)
    if s.train_seconds is not None and not s.train_seconds > 0:
        raise ConfigError("train_seconds", "must be a positive number of seconds",
                          s.train_seconds)
    if s.scale not in (2, 3, 4):
        raise ConfigError("scale", "must be 2, 3 or 4", s.scale)
    check_time_budget(s.time_budget_s)  # finite and positive (NaN passed a `<= 0` test)
    check_trial_resources(s.cpus_per_trial, s.gpus_per_trial, s.concurrency)
    check_storage_retry(s.storage_retry_s)
    if s.study is not None:
        check_search_study_name(s.study)  # not empty, not reserved, sibling name fits
    if s.seed is not None and not 0 <= s.seed < 2**32:
        raise ConfigError("seed", "must be between 0 and 2**32 - 1", s.seed)
    for name, folder in (*(("train", f) for f in as_folders(s.train)), ("val", s.val)):
        if folder is not None and not Path(folder).is_dir():
            raise ConfigError(name, "must be an existing folder", folder)
    if s.train is not None:
        check_train_folders(as_folders(s.train))  # none twice; a store only alone
    if s.val_every is not None and s.val_every < 0:
        raise ConfigError("val_every", "must be >= 0", s.val_every)
    patch = s.space.dims["patch_size"].values()
    if any(int(p) % s.scale for p in patch):
        raise ConfigError("patch_size", f"every value must be a multiple of the scale {s.scale}",
                          list(patch))
    check = get_scheduler(s.scheduler).validate
    if check is not None:
        check(s)


__all__ = ["DEFAULT_TRAIN_SECONDS", "DEFAULT_TRIALS", "SAMPLERS", "SCHEDULERS",
           "SearchSettings"]
