"""The blocks' headline claim, measured: convolutional attention against window self-attention.

Layers (width 64, batch 1, inference mode, on a width-64 feature map):

* ``convattn``: ESC's ConvAttn (pdim 16, shared dense 13x13 kernel, already D4-averaged as after
  ``deploy()``) followed by ESC's 1x1 aggregation;
* ``milk``: MiLK-ConvAttn as in the 'milk-light' preset (8 bases, softmax gate, shared kernel on,
  no inner residual) followed by the same 1x1 aggregation;
* ``window-matmul`` / ``window-sdpa``: ESC's 32x32 non-shifted window self-attention (4 heads,
  relative-position bias, q/k/v and output 1x1 convs), plain matmul path and SDPA path.

Networks (x4, deployed): ESC-light against the same network with every ConvAttn layer replaced
by a window self-attention layer on all 64 channels (the paper's all-attention comparison; helper
below, not in the library), each with its window attention on the matmul path and on SDPA; and
'conv-only', ESC-light without its one window attention per block (``window_attn=False``). The
network peak is the largest single layer's, so ESC-light (which keeps a window attention in each
block) and all-window have about the same peak; conv-only shows what dropping attention saves.

Inputs: the LR input of a 1280x720 output at x4 (180x320) and a smaller one (64x64, the LR input
of a 256x256 output); with ``--quick`` on CPU the networks run at the smaller one only (an
all-window forward at 180x320 takes tens of seconds on a few cores). Latency is
``evaluators.latency.measure_latency`` (median; CUDA events on CUDA), memory is
``evaluators.memory.measure_memory`` (the exact live-tensor counter on CPU,
``max_memory_allocated`` on CUDA); both count the weights and the input, so the table also gives
the activation memory (peak - baseline). Ratios are attention / convolution from one run.
The paper (ESC, ICCV 2025) reports 16x lower latency and 12.2x lower memory on GPU.

    python benchmarks/bench_blocks.py [--device cpu|cuda] [--quick] [--threads N] [--json F]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from typing import Any

import torch
from torch import Tensor, nn

from srnas.evaluators.device import environment, resolve_device
from srnas.evaluators.latency import measure_latency
from srnas.evaluators.memory import measure_memory
from srnas.space.modules import (
    ConvAttn,
    ConvAttnLayer,
    MiLKConvAttn,
    WindowAttention,
    d4_symmetrize,
)
from srnas.space.network import SRNet, build_model, count_params
from srnas.space.presets import get_preset

DIM, PDIM, KERNEL, WINDOW, HEADS, DICT_SIZE = 64, 16, 13, 32, 4, 8
LARGE_HW = (180, 320)  # the LR input of a 1280x720 output at x4 (ESC's protocol)
SMALL_HW = (64, 64)  # the LR input of a 256x256 output at x4 (the CPU default)
PAPER = "ESC paper: ConvAttn vs self-attention, 16x lower latency, 12.2x lower memory (GPU)"


# ---- modules under test ------------------------------------------------------------------------


class OnFeature(nn.Module):
    """Runs one width-``DIM`` layer on a fixed seeded feature map held as a buffer.

    The project's measurement functions feed a (1, 3, H, W) image; a layer of the network sees a
    (1, DIM, H, W) feature map instead, so the wrapper ignores the image and uses its buffer (it
    moves with the model and is counted in the memory baseline, as the input would be).
    """

    def __init__(self, layer: nn.Module, input_hw: tuple[int, int],
                 shared_kernel: Tensor | None = None) -> None:
        super().__init__()
        self.layer = layer
        generator = torch.Generator().manual_seed(0)
        self.register_buffer("feature", torch.randn(1, DIM, *input_hw, generator=generator))
        self.shared_kernel = None if shared_kernel is None else nn.Parameter(shared_kernel)

    def forward(self, x: Tensor) -> Tensor:
        if isinstance(self.layer, WindowAttention):
            return self.layer(self.feature)
        return self.layer(self.feature, self.shared_kernel)


def _shared_kernel() -> Tensor:
    weight = torch.empty(PDIM, PDIM, KERNEL, KERNEL)
    nn.init.orthogonal_(weight)
    return d4_symmetrize(weight)  # what deploy() bakes in: no per-call averaging


def make_layer(kind: str, input_hw: tuple[int, int]) -> nn.Module:
    torch.manual_seed(0)
    if kind == "convattn":
        return OnFeature(ConvAttnLayer(ConvAttn(PDIM), DIM), input_hw, _shared_kernel())
    if kind == "milk":
        milk = MiLKConvAttn(DIM, PDIM, KERNEL, DICT_SIZE, "softmax", use_shared_kernel=True,
                            residual=False)
        return OnFeature(ConvAttnLayer(milk, DIM), input_hw, _shared_kernel())
    impl = kind.removeprefix("window-")
    attn = WindowAttention(DIM, WINDOW, HEADS)
    attn.impl = impl  # type: ignore[assignment]
    return OnFeature(attn, input_hw)


class WindowInPlaceOfConvAttn(nn.Module):
    """A window self-attention layer with ConvAttn's call signature (the kernel is ignored)."""

    def __init__(self, dim: int, window: int, heads: int) -> None:
        super().__init__()
        self.attn = WindowAttention(dim, window, heads)

    def forward(self, x: Tensor, shared_kernel: Tensor | None = None) -> Tensor:
        return self.attn(x)


def all_window(model: SRNet) -> SRNet:
    """``model`` with every ConvAttn layer's attention replaced by window self-attention on all
    channels (ESC's 1x1 aggregation kept); the then unused shared kernel is dropped."""
    cfg = model.config
    for block in model.blocks:
        for layer in block.convattns:
            layer.attn = WindowInPlaceOfConvAttn(cfg.dim, cfg.window_size, cfg.heads)
    model.shared_kernel = None
    return model


def make_network(kind: str, impl: str) -> SRNet:
    torch.manual_seed(0)
    cfg = get_preset("esc-light", 4)
    if kind == "conv-only":
        cfg = cfg.replace(window_attn=False)  # a point of the search space
    model = build_model(cfg)
    if kind == "all-window":
        model = all_window(model)
    return model.deploy().set_attention_impl(impl)  # type: ignore[arg-type]


# ---- measurement ---------------------------------------------------------------------------------


def _measure(model: nn.Module, hw: tuple[int, int], device: torch.device,
             args: argparse.Namespace) -> dict[str, Any]:
    # Quick: >= 1 warm-up and >= 3 timed runs, more while under 0.1 s / 0.3 s (cheap layers).
    quick = dict(warmup=1, runs=3, min_warmup_s=0.1, min_timed_s=0.3)
    timing: dict[str, Any] = quick if args.quick else {}
    started = time.perf_counter()
    lat = measure_latency(model, hw, device, threads=args.threads, **timing)
    mem = measure_memory(model, hw, device)
    row = {
        "params": count_params(model),
        "median_ms": lat.median_ms,
        "iqr_ms": lat.iqr_ms,
        "runs": lat.runs,
        "foreign_cpu": lat.foreign_cpu,
        "peak_mb": mem.peak_mb,
        "act_mb": (mem.peak_bytes - mem.baseline_bytes) / 2**20,
        "peak_bytes": mem.peak_bytes,
        "baseline_bytes": mem.baseline_bytes,
        "method": mem.method,
        "seconds": time.perf_counter() - started,
    }
    del model
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def _row(name: str, r: dict[str, Any]) -> str:
    other = "-" if r["foreign_cpu"] is None else f"{r['foreign_cpu']:.2f}"
    return (f"| {name:<22} | {r['params']:>9,} | {r['median_ms']:>10.3f} | {r['iqr_ms']:>8.3f} "
            f"| {r['runs']:>4} | {other:>5} | {r['peak_mb']:>9.2f} | {r['act_mb']:>9.2f} |")


# 'other': cores busy with other processes while timing (0 on an idle machine).
HEADER = ("| module                 |    params |  median ms |   IQR ms | runs | other "
          "|   peak MB |    act MB |\n|---|---:|---:|---:|---:|---:|---:|---:|")


def _ratio(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float, float]:
    return (a["median_ms"] / b["median_ms"], a["peak_mb"] / b["peak_mb"],
            a["act_mb"] / b["act_mb"] if b["act_mb"] > 0 else float("nan"))


RATIO_HEADER = ("| comparison (slower / faster)                   | input   | latency x "
                "| peak mem x | act mem x |\n|---|---|---:|---:|---:|")


def _ratio_row(label: str, hw: tuple[int, int], r: tuple[float, float, float]) -> str:
    return (f"| {label:<46} | {f'{hw[0]}x{hw[1]}':<7} | {r[0]:>9.2f} | {r[1]:>10.2f} "
            f"| {r[2]:>9.2f} |")


def _parse_hw(text: str) -> tuple[int, int]:
    h, w = text.lower().split("x")
    return int(h), int(w)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--quick", action="store_true",
                        help="few timed runs (1 warm-up, >= 3 runs / 0.3 s) instead of the "
                        "library's protocol (>= 10 warm-ups / 0.5 s, >= 30 runs / 1 s)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    parser.add_argument("--sizes", nargs="+", default=None, metavar="HxW",
                        help=f"inputs (default {LARGE_HW[0]}x{LARGE_HW[1]} "
                        f"{SMALL_HW[0]}x{SMALL_HW[1]})")
    parser.add_argument("--net-sizes", nargs="+", default=None, metavar="HxW",
                        help="inputs of the whole-network comparison (default: as --sizes)")
    parser.add_argument("--no-networks", action="store_true", help="layers only")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    sizes = [_parse_hw(s) for s in args.sizes] if args.sizes else [LARGE_HW, SMALL_HW]
    if args.net_sizes:
        net_sizes = [_parse_hw(s) for s in args.net_sizes]
    elif args.quick and device.type == "cpu":
        # An all-window ESC-light forward at 180x320 takes minutes on a few cores.
        net_sizes = [hw for hw in sizes if hw[0] * hw[1] <= SMALL_HW[0] * SMALL_HW[1]] or sizes
    else:
        net_sizes = sizes
    if args.no_networks:
        net_sizes = []
    env = environment(device)
    if device.type == "cuda":
        env["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        env["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
    if args.threads is not None:
        env["threads"] = args.threads
    print(f"environment: {env}")
    counter = "max_memory_allocated" if device.type == "cuda" else "live-tensor counter"
    print(f"protocol: {'quick' if args.quick else 'library defaults'}, fp32, batch 1, "
          f"inference mode; memory: {counter}; act = peak - (weights + input); "
          f"other = cores used by other processes while timing")
    print(PAPER)
    out: dict[str, Any] = {"environment": env, "quick": args.quick, "layers": {},
                           "networks": {}, "ratios": []}
    ratio_lines: list[str] = []
    t0 = time.perf_counter()

    print("\n## Layers (width 64)\n")
    for hw in sizes:
        key = f"{hw[0]}x{hw[1]}"
        print(f"input {key} (feature map 1x{DIM}x{key})\n{HEADER}")
        rows: dict[str, dict[str, Any]] = {}
        for kind in ("convattn", "milk", "window-matmul", "window-sdpa"):
            rows[kind] = _measure(make_layer(kind, hw), hw, device, args)
            print(_row(kind, rows[kind]), flush=True)
        out["layers"][key] = rows
        for attn in ("window-matmul", "window-sdpa"):
            for conv in ("convattn", "milk"):
                r = _ratio(rows[attn], rows[conv])
                ratio_lines.append(_ratio_row(f"layer {attn} / {conv}", hw, r))
                out["ratios"].append({"what": "layer", "slow": attn, "fast": conv, "input": key,
                                      "latency": r[0], "peak_memory": r[1], "act_memory": r[2]})
        print()

    if net_sizes:
        print("## Networks (x4, deployed)\n")
    for hw in net_sizes:
        key = f"{hw[0]}x{hw[1]}"
        print(f"input {key} (output {hw[0] * 4}x{hw[1] * 4})\n{HEADER}")
        rows = {"conv-only": _measure(make_network("conv-only", "sdpa"), hw, device, args)}
        print(_row("conv-only", rows["conv-only"]), flush=True)
        for impl in ("matmul", "sdpa"):
            for kind in ("esc-light", "all-window"):
                name = f"{kind} ({impl})"
                rows[name] = _measure(make_network(kind, impl), hw, device, args)
                print(_row(name, rows[name]), flush=True)
            for fast in (f"esc-light ({impl})", "conv-only"):
                slow = f"all-window ({impl})"
                r = _ratio(rows[slow], rows[fast])
                ratio_lines.append(_ratio_row(f"net {slow} / {fast}", hw, r))
                out["ratios"].append({"what": "network", "slow": slow, "fast": fast,
                                      "input": key, "latency": r[0], "peak_memory": r[1],
                                      "act_memory": r[2]})
        out["networks"][key] = rows
        print()

    print(f"## Ratios (one run, {env['device']})\n")
    print(RATIO_HEADER)
    print("\n".join(ratio_lines))
    print(f"\n{PAPER}")
    out["seconds"] = time.perf_counter() - t0
    print(f"total {out['seconds']:.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
