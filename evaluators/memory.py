"""Peak memory of one batch-1 inference, reproducible on CPU, ``max_memory_allocated`` on CUDA.

What is counted, on both devices: every tensor live during the forward pass, *including* the
weights, buffers and the input (ESC's tables report the CUDA peak with the weights resident, and
a deployment has to hold them), so the figure is "memory needed to run one inference".

* CUDA (``method='cuda-max-allocated'``): one untimed inference first (with
  ``cudnn.benchmark`` on, the first call of a shape tries algorithms with large workspaces that
  the deployed model never pays again), then ``empty_cache``, ``reset_peak_memory_stats``, one
  inference, ``max_memory_allocated``. Includes cuDNN workspaces; sizes are the caching
  allocator's (rounded up to 512-byte blocks).
* CPU (``method='cpu-live-tensors'``): a ``TorchDispatchMode`` sees every ATen op; each output
  whose storage it has not seen yet adds ``storage.nbytes()``, and a ``weakref.finalize`` on that
  storage subtracts it when the storage is freed. Views and in-place results share a storage
  already counted and add nothing. Composite ops (``reshape``, ``matmul``, ``layer_norm``,
  ``scaled_dot_product_attention`` ...) are decomposed inside the mode, as autograd would
  outside ``inference_mode``, so their intermediate tensors are seen too. Not counted: scratch
  memory a kernel allocates and frees internally (oneDNN/MKL workspaces), allocator slack and
  Python objects. The count is exact and deterministic: the same model and input give the same
  bytes every time, independent of threads, allocator state or other processes (RSS is none
  of these).

``peak_mb`` is ``peak_bytes / 2**20``, the unit of SR papers' memory columns
(``torch.cuda.max_memory_allocated() / 1024**2``).
"""

from __future__ import annotations

import weakref
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from srnas.evaluators.device import canonical_device, device_name
from srnas.evaluators.latency import eval_mode, measurement_setup

METHOD_CPU = "cpu-live-tensors"
METHOD_CUDA = "cuda-max-allocated"


@dataclass(frozen=True)
class MemoryResult:
    """Peak memory of one inference; ``baseline_bytes`` were live before it (weights + input)."""

    peak_bytes: int
    peak_mb: float
    baseline_bytes: int
    method: str
    input_hw: tuple[int, int]
    device: str
    dtype: str

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["input_hw"] = list(self.input_hw)
        return d


def _has_kernel(func: torch._ops.OpOverload, key: str) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), key)


class LiveTensorCounter(TorchDispatchMode):
    """Counts the bytes of live tensor storages created under it and records their peak."""

    def __init__(self, backend_key: str = "CPU") -> None:
        super().__init__()
        self.backend_key = backend_key
        self.live_bytes = 0
        self.peak_bytes = 0
        self._live: dict[int, int] = {}  # storage data_ptr -> nbytes
        self._finalizers: list[weakref.finalize] = []

    def track(self, tensor: torch.Tensor) -> None:
        """Count ``tensor``'s storage as live (no-op when already counted or empty)."""
        storage = tensor.untyped_storage()
        nbytes, ptr = storage.nbytes(), storage.data_ptr()
        if nbytes == 0 or ptr in self._live:
            return
        self._live[ptr] = nbytes
        self.live_bytes += nbytes
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        # Storages keep one Python object for their whole C++ life (PyObject preservation), so
        # the finaliser fires exactly when the memory is released, not when a wrapper dies.
        self._finalizers.append(weakref.finalize(storage, self._release, ptr))

    def _release(self, ptr: int) -> None:
        self.live_bytes -= self._live.pop(ptr, 0)

    def close(self) -> None:
        """Detach the finalisers of storages still alive (the model's weights, the output)."""
        for finalizer in self._finalizers:
            finalizer.detach()
        self._finalizers.clear()

    def _decomposable(self, func: torch._ops.OpOverload) -> bool:
        # Decompose exactly where the dispatcher would run the composite kernel anyway: no
        # backend kernel and no explicit composite. Otherwise counting would change the ops run.
        return (
            _has_kernel(func, "CompositeImplicitAutograd")
            and not _has_kernel(func, self.backend_key)
            and not _has_kernel(func, "CompositeExplicitAutograd")
            and not _has_kernel(func, "CompositeExplicitAutogradNonFunctional")
        )

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if self._decomposable(func):
            with self:  # re-enter so the ops of the decomposition are seen one by one
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
        out = func(*args, **kwargs)
        # An output sharing an input's storage (a view, an in-place or out= result) allocated
        # nothing, even when that input was created before counting began.
        inputs = {
            t.untyped_storage().data_ptr()
            for t in tree_leaves((args, kwargs))
            if isinstance(t, torch.Tensor)
        }
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor) and leaf.untyped_storage().data_ptr() not in inputs:
                self.track(leaf)
        return out


def _measure_cpu(model: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    counter = LiveTensorCounter("CPU")
    try:
        for t in (*model.parameters(), *model.buffers(), x):
            counter.track(t)
        baseline = counter.live_bytes
        with torch.inference_mode(), counter:
            out = model(x)
        del out  # the output is live at the peak already; its release does not matter
        return counter.peak_bytes, baseline
    finally:
        counter.close()


def _measure_cuda(model: nn.Module, x: torch.Tensor, device: torch.device) -> tuple[int, int]:
    cudnn_benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True  # as in the latency measurement
    try:
        with torch.inference_mode():
            model(x)  # pays cudnn.benchmark's algorithm search outside the measured pass
            torch.cuda.synchronize(device)
            torch.cuda.empty_cache()
            baseline = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            out = model(x)
            torch.cuda.synchronize(device)
            peak = torch.cuda.max_memory_allocated(device)
            del out
        return peak, baseline
    finally:
        torch.backends.cudnn.benchmark = cudnn_benchmark


def measure_memory(
    model: nn.Module,
    input_hw: tuple[int, int] | None = None,
    device: torch.device | str = "cpu",
    *,
    dtype: torch.dtype = torch.float32,
) -> MemoryResult:
    """Peak memory of one batch-1 inference of ``model`` at ``input_hw`` on ``device``.

    Takes no device lock itself (the CPU count is immune to other processes, and the CUDA peak
    is per process); a caller that wants the figure taken beside the latency one holds
    :func:`evaluators.lock.device_lock` around both.
    """
    device = canonical_device(device)
    placed, x, input_hw = measurement_setup(model, input_hw, device, dtype)
    with eval_mode(placed):
        if device.type == "cuda":
            peak, baseline = _measure_cuda(placed, x, device)
            method = METHOD_CUDA
        else:
            peak, baseline = _measure_cpu(placed, x)
            method = METHOD_CPU
    return MemoryResult(
        peak_bytes=int(peak),
        peak_mb=peak / 2**20,
        baseline_bytes=int(baseline),
        method=method,
        input_hw=(int(input_hw[0]), int(input_hw[1])),
        device=device_name(device),
        dtype=str(dtype).removeprefix("torch."),
    )
