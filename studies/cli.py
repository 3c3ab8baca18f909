"""Sub-commands of studies/: ``studies list``, ``pareto``, ``plot`` and ``export``.

Importing this module only declares arguments (``srnas --help`` stays fast); handlers import
pandas, Optuna and plotting on demand. Values are parsed in the handlers rather than by
argparse types, so every bad value is one ``SrnasError`` line with exit code 2, like the rest.
Errors name the argparse dest (``max_latency_ms``, ``out``); ``srnas.search.cli.main`` shows
the flag the user typed (``--max-latency-ms``, ``--out``).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from srnas.space.contract import BUDGET_KEYS, DEFAULT_STORAGE, STORAGE_ENV
from srnas.space.errors import ConfigError
from srnas.studies.front import PICKS, SORT_KEYS
from srnas.studies.render import FORMATS_FRONT, FORMATS_LIST

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from optuna.storages import RDBStorage


def _one_of(values: Sequence[str]) -> str:
    return "{" + ",".join(values) + "}"


# -- argument declarations ------------------------------------------------------------------------
def _add_storage(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", metavar="URL",
                   help=f"study database (default: ${STORAGE_ENV}, else {DEFAULT_STORAGE})")


def _add_filters(p: argparse.ArgumentParser) -> None:
    for key, arg in BUDGET_KEYS.items():
        p.add_argument("--" + arg.replace("_", "-"), dest=arg, metavar="X",
                       help=f"keep trials with {key} <= X (applied after the fact)")
    p.add_argument("--device", metavar="D",
                   help="keep trials measured on D (exact name, else a part of it: 'H100')")
    p.add_argument("--input", dest="input_hw", metavar="HxW",
                   help="keep trials whose latency/memory/FLOPs input was HxW (e.g. 180x320)")


def register(sub: argparse._SubParsersAction) -> None:
    studies = sub.add_parser("studies", help="list the studies of a storage")
    studies_sub = studies.add_subparsers(dest="studies_command", required=True,
                                         metavar="SUBCOMMAND")
    listing = studies_sub.add_parser("list", help="name, objectives, trials by state, best "
                                     "PSNR, devices, last update of every study")
    _add_storage(listing)
    listing.add_argument("--format", default="table", metavar=_one_of(FORMATS_LIST))
    listing.add_argument("--fix-stale", action="store_true",
                         help="first fail the RUNNING trials whose driver died (no heartbeat "
                         "for 4 heartbeat intervals, 120 s by default; a live driver's trials "
                         "are never touched)")
    listing.set_defaults(func=_cmd_list)

    pareto = sub.add_parser("pareto", help="the feasible Pareto front of a study, with "
                            "every measure, hypervolume and budgets")
    pareto.add_argument("study", nargs="?", metavar="STUDY", help="study name (see `srnas "
                        "studies list`)")
    pareto.add_argument("--all-studies", action="store_true",
                        help="merge the trials of every study (one device and input only)")
    _add_filters(pareto)
    pareto.add_argument("--sort", default="psnr", metavar=_one_of(SORT_KEYS),
                        help="row order: best first (default psnr)")
    pareto.add_argument("--format", default="table", metavar=_one_of(FORMATS_FRONT),
                        help="table (default; header with hypervolume), csv (rows only) or "
                        "json (rows, hypervolume, reference point)")
    pareto.add_argument("--reference-point", metavar="NAME=V,...",
                        help="hypervolume reference, one value per objective (default: worst "
                        "feasible value + 10%% of its range, or the budget)")
    pareto.add_argument("--fidelity", type=int, metavar="N",
                        help="rank with the PSNR after N training steps where `srnas fidelity` "
                        "retrained a trial (column psnr_steps says which budget each PSNR is "
                        "from)")
    _add_storage(pareto)
    pareto.set_defaults(func=_cmd_pareto)

    plot = sub.add_parser("plot", help="PSNR against latency, front highlighted (PNG or HTML)")
    plot.add_argument("study", metavar="STUDY", help="study name")
    plot.add_argument("--out", metavar="FILE.png|FILE.html", help="output file (required)")
    _add_filters(plot)
    _add_storage(plot)
    plot.set_defaults(func=_cmd_plot)


# ``srnas export`` is registered by search/cli_deploy.py, which adds the ONNX export (torch) to
# the config export declared and handled here.
def add_export_arguments(export: argparse.ArgumentParser, *, study_help: str = "study name"
                         ) -> None:
    """Declare the config export's arguments (STUDY, --trial/--pick, filters, --out, --storage)
    on ``export``; :func:`export_config` handles them."""
    export.add_argument("study", metavar="STUDY", help=study_help)
    export.add_argument("--trial", metavar="N", help="the trial number to export")
    export.add_argument("--pick", metavar=_one_of(PICKS),
                        help="choose on the front (after budgets); knee = closest to the "
                        "ideal point after min-max normalising each objective")
    _add_filters(export)
    export.add_argument("--out", metavar="FILE.yaml|FILE.json",
                        help="config file to write (required unless --onnx)")
    _add_storage(export)


# -- value parsing ------------------------------------------------------------------------------
def _choice(field: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(field, f"must be one of {', '.join(allowed)}", value)
    return value


def _positive(field: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(field, "must be a number", text) from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(field, "must be a positive number", text)
    return value


def _budgets(args: argparse.Namespace) -> dict[str, float]:
    return {key: _positive(arg, getattr(args, arg))
            for key, arg in BUDGET_KEYS.items() if getattr(args, arg) is not None}


def _input_hw(args: argparse.Namespace) -> str | None:
    """``--input`` checked here (its own message), passed on as typed ("HxW" text, which the
    library takes too), so errors show the value the user gave."""
    from srnas.space.cli import parse_hw

    if args.input_hw is not None:
        parse_hw(args.input_hw, "input_hw")
    return args.input_hw


def _reference(text: str, objectives: Sequence[tuple[str, str]]) -> dict[str, float]:
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
    missing = [n for n in names if n not in reference]
    if missing:
        raise ConfigError("reference_point", f"needs every objective; missing "
                          f"{', '.join(missing)}", text)
    return reference


def _require_out(args: argparse.Namespace, kinds: str) -> str:
    if not args.out:
        raise ConfigError("out", f"is required, a {kinds} file")
    return str(args.out)


def _open(args: argparse.Namespace) -> tuple[str, RDBStorage]:
    import optuna

    from srnas.studies.storage import open_storage, resolve_url

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # keep stdout to what was asked for
    url = resolve_url(args.storage)
    return url, open_storage(url)


def _study(args: argparse.Namespace) -> tuple[str, optuna.Study]:
    from srnas.studies.front import load_study

    url, store = _open(args)
    return url, load_study(args.study, store)


# -- handlers -------------------------------------------------------------------------------------
def _cmd_list(args: argparse.Namespace) -> int:
    from srnas.studies import render
    from srnas.studies.listing import list_studies

    fmt = _choice("format", args.format, FORMATS_LIST)
    _, store = _open(args)
    if args.fix_stale:
        import optuna

        from srnas.studies.stale import fail_stale_trials
        from srnas.studies.storage import open_storage

        beating = open_storage(args.storage, heartbeat=True)
        for name in optuna.get_all_study_names(beating):
            lost = fail_stale_trials(optuna.load_study(study_name=name, storage=beating))
            if lost:
                print(f"{name}: failed {len(lost)} trial(s) whose driver died (lost "
                      f"heartbeat): {', '.join(map(str, lost))}", file=sys.stderr)
    summaries = list_studies(store)
    print(render.list_json(summaries) if fmt == "json" else render.list_table(summaries))
    return 0


def _front_source(args: argparse.Namespace
                  ) -> tuple[str, RDBStorage, optuna.Study | None, pd.DataFrame]:
    """(URL, storage, the study (None with --all-studies), its trials frame)."""
    from srnas.studies.front import load_study, merge_studies, study_names, trials_frame

    if args.all_studies and args.study:
        raise ConfigError("study", "give a study or --all-studies, not both", args.study)
    if not args.all_studies and not args.study:
        raise ConfigError("study", "give a study name, or --all-studies")
    url, store = _open(args)
    if args.all_studies:
        return url, store, None, merge_studies([load_study(n, store)
                                                for n in study_names(store)])
    study = load_study(args.study, store)
    return url, store, study, trials_frame(study)


def _cmd_pareto(args: argparse.Namespace) -> int:
    from srnas.studies import render
    from srnas.studies.front import front_records, hypervolume, pareto_front
    from srnas.studies.storage import mask_url

    fmt = _choice("format", args.format, FORMATS_FRONT)
    sort = _choice("sort", args.sort, SORT_KEYS)
    budgets = _budgets(args)
    input_hw = _input_hw(args)
    if args.fidelity is not None and args.all_studies:  # refused before any study is read
        raise ConfigError("fidelity", "reads one study's retrains; give a study, not "
                          "--all-studies", args.fidelity)
    url, store, study, frame = _front_source(args)
    if study is not None and args.fidelity is not None:
        frame = _with_fidelity(args, store, study, frame)
    given = args.reference_point is not None
    reference = _reference(args.reference_point, frame.attrs["objectives"]) if given else None
    front = pareto_front(frame, budgets=budgets, device=args.device, sort=sort,
                         input_hw=input_hw)
    reference = reference or front.attrs["reference_point"]
    hv = hypervolume(front, reference)
    storage = mask_url(url)
    if fmt == "json":
        text = render.front_json(front, front_records(front), hv, reference, given, storage)
    elif fmt == "csv":
        text = render.front_csv(front)
    else:
        text = render.front_table(front, render.front_header(front, hv, reference, given,
                                                             storage))
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
    pairs = fid.pairs_frame(frame, args.fidelity, sibling)
    return fid.with_long_psnr(frame, pairs, args.fidelity, fid.study_steps(study))


def _cmd_plot(args: argparse.Namespace) -> int:
    from srnas.studies.front import trials_frame
    from srnas.studies.plot import SUFFIXES, check_plot_out, plot_front

    out = _require_out(args, " or ".join(SUFFIXES))
    check_plot_out(out)  # before opening the storage: a bad --out fails fast
    budgets = _budgets(args)
    input_hw = _input_hw(args)
    _, study = _study(args)
    path = plot_front(trials_frame(study), out, budgets=budgets, device=args.device,
                      input_hw=input_hw)
    print(f"wrote {path}")
    return 0


def parse_trial(text: str) -> int:
    """A ``--trial`` value: a trial number, 0 or more."""
    try:
        number = int(text)
    except ValueError:
        raise ConfigError("trial", "must be a trial number", text) from None
    if number < 0:
        raise ConfigError("trial", "must be a trial number, 0 or more", text)
    return number


def export_config(args: argparse.Namespace) -> int:
    """``srnas export STUDY --trial N|--pick P --out FILE``: one trial's config with provenance."""
    from srnas.studies.export import SUFFIXES, export_trial
    from srnas.studies.files import check_out_path

    if (args.trial is None) == (args.pick is None):
        # Two arguments at once: no one dest to map, so the CLI names both flags itself.
        raise ConfigError("--trial/--pick", "give exactly one of them" + (
            ", not both" if args.trial is not None else ""))
    which: int | str = parse_trial(args.trial) if args.trial is not None else _choice(
        "pick", args.pick, PICKS)
    out = _require_out(args, " or ".join(SUFFIXES))
    check_out_path(out, SUFFIXES)
    budgets = _budgets(args)
    input_hw = _input_hw(args)
    url, study = _study(args)
    document = export_trial(study, which, out, budgets=budgets, device=args.device,
                            input_hw=input_hw, storage_url=url)
    provenance = document["provenance"]
    recorded = provenance.get("recorded_arch_id")
    if recorded:
        print(f"srnas export: warning: trial {provenance['trial']} recorded arch_id {recorded}, "
              f"this srnas computes {provenance['arch_id']} (the config schema changed)",
              file=sys.stderr)
    print(f"wrote {out}: study {study.study_name}, trial {provenance['trial']}, arch_id "
          f"{provenance['arch_id']}")
    return 0
