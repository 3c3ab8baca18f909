"""The extension points are registries: a block type, an objective, a sampler and a scheduler
added here, in this file alone, run through a dry-run search like the built-in ones."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from srnas.search.samplers import SAMPLERS, register_sampler, unregister_sampler
from srnas.search.schedulers import (
    DEFAULT_TRIALS,
    SCHEDULERS,
    SchedulerDefaults,
    SchedulerType,
    register_scheduler,
    schedulers_help,
    unregister_scheduler,
)
from srnas.search.settings import SearchSettings
from srnas.space import ConfigError, build_model, from_dict
from srnas.space.blocks import BLOCKS, BlockField, BlockType, register_block, unregister_block
from srnas.space.contract import BUDGET_KEYS, OBJECTIVE_DIRECTIONS
from srnas.space.objectives import (
    Objective,
    objectives_help,
    register_objective,
    unregister_objective,
)
from srnas.space.presets import PRESET_NAMES, register_preset, unregister_preset
from srnas.space.searchspace import SearchSpace, space_from_data
from srnas.studies.plot import arch_summary
from srnas.studies.render import UNITS
from tests.cli import run


# -- the toys: everything a new block type, objective, sampler and scheduler is ----------------
class ToyAttention(nn.Module):
    """A gained depthwise 3x3 on the attended channels (no shared kernel needed)."""

    def __init__(self, dim: int, pdim: int, gain: float) -> None:
        super().__init__()
        self.pdim, self.gain = pdim, gain
        self.conv = nn.Conv2d(pdim, pdim, 3, padding=1, groups=pdim)

    def forward(self, x: torch.Tensor, shared_kernel: torch.Tensor | None) -> torch.Tensor:
        x1, x2 = x.split([self.pdim, x.shape[1] - self.pdim], dim=1)
        return torch.cat([self.gain * self.conv(x1), x2], dim=1)


def _check_toy(cfg: Any) -> None:
    if not cfg.option("toy_gain") > 0:
        raise ConfigError("toy_gain", "must be positive", cfg.option("toy_gain"))


TOY_BLOCK = BlockType(
    name="toy", label="toy depthwise",
    build=lambda cfg: ToyAttention(cfg.dim, cfg.pdim, cfg.option("toy_gain")),
    fields=(BlockField("toy_gain", 1.0, (float,), search=[0.5, 1.0, 2.0]),),
    dims=("toy_gain", "shared_kernel"), validate=_check_toy, probe={"toy_gain": 1.0},
    summary=lambda arch: f"gain {arch.get('toy_gain')}")


def _depth(figures: Mapping[str, Any]) -> float | None:
    arch = figures.get("arch")
    return None if arch is None else float(arch["n_blocks"] * arch["conv_layers"])


TOY_OBJECTIVE = Objective("toy_depth", "minimize", "layers", "conv layers in all",
                          budget=True, compute=_depth)

TOY_SCHEDULER = SchedulerType(
    name="toy-fifo", help="fifo, three trials by default",
    defaults=SchedulerDefaults(trials=3, train_seconds=30.0),
    rungs=lambda s: (s.steps,), val_every=lambda s: 0, label=lambda s: "toy-fifo",
    make=lambda s: None)


@pytest.fixture
def toys() -> Iterator[None]:
    register_block(TOY_BLOCK)
    register_objective(TOY_OBJECTIVE)
    register_sampler("toy-random")(lambda seed, **options: optuna.samplers.RandomSampler(seed))
    register_scheduler(TOY_SCHEDULER)
    register_preset("toy-tiny", dim=16, split_ratio=0.25, kernel_size=7, block_type="toy",
                    toy_gain=0.5, n_blocks=1, conv_layers=2, window_size=8, heads=2)
    try:
        yield
    finally:
        unregister_preset("toy-tiny")
        unregister_scheduler("toy-fifo")
        unregister_sampler("toy-random")
        unregister_objective("toy_depth")
        unregister_block("toy")


SMALL = "dim: 16\nn_blocks: {low: 1, high: 2}\nconv_layers: {low: 1, high: 2}\n"


def test_a_toy_block_type_and_objective_run_a_dry_run_search(
        toys: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(SMALL + "block_type: toy\n")
    code, out, err = run(capsys, "search", "--dry-run", "--space", str(space),
                         "--objectives", "psnr,toy_depth", "--max-toy-depth", "3",
                         "--sampler", "toy-random", "--scheduler", "toy-fifo", "--seed", "1")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 3  # the toy scheduler's default trials
    assert all("'toy_gain'" in line for line in lines)  # its own dimension is searched
    assert not any("dict_size" in line for line in lines)  # MiLK's are not


def test_the_toys_show_in_every_derived_table(toys: None) -> None:
    assert BUDGET_KEYS["toy_depth"] == "max_toy_depth"
    assert OBJECTIVE_DIRECTIONS["toy_depth"] == "minimize" and UNITS["toy_depth"] == "layers"
    assert "toy-random" in SAMPLERS and "toy-fifo" in SCHEDULERS
    assert DEFAULT_TRIALS["toy-fifo"] == 3 and "toy-tiny" in PRESET_NAMES
    assert "toy_depth (min, layers)" in objectives_help()
    assert "toy-fifo: fifo, three trials by default" in schedulers_help()
    assert TOY_OBJECTIVE.budget_help().startswith("budget: trials whose conv layers in all "
                                                  "(layers) is above it")
    defaults = SearchSpace().dims
    assert "toy" in defaults["block_type"].choices and "toy_gain" in defaults
    settings_ = SearchSettings(scheduler="toy-fifo", objectives=("psnr", "toy_depth"),
                               budgets={"toy_depth": 4})
    assert (settings_.trials, settings_.train_seconds) == (3, 30.0)
    arch = from_dict({"block_type": "toy", "toy_gain": 2.0}).to_dict()
    assert arch_summary(arch).startswith("toy, gain 2.0, dim 64")


def test_after_teardown_the_built_ins_are_alone() -> None:
    assert "toy_depth" not in BUDGET_KEYS and list(BUDGET_KEYS) == [
        "latency_ms", "memory_mb", "params"]
    assert tuple(BLOCKS.names()) == ("convattn", "milk")
    assert SearchSpace().dims["block_type"].choices == ("convattn", "milk")
    assert "toy_gain" not in SearchSpace().dims
    with pytest.raises(ConfigError, match=r"block_type: must be one of \['convattn', 'milk'\]"):
        from_dict({"block_type": "toy"})


def test_a_block_types_own_field_round_trips_with_defaults_and_rules(toys: None) -> None:
    cfg = from_dict({"block_type": "toy"})
    assert cfg.option("toy_gain") == 1.0  # its default
    twice = from_dict({"block_type": "toy", "toy_gain": 2.0})
    assert from_dict(twice.to_dict()) == twice and twice.arch_id != cfg.arch_id
    assert twice.to_dict()["toy_gain"] == 2.0
    with pytest.raises(ConfigError, match="toy_gain: must be positive"):
        from_dict({"block_type": "toy", "toy_gain": -1.0})
    with pytest.raises(ConfigError, match="toy_gain: only applies to block_type 'toy'"):
        from_dict({"block_type": "milk", "dict_size": 2, "gate": "sum", "toy_gain": 1.0})
    with pytest.raises(ConfigError, match="dict_size: only applies to block_type 'milk'"):
        from_dict({"block_type": "toy", "dict_size": 2})
    with pytest.raises(ConfigError, match="toy_gain: must be float"):
        from_dict({"block_type": "toy", "toy_gain": "big"})
    with pytest.raises(ConfigError, match="shared_kernel: value is outside"):
        space_from_data({"block_type": "toy", "shared_kernel": True}).params_for(
            from_dict({"block_type": "toy", "shared_kernel": False}))


@pytest.mark.slow  # measures latency and FLOPs (about 10 s here)
def test_the_toy_objective_is_computed_and_budgeted_by_evaluate(toys: None) -> None:
    from srnas.evaluators.evaluate import evaluate
    from srnas.space.presets import get_preset

    result = evaluate(get_preset("toy-tiny"), input_hw=(8, 8), budgets={"toy_depth": 1},
                      train_model=False)
    assert result.to_dict()["toy_depth"] == 2.0
    assert result.status == "infeasible_untrained"
    assert result.infeasible_reason == "toy_depth 2 exceeds the budget 1"


def test_registering_a_name_twice_or_an_unknown_name_is_refused() -> None:
    with pytest.raises(ValueError, match="block type 'milk' is already registered"):
        register_block(BlockType(name="milk", label="again", build=lambda cfg: nn.Identity()))
    with pytest.raises(ConfigError, match=r"^sampler: must be one of \['tpe', 'nsga2', 'gp', "
                       r"'random'\] \(got 'annealing'\)$"):
        SearchSettings(sampler="annealing")
    with pytest.raises(ConfigError, match=r"^scheduler: must be one of \['mo-asha', 'fifo'\]"):
        SearchSettings(scheduler="hyperband")


# -- the library's defaults are the CLI's ------------------------------------------------------
@pytest.mark.parametrize("scheduler", ["mo-asha", "fifo"])
def test_search_settings_defaults_are_the_clis(scheduler: str, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import srnas.search.run as run_mod

    seen: list[SearchSettings] = []
    monkeypatch.setattr(run_mod, "dry_run", lambda s, *a, **k: seen.append(s) or 0)
    code, _, err = run(capsys, "search", "--dry-run", "--scheduler", scheduler)
    assert code == 0, err
    assert seen == [SearchSettings(scheduler=scheduler, dry_run=True)]


def test_search_settings_with_mo_asha_has_no_train_seconds_cap_like_the_cli() -> None:
    default = SearchSettings()
    assert default.scheduler == "mo-asha"
    assert (default.trials, default.train_seconds, default.eta) == (24, None, 3)
    assert default.measurement("cpu")["train_seconds"] is None
    fifo = SearchSettings(scheduler="fifo")
    assert (fifo.trials, fifo.train_seconds) == (8, 120.0)
    assert SearchSettings(train_seconds=None, scheduler="fifo").train_seconds is None
    assert SearchSettings(trials=0).trials == 0  # an explicit value is kept


# -- every point of the space builds, for every registered block type ---------------------------
def _points(block_type: str) -> st.SearchStrategy[dict[str, Any]]:
    space = space_from_data({"block_type": block_type})

    def strategy(name: str) -> st.SearchStrategy[Any]:
        d = space.dims[name]
        if d.choices is not None:
            return st.sampled_from(d.choices)
        assert d.low is not None and d.high is not None
        if d.integer:
            return st.integers(int(d.low), int(d.high))
        return st.floats(d.low, d.high)

    names = [n for n, d in space.dims.items() if not d.fixed]
    return st.fixed_dictionaries({n: strategy(n) for n in names})


@settings(max_examples=4, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_point_of_the_space_builds_for_every_registered_block_type(
        toys: None, data: st.DataObject) -> None:
    for block_type in BLOCKS.names():
        params = data.draw(_points(block_type), label=block_type)
        space = space_from_data({"block_type": block_type})
        trial = optuna.trial.FixedTrial(params)
        sample = space.sample(trial, scale=2)
        assert sample.arch.block_type == block_type
        # Only the dimensions this block type has are suggested, so the config is honest.
        assert set(trial.params) <= set(params)
        model = build_model(sample.arch).eval()
        with torch.no_grad():
            out = model(torch.rand(1, 3, 6, 6))
        assert out.shape == (1, 3, 12, 12) and torch.isfinite(out).all()
        assert space.params_for(sample.arch, sample.train) == trial.params  # and back
