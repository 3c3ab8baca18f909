"""``srnas pareto``: the feasible Pareto front of a study (or of all), with every measure,
hypervolume and budgets."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from srnas.search.commands.args import (
    Args,
    Subcommands,
    add_format,
    add_storage,
    add_trial_filters,
    budgets,
    command,
    one_of,
    positive_int,
)
from srnas.search.commands.measured_filters import add_measured_filters, measured_filters
from srnas.space.errors import ConfigError
from srnas.studies.picks import SORT_KEYS

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from optuna.storages import RDBStorage


def register(sub: Subcommands, name: str) -> list[Args]:
    a = command(sub, name, help="the feasible Pareto front of a study, with every measure, "
                "hypervolume and budgets")
    a.add("study", nargs="?", metavar="STUDY", help="study name (see `srnas studies list`)")
    a.add("--all-studies", action="store_true",
          help="merge the trials of every study (one device, input, runtime, precision and "
          "target only)")
    add_trial_filters(a)
    add_measured_filters(a)
    a.add("--sort", type=one_of(SORT_KEYS), default="psnr",
          metavar="{" + ",".join(SORT_KEYS) + "}", help="row order: best first (default psnr)")
    add_format(a, help="table (default; header with hypervolume), csv (rows only), json "
               "(rows, hypervolume, reference point) or markdown (the table's header and rows)")
    a.add("--reference-point", metavar="NAME=V,...",
          help="hypervolume reference, one value per objective (default: worst feasible value "
          "+ 10%% of its range, or the budget)")
    a.add("--fidelity", type=positive_int, metavar="N",
          help="rank with the PSNR after N training steps where `srnas fidelity` retrained a "
          "trial (column psnr_steps says which budget each PSNR is from)")
    a.add("--history", type=positive_int, metavar="N",
          help="also the hypervolume after every N trials (trial order) at the same reference "
          "point; with --format csv only that history is printed")
    add_storage(a)
    a.run(_run)
    return [a]


def _reference(text: str, objectives: Sequence[tuple[str, str]]) -> dict[str, float]:
    import math

    names = [n for n, _ in objectives]
    reference: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in names:
            raise ConfigError("reference_point", f"must be NAME=VALUE for each objective "
                              f"({', '.join(names)})", text)
        try:
            reference[name] = float(value)
        except ValueError:
            raise ConfigError("reference_point", f"{name} must be a number", text) from None
        if not math.isfinite(reference[name]):
            raise ConfigError("reference_point", f"{name} must be a finite number", text)
    missing = [n for n in names if n not in reference]
    if missing:
        raise ConfigError("reference_point", f"needs every objective; missing "
                          f"{', '.join(missing)}", text)
    return reference


def _front_source(args: argparse.Namespace
                  ) -> tuple[str, RDBStorage, optuna.Study | None, pd.DataFrame]:
    """(URL, storage, the study (None with --all-studies), its trials frame)."""
    from srnas.search.commands.reading import open_study_storage
    from srnas.studies.front import load_study, merge_studies, study_names, trials_frame

    if args.all_studies and args.study:
        raise ConfigError("study", "give a study or --all-studies, not both", args.study)
    if not args.all_studies and not args.study:
        raise ConfigError("study", "give a study name, or --all-studies")
    url, store = open_study_storage(args)
    if args.all_studies:
        return url, store, None, merge_studies([load_study(n, store)
                                                for n in study_names(store)])
    study = load_study(args.study, store)
    return url, store, study, trials_frame(study)


def _run(args: argparse.Namespace) -> int:
    import json

    from srnas.studies import render
    from srnas.studies.front import (
        front_records,
        hypervolume,
        hypervolume_history,
        pareto_front,
    )
    from srnas.studies.storage import mask_url

    if args.fidelity is not None and args.all_studies:  # refused before any study is read
        raise ConfigError("fidelity", "reads one study's retrains; give a study, not "
                          "--all-studies", args.fidelity)
    if args.history is not None and args.all_studies:
        raise ConfigError("history", "follows one study's trial order; give a study, not "
                          "--all-studies", args.history)
    url, store, study, frame = _front_source(args)
    if study is not None and args.fidelity is not None:
        frame = _with_fidelity(args, store, study, frame)
    given = args.reference_point is not None
    reference = _reference(args.reference_point, frame.attrs["objectives"]) if given else None
    conditions = measured_filters(args)
    front = pareto_front(frame, budgets=budgets(args), device=args.device, sort=args.sort,
                         input_hw=args.input_hw, **conditions)
    reference = reference or front.attrs["reference_point"]
    hv = hypervolume(front, reference)
    storage = mask_url(url)
    history = None if args.history is None else hypervolume_history(
        frame, args.history, reference, budgets=budgets(args), device=args.device,
        input_hw=args.input_hw, **conditions)
    if args.format == "json":
        text = render.front_json(front, front_records(front), hv, reference, given, storage)
        if history is not None:
            document = json.loads(text)
            document["history"] = {"every": args.history, "points": history}
            text = json.dumps(document, indent=2)
    elif args.format == "csv":
        text = render.front_csv(front) if history is None else render.history_csv(history)
    else:
        table = render.front_markdown if args.format == "markdown" else render.front_table
        text = table(front, render.front_header(front, hv, reference, given, storage))
        if history is not None:
            text += "\n\n" + "\n".join(render.history_lines(
                history, args.history, markdown=args.format == "markdown"))
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _with_fidelity(args: argparse.Namespace, store: RDBStorage, study: optuna.Study,
                   frame: pd.DataFrame) -> pd.DataFrame:
    """The study's trials with the long-budget PSNR of ``srnas fidelity`` where it exists."""
    from srnas.studies import fidelity as fid

    sibling = fid.load_sibling(args.study, store)
    measured = fid.budgets_measured(sibling)
    if args.fidelity not in measured:
        have = ", ".join(map(str, measured)) or "none yet (run srnas fidelity)"
        raise ConfigError("fidelity", f"study {args.study!r} has no retrains at that budget; "
                          f"budgets measured: {have}", args.fidelity)
    pairs = fid.pairs_frame(frame, args.fidelity, sibling, study)
    return fid.with_long_psnr(frame, pairs, args.fidelity, fid.study_steps(study))
