"""Deployment runtimes for the latency and memory figures: what runs the network on the machine
it ships to.

``torch`` is eager PyTorch (:func:`evaluators.latency.measure_latency`, the default). Every other
runtime times the deployed network exported exactly as ``srnas export --onnx`` exports it
(:func:`evaluators.deploy.export_onnx`: the same graph, opset and dynamic sides), after checking
its output against PyTorch's on the fixed input of the measurement: a file the runtime cannot
load or run, or an output that differs by more than the precision's tolerance, is a
:class:`RuntimeCheckError` (the evaluation fails with that reason; nothing is timed). Timing
follows the protocol of every latency figure (:func:`evaluators.latency.time_runs`: warm-up,
median, IQR, CV, foreign CPU time) under the device lock, with the runtime's own thread setting
(``threads``; default: torch's thread count, i.e. the trial's CPUs under Ray) and what the
runtime reports back about it recorded in ``LatencyResult.settings``.

The registry: runtime -> the devices it runs on, the precisions it supports there, its thread
knob, how memory is reported, the pip extra that installs it. A runtime that is not installed is
one line naming that extra; an unsupported precision or device is one line naming both.

Memory: TensorRT reports an engine's activation memory, so its figure is the runtime's own.
ONNX Runtime and OpenVINO report none for CPU inference; their ``memory`` is a documented proxy,
the peak of live tensors of the same deployed network under PyTorch at the same input and
precision (:func:`evaluators.memory.measure_memory`), and its ``method`` says so
(``proxy:torch-cpu-live-tensors``), so it is never read as the runtime's own figure.
"""

from __future__ import annotations

import copy
import importlib
import tempfile
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from srnas.evaluators.device import canonical_device, pin_malloc_thresholds
from srnas.evaluators.latency import (
    DEFAULT_RUNS,
    DEFAULT_WARMUP,
    MIN_TIMED_S,
    MIN_WARMUP_S,
    LatencyResult,
    check_counts,
    cuda_event_ms,
    default_latency_input_hw,
    fixed_input,
    latency_result,
    measure_latency,
    time_runs,
    wall_ms,
)
from srnas.evaluators.lock import device_lock
from srnas.evaluators.memory import MemoryResult, measure_memory
from srnas.evaluators.runtime_names import PRECISIONS, RUNTIME_NAMES
from srnas.space.errors import ConfigError, SrnasError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Largest |runtime - PyTorch fp32| accepted on the fixed input in [0, 1). fp32: export's own
# tolerance. Reduced precisions: 16-bit floats carry 3 (bf16: 2) significant digits and the
# error grows with depth; these bounds pass every default-space network measured here
# (OpenVINO bf16 on this CPU: ~1e-2) and still catch a wrong graph (errors of order 0.1-1).
TOLERANCE = {"fp32": 1e-4, "fp16": 3e-2, "bf16": 1e-1}
PROXY_PREFIX = "proxy:"


class RuntimeUnavailable(ConfigError):
    """A runtime whose package is not installed (the rule names the pip extra)."""


class RuntimeCheckError(SrnasError):
    """A network the runtime cannot load or run, or whose output disagrees with PyTorch's: the
    evaluation of that network fails with this reason (it is not a user mistake)."""


class Session(Protocol):
    """A network loaded by a runtime, bound to the fixed input of the measurement."""

    settings: dict[str, Any]  # the runtime's own report of its settings (threads, streams...)
    cuda: bool  # time with CUDA events (the run is asynchronous) instead of the wall clock

    def output(self) -> np.ndarray: ...  # one run, output on the host (the check)

    def run(self) -> object: ...  # one run as timed (output left where the runtime puts it)

    def memory(self) -> tuple[int, str] | None: ...  # (peak bytes, method) if it reports one


class Backend(Protocol):
    def version(self) -> str: ...

    def precisions(self, device: torch.device) -> tuple[str, ...]: ...

    def load(self, path: Path, x: np.ndarray, device: torch.device, precision: str,
             threads: int) -> Session: ...


@dataclass(frozen=True)
class Runtime:
    """One entry of the registry."""

    name: str
    backend: str | None  # module under srnas.evaluators (None: eager PyTorch)
    package: str  # the import that must succeed
    extra: str | None  # ``pip install srnas[extra]`` installs it (None: a core dependency)
    devices: tuple[str, ...]
    threads: str  # the runtime's thread knob
    memory: str  # how its memory figure is obtained
    notes: str = ""

    def load_backend(self) -> Backend:
        try:
            importlib.import_module(self.package)
        except ImportError:
            how = (f"pip install srnas[{self.extra}]" if self.extra
                   else f"pip install {self.package}")
            raise RuntimeUnavailable("runtime", f"{self.name} is not installed: {how}",
                                     self.name) from None
        return importlib.import_module(f"srnas.evaluators.{self.backend}")  # type: ignore[return-value]


RUNTIMES: dict[str, Runtime] = {r.name: r for r in (
    Runtime("torch", None, "torch", None, ("cpu", "cuda"),
            "torch.set_num_threads", "cpu-live-tensors / cuda-max-allocated (PyTorch's own)"),
    Runtime("onnxruntime", "runtime_onnx", "onnxruntime", None, ("cpu", "cuda"),
            "SessionOptions.intra_op_num_threads (inter-op 1, sequential)",
            "proxy: PyTorch live tensors of the same network (ONNX Runtime reports none)",
            "CUDA needs onnxruntime-gpu instead of onnxruntime (never both installed)"),
    Runtime("openvino", "runtime_openvino", "openvino", "openvino", ("cpu",),
            "INFERENCE_NUM_THREADS (1 stream, LATENCY hint)",
            "proxy: PyTorch live tensors of the same network (OpenVINO reports none)"),
    Runtime("tensorrt", "runtime_tensorrt", "tensorrt", "tensorrt", ("cuda",),
            "none (GPU); the host thread count is recorded",
            "engine device memory + engine bytes (TensorRT's own)"),
)}


assert tuple(RUNTIMES) == RUNTIME_NAMES  # one list of names, the flags' and the registry's


def torch_precisions(device: torch.device) -> tuple[str, ...]:
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return ()
        return ("fp32", "fp16", "bf16") if torch.cuda.is_bf16_supported() else ("fp32", "fp16")
    # fp16 convolutions on a CPU are emulated (slower than fp32): no deployment runs them.
    return ("fp32", "bf16")


def get_runtime(name: str) -> Runtime:
    try:
        return RUNTIMES[name]
    except (KeyError, TypeError):
        raise ConfigError("runtime", f"must be one of {', '.join(RUNTIMES)}", name) from None


def supported_precisions(runtime: str, device: torch.device | str) -> tuple[str, ...]:
    """The precisions ``runtime`` runs at on ``device`` (raises if it is not installed)."""
    entry = get_runtime(runtime)
    device = torch.device(device)
    if device.type not in entry.devices:
        return ()
    if entry.backend is None:
        return torch_precisions(device)
    return entry.load_backend().precisions(device)


def check_runtime(runtime: str, precision: str, device: torch.device | str) -> Runtime:
    """Refuse, in one line each, an unknown runtime or precision, a runtime not installed, a
    device the runtime does not run on, or a precision it lacks there."""
    entry = get_runtime(runtime)
    if precision not in PRECISIONS:
        raise ConfigError("precision", f"must be one of {', '.join(PRECISIONS)}", precision)
    device = torch.device(device)
    if device.type not in entry.devices:
        raise ConfigError("runtime", f"{runtime} runs on {' or '.join(entry.devices)}, not "
                          f"on the {device.type} device", runtime)
    available = supported_precisions(runtime, device)
    if precision not in available:
        lacks = (f"{runtime} on {device.type} supports {', '.join(available)} only"
                 if available else f"{runtime} on {device.type} has no usable precision here")
        raise ConfigError("precision", lacks, precision)
    return entry


@dataclass(frozen=True)
class RuntimeMeasurement:
    """Latency and memory of one network under one runtime, and how the runtime's output
    compared with PyTorch's before it was timed."""

    latency: LatencyResult
    memory: MemoryResult
    runtime: str
    precision: str
    check_max_abs_diff: float | None  # None for torch (it is the reference)
    tolerance: float | None
    export_seconds: float | None
    # Where it was measured when not in the calling process (search.target: measured_node,
    # measured_host, measured_device, target, measure_seconds ...).
    where: dict[str, Any] = field(default_factory=dict)

    @property
    def memory_is_proxy(self) -> bool:
        return self.memory.method.startswith(PROXY_PREFIX)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["latency"], d["memory"] = self.latency.to_dict(), self.memory.to_dict()
        return d

    def conditions(self) -> dict[str, Any]:
        """How the figures were taken, beside the figures a trial records: the runtime, its
        version and settings, the precision, the check against PyTorch, where."""
        lat = self.latency
        return {"runtime": self.runtime, "runtime_version": lat.runtime_version,
                "precision": self.precision, "runtime_settings": dict(lat.settings),
                "runtime_check_max_abs_diff": self.check_max_abs_diff, **self.where}

    def fields(self) -> dict[str, Any]:
        """The flat fields a trial records (EvalResult's names plus :meth:`conditions`)."""
        lat = self.latency
        return {
            "latency_ms": lat.median_ms, "latency_iqr_ms": lat.iqr_ms, "latency_cv": lat.cv,
            "latency_foreign_cpu": lat.foreign_cpu, "memory_mb": self.memory.peak_mb,
            "memory_bytes": self.memory.peak_bytes, "memory_method": self.memory.method,
            "device": lat.device, "dtype": lat.dtype, "threads": lat.threads,
            **self.conditions(),
        }


def _deployed(model: torch.nn.Module) -> torch.nn.Module:
    net = copy.deepcopy(model).cpu()
    deploy = getattr(net, "deploy", None)
    return (deploy() if callable(deploy) else net).eval()


def _failure(runtime: str, what: str, exc: BaseException) -> RuntimeCheckError:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0][:300] if str(exc) else type(exc).__name__
    return RuntimeCheckError("runtime", f"{runtime} {what} ({text})", runtime)


def _export(model: torch.nn.Module, path: Path) -> float:
    import time

    from srnas.evaluators.deploy import export_onnx

    started = time.perf_counter()
    export_onnx(model, path)  # type: ignore[arg-type]
    return time.perf_counter() - started


def compare_output(runtime: str, got: np.ndarray, expected: np.ndarray, precision: str
                   ) -> float:
    """Largest |runtime - PyTorch|; a wrong shape or one beyond the tolerance raises."""
    tolerance = TOLERANCE[precision]
    if got.shape != expected.shape:
        raise RuntimeCheckError("runtime", f"{runtime} returned shape {tuple(got.shape)}, "
                                f"PyTorch {tuple(expected.shape)}", runtime)
    diff = float(np.abs(got.astype(np.float64) - expected.astype(np.float64)).max())
    if not diff <= tolerance:  # NaN fails too
        raise RuntimeCheckError("runtime", f"{runtime} {precision} differs from PyTorch by "
                                f"{diff:.3g} on the fixed input (tolerance {tolerance:g})",
                                runtime)
    return diff


def measure_runtime(
    model: torch.nn.Module,
    input_hw: tuple[int, int] | None = None,
    device: torch.device | str = "cpu",
    *,
    runtime: str = "torch",
    precision: str = "fp32",
    threads: int | None = None,
    warmup: int = DEFAULT_WARMUP,
    runs: int = DEFAULT_RUNS,
    min_warmup_s: float = MIN_WARMUP_S,
    min_timed_s: float = MIN_TIMED_S,
    lock: bool = True,
    lock_timeout_s: float | None = None,
    onnx_path: str | Path | None = None,
) -> RuntimeMeasurement:
    """Latency and memory of ``model`` (an SRNet; measured deployed, as shipped) under
    ``runtime`` at ``precision`` on ``device``. ``onnx_path``: a file already exported by
    :func:`evaluators.deploy.export_onnx` from this network (skips the export)."""
    device = canonical_device(device)
    entry = check_runtime(runtime, precision, device)
    check_counts(warmup, runs)
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads!r}")
    if input_hw is None:
        scale = getattr(model, "scale", None)
        if not isinstance(scale, int):
            raise ValueError("input_hw is required for a model without an integer .scale")
        input_hw = default_latency_input_hw(device, scale)
    dtype = DTYPES[precision]
    net = _deployed(model)
    timing = dict(warmup=warmup, runs=runs, min_warmup_s=min_warmup_s, min_timed_s=min_timed_s)
    if entry.backend is None:
        lat = measure_latency(net, input_hw, device, dtype=dtype, lock=lock,
                              lock_timeout_s=lock_timeout_s, threads=threads, **timing)
        lat = replace(lat, runtime_version=torch.__version__,
                      settings={"torch.get_num_threads": lat.threads})
        return RuntimeMeasurement(lat, measure_memory(net, input_hw, device, dtype=dtype),
                                  runtime, precision, None, None, None)

    backend = entry.load_backend()
    n_threads = threads or torch.get_num_threads()
    x = fixed_input(input_hw, torch.device("cpu")).numpy()
    with torch.inference_mode():
        expected = net(torch.from_numpy(x)).numpy()
    with tempfile.TemporaryDirectory(prefix="srnas-runtime-") as tmp:
        path = Path(onnx_path) if onnx_path is not None else Path(tmp) / "network.onnx"
        export_s = None
        if onnx_path is None:
            try:
                export_s = _export(net, path)
            except Exception as exc:  # the exporter's failure is this network's, not a bug here
                raise _failure(runtime, "cannot be measured: the ONNX export failed", exc) from None
        try:
            session = backend.load(path, x, device, precision, n_threads)
        except RuntimeCheckError:
            raise
        except Exception as exc:  # the runtime's own errors: it refuses this graph
            raise _failure(runtime, "cannot load the exported network", exc) from None
        try:
            got = session.output()
        except Exception as exc:
            raise _failure(runtime, "cannot run the exported network", exc) from None
        diff = compare_output(runtime, got, expected, precision)
        guard = device_lock(device, lock_timeout_s) if lock else nullcontext()
        with guard:
            pinned = device.type == "cpu" and pin_malloc_thresholds()
            timer: Callable[[Callable[[], object]], Callable[[], float]] = (
                cuda_event_ms if session.cuda else wall_ms)
            runs_ = time_runs(session.run, timer(session.run), **timing,
                              settle=torch.cuda.synchronize if session.cuda else None)
        reported = session.memory()
    lat = latency_result(runs_, input_hw, device, str(dtype).removeprefix("torch."), n_threads,
                         malloc_pinned=pinned, runtime=runtime,
                         runtime_version=backend.version(), settings=session.settings)
    if reported is not None:
        peak, method = reported
        mem = MemoryResult(peak, peak / 2**20, 0, method, lat.input_hw, lat.device, lat.dtype)
    else:
        mem = proxy_memory(net, input_hw, device, dtype)
    return RuntimeMeasurement(lat, mem, runtime, precision, diff, TOLERANCE[precision], export_s)


def proxy_memory(net: torch.nn.Module, input_hw: tuple[int, int], device: torch.device,
                 dtype: torch.dtype) -> MemoryResult:
    """PyTorch's peak of live tensors for the same network, input and precision, labelled as
    a proxy (the runtime reports no memory of its own)."""
    mem = measure_memory(net, input_hw, device, dtype=dtype)
    return replace(mem, method=PROXY_PREFIX + "torch-" + mem.method)


@dataclass(frozen=True)
class RuntimeSpec:
    """The measurement settings a study or command carries (picklable: Ray ships it)."""

    runtime: str = "torch"
    precision: str = "fp32"
    threads: int | None = None
    options: dict[str, Any] = field(default_factory=dict)  # warm-up/run counts, lock timeout

    def measure(self, model: torch.nn.Module, input_hw: tuple[int, int] | None,
                device: torch.device | str) -> RuntimeMeasurement:
        return measure_runtime(model, input_hw, device, runtime=self.runtime,
                               precision=self.precision, threads=self.threads, **self.options)


__all__ = ["DTYPES", "PRECISIONS", "RUNTIMES", "TOLERANCE", "Runtime", "RuntimeCheckError",
           "RuntimeMeasurement", "RuntimeSpec", "RuntimeUnavailable", "check_runtime",
           "compare_output", "get_runtime", "measure_runtime", "proxy_memory",
           "supported_precisions"]
