"""Parameters and multiply-adds (fvcore's FLOPs) of a config at a given input size."""

from __future__ import annotations

import logging
import warnings

import torch

from srnas.space.config import ArchConfig
from srnas.space.network import SRNet, build_model, count_params


def default_input_hw(scale: int, out_hw: tuple[int, int] = (720, 1280)) -> tuple[int, int]:
    """The LR input that gives a 1280x720 output (ESC's protocol): 360x640 / 240x427 / 180x320."""
    return out_hw[0] // scale, out_hw[1] // scale


def count_flops(model: SRNet, input_hw: tuple[int, int]) -> int:
    """fvcore multiply-adds for one (1, 3, H, W) input, window attention on its matmul path."""
    from fvcore.nn import FlopCountAnalysis  # slow import; only when counting

    previous = [m.impl for m in model.modules() if hasattr(m, "impl")]
    model.set_attention_impl("matmul")
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, 3, *input_hw)
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        # fvcore logs every op it skips (elementwise, softmax); those are not multiply-adds.
        logging.getLogger("fvcore.nn.jit_handles").setLevel(logging.ERROR)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            return int(analysis.total())
    finally:
        for m, impl in zip((m for m in model.modules() if hasattr(m, "impl")), previous,
                           strict=True):
            m.impl = impl
        model.train(was_training)


def complexity(config: ArchConfig, input_hw: tuple[int, int] | None = None) -> dict[str, int]:
    """{'params': ..., 'flops': ...} for a config (default input: the 1280x720-output one)."""
    hw = input_hw or default_input_hw(config.scale)
    model = build_model(config)
    return {"params": count_params(model), "flops": count_flops(model, hw)}
