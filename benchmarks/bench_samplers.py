"""Sampler efficiency: hypervolume against trial count for tpe (the default), nsga2, gp, random.

Each sampler comes from the search's own factory (``srnas.search.seeded.make_sampler``:
``PerTrialSeeded``, re-seeded per trial from the seed and the trial number) and proposes points
of a reduced space through the search space's own ``SearchSpace.sample`` (what the search's
define-by-run function calls). Optuna is driven directly with ask/tell (no Ray), ``--concurrency``
trials at a time as ``srnas search`` runs them (default 2: a new trial is asked while the other
one still runs, so the samplers see a RUNNING trial exactly as in a search; trials finish in
the order they started).

Every distinct point (arch_id + training parameters) is evaluated once with the project's
evaluator (``srnas.evaluators.evaluate``: build, FLOPs, latency, memory, train ``--steps`` with
training seed 0, validate on the built-in crops) and cached across samplers and seeds, so the
objective is a deterministic function of the point. Objectives: PSNR (max), GFLOPs at the CPU
latency input (min, the latency proxy: measured latency on a shared 2-core CPU is noisy and would
make the function depend on when a point was first drawn; FLOPs are exact and reproducible, and
their rank correlation with the latency measured alongside is printed) and memory_mb (min, the
CPU peak of live tensor bytes, reproducible to the byte). No constraints, training scheduler
fifo (every trial trains all ``--steps``).

Hypervolume: ``srnas.studies.front.hypervolume`` against one reference point for every sampler,
seed and trial count (``default_reference_point`` over every point this run's searches drew:
worst values pushed out by 10 % of their range), reported as a percentage of the hypervolume
of all of them (points a ``--cache`` file holds from other runs are reused, never counted).

    .venv/bin/python benchmarks/bench_samplers.py [--quick] [--seeds 3] [--trials 32]
        [--steps 40] [--concurrency 2] [--samplers tpe nsga2 gp random] [--cache FILE]
        [--latency-recheck 8] [--out benchmarks/results/samplers]

``--samplers`` also takes the TPE variants of ``VARIANTS`` (tpe-s8, tpe-ind, tpe-nocl, tpe-ei8);
``--cache FILE`` keeps the evaluated points between invocations (same steps and space only).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import warnings
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from scipy import stats

from srnas.search.commands.args import positive_int_arg
from srnas.search.seeded import PerTrialSeeded, make_sampler
from srnas.space.searchspace import Sample, SearchSpace, space_from_data

# Small, cheap networks with the real space's structure: both block types (so the MiLK-only
# dimensions are conditional, as in the default space), width, depth, kernel, split, and the
# learning rate as a log range. Window attention off, batch 8, 32x32 HR patches.
SPACE = {
    "block_type": ["convattn", "milk"], "dim": [16, 24, 32], "split_ratio": [0.25, 0.5],
    "kernel_size": [5, 7, 9], "n_blocks": {"low": 1, "high": 2},
    "conv_layers": {"low": 1, "high": 3}, "window_attn": [False],
    "dict_size": {"low": 1, "high": 4}, "gate": ["softmax", "sigmoid", "sum"],
    "shared_kernel": [True, False], "lr": {"low": 2.0e-4, "high": 2.0e-3, "log": True},
    "batch_size": 8, "patch_size": 32,
}
SCALE = 4
TRAIN_SEED = 0
OBJECTIVES = [("psnr", "maximize"), ("gflops", "minimize"), ("memory_mb", "minimize")]
SAMPLERS = ("tpe", "nsga2", "gp", "random")
CHECKPOINTS = (8, 16, 24, 32)

GOAL_TRIALS = 16  # the goal: the default reaches random's full-run HV within this many trials

# Variants of the default TPE (TPE_OPTIONS with these changes) tried for issue 12; pass their
# names to --samplers. Seeded per trial like the search's own samplers.
VARIANTS: dict[str, dict[str, Any]] = {
    "tpe-s8": {"n_startup_trials": 8},
    "tpe-ind": {"multivariate": False, "group": False},
    "tpe-nocl": {"constant_liar": False},
    "tpe-ei8": {"n_ei_candidates": 8},
}


def make(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The search's sampler ``name`` (``make_sampler``), or a TPE variant of ``VARIANTS``."""
    return PerTrialSeeded("tpe", seed, VARIANTS[name]) if name in VARIANTS else make_sampler(
        name, seed)


class Evaluator:
    """The project's evaluator behind a cache keyed by (arch_id, training parameters)."""

    def __init__(self, steps: int, cache: Path | None = None) -> None:
        self.steps, self.path = steps, cache
        self.points: dict[str, dict[str, Any]] = {}
        self.seconds = 0.0
        self.hits = 0
        if cache is not None and cache.exists():
            data = json.loads(cache.read_text())
            if data.get("meta") == self.meta:
                self.points = data["points"]
            else:
                print(f"cache {cache}: other settings, not used", flush=True)

    @property
    def meta(self) -> dict[str, Any]:
        return {"steps": self.steps, "space": SPACE, "scale": SCALE, "train_seed": TRAIN_SEED}

    @staticmethod
    def key(sample: Sample) -> str:
        return f"{sample.arch.arch_id}|{json.dumps(sample.train, sort_keys=True)}"

    def __call__(self, sample: Sample) -> dict[str, Any]:
        key = self.key(sample)
        if key in self.points:
            self.hits += 1
            return self.points[key]
        from srnas.evaluators.evaluate import evaluate
        from srnas.evaluators.recipe import Recipe

        start = time.perf_counter()
        result = evaluate(sample.arch, Recipe.brief(steps=self.steps, seed=TRAIN_SEED,
                                                    **sample.train))
        seconds = time.perf_counter() - start
        self.seconds += seconds
        point = {
            "psnr": result.psnr, "gflops": result.flops / 1e9, "memory_mb": result.memory_mb,
            "latency_ms": result.latency_ms, "params": result.params, "status": result.status,
            "seconds": round(seconds, 3),
            "phases": {k: round(v, 3) for k, v in result.phase_seconds.items()},
            "arch": result.arch, "train": sample.train,
        }
        self.points[key] = point
        if self.path is not None:
            self.path.write_text(json.dumps({"meta": self.meta, "points": self.points}))
        return point


def run_sampler(name: str, seed: int, trials: int, concurrency: int, space: SearchSpace,
                evaluate: Evaluator) -> dict[str, Any]:
    """One search of ``trials`` trials, ``concurrency`` at a time (first started, first told);
    returns the objective values in the order the trials were told."""
    sampler = make(name, seed)
    study = optuna.create_study(directions=[d for _, d in OBJECTIVES], sampler=sampler)
    running: deque[tuple[optuna.Trial, Sample]] = deque()
    told: list[list[float] | None] = []
    keys: list[str] = []
    asked, ask_seconds = 0, 0.0
    while len(told) < trials:
        while len(running) < concurrency and asked < trials:
            start = time.perf_counter()
            trial = study.ask()
            running.append((trial, space.sample(trial, SCALE)))
            ask_seconds += time.perf_counter() - start
            asked += 1
        trial, sample = running.popleft()
        point = evaluate(sample)
        keys.append(Evaluator.key(sample))
        if point["psnr"] is None or not math.isfinite(point["psnr"]):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            told.append(None)
        else:
            values = [float(point[o]) for o, _ in OBJECTIVES]
            study.tell(trial, values)
            told.append(values)
    return {"sampler": name, "seed": seed, "values": told, "keys": keys,
            "distinct": len(set(keys)), "ask_seconds": ask_seconds}


def _frame(values: Sequence[Sequence[float] | None]):
    import pandas as pd

    rows = [v for v in values if v is not None]
    return pd.DataFrame(rows, columns=[o for o, _ in OBJECTIVES], dtype="float64")


def add_hypervolumes(runs: list[dict[str, Any]], points: dict[str, dict[str, Any]]
                     ) -> tuple[dict[str, float], float]:
    """One reference point over ``points`` (the run's); each run's HV after each trial, as a %
    of the HV of all of them."""
    from srnas.studies.front import default_reference_point, hypervolume

    evaluated = [[p[o] for o, _ in OBJECTIVES] for p in points.values()
                 if p["psnr"] is not None and math.isfinite(p["psnr"])]
    everything = _frame(evaluated)
    reference = default_reference_point(everything, OBJECTIVES)
    best = hypervolume(everything, reference, OBJECTIVES)
    for run in runs:
        curve = []
        for n in range(1, len(run["values"]) + 1):
            hv = hypervolume(_frame(run["values"][:n]), reference, OBJECTIVES)
            curve.append(100.0 * hv / best)
        run["hv"] = curve
    return reference, best


def latency_recheck(points: dict[str, dict[str, Any]], n: int) -> list[tuple[float, float]]:
    """Measure the latency of ``n`` evaluated points (spread over their latencies) once more:
    (first, again) in ms. Shows how much a measurement on this machine depends on when it ran."""
    from srnas.evaluators.latency import measure_latency
    from srnas.space.config import from_dict
    from srnas.space.network import build_model

    ok = sorted((p for p in points.values() if p["psnr"] is not None),
                key=lambda p: p["latency_ms"])
    picked = ok[:: max(1, len(ok) // n)][:n] if n else []
    out = []
    for p in picked:
        model = build_model(from_dict(p["arch"])).deploy()
        out.append((p["latency_ms"], measure_latency(model, None, "cpu").median_ms))
    return out


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _reaches(curve: Sequence[float], target: float | None) -> int | None:
    """The first trial count at which ``curve`` reaches ``target`` (None: never)."""
    if target is None:
        return None
    return next((n + 1 for n, v in enumerate(curve) if v >= target - 1e-9), None)


def summarise(runs: list[dict[str, Any]], samplers: Sequence[str], trials: int,
              target_from: str = "random") -> tuple[list[str], dict[str, Any]]:
    """The markdown table and, per sampler, the mean curve and when it reaches the target
    (``target_from``'s mean HV after ``trials`` trials)."""
    by = {s: [r for r in runs if r["sampler"] == s] for s in samplers}
    means = {s: [statistics.fmean(r["hv"][n] for r in rs) for n in range(trials)]
             for s, rs in by.items() if rs}
    target = means[target_from][-1] if target_from in means else None
    checkpoints = [c for c in CHECKPOINTS if c <= trials] or [trials]
    head = ("| sampler | " + " | ".join(f"HV @ {c}" for c in checkpoints)
            + f" | trials to {target_from}'s {trials}-trial HV (mean curve) | per seed "
            "| distinct points | ask s/trial |")
    lines = [head, "|---|" + "---:|" * len(checkpoints) + "---:|---|---:|---:|"]
    reached: dict[str, int | None] = {}
    for s, rs in by.items():
        if not rs:
            continue
        cells = []
        for c in checkpoints:
            m, sd = _mean_std([r["hv"][c - 1] for r in rs])
            cells.append(f"{m:.1f} ± {sd:.1f}")
        first = reached[s] = _reaches(means[s], target)
        seeds = [_reaches(r["hv"], target) for r in rs]
        per_seed = ", ".join("-" if x is None else str(x) for x in seeds)
        distinct = statistics.fmean(r["distinct"] for r in rs)
        ask = statistics.fmean(r["ask_seconds"] / len(r["values"]) for r in rs)
        lines.append(f"| {s} | " + " | ".join(cells)
                     + f" | {'> ' + str(trials) if first is None else first} | {per_seed} "
                     f"| {distinct:.1f} | {ask:.2f} |")
    return lines, {"means": means, "target": target, "reached": reached}


def plot(runs: list[dict[str, Any]], samplers: Sequence[str], trials: int, target: float | None,
         target_from: str, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    xs = list(range(1, trials + 1))
    for s in samplers:
        rs = [r for r in runs if r["sampler"] == s]
        if not rs:
            continue
        spread = [_mean_std([r["hv"][n] for r in rs]) for n in range(trials)]
        mean = [m for m, _ in spread]
        lo = [m - sd for m, sd in spread]
        hi = [m + sd for m, sd in spread]
        (line,) = ax.plot(xs, mean, label=f"{s} ({len(rs)} seeds)", lw=2)
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
    if target is not None:
        ax.axhline(target, color="grey", ls="--", lw=1,
                   label=f"{target_from}'s mean HV at {trials} trials")
    ax.axvline(min(GOAL_TRIALS, trials), color="grey", ls=":", lw=1)
    ax.set_xlabel("trials told")
    ax.set_ylabel("hypervolume, % of all evaluated points'")
    ax.set_title(title, fontsize=9)
    ax.set_xlim(1, trials)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=positive_int_arg("--seeds"), default=3,
                        help="seeds 0 .. N-1")
    parser.add_argument("--trials", type=positive_int_arg("--trials"), default=32)
    parser.add_argument("--steps", type=positive_int_arg("--steps"), default=40)
    parser.add_argument("--concurrency", type=positive_int_arg("--concurrency"), default=2)
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS))
    parser.add_argument("--cache", type=Path, help="JSON file of evaluated points, kept")
    parser.add_argument("--out", type=Path, help="write OUT.md, OUT.png and OUT.json")
    parser.add_argument("--latency-recheck", type=int, default=8, metavar="N",
                        help="measure N points' latency again at the end (0: none)")
    parser.add_argument("--quick", action="store_true",
                        help="1 seed, 12 trials (overrides --seeds and --trials)")
    args = parser.parse_args(argv)
    if args.latency_recheck < 0:
        parser.error(f"--latency-recheck must be >= 0 (got {args.latency_recheck})")
    if args.quick:
        args.seeds, args.trials = 1, 12
    known = [*SAMPLERS, *VARIANTS]
    unknown = [s for s in args.samplers if s not in known]
    if unknown:
        parser.error(f"unknown sampler {unknown[0]!r}; known: {', '.join(known)}")

    import torch

    # One intra-op thread, as a search trial gets with its 1 CPU (Ray sets it). On a shared
    # 2-core machine two threads spin against the other jobs: training ran ~20x slower.
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    space = space_from_data(SPACE)
    evaluate = Evaluator(args.steps, args.cache)
    cached = len(evaluate.points)
    started = time.perf_counter()
    runs = []
    for seed in range(args.seeds):
        for name in args.samplers:
            t = time.perf_counter()
            before = evaluate.seconds
            run = run_sampler(name, seed, args.trials, args.concurrency, space, evaluate)
            runs.append(run)
            print(f"{name:>12} seed {seed}: {run['distinct']:2d} distinct points, "
                  f"{time.perf_counter() - t:5.0f} s ({evaluate.seconds - before:4.0f} s "
                  f"evaluating, {run['ask_seconds']:.1f} s asking); "
                  f"{len(evaluate.points)} points evaluated so far", flush=True)
    wall = time.perf_counter() - started
    # This run's points only: points a --cache file holds from other runs would move the
    # reference point and the 100 % mark with whatever else was cached.
    used = {k: evaluate.points[k] for run in runs for k in run["keys"]}
    reference, best = add_hypervolumes(runs, used)
    target_from = "random" if "random" in args.samplers else args.samplers[0]
    lines, summary = summarise(runs, args.samplers, args.trials, target_from)
    ok = [p for p in used.values() if p["psnr"] is not None]
    rho = float(stats.spearmanr([p["gflops"] for p in ok], [p["latency_ms"] for p in ok]).statistic)
    recheck = latency_recheck(used, args.latency_recheck)
    ratios = sorted(b / a for a, b in recheck)
    psnrs = [p["psnr"] for p in ok]
    cmd = "python benchmarks/bench_samplers.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    context = [
        f"command: `{cmd.strip()}`",
        f"machine: {os.cpu_count()}-core CPU shared with other jobs, torch "
        f"{torch.__version__}, optuna {optuna.__version__}, 1 intra-op thread",
        f"space (x{SCALE}): `{json.dumps(SPACE)}`",
        f"training: fifo, {args.steps} steps, batch 8, 32x32 HR patches, training seed "
        f"{TRAIN_SEED} for every point (each distinct point trained once, cached: the "
        "objective is a deterministic function of the point); built-in images",
        f"seeds {', '.join(map(str, range(args.seeds)))}; {args.trials} trials per run, "
        f"{args.concurrency} at a time (ask/tell, no Ray)",
        f"objectives: psnr (max), gflops at the 64x64 CPU latency input (min; latency proxy: "
        f"Spearman rho with the measured latency {rho:.3f} over {len(ok)} points), "
        "memory_mb (min)"
        + (f"; {len(recheck)} points' latency measured again at the end: "
           f"{ratios[0]:.2f}x-{ratios[-1]:.2f}x the first measurement (median "
           f"{statistics.median(ratios):.2f}x)" if recheck else ""),
        f"reference point {json.dumps({k: round(v, 4) for k, v in reference.items()})}; HV as "
        f"% of the HV of all {len(ok)} points this run evaluated ({best:.4g} dB·GFLOP·MB); "
        f"PSNR range {min(psnrs):.2f}-{max(psnrs):.2f} dB",
        f"wall time {wall / 60:.1f} min ({evaluate.seconds / 60:.1f} min evaluating "
        f"{len(evaluate.points) - cached} new points, {evaluate.hits} cache hits"
        + (f", {cached} points from the cache file" if cached else "") + ")",
    ]
    target = summary["target"]
    reached = summary["reached"]
    verdict = []
    if target is not None and "tpe" in reached:
        n = reached["tpe"]
        verdict.append(
            f"goal (default tpe reaches {target_from}'s mean {args.trials}-trial HV, "
            f"{target:.1f} %, within {GOAL_TRIALS} trials): "
            + ("met" if n is not None and n <= GOAL_TRIALS else "NOT met")
            + f" (mean curve reaches it at {'> ' + str(args.trials) if n is None else n})")
    print("\n" + "\n".join(f"- {c}" for c in context) + "\n")
    print("\n".join(lines))
    print("\n" + "\n".join(verdict))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        title = (f"HV vs trials: {args.steps} steps, {args.seeds} seeds, concurrency "
                 f"{args.concurrency} (mean ± std)")
        plot(runs, args.samplers, args.trials, target, target_from,
             args.out.with_suffix(".png"), title)
        md = ["## Sampler efficiency: hypervolume against trial count (CPU)", "",
              *[f"- {c}" for c in context], "",
              "HV (% of all evaluated points' HV; mean ± std over seeds) after N trials:", "",
              *lines, "", *verdict, ""]
        args.out.with_suffix(".md").write_text("\n".join(md))
        args.out.with_suffix(".json").write_text(json.dumps(
            {"context": context, "reference": reference, "best_hv": best,
             "runs": [{k: r[k] for k in ("sampler", "seed", "keys", "values", "hv",
                                         "ask_seconds")} for r in runs]}))
    return {"runs": runs, "summary": summary, "wall": wall}


if __name__ == "__main__":
    main()
