"""The table of an SR paper for trained networks: PSNR/SSIM on benchmark folders (BasicSR
convention, exactly as ``evaluate`` scores), parameters, FLOPs, latency and memory on this
device at one input (default: the 1280x720-output input of ESC's tables), with a bicubic row.
Latency and memory are taken by eager PyTorch fp32, or by the runtime and precision a search
measured under (``--runtime``, ``--precision``: the network exported, checked against PyTorch
and timed as a trial's is), so a trained front reads under the conditions it was ranked by.

Every network is measured as shipped: weights loaded, the shared kernel's D4 average baked in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from srnas.evaluators.bicubic import bicubic_baseline
from srnas.evaluators.data import ValSet, benchmark_set
from srnas.evaluators.device import device_name, resolve_device, tf32_flags
from srnas.evaluators.flops import measure_complexity
from srnas.evaluators.latency import LatencyResult, measure_latency
from srnas.evaluators.lock import device_lock
from srnas.evaluators.memory import MemoryResult, measure_memory
from srnas.evaluators.train import validate
from srnas.evaluators.trained import Trained, load_network
from srnas.space.complexity import default_input_hw
from srnas.space.errors import ConfigError

BICUBIC = "bicubic"


@dataclass(frozen=True)
class ValFolder:
    """One benchmark folder of the table: its column name, where it is, how many images."""

    name: str
    path: str
    images: int


@dataclass
class BenchRow:
    """One row: a network (or the bicubic baseline, which has scores only)."""

    model: str
    trained: str  # 'N steps', 'untrained', 'unknown' or '-' (bicubic)
    scores: dict[str, tuple[float, float]]  # folder name -> (PSNR, SSIM)
    weights: str | None = None
    steps: int | None = None
    arch_id: str | None = None
    params: int | None = None
    flops: int | None = None
    latency_ms: float | None = None
    latency_iqr_ms: float | None = None
    # Cores other processes kept busy while timing (Linux): a busy machine's figure is suspect.
    latency_foreign_cpu: float | None = None
    memory_mb: float | None = None
    # Under a runtime: the largest |difference| of its output from PyTorch's on the fixed input.
    runtime_check_max_abs_diff: float | None = None


@dataclass
class BenchTable:
    """Rows plus the conditions every figure was measured under."""

    scale: int
    device: str
    threads: int
    dtype: str
    input_hw: tuple[int, int]
    latency: bool
    memory_method: str | None
    folders: list[ValFolder]
    rows: list[BenchRow] = field(default_factory=list)
    tf32: dict[str, bool] | None = None  # CUDA: TF32 allowed for matmuls / cuDNN convolutions
    # What ran the networks for latency and memory (evaluators.runtime) and the runtime's
    # settings as it reported them for the last network (threads, streams, providers).
    runtime: str = "torch"
    precision: str = "fp32"
    runtime_settings: dict[str, Any] = field(default_factory=dict)

    @property
    def output_hw(self) -> tuple[int, int]:
        return self.input_hw[0] * self.scale, self.input_hw[1] * self.scale

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["input_hw"], out["output_hw"] = list(self.input_hw), list(self.output_hw)
        for row in out["rows"]:
            row["scores"] = {k: {"psnr": p, "ssim": s} for k, (p, s) in row["scores"].items()}
        return out


def _folder_names(paths: Sequence[str]) -> list[str]:
    """Column names: the folder's name (Set5), or the path as given when two names collide."""
    names = [Path(p).name or str(p) for p in paths]
    return [n if names.count(n) == 1 else str(p) for n, p in zip(names, paths, strict=True)]


def load_folders(paths: Sequence[str | Path], scale: int) -> list[tuple[ValFolder, ValSet]]:
    """Every benchmark folder's pairs at ``scale``, read before anything is measured (a folder
    without LR files for the scale fails here, in one line)."""
    if not paths:
        raise ConfigError("val", "give at least one benchmark folder")
    loaded = []
    for name, path in zip(_folder_names([str(p) for p in paths]), paths, strict=True):
        if not Path(path).is_dir():
            raise ConfigError("val", "must be an existing folder", str(path))
        pairs = benchmark_set(path, scale)
        loaded.append((ValFolder(name, str(path), len(pairs)), pairs))
    return loaded


def _unique_labels(models: Sequence[Trained]) -> list[str]:
    seen: dict[str, int] = {}
    labels = []
    for m in models:
        seen[m.label] = seen.get(m.label, 0) + 1
        labels.append(m.label if seen[m.label] == 1 else f"{m.label}#{seen[m.label]}")
    return labels


def benchmark(models: Sequence[Trained], val: Sequence[str | Path], device: str = "cpu", *,
              input_hw: tuple[int, int] | None = None, latency: bool = True,
              spec: Any = None) -> BenchTable:
    """Measure every model (one scale for all) on every folder in ``val``; the first row is
    bicubic. ``input_hw`` (default: the LR input of a 1280x720 output) is the input of the
    latency, memory and FLOPs figures; ``latency=False`` skips the timing only. ``spec``
    (evaluators.runtime.RuntimeSpec): the runtime and precision of latency and memory
    (default eager PyTorch fp32); a network it refuses raises RuntimeCheckError."""
    if not models:
        raise ConfigError("models", "give at least one model")
    scales = sorted({m.config.scale for m in models})
    if len(scales) > 1:
        raise ConfigError("scale", "the models of one table must share a scale", scales)
    scale = scales[0]
    dev = resolve_device(device)
    hw = input_hw or default_input_hw(scale)
    folders = load_folders(val, scale)
    # Every weights file is loaded (and checked) before the first, slow measurement.
    networks = [load_network(m) for m in models]

    table = BenchTable(scale=scale, device=device_name(dev), threads=torch.get_num_threads(),
                       dtype="float32", input_hw=(int(hw[0]), int(hw[1])), latency=latency,
                       memory_method=None, folders=[f for f, _ in folders],
                       tf32=tf32_flags() if dev.type == "cuda" else None,
                       runtime=spec.runtime if spec else "torch",
                       precision=spec.precision if spec else "fp32")
    table.rows.append(BenchRow(BICUBIC, "-", {
        f.name: _mean(bicubic_baseline(pairs, scale)) for f, pairs in folders}))
    for label, model, net in zip(_unique_labels(models), models, networks, strict=True):
        # Computing phases take the device's shared lock, so a search's latency measurement on
        # this device never runs beside them (nor ours beside its training: see _speed).
        with device_lock(dev, shared=True):
            row = BenchRow(label, model.budget, {},
                           weights=str(model.weights) if model.weights else None,
                           steps=model.steps, arch_id=model.config.arch_id,
                           **measure_complexity(net, hw))
            placed = net.to(dev)
            for f, pairs in folders:
                row.scores[f.name] = validate(placed, pairs, scale, dev)
        lat, mem, row.runtime_check_max_abs_diff = _speed(placed, hw, dev, latency, spec)
        if lat is not None and spec is not None:
            table.dtype, table.threads, table.runtime_settings = (lat.dtype, lat.threads,
                                                                  dict(lat.settings))
        if lat is not None:
            row.latency_ms, row.latency_iqr_ms = lat.median_ms, lat.iqr_ms
            row.latency_foreign_cpu = lat.foreign_cpu
        row.memory_mb, table.memory_method = mem.peak_mb, mem.method
        table.rows.append(row)
    return table


def _mean(scores: dict[str, float | int]) -> tuple[float, float]:
    return float(scores["psnr"]), float(scores["ssim"])


def _speed(model: torch.nn.Module, hw: tuple[int, int], dev: torch.device, latency: bool,
           spec: Any = None) -> tuple[LatencyResult | None, MemoryResult, float | None]:
    """Latency (unless skipped) under the exclusive device lock, memory under the shared one,
    as a search trial measures them (the memory count is no timing, and other processes do
    not change it). Under a runtime (``spec``): its export, check, timing and memory, and how
    far its output was from PyTorch's."""
    if spec is not None and (spec.runtime, spec.precision) != ("torch", "fp32"):
        done = spec.measure(model, hw, dev)
        return (done.latency if latency else None), done.memory, done.check_max_abs_diff
    timed = measure_latency(model, hw, dev) if latency else None
    with device_lock(dev, shared=True):
        return timed, measure_memory(model, hw, dev), None


__all__ = ["BICUBIC", "BenchRow", "BenchTable", "ValFolder", "benchmark", "load_folders"]
