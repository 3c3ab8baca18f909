"""The Optuna samplers a search can use, seeded per trial so that no launch replays another.

A sampler seeded once per launch replays its first proposals whenever a study is continued or
shared: a relaunch, or a second driver on the same study, draws the same random start-up
configurations again and pays for identical trials. :class:`PerTrialSeeded` instead re-creates
the sampler for every trial with a seed derived from ``--seed`` and the trial's number, which
the storage hands out uniquely across launches and drivers. A fresh study launched twice with
the same seed still proposes the same trials (the numbers are the same), so ``--seed`` keeps
making a study reproducible. Samplers hold no state of their own between trials (they read
the history from the study), so re-creating one loses nothing but its random state.

The samplers are a registry (``register_sampler``): a name, its factory and the search's
options for it; ``SAMPLERS`` is the live list of names.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from srnas.space.registry import Registry

if TYPE_CHECKING:
    from optuna.samplers import BaseSampler


# The default sampler's options, measured by benchmarks/bench_samplers.py (3-objective searches
# of 32 trials, 2 at a time, 3 seeds; results/samplers.md): they reach random search's 32-trial
# hypervolume in 11 trials (mean curve). Multivariate + grouped, so the conditional MiLK
# dimensions are modelled jointly: independent TPE (Optuna's multi-objective default) took 17.
# 4 start-up trials: 8 took 13; 8 EI candidates instead of 24 took 8, but 12 against 12 over 6
# seeds. Constant liar (running trials count as bad ones, so concurrent trials are not proposed
# next to each other) is Optuna 5's default, stated so the choice does not hang on it: off, 10
# trials at 2 at a time (no difference) and 20 instead of 16 at 8 at a time.
TPE_OPTIONS: dict[str, Any] = {"multivariate": True, "group": True, "n_startup_trials": 4,
                               "constant_liar": True}


@dataclass(frozen=True)
class SamplerType:
    """``make(seed, **options)`` builds the Optuna sampler; ``defaults`` are the search's
    options, which a caller's options override. Optuna is imported inside ``make``, so this
    table reads without it (``srnas --help``)."""

    name: str
    make: Callable[..., BaseSampler]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    help: str = ""


SAMPLER_TYPES: Registry[SamplerType] = Registry("sampler", "sampler",
                                                first=("tpe", "nsga2", "gp", "random"))
# A live view: samplers registered later appear in it.
SAMPLERS = SAMPLER_TYPES.names_view()


def register_sampler(name: str, *, defaults: Mapping[str, Any] | None = None, help: str = ""
                     ) -> Callable[[Callable[..., BaseSampler]], Callable[..., BaseSampler]]:
    """Decorator: ``@register_sampler("tpe", defaults={...})`` on ``make(seed, **options)``."""

    def wrap(make: Callable[..., BaseSampler]) -> Callable[..., BaseSampler]:
        SAMPLER_TYPES.register(name, SamplerType(name, make, dict(defaults or {}), help))
        return make

    return wrap


def unregister_sampler(name: str) -> SamplerType:
    return SAMPLER_TYPES.unregister(name)


@register_sampler("tpe", defaults=TPE_OPTIONS,
                  help="multivariate TPE (default; options measured in results/samplers.md)")
def _tpe(seed: int | None, **options: Any) -> BaseSampler:
    import optuna

    return optuna.samplers.TPESampler(seed=seed, **options)


@register_sampler("nsga2", defaults={"population_size": 8}, help="NSGA-II, populations of 8")
def _nsga2(seed: int | None, **options: Any) -> BaseSampler:
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed, **options)


# GP models the dimensions every trial has; the MiLK-only ones (absent from convattn trials)
# are drawn at random by design, which Optuna would otherwise log as a warning three times per
# trial.
@register_sampler("gp", defaults={"n_startup_trials": 4, "warn_independent_sampling": False},
                  help="Gaussian process (Optuna's GPSampler)")
def _gp(seed: int | None, **options: Any) -> BaseSampler:
    import optuna

    return optuna.samplers.GPSampler(seed=seed, **options)


@register_sampler("random", help="uniform random search")
def _random(seed: int | None, **options: Any) -> BaseSampler:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed, **options)


def base_sampler(name: str, seed: int | None,
                 options: Mapping[str, Any] | None = None) -> BaseSampler:
    """The sampler ``name`` with the search's options, ``options`` overriding them (e.g.
    ``{"n_startup_trials": 8}``: the variants benchmarks/bench_samplers.py compares)."""
    import optuna

    kind = SAMPLER_TYPES.get(name)
    with warnings.catch_warnings():
        # multivariate/group and GP are flagged experimental; they are what fits here.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return kind.make(seed, **{**kind.defaults, **(options or {})})


def trial_seed(seed: int, number: int) -> int:
    """A 32-bit seed from the launch seed and a trial number (stable across processes)."""
    digest = hashlib.sha256(f"srnas:{seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


__all__ = ["SAMPLERS", "SAMPLER_TYPES", "TPE_OPTIONS", "SamplerType",
           "base_sampler", "register_sampler", "trial_seed",
           "unregister_sampler"]
