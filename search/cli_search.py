"""``srnas search``: the main job."""

from __future__ import annotations

import argparse
import sys

from srnas.search.settings import DEFAULT_TRAIN_SECONDS, DEFAULT_TRIALS
from srnas.space.contract import BUDGET_KEYS, DEFAULT_OBJECTIVES, DEFAULT_STORAGE, STORAGE_ENV
from srnas.space.errors import ConfigError, SrnasError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search", help="run a multi-objective architecture search (Ray Tune + Optuna)",
        description="Run trials with Ray Tune; an Optuna sampler proposes architectures; every "
        "trial and measurement lands in the SQL study. With no flags: local Ray, SQLite "
        "(./srnas.db), the built-in images, CPU, a small budget.")
    p.add_argument("--study", help="study name (default: derived from --scale and the space, "
                   "so relaunching continues the same study)")
    p.add_argument("--storage", metavar="URL", help=f"SQLAlchemy URL of the study (default "
                   f"${STORAGE_ENV}, else {DEFAULT_STORAGE}): sqlite:///FILE on one machine, "
                   "postgresql://USER:PASSWORD@HOST:PORT/DB for a cluster (psycopg 3; "
                   "postgresql+psycopg2://... works too)")
    p.add_argument("--space", metavar="FILE", help="YAML that fixes, narrows or widens "
                   "search dimensions")
    p.add_argument("--trials", type=int,
                   help="NEW trials (architectures) to run in this launch (earlier trials of "
                   "the study are kept and seen by the sampler; default "
                   f"{DEFAULT_TRIALS['mo-asha']} with mo-asha, {DEFAULT_TRIALS['fifo']} with "
                   "fifo)")
    p.add_argument("--time-budget", dest="time_budget_s", type=float, metavar="SECONDS",
                   help="stop proposing new trials after this many seconds; running trials "
                   "finish and are recorded")
    p.add_argument("--concurrency", type=int, help="trials at a time (default: as many as the "
                   "CPUs/GPUs allow)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, help="default 1 where Ray sees GPUs, else 0; "
                   "a fraction shares a GPU (latency figures then lie)")
    p.add_argument("--address", metavar="HOST:PORT|auto", help="join a running Ray cluster: "
                   "the head node's HOST:PORT (as given to ray start --address), or auto "
                   "($RAY_ADDRESS, else the cluster ray start started on this machine); run it "
                   "on a node of the cluster (Ray Client ray:// is not supported). Default: "
                   "$RAY_ADDRESS if set, else a new local instance")
    p.add_argument("--sampler", default="tpe", help="tpe (default), nsga2, gp or random")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=200, help="training steps of a trial that "
                   "reaches the last rung (default 200)")
    p.add_argument("--scheduler", default="mo-asha", help="mo-asha (default: multi-objective "
                   "successive halving, trials stopped at a rung are PRUNED) or fifo (every "
                   "trial trains all --steps)")
    p.add_argument("--min-steps", type=int, help="first rung of mo-asha (default: the "
                   "smallest R with R*eta^2 >= --steps, i.e. three rungs)")
    p.add_argument("--eta", type=int, default=3, help="mo-asha keeps the best 1/eta of each "
                   "rung (default 3)")
    p.add_argument("--train-seconds", type=float,
                   help="cap a trial's training wall time; a trial it cuts ends PRUNED at the "
                   "rungs it reached, never ranked (default: none with mo-asha, whose rungs "
                   "bound a trial's cost; 120 with fifo)")
    p.add_argument("--val-every", type=int,
                   help="validate every N steps and report PSNR to Tune (default: once, half "
                   "way; 0: only at the end)")
    p.add_argument("--train", metavar="DIR", help="HR training images (default: built-in)")
    p.add_argument("--val", metavar="DIR", help="validation/benchmark folder (default: "
                   "built-in)")
    p.add_argument("--scale", type=int, default=4, help="2, 3 or 4 (default 4)")
    p.add_argument("--input", dest="input_hw", metavar="HxW",
                   help="latency/memory/FLOPs input (default: a "
                   "256x256 output on CPU, 1280x720 on CUDA)")
    p.add_argument("--objectives", default=",".join(DEFAULT_OBJECTIVES),
                   help="comma-separated, from psnr, ssim, latency_ms, memory_mb, params, flops "
                   f"(default {','.join(DEFAULT_OBJECTIVES)})")
    for key, arg in BUDGET_KEYS.items():
        p.add_argument("--" + arg.replace("_", "-"), dest=arg, type=float,
                       help=f"budget: trials with {key} above it are infeasible (not trained)")
    p.add_argument("--baseline", action="append", default=[], metavar="PRESET",
                   help="evaluate a known config first (repeatable), e.g. esc-light")
    p.add_argument("--dry-run", action="store_true",
                   help="sample and build --trials configs, print them, train nothing")
    p.add_argument("--verbose", action="store_true", help="show Ray's own logs")
    p.set_defaults(func=_run)


def settings_from_args(args: argparse.Namespace):
    from srnas.search.settings import SearchSettings
    from srnas.space.parsing import parse_hw
    from srnas.space.presets import PRESET_NAMES
    from srnas.space.searchspace import SearchSpace, load_space

    for name in args.baseline:
        if name not in PRESET_NAMES:
            raise ConfigError("--baseline", f"must be a preset: {', '.join(PRESET_NAMES)}", name)
    budgets = {k: getattr(args, f"max_{k}") for k in BUDGET_KEYS
               if getattr(args, f"max_{k}") is not None}
    return SearchSettings(
        study=args.study, storage=args.storage,
        space=load_space(args.space) if args.space else SearchSpace(),
        trials=args.trials if args.trials is not None else DEFAULT_TRIALS.get(
            args.scheduler, DEFAULT_TRIALS["mo-asha"]),
        time_budget_s=args.time_budget_s, concurrency=args.concurrency,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        address=args.address, sampler=args.sampler, seed=args.seed, steps=args.steps,
        scheduler=args.scheduler, min_steps=args.min_steps, eta=args.eta,
        train=args.train, val=args.val, scale=args.scale,
        objectives=tuple(o.strip() for o in args.objectives.split(",") if o.strip()),
        budgets=budgets, baselines=tuple(args.baseline), dry_run=args.dry_run,
        verbose=args.verbose, input_hw=parse_hw(args.input_hw) if args.input_hw else None,
        val_every=args.val_every,
        train_seconds=args.train_seconds if args.train_seconds is not None
        else DEFAULT_TRAIN_SECONDS.get(args.scheduler))


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


def print_final(outcome, settings) -> None:
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
    print("\nnext:")
    print(f"  srnas pareto {name} {st}".rstrip())
    print(f"  srnas plot {name} {st}--out front.html")
    print(f"  srnas export {name} {st}--pick knee --out best.yaml")
    sys.stdout.flush()
