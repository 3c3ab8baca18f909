"""Eager PyTorch against the CPU deployment runtimes (ONNX Runtime, OpenVINO) on random
architectures of the default search space: does the latency axis rank networks the same way?

Per network (drawn by Optuna's RandomSampler from ``SearchSpace()``, x4, built with seed 0):
one export as ``srnas export --onnx`` does (:func:`evaluators.deploy.export_onnx`), then each
runtime measured with :func:`evaluators.runtime.measure_runtime` (output checked against
PyTorch first; the default latency protocol; ``--threads`` threads). Reported: Kendall tau
between each pair of latency columns with a bootstrap 95 % interval over networks, discordant
pairs, the per-network ratio ranges, and FLOPs / parameters against each runtime.

    python benchmarks/bench_runtimes.py                    # 24 networks, 1 thread, 64x64
    python benchmarks/bench_runtimes.py --archs 12 --budget-s 300 --json out.json
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from scipy.stats import kendalltau

from srnas.evaluators.deploy import export_onnx
from srnas.evaluators.device import environment
from srnas.evaluators.flops import measure_complexity
from srnas.evaluators.runtime import RuntimeCheckError, measure_runtime
from srnas.space.network import build_model
from srnas.space.searchspace import SearchSpace


def _pairs(a: list[float], b: list[float]) -> tuple[int, int]:
    """(discordant, total) pairs between two columns."""
    discordant = total = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        total += 1
        discordant += (a[i] - a[j]) * (b[i] - b[j]) < 0
    return discordant, total


def _tau_interval(a: list[float], b: list[float], draws: int = 2000, seed: int = 0
                  ) -> tuple[float, float, float]:
    tau = float(kendalltau(a, b).statistic)
    rng = np.random.default_rng(seed)
    x, y = np.asarray(a), np.asarray(b)
    boots = []
    for _ in range(draws):
        idx = rng.integers(0, len(x), len(x))
        if len(set(idx.tolist())) > 2:
            value = kendalltau(x[idx], y[idx]).statistic
            if np.isfinite(value):
                boots.append(value)
    low, high = np.quantile(boots, [0.025, 0.975])
    return tau, float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--input", default="64x64")
    parser.add_argument("--budget-s", type=float, default=600.0,
                        help="stop drawing networks after this many seconds")
    parser.add_argument("--json", help="write the per-network rows here")
    # Shorter phases than a trial's default (10 + 30 runs, >= 0.5 s + 1 s) so that 24 networks
    # x 3 runtimes fit ~10 minutes on 2 shared cores; the same loop and floors otherwise.
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--min-timed-s", type=float, default=0.5)
    args = parser.parse_args()

    hw = tuple(int(v) for v in args.input.split("x"))
    runtimes = ["torch", "onnxruntime"] + (
        ["openvino"] if importlib.util.find_spec("openvino") else [])
    print(f"environment: {environment(torch.device('cpu'))}")
    print(f"runtimes {runtimes}, {args.threads} thread(s), input {hw[0]}x{hw[1]} (x4), "
          f"up to {args.archs} networks, budget {args.budget_s:g} s")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=args.seed))
    space = SearchSpace()
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        while len(rows) < args.archs and time.perf_counter() - started < args.budget_s:
            arch = space.sample(study.ask(), 4).arch
            torch.manual_seed(0)
            model = build_model(arch)
            row: dict[str, Any] = {"arch_id": arch.arch_id, "block_type": arch.block_type,
                                   **measure_complexity(model.deploy(), hw)}
            path = Path(tmp) / f"{arch.arch_id}.onnx"
            t = time.perf_counter()
            export_onnx(model, path)
            row["export_s"] = time.perf_counter() - t
            try:
                for runtime in runtimes:
                    m = measure_runtime(model, hw, "cpu", runtime=runtime,
                                        threads=args.threads, warmup=args.warmup,
                                        runs=args.runs, min_warmup_s=0.2,
                                        min_timed_s=args.min_timed_s,
                                        onnx_path=None if runtime == "torch" else path)
                    row[runtime] = m.latency.median_ms
                    row[f"{runtime}_cv"] = m.latency.cv
                    row[f"{runtime}_foreign"] = m.latency.foreign_cpu
                    row[f"{runtime}_diff"] = m.check_max_abs_diff
            except RuntimeCheckError as exc:
                print(f"  {arch.arch_id}: {exc} (left out)")
                continue
            rows.append(row)
            print(f"{len(rows):>3} {arch.arch_id} {arch.block_type:<8} "
                  f"{row['flops'] / 1e9:6.2f} GMAC  export {row['export_s']:5.1f} s  "
                  + "  ".join(f"{r} {row[r]:7.2f} ms" for r in runtimes), flush=True)
    elapsed = time.perf_counter() - started
    print(f"\n{len(rows)} networks in {elapsed:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    columns = [*runtimes, "flops", "params"]
    print("\n| pair | Kendall tau | 95 % interval | discordant pairs |")
    print("|---|---:|---|---:|")
    for a, b in itertools.combinations(columns, 2):
        if a in ("flops",) and b == "params":
            continue
        x, y = [r[a] for r in rows], [r[b] for r in rows]
        tau, low, high = _tau_interval(x, y)
        bad, total = _pairs(x, y)
        print(f"| {a} vs {b} | {tau:.2f} | [{low:.2f}, {high:.2f}] | {bad} of {total} |")
    print("\n| ratio | min | median | max | median ConvAttn | median MiLK |")
    print("|---|---:|---:|---:|---:|---:|")
    for a, b in itertools.combinations(runtimes, 2):
        ratios = [r[b] / r[a] for r in rows]
        by_type = {t: [r[b] / r[a] for r in rows if r["block_type"] == t]
                   for t in ("convattn", "milk")}
        med = {t: f"{statistics.median(v):.2f}x" if v else "-" for t, v in by_type.items()}
        print(f"| {b} / {a} | {min(ratios):.2f}x | {statistics.median(ratios):.2f}x | "
              f"{max(ratios):.2f}x | {med['convattn']} | {med['milk']} |")
    foreign = [r[f"{rt}_foreign"] for r in rows for rt in runtimes
               if r[f"{rt}_foreign"] is not None]
    cvs = [r[f"{rt}_cv"] for r in rows for rt in runtimes]
    diffs = [r[f"{rt}_diff"] for r in rows for rt in runtimes[1:]]
    print(f"\nexport {statistics.median(r['export_s'] for r in rows):.1f} s median; in-run CV "
          f"median {statistics.median(cvs):.3f}, max {max(cvs):.3f}; foreign CPU median "
          f"{statistics.median(foreign):.2f} cores, max {max(foreign):.2f}; "
          f"largest |runtime - PyTorch| {max(diffs):.1e}")


if __name__ == "__main__":
    main()
