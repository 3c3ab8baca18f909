"""Long training of one network (``srnas train``): ESC's recipe, checkpoints that resume
exactly, the best and last weights beside the config they belong to (the run folder is
described in :mod:`evaluators.runs`).

On CPU a run killed at any point and resumed (``resume=True``) ends with the same weights, bit
for bit, as one that was never interrupted: the patches are a function of (seed, sample
number), the learning rate a function of the step, and the checkpoint holds the rest.
"""

from __future__ import annotations

import copy
import csv
import math
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from srnas.evaluators.checkpoint import (
    load_checkpoint,
    load_group,
    restore_rng,
    save_checkpoint,
)
from srnas.evaluators.device import device_name, resolve_device
from srnas.evaluators.evaluate import DataSpec, load_data
from srnas.evaluators.lock import SharedHold, waited_seconds
from srnas.evaluators.patches import PatchDataset, batch_loader
from srnas.evaluators.recipe import Recipe, lr_at_step
from srnas.evaluators.runs import (
    BEST_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    LAST_FILE,
    LOG_FILE,
    SUMMARY_FILE,
    Every,
    RunInfo,
    RunWriteError,
    check_new_run,
    check_out,
    read_run,
    run_lock,
    truncate_log,
    write_text,
    written_step,
)
from srnas.evaluators.store_patches import patch_dataset
from srnas.evaluators.train import validate
from srnas.evaluators.weights import save_weights
from srnas.space.atomic import remove_stale_temps
from srnas.space.config import ArchConfig, load_config
from srnas.space.errors import ConfigError, DataError, TrainingError
from srnas.space.network import build_model, count_params


@dataclass(frozen=True)
class FitProgress:
    """What a progress callback sees at every logged step."""

    step: int
    steps: int
    loss: float  # mean L1 loss since the previous logged step
    lr: float
    psnr: float | None  # validation figures, on the steps that validated
    ssim: float | None
    best_psnr: float | None
    seconds: float  # training wall time so far, earlier sessions included


@dataclass(frozen=True)
class FitStart:
    """What a run starts with, once every input is checked: its first step (0, or the
    checkpoint's), the recipe and frequencies as resolved, and the data's size."""

    step: int
    recipe: Recipe
    every: Every
    train_images: int
    val_images: int
    params: int
    # On a resume: how this session differs from the one that wrote the checkpoint in what
    # makes the arithmetic differ (device; CPU threads), e.g. "4 CPU threads, now 1"; None
    # when nothing does (or the checkpoint did not record it).
    changed: str | None = None


@dataclass(frozen=True)
class FitResult:
    out_dir: Path
    summary: dict[str, Any]  # what train.json holds


Progress = Callable[[FitProgress], None]


# -- exponential moving average --------------------------------------------------------------


class Ema:
    """BasicSR's model EMA on torch's :class:`~torch.optim.swa_utils.AveragedModel`: a copy of
    the network at initialisation, then after every step ``ema = decay * ema + (1 - decay) *
    param`` (one fused lerp, :func:`~torch.optim.swa_utils.get_ema_multi_avg_fn`), buffers
    copied as they are (``use_buffers=False``). ``module`` is the averaged network, whose
    state dict is the checkpoint's ``ema`` group (AveragedModel's own ``n_averaged`` counter
    stays out of it: it only says whether the next update copies, answered here)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self._averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay),
                                       use_buffers=False)
        # AveragedModel's first update copies the network instead of averaging: spent here, on
        # the initial weights the copy already holds, so every training step averages (BasicSR:
        # EMA_0 is the initial network), a resumed run's first step included.
        self._averaged.update_parameters(model)
        self.module = self._averaged.module.eval().requires_grad_(False)

    def update(self, model: nn.Module) -> None:
        self._averaged.update_parameters(model)


# -- training --------------------------------------------------------------------------------


def _fail_if(condition: bool, field: str, rule: str, value: object) -> None:
    if condition:
        raise ConfigError(field, rule, value)


def fit(config: ArchConfig, recipe: Recipe, out_dir: str | Path, *,
        data: DataSpec | None = None, device: str | torch.device = "cpu", workers: int = 0,
        every: Every | None = None, resume: bool = False, label: str | None = None,
        progress: Progress | None = None, on_start: Callable[[FitStart], None] | None = None
        ) -> FitResult:
    """Train ``config`` with ``recipe`` into the run folder ``out_dir`` and return its summary.

    A new run refuses a folder that already holds one; ``resume=True`` continues the run in
    ``out_dir`` from its checkpoint, and ``config``, ``recipe`` and ``data`` must be the ones
    it was started with (:func:`read_run` reads them; ``every`` left ``None`` is the run's).
    Every check (device, data, checkpoint) happens before anything is written, and before
    ``on_start`` is called. ``workers`` (loader processes) and ``every`` change when things
    happen, never the weights.
    """
    dev = resolve_device(device)
    _fail_if(recipe.amp and dev.type != "cuda", "amp", "needs a CUDA device (bf16 autocast); "
             f"this run is on {dev.type}", True)
    _fail_if(isinstance(workers, bool) or not isinstance(workers, int) or workers < 0,
             "workers", "must be an integer >= 0", workers)
    recipe = recipe.for_scale(config.scale)
    # Absolute, as recorded: a run resumed from another working directory finds its data.
    given = data or DataSpec()
    data = DataSpec(tuple(str(Path(p).resolve()) for p in given.train_folders),
                    str(Path(given.val).resolve()) if given.val else None,
                    given.manifest, given.cache)
    out = check_out(out_dir)
    # Checked once before the data load (which may take minutes) so that a mistake fails at
    # once, and again under the run lock: another srnas train may have claimed the folder, or
    # checkpointed further, in the meantime.
    if resume:
        every = every or _resumable(out, config, recipe, data).every
    else:
        check_new_run(out)
    every = (every or Every()).resolved(recipe.steps)
    train_images, val_pairs = _load_data(data, config.scale)
    # A store's patches are read from its mapping (shared with the loader workers through the
    # page cache); nothing is decoded here.
    dataset = patch_dataset(train_images, config.scale, recipe.patch_size or 0, recipe.seed)
    with run_lock(out):
        checkpoint = None
        if resume:
            _resumable(out, config, recipe, data)
            checkpoint = load_checkpoint(out / CHECKPOINT_FILE)
        else:
            check_new_run(out)
        remove_stale_temps(out)
        trainer = _Trainer(config, recipe, out, data, dev, every, val_pairs,
                           label or (checkpoint.info.get("label") if checkpoint else None)
                           or out.name)
        if checkpoint is not None:
            trainer.resume_from(checkpoint)
        else:
            trainer.start()
        if on_start is not None:
            on_start(FitStart(trainer.step, recipe, every, len(dataset), len(val_pairs),
                              count_params(trainer.model),
                              _changed(checkpoint.info if checkpoint else None, dev)))
        summary = trainer.run(dataset, workers, progress)
    return FitResult(out, summary)


def _resumable(out: Path, config: ArchConfig, recipe: Recipe, data: DataSpec) -> RunInfo:
    run = read_run(out)
    _check_same(run, config, recipe, data, out)
    return run


def _load_data(data: DataSpec, scale: int) -> tuple[list, list]:
    """:func:`load_data`, its errors naming the argument (``train``, ``val``) whose folder
    holds the faulty file, not the file alone."""
    try:
        return load_data(data, scale)
    except DataError as e:
        for name, folders in (("train", data.train_folders),
                              ("val", (data.val,) if data.val else ())):
            # The field is a path in the folder, or the folder then ": " and an image's name.
            if any(e.field == f or e.field.startswith((f.rstrip("/") + "/", f + ": "))
                   for f in folders):
                raise DataError(name, f"{e.field}: {e.rule}", e.value) from None
        raise


def _changed(info: dict[str, Any] | None, device: torch.device) -> str | None:
    """What differs between the session that wrote a checkpoint and this one, in the two
    things that change a CPU run's arithmetic: the device, and torch's intra-op threads (a
    different split of a reduction rounds differently)."""
    sessions = (info or {}).get("sessions") or []
    if not sessions:
        return None
    then = sessions[-1]
    now_device, now_threads = device_name(device), torch.get_num_threads()
    if then.get("device") not in (None, now_device):
        return f"device {then['device']}, now {now_device}"
    if device.type == "cpu" and then.get("threads") not in (None, now_threads):
        return f"{_threads(then['threads'])}, now {now_threads}"
    return None


def _threads(n: int) -> str:
    return f"{n} CPU thread" + ("" if n == 1 else "s")


_OS_ERROR = re.compile(r"I/O error: (.+?) \(os error \d+\)")


@contextmanager
def _writing(out: Path, file: str) -> Iterator[None]:
    """A write into the run folder: a full disk or a read-only folder becomes a
    :class:`RunWriteError` (every file is replaced atomically: what is on disk stays)."""
    from safetensors import SafetensorError

    try:
        yield
    except OSError as e:
        raise RunWriteError(out, e.strerror or str(e), file, written_step(out)) from None
    except SafetensorError as e:  # safetensors' own error for the OSError behind it
        found = _OS_ERROR.search(str(e))
        raise RunWriteError(out, found.group(1) if found else str(e), file,
                            written_step(out)) from None


def _check_same(run: RunInfo, config: ArchConfig, recipe: Recipe, data: DataSpec,
                out: Path) -> None:
    if run.config.arch_id != config.arch_id:
        raise ConfigError("config", f"builds arch_id {config.arch_id}, but the run in {out} "
                          f"trains {run.config.arch_id}", config.arch_id)
    for name, then in run.recipe.to_dict().items():
        now = recipe.to_dict()[name]
        if now != then:
            raise ConfigError(name, f"cannot change on resume: the run was started with "
                              f"{then!r}", now)
    for name in ("train", "val"):
        if getattr(data, name) != getattr(run.data, name):
            raise ConfigError(name, "cannot change on resume: the run was started with "
                              f"{data_shown(getattr(run.data, name))}", getattr(data, name))
    config_file = out / CONFIG_FILE
    if config_file.is_file():
        on_disk = load_config(config_file)
        if on_disk.arch_id != run.config.arch_id:
            raise ConfigError("checkpoint", f"was trained for arch_id {run.config.arch_id}, "
                              f"but {CONFIG_FILE} beside it builds {on_disk.arch_id}",
                              str(out / CHECKPOINT_FILE))


def data_shown(folders: str | None) -> str:
    """A run's recorded training or validation folders as a message shows them."""
    return repr(folders) if folders else "the built-in data"


class _Trainer:
    """The state of one run while it trains: network, EMA, optimizer, figures, log."""

    def __init__(self, config: ArchConfig, recipe: Recipe, out: Path, data: DataSpec,
                 device: torch.device, every: Every, val_pairs: list, label: str) -> None:
        self.config, self.recipe, self.out, self.data = config, recipe, out, data
        self.device, self.every, self.val_pairs, self.label = device, every, val_pairs, label
        # Initial weights as the search's brief training draws them for the same seed.
        torch.manual_seed(recipe.seed)
        random.seed(recipe.seed)
        np.random.seed(recipe.seed)
        self.model = build_model(config).to(device).train()
        self.ema = Ema(self.model, recipe.ema) if recipe.ema else None
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=recipe.lr,
                                           betas=recipe.betas, weight_decay=recipe.weight_decay)
        self.step = 0
        self.seconds = 0.0  # training wall time of earlier sessions, up to their checkpoint
        self.best: dict[str, Any] | None = None  # {"step", "psnr", "ssim"}
        self.best_state: dict[str, torch.Tensor] | None = None
        self.last_val: dict[str, Any] | None = None
        self.sessions: list[dict[str, Any]] = []
        self.phases = {"train": 0.0, "validate": 0.0, "checkpoint": 0.0, "lock_wait": 0.0}

    @property
    def evaluated(self) -> nn.Module:
        """The weights a run is judged by and ships: the moving average when there is one."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def weights_kind(self) -> str:
        return f"ema {self.recipe.ema:g}" if self.ema is not None else "raw"

    # -- start / resume --------------------------------------------------------------------

    def start(self) -> None:
        # A checkpoint of step 0 first: from here on the folder is a run that --resume
        # continues, even when it stops before its first scheduled checkpoint.
        self._checkpoint(0.0)
        with _writing(self.out, CONFIG_FILE):
            write_text(self.out / CONFIG_FILE, self.config.to_yaml())
        with _writing(self.out, LOG_FILE):
            truncate_log(self.out / LOG_FILE, 0)

    def resume_from(self, ckpt: Any) -> None:
        load_group(self.model, ckpt, "model")
        if self.ema is not None:
            load_group(self.ema.module, ckpt, "ema")
        try:
            self.optimizer.load_state_dict(ckpt.optimizer)
        except (ValueError, KeyError, RuntimeError) as e:
            raise ConfigError("checkpoint", f"optimizer state does not fit this network ({e})",
                              str(ckpt.path)) from None
        info = ckpt.info
        self.step, self.seconds = ckpt.step, float(info.get("seconds", 0.0))
        self.best, self.last_val = info.get("best"), info.get("last_val")
        self.sessions = list(info.get("sessions", []))
        self.phases = {**self.phases, **info.get("phases", {})}
        if "best" in ckpt.groups:
            self.best_state = ckpt.groups["best"]
            self._export_best()  # the file may be ahead of the checkpoint: bring it back
        restore_rng(ckpt)
        if not (self.out / CONFIG_FILE).is_file():
            with _writing(self.out, CONFIG_FILE):
                write_text(self.out / CONFIG_FILE, self.config.to_yaml())
        with _writing(self.out, LOG_FILE):
            truncate_log(self.out / LOG_FILE, self.step)

    # -- the loop ----------------------------------------------------------------------------

    def run(self, dataset: PatchDataset, workers: int, progress: Progress | None
            ) -> dict[str, Any]:
        r, dev = self.recipe, self.device
        start_step, t0 = self.step, time.perf_counter()
        session = {"from_step": start_step, "device": device_name(dev), "workers": workers,
                   "threads": torch.get_num_threads()}
        self.sessions.append(session)
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True
        def autocast() -> AbstractContextManager[object]:
            return torch.autocast("cuda", dtype=torch.bfloat16) if r.amp else nullcontext()

        loss_sum = torch.zeros((), device=dev)
        since = 0
        loader = batch_loader(dataset, r.batch_size, start_step, r.steps, workers=workers,
                              pin_memory=dev.type == "cuda")
        with _writing(self.out, LOG_FILE):
            log = open(self.out / LOG_FILE, "a", newline="")  # noqa: SIM115 (closed below)
        # The device's shared lock, as a search trial trains under it: a search timing latency
        # on this device (its exclusive lock) never runs while this run computes. It is let go
        # between steps on the CPU and at logged steps (where the loop synchronises) on CUDA.
        mark = waited_seconds()

        def settle() -> float:
            """Book the lock waits since the last call under lock_wait; return them."""
            nonlocal mark
            now = waited_seconds()
            wait, mark = now - mark, now
            self.phases["lock_wait"] += wait
            return wait

        try:
            with SharedHold(dev) as hold:
                settle()
                writer = csv.writer(log)
                t_phase = time.perf_counter()
                for lr_u8, hr_u8 in loader:
                    lr_now = lr_at_step(self.step, r)
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr_now
                    x = lr_u8.to(dev, non_blocking=True).float().div_(255)
                    y = hr_u8.to(dev, non_blocking=True).float().div_(255)
                    with autocast():
                        out = self.model(x)
                    loss = F.l1_loss(out.float(), y)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                    if self.ema is not None:
                        self.ema.update(self.model)
                    loss_sum += loss.detach()
                    since += 1
                    self.step += 1
                    if dev.type != "cuda":
                        hold.breathe()  # a CPU step has finished when its calls return
                    if not self._logs_now():
                        continue
                    # A logged step is the only place the loop waits for the device.
                    mean = float(loss_sum) / since
                    loss_sum.zero_()
                    since = 0
                    # Settled before the checkpoint below, which saves the phases for a resume.
                    self.phases["train"] += time.perf_counter() - t_phase - settle()
                    if not math.isfinite(mean):
                        raise TrainingError(f"non-finite loss ({mean})", self.step)
                    psnr = ssim = None
                    if self.step % self.every.validate == 0 or self.step == r.steps:
                        psnr, ssim = self._validate()
                    elapsed = self.seconds + time.perf_counter() - t0
                    with _writing(self.out, LOG_FILE):
                        writer.writerow([self.step, f"{mean:.6g}", f"{lr_now:.6g}",
                                         "" if psnr is None else f"{psnr:.4f}",
                                         "" if ssim is None else f"{ssim:.5f}",
                                         f"{elapsed:.2f}"])
                        log.flush()
                    if self.step % self.every.checkpoint == 0 or self.step == r.steps:
                        t = time.perf_counter()
                        session.update(to_step=self.step, seconds=time.perf_counter() - t0)
                        self._checkpoint(self.seconds + time.perf_counter() - t0)
                        self.phases["checkpoint"] += time.perf_counter() - t
                    if progress is not None:
                        progress(FitProgress(self.step, r.steps, mean, lr_now, psnr, ssim,
                                             self.best["psnr"] if self.best else None,
                                             self.seconds + time.perf_counter() - t0))
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
                        hold.breathe()
                        settle()  # a wait outside the next training stretch
                    t_phase = time.perf_counter()
        finally:
            settle()
            with suppress(OSError):  # a full disk: rows not flushed are logged again on resume
                log.close()
        if self.step == start_step:  # nothing left to do: an already finished run
            self.sessions.pop()
        self.seconds += time.perf_counter() - t0
        summary = self._summary()
        with _writing(self.out, SUMMARY_FILE):
            write_text(self.out / SUMMARY_FILE, _json(summary))
        return summary

    def _logs_now(self) -> bool:
        s, e = self.step, self.every
        return (s % e.log == 0 or s % e.validate == 0 or s % e.checkpoint == 0
                or s == self.recipe.steps)

    def _validate(self) -> tuple[float, float]:
        t = time.perf_counter()
        psnr, ssim = validate(self.evaluated, self.val_pairs, self.config.scale, self.device)
        self.last_val = {"step": self.step, "psnr": psnr, "ssim": ssim}
        if self.best is None or psnr > self.best["psnr"]:
            self.best = dict(self.last_val)
            self.best_state = {k: v.detach().cpu().clone()
                               for k, v in self.evaluated.state_dict().items()}
            self._export_best()
        self.phases["validate"] += time.perf_counter() - t
        return psnr, ssim

    def _weights_metadata(self, step: int, figures: dict[str, Any] | None) -> dict[str, str]:
        meta = {"step": str(step), "steps": str(self.recipe.steps), "weights": self.weights_kind,
                "device": device_name(self.device), "label": self.label}
        if figures:
            meta.update(psnr=f"{figures['psnr']:.4f}", ssim=f"{figures['ssim']:.5f}")
        return meta

    def _export_best(self) -> None:
        if self.best is None or self.best_state is None:
            return
        # A copy, not build_model: a fresh network would draw from torch's generator.
        holder = copy.deepcopy(self.evaluated)
        holder.load_state_dict(self.best_state)
        with _writing(self.out, BEST_FILE):
            save_weights(holder, self.out / BEST_FILE, self.config,
                         self._weights_metadata(self.best["step"], self.best))

    def _checkpoint(self, seconds: float) -> None:
        groups: dict[str, dict[str, torch.Tensor]] = {"model": self.model.state_dict()}
        if self.ema is not None:
            groups["ema"] = self.ema.module.state_dict()
        if self.best_state is not None:
            groups["best"] = self.best_state
        info = {"arch": self.config.to_dict(), "arch_id": self.config.arch_id,
                "label": self.label, "recipe": self.recipe.to_dict(),
                "data": {"train": self.data.train, "val": self.data.val},
                "every": {"checkpoint": self.every.checkpoint, "validate": self.every.validate,
                          "log": self.every.log},
                "seconds": seconds, "best": self.best, "last_val": self.last_val,
                "sessions": self.sessions, "phases": self.phases}
        with _writing(self.out, CHECKPOINT_FILE):
            save_checkpoint(self.out / CHECKPOINT_FILE, step=self.step, info=info,
                            groups=groups, optimizer=self.optimizer)
        last = self.last_val if self.last_val and self.last_val["step"] == self.step else None
        with _writing(self.out, LAST_FILE):
            save_weights(self.evaluated, self.out / LAST_FILE, self.config,
                         self._weights_metadata(self.step, last))

    def _summary(self) -> dict[str, Any]:
        import platform

        r = self.recipe
        final = self.last_val if self.last_val and self.last_val["step"] == self.step else None
        return {
            "label": self.label, "arch_id": self.config.arch_id, "scale": self.config.scale,
            "params": count_params(self.model),
            "steps": self.step, "seconds": round(self.seconds, 3),
            "steps_per_s": round(self.step / self.seconds, 3) if self.seconds else None,
            "device": device_name(self.device), "amp": r.amp,
            "final": {**(final or {}), "weights": self.weights_kind},
            "best": {**(self.best or {}), "weights": self.weights_kind},
            "recipe": {**r.to_dict(), "optimizer": "AdamW", "loss": "L1"},
            "data": {"train": self.data.train or "built-in", "val": self.data.val or "built-in",
                     "val_images": len(self.val_pairs)},
            "sessions": self.sessions,
            "phase_seconds": {k: round(v, 3) for k, v in self.phases.items()},
            "files": {"config": CONFIG_FILE, "best": BEST_FILE, "last": LAST_FILE,
                      "checkpoint": CHECKPOINT_FILE, "log": LOG_FILE},
            "versions": {"torch": torch.__version__, "python": platform.python_version()},
        }


def _json(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data, indent=2) + "\n"


__all__ = ["Ema", "FitProgress", "FitResult", "FitStart", "data_shown", "fit"]
