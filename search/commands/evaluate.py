"""``srnas evaluate``: train one config briefly and measure it, or score the bicubic baseline."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from srnas.search.commands.args import (
    Args,
    Subcommands,
    add_data,
    add_device,
    add_format,
    add_input,
    add_scale,
    command,
    positive_float,
    positive_int,
    resolve_auto,
    seed,
)
from srnas.search.commands.runtime_flags import add_runtime_flags, runtime_spec
from srnas.space.errors import ConfigError


def register(sub: Subcommands, name: str) -> list[Args]:
    a = command(sub, name, help="train one config briefly, then measure PSNR, SSIM, latency, "
                "memory, params and FLOPs (or score --bicubic)")
    a.add("spec", nargs="?", metavar="SPEC", help="preset name or config file")
    add_scale(a)
    a.add("--steps", type=positive_int, default=300, help="training steps (default 300)")
    a.add("--train-seconds", type=positive_float, aliases=("--seconds",),
          help="stop training after this many seconds")
    a.add("--batch-size", type=positive_int, default=8, aliases=("--batch",),
          help="patches per step (default 8)")
    a.add("--patch-size", type=positive_int, default=48, aliases=("--patch",),
          help="HR patch size (default 48)")
    a.add("--lr", type=positive_float, default=5e-4, help="AdamW learning rate (default 5e-4)")
    add_data(a)
    add_device(a)
    add_input(a, "latency/memory/FLOPs input size")
    add_runtime_flags(a)
    a.add("--seed", type=seed, default=0)
    a.add("--bicubic", action="store_true", help="score bicubic up-scaling on --val")
    add_format(a, json_alias=True)
    a.run(_run)
    return [a]


def _run(args: argparse.Namespace) -> int:
    if args.bicubic:
        return _bicubic(args)
    if args.spec is None:
        raise ConfigError("spec", "is required unless --bicubic is given")
    from srnas.evaluators.evaluate import DataSpec, evaluate
    from srnas.evaluators.recipe import Recipe
    from srnas.space.parsing import parse_hw, resolve_spec

    config = resolve_spec(args.spec, args.scale)
    if args.patch_size % config.scale:
        raise ConfigError("patch_size", f"must be a multiple of the scale {config.scale}",
                          args.patch_size)
    recipe = Recipe.brief(steps=args.steps, lr=args.lr, batch_size=args.batch_size,
                          patch_size=args.patch_size, seed=args.seed)
    device = resolve_auto(args.device)
    spec = runtime_spec(args, device)  # before anything is trained
    input_hw = parse_hw(args.input_hw) if args.input_hw else None
    bar = _progress_bar(args.steps, quiet=args.format != "table")
    try:
        result = evaluate(config, recipe, DataSpec(args.train, args.val), device,
                          seconds=args.train_seconds, input_hw=input_hw,
                          progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    out = result.to_dict()
    out = _with_runtime(out, config, spec, recipe.seed, device)
    if args.format == "table":
        _print_result(out)
    else:
        from srnas.search.commands.output import records_text

        sys.stdout.write(records_text([out], args.format))
    return 0 if out["status"] == "ok" else 1


_MEASURED = ("latency_ms", "latency_iqr_ms", "latency_cv", "latency_foreign_cpu", "memory_mb",
             "memory_bytes", "memory_method", "dtype")


def _with_runtime(out: dict[str, Any], config: Any, spec: Any, seed: int,
                  device: str) -> dict[str, Any]:
    """The result's latency and memory as ``spec``'s runtime measures them (eager PyTorch fp32,
    what evaluate() measured, stays beside them as ``eager_latency_ms``/``eager_memory_mb``).

    A network the runtime cannot run or that disagrees with PyTorch is a failed evaluation
    with that reason. The runtime's figures replace the eager ones after training, on a network
    built from the same config and seed: latency and memory do not depend on the weights."""
    import time

    import torch

    from srnas.evaluators.runtime import RuntimeCheckError
    from srnas.space.network import build_model
    from srnas.space.objectives import derived_values

    if (spec.runtime, spec.precision) == ("torch", "fp32"):
        return {**out, "runtime": "torch", "runtime_version": torch.__version__,
                "precision": "fp32"}
    started = time.perf_counter()
    torch.manual_seed(seed)
    try:
        measured = spec.measure(build_model(config), tuple(out["input_hw"]), device)
    except RuntimeCheckError as exc:
        # No latency or memory under the runtime: the eager figures keep their own names only.
        kept = {k: v for k, v in out.items() if k not in _MEASURED}
        return {**kept, "eager_latency_ms": out["latency_ms"], "eager_memory_mb":
                out["memory_mb"], "runtime": spec.runtime, "precision": spec.precision,
                "status": "failed", "failure_reason": str(exc)}
    fields = {k: v for k, v in measured.fields().items() if v is not None}
    out = {**out, "eager_latency_ms": out["latency_ms"], "eager_memory_mb": out["memory_mb"],
           **fields}
    out["phase_seconds"] = {**out["phase_seconds"], "runtime": time.perf_counter() - started}
    return {**out, **derived_values(out)}


class _Bar:
    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit="step", desc="training", file=sys.stderr)

    def update(self, step: int, loss: float, psnr: float | None) -> None:
        self._bar.n = step
        self._bar.set_postfix(loss=f"{loss:.4f}", **({"psnr": f"{psnr:.2f}"} if psnr else {}))

    def close(self) -> None:
        self._bar.close()


def _progress_bar(total: int, quiet: bool) -> _Bar | None:
    """A progress bar on the terminal only (not in pipes, CI logs or machine-readable runs)."""
    return _Bar(total) if sys.stderr.isatty() and not quiet else None


def _print_result(out: dict[str, Any]) -> None:
    psnr = f"{out['psnr']:.3f} dB" if "psnr" in out else "-"
    ssim = f"{out['ssim']:.4f}" if "ssim" in out else "-"
    h, w = out["input_hw"]
    print(f"arch_id     {out['arch_id']}  ({out['arch']['block_type']}, x{out['arch']['scale']})")
    print(f"status      {out['status']}" + (f": {out['failure_reason']}"
                                            if "failure_reason" in out else ""))
    print(f"psnr / ssim {psnr} / {ssim}  after {out['steps']} steps "
          f"({out['train_seconds']:.1f} s)")
    runtime = f"{out.get('runtime', 'torch')} {out.get('precision', 'fp32')}"
    if "latency_ms" in out:
        print(f"latency     {out['latency_ms']:.2f} ms median (IQR {out['latency_iqr_ms']:.2f} "
              f"ms) at {h}x{w} on {out['device']}, {out['threads']} threads, {runtime}"
              + (f" (eager PyTorch fp32: {out['eager_latency_ms']:.2f} ms)"
                 if "eager_latency_ms" in out else ""))
        print(f"memory      {out['memory_mb']:.2f} MB peak ({out['memory_method']})")
    else:
        print(f"latency     - ({runtime} could not measure it; eager PyTorch fp32: "
              f"{out['eager_latency_ms']:.2f} ms)")
    print(f"params      {out['params']:,}")
    print(f"flops       {out['flops'] / 1e9:.3f} G multiply-adds at {h}x{w}")
    phases = ", ".join(f"{k} {v:.2f}s" for k, v in out["phase_seconds"].items())
    print(f"phases      {phases}")


def _bicubic(args: argparse.Namespace) -> int:
    if args.val is None:
        raise ConfigError("val", "is required with --bicubic (a benchmark folder)")
    if args.scale is None:
        raise ConfigError("scale", "is required with --bicubic")
    from srnas.evaluators.bicubic import bicubic_baseline
    from srnas.evaluators.data import benchmark_set

    out = {"method": "bicubic", "scale": args.scale, "val": args.val,
           **bicubic_baseline(benchmark_set(args.val, args.scale), args.scale)}
    if args.format == "table":
        print(f"bicubic x{args.scale} on {args.val}: PSNR {out['psnr']:.2f} dB, "
              f"SSIM {out['ssim']:.4f} ({out['images']} images)")
    else:
        from srnas.search.commands.output import records_text

        sys.stdout.write(records_text([out], args.format))
    return 0
