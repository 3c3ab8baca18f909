"""``srnas benchmark`` and ``srnas export``: trained networks measured side by side, and shipped.

Both read a network from a training run folder (``RUN/``: config.yaml + best.safetensors), a
weights file (its header records the config), or a config / preset / study trial with
``--weights``; a network without weights is refused unless ``--untrained`` says random weights
are meant. ``export`` keeps the config export of studies/ (``STUDY --trial N|--pick P --out
FILE.yaml``) and adds ``--onnx FILE.onnx``; this composition layer registers it because only
search/ may combine a study with torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from srnas.evaluators.benchmark_render import FORMATS
from srnas.space.contract import BUDGET_KEYS
from srnas.space.errors import ConfigError, SrnasError
from srnas.space.version import srnas_version
from srnas.studies.cli import parse_trial

if TYPE_CHECKING:
    from srnas.evaluators.trained import Trained

_SOURCES = ("a training run folder RUN/ (config.yaml + best.safetensors), a .safetensors file, "
            "a config file or a preset (with --weights), or a study with --trial N")


def _add_source_flags(p: argparse.ArgumentParser, *, many: bool) -> None:
    p.add_argument("--weights", metavar="W.safetensors", action="append" if many else "store",
                   help="weights of a config, preset or study model"
                   + (" (repeat: one per such model, in order)" if many else ""))
    p.add_argument("--untrained", action="store_true",
                   help="allow a model without weights (random weights: a smoke test, not a "
                   "result)")
    p.add_argument("--scale", type=int, choices=(2, 3, 4),
                   help="upscaling factor of presets and configs (default: the trained "
                   "models' scale, else 4)")


def register(sub: argparse._SubParsersAction) -> None:
    from srnas.studies.cli import add_export_arguments

    bench = sub.add_parser("benchmark", help="the table of an SR paper: PSNR/SSIM per "
                           "benchmark folder, params, FLOPs, latency and memory, side by side "
                           "with bicubic")
    bench.add_argument("models", nargs="+", metavar="MODEL", help=_SOURCES)
    _add_source_flags(bench, many=True)
    bench.add_argument("--trial", metavar="N", help="the trial of a study MODEL")
    bench.add_argument("--storage", metavar="URL", help="study database of a study MODEL")
    bench.add_argument("--val", metavar="DIR", action="append",
                       help="benchmark folder (HR + LR_bicubic/X<s>, or HR only); repeat for "
                       "more columns (required)")
    bench.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    bench.add_argument("--input", dest="input_hw", metavar="HxW",
                       help="latency/memory/FLOPs input (default: the 1280x720-output input, "
                       "180x320 at x4)")
    bench.add_argument("--no-latency", action="store_true",
                       help="skip the latency timing (memory and FLOPs are still measured)")
    bench.add_argument("--format", default="table", metavar="{" + ",".join(FORMATS) + "}")
    bench.set_defaults(func=_cmd_benchmark)

    export = sub.add_parser("export", help="write one trial's config with its provenance "
                            "(--out FILE.yaml), or a trained network as ONNX (--onnx FILE.onnx)")
    add_export_arguments(export, study_help="study name; with --onnx: " + _SOURCES)
    export.add_argument("--onnx", metavar="FILE.onnx", help="write the network as ONNX "
                        "(dynamic height and width, batch 1), checked against PyTorch with "
                        "onnxruntime")
    _add_source_flags(export, many=False)
    export.add_argument("--check-image", metavar="IMG", help="image the ONNX check runs on "
                        "(default: a photograph bundled with scikit-image)")
    export.set_defaults(func=_cmd_export)


# -- where a network comes from -------------------------------------------------------------
def _trial(text: str | None) -> int | None:
    return None if text is None else parse_trial(text)


def resolve_models(specs: Sequence[str], weights: Sequence[str] = (), *,
                   trial: int | None = None, storage: str | None = None,
                   scale: int | None = None, untrained: bool = False,
                   field: str = "models") -> list[Trained]:
    """Each spec as a network to load: a RUN/ folder or a .safetensors file brings its own
    weights; a config, preset or study (``trial``) takes the next of ``weights``. Scales are
    reconciled (``scale``, else the trained models' one); a model without weights is an error
    unless ``untrained``. Errors about a spec name ``field``."""
    from srnas.evaluators.trained import (
        RUN_CONFIG,
        Trained,
        from_run,
        from_weights_file,
        is_run_folder,
        is_weights_file,
        training_steps,
    )
    from srnas.search.sources import resolve_source

    pending = [Path(w) for w in weights]
    models: list[Trained] = []
    for spec in specs:
        if is_run_folder(spec):
            models.append(from_run(spec))
        elif Path(spec).is_dir():
            raise ConfigError(field, f"is a folder but not a training run (no {RUN_CONFIG})",
                              spec)
        elif is_weights_file(spec):
            models.append(from_weights_file(spec))
        else:
            try:
                source = resolve_source(spec, trial=trial, storage=storage, scale=scale)
            except SrnasError as e:
                if e.field != "spec":
                    raise
                raise type(e)(field, e.rule, e.value) from None
            file = pending.pop(0) if pending else None
            budget = training_steps(file) if file is not None else (None, None)
            models.append(Trained(source.label, source.config, file, *budget))
    if pending:
        raise ConfigError("weights", "one more than the models that take weights (configs, "
                          "presets, study trials; RUN/ folders and .safetensors files bring "
                          "their own)", str(pending[0]))
    models = _one_scale(models, scale)
    for m in models:
        if m.weights is None and not untrained:
            raise ConfigError("weights", f"model {m.label} has none: give --weights "
                              "W.safetensors or a RUN/ folder (measuring random weights is "
                              "almost always a mistake; --untrained allows it)")
    return models


def _one_scale(models: list[Trained], scale: int | None) -> list[Trained]:
    """Trained models keep their scale (``scale`` must agree); untrained ones follow it, or the
    trained models' scale."""
    from srnas.evaluators.weights import weights_config

    for m in models:
        recorded = weights_config(m.weights) if m.weights is not None else None
        if recorded is not None and recorded.scale != m.config.scale:
            raise ConfigError("scale", f"{m.weights} were trained at x{recorded.scale}, the "
                              f"model {m.label} is x{m.config.scale}", m.config.scale)
        if scale is not None and m.weights is not None and m.config.scale != scale:
            raise ConfigError("scale", f"model {m.label} was trained at x{m.config.scale}",
                              scale)
    trained = {m.config.scale for m in models if m.weights is not None}
    target = scale if scale is not None else (trained.pop() if len(trained) == 1 else None)
    if target is None:
        return models
    return [m if m.config.scale == target else
            dataclasses.replace(m, config=m.config.replace(scale=target)) for m in models]


# -- handlers -------------------------------------------------------------------------------
def _cmd_benchmark(args: argparse.Namespace) -> int:
    from srnas.evaluators.benchmark import benchmark
    from srnas.evaluators.benchmark_render import render
    from srnas.space.parsing import parse_hw

    if args.format not in FORMATS:
        raise ConfigError("format", f"must be one of {', '.join(FORMATS)}", args.format)
    if not args.val:
        raise ConfigError("val", "is required: a benchmark folder (HR + LR_bicubic/X<s>)")
    input_hw = parse_hw(args.input_hw) if args.input_hw else None
    models = resolve_models(args.models, args.weights or [], trial=_trial(args.trial),
                            storage=args.storage, scale=args.scale, untrained=args.untrained)
    table = benchmark(models, args.val, args.device, input_hw=input_hw,
                      latency=not args.no_latency)
    sys.stdout.write(render(table, args.format))
    return 0


# Flags of one export kind that mean nothing to the other.
_CONFIG_ONLY = ("pick", "out", "device", "input_hw", *BUDGET_KEYS.values())
_ONNX_ONLY = ("weights", "untrained", "scale", "check_image")


def _cmd_export(args: argparse.Namespace) -> int:
    wrong = _ONNX_ONLY if args.onnx is None else _CONFIG_ONLY
    for dest in wrong:
        if getattr(args, dest) not in (None, False):
            raise ConfigError(dest, "belongs to the ONNX export: add --onnx FILE.onnx"
                              if args.onnx is None else "belongs to the config export "
                              "(--out): run it separately")
    if args.onnx is None:
        from srnas.studies.cli import export_config

        return export_config(args)
    return _export_onnx(args)


def _export_onnx(args: argparse.Namespace) -> int:
    from srnas.evaluators.deploy import export_checked
    from srnas.evaluators.trained import load_network
    from srnas.studies.files import check_out_path

    target = check_out_path(args.onnx, (".onnx",), field="onnx")
    [model] = resolve_models([args.study], [args.weights] if args.weights else [],
                             trial=_trial(args.trial), storage=args.storage, scale=args.scale,
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


__all__ = ["register", "resolve_models"]
