"""``srnas arch show`` and ``srnas arch validate``."""

from __future__ import annotations

import argparse
import sys

from srnas.search.commands.args import (
    Args,
    Subcommands,
    add_format,
    add_input,
    add_scale,
    command,
)
from srnas.space.presets import PRESET_NAMES


def register(sub: Subcommands, name: str) -> list[Args]:
    arch = command(sub, name, help="show or validate an architecture config")
    actions = arch.subcommands("ACTION", dest="arch_command")

    show = command(actions, "show", path=(name,),
                   help="print a config, its arch_id, parameters and FLOPs")
    show.add("spec", metavar="SPEC", help=f"preset ({', '.join(PRESET_NAMES)}) or file")
    add_scale(show, help="upscaling factor: 2, 3 or 4 (presets default to 4)")
    add_input(show, "LR input size for FLOPs (default: an export's recorded input, else the "
              "one giving a 1280x720 output)")
    add_format(show, json_alias=True, help="table (default: the config as YAML and its "
               "figures), csv, json or markdown")
    show.run(_show)

    validate = command(actions, "validate", path=(name,), help="check a config file")
    validate.add("path", metavar="FILE")
    validate.run(_validate)
    return [show, validate]


def _show(args: argparse.Namespace) -> int:
    from srnas.space.complexity import complexity, default_input_hw
    from srnas.space.parsing import parse_hw, recorded_input_hw, resolve_spec

    config = resolve_spec(args.spec, args.scale)
    recorded = None if args.scale is not None else recorded_input_hw(args.spec)
    hw = parse_hw(args.input_hw) if args.input_hw else (recorded or default_input_hw(config.scale))
    figures = complexity(config, hw)
    if args.format != "table":
        from srnas.search.commands.output import records_text

        sys.stdout.write(records_text([{
            "arch_id": config.arch_id, "config": config.to_dict(), "params": figures["params"],
            "flops": figures["flops"], "input_hw": list(hw)}], args.format))
        return 0
    print(config.to_yaml().rstrip())
    print(f"arch_id: {config.arch_id}")
    print(f"params: {figures['params']:,}")
    print(f"flops: {figures['flops'] / 1e9:.2f} G multiply-adds at {hw[0]}x{hw[1]} input "
          f"({hw[0] * config.scale}x{hw[1] * config.scale} output)")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from srnas.space.config import load_config

    config = load_config(args.path)
    print(f"{args.path}: valid ({config.block_type}, dim {config.dim}, {config.n_blocks} blocks "
          f"x {config.conv_layers} layers, k {config.kernel_size}, x{config.scale}, "
          f"arch_id {config.arch_id})")
    return 0
