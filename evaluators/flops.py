"""Parameters and fvcore multiply-adds of a built model (``space.complexity`` does the counting)."""

from __future__ import annotations

from srnas.space.complexity import count_flops
from srnas.space.network import SRNet, count_params


def measure_complexity(model: SRNet, input_hw: tuple[int, int]) -> dict[str, int]:
    """``{'params': ..., 'flops': ...}``: the shared kernel counted once in the parameters, paid at
    every use in the FLOPs (fvcore multiply-adds on the matmul attention path)."""
    return {"params": count_params(model), "flops": count_flops(model, input_hw)}
