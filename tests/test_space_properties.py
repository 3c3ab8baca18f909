"""Properties that must hold for every point of the default search space."""

from __future__ import annotations

import optuna
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from space import SearchSpace, build_model, get_preset
from space.searchspace import MILK_ONLY, Dim

SPACE = SearchSpace()


def _dim_strategy(dim: Dim) -> st.SearchStrategy:
    if dim.choices is not None:
        return st.sampled_from(dim.choices)
    assert dim.low is not None and dim.high is not None
    if dim.integer:
        return st.integers(int(dim.low), int(dim.high))
    return st.floats(dim.low, dim.high)


@st.composite
def points(draw: st.DrawFn) -> dict:
    params = {name: draw(_dim_strategy(d)) for name, d in SPACE.dims.items() if not d.fixed}
    if params["block_type"] != "milk":
        for name in MILK_ONLY:
            params.pop(name, None)
    return params


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=points(), scale=st.sampled_from([2, 3, 4]), h=st.integers(3, 12).map(
    lambda v: 2 * v + 1), w=st.integers(3, 12).map(lambda v: 2 * v + 1))
def test_every_point_builds_runs_and_trains(params: dict, scale: int, h: int, w: int) -> None:
    sample = SPACE.sample(optuna.trial.FixedTrial(params), scale)
    assert sample.arch.scale == scale
    model = build_model(sample.arch)
    x = torch.rand(2, 3, h, w)
    y = model(x)
    assert y.shape == (2, 3, h * scale, w * scale)
    assert torch.isfinite(y).all()
    y.abs().mean().backward()
    unreached = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unreached


def test_sampling_suggests_conditional_dims_only_for_milk() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_types = set()
    for _ in range(30):
        trial = study.ask()
        sample = SPACE.sample(trial)
        seen_types.add(sample.arch.block_type)
        has_milk_params = any(n in trial.params for n in MILK_ONLY)
        assert has_milk_params == (sample.arch.block_type == "milk")
        assert all("/" not in name for name in trial.params)
        study.tell(trial, 0.0)
    assert seen_types == {"convattn", "milk"}


@pytest.mark.parametrize("preset", ["esc-light", "esc"])
def test_paper_models_are_points_of_the_default_space(preset: str) -> None:
    config = get_preset(preset)
    params = SPACE.params_for(config)
    assert SPACE.sample(optuna.trial.FixedTrial(params)).arch == config
