"""The names ``--runtime`` and ``--precision`` accept, importable without torch (declaring the
command-line flags must stay cheap); :mod:`srnas.evaluators.runtime` is the registry behind
them."""

from __future__ import annotations

RUNTIME_NAMES = ("torch", "onnxruntime", "openvino", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16")
DEFAULT_RUNTIME, DEFAULT_PRECISION = "torch", "fp32"

__all__ = ["DEFAULT_PRECISION", "DEFAULT_RUNTIME", "PRECISIONS", "RUNTIME_NAMES"]
