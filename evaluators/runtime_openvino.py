"""OpenVINO as a deployment runtime (``pip install srnas[openvino]``): its CPU plugin reads the
exported ONNX file directly (``Core().compile_model(path, "CPU", config)``).

Settings: ``INFERENCE_NUM_THREADS`` = the measurement's thread count, one stream and the
LATENCY hint (batch-1, one request in flight), and ``INFERENCE_PRECISION_HINT`` always set: on a
CPU with bf16 instructions OpenVINO otherwise runs an fp32 graph in bf16 by default, and the
figure would not be the fp32 one it claims. fp16 and bf16 are offered where the CPU plugin lists
them in ``OPTIMIZATION_CAPABILITIES`` (AVX512-FP16/AMX on x86, ARMv8.2 on ARM). OpenVINO's GPU
plugin is for Intel GPUs, not CUDA: no CUDA device here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from srnas.evaluators.deploy import INPUT_NAME

PLUGIN = "CPU"
HINTS = {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}
CAPABILITIES = {"fp32": "FP32", "fp16": "FP16", "bf16": "BF16"}
REPORTED = ("INFERENCE_NUM_THREADS", "NUM_STREAMS", "PERFORMANCE_HINT",
            "INFERENCE_PRECISION_HINT", "ENABLE_CPU_PINNING", "EXECUTION_DEVICES")


def version() -> str:
    import openvino

    return str(openvino.__version__)


def precisions(device: torch.device) -> tuple[str, ...]:
    if device.type != "cpu":
        return ()
    import openvino

    capabilities = set(openvino.Core().get_property(PLUGIN, "OPTIMIZATION_CAPABILITIES"))
    return tuple(p for p, cap in CAPABILITIES.items() if cap in capabilities)


def _shown(value: object) -> Any:
    if isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "to_string"):  # an element type (f32, bf16...)
        return str(value.to_string())
    if isinstance(value, (list, tuple)):
        return [_shown(v) for v in value]
    return str(value)


class OpenVinoSession:
    cuda = False

    def __init__(self, path: Path, x: np.ndarray, precision: str, threads: int) -> None:
        import openvino

        core = openvino.Core()
        self.compiled = core.compile_model(str(path), PLUGIN, {
            "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": HINTS[precision]})
        self.request = self.compiled.create_infer_request()
        self.inputs = {INPUT_NAME: x}
        self.settings: dict[str, Any] = {}
        for key in REPORTED:
            try:
                self.settings[key] = _shown(self.compiled.get_property(key))
            except RuntimeError:  # a property this plugin version does not expose
                continue

    def run(self) -> object:
        return self.request.infer(self.inputs)

    def output(self) -> np.ndarray:
        self.request.infer(self.inputs)
        return np.array(self.request.get_output_tensor(0).data, copy=True)

    def memory(self) -> tuple[int, str] | None:
        return None  # the CPU plugin reports no peak; evaluators.runtime labels the proxy


def load(path: Path, x: np.ndarray, device: torch.device, precision: str,
         threads: int) -> OpenVinoSession:
    return OpenVinoSession(path, x, precision, threads)
