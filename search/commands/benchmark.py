"""``srnas benchmark``: trained networks measured side by side, the table of an SR paper."""

from __future__ import annotations

import argparse
import sys

from srnas.search.commands.args import (
    Args,
    Subcommands,
    add_data,
    add_device,
    add_format,
    add_input,
    add_scale,
    add_storage,
    add_trial,
    command,
    resolve_auto,
)
from srnas.search.commands.runtime_flags import add_runtime_flags, runtime_spec
from srnas.space.errors import ConfigError

# The largest latency/memory input: one 4K frame (2160x3840 input pixels, a 16K output at x4).
# Past it a float32 activation of a 64-channel network alone passes 2 GiB per image; an input
# of 100000x100000 asked the allocator for 120 GB and died in a traceback.
MAX_INPUT_PIXELS = 2160 * 3840

SOURCES = ("a training run folder RUN/ (config.yaml + best.safetensors), a .safetensors file, "
           "a config file or a preset (with --weights), or a study with --trial N")


def add_model_flags(a: Args, *, many: bool) -> None:
    """Where a model's weights come from, and the scale of presets and configs."""
    a.add("--weights", metavar="W.safetensors", action="append" if many else "store",
          help="weights of a config, preset or study model"
          + (" (repeat: one per such model, in order)" if many else ""))
    a.add("--untrained", action="store_true",
          help="allow a model without weights (random weights: a smoke test, not a result)")
    add_scale(a, help="upscaling factor of presets and configs: 2, 3 or 4 (default: the "
              "trained models' scale, else 4)")


def register(sub: Subcommands, name: str) -> list[Args]:
    a = command(sub, name, help="the table of an SR paper: PSNR/SSIM per benchmark folder, "
                "params, FLOPs, latency and memory, side by side with bicubic")
    a.add("models", nargs="+", metavar="MODEL", help=SOURCES)
    add_model_flags(a, many=True)
    add_trial(a, help="the trial of a study MODEL")
    add_storage(a, help="study database of a study MODEL")
    add_data(a, train=False, append_val=True, val_help="benchmark folder (HR + "
             "LR_bicubic/X<s>, or HR only); repeat for more columns (required)")
    add_device(a)
    add_input(a, "latency/memory/FLOPs input (default: the 1280x720-output input, 180x320 at "
              "x4)")
    add_runtime_flags(a)
    a.add("--no-latency", action="store_true",
          help="skip the latency timing (memory and FLOPs are still measured)")
    add_format(a)
    a.run(_run)
    return [a]


def check_input_size(text: str) -> tuple[int, int]:
    """``HxW`` within :data:`MAX_INPUT_PIXELS`, checked before any network is built."""
    from srnas.space.parsing import parse_hw

    h, w = parse_hw(text)
    if h * w > MAX_INPUT_PIXELS:
        raise ConfigError("input_hw", f"must be at most {MAX_INPUT_PIXELS:,} input pixels "
                          f"(one 2160x3840 frame; {text} is {h * w:,})", text)
    return h, w


def _run(args: argparse.Namespace) -> int:
    from srnas.evaluators.benchmark import benchmark
    from srnas.evaluators.benchmark_render import render
    from srnas.search.models import resolve_models
    if not args.val:
        raise ConfigError("val", "is required: a benchmark folder (HR + LR_bicubic/X<s>)")
    input_hw = check_input_size(args.input_hw) if args.input_hw else None
    device = resolve_auto(args.device)
    spec = runtime_spec(args, device)  # one line for a runtime/precision the device lacks
    models = resolve_models(args.models, args.weights or [], trial=args.trial,
                            storage=args.storage, scale=args.scale, untrained=args.untrained)
    table = benchmark(models, args.val, device, input_hw=input_hw,
                      latency=not args.no_latency, spec=spec)
    sys.stdout.write(render(table, args.format))
    return 0
