"""The ``srnas`` command: one parser, one sub-command module per package.

Each package's ``cli`` module only declares arguments at import time (no torch, no Ray), so
``srnas --help`` and ``srnas studies list`` stay fast; handlers import what they need.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from space.errors import SrnasError


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line (and exit 2), like every other srnas error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    import evaluators.cli
    import search.cli_search
    import space.cli
    import studies.cli

    parser = _Parser(
        prog="srnas",
        description="Hardware-aware search of lightweight super-resolution networks.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    space.cli.register(sub)
    evaluators.cli.register(sub)
    search.cli_search.register(sub)
    studies.cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (exit 2, one line) and --help (exit 0)
        return exc.code if isinstance(exc.code, int) else 0
    try:
        code = args.func(args)
    except SrnasError as exc:
        print(f"srnas {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"srnas {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
