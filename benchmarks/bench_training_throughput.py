"""Training throughput of ``srnas train`` (evaluators.fit: loader, AdamW, EMA, logging) against
the search's brief trainer (evaluators.train) on the same batch and patch, per preset.

.venv/bin/python benchmarks/bench_training_throughput.py [--device cpu] [--steps 20]
    [--batch 16] [--patch 64] [--scale 4] [--presets tiny,esc-light] [--workers 0]
    [--threads N]

Steps/s are timed between the end of step 2 (one-time costs such as oneDNN's primitive
creation excluded) and the end of the last step before the final validation; nothing is
validated or checkpointed inside that window. Patch is in HR pixels.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from srnas.evaluators.data import PatchSampler
from srnas.evaluators.device import device_name, resolve_device
from srnas.evaluators.evaluate import DataSpec, load_data
from srnas.evaluators.fit import FitProgress, fit
from srnas.evaluators.recipe import Recipe
from srnas.evaluators.runs import Every
from srnas.evaluators.train import train
from srnas.space import build_model, count_params, get_preset

WARM = 2  # steps left out of the timing


def fit_rate(name: str, args: argparse.Namespace, workers: int) -> float:
    """Steps/s of evaluators.fit between step WARM and step steps - 1."""
    stamps: dict[int, float] = {}

    def progress(p: FitProgress) -> None:
        stamps[p.step] = time.perf_counter()

    recipe = Recipe(steps=args.steps, batch_size=args.batch, patch_size=args.patch)
    with tempfile.TemporaryDirectory() as tmp:
        fit(get_preset(name, args.scale), recipe, Path(tmp) / "run", device=args.device,
            workers=workers, every=Every(checkpoint=args.steps, validate=args.steps, log=1),
            progress=progress)
    last = args.steps - 1
    return (last - WARM) / (stamps[last] - stamps[WARM])


def brief_rate(name: str, args: argparse.Namespace) -> float:
    """Steps/s of the search's brief trainer on the same patches' shape."""
    images = list(load_data(DataSpec(), args.scale)[0])
    sampler = PatchSampler(images, args.scale, args.patch, args.batch, 0)
    torch.manual_seed(0)
    model = build_model(get_preset(name, args.scale))
    stamps: dict[int, float] = {}
    train(model, sampler.next_batch,
          Recipe.brief(steps=args.steps, batch_size=args.batch, patch_size=args.patch),
          resolve_device(args.device),
          progress=lambda step, loss, psnr: stamps.__setitem__(step, time.perf_counter()))
    last = args.steps - 1
    return (last - WARM) / (stamps[last] - stamps[WARM])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=64, help="HR pixels")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--presets", default="tiny,esc-light")
    parser.add_argument("--workers", default="0", help="comma-separated loader worker counts")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    print(f"{device_name(dev)}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"batch {args.batch}, patch {args.patch} HR px, x{args.scale}, {args.steps} steps "
          f"(timed: steps {WARM + 1}-{args.steps - 1})")
    for name in args.presets.split(","):
        params = count_params(build_model(get_preset(name, args.scale)))
        brief = brief_rate(name, args)
        line = f"{name:10s} {params:>8,} params  brief trainer {brief:6.2f} steps/s"
        for w in (int(v) for v in args.workers.split(",")):
            rate = fit_rate(name, args, w)
            line += f"  | srnas train, {w} workers {rate:6.2f} steps/s ({1000 / rate:.0f} ms)"
        print(line, flush=True)


if __name__ == "__main__":
    main()
