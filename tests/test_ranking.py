"""MO-ASHA's pure part against hand-computed cases, and the scheduler's decisions without Ray
running."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from srnas.search.ranking import default_min_steps, promote, rank, rung_ladder
from srnas.space.errors import ConfigError

PSNR_LATENCY = [True, False]  # maximise PSNR, minimise latency


@pytest.mark.parametrize(("min_steps", "steps", "eta", "ladder"), [
    (25, 200, 3, (25, 75, 200)),
    (23, 200, 3, (23, 69, 200)),
    (1, 9, 3, (1, 3, 9)),
    (10, 11, 2, (10, 11)),
    (5, 100, 4, (5, 20, 80, 100)),
])
def test_rung_ladder(min_steps: int, steps: int, eta: int, ladder: tuple[int, ...]) -> None:
    assert rung_ladder(min_steps, steps, eta) == ladder


def test_default_min_steps_gives_three_rungs() -> None:
    assert default_min_steps(200, 3) == 23 and rung_ladder(23, 200, 3) == (23, 69, 200)
    assert default_min_steps(2, 3) == 1


@pytest.mark.parametrize(("min_steps", "steps", "eta", "field"), [
    (10, 100, 1, "eta"), (10, 100, 0, "eta"), (0, 100, 3, "min_steps"),
    (100, 100, 3, "min_steps"), (150, 100, 3, "min_steps"),
])
def test_rung_ladder_rejects(min_steps: int, steps: int, eta: int, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field}: "):
        rung_ladder(min_steps, steps, eta)


def test_single_objective_keeps_the_top_third() -> None:
    at_rung = {"a": [30.0], "b": [31.0], "c": [29.0]}
    assert rank(at_rung, [True]) == ["b", "a", "c"]
    assert [promote(k, at_rung, [True], 3) for k in "abc"] == [False, True, False]


def test_a_trial_alone_at_its_rung_continues() -> None:
    assert promote("a", {"a": [1.0, 2.0]}, PSNR_LATENCY, 3)


def test_fronts_then_hypervolume_contribution_then_arrival() -> None:
    # d (29.5 dB, 12 ms) is dominated by a (30 dB, 10 ms); a, b, c form the first front.
    # Reference: -29 + 0.1*2 = -28.8 (PSNR as a loss), 20 + 0.1*15 = 21.5 ms. Exclusive
    # boxes: b 1 x 1.5 = 1.5, a 1 x 10 = 10, c 0.2 x 5 = 1.
    at_rung = {"a": [30.0, 10.0], "b": [31.0, 20.0], "c": [29.0, 5.0], "d": [29.5, 12.0]}
    assert rank(at_rung, PSNR_LATENCY) == ["a", "b", "c", "d"]
    # n = 4, eta = 3: the best ceil(4/3) = 2 continue.
    assert [promote(k, at_rung, PSNR_LATENCY, 3) for k in "abcd"] == [True, True, False, False]


def test_hypervolume_contribution_orders_the_inside_of_one_front() -> None:
    # All four non-dominated. Reference (-27.7, 10.9); exclusive boxes: d 1.5 x 0.9 = 1.35,
    # c 0.5 x 7 = 3.5, b 1 x 1 = 1, a 0.3 x 1 = 0.3.
    at_rung = {"a": [28.0, 1.0], "b": [29.0, 2.0], "c": [29.5, 3.0], "d": [31.0, 10.0]}
    assert rank(at_rung, PSNR_LATENCY) == ["c", "d", "b", "a"]


def test_a_front_of_two_is_ordered_by_what_each_adds() -> None:
    # Reference (-23.8, 9.4): a's box 1.2 x 4 = 4.8 beats c's 1 x 0.4, whatever came first.
    assert rank({"c": [26.0, 9.0], "a": [25.0, 5.0], "b": [24.0, 6.0]},
                PSNR_LATENCY) == ["a", "c", "b"]


def test_ties_go_to_the_trial_that_arrived_first() -> None:
    at_rung = {"first": [1.0, 1.0], "second": [1.0, 1.0]}
    assert rank(at_rung, PSNR_LATENCY) == ["first", "second"]
    assert promote("first", at_rung, PSNR_LATENCY, 2)
    assert not promote("second", at_rung, PSNR_LATENCY, 2)


def test_directions_mix() -> None:
    assert rank({"a": [5.0], "b": [3.0]}, [False]) == ["b", "a"]
    assert rank({"a": [5.0], "b": [3.0]}, [True]) == ["a", "b"]
    # Maximise the first, minimise the second: (2, 1) dominates (1, 2).
    assert rank({"x": [1.0, 2.0], "y": [2.0, 1.0]}, PSNR_LATENCY) == ["y", "x"]


def test_nan_counts_as_the_worst() -> None:
    assert rank({"a": [math.nan], "b": [1.0]}, [True]) == ["b", "a"]


def test_promote_needs_the_candidate_among_the_vectors() -> None:
    with pytest.raises(KeyError):
        promote("z", {"a": [1.0]}, [True], 3)


def test_scheduler_decides_per_rung_asynchronously() -> None:
    from ray.tune.schedulers import TrialScheduler

    from srnas.search.scheduler import MOASHAScheduler

    s = MOASHAScheduler(["psnr", "latency_ms"], ["max", "min"], (10, 30, 90), eta=3)

    def report(tid: str, step: int, psnr: float, latency: float, status: str = "rung") -> str:
        return s.on_trial_result(None, SimpleNamespace(trial_id=tid),
                                 {"status": status, "step": step, "psnr": psnr,
                                  "latency_ms": latency})

    assert report("a", 10, 25.0, 5.0) == TrialScheduler.CONTINUE  # alone at its rung
    assert report("b", 10, 24.0, 6.0) == TrialScheduler.STOP  # dominated by a; keep 1 of 2
    # c (26 dB, 9 ms) and a share the first front; a adds more hypervolume (see above) and
    # only ceil(3/3) = 1 continues.
    assert report("c", 10, 26.0, 9.0) == TrialScheduler.STOP
    assert report("a", 30, 27.0, 5.0) == TrialScheduler.CONTINUE  # alone at rung 30
    # Mid-training reports that are not rung reports, and the last rung, are never decided on.
    assert report("b", 15, 1.0, 99.0, status="training") == TrialScheduler.CONTINUE
    assert report("a", 90, 1.0, 99.0) == TrialScheduler.CONTINUE
    assert [d[2] for d in s.decisions] == [True, False, False, True]
