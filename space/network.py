"""The ESC network family and ``build_model``, the one way to turn a config into a network."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srnas.space.blocks import get_block
from srnas.space.config import ArchConfig
from srnas.space.modules import (
    AttnImpl,
    ConvAttnLayer,
    ConvFFN,
    LayerNorm2d,
    WindowAttention,
    d4_symmetrize,
)


def _attention_module(cfg: ArchConfig) -> nn.Module:
    """The block type's attention module (its registered factory, ``space/blocks.py``)."""
    return get_block(cfg.block_type).build(cfg)


class Block(nn.Module):
    """LN -> ConvFFN; x + WindowAttention(LN(x)); conv_layers x (x + ConvAttnLayer(FFN(LN?(x))));
    conv3x3(LN(x)) + block skip."""

    def __init__(self, cfg: ArchConfig, window: bool) -> None:
        super().__init__()
        dim = cfg.dim
        self.ln_proj = LayerNorm2d(dim)
        self.proj = ConvFFN(dim, cfg.first_ffn_ratio)
        self.ln_attn: nn.Module | None = LayerNorm2d(dim) if window else None
        self.attn: WindowAttention | None = (
            WindowAttention(dim, cfg.window_size, cfg.heads) if window else None)
        self.lns = nn.ModuleList(
            [LayerNorm2d(dim) if cfg.layer_norm else nn.Identity() for _ in range(cfg.conv_layers)])
        self.ffns = nn.ModuleList([ConvFFN(dim, cfg.ffn_ratio) for _ in range(cfg.conv_layers)])
        self.convattns = nn.ModuleList(
            [ConvAttnLayer(_attention_module(cfg), dim) for _ in range(cfg.conv_layers)])
        self.ln_out = LayerNorm2d(dim)
        self.conv_out = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: Tensor, shared_kernel: Tensor | None) -> Tensor:
        skip = x
        x = self.proj(self.ln_proj(x))
        if self.attn is not None and self.ln_attn is not None:
            x = x + self.attn(self.ln_attn(x))
        for ln, ffn, layer in zip(self.lns, self.ffns, self.convattns, strict=True):
            x = x + layer(ffn(ln(x)), shared_kernel)
        return self.conv_out(self.ln_out(x)) + skip


class SRNet(nn.Module):
    """conv3x3 -> blocks -> conv3x3 + long skip -> conv3x3 to 3*s^2 + repeat-interleaved LR ->
    PixelShuffle: the network learns a residual over the nearest-neighbour upsampled input."""

    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__()
        self.config = cfg
        self.scale = cfg.scale
        self.shared_kernel: nn.Parameter | None = None
        if cfg.shared_kernel:
            # One dense (pdim, pdim, k, k) kernel for the whole network: counted once in the
            # parameters, paid at every use in FLOPs. Orthogonal init, as in ESC.
            weight = torch.empty(cfg.pdim, cfg.pdim, cfg.kernel_size, cfg.kernel_size)
            nn.init.orthogonal_(weight)
            self.shared_kernel = nn.Parameter(weight)
        self.symmetrize = True  # False once deploy() has baked the D4 average in
        self.head = nn.Conv2d(3, cfg.dim, 3, padding=1)
        self.blocks = nn.ModuleList([Block(cfg, cfg.block_has_window(i))
                                     for i in range(cfg.n_blocks)])
        self.last = nn.Conv2d(cfg.dim, cfg.dim, 3, padding=1)
        self.to_img = nn.Conv2d(cfg.dim, 3 * cfg.scale**2, 3, padding=1)

    def set_attention_impl(self, impl: AttnImpl) -> SRNet:
        """'sdpa' (default, fast) or 'matmul' (plain path, what FLOP counters see)."""
        if impl not in ("sdpa", "matmul"):
            raise ValueError(f"attention impl must be 'sdpa' or 'matmul', got {impl!r}")
        for m in self.modules():
            if isinstance(m, WindowAttention):
                m.impl = impl
        return self

    @torch.no_grad()
    def deploy(self) -> SRNet:
        """Bake the D4-symmetrised shared kernel in (identical outputs, one op less per pass)."""
        if self.shared_kernel is not None and self.symmetrize:
            self.shared_kernel.copy_(d4_symmetrize(self.shared_kernel))
        self.symmetrize = False
        return self

    def forward(self, x: Tensor) -> Tensor:
        kernel = self.shared_kernel
        if kernel is not None and self.symmetrize:
            kernel = d4_symmetrize(kernel)
        feat = self.head(x)
        skip = feat
        for block in self.blocks:
            feat = block(feat, kernel)
        feat = self.last(feat) + skip
        out = self.to_img(feat) + torch.repeat_interleave(x, self.scale**2, dim=1)
        return F.pixel_shuffle(out, self.scale)


def build_model(config: ArchConfig) -> SRNet:
    """The one way in: a validated config -> a freshly initialised network."""
    if not isinstance(config, ArchConfig):
        raise TypeError(f"build_model expects an ArchConfig, got {type(config).__name__}")
    return SRNet(config)


def count_params(model: nn.Module) -> int:
    """Trainable parameters, each shared tensor counted once (``parameters()`` de-duplicates)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
