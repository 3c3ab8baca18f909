"""evaluators: measure one network the way a trial does -- parameters, FLOPs, latency and
memory on the deployed network, brief training, PSNR/SSIM on validation images -- with the
conditions every figure was measured under. Names load on first use (torch is heavy)."""

from __future__ import annotations

from srnas.space.lazy import lazy_getattr

_LAZY = {
    "DataSpec": "srnas.evaluators.evaluate",
    "EvalResult": "srnas.evaluators.evaluate",
    "evaluate": "srnas.evaluators.evaluate",
    "train": "srnas.evaluators.train",
    "validate": "srnas.evaluators.train",
    "measure_latency": "srnas.evaluators.latency",
    "default_latency_input_hw": "srnas.evaluators.latency",
    "measure_memory": "srnas.evaluators.memory",
    "psnr_y": "srnas.evaluators.metrics",
    "ssim_y": "srnas.evaluators.metrics",
    "benchmark_set": "srnas.evaluators.data",
    "load_folder": "srnas.evaluators.data",
    "device_lock": "srnas.evaluators.lock",
    "resolve_device": "srnas.evaluators.device",
    "bicubic_baseline": "srnas.evaluators.bicubic",
    "Recipe": "srnas.evaluators.recipe",
    "fit": "srnas.evaluators.fit",
    "Every": "srnas.evaluators.runs",
    "FitResult": "srnas.evaluators.fit",
    "read_run": "srnas.evaluators.runs",
    "PatchDataset": "srnas.evaluators.patches",
    "Trained": "srnas.evaluators.trained",
    "load_network": "srnas.evaluators.trained",
    "benchmark": "srnas.evaluators.benchmark",
    "BenchTable": "srnas.evaluators.benchmark",
    "export_checked": "srnas.evaluators.deploy",
    "ExportCheckError": "srnas.evaluators.deploy",
}

__all__ = list(_LAZY)
__getattr__ = lazy_getattr(__name__, _LAZY)
