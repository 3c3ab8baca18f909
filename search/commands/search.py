"""``srnas search``: the main job."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from typing import Any

from srnas.search.commands.args import (
    Args,
    Subcommands,
    add_data,
    add_input,
    add_scale,
    add_storage,
    add_storage_retry,
    budgets,
    command,
    int_at_least,
    nonnegative_float,
    nonnegative_int,
    one_of,
    positive_float,
    positive_int,
    seed,
)
from srnas.search.commands.runtime_flags import add_runtime_flags
from srnas.search.schedulers import SCHEDULER_DEFAULT, get_scheduler, schedulers_help
from srnas.search.settings import (
    DEFAULT_TRAIN_SECONDS,
    DEFAULT_TRIALS,
    SAMPLERS,
    SCHEDULERS,
    SearchSettings,
)
from srnas.space.contract import (
    BUDGET_KEYS,
    DEFAULT_OBJECTIVES,
    DEFAULT_STORAGE,
    STORAGE_ENV,
)
from srnas.space.errors import SrnasError
from srnas.space.objectives import check_objectives, get_objective, objectives_help
from srnas.space.presets import PRESET_NAMES


def objectives(text: str) -> tuple[str, ...]:
    """``psnr,latency_ms``: registered objectives, each once."""
    return check_objectives(tuple(o.strip() for o in text.split(",") if o.strip()), text)


# The library's defaults, shown in the help and left to SearchSettings when a flag is not
# given: one place for each (a scheduler's own defaults stay SCHEDULER_DEFAULT until the
# scheduler is known).
_DEFAULTS = {f.name: f.default for f in fields(SearchSettings)}
_ASHA = get_scheduler("mo-asha").defaults


def register(sub: Subcommands, name: str) -> list[Args]:
    a = command(
        sub, name, help="run a multi-objective architecture search (Ray Tune + Optuna)",
        description="Run trials with Ray Tune; an Optuna sampler proposes architectures; every "
        "trial and measurement lands in the SQL study. With no flags: local Ray, SQLite "
        "(./srnas.db), the built-in images, CPU, a small budget.")
    a.add("--study", help="study name (default: derived from --scale and the space, so "
          "relaunching continues the same study)")
    add_storage(a, help=f"SQLAlchemy URL of the study (default ${STORAGE_ENV}, else "
                f"{DEFAULT_STORAGE}): sqlite:///FILE on one machine, "
                "postgresql://USER:PASSWORD@HOST:PORT/DB for a cluster (psycopg 3; "
                "postgresql+psycopg2://... works too)")
    a.add("--space", metavar="FILE", help="YAML that fixes, narrows or widens search "
          "dimensions")
    a.add("--trials", type=nonnegative_int,
          help="NEW trials (architectures) to run in this launch (earlier trials of the study "
          "are kept and seen by the sampler; default "
          + ", ".join(f"{n} with {s}" for s, n in DEFAULT_TRIALS.items()) + ")")
    a.add("--time-budget", dest="time_budget_s", type=positive_float, metavar="SECONDS",
          help="stop proposing new trials after this many seconds; running trials finish and "
          "are recorded")
    a.add("--concurrency", type=positive_int, help="trials at a time (default: as many as the "
          "CPUs/GPUs allow)")
    a.add("--cpus-per-trial", type=positive_float, default=_DEFAULTS["cpus_per_trial"])
    a.add("--gpus-per-trial", type=nonnegative_float, help="default 1 where Ray sees GPUs, "
          "else 0; a fraction shares a GPU (latency figures then lie)")
    a.add("--address", metavar="HOST:PORT|auto", help="join a running Ray cluster: the head "
          "node's HOST:PORT (as given to ray start --address), or auto ($RAY_ADDRESS, else the "
          "cluster ray start started on this machine); run it on a node of the cluster (Ray "
          "Client ray:// is not supported). Default: $RAY_ADDRESS if set, else a new local "
          "instance")
    a.add("--sampler", type=one_of(tuple(SAMPLERS)), default=_DEFAULTS["sampler"],
          help=f"{', '.join(SAMPLERS)} (default {_DEFAULTS['sampler']})")
    a.add("--seed", type=seed, default=_DEFAULTS["seed"])
    a.add("--steps", type=positive_int, default=_DEFAULTS["steps"], help="training steps of a "
          f"trial that reaches the last rung (default {_DEFAULTS['steps']})")
    a.add("--scheduler", type=one_of(tuple(SCHEDULERS)), default=_DEFAULTS["scheduler"],
          help=f"default {_DEFAULTS['scheduler']}. {schedulers_help()}")
    a.add("--min-steps", type=positive_int, help="first rung of mo-asha (default: the smallest "
          "R with R*eta^2 >= --steps, i.e. three rungs)")
    a.add("--eta", type=int_at_least(2), help="mo-asha keeps the best 1/eta of each rung "
          f"(default {_ASHA.eta})")
    a.add("--train-seconds", type=positive_float,
          help="cap a trial's training wall time; a trial it cuts ends PRUNED at the rungs it "
          "reached, never ranked (default: "
          + ", ".join(f"{'none' if v is None else f'{v:g}'} with {s}"
                      for s, v in DEFAULT_TRAIN_SECONDS.items()) + ")")
    a.add("--val-every", type=nonnegative_int,
          help="validate every N steps and report PSNR to Tune (default: once, half way; 0: "
          "only at the end)")
    add_data(a, val_help="validation/benchmark folder (default: built-in)")
    add_scale(a, default=4, help="upscaling factor: 2, 3 or 4 (default 4)")
    add_input(a, "latency/memory/FLOPs input (default: a 256x256 output on CPU, 1280x720 on "
              "CUDA)")
    a.add("--objectives", type=objectives, default=",".join(DEFAULT_OBJECTIVES),
          help=f"{objectives_help()} (default {','.join(DEFAULT_OBJECTIVES)})")
    for key, dest in BUDGET_KEYS.items():
        a.add("--" + dest.replace("_", "-"), dest=dest, type=positive_float,
              help=get_objective(key).budget_help())
    a.add("--baseline", action="append", default=[], metavar="PRESET",
          type=one_of(PRESET_NAMES), help="evaluate a known config first (repeatable), e.g. "
          "esc-light")
    add_runtime_flags(a, target=True)
    add_storage_retry(a)
    a.add("--dry-run", action="store_true",
          help="sample and build --trials configs, print them, train nothing")
    a.add("--verbose", action="store_true", help="show Ray's own logs")
    a.run(_run)
    return [a]


def settings_from_args(args: argparse.Namespace) -> Any:
    from srnas.space.parsing import parse_hw
    from srnas.space.searchspace import SearchSpace, load_space

    given = {name: getattr(args, name) for name in ("trials", "min_steps", "eta",
                                                     "train_seconds")}
    return SearchSettings(
        study=args.study, storage=args.storage,
        space=load_space(args.space) if args.space else SearchSpace(),
        time_budget_s=args.time_budget_s, concurrency=args.concurrency,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        address=args.address, sampler=args.sampler, seed=args.seed, steps=args.steps,
        scheduler=args.scheduler,
        train=args.train, val=args.val, scale=args.scale, objectives=args.objectives,
        budgets=budgets(args), baselines=tuple(args.baseline), dry_run=args.dry_run,
        verbose=args.verbose, input_hw=parse_hw(args.input_hw) if args.input_hw else None,
        val_every=args.val_every, runtime=args.runtime, precision=args.precision,
        target=args.target, storage_retry_s=args.storage_retry_s,
        # Not given: the scheduler's own default (SearchSettings knows which).
        **{name: SCHEDULER_DEFAULT if value is None else value for name, value in given.items()})


def _run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    from srnas.search.run import dry_run, run_search

    if settings.dry_run:
        return dry_run(settings)
    outcome = run_search(settings)
    print_final(outcome, settings)
    if outcome.interrupted:
        # Failed trials do not change the exit code of a finished search; an interrupted one
        # must not look finished to a script.
        print(f"srnas search: interrupted: {outcome.finished} of {outcome.requested} trials "
              "finished; run the same command again to continue the study", file=sys.stderr)
        return 130
    return 0


def print_final(outcome: Any, settings: Any) -> None:
    from srnas.studies import render
    from srnas.studies.front import hypervolume, pareto_front
    from srnas.studies.storage import mask_url

    s = outcome.summary
    print(f"\n{outcome.new_trials} trials in {outcome.wall_seconds:.0f} s: {s['complete']} "
          f"complete ({s['infeasible']} infeasible), {s['stopped']} stopped early (PRUNED), "
          f"{s['failed']} failed")
    study = outcome.study  # the launch's own study object: no second connection
    storage = mask_url(outcome.storage)
    try:
        front = pareto_front(study)
    except SrnasError as exc:  # e.g. budgets left no feasible trial: say which, keep exit 0
        print(f"no Pareto front yet: {exc}")
        return
    ref = front.attrs["reference_point"]
    print(render.front_table(front, render.front_header(front, hypervolume(front, ref), ref,
                                                        False, storage)))
    st = f"--storage '{storage}' " if settings.storage else ""
    name = outcome.study_name
    if len(front) == 0:
        print("\nno network above bicubic yet: train longer (--steps) before exporting")
    print("\nnext:")
    print(f"  srnas pareto {name} {st}".rstrip())
    print(f"  srnas plot {name} {st}--out front.html")
    if len(front):
        print(f"  srnas export {name} {st}--pick knee --out best.yaml")
    sys.stdout.flush()
