"""The samplers' settings (search/samplers.py), measured in benchmarks/bench_samplers.py."""

from __future__ import annotations

import logging

import optuna
import pytest

from srnas.search.samplers import TPE_OPTIONS, base_sampler
from srnas.search.seeded import make_sampler
from srnas.space import SearchSpace

DIRECTIONS = ["maximize", "minimize", "minimize"]


def _proposals(sampler: str, trials: int, seed: int = 0) -> list[dict]:
    study = optuna.create_study(directions=DIRECTIONS, sampler=make_sampler(sampler, seed))
    space = SearchSpace()
    out = []
    for i in range(trials):
        trial = study.ask()
        space.sample(trial, 4)
        out.append(trial.params)
        study.tell(trial, [20.0 + i % 3, 10.0 - i, (1.5 * i) % 4])
    return out


def test_gp_draws_the_milk_only_dimensions_without_a_warning_per_trial(caplog) -> None:
    """The MiLK-only dimensions are absent from convattn trials, so GP leaves them to random
    sampling by design; Optuna would log that three times per trial."""
    optuna.logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING, logger="optuna"):
            first = _proposals("gp", 6)  # 4 start-up trials, then GP
    finally:
        optuna.logging.disable_propagation()
    assert not [r for r in caplog.records if "sampled independently" in r.getMessage()]
    assert _proposals("gp", 6) == first  # still reproducible from the seed


def _recording(monkeypatch: pytest.MonkeyPatch, name: str) -> list[dict]:
    """Replace Optuna's sampler class ``name`` by a subclass that records the keyword
    arguments each construction gets (Optuna's public constructor, not its private fields)."""
    calls: list[dict] = []
    real = getattr(optuna.samplers, name)

    class Recording(real):  # type: ignore[misc, valid-type]
        def __init__(self, **kwargs: object) -> None:
            calls.append(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr(optuna.samplers, name, Recording)
    return calls


def test_the_default_tpe_models_the_conditional_space_jointly_and_lies_for_running_trials(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _recording(monkeypatch, "TPESampler")
    sampler = base_sampler("tpe", 0)
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert TPE_OPTIONS == {"multivariate": True, "group": True, "n_startup_trials": 4,
                           "constant_liar": True}
    # Stated explicitly, not inherited from Optuna's defaults (constant liar was off before
    # Optuna 5; multivariate is off by default for multi-objective studies).
    assert calls == [{"seed": 0, **TPE_OPTIONS}]


def test_options_override_the_defaults_for_every_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    """A variant (what bench_samplers compares) changes only the options it names, and keeps
    them when the sampler is re-created for each trial."""
    from srnas.search.seeded import PerTrialSeeded

    calls = _recording(monkeypatch, "TPESampler")
    variant = PerTrialSeeded("tpe", 0, {"n_startup_trials": 8})
    study = optuna.create_study(directions=DIRECTIONS, sampler=variant)
    study.ask()
    study.ask()
    assert len(calls) == 3  # made once, then again for each trial with the trial's own seed
    for call in calls:
        assert call == {**call, **TPE_OPTIONS, "n_startup_trials": 8}
    assert len({call["seed"] for call in calls}) == 3
    nsga = _recording(monkeypatch, "NSGAIISampler")
    base_sampler("nsga2", 0, {"population_size": 4})
    assert nsga == [{"seed": 0, "population_size": 4}]


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "gp", "random"])
def test_the_start_up_trials_are_random_searchs_own(sampler: str) -> None:
    """Every sampler's start-up trials draw from the same per-trial seeds as random search, so
    samplers compared at one seed start from the same points (what the benchmark pairs on)."""
    assert _proposals(sampler, 4) == _proposals("random", 4)


def test_the_sampler_table_reads_without_optuna_and_refuses_unknown_names() -> None:
    """``SAMPLERS`` and the defaults are a registry read by ``srnas --help`` (no Optuna import);
    an unknown name is the one-line error, never a silent fallback to random search."""
    import subprocess
    import sys

    from srnas.search.samplers import SAMPLER_TYPES, SAMPLERS
    from srnas.space import ConfigError

    code = ("import sys; from srnas.search.samplers import SAMPLERS; "
            "print(list(SAMPLERS), 'optuna' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "['tpe', 'nsga2', 'gp', 'random'] False"
    assert SAMPLER_TYPES.get("tpe").defaults == TPE_OPTIONS and SAMPLERS[0] == "tpe"
    with pytest.raises(ConfigError, match=r"^sampler: must be one of .* \(got 'annealing'\)$"):
        base_sampler("annealing", 0)
