"""``srnas arch show`` and ``srnas arch validate``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from srnas.space.config import load_config
from srnas.space.parsing import parse_hw, resolve_spec
from srnas.space.presets import PRESET_NAMES


def _scale(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 2, 3 or 4 (got {text!r})") from None
    if value not in (2, 3, 4):
        raise argparse.ArgumentTypeError(f"must be 2, 3 or 4 (got {value})")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    arch = sub.add_parser("arch", help="show or validate an architecture config")
    arch_sub = arch.add_subparsers(dest="arch_command", required=True, metavar="ACTION")

    show = arch_sub.add_parser("show", help="print a config, its arch_id, parameters and FLOPs")
    show.add_argument("spec", metavar="SPEC", help=f"preset ({', '.join(PRESET_NAMES)}) or file")
    show.add_argument("--scale", type=_scale, help="upscaling factor (presets default to 4)")
    show.add_argument("--input", dest="input_hw", metavar="HxW",
                      help="LR input size for FLOPs (default: an export's recorded input, else "
                      "the one giving a 1280x720 output)")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(func=_show)

    validate = arch_sub.add_parser("validate", help="check a config file")
    validate.add_argument("path", metavar="FILE")
    validate.set_defaults(func=_validate)


def recorded_input_hw(spec: str) -> tuple[int, int] | None:
    """The measurement input an exported trial was counted at (``provenance.input_hw``), so
    that ``arch show`` of an export reports the FLOPs the study recorded."""
    path = Path(spec)
    if spec in PRESET_NAMES or path.suffix.lower() not in (".json", ".yaml", ".yml"):
        return None
    try:
        import yaml

        raw = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
        hw = raw["provenance"]["input_hw"]
        return int(hw[0]), int(hw[1])
    except Exception:  # not an export, or no recorded input: use the default
        return None


def _show(args: argparse.Namespace) -> int:
    config = resolve_spec(args.spec, args.scale)
    from srnas.space.complexity import complexity, default_input_hw

    recorded = None if args.scale is not None else recorded_input_hw(args.spec)
    hw = parse_hw(args.input_hw) if args.input_hw else (recorded or default_input_hw(config.scale))
    figures = complexity(config, hw)
    if args.json:
        print(json.dumps({"arch_id": config.arch_id, "config": config.to_dict(),
                          "params": figures["params"], "flops": figures["flops"],
                          "input_hw": list(hw)}))
        return 0
    print(config.to_yaml().rstrip())
    print(f"arch_id: {config.arch_id}")
    print(f"params: {figures['params']:,}")
    print(f"flops: {figures['flops'] / 1e9:.2f} G multiply-adds at {hw[0]}x{hw[1]} input "
          f"({hw[0] * config.scale}x{hw[1] * config.scale} output)")
    return 0


def _validate(args: argparse.Namespace) -> int:
    config = load_config(args.path)
    print(f"{args.path}: valid ({config.block_type}, dim {config.dim}, {config.n_blocks} blocks "
          f"x {config.conv_layers} layers, k {config.kernel_size}, x{config.scale}, "
          f"arch_id {config.arch_id})")
    return 0
