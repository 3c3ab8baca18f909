"""Modules on their own: batch independence, attention paths, deploy conversion, D4 symmetry."""

from __future__ import annotations

import pytest
import torch

from space import build_model, get_preset
from space.modules import ConvAttn, MiLKConvAttn, WindowAttention, d4_symmetrize


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    """Zero-initialised heads make every sample look alike; give them weights to tell apart."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


@pytest.mark.parametrize("gate", ["softmax", "sigmoid", "sum"])
@pytest.mark.parametrize("shared", [False, True])
def test_milk_plugin_keeps_shape_and_treats_each_sample_alone(gate: str, shared: bool) -> None:
    torch.manual_seed(0)
    module = MiLKConvAttn(dim=24, pdim=8, kernel_size=9, dict_size=4, gate=gate,
                          use_shared_kernel=shared)
    _randomise(module)
    kernel = torch.randn(8, 8, 9, 9) * 0.05 if shared else None
    x = torch.randn(3, 24, 17, 13)
    y = module(x, kernel)
    assert y.shape == x.shape
    # Per-sample kernels: the batched result equals each sample run on its own.
    singles = torch.cat([module(x[i:i + 1], kernel) for i in range(3)])
    torch.testing.assert_close(y, singles, atol=1e-5, rtol=1e-5)
    # Bypassed channels pass unchanged; attended ones change.
    torch.testing.assert_close(y[:, 8:], x[:, 8:])
    assert not torch.allclose(y[:, :8], x[:, :8])


def test_milk_router_mixes_per_sample_and_per_channel() -> None:
    module = MiLKConvAttn(dim=16, pdim=8, kernel_size=7, dict_size=3)
    _randomise(module, seed=1)
    kernels = module.mixed_kernels(torch.randn(2, 8, 10, 10))
    assert kernels.shape == (2, 8, 7, 7)
    assert not torch.allclose(kernels[0], kernels[1])
    assert not torch.allclose(kernels[0, 0], kernels[0, 1])


def test_milk_residual_flag_controls_the_skip() -> None:
    a = MiLKConvAttn(16, 4, 5, 2, "sum", residual=True)
    b = MiLKConvAttn(16, 4, 5, 2, "sum", residual=False)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(a(x)[:, :4] - b(x)[:, :4], x[:, :4])


def test_convattn_batch_independence_and_no_in_place_write() -> None:
    module = ConvAttn(pdim=8)
    _randomise(module)
    kernel = torch.randn(8, 8, 13, 13) * 0.02
    x = torch.randn(2, 32, 15, 11)
    before = x.clone()
    y = module(x, kernel)
    torch.testing.assert_close(x, before)  # input untouched (ESC's eval path writes in place)
    singles = torch.cat([module(x[i:i + 1], kernel) for i in range(2)])
    torch.testing.assert_close(y, singles, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("hw", [(32, 32), (37, 45), (5, 70)])
def test_sdpa_and_matmul_window_attention_agree(hw: tuple[int, int]) -> None:
    torch.manual_seed(0)
    attn = WindowAttention(dim=32, window=16, heads=4)
    _randomise(attn)
    x = torch.randn(2, 32, *hw)
    attn.impl = "sdpa"
    fast = attn(x)
    attn.impl = "matmul"
    plain = attn(x)
    assert fast.shape == x.shape
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)


def test_relative_position_bias_is_indexed_by_offset() -> None:
    w, heads = 5, 2
    attn = WindowAttention(dim=8, window=w, heads=heads)
    bias = attn.bias()[0]  # (heads, 25, 25)
    table = attn.relative_position_bias
    # Independent construction, ESC's formula, one entry at a time.
    for q in range(w * w):
        for k in range(w * w):
            (qh, qw), (kh, kw) = divmod(q, w), divmod(k, w)
            idx = (kh - qh + w - 1) * (2 * w - 1) + (kw - qw + w - 1)
            assert torch.equal(bias[:, q, k], table[:, idx])
    bias.sum().backward()
    assert table.grad is not None and table.grad.abs().sum() > 0


def test_d4_symmetrised_kernel_is_invariant_to_flips_and_rotations() -> None:
    k = d4_symmetrize(torch.randn(3, 3, 7, 7))
    for t in (k.flip(-1), k.flip(-2), torch.rot90(k, 1, (-2, -1)), k.transpose(-2, -1)):
        torch.testing.assert_close(t, k)


@pytest.mark.parametrize("preset", ["tiny", "esc-light"])
def test_deploy_conversion_gives_identical_outputs(preset: str) -> None:
    model = build_model(get_preset(preset, 2)).eval()
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        before = model(x)
        after = model.deploy()(x)
    assert torch.equal(before, after)


def test_shared_kernel_counted_once_and_shared_by_every_layer() -> None:
    model = build_model(get_preset("esc-light"))
    kernel = model.shared_kernel
    assert kernel is not None and kernel.shape == (16, 16, 13, 13)
    ids = [id(p) for p in model.parameters()]
    assert ids.count(id(kernel)) == 1
