"""``PerTrialSeeded``: a search's sampler, re-created for every trial with its own seed (why:
see :mod:`srnas.search.samplers`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from optuna.samplers import BaseSampler

from srnas.search.samplers import base_sampler, trial_seed

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study import Study
    from optuna.trial import FrozenTrial, TrialState


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


__all__ = ["PerTrialSeeded", "make_sampler"]
