"""The ``srnas`` command: one table of sub-commands, one module per command in
:mod:`srnas.search.commands`.

Declaring a command imports no torch, Ray or pandas (``srnas --help``, ``srnas studies list``,
``pareto`` and ``plot`` stay fast); a handler imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from srnas.search.commands.args import (
    PROG_ATTR,
    Args,
    Parser,
    UsageError,
    flag_of_path,
    flags_of,
)
from srnas.space.errors import SrnasError
from srnas.space.version import srnas_version

# Name -> the module that declares and runs it (``register(sub) -> list[Args]``), in --help
# order. A new command is a new module and one line here.
COMMANDS: dict[str, str] = {
    "arch": "srnas.search.commands.arch",
    "evaluate": "srnas.search.commands.evaluate",
    "data": "srnas.search.commands.data",
    "search": "srnas.search.commands.search",
    "train": "srnas.search.commands.train",
    "studies": "srnas.search.commands.studies",
    "pareto": "srnas.search.commands.pareto",
    "plot": "srnas.search.commands.plot",
    "export": "srnas.search.commands.export",
    "benchmark": "srnas.search.commands.benchmark",
    "fidelity": "srnas.search.commands.fidelity",
}


def build() -> tuple[argparse.ArgumentParser, list[Args]]:
    """The parser and every runnable command's :class:`Args` (``arch show``, ``pareto``...)."""
    parser = Parser(prog="srnas", description="Hardware-aware search of lightweight "
                    "super-resolution networks.")
    parser.add_argument("--version", action="version", version=f"srnas {srnas_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    leaves: list[Args] = []
    for name, module in COMMANDS.items():
        leaves += importlib.import_module(module).register(sub, name)
    return parser, leaves


def build_parser() -> argparse.ArgumentParser:
    return build()[0]


def error_line(exc: SrnasError, flags: dict[str, str], args: argparse.Namespace | None = None
               ) -> str:
    """The error's one line, naming the flag the user typed where the field is an argument,
    or is a path inside a folder the user gave (then: ``--train: DIR/x.png: rule``)."""
    if exc.field in flags:
        return exc.renamed(flags[exc.field])
    flag = None if args is None else flag_of_path(args, exc.field)
    if flag is not None:
        return SrnasError(flag, f"{exc.field}: {exc.rule}", exc.value).message()
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:  # a value a flag's type refused, already one line
        print(exc.line, file=sys.stderr)
        return 2
    except SystemExit as exc:  # argparse's usage errors (exit 2, one line) and --help (0)
        return exc.code if isinstance(exc.code, int) else 0
    label = getattr(args, PROG_ATTR, f"srnas {args.command}")
    try:
        code = args.func(args)
    except SrnasError as exc:
        print(f"{label}: error: {error_line(exc, flags_of(args), args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{label}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
