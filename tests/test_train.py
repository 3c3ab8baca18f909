"""``srnas train`` and ``evaluators.fit``: the recipe, the patches, the run folder, exact resume
after a stop or a SIGKILL, atomic checkpoints, the EMA, and bad input as one line, exit 2."""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

from srnas.evaluators.checkpoint import load_checkpoint, read_info
from srnas.evaluators.evaluate import DataSpec, load_data
from srnas.evaluators.fit import Ema, FitProgress, fit
from srnas.evaluators.patches import PatchDataset, batch_loader
from srnas.evaluators.recipe import BRIEF, Recipe, default_ema, lr_at_step, warmup_cosine
from srnas.evaluators.resize import make_lr
from srnas.evaluators.runs import Every, read_run
from srnas.evaluators.train import check_brief
from srnas.evaluators.weights import load_weights, read_metadata
from srnas.search.cli import main
from srnas.space import build_model, get_preset
from srnas.space.config import load_config
from srnas.space.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
TINY = get_preset("tiny", 2)
# 2 patches of 16x16 HR pixels at x2: a step takes a few milliseconds on 2 cores.
RECIPE = Recipe(steps=12, batch_size=2, patch_size=16, ema=0.9)
EVERY = Every(checkpoint=4, validate=4, log=2)
CLI = ["tiny", "--scale", "2", "--steps", "12", "--batch-size", "2", "--patch-size", "16",
       "--ema", "0.9", "--checkpoint-every", "4", "--log-every", "2"]


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def _same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def _log_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


class _Stop(Exception):
    """Stands for a kill at a step that is not a checkpoint."""


def _stop_at(step: int):
    def progress(p: FitProgress) -> None:
        if p.step == step:
            raise _Stop(step)
    return progress


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> object:
    # On 2 shared cores, 2 intra-op threads next to other busy processes are 10-40x slower than
    # one (measured: 12 tiny steps 5-15 s against 0.3 s); the figures do not change.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted 12-step run through the library."""
    out = tmp_path_factory.mktemp("ref") / "run"
    fit(TINY, RECIPE, out, every=EVERY)
    return out


# -- recipe ------------------------------------------------------------------------------------


def test_default_recipe_is_escs_scaled_to_the_steps() -> None:
    esc = Recipe()
    assert (esc.steps, esc.lr, esc.betas, esc.weight_decay) == (500_000, 5e-4, (0.9, 0.9), 0.0)
    assert (esc.warmup, esc.ema, esc.batch_size, esc.schedule) == (20_000, 0.999, 16,
                                                                    "multistep")
    assert esc.milestones == (250_000, 400_000, 450_000, 475_000, 490_000)
    assert esc.for_scale(4).patch_size == 256 and esc.for_scale(2).patch_size == 128
    short = Recipe(steps=2000)
    assert (short.warmup, short.milestones) == (80, (1000, 1600, 1800, 1900, 1960))
    assert short.ema == pytest.approx(0.995) and default_ema(19) == 0.0
    # Warm-up (BasicSR: (step + 1) / warmup), then halved at each milestone (1-based).
    assert lr_at_step(0, short) == pytest.approx(5e-4 / 80)
    assert lr_at_step(79, short) == lr_at_step(998, short) == 5e-4
    assert lr_at_step(999, short) == 2.5e-4 and lr_at_step(1999, short) == 5e-4 / 32
    cosine = Recipe(steps=100, warmup=0, schedule="cosine")
    assert lr_at_step(0, cosine) == 5e-4 and lr_at_step(99, cosine) < 1e-6


@pytest.mark.parametrize(("changes", "field"), [
    ({"steps": 0}, "steps"), ({"lr": -1.0}, "lr"), ({"lr": float("nan")}, "lr"),
    ({"warmup": 13}, "warmup"), ({"schedule": "step"}, "schedule"), ({"ema": 1.0}, "ema"),
    ({"batch_size": 0}, "batch_size"), ({"patch_size": 4}, "patch_size"),
    ({"milestones": (5, 3)}, "milestones"), ({"seed": -1}, "seed"), ({"gamma": 0.0}, "gamma"),
])
def test_recipe_is_validated_on_construction(changes: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        Recipe(**{"steps": 12, **changes})
    assert info.value.field == field


def test_brief_recipe_departs_from_escs_only_where_brief_documents_it() -> None:
    brief = Recipe.brief()
    assert (brief.steps, brief.lr, brief.betas, brief.weight_decay, brief.warmup,
            brief.schedule, brief.ema, brief.batch_size, brief.patch_size, brief.seed,
            brief.amp) == (300, 5e-4, (0.9, 0.9), 1e-4, 0, "cosine", 0.0, 8, 48, 0, False)
    esc = Recipe.long()
    assert esc == Recipe()
    differs = {f.name for f in dataclasses.fields(Recipe)
               if getattr(brief, f.name) != getattr(esc, f.name)}
    assert differs == set(BRIEF) | {"milestones"}  # milestones: ESC's fractions of 300 steps
    # Cosine from the first step, as the search's trainer has always decayed.
    short = Recipe.brief(steps=10, lr=1e-3)
    assert [lr_at_step(s, short) for s in range(10)] == [warmup_cosine(s, 1e-3, 0, 10)
                                                         for s in range(10)]
    assert Recipe.brief(lr=2e-3, batch_size=4).lr == 2e-3  # a trial's sampled dims win


@pytest.mark.parametrize(("recipe", "extra", "field"), [
    (Recipe(), {}, "ema"),  # ESC's 0.999
    (Recipe.brief(steps=12, ema=0.9), {}, "ema"),
    (Recipe.brief(steps=12, amp=True), {}, "amp"),
    (Recipe(steps=12, ema=0.0), {}, "patch_size"),
    (Recipe.brief(steps=12), {"seconds": 0.0}, "seconds"),
    (Recipe.brief(steps=12), {"val_every": -1}, "val_every"),
    (Recipe.brief(steps=12), {"val_at": (13,)}, "val_at"),
])
def test_the_brief_trainer_refuses_what_it_cannot_do(recipe: Recipe, extra: dict,
                                                     field: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_brief(recipe, **extra)
    assert info.value.field == field


def test_ema_averages_from_the_first_step_and_copies_buffers() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    ema = Ema(net, 0.75)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    net(torch.rand(2, 3, 8, 8)).square().mean().backward()
    optimizer.step()
    ema.update(net)
    now, averaged = net.state_dict(), ema.module.state_dict()
    assert averaged.keys() == now.keys()  # the checkpoint's ema group: the network's names
    for name, _ in net.named_parameters():
        assert torch.equal(averaged[name], torch.lerp(start[name], now[name], 0.25))
    for name, _ in net.named_buffers():  # running statistics and counters: the network's
        assert torch.equal(averaged[name], now[name]) and not torch.equal(now[name], start[name])


# -- patches -----------------------------------------------------------------------------------


def test_patches_lr_is_the_whole_images_lr_at_every_position() -> None:
    rng = np.random.default_rng(0)
    images = [("a", rng.integers(0, 256, (53, 71, 3), dtype=np.uint8)),
              ("b", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))]
    for scale in (2, 3, 4):
        ds = PatchDataset(images, scale, 4 * scale, seed=1)
        whole = [make_lr(hr, scale) for _, hr in images]
        for index in range(60):
            k, y, x, _ = ds.draw(index)
            lr, hr = ds.crop(k, y, x)
            assert np.array_equal(lr, whole[k][y:y + 4, x:x + 4]), (scale, index)
            assert hr.shape == (4 * scale, 4 * scale, 3)
        assert {ds.draw(i)[3] for i in range(200)} == set(range(8))


@pytest.mark.slow
def test_batches_depend_on_seed_and_step_only_not_on_workers() -> None:
    images = list(load_data(DataSpec(), 2)[0])
    ds = PatchDataset(images, 2, 16, seed=3)
    alone = [b for b in batch_loader(ds, 2, 0, 6)]
    forked = [b for b in batch_loader(ds, 2, 0, 6, workers=2)]
    resumed = [b for b in batch_loader(ds, 2, 4, 6)]
    for a, b in zip(alone, forked, strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert all(torch.equal(a[1], b[1]) for a, b in zip(alone[4:], resumed, strict=True))
    assert alone[0][0].dtype == torch.uint8 and alone[0][1].shape == (2, 3, 16, 16)
    other = next(iter(batch_loader(PatchDataset(images, 2, 16, seed=4), 2, 0, 1)))
    assert not torch.equal(other[1], alone[0][1])


# -- the run folder ----------------------------------------------------------------------------


def test_run_folder_holds_config_weights_log_and_summary(reference: Path) -> None:
    config = load_config(reference / "config.yaml")
    assert config.arch_id == TINY.arch_id
    for name in ("best.safetensors", "last.safetensors"):
        meta = load_weights(build_model(config), reference / name, config)
        assert meta["arch_id"] == TINY.arch_id and meta["weights"] == "ema 0.9"
    assert read_metadata(reference / "last.safetensors")["step"] == "12"
    rows = _log_rows(reference)
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8, 10, 12]
    assert [bool(r["psnr"]) for r in rows] == [False, True, False, True, False, True]
    summary = json.loads((reference / "train.json").read_text())
    assert summary["steps"] == 12 and summary["device"].startswith("cpu")
    assert summary["steps_per_s"] > 0 and summary["recipe"]["ema"] == 0.9
    assert summary["final"]["step"] == 12 and 5 < summary["final"]["psnr"] < 50
    best = summary["best"]
    assert best["psnr"] == pytest.approx(max(float(r["psnr"]) for r in rows if r["psnr"]),
                                         abs=1e-4)
    assert float(read_metadata(reference / "best.safetensors")["psnr"]) == pytest.approx(
        best["psnr"], abs=1e-4)
    # Written atomically, yet with the permissions a plain open() gives (not mkstemp's 0600).
    umask = os.umask(0)
    os.umask(umask)
    for name in ("best.safetensors", "last.safetensors", "checkpoint.safetensors",
                 "config.yaml", "train.json", "log.csv"):
        assert (reference / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_ema_is_the_hand_formula_for_two_steps(tmp_path: Path) -> None:
    recipe = Recipe(steps=2, batch_size=2, patch_size=16, ema=0.9, seed=5)
    fit(TINY, recipe, tmp_path / "run", every=Every(1, 1, 1))
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")
    # By hand: the same initial weights, batches and AdamW steps, then the average.
    torch.manual_seed(5)
    model = build_model(TINY)
    p0 = copy.deepcopy(model.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, betas=(0.9, 0.9), weight_decay=0.0)
    ds = PatchDataset(list(load_data(DataSpec(), 2)[0]), 2, 16, seed=5)
    states = []
    for step, (lr, hr) in enumerate(batch_loader(ds, 2, 0, 2)):
        for group in opt.param_groups:
            group["lr"] = lr_at_step(step, recipe)
        loss = F.l1_loss(model(lr.float() / 255), hr.float() / 255)
        opt.zero_grad()
        loss.backward()
        opt.step()
        states.append(copy.deepcopy(model.state_dict()))
    d = 0.9
    for name, raw in ckpt.groups["model"].items():
        assert torch.equal(raw, states[1][name]), name
        hand = d * (d * p0[name] + (1 - d) * states[0][name]) + (1 - d) * states[1][name]
        torch.testing.assert_close(ckpt.groups["ema"][name], hand, rtol=0, atol=1e-6)
    assert any(not torch.equal(ckpt.groups["ema"][n], r)
               for n, r in ckpt.groups["model"].items())


# -- resume ------------------------------------------------------------------------------------


def test_a_stopped_run_resumed_ends_bit_identical(tmp_path: Path, reference: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    with pytest.raises(_Stop):
        fit(TINY, RECIPE, out, every=EVERY, progress=_stop_at(10))  # last checkpoint: 8
    assert read_info(out / "checkpoint.safetensors")[0] == 8
    assert [int(r["step"]) for r in _log_rows(out)] == [2, 4, 6, 8, 10]
    assert not (out / "train.json").exists()
    assert main(["train", "--out", str(out), "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "resuming" in printed and "12 steps on cpu" in printed
    for name in ("checkpoint.safetensors", "last.safetensors", "best.safetensors"):
        a, b = _tensors(out / name), _tensors(reference / name)
        if name == "checkpoint.safetensors":  # generator states aside: tensors of the run
            a = {k: v for k, v in a.items() if not k.startswith("rng.")}
            b = {k: v for k, v in b.items() if not k.startswith("rng.")}
        _same_tensors(a, b)
    drop = [{k: v for k, v in r.items() if k != "seconds"} for r in _log_rows(out)]
    assert drop == [{k: v for k, v in r.items() if k != "seconds"} for r in _log_rows(reference)]
    summary = json.loads((out / "train.json").read_text())
    assert [(s["from_step"], s["to_step"]) for s in summary["sessions"]] == [(0, 8), (8, 12)]
    # Resuming a finished run does nothing.
    assert main(["train", "--out", str(out), "--resume"]) == 0
    assert "already trained all 12 steps" in capsys.readouterr().out


def _checkpoint_step(out: Path) -> int:
    try:
        return read_info(out / "checkpoint.safetensors")[0]
    except ConfigError:  # not written yet
        return -1


@pytest.mark.slow
def test_a_sigkilled_cli_run_resumed_ends_bit_identical(tmp_path: Path) -> None:
    ref, out = tmp_path / "ref", tmp_path / "run"
    argv = ["tiny", "--scale", "2", "--steps", "60", "--batch-size", "2", "--patch-size", "16",
            "--checkpoint-every", "5", "--val-every", "30"]
    assert main(["train", *argv, "--out", str(ref)]) == 0
    proc = subprocess.Popen([sys.executable, "-m", "srnas.search.cli", "train", *argv,
                             "--out", str(out)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 60
    while _checkpoint_step(out) < 10 and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 10 <= _checkpoint_step(out) < 60 and not (out / "train.json").exists()
    assert main(["train", "--out", str(out), "--resume"]) == 0
    _same_tensors(_tensors(out / "last.safetensors"), _tensors(ref / "last.safetensors"))
    a, b = load_checkpoint(out / "checkpoint.safetensors"), load_checkpoint(
        ref / "checkpoint.safetensors")
    _same_tensors(a.groups["model"], b.groups["model"])
    _same_tensors(a.groups["ema"], b.groups["ema"])


# -- atomic checkpoints ------------------------------------------------------------------------


def test_a_kill_while_writing_keeps_the_previous_checkpoint(
        tmp_path: Path, reference: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    real_replace = os.replace
    written: list[str] = []

    def dying_replace(src: str, dst: str) -> None:
        if str(dst).endswith("checkpoint.safetensors"):
            written.append(dst)
            if len(written) == 3:  # steps 0 and 4 are in place; step 8's write dies
                # The new file is complete but not yet renamed when the process dies, leaving
                # its temporary file behind as a SIGKILL would.
                shutil.copy(src, out / ".checkpoint.safetensors.killed.tmp")
                raise _Stop("killed while writing")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(_Stop):
        fit(TINY, RECIPE, out, every=EVERY)
    monkeypatch.undo()
    assert load_checkpoint(out / "checkpoint.safetensors").step == 4  # the previous one
    assert (out / ".checkpoint.safetensors.killed.tmp").exists()
    fit(TINY, RECIPE, out, every=EVERY, resume=True)
    assert not list(out.glob(".*.tmp"))
    _same_tensors(_tensors(out / "last.safetensors"), _tensors(reference / "last.safetensors"))


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_a_damaged_checkpoint_is_one_line_and_stays_untouched(
        tmp_path: Path, reference: Path, capsys: pytest.CaptureFixture[str],
        damage: str) -> None:
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    path = out / "checkpoint.safetensors"
    data = path.read_bytes()
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data = data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:]
    else:
        data = b"not a checkpoint at all"
    path.write_bytes(data)
    assert main(["train", "--out", str(out), "--resume"]) == 2
    line = _err(capsys)
    assert line.startswith("srnas train: error: checkpoint: ") and str(path) in line
    assert path.read_bytes() == data


# -- bad input ---------------------------------------------------------------------------------


def _val_without_x2(root: Path) -> Path:
    (root / "HR").mkdir(parents=True)
    (root / "LR_bicubic" / "X3").mkdir(parents=True)
    Image.fromarray(np.zeros((48, 48, 3), np.uint8)).save(root / "HR" / "a.png")
    return root


@pytest.mark.parametrize(("argv", "expected"), [
    (["--resume"], "--out: holds no checkpoint to resume"),
    (["tiny", "--amp"], "--amp: needs a CUDA device"),
    (["tiny", "--steps", "0"], "--steps: must be a positive integer"),
    (["tiny", "--scale", "2", "--patch-size", "15"], "--patch-size: must be a multiple of the "
                                                      "scale 2"),
    (["tiny", "--ema", "1.5"], "--ema: must be in [0, 1)"),
    (["tiny", "--workers", "-1"], "--workers: must be an integer >= 0"),
    (["tiny", "--checkpoint-every", "0"], "--checkpoint-every: must be a positive integer"),
    (["no-such-net"], "SPEC: must be a preset"),
    (["--trial", "3"], "SPEC: is required with --trial"),
    ([], "SPEC: is required"),
    (["tiny", "--scale", "2", "--val", "VAL"], "has no X2 folder for scale 2"),
    (["tiny", "--train", "MISSING"], "--train: must be an existing folder"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
        expected: str) -> None:
    out = tmp_path / "run"
    val = _val_without_x2(tmp_path / "val")
    argv = [str(val) if a == "VAL" else str(tmp_path / "nope") if a == "MISSING" else a
            for a in argv]
    assert main(["train", *argv, "--out", str(out), "--steps", "2"]
                if "--steps" not in argv else ["train", *argv, "--out", str(out)]) == 2
    line = _err(capsys)
    assert line.startswith("srnas train: error: ") and expected in line, line
    assert not out.exists() or not any(out.iterdir())


def test_out_that_holds_a_run_or_cannot_be_written_is_refused(
        tmp_path: Path, reference: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = {p.name: p.read_bytes() for p in reference.iterdir()}
    assert main(["train", *CLI, "--out", str(reference)]) == 2
    assert "--out: already holds a run" in _err(capsys)
    assert {p.name: p.read_bytes() for p in reference.iterdir()} == before
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["train", *CLI, "--out", str(blocker / "run")]) == 2
    assert "--out: cannot be written" in _err(capsys)


def test_resume_refuses_other_settings_networks_and_weights(
        tmp_path: Path, reference: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    ckpt = (out / "checkpoint.safetensors").read_bytes()
    assert main(["train", "--out", str(out), "--resume", "--lr", "1e-3"]) == 2
    assert "--lr: cannot change on resume: the run was started with 0.0005" in _err(capsys)
    assert main(["train", "esc-light", "--out", str(out), "--resume"]) == 2
    assert f"SPEC: builds arch_id {get_preset('esc-light').arch_id}, but" in _err(capsys)
    # A config beside the checkpoint that is not the network it trained.
    (out / "config.yaml").write_text(get_preset("tiny", 3).to_yaml())
    with pytest.raises(ConfigError, match=r"but config\.yaml beside it builds"):
        fit(TINY, RECIPE, out, every=EVERY, resume=True)
    # Weights that do not fit the network the checkpoint names.
    run = read_run(out)
    other = run.config.replace(dim=24, heads=2)
    with pytest.raises(ConfigError, match="builds arch_id"):
        fit(other, RECIPE, out, every=EVERY, resume=True)
    assert (out / "checkpoint.safetensors").read_bytes() == ckpt


def test_a_second_process_on_the_same_run_is_refused(tmp_path: Path,
                                                     reference: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # Another process holds the folder's lock as a live srnas train does (run_lock itself).
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from srnas.evaluators.runs import run_lock\n"
         f"with run_lock(Path({str(out)!r})):\n print('held', flush=True); sys.stdin.read()"],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(ConfigError, match="in use by another srnas train"):
            fit(TINY, RECIPE, out, every=EVERY, resume=True)
    finally:
        holder.communicate("")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    fit(TINY, RECIPE, out, every=EVERY, resume=True)  # the holder is gone: the folder is free


def test_a_study_trial_lends_its_sampled_training_settings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import optuna

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    trial = study.ask()
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    trial.suggest_int("batch_size", 2, 2)
    trial.suggest_int("patch_size", 16, 16)
    trial.set_user_attr("arch", TINY.to_dict())
    study.tell(trial, 1.0)
    lr = study.trials[0].params["lr"]
    out = tmp_path / "run"
    assert main(["train", "s", "--trial", "0", "--storage", url, "--steps", "2",
                 "--out", str(out)]) == 0
    recipe = json.loads((out / "train.json").read_text())["recipe"]
    assert (recipe["lr"], recipe["batch_size"], recipe["patch_size"]) == (lr, 2, 16)
    assert "training s#0" in capsys.readouterr().out
    out2 = tmp_path / "run2"
    assert main(["train", "s", "--trial", "0", "--storage", url, "--steps", "2",
                 "--lr", "1e-3", "--out", str(out2)]) == 0
    assert json.loads((out2 / "train.json").read_text())["recipe"]["lr"] == 1e-3


def test_a_non_finite_loss_stops_in_one_line_and_keeps_the_last_good_checkpoint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", *CLI, "--lr", "1e30", "--log-every", "1", "--out", str(out)]) == 2
    assert _err(capsys).startswith("srnas train: error: training: non-finite loss")
    ckpt = load_checkpoint(out / "checkpoint.safetensors")
    assert all(torch.isfinite(t).all() for t in ckpt.groups["model"].values())
    assert ckpt.step < 4  # no checkpoint of the diverged weights


def test_train_and_val_folders_of_any_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for folder, sizes in (("train", [(50, 70), (64, 64)]), ("val", [(48, 40)])):
        (tmp_path / folder).mkdir()
        for i, (h, w) in enumerate(sizes):
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
                tmp_path / folder / f"{i}.png")
    out = tmp_path / "run"
    assert main(["train", *CLI, "--steps", "2", "--train", str(tmp_path / "train"),
                 "--val", str(tmp_path / "val"), "--out", str(out)]) == 0
    data = json.loads((out / "train.json").read_text())["data"]
    assert data == {"train": str((tmp_path / "train").resolve()),
                    "val": str((tmp_path / "val").resolve()), "val_images": 1}
    assert read_run(out).data.train == data["train"]  # what --resume finds, from any cwd


def test_a_run_never_computes_while_a_search_times_latency_on_its_device(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A training run holds the device's shared lock as a search trial does: while another
    process (here a thread) holds the exclusive lock to time latency, no step runs, and the run
    records the wait apart from its training time."""
    import threading

    from srnas.evaluators.lock import LOCK_DIR_ENV, device_lock

    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "locks"))
    steps: list[int] = []
    seen_in_lock: list[int] = []
    started = threading.Event()

    def progress(p: FitProgress) -> None:
        steps.append(p.step)
        if p.step >= 4:
            started.set()

    def timing() -> None:
        started.wait(60)
        with device_lock("cpu"):
            before = steps[-1]
            time.sleep(0.6)
            seen_in_lock.extend([before, steps[-1]])

    thread = threading.Thread(target=timing)
    thread.start()
    result = fit(TINY, Recipe(steps=400, batch_size=2, patch_size=16), tmp_path / "run",
                  every=Every(checkpoint=400, validate=400, log=1), progress=progress)
    thread.join()
    before, after = seen_in_lock
    assert before == after  # not one step while the timing held the device
    assert result.summary["phase_seconds"]["lock_wait"] >= 0.5
    assert steps[-1] == 400
