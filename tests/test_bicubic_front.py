"""Fronts judged against the study's bicubic baseline, and the fixed hypervolume reference
point: the study attrs the search writes (``search/references.py``), read by ``srnas pareto``,
``srnas plot`` and :func:`srnas.studies.front.pareto_front`. No Ray, no torch training."""

from __future__ import annotations

import itertools
import json

import optuna
import pytest

from srnas.search import references
from srnas.space.contract import ATTR_BICUBIC
from srnas.studies.frame import study_objectives
from srnas.studies.front import hypervolume, pareto_front
from tests.cli import assert_usage_error, run
from tests.fabricate import KNOWN_BUDGETS, fake_trial, make_known_study

optuna.logging.set_verbosity(optuna.logging.WARNING)

BICUBIC = {"psnr": 29.2, "ssim": 0.8, "images": 3, "scale": 4, "latency_ms": 0.5,
           "memory_mb": 0.2, "device": "cpu: test", "input_hw": [180, 320],
           "method": references.BICUBIC_METHOD}


def brute_hypervolume(points: list[tuple[float, float, float]],
                      ref: tuple[float, float, float]) -> float:
    """(psnr up, latency down, memory down) hypervolume on the grid of the coordinates: each
    cell counts when some point dominates its best corner. Independent of studies.pareto."""
    inside = [p for p in points if p[0] > ref[0] and p[1] < ref[1] and p[2] < ref[2]]
    xs = sorted({ref[0], *(p[0] for p in inside)})
    ys = sorted({ref[1], *(p[1] for p in inside)})
    zs = sorted({ref[2], *(p[2] for p in inside)})
    volume = 0.0
    pairs = (itertools.pairwise(xs), itertools.pairwise(ys), itertools.pairwise(zs))
    for (x0, x1), (y0, y1), (z0, z1) in itertools.product(*pairs):
        if any(p[0] >= x1 and p[1] <= y0 and p[2] <= z0 for p in inside):
            volume += (x1 - x0) * (y1 - y0) * (z1 - z0)
    return volume


def with_references(study: optuna.Study) -> optuna.Study:
    """What a launch writes: bicubic, the reference at creation, completed after the trials."""
    study.set_user_attr(ATTR_BICUBIC, BICUBIC)
    objectives = study_objectives(study)
    references.record_initial_reference(study, objectives, BICUBIC, dict(KNOWN_BUDGETS))
    references.complete_reference(study, objectives)
    return study


@pytest.fixture()
def db(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'srnas.db'}"
    with_references(make_known_study(url, "known"))
    make_known_study(url, "old")  # a study from before bicubic and the reference were recorded
    return url


def test_no_trial_below_bicubic_on_the_front(db) -> None:
    study = optuna.load_study(study_name="known", storage=db)
    front = pareto_front(study)
    # Feasible trials (latency <= 50): 0 (30 dB), 1 (31), 2 (29), 3 (29.5, dominated by 0),
    # 4 (28), 8 (32). Bicubic is 29.2 dB: 2 and 4 are not above it.
    assert sorted(front["number"]) == [0, 1, 8]
    assert (front["psnr"] > BICUBIC["psnr"]).all()
    assert front.attrs["below_bicubic"] == ["#2", "#4"]
    old = pareto_front(optuna.load_study(study_name="old", storage=db))
    assert sorted(old["number"]) == [0, 1, 2, 4, 8] and old.attrs["bicubic"] is None


def test_reference_point_fixed_with_the_study(db) -> None:
    study = optuna.load_study(study_name="known", storage=db)
    front = pareto_front(study)
    # psnr: bicubic's; latency: the launch budget; memory: the worst feasible (300) + 10 % of
    # the range 80..300, fixed when the first trials completed.
    assert front.attrs["reference_point"] == pytest.approx(
        {"psnr": 29.2, "latency_ms": 50.0, "memory_mb": 322.0})
    assert front.attrs["reference_rules"] == {"psnr": "bicubic", "latency_ms": "budget",
                                              "memory_mb": references.refs.RULE_FIRST_LAUNCH}
    before = hypervolume(front)
    points = [(30.0, 10.0, 100.0), (31.0, 20.0, 150.0), (32.0, 40.0, 300.0)]
    assert before == pytest.approx(brute_hypervolume(points, (29.2, 50.0, 322.0)))
    # A dominated trial far out in memory, and one below bicubic: the figure does not move.
    fake_trial(study, psnr=29.6, latency_ms=45.0, memory_mb=900.0)
    fake_trial(study, psnr=25.0, latency_ms=1.0, memory_mb=1.0)
    references.complete_reference(study, study_objectives(study))  # a later launch's end
    after_front = pareto_front(study)
    assert hypervolume(after_front) == pytest.approx(before)
    assert after_front.attrs["below_bicubic"] == ["#2", "#4", "#11"]
    # The moving rule (an older study) does move: the same trial pushes its memory bound out.
    old = optuna.load_study(study_name="old", storage=db)
    old_before = hypervolume(pareto_front(old))
    fake_trial(old, psnr=29.6, latency_ms=45.0, memory_mb=900.0)
    assert hypervolume(pareto_front(old)) != pytest.approx(old_before)


def test_pareto_header_and_json_say_bicubic_and_rule(capsys, db) -> None:
    code, out, _ = run(capsys, "pareto", "known", "--storage", db)
    assert code == 0
    lines = out.splitlines()
    assert lines[3].startswith("bicubic: 29.200 dB PSNR, 0.8000 SSIM on 3 validation images "
                               "at x4; as an upsampling on cpu: test at 180x320: 0.5 ms")
    assert "2 feasible trials not above it left off the front (below bicubic): #2, #4" \
        in lines[3]
    assert "fixed with the study" in lines[4] and "psnr: bicubic" in lines[4]
    code, out, _ = run(capsys, "pareto", "known", "--storage", db, "--format", "json")
    document = json.loads(out)
    assert document["bicubic"]["psnr"] == 29.2 and document["below_bicubic"] == ["#2", "#4"]
    assert document["reference_rules"]["latency_ms"] == "budget"
    code, out, _ = run(capsys, "pareto", "old", "--storage", db)
    assert "records no fixed reference point" in out.splitlines()[4]


def test_pareto_history(capsys, db) -> None:
    code, out, _ = run(capsys, "pareto", "known", "--storage", db, "--history", "4",
                       "--format", "json")
    assert code == 0
    document = json.loads(out)
    points = document["history"]["points"]
    # 10 trials, every 4: after 4, 8 and the last (10).
    assert [p["trials"] for p in points] == [4, 8, 10]
    # After 4 trials: 0, 1, 2, 3 done; above bicubic and not dominated: 0 and 1.
    ref = (29.2, 50.0, 322.0)
    assert points[0]["front"] == 2
    assert points[0]["hypervolume"] == pytest.approx(
        brute_hypervolume([(30.0, 10.0, 100.0), (31.0, 20.0, 150.0)], ref))
    assert points[-1]["hypervolume"] == pytest.approx(document["hypervolume"])
    assert all(a["hypervolume"] <= b["hypervolume"] for a, b in itertools.pairwise(points))
    code, out, _ = run(capsys, "pareto", "known", "--storage", db, "--history", "4",
                       "--format", "csv")
    assert out.splitlines()[0] == "trials,front,hypervolume" and len(out.splitlines()) == 4
    code, out, _ = run(capsys, "pareto", "known", "--storage", db, "--history", "5")
    assert "hypervolume after every 5 trials" in out


@pytest.mark.parametrize("value", ["0", "-2", "x"])
def test_history_must_be_a_positive_integer(capsys, db, value) -> None:
    assert_usage_error(capsys, "pareto", "known", "--storage", db, "--history", value,
                       needles=("--history", "must be a positive integer"))


def test_plot_marks_bicubic_and_below(tmp_path, db) -> None:
    out = tmp_path / "front.html"
    from srnas.studies.plot import plot_front

    plot_front(optuna.load_study(study_name="known", storage=db), out)
    html = out.read_text()
    assert "below bicubic (never on the front)" in html and "bicubic (29.20 dB)" in html
    png = plot_front(optuna.load_study(study_name="known", storage=db), tmp_path / "f.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
