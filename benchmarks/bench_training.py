"""Training throughput of the presets at the default patch and batch (CPU or CUDA).

.venv/bin/python benchmarks/bench_training.py [--device cpu] [--steps 10] [--scale 4]
"""

from __future__ import annotations

import argparse
import time

import torch

from srnas.evaluators.data import PatchSampler, default_images
from srnas.evaluators.recipe import Recipe
from srnas.evaluators.train import train
from srnas.space import build_model, get_preset


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--presets", default="tiny,milk-light,esc-light")
    args = parser.parse_args()
    device = torch.device(args.device)
    budget = Recipe.brief(steps=args.steps)
    images = default_images()[0]
    print(
        f"device {device}, threads {torch.get_num_threads()}, batch {budget.batch_size}, "
        f"patch {budget.patch_size} (HR), x{args.scale}"
    )
    for name in args.presets.split(","):
        torch.manual_seed(0)
        model = build_model(get_preset(name, args.scale))
        sampler = PatchSampler(images, args.scale, budget.patch_size, budget.batch_size, 0)
        train(model, sampler.next_batch, Recipe.brief(steps=2), device)  # warm-up
        start = time.perf_counter()
        result = train(model, sampler.next_batch, budget, device)
        seconds = time.perf_counter() - start
        print(
            f"{name:12s} {result.steps / seconds:7.2f} steps/s  "
            f"({seconds / result.steps * 1000:.0f} ms/step)"
        )


if __name__ == "__main__":
    main()
