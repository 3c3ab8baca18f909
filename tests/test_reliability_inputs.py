"""Hostile files and sizes given to benchmark and export (issue 23, item 10): a weights header
whose ``arch`` is not JSON, or is JSON nested absurdly deep, or is JSON of the wrong shape, is
one line naming the file; an input size no machine can allocate is refused before anything is
built, with the bound stated."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import save_file

from srnas.evaluators.weights import save_weights, weights_config
from srnas.search.commands.benchmark import MAX_INPUT_PIXELS
from srnas.space import build_model, get_preset
from srnas.space.errors import ConfigError
from tests.cli import assert_usage_error

BAD_ARCH = {
    "not json": "{dim: 8,",
    "deep list": "[" * 100_000 + "]" * 100_000,
    "deep object": '{"a":' * 50_000 + "1" + "}" * 50_000,
    "a list": "[1, 2]",
    "a string": '"esc"',
    "a number": "1e999",
    "unknown field": '{"dim": 8, "colour": "red"}',
}


def _weights(tmp_path: Path, arch: str) -> Path:
    model = build_model(get_preset("tiny", 2))
    path = save_weights(model, tmp_path / "w.safetensors", get_preset("tiny", 2))
    from safetensors.torch import load_file

    save_file(load_file(str(path)), str(path), metadata={"arch": arch, "arch_id": "x"})
    return path


@pytest.fixture
def val(tmp_path: Path) -> Path:
    folder = tmp_path / "val"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("name", list(BAD_ARCH))
def test_weights_config_of_a_bad_arch_header_is_one_config_error(tmp_path: Path,
                                                                 name: str) -> None:
    path = _weights(tmp_path, BAD_ARCH[name])
    with pytest.raises(ConfigError) as info:
        weights_config(path)
    message = str(info.value)
    assert message.startswith("weights: ") and "\n" not in message and len(message) < 400
    assert str(path) in message


@pytest.mark.parametrize("name", ["not json", "deep list", "a list"])
def test_benchmark_and_export_of_a_bad_arch_header_are_one_line(
        tmp_path: Path, val: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = _weights(tmp_path, BAD_ARCH[name])
    assert_usage_error(capsys, "benchmark", str(path), "--val", str(val),
                       needles=(str(path), "arch"))
    out = tmp_path / "m.onnx"
    assert_usage_error(capsys, "export", str(path), "--onnx", str(out),
                       needles=(str(path), "arch"))
    assert not out.exists()


def test_a_good_header_still_reads(tmp_path: Path) -> None:
    model = build_model(get_preset("tiny", 2))
    path = save_weights(model, tmp_path / "w.safetensors", get_preset("tiny", 2))
    assert weights_config(path) == get_preset("tiny", 2)


@pytest.mark.parametrize("size", ["100000x100000", "4000x4000", "1x9000000"])
def test_benchmark_refuses_an_input_too_large_to_allocate(
        size: str, val: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = assert_usage_error(capsys, "benchmark", "tiny", "--untrained", "--val", str(val),
                              "--input", size, needles=("--input", f"{MAX_INPUT_PIXELS:,}"))
    assert size in line


def test_the_input_bound_admits_a_4k_frame(val: Path) -> None:
    from srnas.search.commands.benchmark import check_input_size

    assert check_input_size("2160x3840") == (2160, 3840)
    assert MAX_INPUT_PIXELS == 2160 * 3840
    with pytest.raises(ConfigError):
        check_input_size("2161x3840")


@pytest.mark.parametrize("text", ["[" * 100_000, "a:\n" + "  - " * 1 + "[" * 50_000])
def test_a_run_folder_whose_config_is_nested_absurdly_deep_is_one_line(
        tmp_path: Path, val: Path, text: str, capsys: pytest.CaptureFixture[str]) -> None:
    run_folder = tmp_path / "run"
    run_folder.mkdir()
    (run_folder / "config.yaml").write_text(text)
    save_weights(build_model(get_preset("tiny", 2)), run_folder / "best.safetensors",
                 get_preset("tiny", 2))
    assert_usage_error(capsys, "benchmark", str(run_folder), "--val", str(val),
                       needles=("config.yaml",))
