"""Reserved study names and the fidelity sibling (issue 23, items 3 and 9).

A name ending in ``:fidelity`` belongs to `srnas fidelity`: a search refuses it, a listing shows
a user's study of that name as a study of its own (and does not crash on it), and `srnas
fidelity` neither adopts it nor writes into it. A study whose sibling's name would pass
Optuna's 512 characters, and a storage that cannot be written, are one line before anything
is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from srnas.space.errors import ConfigError
from srnas.studies.schema import (
    MAX_STUDY_NAME,
    check_search_study_name,
    fidelity_study_name,
)
from tests.cli import assert_usage_error, run
from tests.fabricate import fake_trial, make_study
from tests.test_fidelity import KNOWN, _arch
from tests.tmpfs import remount_read_only, tmpfs


def _study(url: str, name: str = "s") -> optuna.Study:
    study = make_study(url, name)
    for i, (brief, latency, _) in enumerate(KNOWN):
        fake_trial(study, psnr=brief, latency_ms=latency, memory_mb=100.0, params=1000,
                   flops=10_000, arch=_arch(i))
    return study


def _impostor(url: str, name: str = "s:fidelity") -> optuna.Study:
    """A study of a reserved name made with Optuna directly: a user trial, no srnas attrs."""
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=1.0, params={"x": 0.5},
                                              distributions={"x": optuna.distributions
                                                             .FloatDistribution(0, 1)}))
    study.set_user_attr("owner", "me")
    return study


def _snapshot(url: str, name: str) -> tuple[dict, list]:
    study = optuna.load_study(study_name=name, storage=url)
    return dict(study.user_attrs), [(t.state, t.values, t.user_attrs) for t in study.trials]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'n.db'}"


@pytest.mark.parametrize("name", ["x:fidelity", ":fidelity", "a" * (MAX_STUDY_NAME - 8), " "])
def test_search_study_names_that_are_reserved_or_too_long_are_refused(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_search_study_name(name)
    assert str(info.value).startswith("study: must")


def test_search_study_name_limit_leaves_room_for_the_sibling() -> None:
    name = "a" * (MAX_STUDY_NAME - len(":fidelity"))
    check_search_study_name(name)
    assert len(fidelity_study_name(name)) == MAX_STUDY_NAME
    check_search_study_name("x:fidelity-run")  # only the suffix is reserved


def test_the_searcher_refuses_a_reserved_name_before_creating_the_study(url: str) -> None:
    from srnas.search.searcher import SrnasSearcher

    storage = optuna.storages.RDBStorage(url)
    with pytest.raises(ConfigError, match="must not end in ':fidelity'"):
        SrnasSearcher(space=lambda trial: None, metric="psnr", mode="max",
                      study_name="mine:fidelity", storage=storage)
    assert optuna.get_all_study_names(storage) == []


def test_studies_list_shows_a_users_reserved_name_plainly(
        url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _study(url)
    _impostor(url)
    code, out, err = run(capsys, "studies", "list", "--storage", url, "--format", "json")
    assert code == 0, err
    listed = {s["name"]: s for s in json.loads(out)}
    assert set(listed) == {"s", "s:fidelity"}
    assert listed["s"]["fidelity"] == {}  # the user's trial is not a retrain of s
    assert listed["s:fidelity"]["trials"]["complete"] == 1
    code, out, err = run(capsys, "studies", "list", "--storage", url)
    assert code == 0 and "s:fidelity" in out, err


@pytest.mark.parametrize("extra", [("--report-only",), ()])
def test_fidelity_does_not_adopt_a_users_study(url: str, extra: tuple[str, ...],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _study(url)
    _impostor(url)
    before = _snapshot(url, "s:fidelity")
    assert_usage_error(capsys, "fidelity", "s", "--storage", url, "--steps", "2000", *extra,
                       needles=("'s:fidelity' exists but was not made by `srnas fidelity`",))
    assert _snapshot(url, "s:fidelity") == before


def test_fidelity_adopts_an_empty_sibling_left_by_a_cut_creation(
        url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _study(url)
    optuna.create_study(study_name="s:fidelity", storage=url, direction="maximize")
    # Adopted: the refusal is that nothing was retrained yet, not that the study is foreign.
    assert_usage_error(capsys, "fidelity", "s", "--storage", url, "--steps", "2000",
                       "--report-only", needles=("has 0 trial(s) retrained for 2000 steps",))


def test_fidelity_of_a_study_whose_sibling_name_is_too_long(
        url: str, capsys: pytest.CaptureFixture[str]) -> None:
    name = "L" * (MAX_STUDY_NAME - 3)  # made by Optuna directly: a search would refuse it
    _study(url, name)
    before = optuna.get_all_study_names(url)
    line = assert_usage_error(capsys, "fidelity", name, "--storage", url, "--steps", "2000",
                              needles=("too long for a fidelity sibling", "512"))
    assert len(line) < 300
    assert optuna.get_all_study_names(url) == before


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs, remounted read-only by the test once its study is in place."""
    with tmpfs(tmp_path / "ro", "8m") as folder:
        yield folder


def test_fidelity_into_a_read_only_storage_is_one_line(
        read_only_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    made = read_only_folder.parent / "made.db"
    _study(f"sqlite:///{made}")  # made elsewhere: an open database file blocks the remount
    shutil.copy(made, read_only_folder / "study.db")
    remount_read_only(read_only_folder)
    url = f"sqlite:///{read_only_folder / 'study.db'}"
    before = optuna.get_all_study_names(url)
    assert_usage_error(capsys, "fidelity", "s", "--storage", url, "--steps", "2000",
                       needles=("--storage", "cannot be written"))
    assert optuna.get_all_study_names(url) == before
