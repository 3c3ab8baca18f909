"""``srnas search`` refuses numbers that cannot be meant before anything is written (issue 23,
items 7 and 12): a NaN, infinite, zero or negative time budget or resource request is one line,
exit 2, and no study file appears."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import assert_usage_error


@pytest.mark.parametrize(("flag", "value"), [
    ("--time-budget", "nan"), ("--time-budget", "inf"), ("--time-budget", "-1"),
    ("--time-budget", "0"), ("--gpus-per-trial", "-1"), ("--gpus-per-trial", "nan"),
    ("--cpus-per-trial", "nan"), ("--cpus-per-trial", "inf"), ("--cpus-per-trial", "0"),
    ("--concurrency", "0"), ("--train-seconds", "nan"),
])
def test_a_number_that_cannot_be_meant_is_refused_and_nothing_is_created(
        tmp_path: Path, flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.db"
    line = assert_usage_error(capsys, "search", "--storage", f"sqlite:///{db}", "--trials", "1",
                              flag, value, needles=(f"srnas search: error: {flag}: ",))
    assert value in line
    assert list(tmp_path.iterdir()) == []

