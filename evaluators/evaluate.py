"""``evaluate``: one trial of the search, as a function. Build, measure (cheap figures first),
train briefly, validate; every figure comes back with the conditions it was measured under."""

from __future__ import annotations

import copy
import functools
import platform
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from srnas.evaluators.data import (
    DEFAULT_TRAIN,
    DEFAULT_VAL,
    NamedImage,
    ValSet,
    benchmark_set,
    bundled_images,
    hr_only_set,
)
from srnas.evaluators.device import device_name, environment, resolve_device
from srnas.evaluators.flops import measure_complexity
from srnas.evaluators.latency import default_latency_input_hw, measure_latency
from srnas.evaluators.lock import device_lock, waited_seconds
from srnas.evaluators.memory import measure_memory
from srnas.evaluators.recipe import Recipe
from srnas.evaluators.store import TrainStore, train_store
from srnas.evaluators.store_patches import patch_sampler
from srnas.evaluators.train import check_brief, train, validate
from srnas.evaluators.train_folders import as_folders, one_or_more
from srnas.space.config import ArchConfig
from srnas.space.contract import STATUS_FAILED, STATUS_INFEASIBLE, STATUS_OK
from srnas.space.errors import ConfigError, TrainingError
from srnas.space.network import build_model
from srnas.space.objectives import derived_values, get_objective
from srnas.space.version import srnas_version

# The phase that holds the seconds spent waiting for the device lock.
LOCK_WAIT = "lock_wait"

# The built-in validation photographs are 512x512 and larger; a centre crop keeps a CPU trial's
# validation to a fraction of a second while still covering textured content.
DEFAULT_VAL_CROP = 192


@dataclass(frozen=True)
class DataSpec:
    """Where training and validation images come from (``None``: the built-in photographs).

    ``train``: one folder (a ``str``) or several (a tuple, in order), each listed with its
    sub-folders, or one prepared store; training reads them through a store
    (:func:`~srnas.evaluators.store.train_store`), prepared on first use in the node's cache.
    ``manifest``: the folders' manifest as a search's driver computed it
    (:func:`~srnas.evaluators.store.train_manifest`): a trial then opens the store without
    listing the folders. ``cache``: where automatic stores live (``None``: ``$SRNAS_CACHE``,
    else the platform's cache folder)."""

    train: str | tuple[str, ...] | None = None
    val: str | None = None
    manifest: str | None = None
    cache: str | None = None

    def __post_init__(self) -> None:
        # One folder stays a str (what runs and studies recorded before several were allowed).
        object.__setattr__(self, "train", one_or_more(self.train))

    @property
    def train_folders(self) -> tuple[str, ...]:
        """The training folders (empty: the built-in photographs)."""
        return as_folders(self.train)


@dataclass
class EvalResult:
    arch: dict[str, Any]
    arch_id: str
    params: int
    flops: int
    input_hw: list[int]
    latency_ms: float
    latency_iqr_ms: float
    latency_cv: float
    memory_mb: float
    memory_bytes: int
    memory_method: str
    device: str
    dtype: str
    threads: int
    versions: dict[str, str]
    tf32: dict[str, bool] | None = None  # CUDA only: TF32 allowed for matmul / cuDNN convs
    latency_foreign_cpu: float | None = None  # CPU seconds other processes used while timing
    psnr: float | None = None
    ssim: float | None = None
    steps: int = 0
    train_seconds: float = 0.0
    status: str = STATUS_OK
    infeasible_reason: str | None = None
    failure_reason: str | None = None
    phase_seconds: dict[str, float] = field(default_factory=dict)
    # Objectives computed from the figures above (``Objective.compute``), stored beside them.
    derived: dict[str, float] = field(default_factory=dict)
    # How latency and memory were taken when ``measure`` took them (RuntimeMeasurement
    # .conditions(): runtime, its version and settings, precision, the check against PyTorch,
    # and on a target node measured_node/host/device), stored beside the figures.
    measured_with: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """What the search stores (JSON-serialisable; None values dropped)."""
        data = {k: v for k, v in asdict(self).items()
                if v is not None and k not in ("derived", "measured_with")}
        return {**data, **{k: v for k, v in self.measured_with.items() if v is not None},
                **self.derived}


Measured = Callable[[dict[str, Any]], None]
# Latency and memory taken otherwise than eager PyTorch here (evaluators.runtime.RuntimeSpec
# .measure, search.target.target_measurer): (deployed network, input, device) -> an object with
# .latency (LatencyResult), .memory (MemoryResult) and .conditions() (dict).
Measure = Callable[[torch.nn.Module, tuple[int, int], torch.device], Any]


@functools.cache
def _library_versions() -> dict[str, str]:
    """Versions that cannot change within a process: looked up once, not per trial."""
    import numpy

    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "srnas": srnas_version()}


# Training data: the built-in photographs decoded (ten small images, what a CPU search runs on
# by default: decoding them is as fast as opening a store would be, and needs no cache folder),
# or a store of the training folders (nothing decoded; the pages are the node's page cache).
TrainData = tuple[NamedImage, ...] | TrainStore


@functools.lru_cache(maxsize=4)
def _train_data(folders: tuple[str, ...], manifest: str | None, cache: str | None
                ) -> TrainData:
    if not folders:
        return tuple(bundled_images(DEFAULT_TRAIN))
    return train_store(folders, cache, manifest=manifest, progress=_on_terminal())


def _on_terminal() -> bool:
    """A progress bar only on a terminal (srnas train / evaluate): a Ray trial's stderr is a
    log (and Ray's stand-in for it has no ``isatty``)."""
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):
        return False


@functools.lru_cache(maxsize=8)
def _val_set(folder: str | None, scale: int) -> tuple:
    if folder is None:
        c = DEFAULT_VAL_CROP
        crops = [(n, img[(img.shape[0] - c) // 2:(img.shape[0] + c) // 2,
                         (img.shape[1] - c) // 2:(img.shape[1] + c) // 2])
                 for n, img in bundled_images(DEFAULT_VAL)]
        return tuple(hr_only_set(crops, scale))
    return tuple(benchmark_set(folder, scale))


def load_data(data: DataSpec, scale: int) -> tuple[TrainData, ValSet]:
    """(training data, validation pairs), cached per process (Ray reuses worker processes):
    the training data is the built-in images, decoded, or the training folders' store, opened
    (prepared first if this node has none: once per node, concurrent trials wait for it)."""
    folders = [("train", f) for f in data.train_folders]
    for name, folder in (*folders, ("val", data.val)):
        if folder is not None and not Path(folder).is_dir():
            raise ConfigError(name, "must be an existing folder", folder)
    return (_train_data(data.train_folders, data.manifest, data.cache),
            list(_val_set(data.val, scale)))


def _budget_breach(figures: Mapping[str, float], budgets: Mapping[str, float]) -> str | None:
    for key, limit in budgets.items():
        value = get_objective(key).value(figures)
        if value is not None and value > limit:
            return f"{key} {value:.4g} exceeds the budget {limit:.4g}"
    return None


class PhaseTimer:
    """Wall seconds per phase of an evaluation, net of device-lock waits: a phase's figure is
    the work it did; the time spent waiting for another trial's timing (or for its compute,
    before a timing) is summed under ``lock_wait``. A phase entered twice adds up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started, waited = time.perf_counter(), waited_seconds()
        try:
            yield
        finally:
            wait = waited_seconds() - waited
            work = time.perf_counter() - started - wait
            self.seconds[name] = self.seconds.get(name, 0.0) + work
            self.seconds[LOCK_WAIT] = self.seconds.get(LOCK_WAIT, 0.0) + wait


def evaluate(config: ArchConfig, recipe: Recipe | None = None,
             data: DataSpec | None = None, device: str | torch.device = "cpu", *,
             seconds: float | None = None, val_every: int = 0, val_at: Sequence[int] = (),
             input_hw: tuple[int, int] | None = None,
             budgets: Mapping[str, float] | None = None,
             on_measured: Measured | None = None,
             progress: Callable[[int, float, float | None], None] | None = None,
             train_model: bool = True, measure: Measure | None = None) -> EvalResult:
    """Build ``config``, measure parameters, FLOPs, latency and memory, then (unless a budget is
    already broken) train with ``recipe`` (default :meth:`Recipe.brief`; ``seconds``,
    ``val_every`` and ``val_at`` as :func:`~srnas.evaluators.train.train` takes them) and
    validate.

    FLOPs are fvcore multiply-adds at the latency input (``input_hw``; default: the 1280x720
    output input on CUDA, a 256x256 output on CPU), so they describe the measured workload.
    A non-finite loss gives ``status='failed'`` with the reason and step; the figures measured
    before it are kept. ``measure`` takes latency and memory instead of eager PyTorch (a
    runtime, a target node); what it raises (RuntimeCheckError, TargetLost) propagates.
    """
    recipe = recipe or Recipe.brief()
    check_brief(recipe, seconds, val_every, val_at)  # before anything is measured
    data = data or DataSpec()
    dev = resolve_device(device)
    phases = PhaseTimer()
    hw = input_hw or default_latency_input_hw(dev, config.scale)
    # Every compute phase holds the device's shared lock, the timing phase the exclusive one:
    # no trial's latency is measured while another trial computes on the same device (decoding
    # images and building a network compute too: on a CPU they share the timed cores).
    shared = functools.partial(device_lock, dev, shared=True)
    with phases("data"), shared():
        # Data problems (missing folder, no images, wrong scale) surface before any measurement.
        train_images, val_pairs = load_data(data, config.scale) if train_model else ((), [])
    with phases("build"), shared():
        torch.manual_seed(recipe.seed)
        model = build_model(config)
        # Figures describe the network as deployed: the D4 average of the shared kernel baked
        # in, as a shipped network runs it (training keeps the averaging in every pass).
        deployed = copy.deepcopy(model).deploy()
    with phases("complexity"), shared():
        figures = measure_complexity(deployed, hw)
    params, flops = figures["params"], figures["flops"]
    # Exclusive: no other trial on this device computes (they train under the shared lock).
    # Only the timing needs it: the memory count below is immune to other processes (CPU: live
    # tensor bytes; CUDA: this process's peak), so it runs as compute, under the shared lock,
    # and a first call's one-off cost (~1 s on CPU) never holds another trial back.
    measured_with: dict[str, Any] = {}
    if measure is not None:
        with phases("latency"):  # exports, checks and times under its own device lock
            done = measure(deployed, hw, dev)
        lat, mem, measured_with = done.latency, done.memory, done.conditions()
    else:
        with phases("latency"):
            lat = measure_latency(deployed, hw, dev)  # takes the exclusive lock itself
        with phases("memory"), shared():
            mem = measure_memory(deployed, hw, dev)
    del deployed

    # Only versions here: device, dtype and threads are fields of their own.
    env = environment(dev)
    versions = {**_library_versions(),
                **{k: str(env[k]) for k in ("cuda", "cudnn", "capability") if k in env}}
    result = EvalResult(
        arch=config.to_dict(), arch_id=config.arch_id, params=params, flops=flops,
        input_hw=list(hw), latency_ms=lat.median_ms, latency_iqr_ms=lat.iqr_ms,
        latency_cv=lat.cv, memory_mb=mem.peak_mb, memory_bytes=mem.peak_bytes,
        memory_method=mem.method, device=device_name(dev), dtype=lat.dtype,
        threads=lat.threads, latency_foreign_cpu=lat.foreign_cpu,
        versions=versions, tf32=env.get("tf32"),  # type: ignore[arg-type]
        phase_seconds=phases.seconds, measured_with=measured_with,
    )
    # Every objective the registry computes from these figures, then the budgets on them.
    result.derived = derived_values(result.to_dict())
    breach = _budget_breach(result.to_dict(), budgets or {})
    if on_measured is not None:
        on_measured(result.to_dict())
    if breach is not None:
        result.status, result.infeasible_reason = STATUS_INFEASIBLE, breach
        return result
    if not train_model:
        return result

    with phases("data"), shared():
        sampler = patch_sampler(train_images, config.scale, recipe.patch_size,
                                recipe.batch_size, recipe.seed)
    try:
        with phases("train"):
            outcome = train(model, sampler.next_batch, recipe, dev, seconds=seconds,
                            val_every=val_every, val_at=val_at, val_pairs=val_pairs,
                            scale=config.scale, progress=progress, step_guard=shared)
    except TrainingError as exc:
        result.status, result.failure_reason = STATUS_FAILED, f"{exc.reason} at step {exc.step}"
        result.steps = exc.step
        return result
    result.steps, result.train_seconds = outcome.steps, outcome.seconds
    with phases("validate"), shared():
        result.psnr, result.ssim = validate(model, val_pairs, config.scale, dev)
    result.derived = derived_values(result.to_dict())  # those that need the trained figures
    return result
