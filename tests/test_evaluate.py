"""``evaluate`` and ``srnas evaluate``: figures, conditions, determinism, failures, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srnas.evaluators.evaluate import evaluate
from srnas.evaluators.recipe import Recipe, lr_at_step
from srnas.evaluators.train import train
from srnas.search.cli import main
from srnas.space import build_model, count_params, get_preset
from srnas.space.errors import TrainingError
from tests.cli import assert_usage_error, run

TINY_BUDGET = Recipe.brief(steps=4, batch_size=2, patch_size=32)


@pytest.fixture(scope="module")
def tiny_result() -> dict:
    return evaluate(get_preset("tiny", 2), TINY_BUDGET, input_hw=(16, 16)).to_dict()


def test_result_holds_every_figure_and_its_conditions(tiny_result: dict) -> None:
    r = tiny_result
    assert r["status"] == "ok" and r["steps"] == 4
    assert r["params"] == count_params(build_model(get_preset("tiny", 2)))
    assert r["flops"] > 0 and r["input_hw"] == [16, 16]
    assert r["latency_ms"] > 0 and r["latency_iqr_ms"] >= 0
    assert r["memory_bytes"] > r["params"] * 4  # weights are resident, plus activations
    assert r["device"].startswith("cpu: ") and r["dtype"] == "float32" and r["threads"] >= 1
    assert r["versions"]["torch"] == torch.__version__
    assert 10 < r["psnr"] < 50 and 0 < r["ssim"] <= 1
    assert set(r["phase_seconds"]) == {"data", "build", "complexity", "latency", "memory",
                                       "train", "validate", "lock_wait"}
    assert all(v >= 0 for v in r["phase_seconds"].values())
    json.dumps(r)  # what the search stores must serialise


def test_training_is_seeded_and_deterministic_on_cpu(tiny_result: dict) -> None:
    again = evaluate(get_preset("tiny", 2), TINY_BUDGET, input_hw=(16, 16)).to_dict()
    assert again["psnr"] == tiny_result["psnr"] and again["ssim"] == tiny_result["ssim"]
    other = evaluate(get_preset("tiny", 2), Recipe.brief(steps=4, batch_size=2, patch_size=32,
                                                         seed=1), input_hw=(16, 16)).to_dict()
    assert other["psnr"] != tiny_result["psnr"]
    assert again["memory_bytes"] == tiny_result["memory_bytes"]  # reproducible to the byte


def test_non_finite_loss_is_a_typed_failure_with_reason_and_step() -> None:
    model = build_model(get_preset("tiny", 2))
    batch = (torch.full((2, 3, 8, 8), float("nan")), torch.zeros(2, 3, 16, 16))
    with pytest.raises(TrainingError) as info:
        train(model, lambda: batch, Recipe.brief(steps=3), torch.device("cpu"))
    assert info.value.step == 0 and "non-finite loss" in info.value.reason


def test_budget_breach_stops_before_training() -> None:
    r = evaluate(get_preset("tiny", 2), TINY_BUDGET, input_hw=(16, 16),
                 budgets={"params": 10})
    assert r.status == "infeasible_untrained" and r.steps == 0 and r.psnr is None
    assert "params" in (r.infeasible_reason or "")


def test_warmup_and_cosine_schedule() -> None:
    b = Recipe.brief(steps=100, lr=1e-3, warmup=10)
    assert lr_at_step(0, b) == pytest.approx(1e-4)
    assert lr_at_step(10, b) == pytest.approx(1e-3)
    assert lr_at_step(55, b) == pytest.approx(5e-4)
    assert lr_at_step(100, b) == pytest.approx(0.0, abs=1e-12)


def test_progress_callback_reports_mid_training_validation() -> None:
    seen: list[tuple[int, float | None]] = []
    evaluate(get_preset("tiny", 2), Recipe.brief(steps=4, batch_size=2, patch_size=32),
             val_every=2, input_hw=(16, 16),
             progress=lambda step, loss, psnr: seen.append((step, psnr)))
    assert [s for s, _ in seen] == [1, 2, 3, 4]
    assert seen[1][1] is not None and seen[0][1] is None  # validated at step 2 only


def test_cli_json_has_the_documented_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "tiny", "--scale", "2", "--steps", "2", "--batch", "2", "--patch",
                 "32", "--input", "16x16", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("psnr", "ssim", "latency_ms", "memory_mb", "params", "flops", "device",
                "steps"):
        assert key in out
    # The current spellings (the old ones above are hidden aliases) train the same network.
    code, text, _ = run(capsys, "evaluate", "tiny", "--scale", "2", "--steps", "2",
                        "--batch-size", "2", "--patch-size", "32", "--input", "16x16",
                        "--format", "json", "--device", "cpu")
    again = json.loads(text)
    assert code == 0 and again["psnr"] == out["psnr"] and again["arch_id"] == out["arch_id"]


def test_cli_bicubic_reproduces_the_paper_table(benchmark_root: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    for scale, expected in ((2, 33.66), (3, 30.39), (4, 28.42)):
        assert main(["evaluate", "--bicubic", "--val", str(benchmark_root / "Set5"),
                     "--scale", str(scale), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["psnr"] == pytest.approx(expected, abs=0.02)
    code, text, _ = run(capsys, "evaluate", "--bicubic", "--val", str(benchmark_root / "Set5"),
                        "--scale", "4", "--format", "csv")
    header, row = text.splitlines()
    assert code == 0 and header.split(",")[:3] == ["method", "scale", "val"]
    assert float(dict(zip(header.split(","), row.split(","), strict=True))["psnr"]) == \
        pytest.approx(28.42, abs=0.02)


def _folder_with(tmp_path: Path, name: str, size: int) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
        folder / "a.png")
    return folder


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["tiny", "--steps", "0"], "--steps: must be a positive integer (got 0)"),
        (["tiny", "--steps", "-3"], "--steps: must be a positive integer (got -3)"),
        (["tiny", "--steps", "x"], "--steps: must be a positive integer (got 'x')"),
        (["tiny", "--batch", "0"], "--batch: must be a positive integer (got 0)"),
        (["tiny", "--device", "tpu"], "--device: must be 'auto', 'cpu', 'cuda' or 'cuda:N' "
                                      "(got 'tpu')"),
        (["tiny", "--train", "/nonexistent/x"], "--train: must be an existing folder"),
        (["tiny", "--val", "/nonexistent/y"], "--val: must be an existing folder"),
        (["--bicubic", "--scale", "4"], "--val: is required with --bicubic"),
        (["tiny", "--patch", "30", "--scale", "4"], "--patch: must be a multiple of the scale"),
        (["tiny", "--patch-size", "30", "--scale", "4"],
         "--patch-size: must be a multiple of the scale"),
        (["huge-net"], "SPEC: must be a preset"),
        ([], "SPEC: is required unless --bicubic is given"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str],
                                          fragment: str) -> None:
    err = assert_usage_error(capsys, "evaluate", *argv, needles=(fragment,))
    assert err.startswith("srnas evaluate: error: ") and "(got None)" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cli_cuda_where_there_is_none(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "tiny", "--device", "cuda"]) == 2
    assert "no CUDA device is available" in capsys.readouterr().err


def test_cli_empty_folder_and_wrong_scale(tmp_path: Path, benchmark_root: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["evaluate", "tiny", "--train", str(empty)]) == 2
    assert "holds no images" in capsys.readouterr().err
    # Set5 ships LR files for x2/x3/x4 only; a benchmark folder without X4 is refused.
    partial = tmp_path / "bench"
    (partial / "HR").mkdir(parents=True)
    (partial / "LR_bicubic" / "X2").mkdir(parents=True)
    for name in ("baby",):
        (partial / "HR" / f"{name}.png").write_bytes(
            (benchmark_root / "Set5" / "HR" / f"{name}.png").read_bytes())
    assert main(["evaluate", "--bicubic", "--val", str(partial), "--scale", "4"]) == 2
    err = capsys.readouterr().err
    assert "no X4 folder" in err and "[2]" in err
    tiny_val = _folder_with(tmp_path, "tinyval", 16)
    assert main(["evaluate", "--bicubic", "--val", str(tiny_val), "--scale", "4"]) == 2
    assert "validation images need at least 19x19 pixels" in capsys.readouterr().err
    small = _folder_with(tmp_path, "small", 16)
    assert main(["evaluate", "tiny", "--train", str(small), "--patch", "48"]) == 2
    assert "no image is at least 48x48" in capsys.readouterr().err


def test_a_seconds_budget_stops_training_early_and_records_the_steps_done() -> None:
    r = evaluate(get_preset("tiny", 2), Recipe.brief(steps=100_000, batch_size=2,
                                                     patch_size=32), seconds=0.5,
                 input_hw=(16, 16))
    assert r.status == "ok" and 1 <= r.steps < 100_000
    # The phase is the training call's wall time net of lock waits (nothing else holds the
    # lock here: only each step's uncontended acquisition, microseconds).
    assert r.train_seconds > 0
    assert r.phase_seconds["train"] == pytest.approx(r.train_seconds, abs=0.05)


class _StepClock:
    """A ``time`` stand-in that advances one second per training batch drawn."""

    def __init__(self) -> None:
        self.now = 100.0

    def perf_counter(self) -> float:
        return self.now


def test_the_seconds_budget_stops_after_the_step_that_spends_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import srnas.evaluators.train as train_mod

    clock = _StepClock()
    monkeypatch.setattr(train_mod, "time", clock)
    batch = (torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16))
    drawn = []

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        clock.now += 1.0
        drawn.append(clock.now)
        return batch

    model = build_model(get_preset("tiny", 2))
    out = train(model, next_batch, Recipe.brief(steps=50), torch.device("cpu"), seconds=2.5)
    # After steps 1 and 2, 1 and 2 s are spent; step 3 spends the budget and is the last.
    assert out.steps == 3 and len(drawn) == 3 and len(out.losses) == 3
    assert out.seconds == 3.0
    # Without a seconds budget the clock never stops training.
    clock.now, drawn[:] = 100.0, []
    assert train(model, next_batch, Recipe.brief(steps=5), torch.device("cpu")).steps == 5
    assert len(drawn) == 5


def test_time_waiting_for_another_trials_timing_is_lock_wait_not_work(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another holder of the device's exclusive lock (a trial timing its latency) makes this
    evaluation wait: the wait is reported under ``lock_wait``, and no phase counts it as work."""
    import threading
    import time

    from srnas.evaluators.lock import LOCK_DIR_ENV, device_lock

    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path))
    held, release = threading.Event(), threading.Event()

    def other_trial() -> None:
        with device_lock("cpu"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=other_trial)
    thread.start()
    held.wait(10)
    # Held for 2.5 s: far longer than the evaluation's own complexity work even on a loaded
    # CI machine, so counting the wait as work could not pass unnoticed.
    threading.Timer(2.5, release.set).start()
    started = time.perf_counter()
    r = evaluate(get_preset("tiny", 2), TINY_BUDGET, input_hw=(16, 16))
    wall = time.perf_counter() - started
    thread.join()
    phases = r.phase_seconds
    assert r.status == "ok"
    assert 2.0 < phases["lock_wait"] < wall
    assert phases["complexity"] < 1.5  # its shared lock waited; its own work is a few ms
    assert sum(phases.values()) == pytest.approx(wall, abs=0.25)
