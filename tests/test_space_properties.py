"""Properties that must hold for every point of the default search space."""

from __future__ import annotations

import optuna
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from srnas.space import ArchConfig, SearchSpace, build_model, from_dict, get_preset
from srnas.space.searchspace import MILK_ONLY, Dim

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
@pytest.mark.timeout(900)  # 25 networks built and trained briefly: minutes on 2 busy cores
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


# -- arch_id is canonical: one id per network --------------------------------------------------
@st.composite
def small_configs(draw: st.DrawFn) -> ArchConfig:
    n_blocks = draw(st.integers(1, 2))
    block_type = draw(st.sampled_from(["convattn", "milk"]))
    milk = block_type == "milk"
    window = draw(st.one_of(st.booleans(),
                            st.lists(st.booleans(), min_size=n_blocks, max_size=n_blocks)))
    return ArchConfig(
        scale=draw(st.sampled_from([2, 3])), dim=draw(st.sampled_from([8, 16])),
        split_ratio=draw(st.sampled_from([0.25, 0.5, 1, 1.0])),
        kernel_size=draw(st.sampled_from([3, 5])), block_type=block_type,
        dict_size=draw(st.sampled_from([1, 2])) if milk else None,
        gate=draw(st.sampled_from(["softmax", "sigmoid", "sum"])) if milk else None,
        shared_kernel=draw(st.booleans()) if milk else True, n_blocks=n_blocks,
        conv_layers=1, window_attn=window, window_size=draw(st.sampled_from([4, 8])),
        heads=draw(st.sampled_from([1, 2])), ffn_ratio=draw(st.sampled_from([1, 1.0, 2])))


def _rewrites(config: ArchConfig) -> list[ArchConfig]:
    """Configs written differently that build the same network."""
    out = [from_dict({**config.to_dict(), "split_ratio": config.pdim / config.dim}),
           from_dict({**config.to_dict(), "window_attn": [config.block_has_window(i)
                                                          for i in range(config.n_blocks)]})]
    if not config.any_window:  # window dims do not apply
        out.append(config.replace(window_size=16, heads=config.dim))
    return out


def _same_network(a: ArchConfig, b: ArchConfig) -> bool:
    """Independent truth: the same parameters (names and shapes) and, with every parameter set
    to the same random values, the same output on the same input."""
    ma, mb = build_model(a).eval(), build_model(b).eval()
    sa, sb = ma.state_dict(), mb.state_dict()
    if a.scale != b.scale or {k: v.shape for k, v in sa.items()} != {
            k: v.shape for k, v in sb.items()}:
        return False
    gen = torch.Generator().manual_seed(0)
    randomised = {k: torch.randn(v.shape, generator=gen) * 0.3 for k, v in sa.items()}
    ma.load_state_dict(randomised)
    mb.load_state_dict(randomised)
    x = torch.rand(1, 3, 10, 12, generator=gen)
    with torch.no_grad():
        return torch.allclose(ma(x), mb(x), atol=1e-5)


@pytest.mark.slow
@pytest.mark.timeout(900)  # 25 networks built and trained briefly: minutes on 2 busy cores
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=small_configs(), b=small_configs())
def test_arch_id_is_one_id_per_network(a: ArchConfig, b: ArchConfig) -> None:
    for same in _rewrites(a):
        assert same.arch_id == a.arch_id and _same_network(a, same)
    assert (a.arch_id == b.arch_id) == _same_network(a, b)
