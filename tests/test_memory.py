"""Peak memory of one inference: exact and reproducible on CPU, max_memory_allocated on CUDA."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from srnas.evaluators.memory import METHOD_CPU, METHOD_CUDA, MemoryResult, measure_memory
from srnas.space.network import build_model
from srnas.space.presets import get_preset

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
SCRATCH = 1_000_000  # bytes


class Scratch(nn.Module):
    """Allocates a known scratch tensor, frees it, allocates another, then returns x * 2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.ones(SCRATCH // 4)
        del a  # freed: the second allocation must not stack on top of it
        b = torch.ones(SCRATCH // 4)
        view = b.view(-1)[: SCRATCH // 8]  # a view allocates nothing
        del b, view
        return x.reshape(-1).view_as(x) * 2


@pytest.fixture(scope="module")
def tiny() -> nn.Module:
    return build_model(get_preset("tiny", scale=4))


def test_same_model_twice_gives_identical_bytes(tiny: nn.Module) -> None:
    first = measure_memory(tiny, (32, 32))
    second = measure_memory(tiny, (32, 32))
    assert first == second
    assert first.method == METHOD_CPU and isinstance(first, MemoryResult)
    # Another network of the same config (other random weights) needs the same memory.
    assert measure_memory(build_model(get_preset("tiny", scale=4)), (32, 32)) == first


def test_known_allocation_is_counted_exactly() -> None:
    input_bytes = 3 * 16 * 16 * 4
    result = measure_memory(Scratch(), (16, 16))
    assert result.baseline_bytes == input_bytes
    # input + one scratch tensor at a time; the output (input-sized) comes after both are freed.
    assert result.peak_bytes == input_bytes + SCRATCH
    assert result.peak_mb == pytest.approx(result.peak_bytes / 2**20)


def test_baseline_counts_weights_once_buffers_and_input(tiny: nn.Module) -> None:
    result = measure_memory(tiny, (32, 32))
    weights = sum(p.nbytes for p in tiny.parameters())  # parameters() yields the shared one once
    buffers = sum(b.nbytes for b in tiny.buffers())
    assert result.baseline_bytes == weights + buffers + 3 * 32 * 32 * 4
    assert result.peak_bytes > result.baseline_bytes


def test_bigger_input_bigger_peak(tiny: nn.Module) -> None:
    assert measure_memory(tiny, (48, 48)).peak_bytes > measure_memory(tiny, (32, 32)).peak_bytes


def test_memory_leaves_the_model_as_it_was(tiny: nn.Module) -> None:
    tiny.train()
    result = measure_memory(tiny, (16, 16), dtype=torch.float64)
    assert tiny.training and next(tiny.parameters()).dtype == torch.float32
    assert result.dtype == "float64"
    assert result.to_dict()["input_hw"] == [16, 16]


def test_default_input_comes_from_the_scale(tiny: nn.Module) -> None:
    assert measure_memory(tiny).input_hw == (64, 64)


@pytest.mark.gpu
@gpu
def test_cuda_peak_includes_weights_and_repeats(tiny: nn.Module) -> None:
    first = measure_memory(tiny, (64, 64), "cuda")
    second = measure_memory(tiny, (64, 64), "cuda")
    assert first.method == METHOD_CUDA and first.device.startswith("cuda: ")
    assert first.peak_bytes > first.baseline_bytes > 0
    assert first.peak_bytes == second.peak_bytes
