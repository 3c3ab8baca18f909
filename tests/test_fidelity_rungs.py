"""``srnas fidelity`` per rung: Kendall tau between the PSNR at each rung and the long PSNR,
its interval, the ``--min-steps`` recommendation; on fabricated studies whose taus are known
exactly, and the edge cases (too few pairs at a rung, equal PSNRs, no rung below the full
budget)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pytest

from srnas.search.cli import main
from srnas.search.fidelity import open_sibling, record_retrain
from srnas.space.config import ArchConfig
from srnas.studies import fidelity as fid
from srnas.studies.frame import trials_frame
from tests.fabricate import fake_trial, make_study

if TYPE_CHECKING:
    import pandas as pd

N = 10
# The long PSNR rises with the trial number. At rung 69 the order is the same (tau +1), at
# rung 23 it is reversed (tau -1), at the full 200 steps trials 0 and 1 are swapped: one
# discordant pair of 45, tau = (44 - 1) / 45.
LONG = [30.0 + 0.1 * i for i in range(N)]
AT_69 = [25.0 + 0.2 * i for i in range(N)]
AT_23 = [24.0 - 0.3 * i for i in range(N)]
AT_200 = [27.1, 27.0] + [27.0 + 0.1 * i for i in range(2, N)]
Z = 1.959963984540054
# The interval is normal in z = atanh(tau) with variance 0.437 / (n - 4); a tau of 1 counts as
# half a discordant pair short of it: at n = 10, 1 - 2/90, whose atanh is ln(89) / 2.
HALF_10 = Z * math.sqrt(0.437 / 6)
LOW_PERFECT_10 = math.tanh(math.log(89) / 2 - HALF_10)  # 0.937


def _arch(i: int) -> ArchConfig:
    return ArchConfig(dim=16 + 8 * i, kernel_size=7 + 2 * (i % 4), n_blocks=1 + i % 3)


def _retrain(sibling: optuna.Study, number: int, brief: float, brief_steps: int,
             long: float) -> None:
    job = {"source_trial": number, "arch_id": _arch(number).arch_id, "seed": 0,
           "train": {"lr": 5e-4}, "brief_psnr": brief, "brief_steps": brief_steps}
    assert record_retrain(sibling, job, 2000, {"status": "ok", "psnr": long})


def _pruned(study: optuna.Study, i: int, rungs: dict[str, float]) -> int:
    """A trial MO-ASHA stopped at its last rung, as the search records one."""
    trial = study.ask()
    trial.set_user_attr("arch", _arch(i).to_dict())
    trial.set_user_attr("rung_psnr", rungs)
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return trial.number


def _laddered(url: str) -> optuna.Study:
    """Ten complete trials with rungs 23, 69, 200 (``rung_psnr`` as the trainable records it,
    the full budget included), and one trial stopped at rung 23, all retrained: rung 23 has 11
    pairs (the stopped one, best at 23 and worst after long training, keeps it reversed)."""
    study = make_study(url, "s")
    for i in range(N):
        rungs = {"23": AT_23[i], "69": AT_69[i], "200": AT_200[i]}
        fake_trial(study, psnr=AT_200[i], latency_ms=10.0 - 0.5 * i, memory_mb=10.0,
                   arch=_arch(i), extra={"rung_psnr": rungs})
    stopped = _pruned(study, N, {"23": 30.0})
    sibling = open_sibling(study, url)
    for i in range(N):
        _retrain(sibling, i, AT_200[i], 200, LONG[i])
    _retrain(sibling, stopped, 30.0, 23, 29.0)
    return study


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'f.db'}"


def _pairs(study: optuna.Study, url: str) -> pd.DataFrame:
    return fid.pairs_frame(trials_frame(study), 2000, fid.load_sibling("s", url), study)


def test_taus_per_rung_are_the_known_ones_with_their_intervals(url: str) -> None:
    study = _laddered(url)
    pairs = _pairs(study, url)
    assert pairs.attrs["rungs"] == [23, 69, 200]
    assert list(pairs["psnr_at_69"].iloc[:N]) == pytest.approx(AT_69)
    assert math.isnan(pairs["psnr_at_69"].iloc[N])  # the stopped trial never reached 69
    rungs = {r["steps"]: r for r in fid.agreement(pairs)["rungs"]}
    assert [rungs[s]["pairs"] for s in (23, 69, 200)] == [N + 1, N, N]
    assert rungs[69]["kendall_tau"] == pytest.approx(1.0)
    assert rungs[69]["kendall_ci"] == pytest.approx((LOW_PERFECT_10, 1.0))
    assert rungs[69]["clears"] and rungs[69]["pairs_needed"] is None
    assert rungs[23]["kendall_tau"] == pytest.approx(-1.0)
    # Reversed over 11 pairs: -(1 - 2/110), atanh -ln(109) / 2.
    high_23 = math.tanh(-math.log(109) / 2 + Z * math.sqrt(0.437 / 7))
    assert rungs[23]["kendall_ci"] == pytest.approx((-1.0, high_23))
    assert not rungs[23]["clears"] and rungs[23]["pairs_needed"] is None  # never, at tau -1
    tau = 43 / 45  # atanh(43/45) = ln(88/2) / 2
    assert rungs[200]["kendall_tau"] == pytest.approx(tau)
    assert rungs[200]["kendall_ci"] == pytest.approx(
        (math.tanh(math.log(44) / 2 - HALF_10), math.tanh(math.log(44) / 2 + HALF_10)))
    assert rungs[200]["clears"]  # lower bound 0.877


def test_recommendation_is_the_lowest_clearing_rung(url: str) -> None:
    pairs = _pairs(_laddered(url), url)
    figures = fid.agreement(pairs)
    assert figures["rung_tau_threshold"] == fid.MIN_RUNG_TAU == 0.5
    assert figures["recommendation"]["min_steps"] == 69
    assert figures["recommendation"]["text"].startswith("--min-steps 69: the lowest rung")
    # Rung 23 clearing too (its order made concordant) moves the recommendation down to it.
    pairs["psnr_at_23"] = pairs["long_psnr"] - 5.0
    assert fid.agreement(pairs)["recommendation"]["min_steps"] == 23


def test_too_few_pairs_at_a_rung_give_no_tau_or_no_interval_and_say_so(url: str) -> None:
    """Four complete trials from a 23/200 ladder and two stopped at 69 (a launch with another
    --min-steps): rung 69 has 2 pairs (no tau), rung 200 has 4 (a tau, no interval), rung 23
    has 6 with 2 of its 15 pairs discordant (tau 11/15, too few pairs to clear 0.5)."""
    study = make_study(url, "s")
    at_23 = [21.0, 20.0, 22.0, 23.0, 25.0, 24.0]  # trials (0, 1) and (4, 5) swapped
    for i in range(4):
        fake_trial(study, psnr=27.0 + i, latency_ms=10.0 - i, memory_mb=10.0, arch=_arch(i),
                   extra={"rung_psnr": {"23": at_23[i], "200": 27.0 + i}})
    stopped = [_pruned(study, 4 + j, {"23": at_23[4 + j], "69": 25.0 + j}) for j in range(2)]
    sibling = open_sibling(study, url)
    for i in range(4):
        _retrain(sibling, i, 27.0 + i, 200, 30.0 + i)
    for j, number in enumerate(stopped):
        _retrain(sibling, number, 25.0 + j, 69, 34.0 + j)
    figures = fid.agreement(_pairs(study, url))
    rungs = {r["steps"]: r for r in figures["rungs"]}
    assert rungs[69]["pairs"] == 2 and rungs[69]["kendall_tau"] is None
    assert rungs[69]["kendall_ci"] is None and not rungs[69]["clears"]
    assert "2 retrained trial(s) reached this rung" in rungs[69]["note"]
    assert "needs at least 3" in rungs[69]["note"]
    assert rungs[200]["pairs"] == 4 and rungs[200]["kendall_tau"] == pytest.approx(1.0)
    assert rungs[200]["kendall_ci"] is None and not rungs[200]["clears"]
    assert rungs[200]["note"] == "an interval needs at least 5 pairs"
    assert rungs[23]["pairs"] == 6 and rungs[23]["kendall_tau"] == pytest.approx(11 / 15)
    # atanh(11/15) = ln(26/4) / 2; the bound clears 0.5 (atanh ln(3) / 2) when
    # Z sqrt(0.437 / (n - 4)) <= (ln 6.5 - ln 3) / 2: n - 4 >= 11.23, n = 16.
    assert rungs[23]["kendall_ci"][0] == pytest.approx(
        math.tanh(math.log(6.5) / 2 - Z * math.sqrt(0.437 / 2)))  # 0.020
    assert rungs[23]["pairs_needed"] == 16 and not rungs[23]["clears"]
    rec = figures["recommendation"]
    assert rec["min_steps"] is None
    assert rec["text"].startswith("no rung below 200 steps has the 95% lower bound of tau")
    assert "rung 23 would with 16 pairs if its tau +0.73 held (it has 6)" in rec["text"]
    lines = fid.report_lines(_pairs(study, url), figures, 2000)
    row_69 = next(line for line in lines if line.split()[:1] == ["69"])
    assert row_69.split()[2:5] == ["-", "-", "-"] and "needs at least 3" in row_69
    row_200 = next(line for line in lines if line.split()[:1] == ["200"])
    assert row_200.split()[2:4] == ["+1.00", "-"]
    assert "an interval needs at least 5 pairs; needs 6 pairs at this tau" in row_200
    assert lines[-1] == f"recommendation: {rec['text']}"


def test_interval_edges() -> None:
    assert fid.tau_interval(0.9, 4) is None and fid.tau_interval(0.9, 5) is not None
    assert fid.tau_interval(1.0, 5)[1] == 1.0 and fid.tau_interval(-1.0, 5)[0] == -1.0
    low, high = fid.tau_interval(0.0, 20)
    assert low == pytest.approx(-high) and high == pytest.approx(
        math.tanh(Z * math.sqrt(0.437 / 16)))
    assert fid.pairs_needed(0.5) is None and fid.pairs_needed(-0.2) is None


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")  # the overall rho
def test_equal_psnrs_and_no_rung_below_the_full_budget(url: str) -> None:
    """A fifo study (no rung PSNRs recorded: the full budget from each trial's psnr) whose
    three retrains came back equal."""
    study = make_study(url, "s")
    for i in range(3):
        fake_trial(study, psnr=27.0 + i, latency_ms=10.0 - i, memory_mb=10.0, arch=_arch(i))
    sibling = open_sibling(study, url)
    for i in range(3):
        _retrain(sibling, i, 27.0 + i, 200, 30.0)
    figures = fid.agreement(_pairs(study, url))
    assert [r["steps"] for r in figures["rungs"]] == [200]
    assert figures["rungs"][0]["kendall_tau"] is None
    assert figures["rungs"][0]["note"] == "the PSNRs are all equal here: no ranking to compare"
    assert figures["recommendation"] == {
        "min_steps": None, "text": "the study has no rung below its 200 steps"}


def test_a_rung_whose_tau_is_below_the_threshold_needs_no_more_pairs() -> None:
    rungs = [{"steps": 23, "pairs": 8, "kendall_tau": 0.3, "kendall_ci": (-0.27, 0.87),
              "clears": False, "pairs_needed": fid.pairs_needed(0.3), "note": None},
             {"steps": 200, "pairs": 8, "kendall_tau": 0.9, "kendall_ci": (0.33, 1.0),
              "clears": False, "pairs_needed": fid.pairs_needed(0.9), "note": None}]
    assert rungs[0]["pairs_needed"] is None and fid.pairs_needed(0.5) is None
    text = fid.recommend_min_steps(rungs)["text"]
    assert "no rung below 200 steps has a tau above 0.5 itself" in text


def test_stored_with_the_retrains(url: str) -> None:
    study = _laddered(url)
    figures = fid.agreement(_pairs(study, url))
    sibling = fid.load_sibling("s", url)
    assert fid.stored_rung_fidelity(sibling, 2000) is None
    assert fid.store_rung_fidelity(sibling, 2000, figures)
    kept = fid.stored_rung_fidelity(fid.load_sibling("s", url), 2000)
    assert kept["recommendation"]["min_steps"] == 69
    assert [r["steps"] for r in kept["rungs"]] == [23, 69, 200]
    assert kept["rungs"][1]["kendall_ci"] == pytest.approx([LOW_PERFECT_10, 1.0])
    assert fid.stored_rung_fidelity(sibling, 999) is None


def test_command_prints_the_rungs_in_table_json_and_csv(
        url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _laddered(url)
    base = ["fidelity", "s", "--storage", url, "--steps", "2000", "--report-only"]
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "per rung: Kendall tau of the PSNR there vs the long PSNR" in out
    row_69 = next(line for line in out.splitlines() if line.split()[:2] == ["69", "10"])
    assert row_69.split()[2:6] == ["+1.00", f"{LOW_PERFECT_10:+.2f}", "..", "+1.00"]
    assert "yes" in row_69.split()
    assert "recommendation: --min-steps 69" in out
    assert main([*base, "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [r["steps"] for r in document["rungs"]] == [23, 69, 200]
    assert document["recommendation"]["min_steps"] == 69
    assert document["trials"][0]["psnr_at_23"] == pytest.approx(AT_23[0])
    assert main([*base, "--format", "csv"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split(",")
    assert header[-3:] == ["psnr_at_23", "psnr_at_69", "psnr_at_200"]


def test_markdown_table_of_the_rungs(url: str) -> None:
    text = fid.rung_markdown(fid.agreement(_pairs(_laddered(url), url)))
    lines = text.splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[:5]]
    assert cells[0] == ["steps", "pairs", "kendall_tau", "ci_low", "ci_high", "clears",
                        "pairs_needed", "note"]
    assert [row[0] for row in cells[2:5]] == ["23", "69", "200"]
    assert cells[3][1:6] == ["10", "1", f"{LOW_PERFECT_10:.3f}", "1", "True"]
    assert lines[-1].startswith("Recommendation: --min-steps 69")


def test_plot_titles_carry_the_taus_per_rung(url: str, tmp_path: Path) -> None:
    from srnas.studies.fidelity_plot import plot_fidelity, plot_title

    pairs = _pairs(_laddered(url), url)
    figures = fid.agreement(pairs)
    assert plot_title(pairs, figures, 2000).splitlines()[1] == \
        "tau per rung (steps: tau) 23: -1.00, 69: +1.00, 200: +0.96"
    html = plot_fidelity(pairs, figures, 2000, tmp_path / "f.html").read_text()
    assert "tau per rung (steps: tau) 23: -1.00" in html
    assert plot_fidelity(pairs, figures, 2000, tmp_path / "f.png").stat().st_size > 1000


def test_a_refused_store_is_said_not_raised(url: str) -> None:
    from sqlalchemy import exc

    class ReadOnly:
        def set_user_attr(self, key: str, value: object) -> None:
            raise exc.OperationalError("UPDATE", {}, Exception("attempt to write a readonly "
                                                                "database"))

    figures = fid.agreement(_pairs(_laddered(url), url))
    assert fid.store_rung_fidelity(ReadOnly(), 2000, figures) is False  # type: ignore[arg-type]
