"""ESC-light and ESC on a GPU, measured with the project's own functions, beside the paper.

For each preset at x4 with a 1280x720 output (input 180x320), fp32, batch 1, deployed network
(``build_model(cfg).deploy()``: the D4 average of the shared kernel baked in):

* latency: ``evaluators.latency.measure_latency`` (cudnn.benchmark, CUDA events, median, IQR);
* peak memory: ``evaluators.memory.measure_memory`` (``max_memory_allocated`` after a warm-up
  pass, weights and input included), in MiB (= the papers' MB);
* parameters (shared kernel once) and, with ``--flops``, fvcore FLOPs (multiply-adds, matmul
  attention path; counted on the CPU);

with window attention on SDPA (the library default) and on the plain matmul path, and (unless
``--quick``) once more with TF32 off for both cuDNN and matmul (strict fp32). The paper's
figures (ESC, ICCV 2025; RTX 4090, fp32): ESC-light 13.3 ms / 213 MB, ESC 21.9 ms / 215 MB.

It also checks the CUDA paths against the CPU ones on a small input (same weights, TF32 off):
CUDA vs CPU output, SDPA vs matmul, batch of 2 vs two batches of 1.

    python benchmarks/bench_gpu.py [--quick] [--json gpu.json]
    python benchmarks/bench_gpu.py --device cpu --input 32x32 --quick   # smoke test, no GPU
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from srnas.evaluators.device import environment, resolve_device
from srnas.evaluators.latency import measure_latency
from srnas.evaluators.memory import measure_memory
from srnas.space.network import SRNet, build_model, count_params
from srnas.space.presets import get_preset

SCALE = 4
INPUT_HW = (180, 320)  # 1280x720 output at x4
CHECK_HW = (48, 80)  # small input for the CUDA-vs-CPU checks (pads to 2x3 windows of 32)
# RTX 4090, fp32, 1280x720 output (ESC paper, Table of lightweight x4 models).
PAPER = {"esc-light": {"ms": 13.3, "mb": 213.0, "params_k": 624},
         "esc": {"ms": 21.9, "mb": 215.0, "params_k": 968}}


def _flags() -> dict[str, Any]:
    """TF32, SDPA-backend and cuDNN settings in force (each read on its own: APIs move)."""
    getters = {
        "tf32_matmul": lambda: torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": lambda: torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision,
        "fp32_precision_matmul": lambda: torch.backends.cuda.matmul.fp32_precision,
        "fp32_precision_cudnn": lambda: torch.backends.cudnn.fp32_precision,
        "cudnn_benchmark_outside": lambda: torch.backends.cudnn.benchmark,
    }
    for name in ("flash_sdp_enabled", "mem_efficient_sdp_enabled", "math_sdp_enabled",
                 "cudnn_sdp_enabled"):
        getters[name] = getattr(torch.backends.cuda, name, lambda: None)
    flags: dict[str, Any] = {}
    for name, get in getters.items():
        try:
            flags[name] = get()
        except Exception as exc:
            flags[name] = f"error: {type(exc).__name__}: {exc}"
    return flags


@contextmanager
def _tf32(enabled: bool | None) -> Iterator[None]:
    """TF32 for cuDNN and matmul set to ``enabled`` inside the block (None: leave as is)."""
    if enabled is None:
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _model(name: str, impl: str) -> SRNet:
    torch.manual_seed(0)
    return build_model(get_preset(name, SCALE)).deploy().set_attention_impl(impl)  # type: ignore[arg-type]


def _clear(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def measure(name: str, impl: str, tf32: bool | None, device: torch.device,
            hw: tuple[int, int], quick: bool) -> dict[str, Any]:
    model = _model(name, impl)
    timing = dict(warmup=5, runs=10, min_warmup_s=0.2, min_timed_s=0.3) if quick else {}
    started = time.perf_counter()
    with _tf32(tf32):
        lat = measure_latency(model, hw, device, **timing)
        mem = measure_memory(model, hw, device)
    row = {
        "model": name, "attention": impl,
        "tf32": "default" if tf32 is None else ("on" if tf32 else "off"),
        "params": count_params(model),
        "median_ms": lat.median_ms, "iqr_ms": lat.iqr_ms, "mean_ms": lat.mean_ms,
        "min_ms": lat.min_ms, "cv": lat.cv, "runs": lat.runs, "warmup": lat.warmup,
        "peak_mb": mem.peak_mb, "peak_bytes": mem.peak_bytes,
        "baseline_bytes": mem.baseline_bytes, "memory_method": mem.method,
        "input_hw": list(hw), "device": lat.device, "dtype": lat.dtype,
        "paper_4090_ms": PAPER.get(name, {}).get("ms"),
        "paper_4090_mb": PAPER.get(name, {}).get("mb"),
        "seconds": time.perf_counter() - started,
    }
    del model
    _clear(device)
    return row


def flops(name: str, hw: tuple[int, int]) -> int | str:
    try:
        from srnas.space.complexity import count_flops

        return count_flops(_model(name, "matmul"), hw)
    except Exception as exc:  # fvcore missing or failing: the timing figures still count
        return f"error: {type(exc).__name__}: {exc}"


def consistency(device: torch.device) -> dict[str, Any]:
    """Max |difference| of outputs that must agree (TF32 off, same weights, CHECK_HW input)."""
    out: dict[str, Any] = {"input_hw": list(CHECK_HW)}
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, *CHECK_HW, generator=g)
    with _tf32(False if device.type == "cuda" else None), torch.inference_mode():
        for name in ("esc-light", "milk-light", "tiny"):
            try:
                cpu = _model(name, "matmul").eval()
                # Zero-initialised heads (dynamic kernels, router, gate) would make the
                # per-sample paths trivially equal: perturb every weight first.
                pg = torch.Generator().manual_seed(2)
                for p in cpu.parameters():
                    p.add_(0.02 * torch.randn(p.shape, generator=pg))
                ref = cpu(x[:1])
                dev = copy.deepcopy(cpu).to(device)
                mm = dev(x[:1].to(device))
                dev.set_attention_impl("sdpa")
                sd = dev(x[:1].to(device))
                both = dev(x.to(device))
                second = dev(x[1:].to(device))
                scale = ref.abs().max().item()
                out[name] = {
                    "device_vs_cpu": (mm.cpu() - ref).abs().max().item(),
                    "sdpa_vs_matmul": (sd - mm).abs().max().item(),
                    "batch2_vs_batch1": max((both[:1] - sd).abs().max().item(),
                                            (both[1:] - second).abs().max().item()),
                    "output_max_abs": scale,
                    "finite": bool(torch.isfinite(both).all().item()),
                }
                del cpu, dev
            except Exception as exc:
                out[name] = {"error": f"{type(exc).__name__}: {exc}",
                             "traceback": traceback.format_exc(limit=6)}
            _clear(device)
    return out


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table(rows: list[dict[str, Any]], flop_counts: dict[str, Any]) -> str:
    lines = [
        "| model | attention | TF32 | params | GFLOPs | median ms | IQR ms | runs | peak MB "
        "| paper 4090 ms | paper MB | ms / paper |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        f = flop_counts.get(r["model"])
        gflops = f"{f / 1e9:.1f}" if isinstance(f, int) else "-"
        ratio = r["median_ms"] / r["paper_4090_ms"] if r["paper_4090_ms"] else None
        lines.append(
            f"| {r['model']} | {r['attention']} | {r['tf32']} | {r['params']:,} | {gflops} "
            f"| {r['median_ms']:.2f} | {r['iqr_ms']:.3f} | {r['runs']} | {r['peak_mb']:.1f} "
            f"| {_fmt(r['paper_4090_ms'], '.1f')} | {_fmt(r['paper_4090_mb'], '.0f')} "
            f"| {_fmt(ratio, '.2f')} |")
    return "\n".join(lines)


def _parse_hw(text: str) -> tuple[int, int]:
    h, w = text.lower().split("x")
    return int(h), int(w)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="SDPA only, default TF32 flags, fewer timed runs")
    parser.add_argument("--device", default="cuda", help="default cuda (cpu: smoke test)")
    parser.add_argument("--input", default=f"{INPUT_HW[0]}x{INPUT_HW[1]}", metavar="HxW")
    parser.add_argument("--presets", nargs="+", default=["esc-light", "esc", "milk-light"])
    parser.add_argument("--flops", action="store_true",
                        help="also count fvcore FLOPs (on the CPU: ~10 s a preset at 180x320)")
    parser.add_argument("--json", help="write every figure and condition to this file")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    hw = _parse_hw(args.input)
    env = environment(device)
    env.update(_flags() if device.type == "cuda" else {})
    print(f"environment: {json.dumps(env)}")
    print(f"input {hw[0]}x{hw[1]} (output {hw[0] * SCALE}x{hw[1] * SCALE}), x{SCALE}, fp32, "
          f"batch 1, deployed; {'quick' if args.quick else 'library protocol'}")
    result: dict[str, Any] = {"environment": env, "input_hw": list(hw), "quick": args.quick,
                              "paper_rtx4090_fp32": PAPER, "rows": [], "errors": []}
    t0 = time.perf_counter()
    variants: list[tuple[str, bool | None]] = [("sdpa", None)]
    if not args.quick:
        variants += [("matmul", None), ("sdpa", False)]
    rows: list[dict[str, Any]] = []
    for name in args.presets:
        for impl, tf32 in variants:
            try:
                row = measure(name, impl, tf32, device, hw, args.quick)
            except Exception as exc:
                result["errors"].append({"model": name, "attention": impl, "tf32": tf32,
                                         "error": f"{type(exc).__name__}: {exc}",
                                         "traceback": traceback.format_exc(limit=8)})
                print(f"{name} {impl} tf32={tf32}: FAILED {type(exc).__name__}: {exc}",
                      flush=True)
                _clear(device)
                continue
            rows.append(row)
            print(f"{name:<10} {impl:<6} tf32={row['tf32']:<7} {row['median_ms']:8.2f} ms "
                  f"(IQR {row['iqr_ms']:.3f}, {row['runs']} runs)  {row['peak_mb']:8.1f} MB  "
                  f"[{row['seconds']:.1f} s]", flush=True)
    result["rows"] = rows
    flop_counts: dict[str, Any] = {}
    if args.flops:
        for name in args.presets:
            flop_counts[name] = flops(name, hw)
    result["flops"] = flop_counts
    result["consistency"] = consistency(device)
    result["seconds"] = time.perf_counter() - t0

    print()
    print(table(rows, flop_counts))
    print("\npaper: RTX 4090, fp32, 1280x720 output; reference FLOPs x4: ESC-light 91.0 G, "
          "ESC 149.2 G; peak MB = max_memory_allocated / 2**20")
    print(f"\nconsistency (max |diff|, TF32 off, input {CHECK_HW[0]}x{CHECK_HW[1]}):")
    for name, c in result["consistency"].items():
        if name != "input_hw":
            print(f"  {name}: {json.dumps(c.get('error', c))}")
    for err in result["errors"]:
        print(f"ERROR {err['model']} {err['attention']}: {err['error']}\n{err['traceback']}")
    print(f"total {result['seconds']:.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, default=str)
    failed = bool(result["errors"]) or any(
        "error" in c for k, c in result["consistency"].items() if k != "input_hw")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
