"""``--runtime``, ``--precision`` and ``--target``: where and how latency and memory are measured,
one declaration and one validation for every command that measures (evaluate, search,
benchmark).

Declaring them imports nothing heavy (the names come from
:mod:`srnas.evaluators.runtime_names`); :func:`runtime_spec` checks them where the command runs,
before anything is written: an unknown name is refused by the flag's parser, a runtime that is
not installed, a device it does not run on and a precision it lacks there by
:func:`srnas.evaluators.runtime.check_runtime`, each in one line naming the flag. With
``--target`` the runtime is checked on the target node instead (it may have a runtime the
driver lacks): :func:`check_target_flags`, once Ray is up.
"""

from __future__ import annotations

import argparse
from typing import Any

from srnas.evaluators.runtime_names import (
    DEFAULT_PRECISION,
    DEFAULT_RUNTIME,
    PRECISIONS,
    RUNTIME_NAMES,
)
from srnas.search.commands.args import Args, one_of

RUNTIME_HELP = ("what runs the network for latency and memory: torch (eager, default), "
                "onnxruntime, openvino (pip install srnas[openvino]) or tensorrt (pip install "
                "srnas[tensorrt]); other than torch, the network exported as srnas export "
                "--onnx exports it, checked against PyTorch before it is timed")
PRECISION_HELP = ("fp32 (default), fp16 or bf16, where the runtime and device support it")
TARGET_HELP = ("measure latency and memory on the Ray node that advertises the resource "
               "srnas-target-NAME (ray start ... --resources '{\"srnas-target-NAME\": 1}'), "
               "one measurement at a time there; training stays where it is")


def _target(text: str) -> str:
    from srnas.search.target import target_name  # imports Ray: only when the flag is given

    return target_name(text)


_target.__name__ = "target_name"


def add_runtime_flags(args: Args, *, target: bool = False) -> None:
    """Declare ``--runtime`` and ``--precision`` (and ``--target NAME`` with ``target``)."""
    args.uses.add("runtime")
    args.add("--runtime", type=one_of(RUNTIME_NAMES), default=DEFAULT_RUNTIME,
             metavar="{" + ",".join(RUNTIME_NAMES) + "}", help=RUNTIME_HELP)
    args.add("--precision", type=one_of(PRECISIONS), default=DEFAULT_PRECISION,
             metavar="{" + ",".join(PRECISIONS) + "}", help=PRECISION_HELP)
    if target:
        args.uses.add("target")
        args.add("--target", metavar="NAME", type=_target, help=TARGET_HELP)


def runtime_spec(args: argparse.Namespace, device: Any = None, **options: Any) -> Any:
    """The :class:`~srnas.evaluators.runtime.RuntimeSpec` of the flags, checked against
    ``device`` (a name or torch.device; skipped with ``--target``: see
    :func:`check_target_flags`)."""
    from srnas.evaluators.runtime import RuntimeSpec, check_runtime

    runtime = getattr(args, "runtime", DEFAULT_RUNTIME)
    precision = getattr(args, "precision", DEFAULT_PRECISION)
    if device is not None and getattr(args, "target", None) is None:
        if isinstance(device, str):
            from srnas.evaluators.device import resolve_device

            device = resolve_device(device)  # "--device: CUDA was asked for but ..." first
        check_runtime(runtime, precision, device)
    return RuntimeSpec(runtime, precision, options=options)


def check_target_flags(args: argparse.Namespace, spec: Any, device: str = "auto"
                       ) -> dict[str, Any] | None:
    """With ``--target``: the target is advertised and runs the runtime at the precision (one
    line otherwise); returns where it is. Call it after Ray started, before any trial."""
    name = getattr(args, "target", None)
    if name is None:
        return None
    from srnas.search.target import check_target

    return check_target(name, spec, device)


__all__ = ["add_runtime_flags", "check_target_flags", "runtime_spec"]
