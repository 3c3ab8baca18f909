"""Orchestration overhead of ``srnas search`` against a minimal hand-written Ray Tune +
OptunaSearch script that runs the same evaluations, measured in one run on this machine.

Both runners share one local Ray instance (started once, not timed), sample the same reduced
space (the 'tiny' MiLK network, one searched dimension), train the same brief budget and run
the same number of trials at each concurrency. Per run:

* ``work``: the seconds the evaluations computed, summed over trials, net of the time they
  waited for the device lock (``phase_seconds`` minus ``lock_wait``);
* ``overhead = 1 - (work / concurrency) / wall``, wall being the seconds of the run (tuner
  construction to the last result recorded);
* ``floor``: the shortest wall the measurement protocol allows: latency is timed while
  nothing else computes on the device, so the latency phases run one at a time and only the
  rest can run ``concurrency`` at once: ``latency + (work - latency) / c`` (``work / c`` at
  concurrency 1);
* ``beyond floor = 1 - floor / wall``: what orchestration adds on top of that.

    .venv/bin/python benchmarks/bench_search_overhead.py [--quick] [--trials 8] [--steps 20]
                                                         [--concurrency 1 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import optuna

from srnas.search.commands.args import positive_int_arg

TINY_SPACE = {
    "block_type": "milk", "dim": 16, "split_ratio": 0.25, "kernel_size": 7, "dict_size": 2,
    "gate": "softmax", "shared_kernel": True, "n_blocks": 1, "conv_layers": 2,
    "window_attn": True, "window_size": 8, "heads": 2, "batch_size": 8, "patch_size": 48,
    "lr": [0.0003, 0.0005],  # one searched dimension so the sampler has something to do
}
SCALE = 4


@dataclass
class Run:
    runner: str
    concurrency: int
    wall: float
    phases: list[dict[str, float]]  # per trial
    outside: list[float] | None = None  # per trial, in trial order: ask->tell minus evaluate

    @property
    def work(self) -> float:
        return sum(sum(v for k, v in p.items() if k != "lock_wait") for p in self.phases)

    @property
    def waited(self) -> float:
        return sum(p.get("lock_wait", 0.0) for p in self.phases)

    @property
    def latency(self) -> float:
        return sum(p.get("latency", 0.0) for p in self.phases)

    @property
    def floor(self) -> float:
        return self.latency + (self.work - self.latency) / self.concurrency

    @property
    def overhead(self) -> float:
        return 1 - (self.work / self.concurrency) / self.wall

    @property
    def beyond_floor(self) -> float:
        return 1 - self.floor / self.wall


def run_srnas(trials: int, steps: int, concurrency: int, db: Path) -> Run:
    from srnas.search.run import run_search
    from srnas.search.settings import SearchSettings
    from srnas.space.searchspace import space_from_data

    settings = SearchSettings(study="bench", storage=f"sqlite:///{db}",
                              space=space_from_data(TINY_SPACE), scale=SCALE, trials=trials,
                              steps=steps, concurrency=concurrency, sampler="tpe",
                              scheduler="fifo")
    with open("/dev/null", "w") as quiet:
        outcome = run_search(settings, out=quiet)
    done = sorted(outcome.study.trials, key=lambda t: t.number)
    # Per trial: the study's ask -> tell span minus the evaluation (worker start, imports,
    # scheduling, reporting, recording).
    outside = [(t.datetime_complete - t.datetime_start).total_seconds()
               - t.user_attrs.get("eval_seconds", 0.0) for t in done]
    return Run("srnas search", concurrency, outcome.wall_seconds,
               [t.user_attrs.get("phase_seconds", {}) for t in done], outside)


def run_minimal(trials: int, steps: int, concurrency: int, tmp: Path) -> Run:
    """What a user would write by hand: a function trainable, OptunaSearch, Tuner."""
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from srnas.evaluators.evaluate import evaluate
    from srnas.evaluators.recipe import Recipe
    from srnas.search.run import DefineByRun
    from srnas.space.config import from_dict
    from srnas.space.searchspace import space_from_data

    def trainable(config: dict) -> None:
        r = evaluate(from_dict(config["arch"]), Recipe.brief(steps=steps, **config["train"]))
        tune.report({"psnr": r.psnr, "latency_ms": r.latency_ms, "memory_mb": r.memory_mb,
                     "phases": r.phase_seconds})

    start = time.monotonic()  # from the tuner's construction on, as srnas search's wall
    searcher = OptunaSearch(space=DefineByRun(space_from_data(TINY_SPACE), SCALE),
                            metric=["psnr", "latency_ms", "memory_mb"], mode=["max", "min", "min"],
                            sampler=optuna.samplers.TPESampler(seed=0))
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=trials,
                                    max_concurrent_trials=concurrency),
        run_config=tune.RunConfig(storage_path=str(tmp / f"tune{concurrency}"), verbose=0))
    grid = tuner.fit()
    wall = time.monotonic() - start
    return Run("hand-wired Tune+OptunaSearch", concurrency, wall,
               [r.metrics.get("phases", {}) for r in grid])


def table(runs: list[Run], trials: int, steps: int) -> str:
    lines = [f"{trials} trials of the tiny MiLK network (x{SCALE}), {steps} training steps each",
             "", "| runner | conc. | wall s | work s | lock wait s | latency s | floor s "
             "| overhead | beyond floor | first trial outside s | others outside s (median) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        first = others = "-"
        if r.outside:
            first = f"{r.outside[0]:.2f}"
            others = f"{statistics.median(r.outside[1:]):.2f}" if len(r.outside) > 1 else "-"
        lines.append(f"| {r.runner} | {r.concurrency} | {r.wall:.1f} | {r.work:.1f} | "
                     f"{r.waited:.1f} | {r.latency:.1f} | {r.floor:.1f} | {r.overhead:.1%} | "
                     f"{r.beyond_floor:.1%} | {first} | {others} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=positive_int_arg("--trials"), default=8)
    parser.add_argument("--steps", type=positive_int_arg("--steps"), default=20)
    parser.add_argument("--concurrency", type=positive_int_arg("--concurrency"), nargs="+",
                        default=[1, 2])
    parser.add_argument("--quick", action="store_true",
                        help="4 trials, concurrency 1 only (overrides --trials, --concurrency)")
    parser.add_argument("--srnas-only", action="store_true",
                        help="skip the hand-wired runner")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.concurrency = 4, [1]
    from srnas.search.cluster import start_ray

    start_ray()  # the CLI's own Ray start (quiet logs, OMP passive)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for c in args.concurrency:
            runs.append(run_srnas(args.trials, args.steps, c, Path(tmp) / f"bench{c}.db"))
            if not args.srnas_only:
                runs.append(run_minimal(args.trials, args.steps, c, Path(tmp)))
    print()
    print(table(runs, args.trials, args.steps))


if __name__ == "__main__":
    main()
