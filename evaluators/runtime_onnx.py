"""ONNX Runtime as a deployment runtime: the CPU execution provider, and the CUDA provider where
``onnxruntime-gpu`` is installed (it ships the CPU provider too; the two packages must not be
installed together, the CPU one shadows the GPU one).

Threads: ``intra_op_num_threads`` = the measurement's thread count, ``inter_op_num_threads`` 1
and sequential execution (batch-1 inference has one request in flight). fp16 (CUDA only): the
graph's float tensors converted by ONNX Runtime's own converter
(``onnxruntime.transformers.float16``), input and output kept float32 as the exported file
declares them. On CUDA the input is bound once on the GPU and the output stays there
(``IOBinding``): a run is the network, not two host copies; ``run_with_iobinding`` returns when
the GPU is done, so the wall clock times it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from srnas.evaluators.deploy import INPUT_NAME, OUTPUT_NAME

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


def version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def precisions(device: torch.device) -> tuple[str, ...]:
    import onnxruntime

    if device.type == "cpu":
        # The CPU provider has fp16 kernels for a handful of ops only: an fp16 graph runs cast
        # back to fp32 around most nodes, which is not what a deployment would measure.
        return ("fp32",)
    if CUDA_PROVIDER in onnxruntime.get_available_providers():
        return ("fp32", "fp16")
    return ()


def _fp16_copy(path: Path) -> Path:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)
    out = path.with_suffix(".fp16.onnx")
    onnx.save(model, str(out))
    return out


class OrtSession:
    def __init__(self, path: Path, x: np.ndarray, device: torch.device, precision: str,
                 threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # failures come back as exceptions
        self.cuda = device.type == "cuda"
        index = device.index or 0
        providers: list[Any] = ([(CUDA_PROVIDER, {"device_id": index}), CPU_PROVIDER]
                                if self.cuda else [CPU_PROVIDER])
        if precision == "fp16":
            path = _fp16_copy(path)
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        if self.cuda and self.session.get_providers()[0] != CUDA_PROVIDER:
            raise RuntimeError(f"the CUDA provider did not load (providers: "
                               f"{self.session.get_providers()})")
        self.x = x
        self.binding = None
        if self.cuda:
            self.binding = self.session.io_binding()
            self.binding.bind_ortvalue_input(
                INPUT_NAME, ort.OrtValue.ortvalue_from_numpy(x, "cuda", index))
            self.binding.bind_output(OUTPUT_NAME, "cuda", index)
        got = self.session.get_session_options()
        self.settings: dict[str, Any] = {
            "providers": self.session.get_providers(),
            "intra_op_num_threads": got.intra_op_num_threads,
            "inter_op_num_threads": got.inter_op_num_threads,
            "execution_mode": str(got.execution_mode).rsplit(".", 1)[-1],
            "graph_optimization_level": str(got.graph_optimization_level).rsplit(".", 1)[-1],
            "io_binding": self.cuda,
        }

    def run(self) -> object:
        if self.binding is not None:
            self.session.run_with_iobinding(self.binding)
            return None
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: self.x})

    def output(self) -> np.ndarray:
        if self.binding is not None:
            self.session.run_with_iobinding(self.binding)
            return np.asarray(self.binding.copy_outputs_to_cpu()[0])
        return np.asarray(self.session.run([OUTPUT_NAME], {INPUT_NAME: self.x})[0])

    def memory(self) -> tuple[int, str] | None:
        return None  # ONNX Runtime reports no peak; evaluators.runtime labels the proxy


def load(path: Path, x: np.ndarray, device: torch.device, precision: str,
         threads: int) -> OrtSession:
    return OrtSession(path, x, device, precision, threads)
