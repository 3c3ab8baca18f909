"""Every usage error of every ``srnas`` command has one shape::

    srnas COMMAND: error: FLAG: rule (got value)

exit 2, one line, nothing written. The commands come from the command table and each command's
record of the shared helpers it declared its flags with (``Args.uses``, ``Args.kinds``), so a new
command or flag is covered without editing this file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from srnas.search.cli import COMMANDS, build
from tests.cli import assert_usage_error, run

_, LEAVES = build()
BY_PATH = {leaf.path: leaf for leaf in LEAVES}
REPO = Path(__file__).resolve().parents[1]


def using(helper: str) -> list[tuple[str, ...]]:
    return sorted(leaf.path for leaf in LEAVES if helper in leaf.uses)


def flags_of_kind(kind: str) -> list[tuple[tuple[str, ...], str]]:
    return sorted((leaf.path, flag) for leaf in LEAVES for flag, k in leaf.kinds.items()
                  if k == kind and flag.startswith("--"))


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SRNAS_STORAGE", raising=False)
    return tmp_path


def _refused(capsys: pytest.CaptureFixture[str], tmp_path: Path, path: tuple[str, ...],
             flag: str, value: str) -> str:
    line = assert_usage_error(capsys, *path, f"{flag}={value}")
    assert line.startswith(f"srnas {path[0]}: error: {flag}: "), line
    assert list(tmp_path.iterdir()) == []  # no srnas.db, no run folder, no output file
    return line


def test_the_table_and_the_helpers_cover_every_command() -> None:
    assert {leaf.path[0] for leaf in LEAVES} == set(COMMANDS)
    # Floors: the commands known to take each shared flag (more may join, none may leave).
    assert {("search",), ("evaluate",), ("train",), ("benchmark",), ("export",),
            ("arch", "show")} <= set(using("scale"))
    assert {("evaluate",), ("train",), ("benchmark",)} <= set(using("device"))
    assert {("search",), ("train",), ("studies", "list"), ("pareto",), ("plot",), ("export",),
            ("benchmark",), ("fidelity",)} <= set(using("storage"))
    assert {("search",), ("evaluate",), ("benchmark",), ("arch", "show"), ("pareto",),
            ("plot",), ("export",)} <= set(using("input"))
    assert {("evaluate",), ("arch", "show"), ("studies", "list"), ("pareto",), ("benchmark",),
            ("fidelity",)} <= set(using("format"))
    assert (("evaluate",), "--batch-size") in flags_of_kind("positive_int")
    assert (("train",), "--steps") in flags_of_kind("positive_int")


@pytest.mark.parametrize("path", using("scale"), ids=" ".join)
@pytest.mark.parametrize(("value", "shown"), [("5", "5"), ("1", "1"), ("x", "'x'"),
                                              ("nan", "'nan'")])
def test_scale(capsys, _empty_cwd, path, value, shown) -> None:
    line = _refused(capsys, _empty_cwd, path, "--scale", value)
    assert line == f"srnas {path[0]}: error: --scale: must be 2, 3 or 4 (got {shown})"


@pytest.mark.parametrize("path", using("device"), ids=" ".join)
@pytest.mark.parametrize("value", ["tpu", "cpu:1", "cuda:x", ""])
def test_device(capsys, _empty_cwd, path, value) -> None:
    line = _refused(capsys, _empty_cwd, path, "--device", value)
    assert line.endswith(f": must be 'auto', 'cpu', 'cuda' or 'cuda:N' (got {value!r})")


@pytest.mark.parametrize("path", using("storage"), ids=" ".join)
@pytest.mark.parametrize(("value", "rule"), [
    ("srnas.db", "must be a SQLAlchemy URL such as sqlite:///srnas.db (got 'srnas.db')"),
    ("postgresql://u:s3cret@h:notaport/db", "is not a valid SQLAlchemy URL"),
])
def test_storage(capsys, _empty_cwd, path, value, rule) -> None:
    line = _refused(capsys, _empty_cwd, path, "--storage", value)
    assert rule in line and "s3cret" not in line


@pytest.mark.parametrize("path", using("storage_retry_s"), ids=" ".join)
@pytest.mark.parametrize("value", ["nan", "-1", "inf", "x"])
def test_storage_retry(capsys, _empty_cwd, path, value) -> None:
    line = _refused(capsys, _empty_cwd, path, "--storage-retry-s", value)
    assert line.startswith(f"srnas {path[0]}: error: --storage-retry-s: must be ")
    assert "(got " in line


def test_the_drivers_take_the_storage_retry() -> None:
    assert {("search",), ("fidelity",)} <= set(using("storage_retry_s"))


@pytest.mark.parametrize("path", using("input"), ids=" ".join)
@pytest.mark.parametrize("value", ["16", "0x16", "axb", "16x-2", ""])
def test_input(capsys, _empty_cwd, path, value) -> None:
    line = _refused(capsys, _empty_cwd, path, "--input", value)
    assert line.endswith(f"--input: must be HxW with positive integers, e.g. 180x320 "
                         f"(got {value!r})")


@pytest.mark.parametrize("path", using("format"), ids=" ".join)
def test_format(capsys, _empty_cwd, path) -> None:
    line = _refused(capsys, _empty_cwd, path, "--format", "xml")
    assert line.endswith("--format: must be one of table, csv, json, markdown (got 'xml')")


@pytest.mark.parametrize("path", using("trial"), ids=" ".join)
@pytest.mark.parametrize(("value", "rule"), [("x", "must be a trial number (got 'x')"),
                                             ("-1", "must be a trial number, 0 or more")])
def test_trial(capsys, _empty_cwd, path, value, rule) -> None:
    assert rule in _refused(capsys, _empty_cwd, path, "--trial", value)


@pytest.mark.parametrize(("path", "flag"), flags_of_kind("positive_int"),
                         ids=lambda x: " ".join(x) if isinstance(x, tuple) else x)
@pytest.mark.parametrize(("value", "shown"), [("x", "'x'"), ("nan", "'nan'"), ("inf", "'inf'"),
                                              ("-1", "-1"), ("0", "0"), ("1.5", "'1.5'")])
def test_positive_integers(capsys, _empty_cwd, path, flag, value, shown) -> None:
    line = _refused(capsys, _empty_cwd, path, flag, value)
    assert line.endswith(f"{flag}: must be a positive integer (got {shown})")


@pytest.mark.parametrize(("path", "flag"), flags_of_kind("positive_float"),
                         ids=lambda x: " ".join(x) if isinstance(x, tuple) else x)
@pytest.mark.parametrize(("value", "rule"), [
    ("x", "must be a number (got 'x')"), ("nan", "must be a positive number (got 'nan')"),
    ("inf", "must be a positive number (got 'inf')"),
    ("-1", "must be a positive number (got -1.0)"), ("0", "must be a positive number (got 0.0)"),
])
def test_positive_numbers(capsys, _empty_cwd, path, flag, value, rule) -> None:
    assert _refused(capsys, _empty_cwd, path, flag, value).endswith(f"{flag}: {rule}")


@pytest.mark.parametrize("path", sorted(BY_PATH), ids=" ".join)
def test_an_unknown_flag_names_the_command(capsys, _empty_cwd, path) -> None:
    # A placeholder for a required positional, and train's required --out: argparse reports
    # missing arguments before unknown ones.
    line = assert_usage_error(capsys, *path, "--no-such-flag", "x",
                              *(["--out", "run"] if path == ("train",) else []))
    assert list(_empty_cwd.iterdir()) == []
    prog = " ".join(("srnas", *path))
    assert line == (f"srnas {path[0]}: error: --no-such-flag: is not an argument of {prog} "
                    f"(see {prog} --help)")


def test_argparse_own_errors_in_the_one_shape(capsys) -> None:
    line = assert_usage_error(capsys, "frobnicate")
    assert re.fullmatch(r"srnas: error: COMMAND: must be one of arch, .*, fidelity "
                        r"\(got 'frobnicate'\)", line), line
    assert assert_usage_error(capsys) == "srnas: error: COMMAND: is required"
    assert assert_usage_error(capsys, "arch") == "srnas arch: error: ACTION: is required"
    assert assert_usage_error(capsys, "evaluate", "tiny", "--steps") == \
        "srnas evaluate: error: --steps: needs a value"


# Every command but ``search`` (which, given nothing, searches), with nothing else given.
@pytest.mark.parametrize("path", sorted(p for p in BY_PATH if p != ("search",)), ids=" ".join)
def test_a_missing_argument_is_named_without_a_none(capsys, _empty_cwd, path) -> None:
    line = assert_usage_error(capsys, *path)
    assert "(got None)" not in line and "None" not in line, line
    assert line.endswith("is required") or "required" in line or "give a study" in line \
        or "points to no SQLite file" in line, line
    assert list(_empty_cwd.iterdir()) == []


@pytest.mark.parametrize(("argv", "line"), [
    (["evaluate"], "srnas evaluate: error: SPEC: is required unless --bicubic is given"),
    (["evaluate", "--bicubic"],
     "srnas evaluate: error: --val: is required with --bicubic (a benchmark folder)"),
    (["plot"], "srnas plot: error: STUDY: is required"),
    (["arch", "show"], "srnas arch: error: SPEC: is required"),
    (["benchmark"], "srnas benchmark: error: MODEL: is required"),
    (["train"], "srnas train: error: --out: is required"),
])
def test_missing_arguments_exactly(capsys, argv, line) -> None:
    assert assert_usage_error(capsys, *argv) == line


@pytest.mark.parametrize(("argv", "line"), [
    (["evaluate", "tiny", "--batch", "x"],
     "srnas evaluate: error: --batch: must be a positive integer (got 'x')"),
    (["evaluate", "tiny", "--patch", "0"],
     "srnas evaluate: error: --patch: must be a positive integer (got 0)"),
    (["evaluate", "tiny", "--seconds", "-2"],
     "srnas evaluate: error: --seconds: must be a positive number (got -2.0)"),
    (["evaluate", "tiny", "--patch", "30", "--scale", "4"],  # a handler's error, as typed
     "srnas evaluate: error: --patch: must be a multiple of the scale 4 (got 30)"),
])
def test_old_spellings_still_work_and_are_named_as_typed(capsys, argv, line) -> None:
    assert assert_usage_error(capsys, *argv) == line


def test_old_spellings_are_hidden_from_help(capsys) -> None:
    code, out, _ = run(capsys, "evaluate", "--help")
    assert code == 0 and "--batch-size" in out and "--train-seconds" in out
    assert "--format" in out and "auto (default" in out
    assert not re.search(r"--batch\b(?!-)|--seconds\b|--json\b|--patch\b(?!-)", out), out


def test_no_private_argparse_names() -> None:
    """The flag of a field is recorded when it is declared, not read back from argparse."""
    for path in [REPO / "search" / "cli.py", *sorted((REPO / "search" / "commands").glob("*.py"))]:
        text = path.read_text()
        assert not re.search(r"\._actions|_SubParsersAction|argparse\._", text), path.name


# What else each command needs before it reads its data folders.
_DATA_COMMANDS = {
    ("evaluate",): (["tiny"], ("--train", "--val")),
    ("search",): (["--trials", "1"], ("--train", "--val")),
    ("train",): (["tiny", "--out", "run", "--steps", "1"], ("--train", "--val")),
    ("benchmark",): (["tiny", "--untrained", "--no-latency"], ("--val",)),
    ("data", "prepare"): ([], ("DIR",)),
}


def test_the_data_folder_table_covers_every_command_that_reads_one() -> None:
    readers = {leaf.path for leaf in LEAVES
               if {"--train", "--val", "DIR"} & set(leaf.flags.values())}
    assert readers == set(_DATA_COMMANDS)


@pytest.mark.parametrize("path", sorted(_DATA_COMMANDS), ids=" ".join)
def test_a_data_folder_without_images_is_named_by_its_flag(capsys, _empty_cwd, path) -> None:
    # The library names the folder; the user typed a flag (or DIR), which the line must lead
    # with, the folder beside it.
    (_empty_cwd / "empty").mkdir()
    rest, flags = _DATA_COMMANDS[path]
    for flag in flags:
        given = ["empty"] if flag == "DIR" else [flag, "empty"]
        line = assert_usage_error(capsys, *path, *given, *rest)
        assert line.startswith(f"srnas {path[0]}: error: {flag}: "), line
        assert "empty" in line and "holds no images" in line, line
        assert sorted(p.name for p in _empty_cwd.iterdir()) == ["empty"]  # nothing written
