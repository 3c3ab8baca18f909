"""The Optuna samplers a search can use, seeded per trial so that no launch replays another.

A sampler seeded once per launch replays its first proposals whenever a study is continued or
shared: a relaunch, or a second driver on the same study, draws the same random start-up
configurations again and pays for identical trials. :class:`PerTrialSeeded` instead re-creates
the sampler for every trial with a seed derived from ``--seed`` and the trial's number, which
the storage hands out uniquely across launches and drivers. A fresh study launched twice with
the same seed still proposes the same trials (the numbers are the same), so ``--seed`` keeps
making a study reproducible. Samplers hold no state of their own between trials (they read
the history from the study), so re-creating one loses nothing but its random state.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import optuna
from optuna.samplers import BaseSampler

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study import Study
    from optuna.trial import FrozenTrial, TrialState


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


def base_sampler(name: str, seed: int | None,
                 options: Mapping[str, Any] | None = None) -> BaseSampler:
    """The sampler ``name`` with the search's options, ``options`` overriding them (e.g.
    ``{"n_startup_trials": 8}``: the variants benchmarks/bench_samplers.py compares)."""
    with warnings.catch_warnings():
        # multivariate/group and GP are flagged experimental; they are what fits here.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, **{**TPE_OPTIONS, **(options or {})})
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed,
                                                 **{"population_size": 8, **(options or {})})
        if name == "gp":
            # GP models the dimensions every trial has; the MiLK-only ones (absent from
            # convattn trials) are drawn at random by design, which Optuna would otherwise
            # log as a warning three times per trial.
            return optuna.samplers.GPSampler(seed=seed, **{
                "n_startup_trials": 4, "warn_independent_sampling": False, **(options or {})})
        return optuna.samplers.RandomSampler(seed=seed, **(options or {}))


def trial_seed(seed: int, number: int) -> int:
    """A 32-bit seed from the launch seed and a trial number (stable across processes)."""
    digest = hashlib.sha256(f"srnas:{seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


class PerTrialSeeded(BaseSampler):
    """Delegates to ``base_sampler(name, trial_seed(seed, trial.number), options)``, made in
    ``before_trial`` (Optuna calls it when a trial is created, before any sampling)."""

    def __init__(self, name: str, seed: int, options: Mapping[str, Any] | None = None) -> None:
        self.name, self.seed, self.options = name, seed, dict(options or {})
        self._inner = base_sampler(name, seed, self.options)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._inner = base_sampler(self.name, trial_seed(self.seed, trial.number), self.options)
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def make_sampler(name: str, seed: int | None) -> BaseSampler:
    """The sampler of a search: seeded per trial when a seed is given."""
    return base_sampler(name, None) if seed is None else PerTrialSeeded(name, seed)


__all__ = ["TPE_OPTIONS", "PerTrialSeeded", "base_sampler", "make_sampler", "trial_seed"]
