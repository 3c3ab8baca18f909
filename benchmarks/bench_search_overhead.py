"""Orchestration overhead of ``srnas search`` vs a minimal hand-written Ray Tune + OptunaSearch
script running the same evaluation, measured in one run on this machine.

    overhead = 1 - (sum of trial evaluation seconds / concurrency) / wall seconds of tuner.fit

Both use the same local Ray instance (started once, not timed), the same 8 trials of the
'tiny' preset (x4) with the same brief-training budget, and the same concurrency.

    .venv/bin/python benchmarks/bench_search_overhead.py [--trials 8] [--steps 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import optuna

TINY_SPACE = {
    "block_type": "milk", "dim": 16, "split_ratio": 0.25, "kernel_size": 7, "dict_size": 2,
    "gate": "softmax", "shared_kernel": True, "n_blocks": 1, "conv_layers": 2,
    "window_attn": True, "window_size": 8, "heads": 2, "batch_size": 8, "patch_size": 48,
    "lr": [0.0003, 0.0005],  # one searched dimension so the sampler has something to do
}


def run_srnas(trials: int, steps: int, concurrency: int, db: Path) -> tuple[float, float]:
    from srnas.search.run import run_search
    from srnas.search.settings import SearchSettings
    from srnas.space.searchspace import space_from_data

    settings = SearchSettings(study="bench", storage=f"sqlite:///{db}",
                              space=space_from_data(TINY_SPACE), trials=trials, steps=steps,
                              concurrency=concurrency, sampler="tpe", scheduler="fifo")
    outcome = run_search(settings)
    study = optuna.load_study(study_name="bench", storage=f"sqlite:///{db}")
    evals = sum(t.user_attrs.get("eval_seconds", 0.0) for t in study.trials)
    # Per trial: the study's ask -> tell span minus the evaluation itself (worker start,
    # scheduling, lock waits, reporting, recording).
    extra = sorted(((t.datetime_complete - t.datetime_start).total_seconds()
                    - t.user_attrs.get("eval_seconds", 0.0), t.number) for t in study.trials)
    by_number = [e for e, _ in sorted(extra, key=lambda p: p[1])]
    print(f"srnas per-trial time outside evaluate: first {by_number[0]:.2f} s, median of "
          f"the rest {statistics.median(by_number[1:]):.2f} s")
    return outcome.wall_seconds, evals


def run_minimal(trials: int, steps: int, concurrency: int) -> tuple[float, float]:
    """What a user would write by hand: a function trainable, OptunaSearch, Tuner."""
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from srnas.evaluators.evaluate import evaluate
    from srnas.evaluators.train import TrainBudget
    from srnas.space import get_preset

    def trainable(config: dict) -> None:
        r = evaluate(get_preset("tiny", 4), TrainBudget(steps=steps, lr=config["lr"]))
        tune.report({"psnr": r.psnr, "latency_ms": r.latency_ms, "memory_mb": r.memory_mb,
                     "eval_seconds": sum(r.phase_seconds.values())})

    searcher = OptunaSearch(space={"lr": optuna.distributions.CategoricalDistribution(
        [0.0003, 0.0005])}, metric=["psnr", "latency_ms", "memory_mb"],
        mode=["max", "min", "min"], sampler=optuna.samplers.TPESampler(seed=0))
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=trials,
                                    max_concurrent_trials=concurrency),
        run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(), verbose=0))
    start = time.monotonic()
    grid = tuner.fit()
    wall = time.monotonic() - start
    return wall, sum(r.metrics.get("eval_seconds", 0.0) for r in grid)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    from srnas.search.cluster import start_ray

    start_ray()  # the CLI's own Ray start (quiet logs, OMP passive)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [("srnas search", *run_srnas(args.trials, args.steps, args.concurrency,
                                            Path(tmp) / "bench.db")),
                ("minimal Tune+OptunaSearch", *run_minimal(args.trials, args.steps,
                                                           args.concurrency))]
    print(f"\n{args.trials} tiny trials, {args.steps} steps, concurrency {args.concurrency}")
    print(f"{'runner':28s} {'wall s':>8s} {'sum eval s':>11s} {'overhead':>9s}")
    for name, wall, evals in rows:
        overhead = 1 - (evals / args.concurrency) / wall
        print(f"{name:28s} {wall:8.1f} {evals:11.1f} {overhead:9.1%}")


if __name__ == "__main__":
    main()
