"""``srnas train``: train the network a search picked (a preset, a config file or a study's
trial) for long, with ESC's recipe, into a run folder that ``--resume`` continues exactly.

Here because a trial's network and training settings come from a study (studies/) and the
training from evaluators/: only search/ composes the two (``search.sources``)."""

from __future__ import annotations

import argparse
import signal
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srnas.search.commands.args import (
    Args,
    Subcommands,
    add_data,
    add_device,
    add_scale,
    add_storage,
    add_trial,
    command,
    nonnegative_float,
    nonnegative_int,
    one_of,
    positive_float,
    positive_int,
    resolve_auto,
    seed,
)
from srnas.space.errors import ConfigError

if TYPE_CHECKING:  # torch loads only when the command runs
    from srnas.evaluators.evaluate import DataSpec
    from srnas.evaluators.fit import FitProgress, FitStart
    from srnas.space.config import ArchConfig

SCHEDULES = ("multistep", "cosine")
# The flags of this group set the recipe: left out, they default to the trial's sampled
# values, then to ESC's recipe; on --resume they may only repeat what the run was started with.
RECIPE = "recipe (defaults: the trial's sampled values, then ESC's)"


def register(sub: Subcommands, name: str) -> list[Args]:
    a = command(
        sub, name, help="train one network for long (ESC's recipe) into a run folder: "
        "checkpoints that resume exactly, best and last weights beside their config",
        description="Train SPEC (a preset, a config file, or a study with --trial N) with "
        "ESC's recipe for lightweight networks (AdamW lr 5e-4, betas 0.9/0.9, L1, warm-up, "
        "learning rate halved at 50/80/90/95/98 % of the steps, EMA 0.999, batch 16, 64-pixel "
        "LR patches), scaled to --steps. A trial's sampled lr, batch and patch size are the "
        "defaults for it. RUN/ gets config.yaml, best.safetensors, last.safetensors, "
        "checkpoint.safetensors, log.csv and train.json.")
    a.add("spec", nargs="?", metavar="SPEC", help="preset, config file, or study name with "
          "--trial (optional with --resume: the run knows its network)")
    add_trial(a, help="train trial N of study SPEC")
    add_storage(a, help="study storage for --trial (default $SRNAS_STORAGE, else "
                "sqlite:///srnas.db)")
    add_scale(a, help="upscaling factor: 2, 3 or 4 (default: the config's; 4 for presets)")
    a.add("--out", required=True, metavar="RUN", help="run folder (refused if it already "
          "holds a run, unless --resume)")
    a.add("--resume", action="store_true", help="continue the run in RUN/ from its checkpoint")
    g = a.group(RECIPE)
    g.add("--steps", type=positive_int, help="optimisation steps (default 500000, ESC's)")
    g.add("--batch-size", type=positive_int, help="patches per step (default 16)")
    g.add("--patch-size", type=positive_int, help="HR patch size in pixels (default 64 * "
          "scale, ESC's 64-pixel LR patches)")
    g.add("--lr", type=positive_float, help="AdamW learning rate (default 5e-4)")
    g.add("--warmup", type=nonnegative_int, help="linear warm-up steps (default min(20000, 4 "
          "%% of --steps))")
    g.add("--schedule", type=one_of(SCHEDULES), metavar="{" + ",".join(SCHEDULES) + "}",
          help="multistep (default: halved at 50/80/90/95/98 %% of the steps) or cosine (to "
          "zero)")
    g.add("--ema", type=nonnegative_float, help="weight moving-average decay (default ESC's "
          "0.999; below 10000 steps 1 - 1/(steps // 10), none below 20 steps; 0 turns it off); "
          "best and last weights are the average")
    g.add("--seed", type=seed, help="seeds the initial weights and the patches (default 0)")
    g.add("--amp", action="store_true", default=None, help="bf16 autocast (CUDA only)")
    d = a.group("data and run")
    add_data(d)
    add_device(d)
    d.add("--workers", type=nonnegative_int, help="data loader processes (default 0 on CPU, "
          "min(4, CPUs - 1) on CUDA); results do not depend on it")
    d.add("--checkpoint-every", type=positive_int, metavar="K", help="checkpoint every K steps "
          "(default min(5000, max(steps // 10, 50)))")
    d.add("--val-every", type=positive_int, metavar="K", help="validate every K steps "
          "(default: at every checkpoint) and at the end")
    d.add("--log-every", type=positive_int, metavar="K", help="a log.csv row every K steps "
          "(default min(100, max(steps // 100, 1)))")
    a.run(lambda args: _run(args, a.groups[RECIPE]))
    return [a]


def _run(args: argparse.Namespace, recipe_flags: list[str]) -> int:
    from srnas.evaluators.evaluate import DataSpec
    from srnas.evaluators.fit import data_shown, fit
    from srnas.evaluators.recipe import Recipe
    from srnas.evaluators.runs import SUMMARY_FILE, Every, RunWriteError, check_out, read_run

    check_out(args.out)
    if args.trial is not None and args.spec is None:
        raise ConfigError("spec", "is required with --trial (the study's name)")
    given = {k: getattr(args, k) for k in recipe_flags if getattr(args, k) is not None}
    if args.resume:
        run = read_run(args.out)
        config, recipe, data, label = run.config, run.recipe, run.data, run.label
        if args.spec is not None:
            source = _source(args)
            if source.config.arch_id != config.arch_id:
                raise ConfigError("spec", f"builds arch_id {source.config.arch_id}, but the "
                                  f"run in {args.out} trains {config.arch_id}", args.spec)
        if args.scale is not None and args.scale != config.scale:
            raise ConfigError("scale", f"cannot change on resume: the run trains "
                              f"x{config.scale}", args.scale)
        _same(given, recipe.to_dict())
        typed = DataSpec(tuple(str(Path(f).resolve()) for f in args.train or ()),
                         str(Path(args.val).resolve()) if args.val is not None else None)
        for k in ("train", "val"):  # a flag may repeat the run's folders, not change them
            if getattr(args, k) is not None and getattr(typed, k) != getattr(data, k):
                raise ConfigError(k, "cannot change on resume: the run was started with "
                                  f"{data_shown(getattr(data, k))}", getattr(args, k))
        if run.step >= recipe.steps and (Path(args.out) / SUMMARY_FILE).is_file():
            # (Without its summary, a full disk stopped it at the end: fit writes it.)
            from srnas.evaluators.checkpoint import load_checkpoint
            from srnas.evaluators.runs import CHECKPOINT_FILE

            load_checkpoint(Path(args.out) / CHECKPOINT_FILE)  # finished, but also intact?
            print(f"srnas train: {args.out} already trained all {recipe.steps} steps; "
                  "nothing to resume")
            return 0
    else:
        if args.spec is None:
            raise ConfigError("spec", "is required (a preset, a config file, or a study "
                              "with --trial)")
        source = _source(args)
        config, label = source.config, source.label
        recipe = Recipe(**{**source.train, **given})
        data = DataSpec(args.train, args.val)
    device = resolve_auto(args.device)
    workers = args.workers
    if workers is None:
        import os

        workers = 0 if device == "cpu" else min(4, max((os.cpu_count() or 1) - 1, 0))
    every = Every(args.checkpoint_every, args.val_every, args.log_every)
    if args.resume:  # what the run was started with, unless a flag says otherwise
        every = Every(*(mine if mine is not None else theirs for mine, theirs in zip(
            (every.checkpoint, every.validate, every.log),
            (run.every.checkpoint, run.every.validate, run.every.log), strict=True)))
    bar = _Progress(recipe.steps, device)
    held = _HeldWarnings()

    def started(start: FitStart) -> None:
        held.release()
        _print_header(config, start, data, label, device, workers, args)
        if start.changed:
            print(f"srnas train: warning: the checkpoint was written with {start.changed}: "
                  "the resumed run will not be bit-identical to an uninterrupted one",
                  file=sys.stderr, flush=True)
        bar.open(start.step)

    try:
        with held, _terminate_as_interrupt():
            result = fit(config, recipe, args.out, data=data, device=device, workers=workers,
                         every=every, resume=args.resume, label=label, progress=bar.update,
                         on_start=started)
    except KeyboardInterrupt:
        bar.close()
        print(f"srnas train: {_resume_hint(args.out)}", file=sys.stderr)
        raise
    except _Terminated:
        bar.close()
        print(f"srnas train: {_resume_hint(args.out)}", file=sys.stderr)
        print("srnas train: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except RunWriteError as e:
        bar.close()
        hint = f": srnas train --out {args.out} --resume" if e.step is not None else ""
        raise ConfigError("out", e.rule + hint) from None
    finally:
        bar.close()
    _print_summary(result.summary, args.out)
    return 0


def _source(args: argparse.Namespace) -> Any:
    """The network SPEC names; a config file's own mistakes name SPEC and the file, not the
    config field alone (a field such as ``scale`` would read as the flag of that name)."""
    from srnas.search.sources import resolve_source

    try:
        return resolve_source(args.spec, trial=args.trial, storage=args.storage,
                              scale=args.scale)
    except ConfigError as e:
        if args.trial is None and e.field != "spec" and Path(args.spec).is_file():
            raise ConfigError("spec", f"{args.spec}: {e}") from None
        raise


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread as Ctrl-C's KeyboardInterrupt is."""


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler's stop, ``kill``) stops the run as Ctrl-C does: raised between
    two Python operations, so a checkpoint being written is either complete or its
    temporary file removed (every write is atomic), and the hint to resume is printed."""
    def handler(signum: int, frame: Any) -> None:
        raise _Terminated

    try:
        before = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


class _HeldWarnings:
    """Python warnings during the checks and the data load (e.g. images skipped as smaller
    than the patch) as one line each, without Python's source line, and only once the run
    starts: before an error, the error is the one line."""

    def __init__(self) -> None:
        self.held: list[str] = []
        self.started = False
        self._catch = warnings.catch_warnings()

    def __enter__(self) -> _HeldWarnings:
        self._catch.__enter__()
        warnings.showwarning = self._show
        return self

    def __exit__(self, *exc: object) -> None:
        self._catch.__exit__(*exc)

    def _show(self, message: Warning | str, category: type[Warning], filename: str,
              lineno: int, file: Any = None, line: str | None = None) -> None:
        text = " ".join(str(message).split())
        if self.started:
            print(f"srnas train: warning: {text}", file=sys.stderr, flush=True)
        else:
            self.held.append(text)

    def release(self) -> None:
        self.started = True
        for text in self.held:
            print(f"srnas train: warning: {text}", file=sys.stderr, flush=True)
        self.held.clear()


def _same(given: dict[str, Any], recorded: dict[str, Any]) -> None:
    """On --resume a flag may repeat the run's setting, not change it."""
    for name, value in given.items():
        then = recorded[name]
        if (list(value) if isinstance(value, tuple) else value) != then:
            raise ConfigError(name, f"cannot change on resume: the run was started with "
                              f"{then!r}", value)


def _print_header(config: ArchConfig, start: FitStart, data: DataSpec, label: str,
                  device: str, workers: int, args: argparse.Namespace) -> None:
    r, every = start.recipe, start.every
    sched = (f"multistep x{r.gamma:g} at {','.join(map(str, r.milestones))}"
             if r.schedule == "multistep" else "cosine")
    doing = f"resuming at step {start.step} of" if start.step else "training"
    print(f"srnas train: {doing} {label} (arch_id {config.arch_id}, x{config.scale}, "
          f"{start.params:,} params) into {args.out}")
    print(f"  recipe  {r.steps} steps, AdamW lr {r.lr:g} betas {r.betas[0]:g}/{r.betas[1]:g} "
          f"wd {r.weight_decay:g}, L1, warm-up {r.warmup}, {sched}, "
          + (f"EMA {r.ema:g}" if r.ema else "no EMA")
          + f", batch {r.batch_size}, patch {r.patch_size} HR px, seed {r.seed}"
          + (", bf16 autocast" if r.amp else ""))
    print(f"  data    train {', '.join(data.train_folders) or 'built-in'} "
          f"({start.train_images} images), val "
          f"{data.val or 'built-in'} ({start.val_images} images)")
    print(f"  run     {device}, {workers} loader workers; checkpoint every {every.checkpoint}, "
          f"validate every {every.validate}, log every {every.log} steps", flush=True)


class _Progress:
    """tqdm on a terminal (loss, learning rate, last validation PSNR, ETA); elsewhere (pipes,
    nohup logs) one line per validation."""

    def __init__(self, total: int, device: str) -> None:
        self.device, self.total = device, total
        self.psnr: float | None = None
        self.bar: Any = None

    def open(self, initial: int) -> None:
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=initial, unit="step", file=sys.stderr,
                            desc=f"train ({self.device})", dynamic_ncols=True)

    def update(self, p: FitProgress) -> None:
        if p.psnr is not None:
            self.psnr = p.psnr
        if self.bar is not None:
            self.bar.update(p.step - self.bar.n)
            post = {"loss": f"{p.loss:.4f}", "lr": f"{p.lr:.2e}"}
            if self.psnr is not None:
                post["val_psnr"] = f"{self.psnr:.2f}"
            self.bar.set_postfix(post, refresh=False)
        elif p.psnr is not None:
            rate = p.step / p.seconds if p.seconds else 0.0
            print(f"step {p.step}/{p.steps} "
                  f"({self.device}): loss {p.loss:.4f}, lr {p.lr:.2e}, val PSNR {p.psnr:.3f} "
                  f"dB / SSIM {p.ssim:.4f}, {rate:.2f} steps/s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _resume_hint(out: str) -> str:
    from srnas.evaluators.runs import written_step

    step = written_step(Path(out))
    if step is None:
        return "no checkpoint was written yet"
    return f"the last checkpoint is step {step}; continue with srnas train --out {out} --resume"


def _print_summary(s: dict[str, Any], out: str) -> None:
    steps, device = s["steps"], s["device"]
    rate = f"{s['steps_per_s']:.2f} steps/s" if s.get("steps_per_s") else "-"
    print(f"trained {s['label']} for {steps} steps on {device} in {s['seconds']:.1f} s "
          f"({rate}, every session included)")
    for key, file in (("best", s["files"]["best"]), ("final", s["files"]["last"])):
        f = s[key]
        if "psnr" in f:
            print(f"  {key:5s} PSNR {f['psnr']:.3f} dB, SSIM {f['ssim']:.4f} at step "
                  f"{f['step']} of {steps} on {device} ({f['weights']} weights) -> "
                  f"{out}/{file}")
    print(f"  validation {s['data']['val']} ({s['data']['val_images']} images); "
          f"{out}/{s['files']['config']}, {out}/{s['files']['log']}, {out}/train.json")
