"""``srnas plot``: PSNR against latency of a study, the front highlighted (PNG or HTML)."""

from __future__ import annotations

import argparse

from srnas.search.commands.args import (
    Args,
    Subcommands,
    add_storage,
    add_trial_filters,
    budgets,
    command,
)
from srnas.search.commands.measured_filters import add_measured_filters, measured_filters


def register(sub: Subcommands, name: str) -> list[Args]:
    a = command(sub, name, help="PSNR against latency, front highlighted (PNG or HTML)")
    a.add("study", metavar="STUDY", help="study name")
    a.add("--out", metavar="FILE.png|FILE.html", help="output file (required)")
    add_trial_filters(a)
    add_measured_filters(a)
    add_storage(a)
    a.run(_run)
    return [a]


def _run(args: argparse.Namespace) -> int:
    from srnas.search.commands.reading import open_study, require_out
    from srnas.studies.front import trials_frame
    from srnas.studies.plot import SUFFIXES, check_plot_out, plot_front

    out = require_out(args, " or ".join(SUFFIXES))
    check_plot_out(out)  # before opening the storage: a bad --out fails fast
    _, study = open_study(args)
    path = plot_front(trials_frame(study), out, budgets=budgets(args), device=args.device,
                      input_hw=args.input_hw, **measured_filters(args))
    print(f"wrote {path}")
    return 0
