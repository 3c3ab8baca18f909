"""The argument helpers every ``srnas`` command declares its flags with.

One parsing style: a flag's value is checked by a ``type=`` callable that raises an
:class:`~srnas.space.errors.SrnasError`, and every usage mistake -- ours or argparse's own
(unknown flag, missing argument, unknown command) -- is one line of one shape::

    srnas COMMAND: error: FLAG: rule (got value)

naming the flag as the user typed it (a deprecated alias is named as typed). Handlers raise
errors with library field names (``input_hw``, ``batch_size``); :meth:`Args.add` records, as each
argument is declared, which flag sets which field, and the entry point shows the flag.

Nothing here imports torch, Ray or pandas: declaring every command must stay cheap
(``srnas --help``).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn, Protocol

from srnas.space.contract import BUDGET_KEYS, DEFAULT_STORAGE, STORAGE_ENV
from srnas.space.errors import ConfigError, DeviceError, SrnasError

# What every command that prints data offers, in this order.
FORMATS = ("table", "csv", "json", "markdown")
# ``--device`` of the commands that compute (evaluate, train, benchmark): one default, resolved
# where the command runs (torch loads only then).
DEFAULT_DEVICE = "auto"
DEVICE_HELP = ("auto (default: CUDA where torch sees a GPU, else the CPU), cpu, cuda or cuda:N")
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
# Namespace attributes the entry point reads (set as parser defaults, never flags).
FLAGS_ATTR = "cli_flags"
TYPED_ATTR = "cli_typed"
PROG_ATTR = "cli_prog"
LEAF_ATTR = "cli_leaf"


class UsageError(Exception):
    """A bad value on the command line, already rendered as its one line.

    Deliberately not a ``ValueError``: argparse would catch it and print its own message."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


def command_label(prog: str) -> str:
    """``srnas arch show`` -> ``srnas arch``: errors name the command, not the action."""
    return " ".join(prog.split()[:2])


# -- value parsers (library form: errors name a field; the CLI names the flag) ---------------------
def _number_shown(text: str, value: float) -> object:
    return value if math.isfinite(value) and float(value).is_integer() else text


def positive_int(text: str) -> int:
    return int_at_least(1, "must be a positive integer")(text)


def nonnegative_int(text: str) -> int:
    return int_at_least(0, "must be an integer >= 0")(text)


def int_at_least(low: int, rule: str | None = None) -> Callable[[str], int]:
    """An integer >= ``low`` (no fractions, NaN or infinity)."""
    rule = rule or f"must be an integer >= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ConfigError("value", rule, text) from None
        if value < low:
            raise ConfigError("value", rule, value)
        return value

    parse.__name__ = f"int_at_least_{low}"
    return parse


def positive_float(text: str) -> float:
    """A finite number above zero."""
    value = _float(text)
    if not math.isfinite(value) or value <= 0:
        raise ConfigError("value", "must be a positive number", _number_shown(text, value))
    return value


def nonnegative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _float(text)
    if not math.isfinite(value) or value < 0:
        raise ConfigError("value", "must be a finite number >= 0", _number_shown(text, value))
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError("value", "must be a number", text) from None


def seed(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ConfigError("value", "must be an integer between 0 and 2**32 - 1", text) from None
    if not 0 <= value < 2**32:
        raise ConfigError("value", "must be between 0 and 2**32 - 1", value)
    return value


def trial_number(text: str) -> int:
    """A trial number, 0 or more."""
    try:
        number = int(text)
    except ValueError:
        raise ConfigError("trial", "must be a trial number", text) from None
    if number < 0:
        raise ConfigError("trial", "must be a trial number, 0 or more", text)
    return number


def scale(text: str) -> int:
    from srnas.space.config import SCALES

    rule = f"must be {', '.join(map(str, SCALES[:-1]))} or {SCALES[-1]}"
    try:
        value = int(text)
    except ValueError:
        raise ConfigError("scale", rule, text) from None
    if value not in SCALES:
        raise ConfigError("scale", rule, value)
    return value


def one_of(names: Iterable[str]) -> Callable[[str], str]:
    allowed = tuple(names)

    def parse(text: str) -> str:
        if text not in allowed:
            raise ConfigError("value", f"must be one of {', '.join(allowed)}", text)
        return text

    parse.__name__ = "one_of"
    return parse


def input_size(text: str) -> str:
    """An ``HxW`` size, checked and kept as typed (library errors then show what was typed);
    :func:`srnas.space.parsing.parse_hw` turns it into a tuple."""
    from srnas.space.parsing import parse_hw

    parse_hw(text)
    return text


def device(text: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (whether it exists is checked where it runs)."""
    if not _DEVICE_RE.match(text.strip().lower()):
        raise DeviceError("device", "must be 'auto', 'cpu', 'cuda' or 'cuda:N'", text)
    return text.strip().lower()


def resolve_auto(name: str) -> str:
    """``auto`` -> ``cuda`` where torch sees a GPU, else ``cpu``; other names unchanged."""
    if name != DEFAULT_DEVICE:
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def storage_url(text: str) -> str:
    """A SQLAlchemy URL, checked for form (opening it is the command's job)."""
    from srnas.studies.storage import parse

    parse(text)
    return text


def folder(text: str) -> str:
    if not Path(text).is_dir():
        raise ConfigError("folder", "must be an existing folder", text)
    return text


# -- declaring arguments ------------------------------------------------------------------------
class Subcommands(Protocol):
    """What ``ArgumentParser.add_subparsers`` returns (its class is private to argparse)."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


class Parser(argparse.ArgumentParser):
    """argparse's own usage errors in the one shape (exit 2, one line)."""

    def error(self, message: str) -> NoReturn:
        label = command_label(self.prog)
        self.exit(2, f"{label}: error: {argparse_message(message, self.prog)}\n")

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        """As argparse's, but an unknown argument is named with the command it was given to
        (argparse reports it from the top-level parser)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            prog = getattr(parsed, LEAF_ATTR, self.prog)
            self.exit(2, f"{command_label(prog)}: error: {extras[0]}: is not an argument of "
                      f"{prog} (see {prog} --help)\n")
        return parsed


_PATTERNS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str], str], str]], ...] = (
    (re.compile(r"^argument (\S+): invalid choice: (.+?) \(choose from (.+)\)$"),
     lambda m, prog: f"{m[1]}: must be one of {m[3].replace(chr(39), '')} (got {m[2]})"),
    (re.compile(r"^the following arguments are required: (.+)$"),
     lambda m, prog: f"{m[1]}: {'are' if ', ' in m[1] else 'is'} required"),
    (re.compile(r"^unrecognized arguments: (\S+)"),
     lambda m, prog: f"{m[1]}: is not an argument of {prog} (see {prog} --help)"),
    (re.compile(r"^argument (\S+): expected one argument$"),
     lambda m, prog: f"{m[1]}: needs a value"),
    (re.compile(r"^ambiguous option: (\S+) could match (.+)$"),
     lambda m, prog: f"{m[1]}: is ambiguous: it could be {m[2]}"),
    (re.compile(r"^argument (\S+): (.+)$"), lambda m, prog: f"{m[1]}: {m[2]}"),
)


def argparse_message(message: str, prog: str) -> str:
    """argparse's error text as ``FLAG: rule (got value)``."""
    for pattern, render in _PATTERNS:
        match = pattern.match(message)
        if match:
            return render(match, prog)
    return message


class _Alias(argparse.Action):
    """A deprecated spelling: sets the same field, and remembers it was the one typed."""

    def __init__(self, *args: Any, const_value: Any = None, **kwargs: Any) -> None:
        self.const_value = const_value
        super().__init__(*args, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, self.const_value if self.nargs == 0 else values)
        typed = dict(getattr(namespace, TYPED_ATTR, None) or {})
        typed[self.dest] = option_string or self.dest
        setattr(namespace, TYPED_ATTR, typed)


class Args:
    """One command's arguments: declares them on its parser and records, for the entry point,
    which flag sets which library field and which shared helpers the command uses."""

    def __init__(self, parser: argparse.ArgumentParser, path: tuple[str, ...],
                 flags: dict[str, str] | None = None, uses: set[str] | None = None,
                 kinds: dict[str, str] | None = None) -> None:
        self.parser = parser
        self.path = path
        self.flags: dict[str, str] = {} if flags is None else flags
        self.uses: set[str] = set() if uses is None else uses
        # flag -> the name of its value parser (e.g. "--steps" -> "positive_int")
        self.kinds: dict[str, str] = {} if kinds is None else kinds
        self.groups: dict[str, list[str]] = {}
        self._target: Any = parser
        self._group: str | None = None

    def group(self, title: str) -> Args:
        """The same command, its next arguments listed under ``title`` in --help and recorded
        as the group's (:attr:`groups`)."""
        child = Args(self.parser, self.path, self.flags, self.uses, self.kinds)
        child.groups = self.groups
        child._target = self.parser.add_argument_group(title)
        child._group = title
        self.groups.setdefault(title, [])
        return child

    def add(self, name: str, *, type: Callable[[str], Any] | None = None,
            aliases: Sequence[str] = (), fields: Sequence[str] = (), **kwargs: Any) -> None:
        """Declare ``name`` (a flag or a positional); ``type`` raises an SrnasError for a bad
        value; ``aliases`` are old spellings that still work (hidden from --help); ``fields``
        are further library names this argument sets."""
        positional = not name.startswith("-")
        dest = name if positional else kwargs.pop("dest", name.lstrip("-").replace("-", "_"))
        shown = kwargs.get("metavar") or dest.upper() if positional else name
        if type is not None:
            kwargs["type"] = _typed(str(shown), type, self.path)
        if positional:
            kwargs.setdefault("metavar", shown)
            self._target.add_argument(name, **kwargs)
        else:
            self._target.add_argument(name, dest=dest, **kwargs)
        for field in (dest, *fields):
            self.flags[field] = str(shown)
        if type is not None:
            self.kinds[str(shown)] = getattr(type, "__name__", "value")
        if self._group is not None:
            self.groups[self._group].append(dest)
        for alias in aliases:  # value-taking flags only (a flag without a value: alias())
            self.alias(alias, dest, type=type)

    def alias(self, flag: str, dest: str, *, type: Callable[[str], Any] | None = None,
              nargs: int | None = None, const_value: Any = None) -> None:
        """``flag`` as a hidden, deprecated spelling that sets ``dest`` (to ``const_value``
        if ``nargs`` is 0)."""
        extra = {} if type is None or nargs == 0 else {"type": _typed(flag, type, self.path)}
        self.parser.add_argument(flag, dest=dest, action=_Alias, nargs=nargs,
                                 const_value=const_value, default=argparse.SUPPRESS,
                                 help=argparse.SUPPRESS, **extra)

    def run(self, handler: Callable[[argparse.Namespace], int]) -> None:
        self.parser.set_defaults(func=handler, **{FLAGS_ATTR: self.flags,
                                                  PROG_ATTR: command_label(self.parser.prog),
                                                  LEAF_ATTR: self.parser.prog})

    def subcommands(self, metavar: str, dest: str) -> Subcommands:
        return self.parser.add_subparsers(dest=dest, required=True, metavar=metavar,
                                          parser_class=Parser)


def _typed(flag: str, parse: Callable[[str], Any], path: tuple[str, ...]
           ) -> Callable[[str], Any]:
    label = " ".join(("srnas", *path[:1]))

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except SrnasError as exc:
            raise UsageError(f"{label}: error: {exc.renamed(flag)}") from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def command(sub: Subcommands, name: str, path: tuple[str, ...] = (), **kwargs: Any) -> Args:
    """A new sub-command ``name`` (under ``path``, e.g. ``("arch",)``) and its :class:`Args`."""
    return Args(sub.add_parser(name, **kwargs), (*path, name))


# -- the shared arguments -----------------------------------------------------------------------
def add_storage(args: Args, help: str | None = None) -> None:
    args.uses.add("storage")
    args.add("--storage", metavar="URL", type=storage_url, help=help or (
        f"study database, a SQLAlchemy URL (default ${STORAGE_ENV}, else {DEFAULT_STORAGE})"))


def add_storage_retry(args: Args) -> None:
    """``--storage-retry-s``: how long a driver waits out a database outage (studies.retry)."""
    args.uses.add("storage_retry_s")
    args.add("--storage-retry-s", dest="storage_retry_s", type=nonnegative_float,
             metavar="SECONDS", help="how long to wait for the study database when it goes "
             "away mid-run (a restart, a failover) before giving up (default 180; 0: do not "
             "wait)")


def add_scale(args: Args, help: str = "upscaling factor: 2, 3 or 4", **kwargs: Any) -> None:
    args.uses.add("scale")
    args.add("--scale", type=scale, help=help, **kwargs)


def add_device(args: Args) -> None:
    """The device a command computes on (not the trial filter of pareto/plot/export)."""
    args.uses.add("device")
    args.add("--device", type=device, default=DEFAULT_DEVICE, help=DEVICE_HELP)


def add_input(args: Args, help: str) -> None:
    args.uses.add("input")
    args.add("--input", dest="input_hw", metavar="HxW", type=input_size, help=help)


def add_format(args: Args, formats: Sequence[str] = FORMATS, *, json_alias: bool = False,
               help: str | None = None) -> None:
    """``--format``; ``json_alias`` keeps the old ``--json`` working (hidden)."""
    args.uses.add("format")
    args.add("--format", type=one_of(formats), default=formats[0],
             metavar="{" + ",".join(formats) + "}",
             help=help or f"output: {', '.join(formats)} (default {formats[0]})")
    if json_alias:
        args.alias("--json", "format", nargs=0, const_value="json")


def add_data(args: Args, *, train: bool = True, val_help: str | None = None,
             append_val: bool = False) -> None:
    """``--train DIR`` (HR images; repeatable: the folders' images together, sub-folders
    included) and ``--val DIR`` (a benchmark or HR-only folder)."""
    args.uses.add("data")
    if train:
        args.add("--train", metavar="DIR", type=folder, action="append",
                 help="folder of HR training images, any size, sub-folders included; "
                 "repeat for several (--train DIV2K_train_HR --train Flickr2K_HR), or a store "
                 "from srnas data prepare (default: scikit-image's bundled photographs)")
    args.add("--val", metavar="DIR", type=folder, action="append" if append_val else None,
             help=val_help or "benchmark folder (HR + LR_bicubic/X<s>) or HR-only folder "
             "(default: held-out bundled photographs)")


def add_trial_filters(args: Args) -> None:
    """Narrow a study's trials after the fact: budgets, the measured device, the input."""
    args.uses.add("filters")
    for key, dest in BUDGET_KEYS.items():
        args.add("--" + dest.replace("_", "-"), dest=dest, metavar="X", type=positive_float,
                 help=f"keep trials with {key} <= X (applied after the fact)")
    args.add("--device", metavar="D", help="keep trials measured on D (exact name, else a part "
             "of it: 'H100')")
    add_input(args, "keep trials whose latency/memory/FLOPs input was HxW (e.g. 180x320)")


def budgets(namespace: argparse.Namespace) -> dict[str, float]:
    """The budget flags given, by measure (``{"latency_ms": 15.0}``)."""
    return {key: getattr(namespace, dest) for key, dest in BUDGET_KEYS.items()
            if getattr(namespace, dest, None) is not None}


def add_trial(args: Args, help: str = "the trial number", **kwargs: Any) -> None:
    args.uses.add("trial")
    args.add("--trial", metavar="N", type=trial_number, help=help, **kwargs)


def flags_of(namespace: argparse.Namespace) -> dict[str, str]:
    """Library field -> the flag the user typed for it, for the chosen command."""
    return {**(getattr(namespace, FLAGS_ATTR, None) or {}),
            **(getattr(namespace, TYPED_ATTR, None) or {})}


def flag_of_path(namespace: argparse.Namespace, path: str) -> str | None:
    """The flag (or positional) whose path value holds ``path``: library code that reads a
    folder names the folder or a file in it (``DIR: rule``, ``DIR/x.png: rule`` or
    ``DIR: x.png: rule``), which the user gave as ``--train`` or ``--val``."""
    for dest, flag in flags_of(namespace).items():
        value = getattr(namespace, dest, None)
        for given in value if isinstance(value, (list, tuple)) else (value,):
            if not isinstance(given, (str, Path)) or not str(given):
                continue
            forms = {str(given).rstrip("/") or "/", str(Path(given).resolve())}
            if any(path == f or path.startswith((f.rstrip("/") + "/", f + ": "))
                   for f in forms):
                return flag
    return None




def argparse_type(parse: Callable[[str], Any], flag: str) -> Callable[[str], Any]:
    """``parse`` for a plain argparse parser (the benchmark scripts'): its SrnasError becomes
    argparse's own error, naming ``flag``."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except SrnasError as exc:
            raise argparse.ArgumentTypeError(exc.message(flag).removeprefix(f"{flag}: ")
                                             ) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def positive_int_arg(flag: str) -> Callable[[str], int]:
    """:func:`positive_int` for a plain argparse parser, naming ``flag``."""
    return argparse_type(positive_int, flag)


__all__ = [
    "DEFAULT_DEVICE",
    "FORMATS",
    "Args",
    "Parser",
    "UsageError",
    "add_data",
    "add_device",
    "add_format",
    "add_input",
    "add_scale",
    "add_storage",
    "add_trial",
    "add_trial_filters",
    "argparse_message",
    "argparse_type",
    "budgets",
    "command",
    "flag_of_path",
    "flags_of",
    "folder",
    "int_at_least",
    "nonnegative_float",
    "nonnegative_int",
    "one_of",
    "positive_float",
    "positive_int",
    "positive_int_arg",
    "resolve_auto",
    "scale",
    "seed",
    "storage_url",
    "trial_number",
]
