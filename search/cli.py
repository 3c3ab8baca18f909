"""The ``srnas`` command: one parser, one sub-command module per package.

Each package's ``cli`` module only declares arguments at import time (no torch, no Ray), so
``srnas --help`` and ``srnas studies list`` stay fast; handlers import what they need.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from srnas.space.errors import SrnasError
from srnas.space.version import srnas_version


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line (and exit 2), like every other srnas error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    import srnas.evaluators.cli
    import srnas.search.cli_deploy
    import srnas.search.cli_fidelity
    import srnas.search.cli_search
    import srnas.search.cli_train
    import srnas.space.cli
    import srnas.studies.cli

    parser = _Parser(
        prog="srnas",
        description="Hardware-aware search of lightweight super-resolution networks.",
    )
    parser.add_argument("--version", action="version", version=f"srnas {srnas_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    srnas.space.cli.register(sub)
    srnas.evaluators.cli.register(sub)
    srnas.search.cli_search.register(sub)
    srnas.search.cli_train.register(sub)
    srnas.studies.cli.register(sub)
    srnas.search.cli_deploy.register(sub)
    srnas.search.cli_fidelity.register(sub)
    return parser


def _flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """Library argument name -> what the user typed for it, along the chosen sub-commands:
    ``max_latency_ms`` -> ``--max-latency-ms``, a positional ``study`` -> ``STUDY``."""
    flags: dict[str, str] = {}
    current: argparse.ArgumentParser | None = parser
    while current is not None:
        chosen = None
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(args, action.dest, None) or "")
            elif action.option_strings:
                flags[action.dest] = max(action.option_strings, key=len)
            elif action.dest != argparse.SUPPRESS:
                flags[action.dest] = str(action.metavar or action.dest.upper())
        current = chosen
    return flags


def error_line(exc: SrnasError, flags: dict[str, str]) -> str:
    """The error's one line, naming the flag the user typed where the field is an argument."""
    return exc.renamed(flags[exc.field]) if exc.field in flags else str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (exit 2, one line) and --help (exit 0)
        return exc.code if isinstance(exc.code, int) else 0
    try:
        code = args.func(args)
    except SrnasError as exc:
        print(f"srnas {args.command}: error: {error_line(exc, _flags(parser, args))}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"srnas {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
