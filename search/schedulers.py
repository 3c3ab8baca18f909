"""The trial schedulers a search can use, as a registry: a name -> how it builds its Tune
scheduler, which steps its trials are validated at, and its defaults.

The defaults live here, not in the CLI, so ``SearchSettings()`` and ``srnas search`` launch the
same search: a field of :class:`~srnas.search.settings.SearchSettings` left at
:data:`SCHEDULER_DEFAULT` takes the scheduler's value. Ray is imported only by ``make``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from srnas.search.ranking import default_min_steps, rung_ladder
from srnas.space.errors import ConfigError
from srnas.space.registry import Registry

if TYPE_CHECKING:
    from srnas.search.settings import SearchSettings


class _SchedulerDefault:
    def __repr__(self) -> str:
        return "<the scheduler's default>"


# A SearchSettings field left at this takes the value of the chosen scheduler's defaults.
SCHEDULER_DEFAULT: Any = _SchedulerDefault()


@dataclass(frozen=True)
class SchedulerDefaults:
    """What a launch gets unless it says otherwise."""

    trials: int  # new trials (architectures) of a launch
    train_seconds: float | None  # cap on a trial's training wall time (None: no cap)
    min_steps: int | None = None  # first rung (None: three rungs, see default_min_steps)
    eta: int = 3  # keep the best 1/eta of each rung


DEFAULTED = ("trials", "train_seconds", "min_steps", "eta")  # the fields of SchedulerDefaults


@dataclass(frozen=True)
class SchedulerType:
    name: str
    help: str
    defaults: SchedulerDefaults
    rungs: Callable[[SearchSettings], tuple[int, ...]]  # steps a trial is ranked at; last=steps
    val_every: Callable[[SearchSettings], int]  # mid-training validations when not given
    label: Callable[[SearchSettings], str]  # how the study's measurement records it
    make: Callable[[SearchSettings], Any]  # the Tune scheduler (None: Tune's FIFO)
    validate: Callable[[SearchSettings], None] | None = None  # its own one-line errors
    describe: Callable[[SearchSettings], str | None] | None = None  # the launch's line on it


SCHEDULER_TYPES: Registry[SchedulerType] = Registry("scheduler", "scheduler",
                                                    first=("mo-asha", "fifo"))
# Live views, under the names other modules import.
SCHEDULERS = SCHEDULER_TYPES.names_view()
DEFAULT_TRIALS = SCHEDULER_TYPES.mapping_view(lambda _, s: s.defaults.trials)
DEFAULT_TRAIN_SECONDS = SCHEDULER_TYPES.mapping_view(lambda _, s: s.defaults.train_seconds)


def register_scheduler(scheduler: SchedulerType) -> SchedulerType:
    return SCHEDULER_TYPES.register(scheduler.name, scheduler)


def unregister_scheduler(name: str) -> SchedulerType:
    return SCHEDULER_TYPES.unregister(name)


def get_scheduler(name: object) -> SchedulerType:
    return SCHEDULER_TYPES.get(name)


def make_scheduler(settings: SearchSettings) -> Any:
    """The Tune scheduler of ``settings`` (``None``: Tune's own FIFO)."""
    return get_scheduler(settings.scheduler).make(settings)


def describe_scheduler(settings: SearchSettings) -> str | None:
    """The line a launch prints about its scheduler, if it has one."""
    describe = get_scheduler(settings.scheduler).describe
    return None if describe is None else describe(settings)


def schedulers_help() -> str:
    return "; ".join(f"{n}: {s.help}" for n, s in SCHEDULER_TYPES.items())


# -- mo-asha -----------------------------------------------------------------------------------
def _asha_rungs(s: SearchSettings) -> tuple[int, ...]:
    return rung_ladder(s.min_steps or default_min_steps(s.steps, s.eta), s.steps, s.eta)


def _asha_validate(s: SearchSettings) -> None:
    if s.steps < 2:
        raise ConfigError("steps", "must be >= 2 with --scheduler mo-asha (a ladder needs "
                          "two rungs; use --scheduler fifo)", s.steps)
    if s.min_steps is not None:
        rung_ladder(s.min_steps, s.steps, s.eta)  # eta and min_steps, one-line errors
    else:
        rung_ladder(default_min_steps(s.steps, s.eta) if isinstance(s.eta, int) and
                    not isinstance(s.eta, bool) and s.eta >= 2 else 1, s.steps, s.eta)


def _asha_make(s: SearchSettings) -> Any:
    from srnas.search.scheduler import MOASHAScheduler

    return MOASHAScheduler(s.objectives, s.tune_modes(), s.rungs, s.eta)


def _asha_describe(s: SearchSettings) -> str:
    return (f"mo-asha: rungs at {', '.join(map(str, s.rungs))} steps; at each rung a trial "
            f"continues if it is in the best 1/{s.eta} so far (by non-dominated sorting), else "
            "it is stopped (PRUNED)")


register_scheduler(SchedulerType(
    name="mo-asha",
    help="multi-objective successive halving: trials stopped at a rung are PRUNED",
    # Three times fifo's trials in about the same compute: most stop at an early rung. No
    # wall-time cap: the first rung already bounds a heavy network's cost, and a cap would
    # cut exactly the promoted trials.
    defaults=SchedulerDefaults(trials=24, train_seconds=None),
    rungs=_asha_rungs,
    val_every=lambda s: 0,  # the rungs are its validations
    label=lambda s: f"mo-asha eta={s.eta} rungs={'/'.join(map(str, s.rungs))}",
    make=_asha_make, validate=_asha_validate, describe=_asha_describe))

# -- fifo --------------------------------------------------------------------------------------
register_scheduler(SchedulerType(
    name="fifo", help="every trial trains all --steps",
    # Every trial trains fully: the cap keeps a heavy network from holding a laptop search
    # for many minutes.
    defaults=SchedulerDefaults(trials=8, train_seconds=120.0),
    rungs=lambda s: (s.steps,),
    val_every=lambda s: (s.steps + 1) // 2,  # one mid-training validation: live progress
    label=lambda s: "fifo",
    make=lambda s: None))

__all__ = [
    "DEFAULTED",
    "DEFAULT_TRAIN_SECONDS",
    "DEFAULT_TRIALS",
    "SCHEDULERS",
    "SCHEDULER_DEFAULT",
    "SCHEDULER_TYPES",
    "SchedulerDefaults",
    "SchedulerType",
    "describe_scheduler",
    "get_scheduler",
    "make_scheduler",
    "register_scheduler",
    "schedulers_help",
    "unregister_scheduler",
]
