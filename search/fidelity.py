"""``srnas fidelity``: retrain chosen trials of a study for a longer budget, as Ray Tune trials,
and keep each result in the sibling study ``STUDY:fidelity`` (:mod:`srnas.studies.schema`).

A retrain repeats its trial's recipe exactly -- architecture, sampled lr / batch / patch,
training seed, training and validation data, device kind -- except the number of steps, so
the only thing that differs between the brief and the long PSNR is the budget. Each result is
added to the sibling study when its training ends: a killed run loses only what was
training, and a rerun skips every (trial, steps) pair already measured.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import optuna

from srnas.search.resources import check_storage_retry, check_trial_resources
from srnas.search.tuner import run_tuner, start_cluster
from srnas.space.contract import ATTR_MEASUREMENT, STATUS_FAILED, STATUS_OK, STATUS_TRAINING
from srnas.space.errors import ConfigError, StorageError, StudyError
from srnas.studies import fidelity as fid
from srnas.studies import storage as storage_url
from srnas.studies.frame import load_study, nested_attr
from srnas.studies.schema import (
    ATTR_FIDELITY_OF,
    BRIEF_PSNR,
    BRIEF_STEPS,
    FIDELITY_FORMAT,
    MAX_STUDY_NAME,
    SOURCE_TRIAL,
    STEPS,
    check_sibling,
    fidelity_study_name,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

TRAIN_KEYS = ("lr", "batch_size", "patch_size")


@dataclass(frozen=True)
class FidelitySettings:
    study: str
    storage: str | None = None
    steps: int | None = None  # None: DEFAULT_FACTOR x the study's steps
    trials: int = fid.DEFAULT_RETRAINS
    numbers: tuple[int, ...] = ()  # explicit trials (instead of the selection)
    include_pruned: bool = False
    top_k: int = fid.DEFAULT_TOP_K
    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None
    concurrency: int | None = None
    seed: int | None = None  # None: each trial's recorded training seed
    verbose: bool = False
    val_every: int | None = None  # progress validations (None: 4 along the way)
    storage_retry_s: float | None = None  # None: srnas.studies.retry.DEFAULT_STORAGE_RETRY_S

    def __post_init__(self) -> None:
        if self.trials < fid.MIN_PAIRS:
            raise ConfigError("trials", f"must be at least {fid.MIN_PAIRS} (a rank correlation "
                              "of fewer pairs says nothing)", self.trials)
        if self.top_k < 1:
            raise ConfigError("top_k", "must be >= 1", self.top_k)
        # Negative or NaN GPUs left every retrain PENDING forever (Ray takes them silently).
        check_trial_resources(self.cpus_per_trial, self.gpus_per_trial, self.concurrency)
        check_storage_retry(self.storage_retry_s)
        if self.seed is not None and not 0 <= self.seed < 2**32:
            raise ConfigError("seed", "must be between 0 and 2**32 - 1", self.seed)
        if len(set(self.numbers)) != len(self.numbers):
            raise ConfigError("trial", "must not name a trial twice", list(self.numbers))


@dataclass
class FidelityOutcome:
    study: optuna.Study
    storage: optuna.storages.BaseStorage
    steps: int
    selected: list[int]
    skipped: list[int]
    ran: int
    failed: list[tuple[int, str]] = field(default_factory=list)
    wall_seconds: float = 0.0
    interrupted: bool = False


def recorded_data(study: optuna.Study) -> tuple[str | tuple[str, ...] | None, str | None]:
    """The training and validation data the study's trials were measured on, as recorded at
    its creation (None: the built-in images)."""
    measurement = study.user_attrs.get(ATTR_MEASUREMENT) or {}
    train, val = (measurement.get(k) for k in ("train_data", "val_data"))
    # Several training folders are recorded as a list (one as a plain string).
    folders = tuple(train) if isinstance(train, list) else train
    return (None if train in (None, "built-in") else
            folders if isinstance(folders, tuple) else str(folders),
            None if val in (None, "built-in") else str(val))


def jobs_for(study: optuna.Study, numbers: list[int], steps: int,
             seed: int | None) -> list[dict[str, Any]]:
    """One Tune config per retrain: the source trial's recipe with ``steps``."""
    known = fid.briefs(study)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    jobs = []
    for number in numbers:
        trial = by_number[number]
        brief = known[number]
        jobs.append({
            "source_trial": number,
            "arch": nested_attr(trial.user_attrs, "arch"),
            "arch_id": trial.user_attrs.get("arch_id"),
            "train": {k: trial.params[k] for k in TRAIN_KEYS if k in trial.params},
            "seed": int(seed if seed is not None else trial.user_attrs.get("train_seed", 0)),
            "brief_psnr": brief.psnr, "brief_steps": brief.steps,
        })
    return jobs


def retrain_trainable(steps: int, scale: int, train: str | None, val: str | None,
                      val_every: int, gpus: float) -> Callable[[dict[str, Any]], None]:
    """The retrain: the search's own evaluation (same seed, data and recipe) at ``steps``."""

    def trainable(config: dict[str, Any]) -> None:
        import torch
        from ray import tune

        from srnas.evaluators.evaluate import DataSpec, evaluate
        from srnas.evaluators.recipe import Recipe
        from srnas.search.trainable import placement, trial_device
        from srnas.space.config import from_dict

        job = config["job"]
        val_psnr: dict[str, float] = {}

        def progress(step: int, loss: float, psnr: float | None) -> None:
            if psnr is not None:
                val_psnr[str(step)] = psnr
                tune.report({"status": STATUS_TRAINING, "step": step, "loss": loss,
                             "psnr": psnr})

        report: dict[str, Any] = {"status": STATUS_FAILED, **placement()}
        try:
            arch = from_dict(job["arch"]).replace(scale=scale)
            recipe = Recipe.brief(steps=steps, seed=job["seed"], **job["train"])
            result = evaluate(arch, recipe, DataSpec(train, val), trial_device(gpus),
                              val_every=val_every, progress=progress).to_dict()
            report.update({k: result.get(k) for k in (
                "status", "psnr", "ssim", "steps", "train_seconds", "device", "threads",
                "failure_reason")})
            if result.get("status") == STATUS_OK and result.get("steps") != steps:
                report.update(status=STATUS_FAILED,
                              failure_reason=f"trained {result.get('steps')} of {steps} steps")
        except Exception as exc:  # a retrain's own failure is recorded, never fatal
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
            if isinstance(exc, torch.OutOfMemoryError):
                reason = f"out of memory: {reason}"
            report["failure_reason"] = reason
        report["val_psnr"] = val_psnr
        tune.report(report)

    return trainable


def record_retrain(sibling: optuna.Study, job: dict[str, Any], steps: int,
                   result: dict[str, Any] | None, error: str | None = None) -> bool:
    """Add one retrain to the sibling study, whole (COMPLETE with its PSNR, or FAIL with the
    reason); True when it completed."""
    from optuna.distributions import IntDistribution
    from optuna.trial import TrialState, create_trial

    result = dict(result or {})
    attrs: dict[str, Any] = {
        SOURCE_TRIAL: job["source_trial"], STEPS: steps,
        BRIEF_PSNR: job["brief_psnr"], BRIEF_STEPS: job["brief_steps"],
        "seed": job["seed"], "train": job["train"], "arch_id": job["arch_id"],
    }
    # threads: CPU training sums gradients in an order set by torch's intra-op thread count,
    # so a rerun repeats a retrain bit for bit only with the same count.
    for key in ("ssim", "device", "threads", "train_seconds", "node", "host", "gpu_ids",
                "val_psnr"):
        value = result.get(key)
        if value is not None and not (isinstance(value, float) and not math.isfinite(value)):
            attrs[key] = value
    psnr = result.get("psnr")
    ok = (error is None and result.get("status") == STATUS_OK
          and isinstance(psnr, (int, float)) and math.isfinite(psnr))
    if not ok:
        attrs["failure_reason"] = error or result.get("failure_reason") or (
            f"ended with status {result.get('status')!r} and no PSNR")
    # The source trial as a parameter too: Optuna's own tools (e.g. the dashboard) can then
    # plot the long PSNR against it.
    sibling.add_trial(create_trial(
        state=TrialState.COMPLETE if ok else TrialState.FAIL,
        value=float(psnr) if ok else None,
        params={SOURCE_TRIAL: job["source_trial"]},
        distributions={SOURCE_TRIAL: IntDistribution(0, max(job["source_trial"], 1))},
        user_attrs=attrs))
    return ok


def open_sibling(study: optuna.Study, storage: optuna.storages.BaseStorage | str
                 ) -> optuna.Study:
    """Create (or open) the sibling study, with the attrs that mark it as srnas's; a storage
    that refuses the write is one :class:`StorageError` line."""
    from sqlalchemy import exc

    try:
        return _open_sibling(study, storage)
    except exc.SQLAlchemyError as e:
        url = getattr(storage, "url", None)
        where = storage_url.mask_url(url) if isinstance(url, str) else type(storage).__name__
        reason = storage_url.redact(str(getattr(e, "orig", e)).strip().splitlines()[0],
                                    url if isinstance(url, str) else "")
        raise StorageError("storage", f"cannot be written: {reason}", where) from None


def _open_sibling(study: optuna.Study, storage: optuna.storages.BaseStorage | str
                  ) -> optuna.Study:
    sibling = optuna.create_study(study_name=fidelity_study_name(study.study_name),
                                  storage=storage, direction="maximize", load_if_exists=True)
    if sibling.user_attrs.get(ATTR_FIDELITY_OF) is None:
        sibling.set_user_attr(ATTR_FIDELITY_OF, study.study_name)
        sibling.set_user_attr("format", FIDELITY_FORMAT)
        sibling.set_user_attr(ATTR_MEASUREMENT, study.user_attrs.get(ATTR_MEASUREMENT) or {})
    return sibling


def check_sibling_name(name: str, storage: optuna.storages.BaseStorage) -> None:
    """The sibling study can be made (its name fits Optuna's column) and, when it exists, is
    one `srnas fidelity` made for this study: a same-named study of the user's is not written
    into."""
    sibling_name = fidelity_study_name(name)
    if len(sibling_name) > MAX_STUDY_NAME:
        raise StudyError("study", f"is too long for a fidelity sibling: {sibling_name[:20]}... "
                         f"would be {len(sibling_name)} characters, Optuna keeps at most "
                         f"{MAX_STUDY_NAME}", f"{name[:20]}... ({len(name)} characters)")
    sibling = fid.load_sibling(name, storage)
    if sibling is not None:
        check_sibling(sibling.user_attrs, name, len(sibling.get_trials(deepcopy=False)))


EXPERIMENT_PREFIX = "srnas-fidelity-"
_EXPERIMENT_RE = re.compile(rf"^{EXPERIMENT_PREFIX}(\d+)@(.+)-[^-]+$")


def experiment_prefix() -> str:
    """Tune's temporary experiment folder of this driver: named by its pid and host, so a
    later driver can tell a killed one's leftover (:func:`sweep_dead_experiments`)."""
    return f"{EXPERIMENT_PREFIX}{os.getpid()}@{socket.gethostname()}-"


def sweep_dead_experiments(root: Path | None = None) -> list[Path]:
    """Remove the experiment folders that drivers killed on this host left behind (a process
    that no longer exists); the folders of live drivers, and of other hosts sharing the
    temporary folder, stay. Returns what was removed."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{EXPERIMENT_PREFIX}*"):
        match = _EXPERIMENT_RE.match(folder.name)
        if match is None or match.group(2) != socket.gethostname() or not folder.is_dir():
            continue
        if not _process_alive(int(match.group(1))):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def plan(settings: FidelitySettings) -> tuple[optuna.Study, optuna.storages.BaseStorage, int,
                                               list[int]]:
    """Every check before anything is written or started: the study, the budget, the trials."""
    target = storage_url.check_for_write(settings.storage)
    if not storage_url.exists(target):
        raise StudyError("study", f"does not exist: {target.masked} holds no studies yet",
                         settings.study)
    storage = storage_url.open_for_write(target, retry_s=settings.storage_retry_s)
    study = load_study(settings.study, storage)
    check_sibling_name(study.study_name, storage)
    brief_steps = fid.study_steps(study)
    steps = settings.steps if settings.steps is not None else (
        fid.DEFAULT_FACTOR * brief_steps if brief_steps else None)
    if steps is None:
        raise ConfigError("steps", f"has no default: study {settings.study!r} does not record "
                          "its training steps; give --steps", None)
    fid.check_request(study, steps, settings.numbers)
    numbers = list(settings.numbers) or fid.select_trials(
        study, settings.trials, include_pruned=settings.include_pruned)
    return study, storage, steps, numbers


def run_fidelity(settings: FidelitySettings, out: TextIO | None = None) -> FidelityOutcome:
    """Plan (read only), then check the data, the cluster (``--address``) and the resources,
    and only then create or open the sibling study, say what runs, and run it."""
    out = out or sys.stdout
    study, storage, steps, numbers = plan(settings)
    measurement = study.user_attrs.get(ATTR_MEASUREMENT) or {}
    done = fid.retrains(fid.load_sibling(study.study_name, storage), steps)
    todo = [n for n in numbers if n not in done]
    skipped = [n for n in numbers if n in done]
    outcome = FidelityOutcome(study, storage, steps, numbers, skipped, 0)
    train, val = recorded_data(study)
    scale = int(study.user_attrs.get("scale") or measurement.get("scale") or 4)
    resources = None
    if todo:
        from srnas.evaluators.data import benchmark_set, check_folder

        if train is not None:
            check_folder(train)
        if val is not None:
            benchmark_set(val, scale)
        resources = start_cluster(settings.address, settings.verbose,
                                  cpus_per_trial=settings.cpus_per_trial,
                                  gpus_per_trial_requested=settings.gpus_per_trial,
                                  concurrency=settings.concurrency)
    sibling = open_sibling(study, storage)
    print(f"study {study.study_name!r}: retraining {len(todo)} of {len(numbers)} trials for "
          f"{steps} steps (brief: {fid.study_steps(study)} steps)"
          + (f"; {len(skipped)} already measured: {', '.join(map(str, skipped))}"
             if skipped else "") + f"; results in study {sibling.study_name!r}",
          file=out, flush=True)
    if resources is None:
        return outcome
    from ray import tune

    kind = resources.device_kind
    if measurement.get("device_kind") not in (None, kind):
        print(f"warning: the study was measured on {measurement['device_kind']}, these "
              f"retrains run on {kind}: PSNR does not depend on the device beyond float "
              "rounding, but note it", file=out, flush=True)
    sweep_dead_experiments()
    jobs = jobs_for(study, todo, steps, settings.seed)
    val_every = settings.val_every if settings.val_every is not None else max(steps // 4, 1)
    from srnas.search.live import RetrainView

    view = RetrainView(sibling, steps, out, record_retrain)
    started = time.monotonic()
    run_tuner(retrain_trainable(steps, scale, train, val, val_every, resources.gpus), resources,
              name=f"{study.study_name}-fidelity", folder_prefix=experiment_prefix(),
              verbose=settings.verbose, callbacks=[view],
              param_space={"job": tune.grid_search(jobs)})
    outcome.wall_seconds = time.monotonic() - started
    outcome.ran, outcome.failed = view.completed, view.failed
    outcome.interrupted = view.completed + len(view.failed) < len(jobs)
    return outcome


__all__ = ["FidelityOutcome", "FidelitySettings", "experiment_prefix", "jobs_for", "plan",
           "record_retrain", "recorded_data", "run_fidelity", "sweep_dead_experiments"]
