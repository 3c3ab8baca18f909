"""Objectives a search may optimise, as a registry: one record says everything srnas needs.

``register_objective(Objective(...))`` adds one; the study contract's names
(``OBJECTIVE_DIRECTIONS``, ``BUDGET_KEYS``, ``UNTRAINED_VALUES`` in ``space/contract.py``),
the budget flags and help texts of the CLI, the units of the tables and the figures
``evaluate`` returns are all derived from it. Plain data, no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from srnas.space.errors import ConfigError
from srnas.space.registry import MappingView, Registry

Direction = Literal["maximize", "minimize"]


def si(count: float) -> str:
    """A count with an SI prefix: 91.04G, 5.33M (a tiny test input would read 0.00G)."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(count) >= factor:
            return f"{count / factor:.2f}{prefix}"
    return str(int(count))


@dataclass(frozen=True)
class Objective:
    """One objective.

    ``compute``: how its value comes from a trial's figures (``EvalResult.to_dict()``: ``arch``,
    ``params``, ``latency_ms``, ``psnr``, ...); it returns ``None`` while the figures it needs
    are not there yet. ``None`` (the built-ins): the figure of the same name, measured by the
    evaluator itself.
    ``budget``: whether ``max_<name>`` may bound it. Only figures known before training can:
    a trial over a budget is not trained.
    ``untrained``: the value an untrained (over-budget) trial is told, for objectives that
    need training (the worst possible value); ``None`` for figures every trial has.
    """

    name: str
    direction: Direction
    unit: str
    label: str
    display: Callable[[Any], str] = "{:.4g}".format
    budget: bool = False
    untrained: float | None = None
    compute: Callable[[Mapping[str, Any]], float | None] | None = None

    def __post_init__(self) -> None:
        if self.direction not in ("maximize", "minimize"):
            raise ValueError(f"objective {self.name!r}: direction must be 'maximize' or "
                             f"'minimize', got {self.direction!r}")

    @property
    def budget_arg(self) -> str:
        """The library argument of its budget; the CLI flag is the same with dashes."""
        return f"max_{self.name}"

    def value(self, figures: Mapping[str, Any]) -> float | None:
        if self.compute is not None:
            return self.compute(figures)
        return figures.get(self.name)

    def budget_help(self) -> str:
        return (f"budget: trials whose {self.label} ({self.unit}) is above it are infeasible "
                "(not trained)")


OBJECTIVES: Registry[Objective] = Registry("objective", "objectives")


def register_objective(objective: Objective) -> Objective:
    return OBJECTIVES.register(objective.name, objective)


def unregister_objective(name: str) -> Objective:
    return OBJECTIVES.unregister(name)


def get_objective(name: object) -> Objective:
    return OBJECTIVES.get(name)


def objective_names() -> tuple[str, ...]:
    return OBJECTIVES.names()


def derived_values(figures: Mapping[str, Any]) -> dict[str, float]:
    """Values of the objectives computed from other figures (``compute``), where known."""
    out = {}
    for name, o in OBJECTIVES.items():
        if o.compute is not None:
            value = o.compute(figures)
            if value is not None:
                out[name] = float(value)
    return out


def check_objectives(names: tuple[str, ...], shown: object = None) -> tuple[str, ...]:
    """A search's objectives: at least one, each registered, none twice (one-line
    :class:`ConfigError` on ``objectives``; ``shown`` is what the user typed)."""
    if not names:
        raise ConfigError("objectives", "needs at least one objective",
                          list(names) if shown is None else shown)
    for name in names:
        if name not in OBJECTIVES:
            raise ConfigError("objectives",
                              f"each must be one of {', '.join(OBJECTIVES.names())}", name)
    if len(set(names)) != len(names):
        raise ConfigError("objectives", "must not repeat an objective",
                          list(names) if shown is None else shown)
    return names


def objectives_help() -> str:
    """The ``--objectives`` help: every registered objective with its direction and unit."""
    listed = ", ".join(f"{n} ({o.direction[:3]}, {o.unit})" for n, o in OBJECTIVES.items())
    return f"comma-separated, from {listed}"


# Measures shown beside the objectives that are not objectives themselves.
_OTHER_UNITS = {"latency_iqr_ms": "ms"}

# Live views (names registered later show in them).
OBJECTIVE_DIRECTIONS = OBJECTIVES.mapping_view(lambda _, o: o.direction)
BUDGET_KEYS = OBJECTIVES.mapping_view(lambda _, o: o.budget_arg, where=lambda o: o.budget)
UNTRAINED_VALUES = OBJECTIVES.mapping_view(lambda _, o: o.untrained,
                                           where=lambda o: o.untrained is not None)
UNITS = MappingView(lambda: {**{n: o.unit for n, o in OBJECTIVES.items()}, **_OTHER_UNITS})


def _memory(value: Any) -> str:
    return f"{value:.1f}" if value >= 1 else f"{value:.3g}"


register_objective(Objective("psnr", "maximize", "dB", "validation PSNR (Y channel)",
                             "{:.3f}".format, untrained=0.0))
register_objective(Objective("ssim", "maximize", "1", "validation SSIM (Y channel)",
                             "{:.4f}".format, untrained=0.0))
register_objective(Objective("latency_ms", "minimize", "ms", "median latency",
                             "{:.3f}".format, budget=True))
register_objective(Objective("memory_mb", "minimize", "MB", "peak memory", _memory,
                             budget=True))
register_objective(Objective("params", "minimize", "params", "parameter count",
                             lambda v: f"{int(v):,}", budget=True))
register_objective(Objective("flops", "minimize", "MACs", "multiply-adds (fvcore FLOPs)",
                             lambda v: si(int(v))))

__all__ = [
    "BUDGET_KEYS",
    "OBJECTIVES",
    "OBJECTIVE_DIRECTIONS",
    "UNITS",
    "UNTRAINED_VALUES",
    "Objective",
    "check_objectives",
    "derived_values",
    "get_objective",
    "objective_names",
    "objectives_help",
    "register_objective",
    "si",
    "unregister_objective",
]
