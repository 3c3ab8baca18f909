"""Which device a trial measures on, and the conditions every figure is recorded with."""

from __future__ import annotations

import ctypes
import os
import platform
import re
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from srnas.space.errors import DeviceError

_DEVICE_RE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def resolve_device(name: str | torch.device) -> torch.device:
    """'cpu', 'cuda' or 'cuda:N' -> a ``torch.device`` that exists on this machine.

    Checked up front so that a bad ``--device`` fails in one line before any training starts.
    'cpu:N' is refused: torch ignores the index, so accepting it would promise an isolation that
    does not exist.
    """
    text = str(name).strip().lower()
    match = _DEVICE_RE.match(text)
    if match is None or (match.group(1) == "cpu" and match.group(2) is not None):
        raise DeviceError("device", "must be 'cpu', 'cuda' or 'cuda:N'", str(name))
    if match.group(1) == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError("device", "CUDA was asked for but no CUDA device is available", str(name))
    index = int(match.group(2)) if match.group(2) is not None else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError("device", f"CUDA index must be below the {count} visible device(s)",
                          str(name))
    return torch.device("cuda", index)


def canonical_device(device: torch.device | str) -> torch.device:
    """``device`` with its CUDA index filled in, so 'cuda' and 'cuda:0' compare equal."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def cpu_model_name() -> str:
    """The CPU's marketing name (/proc/cpuinfo on Linux, else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def device_name(device: torch.device) -> str:
    """A human-readable device identity stored beside every latency and memory figure."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {cpu_model_name()}"


def environment(device: torch.device, dtype: torch.dtype = torch.float32) -> dict[str, object]:
    """Library versions and settings that change latency figures, for the study record."""
    env: dict[str, object] = {
        "device": device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "dtype": str(dtype).removeprefix("torch."),
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
        props = torch.cuda.get_device_properties(device)
        env["capability"] = f"{props.major}.{props.minor}"
        env["total_memory_mb"] = round(props.total_memory / 2**20)
        env["tf32"] = tf32_flags()
    return env


def tf32_flags() -> dict[str, bool]:
    """Whether fp32 matmuls and convolutions may run as TF32 on CUDA: a latency figure with
    TF32 on does not compare with one without (cuDNN allows it for convolutions by default)."""
    return {"matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn": bool(torch.backends.cudnn.allow_tf32)}


# ---- host conditions behind CPU timings --------------------------------------------------------

# glibc returns freed memory to the OS once the top of the heap exceeds a trim threshold that it
# adapts to the largest chunk freed so far. A small model whose activations stay under that
# threshold then page-faults its activations back in on every forward (measured: ~1000 faults
# and +35 % latency for 'tiny' at 64x64 in a fresh process, none after a bigger model had run),
# so its latency depended on what the process did before. Fixed thresholds make it depend on
# nothing. 32 MiB is the largest mmap threshold glibc accepts on 64-bit.
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_malloc_pinned: bool | None = None


def pin_malloc_thresholds() -> bool:
    """Fix glibc's malloc trim/mmap thresholds for this process (idempotent); False elsewhere.

    Process-wide and permanent (glibc has no way back to its adaptive mode): freed memory up to
    ``TRIM_THRESHOLD`` stays in the process instead of going back to the OS, the state a
    long-running inference server reaches anyway. Call it at start-up to train under the same
    allocator behaviour as the measurement.
    """
    global _malloc_pinned
    if _malloc_pinned is None:
        _malloc_pinned = False
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                libc = ctypes.CDLL("libc.so.6")
                _malloc_pinned = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
                    libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
                )
            except (OSError, AttributeError):
                pass
    return _malloc_pinned


@dataclass(frozen=True)
class CpuSample:
    """CPU time of the whole machine (all cores, /proc/stat) and of this process, at an instant."""

    wall_s: float
    machine_busy_s: float | None
    process_s: float


def cpu_sample() -> CpuSample:
    machine: float | None = None
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
        # user nice system idle iowait irq softirq steal: all but idle and iowait are busy;
        # steal (the hypervisor giving our vCPU to someone else) is interference too.
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields
        machine = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        pass
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return CpuSample(time.monotonic(), machine, usage.ru_utime + usage.ru_stime)


def foreign_cpu(start: CpuSample, end: CpuSample) -> float | None:
    """Average number of cores busy with work other than this process between two samples.

    ~0 on an idle machine; 1.0 means another process kept a whole core busy while we timed
    (its figure is then suspect). Resolution ~ one clock tick (10 ms) over the interval.
    """
    if start.machine_busy_s is None or end.machine_busy_s is None:
        return None
    wall = end.wall_s - start.wall_s
    if wall <= 0:
        return None
    other = (end.machine_busy_s - start.machine_busy_s) - (end.process_s - start.process_s)
    return max(0.0, other / wall)
