"""The search space as data: YAML overrides, validation, baselines."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from srnas.space import ConfigError, get_preset, load_space
from srnas.space.searchspace import SearchSpace, space_from_data


def test_defaults_cover_the_five_named_dimensions() -> None:
    data = SearchSpace().to_data()
    assert data["kernel_size"] == [7, 9, 11, 13, 15, 17]
    assert data["dict_size"] == {"low": 1, "high": 8}
    assert data["split_ratio"] == [0.125, 0.25, 0.375, 0.5]
    assert data["gate"] == ["softmax", "sigmoid", "sum"]
    assert data["n_blocks"] == {"low": 1, "high": 6}


def test_yaml_fixes_narrows_and_widens(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("block_type: milk\nkernel_size: {low: 5, high: 9}\n"
                    "dict_size: {low: 2, high: 12}\nn_blocks: [1, 2]\n")
    space = load_space(path)
    assert space.dims["kernel_size"].choices == (5, 7, 9)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        trial = study.ask()
        arch = space.sample(trial).arch
        assert arch.block_type == "milk" and "block_type" not in trial.params
        assert arch.kernel_size in (5, 7, 9) and 2 <= arch.dict_size <= 12
        assert arch.n_blocks in (1, 2)
        study.tell(trial, 0.0)
    assert load_space(path).to_data() == space.to_data()  # stable round trip


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"kernel_size": [8, 9]}, "kernel_size: choice 8 breaks a rule: must be odd"),
        ({"gate": ["softmax", "max"]}, "gate: choice 'max'"),
        ({"split_ratio": [0.1]}, "split_ratio"),
        ({"dim": [30, 64]}, "dim"),
        ({"heads": 5}, "heads"),
        ({"dict_size": {"low": 0, "high": 4}}, "dict_size: choice 0"),
        ({"n_blocks": {"low": 3, "high": 1}}, "n_blocks: low must not exceed high"),
        ({"n_blocks": {"low": 1}}, "n_blocks: a range needs"),
        ({"lr": {"low": 0, "high": 1e-3, "log": True}}, "lr: a log range needs low > 0"),
        ({"depth": 3}, "depth: is not a search dimension"),
        ({"gate": []}, "gate: a list of choices must not be empty"),
        ({"kernel_size": {"low": 8, "high": 8}}, "kernel_size: the range holds no odd"),
    ],
)
def test_bad_spaces_are_rejected_with_the_field_named(data: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        space_from_data(data)
    assert fragment in str(info.value)


def test_missing_and_malformed_space_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^space: must be an existing YAML file"):
        load_space(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kernel_size: [7,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_space(bad)


def test_window_dims_are_suggested_only_with_window_attention() -> None:
    space = space_from_data({"window_size": [8, 16], "heads": [2, 4]})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        arch = space.sample(trial).arch
        seen.add(arch.window_attn)
        assert ("window_size" in trial.params) == arch.window_attn
        study.tell(trial, 0.0)
    assert seen == {True, False}


def test_baselines_train_with_escs_learning_rate() -> None:
    assert SearchSpace().params_for(get_preset("esc-light"))["lr"] == 5e-4


def test_a_baseline_outside_the_space_is_named() -> None:
    space = space_from_data({"n_blocks": {"low": 1, "high": 2}})
    with pytest.raises(ConfigError, match="n_blocks: value is outside the search space"):
        space.params_for(get_preset("esc-light"))


def test_a_fixed_per_block_window_list_needs_a_fixed_block_count() -> None:
    space = space_from_data({"window_attn": [[True, False]], "n_blocks": 2})
    study = optuna.create_study()
    arch = space.sample(study.ask()).arch
    assert arch.window_attn == (True, False) and arch.n_blocks == 2
    with pytest.raises(ConfigError, match="needs n_blocks fixed to its length"):
        space_from_data({"window_attn": [[True, False]]})
    with pytest.raises(ConfigError, match="can only be fixed"):
        space_from_data({"window_attn": [[True, False], True], "n_blocks": 2})


def test_space_rules_name_the_widths_the_space_gives(tmp_path: Path) -> None:
    # heads 3 divides the only width 24: valid, although it would not divide the default 64.
    space = space_from_data({"dim": [24], "heads": [3]})
    assert list(space.dims["heads"].values()) == [3]
    with pytest.raises(ConfigError, match=r"^heads: must divide every dim choice \(dim 32\)"):
        space_from_data({"dim": [24, 32], "heads": [3]})
    binary = tmp_path / "space.yaml"
    binary.write_bytes(b"\xff\xfe\x00 not text")
    with pytest.raises(ConfigError, match=r"^space: is not UTF-8 text"):
        load_space(binary)
