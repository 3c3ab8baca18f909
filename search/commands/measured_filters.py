"""``--runtime``, ``--precision`` and ``--target`` as filters of the commands that read studies
(pareto, plot, export): keep the trials whose latency and memory were measured so. The flags
have the names the measuring commands use (:mod:`srnas.search.commands.runtime_flags`), but no
default: not given, nothing is filtered (a frame that mixes conditions is then refused by the
front, in one line saying which flag narrows it)."""

from __future__ import annotations

import argparse

from srnas.evaluators.runtime_names import PRECISIONS, RUNTIME_NAMES
from srnas.search.commands.args import Args, one_of
from srnas.studies.measured import LOCAL

CONDITIONS = ("runtime", "precision", "target")


def add_measured_filters(args: Args) -> None:
    """Declare the three filters (after :func:`~srnas.search.commands.args.add_trial_filters`)."""
    args.add("--runtime", type=one_of(RUNTIME_NAMES), metavar="{" + ",".join(RUNTIME_NAMES) + "}",
             help="keep trials whose latency/memory this runtime measured (torch: eager "
             "PyTorch, also trials that record no runtime)")
    args.add("--precision", type=one_of(PRECISIONS), metavar="{" + ",".join(PRECISIONS) + "}",
             help="keep trials measured at this precision (fp32: also trials that record none)")
    args.add("--target", metavar="NAME", help=f"keep trials measured on target node NAME "
             f"(srnas search --target); {LOCAL}: those measured where they trained")


def measured_filters(namespace: argparse.Namespace) -> dict[str, str | None]:
    """The filters as the studies functions take them (``runtime=``, ``precision=``,
    ``target=``; None where not given)."""
    return {key: getattr(namespace, key, None) for key in CONDITIONS}


__all__ = ["CONDITIONS", "add_measured_filters", "measured_filters"]
