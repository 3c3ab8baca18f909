"""``srnas evaluate``: train one config briefly and measure it, or score the bicubic baseline."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from srnas.space.errors import ConfigError


def positive_int(field: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{field} must be a positive integer "
                                             f"(got {text!r})") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{field} must be a positive integer (got {value})")
        return value
    return parse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="train one config briefly, then measure PSNR, SSIM, "
                       "latency, memory, params and FLOPs (or score --bicubic)")
    p.add_argument("spec", nargs="?", metavar="SPEC", help="preset name or config file")
    p.add_argument("--scale", type=int, choices=(2, 3, 4), help="upscaling factor")
    p.add_argument("--steps", type=positive_int("--steps"), default=300,
                   help="training steps (default 300)")
    p.add_argument("--seconds", type=float, help="stop training after this many seconds")
    p.add_argument("--batch", type=positive_int("--batch"), default=8)
    p.add_argument("--patch", type=positive_int("--patch"), default=48,
                   help="HR patch size (default 48)")
    p.add_argument("--lr", type=float, default=5e-4, help="AdamW learning rate (default 5e-4)")
    p.add_argument("--train", metavar="DIR", help="folder of HR training images "
                   "(default: scikit-image's bundled photographs)")
    p.add_argument("--val", metavar="DIR", help="benchmark folder (HR + LR_bicubic/X<s>) or "
                   "HR-only folder (default: held-out bundled photographs)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--input", dest="input_hw", metavar="HxW",
                   help="latency/memory/FLOPs input size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bicubic", action="store_true", help="score bicubic up-scaling on --val")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.bicubic:
        return _bicubic(args)
    if args.spec is None:
        raise ConfigError("SPEC", "is required unless --bicubic is given", None)
    from srnas.evaluators.evaluate import DataSpec, evaluate
    from srnas.evaluators.train import TrainBudget
    from srnas.space.parsing import parse_hw, resolve_spec

    config = resolve_spec(args.spec, args.scale)
    if args.patch % config.scale:
        raise ConfigError("--patch", f"must be a multiple of the scale {config.scale}",
                          args.patch)
    budget = TrainBudget(steps=args.steps, seconds=args.seconds, lr=args.lr,
                         batch_size=args.batch, patch_size=args.patch, seed=args.seed)
    bar = _progress_bar(args.steps, quiet=args.json)
    try:
        result = evaluate(config, budget, DataSpec(args.train, args.val), args.device,
                          input_hw=parse_hw(args.input_hw) if args.input_hw else None,
                          progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    out = result.to_dict()
    if args.json:
        print(json.dumps(out))
    else:
        _print_result(out)
    return 0 if result.status == "ok" else 1


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
    """A progress bar on the terminal only (not in pipes, CI logs or --json runs)."""
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
    print(f"latency     {out['latency_ms']:.2f} ms median (IQR {out['latency_iqr_ms']:.2f} ms) "
          f"at {h}x{w} on {out['device']}, {out['threads']} threads")
    print(f"memory      {out['memory_mb']:.2f} MB peak ({out['memory_method']})")
    print(f"params      {out['params']:,}")
    print(f"flops       {out['flops'] / 1e9:.3f} G multiply-adds at {h}x{w}")
    phases = ", ".join(f"{k} {v:.2f}s" for k, v in out["phase_seconds"].items())
    print(f"phases      {phases}")


def _bicubic(args: argparse.Namespace) -> int:
    if args.val is None:
        raise ConfigError("--val", "is required with --bicubic (a benchmark folder)", None)
    if args.scale is None:
        raise ConfigError("--scale", "is required with --bicubic", None)
    from pathlib import Path

    from srnas.evaluators.bicubic import bicubic_baseline
    from srnas.evaluators.data import benchmark_set

    if not Path(args.val).is_dir():
        raise ConfigError("--val", "must be an existing folder", args.val)
    out = {"method": "bicubic", "scale": args.scale, "val": args.val,
           **bicubic_baseline(benchmark_set(args.val, args.scale), args.scale)}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"bicubic x{args.scale} on {args.val}: PSNR {out['psnr']:.2f} dB, "
              f"SSIM {out['ssim']:.4f} ({out['images']} images)")
    return 0
