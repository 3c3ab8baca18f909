"""Building blocks of the family: ESC's ConvAttn, MiLK-ConvAttn, window attention, ConvFFN, LN.

Every module is correct for batch > 1 and never writes into its input in place (ESC's eval path
does both; we don't copy that).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

AttnImpl = Literal["matmul", "sdpa"]


def d4_symmetrize(kernel: Tensor) -> Tensor:
    """Average a (..., k, k) kernel over the 8 flips/rotations of the square (D4 group)."""
    rot = torch.rot90(kernel, -1, (-2, -1))
    views = (
        kernel, kernel.flip(-1), kernel.flip(-2), kernel.flip((-2, -1)),
        rot, rot.flip(-1), rot.flip(-2), rot.flip((-2, -1)),
    )
    return torch.stack(views).mean(0)


def dynamic_depthwise(x: Tensor, kernels: Tensor) -> Tensor:
    """Per-sample depthwise conv: x (B, C, H, W), kernels (B, C, k, k), 'same' padding.

    The batch is folded into the channel axis (groups = B*C) so every sample gets its own kernel.
    """
    b, c, h, w = x.shape
    k = kernels.shape[-1]
    out = F.conv2d(x.reshape(1, b * c, h, w), kernels.reshape(b * c, 1, k, k),
                   padding=k // 2, groups=b * c)
    return out.reshape(b, c, h, w)


class LayerNorm2d(nn.Module):
    """Channels-first layer norm (eps 1e-6), as in ESC."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps
        self.shape = (dim,)

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class ConvFFN(nn.Module):
    """1x1 up, GELU, depthwise 3x3 + GELU with an inner skip, 1x1 down."""

    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.up = nn.Conv2d(dim, hidden, 1)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.down = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.gelu(self.up(x))
        x = F.gelu(self.dw(x)) + x
        return self.down(x)


class DynamicKernel(nn.Module):
    """Pooled features -> per-sample depthwise k x k kernels; last layer zero-initialised, so
    the branch starts silent and the long-range path carries the early training."""

    def __init__(self, pdim: int, size: int = 3) -> None:
        super().__init__()
        self.size = size
        self.net = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(pdim, pdim // 2, 1),
            nn.GELU(),
            nn.Conv2d(pdim // 2, pdim * size * size, 1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c = x.shape[:2]
        return self.net(x).reshape(b, c, self.size, self.size)


class ConvAttn(nn.Module):
    """ESC's convolutional attention on the first ``pdim`` channels:
    conv(x1, shared dense LK) + per-sample depthwise 3x3; the other channels pass unchanged."""

    def __init__(self, pdim: int) -> None:
        super().__init__()
        self.pdim = pdim
        self.dynamic = DynamicKernel(pdim)

    def forward(self, x: Tensor, shared_kernel: Tensor) -> Tensor:
        x1, x2 = x.split([self.pdim, x.shape[1] - self.pdim], dim=1)
        k = shared_kernel.shape[-1]
        y = F.conv2d(x1, shared_kernel, padding=k // 2) + dynamic_depthwise(x1, self.dynamic(x1))
        return torch.cat([y, x2], dim=1)


class MiLKConvAttn(nn.Module):
    """Mixture-of-Large-Kernels ConvAttn, a [B, C, H, W] -> [B, C, H, W] plug-in module.

    Long-range branch: a per-module dictionary of ``dict_size`` depthwise k x k bases, mixed per
    sample and per channel by a softmax router (plus, optionally, ESC's external shared dense
    kernel). Local branch: the zero-initialised dynamic 3x3 of ConvAttn. A gate fuses the two per
    sample and channel (``softmax``: 2-way, ``sigmoid``: g / 1-g, ``sum``: ESC's plain sum), a 1x1
    projection follows, then (``residual=True``) a skip on the attended channels; the bypassed
    channels are concatenated back.

    Inside an ESC layer (``x + aggr(attn(ffn(x)))``) the layer already has a residual, so the
    network builds this module with ``residual=False`` to avoid a nested skip that would double
    the identity path of the attended channels only.
    """

    def __init__(self, dim: int, pdim: int, kernel_size: int, dict_size: int,
                 gate: Literal["softmax", "sigmoid", "sum"] = "softmax",
                 use_shared_kernel: bool = False, residual: bool = True) -> None:
        super().__init__()
        if not 0 < pdim <= dim:
            raise ValueError(f"pdim must be in (0, dim={dim}], got {pdim}")
        self.dim, self.pdim, self.k, self.n = dim, pdim, kernel_size, dict_size
        self.gate, self.use_shared_kernel, self.residual = gate, use_shared_kernel, residual
        # Bases are shared by all channels; the router makes them channel-specific. Per-channel
        # bases would cost dict_size*pdim*k^2 parameters per module (21.6K at N=8, pdim=16,
        # k=13), outside the lightweight budget.
        self.bases = nn.Parameter(torch.randn(dict_size, kernel_size, kernel_size) / kernel_size)
        hidden = max(pdim // 2, 1)
        self.router = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(pdim, hidden, 1),
            nn.GELU(),
            nn.Conv2d(hidden, pdim * dict_size, 1),
        )
        # Zero-init: every sample starts from the uniform mixture of the bases.
        nn.init.zeros_(self.router[-1].weight)
        nn.init.zeros_(self.router[-1].bias)
        self.dynamic = DynamicKernel(pdim)
        gate_out = {"softmax": 2 * pdim, "sigmoid": pdim, "sum": 0}[gate]
        self.gate_head: nn.Module | None = None
        if gate_out:
            self.gate_head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(pdim, gate_out, 1))
            nn.init.zeros_(self.gate_head[-1].weight)  # starts as an even split
            nn.init.zeros_(self.gate_head[-1].bias)
        self.proj = nn.Conv2d(pdim, pdim, 1)

    def mixed_kernels(self, x1: Tensor) -> Tensor:
        """(B, pdim, k, k): per-sample, per-channel mixtures of the dictionary."""
        b = x1.shape[0]
        weights = self.router(x1).reshape(b, self.pdim, self.n).softmax(-1)
        return (weights @ self.bases.reshape(self.n, -1)).reshape(b, self.pdim, self.k, self.k)

    def forward(self, x: Tensor, shared_kernel: Tensor | None = None) -> Tensor:
        if self.use_shared_kernel and shared_kernel is None:
            raise ValueError("this MiLK-ConvAttn was built to use a shared kernel; pass one")
        x1, x2 = x.split([self.pdim, x.shape[1] - self.pdim], dim=1)
        long = dynamic_depthwise(x1, self.mixed_kernels(x1))
        if self.use_shared_kernel:
            assert shared_kernel is not None
            long = long + F.conv2d(x1, shared_kernel, padding=shared_kernel.shape[-1] // 2)
        local = dynamic_depthwise(x1, self.dynamic(x1))
        if self.gate_head is None:
            fused = long + local
        elif self.gate == "softmax":
            g = self.gate_head(x1).reshape(x1.shape[0], 2, self.pdim, 1, 1).softmax(1)
            fused = g[:, 0] * long + g[:, 1] * local
        else:
            g = torch.sigmoid(self.gate_head(x1))
            fused = g * long + (1 - g) * local
        y = self.proj(fused)
        if self.residual:
            y = y + x1
        return torch.cat([y, x2], dim=1)


class ConvAttnLayer(nn.Module):
    """The attention module of one conv layer followed by ESC's 1x1 aggregation over all dim."""

    def __init__(self, attn: nn.Module, dim: int) -> None:
        super().__init__()
        self.attn = attn
        self.aggr = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor, shared_kernel: Tensor | None) -> Tensor:
        return self.aggr(self.attn(x, shared_kernel))


class WindowAttention(nn.Module):
    """Non-shifted window self-attention with a learned relative-position bias (ESC).

    ``impl='matmul'`` is the plain path (what fvcore counts); ``impl='sdpa'`` calls
    ``scaled_dot_product_attention`` with the bias as an additive mask: same output within 1e-5.
    """

    def __init__(self, dim: int, window: int, heads: int) -> None:
        super().__init__()
        self.dim, self.window, self.heads = dim, window, heads
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.to_out = nn.Conv2d(dim, dim, 1)
        self.relative_position_bias = nn.Parameter(
            torch.randn(heads, (2 * window - 1) ** 2) * 1e-3)
        self.impl: AttnImpl = "sdpa"

    def bias(self) -> Tensor:
        """(1, heads, N, N) additive bias, entry [q, k] = table[offset(k - q)].

        Built as a strided view of the (2w-1) x (2w-1) table instead of gathering through an
        N x N index: the index buffer would be an 8 MiB int64 tensor per block at w = 32 (more
        than the weights of a light network), inflating every memory figure.
        """
        w, h = self.window, self.heads
        side = 2 * w - 1
        table = self.relative_position_bias.reshape(h, side, side)
        # view[a, b, kh, kw] = table[a + kh, b + kw]; with a = w-1-qh, b = w-1-qw this is
        # table[kh - qh + w-1, kw - qw + w-1]. Flipping a and b puts queries in order.
        view = table.as_strided((h, w, w, w, w), (side * side, side, 1, side, 1),
                                table.storage_offset())
        return view.flip(1, 2).reshape(1, h, w * w, w * w)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        ws = self.window
        pad_h, pad_w = (-h) % ws, (-w) % ws
        if pad_h or pad_w:
            # Reflect padding needs pad < size; replicate-extend tiny inputs first.
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        hp, wp = x.shape[-2:]
        nh, nw = hp // ws, wp // ws
        head_dim = c // self.heads
        qkv = self.to_qkv(x).reshape(b, 3, self.heads, head_dim, nh, ws, nw, ws)
        # -> (3, B*nh*nw, heads, ws*ws, head_dim)
        qkv = qkv.permute(1, 0, 4, 6, 2, 5, 7, 3).reshape(3, b * nh * nw, self.heads, ws * ws,
                                                          head_dim)
        q, k, v = qkv[0], qkv[1], qkv[2]
        bias = self.bias()
        if self.impl == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        else:
            score = q @ k.transpose(-2, -1) / math.sqrt(head_dim)
            out = (score + bias).softmax(-1) @ v
        out = out.reshape(b, nh, nw, self.heads, ws, ws, head_dim)
        out = out.permute(0, 3, 6, 1, 4, 2, 5).reshape(b, c, hp, wp)
        return self.to_out(out[:, :, :h, :w])
