"""Config validation, round trips and the ``srnas arch`` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from srnas.search.cli import main
from srnas.space import (
    ArchConfig,
    ConfigError,
    from_dict,
    from_json,
    from_yaml,
    get_preset,
    load_config,
)
from srnas.space.presets import PRESET_NAMES
from tests.cli import assert_usage_error, run


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_json_and_yaml_round_trips_are_exact(name: str) -> None:
    config = get_preset(name, 3)
    assert from_json(config.to_json()) == config
    assert from_yaml(config.to_yaml()) == config
    assert from_json(config.to_json()).arch_id == config.arch_id


def _all_presets() -> list[ArchConfig]:
    return [get_preset(name, scale) for name in PRESET_NAMES for scale in (2, 3, 4)]


def test_arch_id_is_a_stable_string_and_the_default_is_esc_light_x4() -> None:
    a = get_preset("esc-light")
    assert isinstance(a.arch_id, str) and a.arch_id and not a.arch_id.isspace()
    assert a.arch_id == a.arch_id == get_preset("esc-light").arch_id  # stable across calls
    assert a.arch_id == ArchConfig().arch_id  # ESC-light x4 is the default


def test_arch_id_is_the_same_in_another_process() -> None:
    # Another interpreter with another string-hash seed must name every network the same way
    # (no dependence on dict order, id() or Python's randomised hash()).
    script = ("import json; from srnas.space import get_preset; "
              "from srnas.space.presets import PRESET_NAMES; "
              "print(json.dumps([get_preset(n, s).arch_id "
              "for n in PRESET_NAMES for s in (2, 3, 4)]))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, timeout=120,
                          env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert json.loads(done.stdout) == [c.arch_id for c in _all_presets()]


def test_arch_id_differs_when_the_network_differs() -> None:
    a = get_preset("esc-light")
    others = [
        a.replace(kernel_size=11),
        a.replace(scale=2),
        a.replace(dim=32, heads=4),
        a.replace(split_ratio=0.5),
        a.replace(n_blocks=2),
        a.replace(conv_layers=4),
        a.replace(window_attn=False),
        a.replace(window_attn=[True, False, True]),
        a.replace(window_attn=[False, True, True]),
        a.replace(block_type="milk", dict_size=4, gate="softmax"),
        a.replace(block_type="milk", dict_size=4, gate="sigmoid"),
        a.replace(block_type="milk", dict_size=5, gate="softmax"),
        a.replace(block_type="milk", dict_size=4, gate="softmax", shared_kernel=False),
    ]
    ids = [c.arch_id for c in [a, *others]]
    assert len(set(ids)) == len(ids), ids
    presets = _all_presets()
    assert len({c.arch_id for c in presets}) == len(presets)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_arch_id_survives_every_round_trip(name: str) -> None:
    config = get_preset(name, 2)
    if config.n_blocks > 1:  # a per-block list too, which serialises as a list
        config = config.replace(window_attn=[True] + [False] * (config.n_blocks - 1))
    assert from_dict(config.to_dict()).arch_id == config.arch_id
    assert from_dict(json.loads(json.dumps(config.to_dict()))).arch_id == config.arch_id
    assert from_json(config.to_json()).arch_id == config.arch_id
    assert from_yaml(config.to_yaml()).arch_id == config.arch_id
    assert config.replace().arch_id == config.arch_id


def test_the_same_network_written_two_ways_has_one_arch_id() -> None:
    a = get_preset("esc-light")
    assert a.replace(window_attn=[True] * a.n_blocks).arch_id == a.arch_id
    assert a.replace(window_attn=[False] * a.n_blocks).arch_id == \
        a.replace(window_attn=False).arch_id


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"block_type": "milk", "dict_size": 2, "gate": "max"}, "gate", "must be one of"),
        ({"kernel_size": 12}, "kernel_size", "odd"),
        ({"kernel_size": 33}, "kernel_size", "between 3 and 31"),
        ({"split_ratio": 0.3}, "split_ratio", "integer"),
        ({"split_ratio": 0.0}, "split_ratio", "(0, 1]"),
        ({"dim": 30, "split_ratio": 0.5, "heads": 4}, "heads", "must divide dim=30"),
        ({"dict_size": 4}, "dict_size", "only applies to block_type 'milk'"),
        ({"gate": "sum"}, "gate", "only applies"),
        ({"block_type": "milk", "gate": "sum"}, "dict_size", "required"),
        ({"block_type": "milk", "dict_size": 17, "gate": "sum"}, "dict_size", "between 1 and 16"),
        ({"block_type": "lstm"}, "block_type", "must be one of"),
        ({"scale": 8}, "scale", "must be one of"),
        ({"shared_kernel": False}, "shared_kernel", "convattn"),
        ({"n_blocks": True}, "n_blocks", "not a boolean"),
        ({"dim": "64"}, "dim", "must be int"),
        ({"colour": "red"}, "colour", "not a config field"),
        ({"schema_version": 2}, "schema_version", "must be 1"),
    ],
)
def test_invalid_configs_name_the_field_the_rule_and_the_value(
        changes: dict, field: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_dict({**ArchConfig().to_dict(), **changes})
    assert info.value.field == field
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"{field}: ")


def test_configs_are_frozen() -> None:
    with pytest.raises(AttributeError):
        ArchConfig().dim = 32  # type: ignore[misc]


def test_exported_files_with_an_arch_section_load(tmp_path: Path) -> None:
    path = tmp_path / "best.json"
    config = get_preset("milk-light", 2)
    path.write_text(json.dumps({"arch": config.to_dict(), "provenance": {"trial": 3}}))
    assert load_config(path) == config


def test_arch_show_json_reports_id_params_and_flops(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["arch", "show", "tiny", "--scale", "2", "--input", "16x24", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["arch_id"] == get_preset("tiny", 2).arch_id
    assert out["config"]["scale"] == 2
    assert isinstance(out["flops"], int) and out["flops"] > 0
    assert 0 < out["params"] < 50_000


def test_arch_show_of_a_file_matches_the_preset(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(get_preset("tiny").to_yaml())
    main(["arch", "show", "tiny", "--input", "16x16", "--json"])
    from_preset = json.loads(capsys.readouterr().out)
    main(["arch", "show", str(path), "--input", "16x16", "--json"])
    assert json.loads(capsys.readouterr().out) == from_preset


@pytest.mark.parametrize(
    ("content", "suffix", "fragment"),
    [
        ('{"gate": "foo", "block_type": "milk", "dict_size": 2}', ".json", "gate: must be one of"),
        ("kernel_size: 8\n", ".yaml", "kernel_size: must be odd"),
        ("dim: [1, 2\n", ".yaml", "is not valid YAML"),
        ("{not json", ".json", "is not valid JSON"),
        ("- a\n- b\n", ".yaml", "must be a mapping"),
        ("extra: 1\n", ".yml", "extra: is not a config field"),
        ("schema_version: 0\n", ".yaml", "schema_version: must be 1"),
        ("1: 2\nfoo: 3\n", ".yaml", "is not a config field"),
    ],
)
def test_arch_validate_rejects_bad_files_with_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        content: str, suffix: str, fragment: str) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    assert_usage_error(capsys, "arch", "validate", str(path), needles=(fragment,))


def test_arch_validate_missing_file_and_unknown_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["arch", "validate", "/nonexistent/c.yaml"]) == 2
    assert "must be an existing config file" in capsys.readouterr().err
    assert main(["arch", "show", "esc-huge"]) == 2
    assert "SPEC: must be a preset" in capsys.readouterr().err


def test_arch_validate_accepts_a_valid_file(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(get_preset("esc").to_yaml())
    assert main(["arch", "validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and get_preset("esc").arch_id in out


def test_window_attention_per_block() -> None:
    config = get_preset("esc-light").replace(window_attn=[True, False, True])
    assert config.window_attn == (True, False, True)
    assert from_yaml(config.to_yaml()) == config and from_json(config.to_json()) == config
    assert config.to_dict()["window_attn"] == [True, False, True]
    # All-equal flags are the single flag: one network, one arch_id.
    assert get_preset("esc-light").replace(window_attn=[True] * 3) == get_preset("esc-light")
    with pytest.raises(ConfigError, match="window_attn: must be true/false or a list of 3"):
        get_preset("esc-light").replace(window_attn=[True, False])
    from srnas.space import build_model

    model = build_model(config)
    assert [b.attn is not None for b in model.blocks] == [True, False, True]


def test_arch_show_formats(capsys: pytest.CaptureFixture[str]) -> None:
    """``--format json`` is the old ``--json``; csv and markdown flatten the config."""
    code, text, _ = run(capsys, "arch", "show", "tiny", "--scale", "2", "--input", "16x24",
                        "--format", "json")
    _, old, _ = run(capsys, "arch", "show", "tiny", "--scale", "2", "--input", "16x24",
                    "--json")
    assert code == 0 and json.loads(text) == json.loads(old)
    code, text, _ = run(capsys, "arch", "show", "tiny", "--scale", "2", "--input", "16x24",
                        "--format", "csv")
    import csv
    import io

    [fields] = list(csv.DictReader(io.StringIO(text)))
    assert code == 0 and fields["arch_id"] == json.loads(old)["arch_id"]
    assert fields["config.scale"] == "2"
    code, text, _ = run(capsys, "arch", "show", "tiny", "--format", "markdown")
    assert code == 0 and text.startswith("| arch_id") and len(text.splitlines()) == 3


def test_arch_show_refuses_a_bad_scale_in_the_one_shape(
        capsys: pytest.CaptureFixture[str]) -> None:
    err = assert_usage_error(capsys, "arch", "show", "tiny", "--scale", "5")
    assert err == "srnas arch: error: --scale: must be 2, 3 or 4 (got 5)"
