"""Modules on their own: batch independence, attention paths, deploy conversion, D4 symmetry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from srnas.space import build_model, get_preset
from srnas.space.modules import ConvAttn, MiLKConvAttn, WindowAttention, d4_symmetrize


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


# -- MiLK-ConvAttn at initialisation, against an independent formula ---------------------------
#
# At init the router's and the gate's last layers are zero, so every sample's per-channel kernel
# is the plain mean of the N bases and the gate is an even split (softmax: 1/2 and 1/2; sigmoid:
# sigmoid(0) = 1/2 and 1 - 1/2; 'sum': 1 and 1). The dynamic 3x3 branch is zero-initialised in
# its last layer, so its kernel is that layer's bias (zero at init; set to a known per-channel
# kernel below to make the local branch visible). The expected output is written with
# torch.nn.functional primitives from the module's parameters, never through its helpers.

GATE_WEIGHTS = {"softmax": (0.5, 0.5), "sigmoid": (0.5, 0.5), "sum": (1.0, 1.0)}


def _d4_average(kernel: torch.Tensor) -> torch.Tensor:
    """The mean over the 8 symmetries of the square, listed as the group's elements."""
    t = kernel.transpose(-2, -1)
    views = [torch.rot90(kernel, r, (-2, -1)) for r in range(4)]
    views += [torch.rot90(t, r, (-2, -1)) for r in range(4)]  # the reflections
    return torch.stack(views).mean(0)


def _milk_at_init_expected(module: MiLKConvAttn, x: torch.Tensor,
                           shared_kernel: torch.Tensor | None) -> torch.Tensor:
    p, k = module.pdim, module.k
    x1, x2 = x[:, :p], x[:, p:]
    uniform = module.bases.detach().mean(0)  # (k, k): the same for every sample and channel
    long = F.conv2d(x1, uniform.expand(p, 1, k, k), padding=k // 2, groups=p)
    if shared_kernel is not None:
        long = long + F.conv2d(x1, shared_kernel, padding=shared_kernel.shape[-1] // 2)
    local_kernel = module.dynamic.net[-1].bias.detach().reshape(p, 1, 3, 3)
    local = F.conv2d(x1, local_kernel, padding=1, groups=p)
    w_long, w_local = GATE_WEIGHTS[module.gate]
    fused = w_long * long + w_local * local
    y = F.conv2d(fused, module.proj.weight.detach(), module.proj.bias.detach())
    if module.residual:
        y = y + x1
    return torch.cat([y, x2], dim=1)


def _fresh_milk(gate: str, shared: bool, residual: bool = True) -> MiLKConvAttn:
    torch.manual_seed(7)
    module = MiLKConvAttn(dim=11, pdim=6, kernel_size=7, dict_size=3, gate=gate,
                          use_shared_kernel=shared, residual=residual).double()
    # The initialisation the formula relies on: zero last layers in router, gate and dynamic.
    heads = [module.router[-1], module.dynamic.net[-1]]
    if module.gate_head is not None:
        heads.append(module.gate_head[-1])
    for head in heads:
        assert not head.weight.any() and not head.bias.any()
    return module


def _two_samples() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    x = torch.randn(2, 11, 13, 10, generator=g, dtype=torch.float64)
    x[1] = 3.0 * x[1] + 0.5  # a second sample with other statistics (pooled features differ)
    shared = torch.randn(6, 6, 7, 7, generator=g, dtype=torch.float64) * 0.05
    return x, _d4_average(shared)


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("local", ["zero", "bias"])
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("gate", ["softmax", "sigmoid", "sum"])
def test_milk_at_init_matches_the_uniform_mixture_formula(
        gate: str, shared: bool, local: str, residual: bool) -> None:
    module = _fresh_milk(gate, shared, residual)
    if local == "bias":
        # Still zero weights: the local kernel is this bias, whatever the sample.
        g = torch.Generator().manual_seed(5)
        with torch.no_grad():
            module.dynamic.net[-1].bias.copy_(
                torch.randn(module.dynamic.net[-1].bias.shape, generator=g, dtype=torch.float64))
    x, shared_kernel = _two_samples()
    kernel = shared_kernel if shared else None
    with torch.no_grad():
        out = module(x, kernel)
        expected = _milk_at_init_expected(module, x, kernel)
    assert out.shape == x.shape
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=1e-10)
    assert not torch.allclose(out[0], out[1])  # two different samples, two different outputs


def test_milk_gate_weights_at_init_differ_between_sum_and_the_even_splits() -> None:
    # Same parameters, three gates: softmax and sigmoid halve the sum exactly (before the 1x1
    # projection's bias), which the formula above relies on.
    x, shared_kernel = _two_samples()
    reference = _fresh_milk("sum", shared=True, residual=False)
    with torch.no_grad():
        reference.proj.bias.zero_()
    common = reference.state_dict()  # 'sum' has no gate head: every other tensor is shared
    outs = {}
    for gate in ("softmax", "sigmoid", "sum"):
        module = _fresh_milk(gate, shared=True, residual=False)
        missing, unexpected = module.load_state_dict(common, strict=False)
        assert all(key.startswith("gate_head.") for key in missing) and not unexpected
        with torch.no_grad():
            outs[gate] = module(x, shared_kernel)[:, :6]
    torch.testing.assert_close(outs["softmax"], outs["sigmoid"], atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(outs["sum"], 2 * outs["softmax"], atol=1e-10, rtol=1e-10)


def test_milk_mixed_kernels_at_init_are_the_bases_mean() -> None:
    module = _fresh_milk("softmax", shared=False)
    x, _ = _two_samples()
    with torch.no_grad():
        kernels = module.mixed_kernels(x[:, :6])
    expected = module.bases.detach().mean(0).expand(2, 6, 7, 7)
    torch.testing.assert_close(kernels, expected, atol=1e-12, rtol=1e-12)


def test_network_passes_milk_the_d4_average_of_its_shared_kernel() -> None:
    model = build_model(get_preset("tiny", 2)).double().eval()
    milk = next(m for m in model.modules() if isinstance(m, MiLKConvAttn))
    seen: list[torch.Tensor] = []
    milk.register_forward_pre_hook(lambda _m, args: seen.append(args[1].detach().clone()))
    x = torch.rand(1, 3, 12, 12, dtype=torch.float64)
    assert model.shared_kernel is not None
    expected = _d4_average(model.shared_kernel.detach())
    assert not torch.allclose(model.shared_kernel.detach(), expected)  # averaging changes it
    with torch.no_grad():
        model(x)
        model.deploy()(x)
    assert len(seen) == 2
    torch.testing.assert_close(seen[0], expected, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(seen[1], expected, atol=1e-12, rtol=1e-12)  # baked in by deploy
