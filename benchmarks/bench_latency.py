"""Latency repeatability and memory reproducibility at the default input, per preset.

For each preset: ``--repeats`` independent latency measurements (each with its own warm-up),
their medians, the CV across those medians (goal: <= 5 % on an idle machine), the wall time one
measurement costs a trial, the most CPU other processes used while it timed (an idle machine
shows ~0), and the memory figure measured twice (goal: identical).

    python benchmarks/bench_latency.py                       # CPU, x4, tiny/milk-light/esc-light
    python benchmarks/bench_latency.py --device cuda --scale 2
"""

from __future__ import annotations

import argparse
import statistics
import time

from srnas.evaluators.device import environment, resolve_device
from srnas.evaluators.latency import (
    DEFAULT_RUNS,
    DEFAULT_WARMUP,
    MIN_TIMED_S,
    MIN_WARMUP_S,
    default_latency_input_hw,
    measure_latency,
)
from srnas.evaluators.memory import measure_memory
from srnas.space.network import build_model, count_params
from srnas.space.presets import get_preset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "milk-light", "esc-light"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--min-warmup-s", type=float, default=MIN_WARMUP_S)
    parser.add_argument("--min-timed-s", type=float, default=MIN_TIMED_S)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    device = resolve_device(args.device)
    hw = default_latency_input_hw(device, args.scale)
    print(f"environment: {environment(device)}")
    print(
        f"input {hw[0]}x{hw[1]} (x{args.scale}), warm-up {args.warmup} runs and "
        f">= {args.min_warmup_s} s, >= {args.runs} timed runs and >= {args.min_timed_s} s, "
        f"{args.repeats} repeats; 'other': max cores used by other processes while timing"
    )
    header = (
        f"{'preset':<11} {'params':>8} {'median ms':>10} {'CV medians':>10} "
        f"{'in-run IQR':>10} {'s/measure':>9} {'other':>5}  {'memory MiB (bytes) x2':<36} medians"
    )
    print(header)
    print("-" * len(header))
    for name in args.presets:
        model = build_model(get_preset(name, args.scale))
        medians, iqrs, costs, loads = [], [], [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            result = measure_latency(
                model,
                hw,
                device,
                warmup=args.warmup,
                runs=args.runs,
                threads=args.threads,
                min_warmup_s=args.min_warmup_s,
                min_timed_s=args.min_timed_s,
            )
            costs.append(time.perf_counter() - started)
            medians.append(result.median_ms)
            iqrs.append(result.iqr_ms / result.median_ms)
            loads.append(result.foreign_cpu or 0.0)
        mem = [measure_memory(model, hw, device) for _ in range(2)]
        cv = statistics.stdev(medians) / statistics.fmean(medians)
        same = "identical" if mem[0].peak_bytes == mem[1].peak_bytes else "DIFFER"
        memory = f"{mem[0].peak_mb:.2f} ({mem[0].peak_bytes}, {mem[1].peak_bytes}) {same}"
        print(
            f"{name:<11} {count_params(model):>8} {statistics.median(medians):>10.2f} "
            f"{cv:>10.1%} {statistics.median(iqrs):>10.1%} {statistics.fmean(costs):>9.2f} "
            f"{max(loads):>5.2f}  "
            f"{memory:<36} {' '.join(f'{m:.2f}' for m in medians)}"
        )


if __name__ == "__main__":
    main()
