"""The run folder of ``srnas train``: its files, what a run was started with, and one process
at a time. A run lives in one folder::

    config.yaml             the network (srnas.space.config.load_config reads it)
    best.safetensors        best validation PSNR so far (moving-average weights when EMA is on)
    last.safetensors        the weights of the latest checkpoint, then of the last step
    checkpoint.safetensors  everything a resumed run needs (see evaluators.checkpoint), from
                            step 0 on: a folder with weights in it can always be resumed
    log.csv                 one row per logged step: step, loss, lr, psnr, ssim, seconds
    train.json              the summary, written when the run ends
"""

from __future__ import annotations

import csv
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from srnas.evaluators.checkpoint import read_info
from srnas.evaluators.evaluate import DataSpec
from srnas.evaluators.recipe import Recipe
from srnas.space.atomic import atomic_write
from srnas.space.config import ArchConfig, from_dict
from srnas.space.errors import ConfigError

CONFIG_FILE = "config.yaml"
CHECKPOINT_FILE = "checkpoint.safetensors"
BEST_FILE = "best.safetensors"
LAST_FILE = "last.safetensors"
LOG_FILE = "log.csv"
SUMMARY_FILE = "train.json"
LOCK_FILE = ".lock"
RUN_FILES = (CONFIG_FILE, CHECKPOINT_FILE, BEST_FILE, LAST_FILE, LOG_FILE, SUMMARY_FILE)
LOG_COLUMNS = ("step", "loss", "lr", "psnr", "ssim", "seconds")


@dataclass(frozen=True)
class Every:
    """How often a run logs, validates and checkpoints (in steps). None: the defaults, from
    ESC's 100-step print and 5,000-step validation and checkpoint frequency, scaled to the run:
    checkpoints every min(5000, max(steps // 10, 50)) steps, validation at each checkpoint,
    a log row every min(100, max(steps // 100, 1)) steps. None of these changes the weights."""

    checkpoint: int | None = None
    validate: int | None = None
    log: int | None = None

    def resolved(self, steps: int) -> Every:
        ckpt = self.checkpoint if self.checkpoint is not None else min(5000, max(steps // 10, 50))
        for name, value in (("checkpoint_every", ckpt), ("val_every", self.validate),
                            ("log_every", self.log)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ConfigError(name, "must be a positive integer", value)
        return Every(ckpt, self.validate or ckpt, self.log or min(100, max(steps // 100, 1)))


@dataclass(frozen=True)
class RunInfo:
    """What a run folder was started with: read from its checkpoint, so it is what resumes."""

    config: ArchConfig
    recipe: Recipe
    data: DataSpec
    every: Every
    step: int
    label: str


def read_run(out_dir: str | Path) -> RunInfo:
    """The config, recipe, data and step of the run in ``out_dir`` (from its checkpoint)."""
    out = Path(out_dir)
    path = out / CHECKPOINT_FILE
    if not path.is_file():
        raise ConfigError("out", f"holds no checkpoint to resume ({CHECKPOINT_FILE})", str(out))
    step, info = read_info(path)
    try:
        return RunInfo(from_dict(info["arch"], source=f"{path} arch"),
                       Recipe.from_dict(info["recipe"]), DataSpec(**info["data"]),
                       Every(**info["every"]), step, info.get("label", out.name))
    except (KeyError, TypeError) as e:
        raise ConfigError("checkpoint", f"is damaged (info field {e})", str(path)) from None


def check_new_run(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError("out", "must be a folder, not a file", str(out))
    held = [name for name in RUN_FILES if (out / name).exists()]
    if held:
        raise ConfigError("out", f"already holds a run ({', '.join(held)}); continue it with "
                          "--resume or choose another folder", str(out))


@contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """One process per run folder: a second ``srnas train`` on it fails instead of writing
    over the first one's checkpoints."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise ConfigError("out", f"cannot be written ({e.strerror})", str(out)) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError("out", "is in use by another srnas train", str(out)) from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)  # explicit: forked loader workers share the fd
    finally:
        os.close(fd)


def write_text(path: Path, text: str) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def truncate_log(path: Path, step: int) -> None:
    """Drop the rows a killed run logged after its last checkpoint: they are logged again."""
    rows = []
    if path.is_file():
        with open(path, newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if r.get("step", "").isdigit()
                    and int(r["step"]) <= step]
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, LOG_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


__all__ = ["BEST_FILE", "CHECKPOINT_FILE", "CONFIG_FILE", "LAST_FILE", "LOG_COLUMNS",
           "LOG_FILE", "RUN_FILES", "SUMMARY_FILE", "Every", "RunInfo", "check_new_run",
           "read_run", "run_lock", "truncate_log", "write_text"]
