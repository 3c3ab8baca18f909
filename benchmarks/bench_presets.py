"""Build and forward time of each preset at a 64x64 input on this machine (batch 1, eval).

    .venv/bin/python benchmarks/bench_presets.py [--input 64x64] [--scale 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from srnas.space import PRESET_NAMES, build_model, count_params, get_preset
from srnas.space.parsing import parse_hw


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", default="64x64")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    h, w = parse_hw(args.input)
    x = torch.rand(1, 3, h, w)
    print(f"input {h}x{w}, x{args.scale}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    for name in PRESET_NAMES:
        start = time.perf_counter()
        model = build_model(get_preset(name, args.scale)).eval()
        build = time.perf_counter() - start
        with torch.inference_mode():
            start = time.perf_counter()
            model(x)
            first = time.perf_counter() - start
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - start)
        print(f"{name:11s} {count_params(model):>9,} params  build {build * 1e3:7.1f} ms  "
              f"first forward {first * 1e3:7.1f} ms  median forward "
              f"{statistics.median(times) * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
