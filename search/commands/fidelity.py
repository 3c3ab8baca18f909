"""``srnas fidelity``: how far a study's brief-training ranking holds after longer training."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from srnas.search.commands.args import (
    Args,
    Subcommands,
    add_format,
    add_storage,
    add_storage_retry,
    add_trial,
    command,
    nonnegative_float,
    positive_float,
    positive_int,
    seed,
)
from srnas.space.errors import ConfigError, SrnasError


def register(sub: Subcommands, name: str) -> list[Args]:
    a = command(
        sub, name, help="retrain some trials of a study for longer and measure how well the "
        "brief-training ranking predicts the long one (Kendall tau, Spearman rho, top-k, front)",
        description="Retrain K trials of STUDY at a longer budget (default 10x the study's "
        "steps) with the same data, seed and recipe, as Ray Tune trials; results go to the "
        "sibling study STUDY:fidelity. Rerunning skips what is done, then reports.")
    a.add("study", metavar="STUDY", help="study name")
    add_storage(a)
    a.add("--steps", type=positive_int, metavar="N", help="the long budget in training steps "
          "(default 10x the study's)")
    a.add("--trials", type=positive_int, metavar="K", help="how many trials: the whole front, "
          "then the rest spread evenly over the PSNR range (default 8)")
    add_trial(a, action="append", default=[],
              help="retrain this trial (repeatable; instead of --trials)")
    a.add("--include-pruned", action="store_true", help="let the selection pick trials stopped "
          "at a rung too (compared at their last rung's PSNR)")
    a.add("--top-k", type=positive_int, default=3, help="top-k overlap reported (default 3)")
    a.add("--report-only", action="store_true",
          help="train nothing: report what the sibling study already holds")
    add_format(a)
    a.add("--plot", metavar="OUT.png|OUT.html", help="brief vs long PSNR scatter")
    a.add("--address", metavar="HOST:PORT|auto", help="join a running Ray cluster (as for "
          "srnas search)")
    a.add("--concurrency", type=positive_int, help="retrains at a time (default: as many as "
          "the CPUs/GPUs allow)")
    a.add("--cpus-per-trial", type=positive_float, default=1.0)
    a.add("--gpus-per-trial", type=nonnegative_float, help="default 1 where Ray sees GPUs, "
          "else 0")
    a.add("--seed", type=seed, help="training seed (default: each trial's recorded training "
          "seed, i.e. the search's)")
    add_storage_retry(a)
    a.add("--verbose", action="store_true", help="show Ray's own logs")
    a.run(_run)
    return [a]


def _run(args: argparse.Namespace) -> int:
    from srnas.studies.plot import check_plot_out

    if args.plot:
        check_plot_out(args.plot, "plot")  # a bad path fails before hours of training
    if args.trial and args.trials is not None:
        raise ConfigError("--trial/--trials", "give trial numbers or a count, not both")
    from srnas.search.fidelity import FidelitySettings, plan, run_fidelity
    from srnas.studies.fidelity import DEFAULT_RETRAINS

    settings = FidelitySettings(
        study=args.study, storage=args.storage, steps=args.steps,
        trials=DEFAULT_RETRAINS if args.trials is None else args.trials,
        numbers=tuple(args.trial), include_pruned=args.include_pruned, top_k=args.top_k,
        address=args.address, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, concurrency=args.concurrency, seed=args.seed,
        verbose=args.verbose, storage_retry_s=args.storage_retry_s)
    # Progress goes to stderr when the report is machine-readable, so stdout stays parseable.
    log = sys.stderr if args.format != "table" else sys.stdout
    if args.report_only:
        study, storage, steps, _ = plan(settings)
        _report(args, study, storage, steps)
        return 0
    try:
        outcome = run_fidelity(settings, out=log)
    except KeyboardInterrupt:  # Ctrl-C outside Tune's own handling (start-up, a second one)
        return _interrupted()
    if outcome.failed:
        print(f"{len(outcome.failed)} retrain(s) failed: " + "; ".join(
            f"trial {n}: {why}" for n, why in outcome.failed), file=log)
    if not outcome.interrupted:
        _report(args, outcome.study, outcome.storage, outcome.steps)
        return 0
    # What is measured so far, when there is enough of it to say anything (too few retrains
    # yet is no error of the user's: the resume hint is what matters).
    with contextlib.suppress(SrnasError, KeyboardInterrupt):
        _report(args, outcome.study, outcome.storage, outcome.steps)
    return _interrupted()


def _interrupted() -> int:
    """Ctrl-C: 130, as a shell expects of SIGINT, and how to go on (results so far are kept:
    each retrain is added to the sibling study when it ends)."""
    print("srnas fidelity: interrupted: run the same command again to retrain what is "
          "missing (finished retrains are kept)", file=sys.stderr)
    return 130


def _report(args: argparse.Namespace, study: Any, storage: Any, steps: int) -> None:
    from srnas.studies import fidelity as fid
    from srnas.studies.frame import trials_frame

    sibling = fid.load_sibling(study.study_name, storage)
    pairs = fid.pairs_frame(trials_frame(study), steps, sibling, study)
    figures = fid.agreement(pairs, top_k=args.top_k)
    if sibling is not None and not fid.store_rung_fidelity(sibling, steps, figures):
        print("note: the storage refused the per-rung figures; the report stands",
              file=sys.stderr)
    if args.format == "json":
        records = json.loads(pairs.to_json(orient="records"))
        print(json.dumps({"study": study.study_name, "steps": steps, **figures,
                          "trials": records}, indent=2))
    elif args.format == "csv":
        sys.stdout.write(pairs.to_csv(index=False))
    elif args.format == "markdown":
        from srnas.search.commands.output import frame_markdown

        sys.stdout.write(frame_markdown(pairs))
        sys.stdout.write("\n" + fid.rung_markdown(figures))
    else:
        print("\n".join(fid.report_lines(pairs, figures, steps)))
    if args.plot:
        from srnas.studies.fidelity_plot import plot_fidelity

        path = plot_fidelity(pairs, figures, steps, args.plot)
        print(f"wrote {path}", file=sys.stderr if args.format != "table" else sys.stdout)
