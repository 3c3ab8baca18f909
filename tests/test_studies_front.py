"""studies.front and studies.pareto's hypervolume on fabricated studies, exact expectations."""

from __future__ import annotations

import math
import warnings

import optuna
import pytest

from srnas.space.contract import MEASURE_COLUMNS
from srnas.space.errors import ConfigError, SrnasError, StudyError
from srnas.studies.front import (
    default_reference_point,
    hypervolume,
    merge_studies,
    pareto_front,
    pick,
    trials_frame,
)
from srnas.studies.pareto import hypervolume as hypervolume_min
from tests.fabricate import fake_trial, make_known_study, make_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


def numbers(front) -> list[int]:
    return sorted(int(n) for n in front["number"])


@pytest.fixture(scope="module")
def storage() -> optuna.storages.InMemoryStorage:
    return optuna.storages.InMemoryStorage()


@pytest.fixture(scope="module")
def known(storage) -> optuna.Study:
    return make_known_study(storage, "known")


@pytest.fixture(scope="module")
def two(storage) -> optuna.Study:
    """psnr (max) vs latency (min): front (29, 5), (30, 10), (31, 20); (28, 30) dominated."""
    study = make_study(storage, "two", objectives=("psnr", "latency_ms"))
    for psnr, latency in [(30, 10), (31, 20), (29, 5), (28, 30)]:
        fake_trial(study, psnr=psnr, latency_ms=latency, memory_mb=100.0)
    return study


# -- hypervolume ----------------------------------------------------------------------------------
def test_hypervolume_by_hand() -> None:
    assert hypervolume_min([[1, 2], [2, 1]], [3, 3]) == 3.0
    # 3-D, two boxes: 3*2*1 + 2*3*3 - overlap 2*2*1 = 20.
    assert hypervolume_min([[1, 2, 3], [2, 1, 1]], [4, 4, 4]) == 20.0
    assert hypervolume_min([[5, 5]], [3, 3]) == 0.0  # outside the reference box
    assert hypervolume_min([], [1, 1]) == 0.0


def test_two_objective_front_hypervolume_and_knee(two) -> None:
    front = pareto_front(two)
    assert numbers(front) == [0, 1, 2]
    # Rectangles under the staircase to (psnr 27, latency 40): 2*5 + 3*10 + 4*20.
    assert hypervolume(front, {"psnr": 27, "latency_ms": 40}) == pytest.approx(120.0)
    # Default reference: psnr 28 - 0.1*3, latency 30 + 0.1*25 over all feasible trials.
    assert front.attrs["reference_point"] == pytest.approx({"psnr": 27.7, "latency_ms": 32.5})
    assert hypervolume(front) == pytest.approx(1.3 * 5 + 2.3 * 10 + 3.3 * 12.5)
    assert int(pick(front, "knee")["number"]) == 0  # (30, 10): normalised distance 0.60


# -- fronts ---------------------------------------------------------------------------------------
def test_front_is_optuna_best_trials(known) -> None:
    front = pareto_front(known)
    assert numbers(front) == [0, 1, 2, 4, 8] == sorted(t.number for t in known.best_trials)
    assert front.attrs["n_candidates"] == 6  # complete and feasible: 0, 1, 2, 3, 4, 8
    assert list(front["psnr"]) == [32.0, 31.0, 30.0, 29.0, 28.0]  # default sort: psnr down


def test_trials_frame_columns(known) -> None:
    frame = trials_frame(known)
    assert len(frame) == 10
    head = ["study", "number", "state", "status", "feasible", "arch_id", *MEASURE_COLUMNS]
    assert list(frame.columns[: len(head)]) == head
    assert {"device", "baseline", "p_dim", "p_kernel_size"} <= set(frame.columns)
    row5 = frame.set_index("number").loc[5]
    assert not row5["feasible"] and row5["state"] == "COMPLETE"
    assert frame.set_index("number").loc[8, "baseline"] == "esc-light"
    assert frame.attrs["objectives"] == [("psnr", "maximize"), ("latency_ms", "minimize"),
                                         ("memory_mb", "minimize")]


def test_infeasible_trials_excluded_by_constraint_or_status(storage) -> None:
    study = make_study(storage, "infeasible")
    fake_trial(study, psnr=30, latency_ms=10, memory_mb=100)
    # Only a constraint marks this one (a launch-time budget it broke).
    trial = optuna.trial.create_trial(
        values=[40.0, 1.0, 1.0], user_attrs={"arch_id": "x", "device": "cpu: test"},
        system_attrs={"constraints:latency_ms": 3.0})
    study.add_trial(trial)
    # Only srnas's status marks this one (stopped before training).
    fake_trial(study, psnr=41, latency_ms=1, memory_mb=1,
               extra={"status": "infeasible_untrained"})
    assert numbers(pareto_front(study)) == [0]


@pytest.mark.parametrize(("budgets", "expected"), [
    ({"latency_ms": 15}, [0, 2]),
    ({"memory_mb": 95}, [2, 4]),
    # A budget on a non-objective recomputes the front: 3 (dominated by 0 overall) is back.
    ({"params": 250_000}, [3, 4]),
    ({"latency_ms": 30, "memory_mb": 100}, [0, 2, 4]),
])
def test_budgets_filter_after_the_fact(known, budgets, expected) -> None:
    front = pareto_front(known, budgets=budgets)
    assert numbers(front) == expected
    assert front.attrs["budgets"] == {k: float(v) for k, v in budgets.items()}


def test_budget_on_objective_is_the_reference_point(known) -> None:
    front = pareto_front(known, budgets={"latency_ms": 15})
    assert front.attrs["reference_point"]["latency_ms"] == 15.0


def test_budget_that_empties_the_front_says_which_and_what_would_admit(known) -> None:
    # Library errors name the library argument; the CLI shows it as the flag.
    with pytest.raises(StudyError, match=r"^max_latency_ms: .*smallest value that admits one "
                                         r"is 5 \(got 4\.0\)"):
        pareto_front(known, budgets={"latency_ms": 4})
    # The second budget removes the last trial; the first is still applied (0, 2, 3 left).
    with pytest.raises(StudyError, match=r"^max_memory_mb: .*within latency_ms <= 15; the "
                                         r"smallest value that admits one is 90 \(got 85\.0\)"):
        pareto_front(known, budgets={"latency_ms": 15, "memory_mb": 85})


@pytest.mark.parametrize(("bad", "field"), [({"latency_ms": -1}, "max_latency_ms"),
                                           ({"latency_ms": math.nan}, "max_latency_ms"),
                                           ({"flops": 1}, "budgets")])
def test_bad_budgets(known, bad, field) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: ") as caught:
        pareto_front(known, budgets=bad)
    assert caught.value.field == field


@pytest.mark.parametrize(("how", "budgets", "expected"), [
    ("knee", {}, 0),  # squared normalised distances: 0 -> 0.279, 1 -> 0.347, 2 -> 0.565
    ("max-psnr", {}, 8),
    ("min-latency", {}, 2),
    ("min-memory", {}, 4),
    ("knee", {"latency_ms": 15}, 2),  # 0 and 2 left: 2 is 1 from the ideal, 0 is sqrt 2
    ("max-psnr", {"latency_ms": 35}, 1),  # "the best PSNR under 35 ms"
])
def test_picks(known, how, budgets, expected) -> None:
    assert int(pick(pareto_front(known, budgets=budgets), how)["number"]) == expected


def test_unknown_pick(known) -> None:
    with pytest.raises(ConfigError, match=r"^pick: must be one of knee, max-psnr"):
        pick(pareto_front(known), "best")


def test_pick_ties_go_to_the_lower_trial(storage) -> None:
    study = make_study(storage, "ties")
    for _ in range(2):
        fake_trial(study, psnr=30, latency_ms=10, memory_mb=100)
    front = pareto_front(study)
    assert numbers(front) == [0, 1]  # equal points do not dominate each other (as Optuna)
    assert {int(pick(front, h)["number"]) for h in ("knee", "max-psnr", "min-latency")} == {0}


def test_empty_study_and_all_failed(storage) -> None:
    study = make_study(storage, "nothing-yet")
    fake_trial(study, state="RUNNING")
    with pytest.raises(SrnasError, match="no complete trial yet"):
        pareto_front(study)


def test_device_filter(storage) -> None:
    study = make_study(storage, "devices")
    fake_trial(study, psnr=30, latency_ms=10, memory_mb=100, device="cuda: NVIDIA H100 80GB")
    fake_trial(study, psnr=31, latency_ms=30, memory_mb=100, device="cpu: AMD EPYC")
    assert numbers(pareto_front(study, device="h100")) == [0]
    assert numbers(pareto_front(study, device="cpu: AMD EPYC")) == [1]
    with pytest.raises(StudyError, match=r"^device: .*devices: cpu: AMD EPYC; cuda: NVIDIA"):
        pareto_front(study, device="A100")
    with pytest.raises(StudyError, match=r"^study: .*2 devices"):
        pareto_front(study)  # two devices in one study: not comparable without --device


def test_merge_studies_same_device(storage) -> None:
    a = make_study(storage, "merge-a")
    fake_trial(a, psnr=30, latency_ms=10, memory_mb=100)
    b = make_study(storage, "merge-b")
    fake_trial(b, psnr=31, latency_ms=12, memory_mb=100)
    fake_trial(b, psnr=29, latency_ms=11, memory_mb=100)  # dominated by a's trial 0
    front = pareto_front(merge_studies([a, b]))
    assert sorted(zip(front["study"], front["number"], strict=True)) == [
        ("merge-a", 0), ("merge-b", 0)]
    c = make_study(storage, "merge-c")
    fake_trial(c, psnr=35, latency_ms=1, memory_mb=1, device="cuda: other")
    with pytest.raises(StudyError, match=r"^all_studies: .*2 devices"):
        pareto_front(merge_studies([a, c]))
    assert numbers(pareto_front(merge_studies([a, c]), device="cpu: test")) == [0]
    d = make_study(storage, "merge-d", objectives=("psnr", "latency_ms"))
    with pytest.raises(SrnasError, match="share their objectives"):
        merge_studies([a, d])


def test_reference_point_rule(known) -> None:
    candidates = trials_frame(known)
    candidates = candidates[candidates["number"].isin([0, 1])]
    reference = default_reference_point(candidates, [("psnr", "maximize"),
                                                     ("latency_ms", "minimize")])
    assert reference == pytest.approx({"psnr": 29.9, "latency_ms": 21.0})


def test_study_without_metric_names_uses_srnas_attr(storage) -> None:
    study = optuna.create_study(study_name="unnamed", storage=storage,
                                directions=["maximize", "minimize"])
    study.set_user_attr("objectives", [["psnr", "maximize"], ["latency_ms", "minimize"]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.add_trial(optuna.trial.create_trial(values=[30.0, 10.0]))
    front = pareto_front(study)
    assert front.attrs["objectives"] == [("psnr", "maximize"), ("latency_ms", "minimize")]
    assert front.loc[0, "psnr"] == 30.0


# -- comparable trials: one device and one latency input per ranking -------------------------------
@pytest.fixture(scope="module")
def mixed(storage) -> optuna.Study:
    """0: CPU at 180x320; 1: H100 at 180x320; 2: H100 at 90x160 (the fastest, were it fair)."""
    study = make_study(storage, "mixed")
    fake_trial(study, psnr=30, latency_ms=40, memory_mb=100, device="cpu: AMD EPYC")
    fake_trial(study, psnr=30, latency_ms=4, memory_mb=100, device="cuda: NVIDIA H100")
    fake_trial(study, psnr=30, latency_ms=1, memory_mb=100, device="cuda: NVIDIA H100",
               extra={"input_hw": [90, 160]})
    return study


def test_mixed_devices_and_inputs_within_one_study_are_refused(mixed) -> None:
    with pytest.raises(StudyError) as caught:
        pareto_front(mixed)
    message = str(caught.value)
    assert message.startswith("study: the feasible complete trials of mixed were measured on "
                              "2 devices (cpu: AMD EPYC; cuda: NVIDIA H100) and 2 latency "
                              "inputs (90x160, 180x320)")
    assert "device (--device NAME)" in message and "input_hw (--input HxW)" in message
    assert caught.value.field == "study" and caught.value.value == "mixed"
    assert "\n" not in message


def test_mixed_study_narrowed_by_device_and_input(mixed) -> None:
    # One device, still two inputs: the message names the inputs and only the input filter.
    with pytest.raises(StudyError, match=r"^study: .*2 latency inputs \(90x160, 180x320\)") \
            as caught:
        pareto_front(mixed, device="H100")
    assert "--device" not in str(caught.value) and "--input HxW" in str(caught.value)
    # One input, still two devices.
    with pytest.raises(StudyError, match=r"^study: .*2 devices \(cpu: AMD EPYC; cuda: NVIDIA "
                                         r"H100\)"):
        pareto_front(mixed, input_hw=(180, 320))
    assert numbers(pareto_front(mixed, device="cpu")) == [0]  # the CPU has one input
    front = pareto_front(mixed, device="H100", input_hw=(180, 320))
    assert numbers(front) == [1]
    assert front.attrs["devices"] == ["cuda: NVIDIA H100"] and front.attrs["inputs"] == [
        "180x320"]
    assert front.attrs["input_hw"] == "180x320"
    # The input as a list or as "HxW" text means the same.
    assert numbers(pareto_front(mixed, device="H100", input_hw=[90, 160])) == [2]
    assert numbers(pareto_front(mixed, device="H100", input_hw="90x160")) == [2]


def test_input_filter_errors(mixed) -> None:
    with pytest.raises(StudyError, match=r"^input_hw: no feasible complete trial was measured "
                                         r"at it; inputs: 90x160, 180x320 \(got \(64, 64\)\)"):
        pareto_front(mixed, input_hw=(64, 64))
    for bad in [(0, 5), (1, 2, 3), "big", 7]:
        with pytest.raises(ConfigError, match=r"^input_hw: must be two positive integers"):
            pareto_front(mixed, input_hw=bad)


def test_pick_on_a_mixed_study_needs_narrowing(mixed) -> None:
    from srnas.studies.frame import trials_frame as frame_of

    with pytest.raises(StudyError, match="2 devices"):
        pick(pareto_front(frame_of(mixed)), "min-latency")
    narrowed = pareto_front(frame_of(mixed), device="H100", input_hw=(90, 160))
    assert int(pick(narrowed, "min-latency")["number"]) == 2


def test_unrecorded_device_or_input_is_no_group_of_its_own(storage) -> None:
    study = make_study(storage, "partly-recorded")
    fake_trial(study, psnr=30, latency_ms=10, memory_mb=100)
    fake_trial(study, psnr=31, latency_ms=20, memory_mb=100,
               extra={"device": None, "input_hw": None})
    front = pareto_front(study)
    assert numbers(front) == [0, 1]
    assert front.attrs["devices"] == ["cpu: test"] and front.attrs["inputs"] == ["180x320"]


def test_single_device_study_unchanged(known) -> None:
    frame = trials_frame(known)
    assert set(frame["input_hw"].dropna()) == {"180x320"}
    front = pareto_front(known)
    assert numbers(front) == [0, 1, 2, 4, 8]
    assert front.attrs["devices"] == ["cpu: test"] and front.attrs["inputs"] == ["180x320"]
    assert front.attrs["input_hw"] is None
    assert numbers(pareto_front(known, input_hw=(180, 320))) == [0, 1, 2, 4, 8]
