"""TensorRT as a deployment runtime (``pip install srnas[tensorrt]``, NVIDIA GPUs only).

The exported ONNX file is parsed (``trt.OnnxParser``) into an engine built for exactly the
measured input (one optimisation profile, min = opt = max), fp16 by ``BuilderFlag.FP16``; bf16
is refused (the engine would need a strongly typed network). Input and output live in torch
CUDA tensors bound once; a run is ``execute_async_v3`` on torch's current stream, timed by CUDA
events. Memory is TensorRT's own: the engine's activation memory (``device_memory_size``) plus
the serialised engine's bytes (its weights), labelled ``tensorrt-engine``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from srnas.evaluators.deploy import INPUT_NAME, OUTPUT_NAME

METHOD = "tensorrt-engine (device_memory_size + engine bytes)"
WORKSPACE_BYTES = 1 << 30


def version() -> str:
    import tensorrt

    return str(tensorrt.__version__)


def precisions(device: torch.device) -> tuple[str, ...]:
    return ("fp32", "fp16") if device.type == "cuda" and torch.cuda.is_available() else ()


class TensorRtSession:
    cuda = True

    def __init__(self, path: Path, x: np.ndarray, device: torch.device, precision: str) -> None:
        import tensorrt as trt

        torch.cuda.set_device(device)
        logger = trt.Logger(trt.Logger.ERROR)
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # explicit batch (the only mode of TensorRT 10)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"the ONNX parser refused the graph: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        if precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        profile.set_shape(INPUT_NAME, x.shape, x.shape, x.shape)
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError("the engine build failed")
        self.engine_bytes = int(serialized.nbytes)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
        self.context = self.engine.create_execution_context()
        self.context.set_input_shape(INPUT_NAME, x.shape)
        self.x = torch.from_numpy(x).to(device)
        shape = tuple(self.context.get_tensor_shape(OUTPUT_NAME))
        self.out = torch.empty(shape, dtype=torch.float32, device=device)
        self.context.set_tensor_address(INPUT_NAME, self.x.data_ptr())
        self.context.set_tensor_address(OUTPUT_NAME, self.out.data_ptr())
        self.settings: dict[str, Any] = {
            "fp16": precision == "fp16", "workspace_bytes": WORKSPACE_BYTES,
            "profile": list(x.shape), "engine_bytes": self.engine_bytes,
        }

    def run(self) -> object:
        self.context.execute_async_v3(torch.cuda.current_stream().cuda_stream)
        return self.out

    def output(self) -> np.ndarray:
        self.run()
        torch.cuda.synchronize()
        return self.out.cpu().numpy()

    def memory(self) -> tuple[int, str] | None:
        size = getattr(self.engine, "device_memory_size_v2", None)
        if size is None:
            size = self.engine.device_memory_size
        return int(size) + self.engine_bytes, METHOD


def load(path: Path, x: np.ndarray, device: torch.device, precision: str,
         threads: int) -> TensorRtSession:
    return TensorRtSession(path, x, device, precision)
