"""``srnas benchmark``: the paper's table scores exactly as ``evaluate`` does, measures on the
deployed network, names its conditions, and refuses what would be a meaningless row."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srnas.evaluators import evaluate as evaluate_module
from srnas.evaluators.benchmark import benchmark
from srnas.evaluators.benchmark_render import render
from srnas.evaluators.bicubic import bicubic_baseline
from srnas.evaluators.data import benchmark_set
from srnas.evaluators.evaluate import DataSpec, evaluate
from srnas.evaluators.recipe import Recipe
from srnas.evaluators.resize import make_lr
from srnas.evaluators.trained import Trained, from_run
from srnas.evaluators.weights import save_weights
from srnas.search.cli import main
from srnas.search.models import resolve_models
from srnas.space import build_model, get_preset
from srnas.space.config import ArchConfig
from srnas.space.errors import ConfigError

SMALL_INPUT = "16x24"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def make_run(folder: Path, config: ArchConfig, model: torch.nn.Module | None = None, *,
             steps: int | None = 3, file: str = "best.safetensors") -> Path:
    """A training run folder as ``srnas train`` leaves it (config.yaml, weights, train.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(config.to_yaml())
    if model is None:
        torch.manual_seed(1)
        model = build_model(config)
    meta = {"steps": str(steps), "step": str(steps)} if steps is not None else {}
    save_weights(model, folder / file, config, meta)
    if steps is not None:
        (folder / "train.json").write_text(json.dumps({"steps": steps}))
    return folder


@pytest.fixture(scope="module")
def small_val(tmp_path_factory) -> Path:
    """A benchmark folder in the EDSR layout with x4 LR only: two random 48x56 images."""
    root = tmp_path_factory.mktemp("val")
    rng = np.random.default_rng(0)
    for sub in ("HR", "LR_bicubic/X4"):
        (root / sub).mkdir(parents=True)
    for name in ("a", "b"):
        hr = rng.integers(0, 256, (48, 56, 3), dtype=np.uint8)
        Image.fromarray(hr).save(root / "HR" / f"{name}.png")
        Image.fromarray(make_lr(hr, 4)).save(root / "LR_bicubic" / "X4" / f"{name}x4.png")
    return root


@pytest.mark.slow
def test_psnr_is_evaluates_for_the_same_weights(capsys, benchmark_root, tmp_path,
                                                monkeypatch) -> None:
    """Train briefly with ``evaluate`` on Set5, keep the weights it scored, benchmark them: the
    same PSNR and SSIM to the last bit, and the bicubic row is the bicubic baseline."""
    set5 = benchmark_root / "Set5"
    config = get_preset("tiny")
    kept: dict[str, Path] = {}
    validate = evaluate_module.validate

    def keep_then_validate(model, pairs, scale, device):
        kept["weights"] = save_weights(model, tmp_path / "scored.safetensors", config,
                                       {"steps": "3"})
        return validate(model, pairs, scale, device)

    monkeypatch.setattr(evaluate_module, "validate", keep_then_validate)
    result = evaluate(config, Recipe.brief(steps=3, batch_size=2, patch_size=32),
                      DataSpec(val=str(set5)), input_hw=(16, 16))
    monkeypatch.undo()
    code, out, err = run(capsys, "benchmark", str(kept["weights"]), "--val", str(set5),
                         "--input", SMALL_INPUT, "--no-latency", "--format", "json")
    assert code == 0, err
    table = json.loads(out)
    bicubic, row = table["rows"]
    assert row["scores"]["Set5"] == {"psnr": result.psnr, "ssim": result.ssim}
    expected = bicubic_baseline(benchmark_set(set5, 4), 4)
    assert bicubic["model"] == "bicubic"
    assert bicubic["scores"]["Set5"] == {"psnr": expected["psnr"], "ssim": expected["ssim"]}
    assert round(expected["psnr"], 2) == 28.43  # the README's figure
    assert row["trained"] == "3 steps" and row["params"] == result.params
    assert table["input_hw"] == [16, 24] and table["output_hw"] == [64, 96]


@pytest.mark.slow
def test_table_of_several_models_names_its_conditions(capsys, small_val, tmp_path) -> None:
    config = get_preset("tiny")
    # A run still going: last weights only, no train.json; the header has the planned budget.
    partial = tmp_path / "run-b"
    partial.mkdir()
    (partial / "config.yaml").write_text(config.to_yaml())
    save_weights(build_model(config), partial / "last.safetensors", config,
                 {"steps": "5000", "step": "800"})
    code, out, err = run(capsys, "benchmark", str(partial), "tiny", "--untrained", "--val",
                         str(small_val), "--input", SMALL_INPUT)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"x4 on {small_val.name} (2 images): PSNR (dB) / SSIM")
    assert "input 16x24 -> output 64x96" in lines[1] and lines[1].startswith("device cpu: ")
    assert lines[2].startswith("latency: median (IQR)") and "threads" in lines[2]
    assert f"run-b: 5,000 steps (weights of step 800) from {partial / 'last.safetensors'}" in out
    assert "tiny: untrained (random weights, --untrained)" in out
    start = next(i for i, line in enumerate(lines) if line.startswith("model "))
    cells = [re.split(r"\s{2,}", line.strip()) for line in lines[start:]]
    assert cells[0] == ["model", "trained", "params", "FLOPs (G)", "latency ms", "memory MB",
                        small_val.name]
    assert [c[0] for c in cells[2:]] == ["bicubic", "run-b", "tiny"]
    assert cells[2][1:6] == ["-"] * 5
    for row in cells[3:]:
        assert re.fullmatch(r"\d+\.\d \(\d+\.\d\)", row[4]), row  # median (IQR) in ms
        assert re.fullmatch(r"\d+\.\d\d / \d\.\d{4}", row[6]), row
    assert cells[3][1] == "5,000 steps (weights of step 800)" and cells[4][1] == "untrained"


def test_formats_render_the_same_table(small_val, tmp_path) -> None:
    model = from_run(make_run(tmp_path / "run", get_preset("tiny"), steps=1200))
    assert model.weights == tmp_path / "run" / "best.safetensors"
    table = benchmark([model, Trained("random", get_preset("tiny"))], [small_val],
                      input_hw=(16, 24), latency=False)
    rows = table.rows
    assert [r.model for r in rows] == ["bicubic", "run", "random"]
    assert rows[1].latency_ms is None and rows[1].memory_mb > 0 and rows[1].flops > 0
    assert rows[1].trained == "1,200 steps" and rows[2].trained == "untrained"
    csv_lines = render(table, "csv").splitlines()
    name = small_val.name
    assert csv_lines[0].endswith(f"psnr_{name},ssim_{name}") and len(csv_lines) == 4
    assert csv_lines[1].startswith("bicubic,-,,")
    markdown = render(table, "markdown")
    assert "| model | trained |" in markdown and "|:---|---:|" in markdown
    assert "latency: not measured (--no-latency)" in markdown
    data = json.loads(render(table, "json"))
    assert data["rows"][1]["scores"][name]["psnr"] == rows[1].scores[name][0]
    assert data["latency"] is False and data["folders"][0]["images"] == 2
    with pytest.raises(ConfigError, match="format: must be one of"):
        render(table, "xml")


def test_untrained_model_is_refused_unless_asked(capsys, small_val) -> None:
    code, out, err = run(capsys, "benchmark", "tiny", "--val", str(small_val))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("srnas benchmark: error: --weights: model tiny has none")
    assert "--untrained allows it" in err


def test_mismatched_weights_name_the_first_tensor(capsys, small_val, tmp_path) -> None:
    tiny = get_preset("tiny")
    bare = save_weights(build_model(tiny), tmp_path / "bare.safetensors")  # no config recorded
    other = tmp_path / "k9.yaml"
    other.write_text(tiny.replace(kernel_size=9).to_yaml())
    code, _, err = run(capsys, "benchmark", str(other), "--weights", str(bare), "--val",
                       str(small_val), "--no-latency")
    assert code == 2 and err.count("\n") == 1, err
    assert ("--weights: tensor 'shared_kernel' has shape (4, 4, 7, 7), the config needs "
            "(4, 4, 9, 9)") in err
    recorded = save_weights(build_model(tiny), tmp_path / "tiny.safetensors", tiny)
    code, _, err = run(capsys, "benchmark", str(other), "--weights", str(recorded), "--val",
                       str(small_val), "--no-latency")
    assert code == 2 and f"were trained for arch_id {tiny.arch_id}" in err


def test_val_without_lr_for_the_scale_is_one_line(capsys, small_val) -> None:
    code, out, err = run(capsys, "benchmark", "tiny", "--untrained", "--scale", "3", "--val",
                         str(small_val), "--no-latency")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "LR_bicubic: has no X3 folder for scale 3; scales present: [4]" in err


@pytest.mark.parametrize(("argv", "needle"), [
    (["tiny", "--untrained"], "--val: is required"),
    (["tiny", "--untrained", "--val", "nowhere"], "--val: must be an existing folder"),
    (["nope", "--val", "."], "MODEL: must be a preset"),
    (["tiny", "--untrained", "--val", ".", "--format", "xml"], "--format: must be one of"),
    (["tiny", "--untrained", "--val", ".", "--input", "16"], "--input: must be HxW"),
    (["tiny", "--weights", "a.safetensors", "--weights", "b.safetensors", "--val", "."],
     "--weights: must be an existing .safetensors file"),
])
def test_bad_input_is_one_line(capsys, argv, needle) -> None:
    code, out, err = run(capsys, "benchmark", *argv)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert needle in err, err


def test_models_share_one_scale(tmp_path) -> None:
    x2 = get_preset("tiny", 2)
    run_x2 = make_run(tmp_path / "x2", x2)
    models = resolve_models([str(run_x2), "esc-light"], untrained=True)
    assert [m.config.scale for m in models] == [2, 2]  # the untrained preset follows the run
    assert models[1].budget == "untrained" and models[0].budget == "3 steps"
    with pytest.raises(ConfigError, match=r"^scale: model x2 was trained at x2 \(got 4\)"):
        resolve_models([str(run_x2)], scale=4)
    weights = save_weights(build_model(x2), tmp_path / "w.safetensors", x2)
    with pytest.raises(ConfigError, match="were trained at x2, the model tiny is x4"):
        resolve_models(["tiny"], [str(weights)])
    assert resolve_models(["tiny"], [str(weights)], scale=2)[0].weights == weights
    with pytest.raises(ConfigError, match=r"^weights: one more than the models"):
        resolve_models([str(run_x2)], [str(weights)])
    with pytest.raises(ConfigError, match="is a folder but not a training run"):
        resolve_models([str(tmp_path)], untrained=True)


def test_the_caption_and_rows_say_which_runtime_measured(small_val) -> None:
    from srnas.evaluators.benchmark import BenchRow, BenchTable, ValFolder

    folder = ValFolder("Set5", str(small_val), 2)
    table = BenchTable(scale=4, device="cpu: test", threads=1, dtype="float32",
                       input_hw=(16, 24), latency=True,
                       memory_method="proxy:torch-cpu-live-tensors", folders=[folder],
                       runtime="onnxruntime", precision="fp32",
                       runtime_settings={"intra_op_num_threads": 1})
    table.rows = [BenchRow("bicubic", "-", {"Set5": (28.0, 0.8)}),
                  BenchRow("tiny", "3 steps", {"Set5": (29.0, 0.85)}, latency_ms=1.5,
                           latency_iqr_ms=0.1, memory_mb=2.0, runtime_check_max_abs_diff=3e-6)]
    lines = render(table, "table").splitlines()
    assert lines[2] == ("latency: median (IQR) of batch-1 inference, 1 threads; latency and "
                        "memory: onnxruntime fp32 (intra_op_num_threads 1), exported as srnas "
                        "export --onnx exports it; output within 3.0e-06 of PyTorch")
    assert "proxy:torch-cpu-live-tensors" in lines[1]
    rows = list(__import__("csv").DictReader(render(table, "csv").splitlines()))
    assert (rows[0]["runtime"], rows[1]["runtime"], rows[1]["precision"]) == (
        "", "onnxruntime", "fp32")
    assert float(rows[1]["runtime_check_max_abs_diff"]) == 3e-6
    eager = BenchTable(scale=4, device="cpu: test", threads=1, dtype="float32",
                       input_hw=(16, 24), latency=False, memory_method="cpu-live-tensors",
                       folders=[folder])
    eager.rows = table.rows[:1]
    assert render(eager, "table").splitlines()[2] == (
        "latency: not measured (--no-latency); latency and memory: torch fp32 (eager)")


@pytest.mark.slow
def test_benchmark_under_onnxruntime_reports_its_conditions(capsys, small_val) -> None:
    argv = ("benchmark", "tiny", "--untrained", "--val", str(small_val), "--input", SMALL_INPUT,
            "--device", "cpu")
    code, out, err = run(capsys, *argv, "--runtime", "onnxruntime", "--format", "json")
    assert code == 0, err
    table = json.loads(out)
    assert table["runtime"] == "onnxruntime" and table["precision"] == "fp32"
    assert table["runtime_settings"]["intra_op_num_threads"] == table["threads"]
    assert table["memory_method"].startswith("proxy:")
    row = table["rows"][1]
    assert row["runtime_check_max_abs_diff"] <= 1e-4 and row["latency_ms"] > 0
    code, out, err = run(capsys, *argv, "--runtime", "onnxruntime")
    assert code == 0, err
    caption = out.splitlines()[2]
    assert "latency and memory: onnxruntime fp32 (" in caption
    assert f"intra_op_num_threads {table['threads']}" in caption
    code, out, err = run(capsys, *argv, "--runtime", "onnxruntime", "--precision", "fp16")
    assert code == 2 and out == "" and err == ("srnas benchmark: error: --precision: "
                                               "onnxruntime on cpu supports fp32 only (got "
                                               "'fp16')\n")


def test_with_trial_a_bare_name_is_the_study_not_a_folder_of_that_name(tmp_path, monkeypatch
                                                                        ) -> None:
    from tests.fabricate import make_known_study

    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    make_known_study(storage, "known")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "known").mkdir()  # a folder in the current directory with the study's name
    [model] = resolve_models(["known"], trial=1, storage=storage, untrained=True)
    assert model.label == "known#1" and model.config.dim == 24  # trial 1's architecture
    with pytest.raises(ConfigError, match="is a folder but not a training run"):
        resolve_models(["./known"], trial=1, storage=storage, untrained=True)


def test_a_damaged_weights_file_given_as_the_model_is_named_as_the_model(tmp_path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"junk")
    with pytest.raises(ConfigError, match=r"^models: is not a readable safetensors file"):
        resolve_models([str(bad)])
    with pytest.raises(ConfigError, match=r"^weights: is not a readable safetensors file"):
        resolve_models(["tiny"], [str(bad)])
