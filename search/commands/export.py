"""``srnas export``: one trial's config with its provenance (``--out FILE.yaml``), or a
trained network as ONNX (``--onnx FILE.onnx``), checked against PyTorch with onnxruntime.

The two exports share STUDY, --trial and --storage; every other flag belongs to one of them,
declared in its group, and refused with the other."""

from __future__ import annotations

import argparse
import sys

from srnas.search.commands.args import (
    Args,
    Subcommands,
    add_storage,
    add_trial,
    add_trial_filters,
    budgets,
    command,
    one_of,
)
from srnas.search.commands.benchmark import SOURCES, add_model_flags
from srnas.search.commands.measured_filters import add_measured_filters, measured_filters
from srnas.space.errors import ConfigError
from srnas.space.version import srnas_version
from srnas.studies.picks import PICKS

CONFIG = "config export (--out FILE.yaml|FILE.json)"
ONNX = "ONNX export (--onnx FILE.onnx)"


def register(sub: Subcommands, name: str) -> list[Args]:
    a = command(sub, name, help="write one trial's config with its provenance (--out "
                "FILE.yaml), or a trained network as ONNX (--onnx FILE.onnx)")
    a.add("study", metavar="STUDY", help="study name; with --onnx: " + SOURCES)
    add_trial(a, help="the trial number to export")
    add_storage(a)
    config = a.group(CONFIG)
    config.add("--pick", type=one_of(PICKS), metavar="{" + ",".join(PICKS) + "}",
               help="choose on the front (after budgets); knee = closest to the ideal point "
               "after min-max normalising each objective")
    add_trial_filters(config)
    add_measured_filters(config)
    config.add("--out", metavar="FILE.yaml|FILE.json",
               help="config file to write (required unless --onnx)")
    onnx = a.group(ONNX)
    onnx.add("--onnx", metavar="FILE.onnx", help="write the network as ONNX (dynamic height "
             "and width, batch 1), checked against PyTorch with onnxruntime")
    add_model_flags(onnx, many=False)
    onnx.add("--check-image", metavar="IMG", help="image the ONNX check runs on (default: a "
             "photograph bundled with scikit-image)")
    a.run(lambda args: _run(args, a.groups))
    return [a]


def _run(args: argparse.Namespace, groups: dict[str, list[str]]) -> int:
    onnx = args.onnx is not None
    for dest in groups[CONFIG if onnx else ONNX]:
        if getattr(args, dest) not in (None, False):
            raise ConfigError(dest, "belongs to the config export (--out): run it separately"
                              if onnx else "belongs to the ONNX export: add --onnx FILE.onnx")
    return _export_onnx(args) if onnx else _export_config(args)


def _export_config(args: argparse.Namespace) -> int:
    from srnas.search.commands.reading import open_study, require_out
    from srnas.studies.export import SUFFIXES, export_trial
    from srnas.studies.files import check_out_path

    if (args.trial is None) == (args.pick is None):
        # Two arguments at once: no one field to map, so the message names both flags.
        raise ConfigError("--trial/--pick", "give exactly one of them" + (
            ", not both" if args.trial is not None else ""))
    which: int | str = args.trial if args.trial is not None else args.pick
    out = require_out(args, " or ".join(SUFFIXES))
    check_out_path(out, SUFFIXES)
    url, study = open_study(args)
    document = export_trial(study, which, out, budgets=budgets(args), device=args.device,
                            input_hw=args.input_hw, storage_url=url, **measured_filters(args))
    provenance = document["provenance"]
    recorded = provenance.get("recorded_arch_id")
    if recorded:
        print(f"srnas export: warning: trial {provenance['trial']} recorded arch_id {recorded}, "
              f"this srnas computes {provenance['arch_id']} (the config schema changed)",
              file=sys.stderr)
    m = provenance["measured_with"]
    where = f"on target {m['target']}" if m["target"] else "where it trained"
    print(f"wrote {out}: study {study.study_name}, trial {provenance['trial']}, arch_id "
          f"{provenance['arch_id']}; latency/memory measured with {m['runtime']} "
          f"{m['precision']} on {m['device'] or 'an unrecorded device'} ({where})")
    return 0


def _export_onnx(args: argparse.Namespace) -> int:
    from srnas.evaluators.deploy import export_checked
    from srnas.evaluators.trained import load_network
    from srnas.search.models import resolve_models
    from srnas.studies.files import check_out_path

    target = check_out_path(args.onnx, (".onnx",), field="onnx")
    [model] = resolve_models([args.study], [args.weights] if args.weights else [],
                             trial=args.trial, storage=args.storage, scale=args.scale,
                             untrained=args.untrained, field="study")
    metadata = {"srnas.model": model.label, "srnas.trained": model.budget,
                "srnas.weights": model.weights.name if model.weights else "random (untrained)",
                "srnas.version": srnas_version()}
    result = export_checked(load_network(model), target, image=args.check_image,
                            metadata=metadata)
    checks = ", ".join(f"{c.image} {c.max_abs_diff:.1e}" for c in result.checks)
    print(f"wrote {result.path} ({result.bytes / 2**20:.1f} MiB, opset {result.opset}, "
          f"{result.exporter}): {model.label}, arch_id {model.config.arch_id}, x"
          f"{model.config.scale}, {model.budget}")
    print(f"checked with onnxruntime against PyTorch: max |diff| {result.max_abs_diff:.1e} "
          f"(tolerance {result.tolerance:g}; {checks}); traced at "
          f"{result.traced_hw[0]}x{result.traced_hw[1]}; inputs need sides >= "
          f"{result.min_side}")
    return 0
