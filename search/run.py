"""Launch a search: check everything, start (or join) Ray, run the trials, summarise."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

import optuna

from srnas.search import record
from srnas.search.heartbeat import Heartbeat
from srnas.search.schedulers import describe_scheduler, make_scheduler
from srnas.search.seeded import make_sampler
from srnas.search.settings import SearchSettings
from srnas.search.tuner import run_tuner, start_cluster
from srnas.space.contract import ATTR_MEASUREMENT, MEASUREMENT_KEYS, measurement_differences
from srnas.space.errors import ConfigError, SrnasError, StorageError
from srnas.space.presets import get_preset
from srnas.space.searchspace import SearchSpace
from srnas.studies import storage as storage_url
from srnas.studies.heartbeat import heartbeat_settings
from srnas.studies.stale import fail_stale_trials

# Optuna logs every study creation and trial at INFO; the search prints its own live view.
optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass
class SearchOutcome:
    study_name: str
    storage: str
    new_trials: int
    wall_seconds: float
    summary: dict[str, Any]
    study: optuna.Study
    # Tune ends a run on Ctrl-C without raising: the launch ended before its trials did.
    interrupted: bool = False
    finished: int = 0
    requested: int = 0


def check_existing_study(storage: optuna.storages.BaseStorage, settings: SearchSettings) -> bool:
    """True when the study exists; an error if its objectives differ from the requested ones."""
    name = settings.study_name
    if name not in optuna.get_all_study_names(storage):
        return False
    study = optuna.load_study(study_name=name, storage=storage)
    have = list(study.metric_names or [])
    have_dirs = [d.name.lower() for d in study.directions]
    if have != list(settings.objectives) or have_dirs != settings.directions:
        shown = ", ".join(f"{n} {d}" for n, d in zip(have or ["?"] * len(have_dirs), have_dirs,
                                                     strict=False))
        raise ConfigError("objectives", f"study {name!r} already optimises [{shown}]; use "
                          "the same objectives or another --study",
                          ",".join(settings.objectives))
    scale = study.user_attrs.get("scale")
    if scale is not None and scale != settings.scale:
        raise ConfigError("scale", f"study {name!r} searches x{scale} networks; use --scale "
                          f"{scale} or another --study", settings.scale)
    return True


# A measurement setting that differs -> the library argument that sets it (for the message).
_SETTING_ARGUMENT = {"space_id": "space", "train_data": "train", "val_data": "val",
                     "device_kind": "gpus_per_trial"}


def refuse_other_measurement(study: optuna.Study, measurement: dict[str, Any]) -> None:
    """Refuse a launch whose measurement settings differ from those the study recorded at
    creation: its figures would land beside figures they do not compare with."""
    recorded = study.user_attrs.get(ATTR_MEASUREMENT) or {}
    for key, was, now in measurement_differences(recorded, measurement):
        raise ConfigError(
            _SETTING_ARGUMENT.get(key, key),
            f"study {study.study_name!r} was measured with {MEASUREMENT_KEYS[key]} {was!r}, "
            f"this launch would use {now!r}: figures would not compare (keep the study's "
            "setting, or start a new study with --study NAME)", now)


class DefineByRun:
    """Ray's define-by-run space: suggests through the trial (a proxy of Optuna's) and hands the
    trainable the whole config as constants, so the worker never re-samples."""

    def __init__(self, space: SearchSpace, scale: int) -> None:
        self.space, self.scale = space, scale

    def __call__(self, trial: Any) -> dict[str, Any]:
        sample = self.space.sample(trial, self.scale)
        return {"arch": sample.arch.to_dict(), "train": sample.train}


def dry_run(settings: SearchSettings, out: TextIO | None = None) -> int:
    """Sample and build N configs with the chosen sampler (in memory): nothing is trained or
    written."""
    from srnas.space.network import build_model, count_params

    out = out or sys.stdout
    study = optuna.create_study(directions=settings.directions,
                                sampler=make_sampler(settings.sampler, settings.seed))
    for i in range(settings.trials):
        trial = study.ask()
        sample = settings.space.sample(trial, settings.scale)
        n = count_params(build_model(sample.arch))
        print(f"{i + 1:3d}. {sample.arch.arch_id}  {n:>9,} params  {trial.params}", file=out)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return 0


def _enqueue_baselines(study: optuna.Study, settings: SearchSettings) -> list[str]:
    done = {t.user_attrs.get("baseline") for t in study.get_trials(deepcopy=False)
            if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.WAITING)}
    queued = []
    for name in settings.baselines:
        if name in done:
            continue  # a relaunch does not evaluate the same baseline again
        config = get_preset(name, settings.scale)
        study.enqueue_trial(settings.space.params_for(config), user_attrs={"baseline": name})
        queued.append(name)
    return queued


def run_search(settings: SearchSettings, out: TextIO | None = None) -> SearchOutcome:
    """Every check first (space, storage, study, cluster, resources, sampler), then the study is
    opened and written, then Tune runs. A bad input leaves the study untouched."""
    out = out or sys.stdout
    for name in settings.baselines:
        settings.space.params_for(get_preset(name, settings.scale))  # in the space? (fail early)
    target = storage_url.check_for_write(settings.storage_url)
    check_data(settings)
    # Opened once: here when a study may already exist (to check it before Ray starts), else
    # after the cluster checks, so a first launch with bad input creates no file.
    storage = (storage_url.open_for_write(target, retry_s=settings.storage_retry_s)
               if storage_url.exists(target) else None)
    existed = storage is not None and check_existing_study(storage, settings)
    resources = start_cluster(settings.address, settings.verbose,
                              cpus_per_trial=settings.cpus_per_trial,
                              gpus_per_trial_requested=settings.gpus_per_trial,
                              concurrency=settings.concurrency)
    gpus = resources.gpus
    measurement = settings.measurement(resources.device_kind)
    check_measurement(settings, resources.device_kind)  # runtime/precision/target, no trial yet
    if existed:
        refuse_other_measurement(
            optuna.load_study(study_name=settings.study_name, storage=storage), measurement)
    sampler = make_sampler(settings.sampler, settings.seed)
    # The trainable must know the resolved GPU count: it picks its device from it.
    settings = dataclasses.replace(settings, gpus_per_trial=gpus)

    from srnas.search.live import study_summary
    from srnas.search.searcher import SrnasSearcher

    storage = storage or storage_url.open_for_write(target, retry_s=settings.storage_retry_s)
    searcher = SrnasSearcher(
        space=DefineByRun(settings.space, settings.scale), metric=list(settings.objectives),
        mode=settings.tune_modes(), sampler=sampler, study_name=settings.study_name,
        storage=storage, budgets=settings.budgets,
        deadline=None if settings.time_budget_s is None
        else time.time() + settings.time_budget_s)
    study = searcher.study
    lost = fail_stale_trials(settings.study_name, storage)
    if lost:
        print(f"failed {len(lost)} trial(s) left RUNNING by a driver that died (lost heartbeat):"
              f" {', '.join(map(str, lost))}", file=out, flush=True)
    if not existed:
        record.init_study(study, settings.objectives, scale=settings.scale,
                          space=settings.space.to_data(), measurement=measurement)
    record.set_budgets(study, settings.budgets)
    # Fronts are judged against bicubic, measured once under the study's own settings; a new
    # study fixes its hypervolume reference point now (an older one keeps the moving rule).
    from srnas.search import references
    from srnas.studies.frame import study_objectives

    bicubic = references.record_bicubic(study, settings, resources.cpus, gpus, out)
    if not existed:
        references.record_initial_reference(study, study_objectives(study), bicubic,
                                            dict(settings.budgets))
    queued = _enqueue_baselines(study, settings)
    before = len(study.get_trials(deepcopy=False))
    cpus, concurrency = resources.cpus, resources.concurrency
    total = settings.trials + len(queued)  # baselines come on top of --trials
    print(f"study {settings.study_name!r} in {target.masked} "
          f"({'continuing, ' + str(before) + ' trials so far' if existed else 'new'}); "
          f"{total} new trials, {concurrency} at a time, {cpus:g} CPU + {gpus:g} GPU "
          f"each; objectives {', '.join(settings.objectives)}"
          + (f"; baselines {', '.join(queued)}" if queued else ""), file=out, flush=True)
    print(f"measured under: {describe_measurement(measurement)}", file=out, flush=True)
    scheduler = make_scheduler(settings)
    if hasattr(scheduler, "attach_history"):
        attach_history(scheduler, searcher, storage, settings, out)
    note = describe_scheduler(settings)
    if note:
        print(note, file=out, flush=True)
    started = time.monotonic()
    if settings.time_budget_s is not None:
        # The budget is the trials' time: set-up (bicubic, the rung history) comes before it.
        searcher.deadline = time.time() + settings.time_budget_s
    if total:
        interval = heartbeat_settings()[0]
        with outage_is_one_line(target):
            unfinished = _run_trials(settings, resources, storage, searcher, scheduler, study,
                                     total, interval, out)
    else:
        unfinished = 0
    wall = time.monotonic() - started
    references.complete_reference(study, study_objectives(study))
    after = len(study.get_trials(deepcopy=False))
    # Every requested trial ran, or the --time-budget deadline ended proposals: a finished
    # launch. Anything else (Ctrl-C, SIGTERM) is an interrupted one.
    interrupted = bool(total) and (unfinished > 0 or (searcher.finished < total
                                                      and not searcher.deadline_passed))
    return SearchOutcome(settings.study_name, target.url, after - before, wall,
                         study_summary(study), study, interrupted=interrupted,
                         finished=searcher.finished - unfinished, requested=total)


def _run_trials(settings: SearchSettings, resources: Any, storage: Any, searcher: Any,
                scheduler: Any, study: optuna.Study, total: int, interval: int,
                out: TextIO) -> int:
    """The launch's trials on Tune, the driver beating for them; how many it left unfinished."""
    from srnas.search.live import LiveView
    from srnas.search.trainable import search_trainable

    try:
        with Heartbeat(storage, searcher.running_trial_ids, interval):
            run_tuner(
                # The trainable never sees the storage URL: Ray pickles it to every worker
                # and Tune into its experiment state, and the URL may hold a password.
                search_trainable(dataclasses.replace(settings, storage=None)), resources,
                name=settings.study_name, folder_prefix="srnas-ray-",
                verbose=settings.verbose,
                callbacks=[LiveView(study, total, out, searcher)],
                # The searcher's deadline stops proposing (Optuna's ``timeout`` meaning).
                search_alg=searcher, scheduler=scheduler, num_samples=total)
    finally:
        # Tune stops trials (Ctrl-C) without telling the searcher; close them so the study
        # holds no trial RUNNING forever.
        unfinished = searcher.fail_unfinished("stopped before it finished (interrupted)")
    return unfinished


# A database that stays away past --storage-retry-s surfaces as a disconnect, maybe wrapped by
# Tune (its controller runs the searcher's storage calls). Optuna's StorageInternalError alone
# (e.g. a value too long for its column) is no outage: that one keeps its traceback.
def is_outage(error: BaseException) -> bool:
    from srnas.studies.retrying import is_disconnect

    return is_disconnect(error)


@contextlib.contextmanager
def outage_is_one_line(target: Any) -> Iterator[None]:
    """Past the outage bound, one line (no traceback) that says what to do; every trial the
    study recorded before stays, and a relaunch's stale check closes the rest."""
    try:
        yield
    except Exception as e:
        if not is_outage(e):
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise StorageError("storage", "was unreachable for longer than --storage-retry-s "
                           f"({target.redact(first)}); what the study recorded is kept: run "
                           "the same command again to continue", target.masked) from None


def attach_history(scheduler: Any, searcher: Any, storage: optuna.storages.BaseStorage,
                   settings: SearchSettings, out: TextIO) -> None:
    """Rank at each rung against the study's whole history (earlier launches, other drivers),
    not this launch's results alone (see :mod:`srnas.search.rung_history`)."""
    from srnas.search.rung_history import RungHistory

    history = RungHistory(storage, settings.study_name, settings.objectives,
                          scheduler.rungs[:-1])

    def locate(trial_id: str) -> tuple[int, int] | None:
        trial = searcher.trials.get(trial_id)
        return None if trial is None else (trial.number, searcher.storage_ids[trial_id])

    scheduler.attach_history(history, locate)
    sizes = history.sizes()
    if any(sizes.values()):
        print("rung history of the study: " + ", ".join(
            f"{n} result(s) at {r} steps" for r, n in sizes.items()), file=out, flush=True)


def check_measurement(settings: SearchSettings, device_kind: str) -> None:
    """A runtime not installed, a precision the runtime or device lacks, a target no node
    advertises (or whose node lacks the runtime): one line, before any trial starts."""
    from srnas.evaluators.runtime import RuntimeSpec, check_runtime

    if settings.target is None:
        if (settings.runtime, settings.precision) == ("torch", "fp32"):
            return  # evaluate()'s own measurement: nothing to install or to support
        check_runtime(settings.runtime, settings.precision, device_kind)
    else:
        from srnas.search.target import check_target

        check_target(settings.target, RuntimeSpec(settings.runtime, settings.precision))


def check_data(settings: SearchSettings) -> None:
    """Check the training and validation folders in the driver, before Ray starts: an empty
    folder, files that are not images, or no LR images for the scale is a one-line error here,
    not a search whose every trial fails. Training images are checked without decoding their
    pixels (the driver of a DIV2K search must not hold 800 photographs); the validation set,
    small, is loaded as a trial loads it."""
    from srnas.evaluators.data import benchmark_set, check_folder

    if settings.train is not None:
        check_folder(settings.train)
    if settings.val is not None:
        benchmark_set(settings.val, settings.scale)


def describe_measurement(measurement: dict[str, Any]) -> str:
    """One line: under which budget and on which device a study's figures were measured."""
    hw = measurement["input_hw"]
    cap = measurement.get("train_seconds")
    return (f"x{measurement['scale']}, {measurement['steps']} training steps to the last rung"
            + (f" (capped at {cap:g} s)" if cap else "")
            + f" ({measurement['scheduler']}), {measurement['device_kind']}, latency/memory/FLOPs "
            f"at a {hw[0]}x{hw[1]} input, train {measurement['train_data']}, "
            f"val {measurement['val_data']}")


__all__ = ["SearchOutcome", "SrnasError", "dry_run", "run_search"]
