"""MO-ASHA against FIFO at equal training compute, on the same space, data and budget.

For each seed: a mo-asha search of ``--trials`` trials, then a fifo search given the same
number of training steps (the mo-asha run's total, rounded to whole fifo trials). Reported per
run: architectures examined, trials trained to the last rung, total training steps, wall time,
and the hypervolume of the final front (PSNR after all ``--steps``, latency, memory: both
fronts are full-budget figures, since a mo-asha trial is COMPLETE only at the last rung). The
two fronts of a seed share one reference point (the worst values over both runs' complete
trials, pushed out by 10 % of their range), so their hypervolumes compare.

    .venv/bin/python benchmarks/bench_multifidelity.py [--seeds 0 1 2] [--steps 90]
        [--trials 24] [--quick]

Runs on the built-in images and a reduced space (below) so that a seed takes minutes on CPU.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
from pathlib import Path

import optuna

from srnas.search.cluster import start_ray
from srnas.search.run import run_search
from srnas.search.settings import SearchSettings
from srnas.space.searchspace import space_from_data
from srnas.studies.pareto import hypervolume as hypervolume_min

# Small, cheap networks, still a real choice of width, depth, kernel and block type.
SPACE = {
    "dim": [16, 24, 32], "split_ratio": [0.25, 0.5], "kernel_size": [5, 7, 9],
    "n_blocks": {"low": 1, "high": 2}, "conv_layers": {"low": 1, "high": 3},
    "window_attn": [False], "dict_size": {"low": 1, "high": 4}, "batch_size": 8,
    "patch_size": 48,
}
OBJECTIVES = (("psnr", True), ("latency_ms", False), ("memory_mb", False))


def run(scheduler: str, trials: int, steps: int, seed: int, db: Path,
        min_steps: int | None) -> dict:
    settings = SearchSettings(study=f"{scheduler}-{seed}", storage=f"sqlite:///{db}",
                              space=space_from_data(SPACE), trials=trials, steps=steps,
                              scheduler=scheduler, min_steps=min_steps, eta=3, seed=seed,
                              train_seconds=None, concurrency=2)
    with open(os.devnull, "w") as quiet:  # the live view: not needed here
        outcome = run_search(settings, out=quiet)
    wall = outcome.wall_seconds  # Tune's run only: Ray was started once, before every run
    study = optuna.load_study(study_name=settings.study_name, storage=settings.storage_url)
    trials_ = study.get_trials(deepcopy=False)
    complete = [t for t in trials_ if t.state == optuna.trial.TrialState.COMPLETE]
    return {
        "scheduler": scheduler, "seed": seed, "examined": len(trials_),
        "complete": len(complete),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in trials_),
        "steps": sum(int(t.user_attrs.get("steps", 0)) for t in trials_),
        "wall": wall, "points": [[t.values[i] for i in range(3)] for t in complete],
        "rungs": settings.rungs,
    }


def hypervolumes(runs: list[dict]) -> None:
    """One reference point for the runs of a seed, then each run's hypervolume."""
    points = [p for r in runs for p in r["points"]]
    reference = []
    for i, (_, maximize) in enumerate(OBJECTIVES):
        values = [p[i] for p in points]
        lo, hi = min(values), max(values)
        spread = (hi - lo) or abs(hi) or 1.0
        reference.append(-(lo - 0.1 * spread) if maximize else hi + 0.1 * spread)
    for r in runs:
        losses = [[-p[i] if up else p[i] for i, (_, up) in enumerate(OBJECTIVES)]
                  for p in r["points"]]
        r["hv"] = hypervolume_min(losses, reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=90)
    parser.add_argument("--trials", type=int, default=24, help="mo-asha trials per seed")
    parser.add_argument("--min-steps", type=int)
    parser.add_argument("--quick", action="store_true", help="one seed, 40 steps, 12 trials")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.steps, args.trials = args.seeds[:1], 40, 12
    rows = []
    start_ray()  # once, outside every timed run
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            db = Path(folder) / f"bench-{seed}.db"
            moasha = run("mo-asha", args.trials, args.steps, seed, db, args.min_steps)
            fifo_trials = max(1, round(moasha["steps"] / args.steps))
            fifo = run("fifo", fifo_trials, args.steps, seed, db, None)
            hypervolumes([moasha, fifo])
            rows += [moasha, fifo]
            print(f"seed {seed}: mo-asha {moasha['examined']} archs / {moasha['steps']} steps "
                  f"/ hv {moasha['hv']:.4g}; fifo {fifo['examined']} archs / {fifo['steps']} "
                  f"steps / hv {fifo['hv']:.4g}", flush=True)
    print(f"\nspace: {SPACE}\nsteps {args.steps}, mo-asha rungs {rows[0]['rungs']}, eta 3, "
          "built-in images, 2 trials at a time, CPU\n")
    print("| seed | scheduler | archs examined | complete | pruned | training steps | wall s "
          "| hypervolume |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['seed']} | {r['scheduler']} | {r['examined']} | {r['complete']} | "
              f"{r['pruned']} | {r['steps']} | {r['wall']:.0f} | {r['hv']:.4g} |")
    by = {s: [r for r in rows if r["scheduler"] == s] for s in ("mo-asha", "fifo")}
    archs = [m["examined"] / f["examined"] for m, f in zip(by["mo-asha"], by["fifo"],
                                                            strict=True)]
    hv = [m["hv"] / f["hv"] if f["hv"] else math.inf for m, f in zip(by["mo-asha"], by["fifo"],
                                                                     strict=True)]
    steps = [m["steps"] / f["steps"] for m, f in zip(by["mo-asha"], by["fifo"], strict=True)]
    print(f"\nmo-asha / fifo, per seed: archs examined {', '.join(f'{x:.2f}x' for x in archs)}"
          f" (median {statistics.median(archs):.2f}x); hypervolume "
          f"{', '.join(f'{x:.3f}' for x in hv)} (median {statistics.median(hv):.3f}); "
          f"training steps {', '.join(f'{x:.2f}' for x in steps)}")


if __name__ == "__main__":
    main()
