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
import errno
import fcntl
import io
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


def check_out(out_dir: str | Path) -> Path:
    """The run folder as a path; an empty name is refused (``Path("")`` is the current
    folder: a run would land among whatever is there)."""
    if not str(out_dir).strip():
        raise ConfigError("out", "must name a folder (empty: the run would go into the "
                          "current folder)", str(out_dir))
    return Path(out_dir)


class RunWriteError(ConfigError):
    """A file of the run folder could not be written (a full disk, a read-only folder). Every
    file is replaced atomically, so the checkpoint on disk (``step``; None when there is none)
    is intact and resumes."""

    def __init__(self, out: Path, reason: str, file: str, step: int | None) -> None:
        kept = (f"the last checkpoint, at step {step}, is intact" if step is not None
                else "no checkpoint was written")
        super().__init__("out", f"cannot be written: {reason} (writing {file}); {kept}")
        self.out, self.reason, self.file, self.step = out, reason, file, step


def written_step(out: Path) -> int | None:
    """The step of the checkpoint in ``out``, from its header; None when there is none."""
    try:
        return read_info(out / CHECKPOINT_FILE)[0]
    except ConfigError:
        return None


@contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """One process per run folder: a second ``srnas train`` on it fails instead of writing
    over the first one's checkpoints.

    A POSIX record lock (``lockf``), not ``flock``: a record lock belongs to the process, so
    the DataLoader workers forked from it inherit the descriptor but not the lock, and a
    ``kill -9`` of the main process frees the folder at once. (An ``flock`` lives on the open
    file that forked workers share: orphaned workers held it for ~10 s after a kill.) Record
    locks of one process never conflict with each other, and closing any descriptor of the
    file drops them: nothing else in the process opens this file."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise ConfigError("out", f"cannot be written: {e.strerror}", str(out)) from None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EAGAIN):
                raise ConfigError("out", f"cannot be locked: {e.strerror}", str(out)) from None
            raise ConfigError("out", "is in use by another srnas train", str(out)) from None
        yield
    finally:
        os.close(fd)  # drops the record lock


def write_text(path: Path, text: str) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def truncate_log(path: Path, step: int) -> None:
    """Drop the rows a killed run logged after its last checkpoint: they are logged again.
    A row cut short (a full disk, a kill in the middle of a write: no line end) is dropped."""
    rows = []
    if path.is_file():
        text = path.read_text()
        whole = text[: text.rfind("\n") + 1]  # every row is written with its line end
        rows = [r for r in csv.DictReader(io.StringIO(whole, newline=""))
                if r.get("step", "").isdigit() and int(r["step"]) <= step
                and None not in r and None not in r.values()]
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, LOG_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


__all__ = ["BEST_FILE", "CHECKPOINT_FILE", "CONFIG_FILE", "LAST_FILE", "LOG_COLUMNS",
           "LOG_FILE", "RUN_FILES", "SUMMARY_FILE", "Every", "RunInfo", "RunWriteError",
           "check_new_run", "check_out", "read_run", "run_lock", "truncate_log", "write_text",
           "written_step"]
