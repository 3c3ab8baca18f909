"""Batch-1 inference latency, measured the way a deployment engineer would, with its conditions.

Protocol: eval mode, ``torch.inference_mode()``, one fixed seeded input in [0, 1), at least
``warmup`` untimed runs lasting at least ``min_warmup_s``, then at least ``runs`` timed runs
lasting at least ``min_timed_s``; the median is the figure, IQR and CV the spread.

* CUDA: ``cudnn.benchmark`` on (the warm-up pays its algorithm search), each run timed with a
  pair of CUDA events and synchronised, so a run's time is GPU time from launch to completion.
* CPU: ``time.perf_counter`` around each forward (CPU kernels are synchronous), with glibc's
  malloc thresholds pinned (:func:`evaluators.device.pin_malloc_thresholds`; otherwise a small
  model's latency depends on what the process allocated before).

The Python garbage collector is paused during the timed runs (as ``timeit`` does): a collection
pause would otherwise land in a random run. The node-wide device lock is held around the whole
measurement unless ``lock=False`` (for a caller that already holds it, re-entry is free anyway).
The CPU time other processes used meanwhile is recorded (``foreign_cpu``), so a figure taken
beside work that ignores the lock can be recognised afterwards.

Default input sizes:

* CUDA: ESC's protocol, the LR input of a 1280x720 output
  (:func:`space.complexity.default_input_hw`: 180x320 at x4).
* CPU: :func:`cpu_default_input_hw`, the LR input of a 256x256 output (64x64 at x4, 85x85 at x3,
  128x128 at x2). One fixed *output* size keeps scales comparable, as ESC's protocol does; it is
  1/14 of the 1280x720 pixels: one forward of ESC-light on two cores takes ~80 / 130 / 250 ms
  at x4 / x3 / x2 instead of ~0.9 s (x4 at 1280x720), so a trial's 40+ runs stay cheap; and it
  is at least two 32x32 attention windows on a side at every scale, so window padding does not
  dominate the figure.
"""

from __future__ import annotations

import copy
import gc
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from srnas.evaluators.device import (
    canonical_device,
    cpu_sample,
    device_name,
    foreign_cpu,
    pin_malloc_thresholds,
)
from srnas.evaluators.lock import device_lock
from srnas.space.complexity import default_input_hw

CPU_OUTPUT_HW = (256, 256)

# Chosen on 2 cores (benchmarks/bench_latency.py, idle machine): the medians of 5 repeated
# measurements of 'tiny', 'milk-light' and 'esc-light' at x4 vary by a CV of 0.7-1.6 %, and
# one measurement costs a trial 1.6 / 3.7 / 3.2 s.
DEFAULT_WARMUP = 10
DEFAULT_RUNS = 30
# Small models finish 10 warm-up runs in ~0.05 s, before the thread pool and caches settle
# ('tiny' needs ~10 runs *and* ~60 ms), and 30 timed runs in ~0.1 s, a window one burst of
# outside activity can fill. Both phases also run at least this long.
MIN_WARMUP_S = 0.5
MIN_TIMED_S = 1.0
# Slow networks (hundreds of ms a forward on a CPU) reach a stable median long before 10 + 30
# runs: past these times a phase stops at its floor of runs (2 warm-up, 5 timed). A 2 s network
# then costs ~14 s instead of ~80 s, which was most of a heavy trial's first rung in a search;
# fast networks (30 runs inside the time) are measured exactly as before.
MAX_WARMUP_S = 2.0
MAX_TIMED_S = 5.0
MIN_WARMUP_RUNS = 2
MIN_RUNS = 5


def cpu_default_input_hw(scale: int) -> tuple[int, int]:
    """The CPU default LR input: the one that gives a 256x256 output (64x64 at x4)."""
    return default_input_hw(scale, out_hw=CPU_OUTPUT_HW)


def default_latency_input_hw(device: torch.device, scale: int) -> tuple[int, int]:
    """The default input of a latency or memory measurement on ``device``."""
    if device.type == "cuda":
        return default_input_hw(scale)
    return cpu_default_input_hw(scale)


@dataclass(frozen=True)
class LatencyResult:
    """One latency measurement and the conditions it was taken under (times in ms)."""

    median_ms: float
    iqr_ms: float
    cv: float  # stdev / mean of the timed runs
    mean_ms: float
    min_ms: float
    runs: int
    warmup: int
    input_hw: tuple[int, int]
    device: str
    dtype: str
    threads: int
    torch_version: str
    # Cores busy with other processes while timing (Linux; None elsewhere): work that does not
    # take the device lock (another user, a trainer without it) shows up here, not in the spread.
    foreign_cpu: float | None = None
    malloc_pinned: bool = False  # glibc thresholds fixed (see evaluators.device), CPU only
    # What ran the network: 'torch' (eager) or a deployment runtime (evaluators.runtime), its
    # version, and the runtime's own settings as it reports them back (threads, streams,
    # providers, precision hints): ``threads`` above is the count asked of it.
    runtime: str = "torch"
    runtime_version: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["input_hw"] = list(self.input_hw)
        return d


def place_model(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """The model on ``device``/``dtype``: itself when already there, else a moved copy.

    ``nn.Module.to`` works in place; copying keeps a caller's (e.g. a trainer's) model where it was.
    """
    tensors = list(model.parameters()) + list(model.buffers())
    if all(t.device == device and (not t.is_floating_point() or t.dtype == dtype) for t in tensors):
        return model
    return copy.deepcopy(model).to(device=device, dtype=dtype)


def fixed_input(
    input_hw: tuple[int, int],
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> torch.Tensor:
    """The (1, 3, H, W) input of every measurement: seeded on the CPU, identical on any device."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, *input_hw, generator=generator).to(device=device, dtype=dtype)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the block, the caller's train/eval flag restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    previous = torch.get_num_threads()
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads!r}")
    # Only touch the pool when asked for another size: resizing it restarts the worker threads,
    # which the warm-up would then have to absorb.
    change = threads is not None and threads != previous
    if change:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        if change:
            torch.set_num_threads(previous)


def _more(done: int, started: float, floor: int, target: int, min_s: float,
          max_s: float) -> bool:
    """Whether a phase runs once more: up to its floor of runs and its minimum time, then on to
    its target count unless its maximum time has passed."""
    elapsed = time.perf_counter() - started
    return done < floor or elapsed < min_s or (done < target and elapsed < max_s)


def wall_ms(run: Callable[[], object]) -> Callable[[], float]:
    """One run timed by the wall clock (ms): right where the call returns only when the work is
    done (CPU kernels, a runtime that copies its output back to the host)."""

    def timed() -> float:
        start = time.perf_counter()
        run()
        return (time.perf_counter() - start) * 1e3

    return timed


def cuda_event_ms(run: Callable[[], object]) -> Callable[[], float]:
    """One run timed by a pair of CUDA events on the current stream, synchronised: GPU time from
    launch to completion (batch-1 latency is one request, not a pipelined stream)."""

    def timed() -> float:
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)

    return timed


@dataclass(frozen=True)
class Timing:
    """The timed runs of one measurement (ms), how many warm-up runs preceded them, and the
    cores other processes kept busy meanwhile."""

    times: list[float]
    warmup: int
    foreign_cpu: float | None

    def summary(self) -> tuple[float, float, float, float, float]:
        """(median, IQR, CV, mean, min)."""
        q1, median, q3 = statistics.quantiles(self.times, n=4, method="inclusive")
        mean = statistics.fmean(self.times)
        cv = statistics.stdev(self.times) / mean if len(self.times) > 1 and mean > 0 else 0.0
        return median, q3 - q1, cv, mean, min(self.times)


def check_counts(warmup: int, runs: int) -> None:
    if warmup < 0 or runs < 2:
        raise ValueError(f"need warmup >= 0 and runs >= 2, got warmup={warmup}, runs={runs}")


def time_runs(run: Callable[[], object], timed: Callable[[], float], *,
              warmup: int = DEFAULT_WARMUP, runs: int = DEFAULT_RUNS,
              min_warmup_s: float = MIN_WARMUP_S, min_timed_s: float = MIN_TIMED_S,
              settle: Callable[[], None] | None = None) -> Timing:
    """The protocol every latency figure is taken under, whatever runs the network (PyTorch or
    a deployment runtime): ``run`` untimed as the warm-up (at least ``warmup`` runs and
    ``min_warmup_s``, at most ``MAX_WARMUP_S`` past the floor), ``settle`` (e.g. a device
    synchronisation), then ``timed`` (one run, returns ms) at least ``runs`` times and
    ``min_timed_s`` with the garbage collector paused and the foreign CPU time sampled.
    The caller holds the device lock and sets the thread count."""
    check_counts(warmup, runs)
    done, started = 0, time.perf_counter()
    while _more(done, started, min(MIN_WARMUP_RUNS, warmup), warmup,
                min_warmup_s if warmup else 0.0, MAX_WARMUP_S):
        run()
        done += 1
    if settle is not None:
        settle()
    times: list[float] = []
    with _gc_paused():
        before = cpu_sample()
        started = time.perf_counter()
        while _more(len(times), started, min(MIN_RUNS, runs), runs, min_timed_s, MAX_TIMED_S):
            times.append(timed())
        foreign = foreign_cpu(before, cpu_sample())
    return Timing(times, done, foreign)


def latency_result(timing: Timing, input_hw: tuple[int, int], device: torch.device,
                   dtype: str, threads: int, **conditions: Any) -> LatencyResult:
    """A :class:`LatencyResult` from the runs of :func:`time_runs` and their conditions."""
    median, iqr, cv, mean, fastest = timing.summary()
    return LatencyResult(
        median_ms=median, iqr_ms=iqr, cv=cv, mean_ms=mean, min_ms=fastest,
        runs=len(timing.times), warmup=timing.warmup,
        input_hw=(int(input_hw[0]), int(input_hw[1])), device=device_name(device),
        dtype=dtype, threads=threads, torch_version=torch.__version__,
        foreign_cpu=timing.foreign_cpu, **conditions)


def measurement_setup(model: nn.Module, input_hw: tuple[int, int] | None,
                      device: torch.device, dtype: torch.dtype
                      ) -> tuple[nn.Module, torch.Tensor, tuple[int, int]]:
    """The model on the device, the fixed input and its size (default: the device's default
    input for the model's ``.scale``): shared by the latency and memory measurements."""
    if input_hw is None:
        scale = getattr(model, "scale", None)
        if not isinstance(scale, int):
            raise ValueError("input_hw is required for a model without an integer .scale")
        input_hw = default_latency_input_hw(device, scale)
    return place_model(model, device, dtype), fixed_input(input_hw, device, dtype), input_hw


def measure_latency(
    model: nn.Module,
    input_hw: tuple[int, int] | None = None,
    device: torch.device | str = "cpu",
    *,
    warmup: int = DEFAULT_WARMUP,
    runs: int = DEFAULT_RUNS,
    dtype: torch.dtype = torch.float32,
    lock: bool = True,
    lock_timeout_s: float | None = None,
    threads: int | None = None,
    min_warmup_s: float = MIN_WARMUP_S,
    min_timed_s: float = MIN_TIMED_S,
) -> LatencyResult:
    """Time batch-1 inference of ``model`` at ``input_hw`` (default: the device's default input).

    ``threads`` sets torch's intra-op threads for the measurement only (``None``: as they are;
    under Ray that is the trial's CPU count). The model is not modified: it is measured in eval
    mode and its flag restored; it is copied when it must change device or dtype.
    """
    device = canonical_device(device)
    check_counts(warmup, runs)
    placed, x, input_hw = measurement_setup(model, input_hw, device, dtype)
    cuda = device.type == "cuda"
    guard = device_lock(device, lock_timeout_s) if lock else nullcontext()
    cudnn_benchmark = torch.backends.cudnn.benchmark
    with guard, torch_threads(threads) as n_threads, eval_mode(placed), torch.inference_mode():
        try:
            torch.backends.cudnn.benchmark = cuda
            pinned = device.type == "cpu" and pin_malloc_thresholds()

            def run() -> object:
                return placed(x)

            timing = time_runs(run, cuda_event_ms(run) if cuda else wall_ms(run),
                               warmup=warmup, runs=runs, min_warmup_s=min_warmup_s,
                               min_timed_s=min_timed_s,
                               settle=(lambda: torch.cuda.synchronize(device)) if cuda else None)
        finally:
            torch.backends.cudnn.benchmark = cudnn_benchmark
    return latency_result(timing, input_hw, device, str(dtype).removeprefix("torch."),
                          n_threads, malloc_pinned=pinned)
