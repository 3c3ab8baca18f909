"""One way to run an ``srnas`` command in-process and check its outcome.

Every usage error of every command has one shape: exit 2 and one line on stderr,
``srnas COMMAND: error: FLAG: rule (got value)``, no traceback. Tests call
:func:`assert_usage_error` instead of re-deriving that check.
"""

from __future__ import annotations

import pytest

from srnas.search.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``srnas ARGV`` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()  # what earlier calls printed is not this command's
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(err: str, *needles: str) -> str:
    """``err`` is exactly one line, with no traceback, containing every needle."""
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err.strip()


def assert_usage_error(capsys: pytest.CaptureFixture[str], *argv: str,
                       needles: tuple[str, ...] = ()) -> str:
    """``srnas ARGV`` exits 2 with one line naming every needle; returns that line."""
    code, _, err = run(capsys, *argv)
    assert code == 2, (code, err)
    return assert_one_line(err, *needles)


__all__ = ["assert_one_line", "assert_usage_error", "run"]
