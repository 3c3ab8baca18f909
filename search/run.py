"""Launch a search: check everything, start (or join) Ray, run the trials, summarise."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, TextIO

import optuna

from srnas.search import record
from srnas.search.heartbeat import Heartbeat
from srnas.search.samplers import make_sampler
from srnas.search.settings import SearchSettings
from srnas.space.contract import ATTR_MEASUREMENT, MEASUREMENT_KEYS, measurement_differences
from srnas.space.errors import ConfigError, SrnasError
from srnas.space.presets import get_preset
from srnas.space.searchspace import SearchSpace
from srnas.studies import storage as storage_url
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


def check_comparable(study: optuna.Study, measurement: dict[str, Any]) -> None:
    """Refuse a launch whose measurement settings differ from those the study recorded at
    creation: its figures would land beside figures they do not compare with."""
    recorded = study.user_attrs.get(ATTR_MEASUREMENT) or {}
    for key, was, now in measurement_differences(recorded, measurement):
        raise ConfigError(
            _SETTING_ARGUMENT.get(key, key),
            f"study {study.study_name!r} was measured with {MEASUREMENT_KEYS[key]} {was!r}, "
            f"this launch would use {now!r}: figures would not compare (keep the study's "
            "setting, or start a new study with --study NAME)", now)


def _check_address(address: str) -> None:
    """Fail in seconds, not minutes, when a host:port cluster address does not answer.

    ``auto`` is Ray's: ``$RAY_ADDRESS``, else the cluster ``ray start`` started last on this
    machine. Ray Client addresses (``ray://``) are refused: they need ``ray[client]``, and
    Ray's documentation warns that Ray Client does not work as expected for Ray Tune; the
    driver belongs on the cluster (run ``srnas search`` on the head node).
    """
    if address in ("auto", "local"):
        return
    if address.startswith("ray://"):
        raise ConfigError("address", "Ray Client (ray://) is not supported for Ray Tune: run "
                          "srnas search on a node of the cluster (e.g. the head) with --address "
                          "auto or host:port", address)
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError("address", "must be host:port (the head node's GCS address, as "
                          "given to ray start --address) or auto", address)
    try:
        with socket.create_connection((host, int(port)), timeout=5) as connection:
            speaks_grpc = _answers_http2(connection)
    except OSError as exc:
        raise ConfigError("address", f"no Ray cluster answers there ({exc.strerror or exc})",
                          address) from None
    if not speaks_grpc:
        # ray.init would retry such an address for a minute before failing.
        raise ConfigError("address", "something answers there, but not a Ray cluster (no "
                          "gRPC/HTTP2 server: give the head node's GCS port, 6379 by "
                          "default)", address)


# The HTTP/2 connection preface and an empty SETTINGS frame (RFC 9113 §3.4, §6.5).
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _answers_http2(connection: socket.socket, timeout: float = 3.0) -> bool:
    """Ray's GCS is a gRPC server: to an HTTP/2 preface it answers with a SETTINGS frame
    (frame type 4 in the fourth byte of its first frame header)."""
    connection.settimeout(timeout)
    try:
        connection.sendall(_HTTP2_PREFACE)
        header = b""
        while len(header) < 9:
            chunk = connection.recv(9 - len(header))
            if not chunk:
                return False
            header += chunk
    except OSError:
        return False
    return header[3] == 4


def quiet_tune() -> None:
    """Tune's own progress tables and its per-trial CSV/JSON/TensorBoard loggers: the study
    already holds every result, so they only cost time and clutter (set before the Tuner)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def start_ray(settings: SearchSettings) -> None:
    import ray

    quiet_tune()
    if ray.is_initialized():
        # In-process use (a notebook, a test): keep the Ray this process already has, unless
        # another cluster was asked for by address.
        wanted = settings.address
        if not wanted or wanted == "auto" or \
                ray.get_runtime_context().gcs_address == wanted:
            return
        _check_address(wanted)
        ray.shutdown()
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.INFO if settings.verbose else logging.ERROR,
        "log_to_driver": settings.verbose,
        "configure_logging": True,
        # Trials share a node's cores: busy-waiting OpenMP threads of one trial would slow
        # another's forward pass by an order of magnitude (measured: 45x on 2 cores).
        "runtime_env": {"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}},
    }
    # No --address: $RAY_ADDRESS when set, else a new local instance. (Ray's own default,
    # address=None, would silently join a cluster that `ray start` left on this machine.)
    env_address = os.environ.get("RAY_ADDRESS") or None
    address = settings.address or env_address
    if address:
        # Ray reads $RAY_ADDRESS for "auto" too: check what it will really join.
        _check_address(env_address if address == "auto" and env_address else address)
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ray.exceptions.AuthenticationError) as exc:
            if _refused_token(exc):
                # Ray 2.60 turns token authentication on for a head that found a token
                # (~/.ray/auth_token, left by any earlier local Ray), but a driver given an
                # explicit address never turns it on by itself.
                raise ConfigError("address", "the Ray cluster refused this process's token: "
                                  "set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN to the cluster's "
                                  "token", address) from None
            raise ConfigError("address", f"cannot join the Ray cluster: "
                              f"{str(exc).strip().splitlines()[0]}", address) from None
    else:
        ray.init(address="local", **kwargs)


def _refused_token(exc: BaseException | None) -> bool:
    """Whether Ray's token authentication is behind a failed ``ray.init`` (Ray wraps it in a
    ConnectionError around a RuntimeError)."""
    import ray

    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, ray.exceptions.AuthenticationError) or "InvalidAuthToken" in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def gpus_per_trial(settings: SearchSettings) -> float:
    """GPUs each trial asks Ray for: 1 by default where a node has one (one trial per GPU:
    latency on a shared GPU lies), else 0. A trial runs on one node, so the largest node's
    GPUs bound it (a request no node can meet would wait forever); Ray gives a trial a
    fraction of one GPU or whole GPUs."""
    import ray

    requested = settings.gpus_per_trial
    largest = max((float(n.get("Resources", {}).get("GPU", 0.0)) for n in ray.nodes()
                   if n.get("Alive")), default=0.0)
    if requested is None:
        return 1.0 if largest >= 1 else 0.0
    if requested > largest:
        total = float(ray.cluster_resources().get("GPU", 0))
        raise ConfigError("gpus_per_trial", f"must not exceed the {largest:g} GPU(s) Ray sees "
                          f"on one node ({total:g} in the cluster)", requested)
    if requested > 1 and not float(requested).is_integer():
        raise ConfigError("gpus_per_trial", "above 1 must be a whole number (Ray gives a "
                          "trial a fraction of one GPU or whole GPUs)", requested)
    return requested


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
    storage = storage_url.open_for_write(target) if storage_url.exists(target) else None
    existed = storage is not None and check_existing_study(storage, settings)
    start_ray(settings)
    gpus = gpus_per_trial(settings)
    check_cpus_per_trial(settings.cpus_per_trial)
    measurement = settings.measurement("cuda" if gpus > 0 else "cpu")
    if existed:
        check_comparable(optuna.load_study(study_name=settings.study_name, storage=storage),
                         measurement)
    sampler = make_sampler(settings.sampler, settings.seed)
    # The trainable must know the resolved GPU count: it picks its device from it.
    settings = dataclasses.replace(settings, gpus_per_trial=gpus)

    from ray import tune

    from srnas.search.live import LiveView, study_summary
    from srnas.search.scheduler import MOASHAScheduler
    from srnas.search.searcher import SrnasSearcher
    from srnas.search.trainable import make_trainable

    storage = storage or storage_url.open_for_write(target)
    searcher = SrnasSearcher(
        space=DefineByRun(settings.space, settings.scale), metric=list(settings.objectives),
        mode=settings.tune_modes(), sampler=sampler, study_name=settings.study_name,
        storage=storage, budgets=settings.budgets,
        deadline=None if settings.time_budget_s is None
        else time.time() + settings.time_budget_s)
    study = searcher.study
    lost = fail_stale_trials(study)
    if lost:
        print(f"failed {len(lost)} trial(s) left RUNNING by a driver that died (lost heartbeat):"
              f" {', '.join(map(str, lost))}", file=out, flush=True)
    if not existed:
        record.init_study(study, settings.objectives, scale=settings.scale,
                          space=settings.space.to_data(), measurement=measurement)
    record.set_budgets(study, settings.budgets)
    queued = _enqueue_baselines(study, settings)
    before = len(study.get_trials(deepcopy=False))
    cpus = settings.cpus_per_trial
    concurrency = settings.concurrency or _default_concurrency(cpus, gpus)
    total = settings.trials + len(queued)  # baselines come on top of --trials
    print(f"study {settings.study_name!r} in {target.masked} "
          f"({'continuing, ' + str(before) + ' trials so far' if existed else 'new'}); "
          f"{total} new trials, {concurrency} at a time, {cpus:g} CPU + {gpus:g} GPU "
          f"each; objectives {', '.join(settings.objectives)}"
          + (f"; baselines {', '.join(queued)}" if queued else ""), file=out, flush=True)
    print(f"measured under: {describe_measurement(measurement)}", file=out, flush=True)
    scheduler = None
    if settings.scheduler == "mo-asha":
        scheduler = MOASHAScheduler(settings.objectives, settings.tune_modes(), settings.rungs,
                                    settings.eta)
        print(f"mo-asha: rungs at {', '.join(map(str, settings.rungs))} steps; at each rung a "
              f"trial continues if it is in the best 1/{settings.eta} so far (by non-dominated "
              "sorting), else it is stopped (PRUNED)", file=out, flush=True)
    started = time.monotonic()
    if total:
        experiment = tempfile.mkdtemp(prefix="srnas-ray-")
        tuner = tune.Tuner(
            # The trainable never sees the storage URL: Ray pickles it to every worker and Tune
            # into its experiment state, and the URL may hold a password.
            tune.with_resources(make_trainable(dataclasses.replace(settings, storage=None)),
                                {"cpu": cpus, "gpu": gpus}),
            # No time_budget_s: Tune's stops running trials and throws their compute away;
            # the searcher's deadline stops proposing instead (Optuna's ``timeout`` meaning).
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                        num_samples=total,
                                        max_concurrent_trials=concurrency,
                                        reuse_actors=True),
            run_config=tune.RunConfig(
                name=settings.study_name,
                storage_path=experiment,
                verbose=1 if settings.verbose else 0,
                callbacks=[LiveView(study, total, out, searcher)],
                log_to_file=True,
            ),
        )
        quiet_tune_errors(settings.verbose)
        interval = storage_url.heartbeat_settings()[0]
        try:
            with Heartbeat(storage, searcher.running_trial_ids, interval):
                tuner.fit()
        finally:
            # Tune's experiment state is a by-product (the study is in SQL): nothing stays on
            # disk after the launch.
            shutil.rmtree(experiment, ignore_errors=True)
            # Tune stops trials (Ctrl-C) without telling the searcher; close them so the study
            # holds no trial RUNNING forever.
            unfinished = searcher.fail_unfinished("stopped before it finished (interrupted)")
    else:
        unfinished = 0
    wall = time.monotonic() - started
    after = len(study.get_trials(deepcopy=False))
    # Every requested trial ran, or the --time-budget deadline ended proposals: a finished
    # launch. Anything else (Ctrl-C, SIGTERM) is an interrupted one.
    interrupted = bool(total) and (unfinished > 0 or (searcher.finished < total
                                                      and not searcher.deadline_passed))
    return SearchOutcome(settings.study_name, target.url, after - before, wall,
                         study_summary(study), study, interrupted=interrupted,
                         finished=searcher.finished - unfinished, requested=total)


def quiet_tune_errors(verbose: bool) -> None:
    """Tune logs a failed trial's whole traceback at ERROR; the live view already prints the
    reason in one line, and the traceback stays in Ray's logs (``--verbose`` shows it here)."""
    level = logging.INFO if verbose else logging.CRITICAL
    for name in ("ray.tune", "ray.air", "ray.train"):
        logging.getLogger(name).setLevel(level)


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


def check_cpus_per_trial(cpus: float) -> None:
    """A trial asking for more CPUs than any node has would wait forever."""
    import ray

    largest = max((n.get("Resources", {}).get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")),
                  default=0.0)
    if cpus > largest:
        raise ConfigError("cpus_per_trial", f"must not exceed the largest node's {largest:g} "
                          "CPUs", cpus)


def _default_concurrency(cpus_per_trial: float, gpus: float) -> int:
    import ray

    res = ray.cluster_resources()
    by_cpu = int(res.get("CPU", 1) // cpus_per_trial)
    by_gpu = int(res.get("GPU", 0) // gpus) if gpus > 0 else by_cpu
    return max(1, min(by_cpu, by_gpu))


__all__ = ["SearchOutcome", "SrnasError", "dry_run", "run_search"]
