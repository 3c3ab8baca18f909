"""How far a study's brief-training ranking holds after longer training.

Reads a study and its sibling ``STUDY:fidelity`` (see :mod:`srnas.studies.schema`): which
trials to retrain, the (brief, long) PSNR pairs, and the agreement between the two rankings --
Kendall's tau and Spearman's rho with paired-bootstrap 95 % intervals (scipy.stats), the
overlap of the top k, and whether the brief front's members stay non-dominated when the long
PSNR replaces the brief one. Per rung of the search (each steps value at which MO-ASHA ranked
trials, and the full budget), Kendall's tau between the PSNR there and the long PSNR over the
retrained trials that reached it, with a Fisher-z normal interval (:func:`tau_interval`),
and the ``--min-steps`` that follows for the next study (:func:`recommend_min_steps`). No torch
and no Ray: the retraining itself is search/'s job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from srnas.space.contract import ATTR_MEASUREMENT, ATTR_RUNG_PSNR, ATTR_RUNG_RESULTS
from srnas.space.errors import ConfigError, StudyError
from srnas.studies.frame import get_trial, nested_attr, require_arch, study_objectives
from srnas.studies.front import non_dominated, pareto_front
from srnas.studies.schema import (
    BRIEF_PSNR,
    BRIEF_STEPS,
    SOURCE_TRIAL,
    STEPS,
    check_sibling,
    fidelity_study_name,
    is_sibling_of,
)

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from optuna.storages import BaseStorage

DEFAULT_RETRAINS = 8
DEFAULT_FACTOR = 10  # the long budget: 10x the study's steps unless told
DEFAULT_TOP_K = 3
MIN_PAIRS = 3  # a rank correlation of fewer pairs says nothing
BOOTSTRAP_RESAMPLES = 2000
# The rung a study may stop trials at: its tau with the long ranking is at least this, at the
# 95 % interval's lower bound. At tau 0.5 three of four pairs of trials are ordered there as
# after long training ((1 + tau) / 2 of the pairs agree); tau 0 is a coin flip. A rung that
# keeps the best third and stops the rest on a ranking worse than that stops as many good
# networks as it keeps.
MIN_RUNG_TAU = 0.5
Z_95 = 1.959963984540054  # the standard normal's 97.5 % quantile (scipy.stats.norm.ppf(0.975))
MIN_CI_PAIRS = 5  # the interval's variance 0.437 / (n - 4) needs n > 4
RUNG_CI_METHOD = ("normal in Fisher's z = atanh(tau), Var(z) = 0.437/(n-4) (Fieller, Hartley "
                  "and Pearson 1957)")
ATTR_RUNG_FIDELITY = "rung_fidelity_{steps}"  # sibling study attr: the per-rung figures


@dataclass(frozen=True)
class Brief:
    """What the search measured for one trial: its PSNR after ``steps`` training steps."""

    number: int
    psnr: float
    steps: int
    complete: bool


def study_steps(study: optuna.Study) -> int | None:
    """The training steps a complete trial of the study got (its recorded measurement)."""
    steps = (study.user_attrs.get(ATTR_MEASUREMENT) or {}).get("steps")
    return int(steps) if isinstance(steps, (int, float)) else None


def brief_of(trial: optuna.trial.FrozenTrial, objectives: Sequence[tuple[str, str]]
             ) -> Brief | None:
    """A COMPLETE trial's PSNR at its full budget, or a PRUNED trial's at its last rung; None
    for a trial without a PSNR or without an architecture."""
    if not isinstance(nested_attr(trial.user_attrs, "arch"), dict):
        return None
    attrs = trial.user_attrs
    if trial.state.name == "COMPLETE":
        names = [n for n, _ in objectives]
        psnr = trial.values[names.index("psnr")] if trial.values and "psnr" in names \
            else attrs.get("psnr")
        steps = attrs.get("steps")
        if isinstance(psnr, (int, float)) and math.isfinite(psnr) and isinstance(steps, int):
            return Brief(trial.number, float(psnr), steps, True)
        return None
    rungs = attrs.get("rung_psnr")
    if trial.state.name == "PRUNED" and isinstance(rungs, dict) and rungs:
        last = max(rungs, key=int)
        return Brief(trial.number, float(rungs[last]), int(last), False)
    return None


def briefs(study: optuna.Study) -> dict[int, Brief]:
    objectives = study_objectives(study)
    found = {}
    for trial in study.get_trials(deepcopy=False):
        brief = brief_of(trial, objectives)
        if brief is not None:
            found[trial.number] = brief
    return found


def check_request(study: optuna.Study, steps: int, numbers: Sequence[int] = ()) -> None:
    """Everything ``srnas fidelity`` refuses, before anything runs: too few complete trials,
    a long budget not longer than the study's, unknown trials or trials without a PSNR."""
    known = briefs(study)
    complete = [b for b in known.values() if b.complete]
    if len(complete) < MIN_PAIRS:
        raise StudyError("study", f"needs at least {MIN_PAIRS} complete trials with a PSNR "
                         f"for a rank correlation; {study.study_name!r} has {len(complete)}",
                         study.study_name)
    brief_steps = study_steps(study) or max(b.steps for b in complete)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= brief_steps:
        raise ConfigError("steps", f"must be an integer above the study's {brief_steps} "
                          "training steps (the point is a longer budget)", steps)
    for number in numbers:
        found = get_trial(study, number)
        require_arch(study, found)
        if number not in known:
            raise StudyError("trial", f"trial {number} is {found.state.name.lower()} "
                             "without a PSNR: nothing to compare a retrain with", number)


def _spread(pool: list[Brief], slots: int) -> list[int]:
    """``slots`` trials of ``pool`` spread evenly over its PSNR range: the nearest unused trial
    to each of evenly spaced PSNR targets, lowest and highest included."""
    import numpy as np

    pool = sorted(pool, key=lambda b: (b.psnr, b.number))
    if slots >= len(pool):
        return [b.number for b in pool]
    picked = []
    for target in np.linspace(pool[0].psnr, pool[-1].psnr, slots):
        best = min(pool, key=lambda b: (abs(b.psnr - target), b.number))
        picked.append(best.number)
        pool.remove(best)
    return picked


def select_trials(study: optuna.Study, k: int = DEFAULT_RETRAINS, *,
                  include_pruned: bool = False) -> list[int]:
    """``k`` trials to retrain: the whole (feasible) front, then the other complete trials
    spread evenly over their PSNR range. With ``include_pruned``, slots the complete trials
    cannot fill go to PRUNED trials from the highest rung down (a rung's trials spread over
    their PSNR range): those came closest to the full budget, and the networks stopped at the
    first rung are often the largest, the costliest to retrain. Deterministic."""
    if k < MIN_PAIRS:
        raise ConfigError("trials", f"must be at least {MIN_PAIRS} (a rank correlation of fewer "
                          "pairs says nothing)", k)
    known = briefs(study)
    front = [int(n) for n in pareto_front(study)["number"]]
    chosen = [n for n in sorted(front, key=lambda n: -known[n].psnr) if n in known][:k]
    rest = [b for b in known.values() if b.number not in chosen]
    chosen += _spread([b for b in rest if b.complete], k - len(chosen))
    pruned = [b for b in rest if not b.complete] if include_pruned else []
    for rung in sorted({b.steps for b in pruned}, reverse=True):
        if len(chosen) >= k:
            break
        chosen += _spread([b for b in pruned if b.steps == rung], k - len(chosen))
    return chosen


def retrains(sibling: optuna.Study | None, steps: int | None = None) -> dict[int, Any]:
    """COMPLETE retrains of the sibling study by source trial number (the latest wins), at
    ``steps`` (or at any budget when None: then the largest budget per trial wins)."""
    found: dict[int, Any] = {}
    if sibling is None:
        return found
    for trial in sibling.get_trials(deepcopy=False):
        if trial.state.name != "COMPLETE":
            continue
        attrs = trial.user_attrs
        if steps is not None and attrs.get(STEPS) != steps:
            continue
        number = int(attrs[SOURCE_TRIAL])
        earlier = found.get(number)
        if earlier is None or attrs.get(STEPS, 0) >= earlier.user_attrs.get(STEPS, 0):
            found[number] = trial
    return found


def load_sibling(study_name: str, storage: BaseStorage | str) -> optuna.Study | None:
    """The study's ``:fidelity`` sibling in ``storage``, if a retrain ever ran. A user's own
    study that merely bears the name is no sibling (srnas marks its own): a one-line refusal,
    never its trials read as retrains."""
    sibling = _named_sibling(study_name, storage)
    if sibling is not None:
        check_sibling(sibling.user_attrs, study_name, len(sibling.get_trials(deepcopy=False)))
    return sibling


def find_sibling(study_name: str, storage: BaseStorage | str) -> optuna.Study | None:
    """As :func:`load_sibling`, but a same-named study srnas did not make is None (listings
    show it as a study of its own)."""
    sibling = _named_sibling(study_name, storage)
    if sibling is None or is_sibling_of(sibling.user_attrs, study_name):
        return sibling
    return None


def _named_sibling(study_name: str, storage: BaseStorage | str) -> optuna.Study | None:
    import optuna

    name = fidelity_study_name(study_name)
    if name not in optuna.get_all_study_names(storage):
        return None
    return optuna.load_study(study_name=name, storage=storage)


def budgets_measured(sibling: optuna.Study | None) -> list[int]:
    """The long budgets the sibling study holds results for."""
    if sibling is None:
        return []
    return sorted({int(t.user_attrs[STEPS]) for t in sibling.get_trials(deepcopy=False)
                   if t.state.name == "COMPLETE" and STEPS in t.user_attrs})


def rung_psnrs(study: optuna.Study) -> tuple[dict[int, dict[int, float]], list[int]]:
    """Every trial's PSNR per rung reached ({number: {steps: psnr}}) and the study's rungs
    (every steps value any trial was measured at, the full budget included, ascending).

    From ``rung_psnr`` (the trainable's record, the full budget included for a trial that
    completed), else the psnr of ``rung_results`` (the scheduler's record while the trial ran),
    and for a COMPLETE trial of an older study without either, its psnr at its ``steps``."""
    objectives = study_objectives(study)
    found: dict[int, dict[int, float]] = {}
    rungs: set[int] = set()
    full = study_steps(study)
    if full is not None:
        rungs.add(full)
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        psnrs: dict[int, float] = {}
        written = attrs.get(ATTR_RUNG_RESULTS)
        for key, values in (written.items() if isinstance(written, Mapping) else ()):
            if str(key).isdigit() and isinstance(values, Mapping) and _finite(values.get("psnr")):
                psnrs[int(key)] = float(values["psnr"])
        recorded = attrs.get(ATTR_RUNG_PSNR)
        for key, value in (recorded.items() if isinstance(recorded, Mapping) else ()):
            if str(key).isdigit() and _finite(value):  # JSON keys: steps as digits
                psnrs[int(key)] = float(value)
        brief = brief_of(trial, objectives)
        if brief is not None and brief.complete:
            psnrs.setdefault(brief.steps, brief.psnr)
        rungs.update(psnrs)
        if psnrs:
            found[trial.number] = psnrs
    return found, sorted(rungs)


def _finite(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def rung_column(steps: int) -> str:
    """The pairs frame's column of the PSNR at one rung."""
    return f"psnr_at_{steps}"


def pairs_frame(trials: pd.DataFrame, steps: int, sibling: optuna.Study | None,
                study: optuna.Study) -> pd.DataFrame:
    """One row per retrained trial of a study (``trials``: its :func:`trials_frame`):
    ``number``, ``brief_psnr``, ``brief_steps``, ``long_psnr``, ``gain`` (long - brief),
    ``on_brief_front``, the study's other objectives (from the source trial), and the PSNR at
    each of the study's rungs (:func:`rung_column`; NaN where the trial stopped before it).
    The rungs come from ``study`` (the source study ``trials`` was read from);
    ``attrs["rungs"]`` lists them."""
    import pandas as pd

    per_trial, rungs = rung_psnrs(study)

    done = retrains(sibling, steps)
    front = set(int(n) for n in pareto_front(trials)["number"]) if done else set()
    frame = trials.set_index("number")
    objectives = trials.attrs["objectives"]
    rows = []
    for number, retrain in sorted(done.items()):
        attrs = retrain.user_attrs
        row = {"number": number, "state": frame.loc[number, "state"],
               "arch_id": frame.loc[number, "arch_id"],
               "brief_psnr": float(attrs[BRIEF_PSNR]), "brief_steps": int(attrs[BRIEF_STEPS]),
               "long_psnr": float(retrain.value), "long_steps": steps,
               "on_brief_front": number in front}
        row["gain"] = row["long_psnr"] - row["brief_psnr"]
        for name, _ in objectives:
            if name != "psnr":
                row[name] = float(frame.loc[number, name])
        for rung in rungs:
            row[rung_column(rung)] = per_trial.get(number, {}).get(rung, math.nan)
        rows.append(row)
    columns = ["number", "state", "arch_id", "brief_psnr", "brief_steps", "long_psnr",
               "long_steps", "gain", "on_brief_front"] + [n for n, _ in objectives
                                                          if n != "psnr"]
    result = pd.DataFrame(rows, columns=columns + [rung_column(r) for r in rungs])
    for rung in rungs:
        result[rung_column(rung)] = result[rung_column(rung)].astype("float64")
    result.attrs["objectives"] = objectives
    result.attrs["study"] = ", ".join(trials.attrs.get("studies", []))
    result.attrs["steps"] = steps
    result.attrs["rungs"] = rungs
    return result


def _interval(x: Sequence[float], y: Sequence[float], statistic: Any,
              seed: int) -> tuple[float, float]:
    """Paired-bootstrap 95 % percentile interval of ``statistic(x, y)`` (scipy.stats)."""
    import numpy as np
    from scipy import stats

    def stat(a: np.ndarray, b: np.ndarray) -> float:
        return float(statistic(a, b).statistic)

    import warnings

    with warnings.catch_warnings():
        # A resample that repeats one trial throughout has no ranking: its statistic is NaN
        # (scipy warns). With 8 pairs that is rare; the interval ignores such resamples.
        warnings.simplefilter("ignore")
        result = stats.bootstrap((np.asarray(x), np.asarray(y)), stat, paired=True,
                                 vectorized=False, n_resamples=BOOTSTRAP_RESAMPLES,
                                 confidence_level=0.95, method="percentile",
                                 rng=np.random.default_rng(seed))
        low, high = result.confidence_interval
        if not (math.isfinite(low) and math.isfinite(high)):
            values = result.bootstrap_distribution
            values = values[np.isfinite(values)]
            low, high = np.percentile(values, [2.5, 97.5]) if values.size else (math.nan,) * 2
    return float(low), float(high)


def tau_interval(tau: float, n: int) -> tuple[float, float] | None:
    """The 95 % interval of a Kendall tau over ``n`` pairs (None below :data:`MIN_CI_PAIRS`):
    normal in Fisher's z = atanh(tau), with Fieller, Hartley and Pearson's (1957) variance
    0.437 / (n - 4), as Bonett and Wright (2000) use it for tau.

    Why this and not a bootstrap over trials: a rung that happens to rank its few trials
    perfectly makes every resample's tau 1 and the bootstrap interval [1, 1] (the report's
    "200 steps alone" line shows it), so a perfectly ordered rung of 4 trials would pass any
    threshold. Here the width depends on ``n`` alone, in z. A tau of +-1 has no z: it is taken
    as half a discordant pair short of it (1 - 2 / (n (n - 1))) for the bound towards 0, and
    the far bound is +-1. benchmarks/bench_tau_interval.py measures the lower bound's coverage
    under the bivariate normal: at a true tau of 0.5 it clears 0.5 in 2.5-6 % of samples of
    6-40 pairs (nominal 2.5 %); the variance under independence, 2(2n+5)/(9n(n-1)), never
    collapses either but cleared a true tau of 0.75 in 31 % of 24-pair samples (this: 84 %)."""
    if n < MIN_CI_PAIRS:
        return None
    near = 1.0 - 2.0 / (n * (n - 1))
    half = Z_95 * math.sqrt(0.437 / (n - 4))
    z = math.atanh(max(-near, min(near, tau)))
    low = -1.0 if tau <= -near else math.tanh(z - half)
    high = 1.0 if tau >= near else math.tanh(z + half)
    return low, high


def pairs_needed(tau: float, threshold: float = MIN_RUNG_TAU, limit: int = 100_000
                 ) -> int | None:
    """The fewest pairs at which a tau this large would have its lower bound at or above
    ``threshold`` (None: never, the tau itself is not above it)."""
    if not tau > threshold:
        return None
    for n in range(MIN_CI_PAIRS, limit):
        interval = tau_interval(tau, n)
        if interval is not None and interval[0] >= threshold:
            return n
    return None


def rung_agreement(pairs: pd.DataFrame, threshold: float = MIN_RUNG_TAU) -> list[dict[str, Any]]:
    """Per rung of the study (``pairs.attrs["rungs"]``): over the retrained trials that reached
    it, Kendall's tau between their PSNR there and their long PSNR, its interval, and whether
    its lower bound clears ``threshold``. Fewer than :data:`MIN_PAIRS` trials, or PSNRs all
    equal at the rung, give no tau, and ``note`` says why."""
    from scipy import stats

    found = []
    for rung in pairs.attrs.get("rungs") or []:
        reached = pairs[pairs[rung_column(rung)].notna()]
        n = len(reached)
        row: dict[str, Any] = {"steps": int(rung), "pairs": n, "kendall_tau": None,
                               "kendall_ci": None, "clears": False, "pairs_needed": None,
                               "note": None}
        at_rung = reached[rung_column(rung)].to_list()
        if n < MIN_PAIRS:
            row["note"] = (f"{n} retrained trial(s) reached this rung; a rank correlation "
                           f"needs at least {MIN_PAIRS}")
        elif len(set(at_rung)) < 2 or reached["long_psnr"].nunique() < 2:
            row["note"] = "the PSNRs are all equal here: no ranking to compare"
        else:
            tau = float(stats.kendalltau(at_rung, reached["long_psnr"].to_list()).statistic)
            interval = tau_interval(tau, n)
            row.update(kendall_tau=tau, kendall_ci=interval,
                       clears=interval is not None and interval[0] >= threshold)
            if interval is None:
                row["note"] = f"an interval needs at least {MIN_CI_PAIRS} pairs"
            if not row["clears"]:
                row["pairs_needed"] = pairs_needed(tau, threshold)
        found.append(row)
    return found


def recommend_min_steps(rungs: Sequence[Mapping[str, Any]], threshold: float = MIN_RUNG_TAU
                        ) -> dict[str, Any]:
    """The ``--min-steps`` for the next study: the lowest rung below the full budget (the
    last, largest steps value: ``--min-steps`` must be below ``--steps``) whose tau's lower
    bound clears ``threshold``; else None, and ``text`` says what would let one clear."""
    if not rungs:
        return {"min_steps": None, "text": "no rung recorded: nothing to recommend"}
    full = max(r["steps"] for r in rungs)
    below = sorted((r for r in rungs if r["steps"] < full), key=lambda r: r["steps"])
    clearing = [r for r in below if r["clears"]]
    bar = f"the 95% lower bound of tau >= {threshold:g}"
    if clearing:
        best = clearing[0]
        return {"min_steps": best["steps"], "text": (
            f"--min-steps {best['steps']}: the lowest rung where {bar} (tau "
            f"{best['kendall_tau']:+.2f}, lower bound {best['kendall_ci'][0]:+.2f}, "
            f"{best['pairs']} pairs)")}
    last = next(r for r in rungs if r["steps"] == full)
    parts = [f"no rung below {full} steps has {bar}" if below else
             f"the study has no rung below its {full} steps"]
    if last["clears"]:
        parts.append(f"the full {full} steps does (tau {last['kendall_tau']:+.2f})")
    hopeful = [r for r in below if r["pairs_needed"] is not None]
    if hopeful:
        r = hopeful[0]
        parts.append(f"rung {r['steps']} would with {r['pairs_needed']} pairs if its tau "
                     f"{r['kendall_tau']:+.2f} held (it has {r['pairs']}): retrain more "
                     "trials")
    elif below:
        parts.append(f"no rung below {full} steps has a tau above {threshold:g} itself: more "
                     "pairs would not change that; stop no trial that early (keep fifo or a "
                     "later --min-steps)")
    return {"min_steps": None, "text": "; ".join(parts)}


def top_k_overlap(brief: Sequence[float], long: Sequence[float], numbers: Sequence[int],
                  k: int) -> tuple[int, list[int], list[int]]:
    """How many of the top ``k`` by brief PSNR are also in the top ``k`` by long PSNR (ties
    broken by trial number), with both top-k lists."""
    order = sorted(range(len(numbers)), key=lambda i: (-brief[i], numbers[i]))
    long_order = sorted(range(len(numbers)), key=lambda i: (-long[i], numbers[i]))
    top_brief = [numbers[i] for i in order[:k]]
    top_long = [numbers[i] for i in long_order[:k]]
    return len(set(top_brief) & set(top_long)), top_brief, top_long


def agreement(pairs: pd.DataFrame, *, top_k: int = DEFAULT_TOP_K,
              seed: int = 0) -> dict[str, Any]:
    """The report's figures for one long budget (see the module docstring)."""
    from scipy import stats

    n = len(pairs)
    if n < MIN_PAIRS:
        raise StudyError("study", f"has {n} trial(s) retrained for {pairs.attrs.get('steps')} "
                         f"steps; a rank correlation needs at least {MIN_PAIRS}",
                         pairs.attrs.get("study"))
    brief = pairs["brief_psnr"].to_list()
    long = pairs["long_psnr"].to_list()
    numbers = [int(v) for v in pairs["number"]]
    tau = stats.kendalltau(brief, long)
    rho = stats.spearmanr(brief, long)
    k = min(top_k, n)
    overlap, top_brief, top_long = top_k_overlap(brief, long, numbers, k)
    objectives = pairs.attrs["objectives"]
    # The brief front's members among the retrained, and the front of the retrained trials
    # when the long PSNR replaces the brief one (the other objectives do not change).
    long_view = pairs.rename(columns={"long_psnr": "psnr"})
    long_front = [numbers[i] for i, keep in
                  enumerate(non_dominated(long_view, objectives)) if keep]
    brief_front = [v for v, on in zip(numbers, pairs["on_brief_front"], strict=True) if on]
    # Pruned trials bring PSNRs from earlier rungs: a ranking across budgets mixes learning
    # speed into it. Then the same figures among the trials measured at the full budget alone.
    full = int(pairs["brief_steps"].max())
    at_full = pairs[pairs["brief_steps"] == full]
    same_budget = None
    if len(at_full) < n and len(at_full) >= MIN_PAIRS:
        b, g = at_full["brief_psnr"].to_list(), at_full["long_psnr"].to_list()
        same_budget = {"brief_steps": full, "pairs": len(at_full),
                       "kendall_tau": float(stats.kendalltau(b, g).statistic),
                       "kendall_ci": _interval(b, g, stats.kendalltau, seed)}
    return {
        "pairs": n,
        "kendall_tau": float(tau.statistic), "kendall_p": float(tau.pvalue),
        "kendall_ci": _interval(brief, long, stats.kendalltau, seed),
        "spearman_rho": float(rho.statistic), "spearman_p": float(rho.pvalue),
        "spearman_ci": _interval(brief, long, stats.spearmanr, seed),
        "top_k": k, "top_k_overlap": overlap, "top_brief": top_brief, "top_long": top_long,
        "brief_front": brief_front,
        "brief_front_kept": [v for v in brief_front if v in long_front],
        "long_front": long_front,
        "mean_gain": float(pairs["gain"].mean()),
        "brief_steps": sorted({int(v) for v in pairs["brief_steps"]}),
        "same_budget": same_budget,
        **rung_figures(pairs),
    }


def rung_figures(pairs: pd.DataFrame, threshold: float = MIN_RUNG_TAU) -> dict[str, Any]:
    """The per-rung figures of the report: ``rungs`` (:func:`rung_agreement`), how their
    intervals are made, the threshold, and the ``recommendation``."""
    rungs = rung_agreement(pairs, threshold)
    return {"rungs": rungs, "rung_ci_method": RUNG_CI_METHOD, "rung_tau_threshold": threshold,
            "recommendation": recommend_min_steps(rungs, threshold)}


def rung_table_lines(figures: Mapping[str, Any]) -> list[str]:
    """The per-rung table of the text report, then the recommendation."""
    rungs = figures.get("rungs") or []
    if not rungs:
        return ["per rung: the study records no rung PSNRs"]
    lines = [f"per rung: Kendall tau of the PSNR there vs the long PSNR (95% CI: "
             f"{figures['rung_ci_method']}; clears: lower bound >= "
             f"{figures['rung_tau_threshold']:g})",
             f"{'steps':>6}  {'pairs':>5}  {'tau':>6}  {'95% CI':>13}  clears"]
    for r in rungs:
        tau = "-" if r["kendall_tau"] is None else f"{r['kendall_tau']:+.2f}"
        ci = "-" if r["kendall_ci"] is None else \
            f"{r['kendall_ci'][0]:+5.2f} .. {r['kendall_ci'][1]:+5.2f}"
        clears = "-" if r["kendall_tau"] is None else "yes" if r["clears"] else "no"
        said = [r["note"]] if r["note"] else []
        if r["pairs_needed"]:
            said.append(f"needs {r['pairs_needed']} pairs at this tau")
        lines.append((f"{r['steps']:>6}  {r['pairs']:>5}  {tau:>6}  {ci:>13}  {clears:<6}  "
                      + "; ".join(said)).rstrip())
    lines.append(f"recommendation: {figures['recommendation']['text']}")
    return lines


def rung_markdown(figures: Mapping[str, Any]) -> str:
    """The per-rung table as a pipe table, then the recommendation (``--format markdown``)."""
    import pandas as pd

    rows = [{"steps": r["steps"], "pairs": r["pairs"],
             "kendall_tau": None if r["kendall_tau"] is None else round(r["kendall_tau"], 3),
             "ci_low": None if r["kendall_ci"] is None else round(r["kendall_ci"][0], 3),
             "ci_high": None if r["kendall_ci"] is None else round(r["kendall_ci"][1], 3),
             "clears": r["clears"], "note": r["note"] or "",
             # blank, not nan, where none is needed or none would do
             "pairs_needed": "" if r["pairs_needed"] is None else str(r["pairs_needed"])}
            for r in figures.get("rungs") or []]
    table = pd.DataFrame(rows, columns=["steps", "pairs", "kendall_tau", "ci_low", "ci_high",
                                        "clears", "pairs_needed", "note"])
    return (table.to_markdown(index=False) + "\n\n"
            f"Recommendation: {figures['recommendation']['text']}\n")


def store_rung_fidelity(sibling: optuna.Study, steps: int, figures: Mapping[str, Any]) -> bool:
    """Keep the per-rung figures with the retrains (sibling attr ``rung_fidelity_<steps>``),
    for readers that do not recompute them; False when the storage refused the write (the
    report is still right: the figures follow from what the studies hold)."""
    from sqlalchemy import exc

    keys = ("rungs", "rung_ci_method", "rung_tau_threshold", "recommendation")
    value = {k: figures[k] for k in keys}
    value["rungs"] = [{**r, "kendall_ci": None if r["kendall_ci"] is None
                       else list(r["kendall_ci"])} for r in figures["rungs"]]
    try:
        sibling.set_user_attr(ATTR_RUNG_FIDELITY.format(steps=steps), value)
    except exc.SQLAlchemyError:
        return False
    return True


def stored_rung_fidelity(sibling: optuna.Study | None, steps: int) -> dict[str, Any] | None:
    """What :func:`store_rung_fidelity` kept for ``steps`` (None: nothing yet)."""
    if sibling is None:
        return None
    return sibling.user_attrs.get(ATTR_RUNG_FIDELITY.format(steps=steps))


def with_long_psnr(frame: pd.DataFrame, pairs: pd.DataFrame, steps: int,
                   brief_steps: int | None) -> pd.DataFrame:
    """``frame`` (a study's trials) with ``psnr`` replaced by the long-budget PSNR where a
    COMPLETE trial has one; ``psnr_steps`` says after how many training steps each row's PSNR
    was measured. A retrained PRUNED trial stays off the front: it never completed the
    search's schedule, so it is not ranked beside the trials that did."""
    import pandas as pd

    frame = frame.copy()
    long = dict(zip(pairs["number"], pairs["long_psnr"], strict=True))
    retrained = frame["number"].isin(list(long)) & (frame["state"] == "COMPLETE")
    frame.loc[retrained, "psnr"] = frame.loc[retrained, "number"].map(long)
    psnr_steps = pd.Series(brief_steps, index=frame.index, dtype="Int64")
    psnr_steps[retrained] = steps
    frame.insert(int(frame.columns.get_loc("psnr")) + 1, "psnr_steps", psnr_steps)
    frame.attrs = dict(frame.attrs)
    count = int(retrained.sum())
    earlier = "; ".join(frame.attrs.get("training") or ["as searched"])
    frame.attrs["training"] = [f"{steps} steps for the {count} retrained trial(s) (srnas "
                               f"fidelity), else {earlier}"]
    return frame


def report_lines(pairs: pd.DataFrame, figures: Mapping[str, Any], steps: int) -> list[str]:
    """The human-readable report: a table of pairs, then the agreement figures."""
    brief = "/".join(map(str, figures["brief_steps"]))
    lines = [f"study {pairs.attrs.get('study')!r}: {figures['pairs']} trials retrained for "
             f"{steps} steps, brief PSNR after {brief} steps",
             f"{'trial':>5}  {'brief dB':>8}  {'long dB':>8}  {'gain':>6}  front  arch_id"]
    for row in pairs.sort_values("long_psnr", ascending=False).itertuples():
        lines.append(f"{row.number:>5}  {row.brief_psnr:8.3f}  {row.long_psnr:8.3f}  "
                     f"{row.gain:+6.3f}  {'*' if row.on_brief_front else ' ':^5}  "
                     f"{row.arch_id}")
    f = figures
    lines += [
        f"Kendall tau {f['kendall_tau']:+.3f} (95% bootstrap CI {f['kendall_ci'][0]:+.2f} .. "
        f"{f['kendall_ci'][1]:+.2f}, p={f['kendall_p']:.3g})",
        f"Spearman rho {f['spearman_rho']:+.3f} (95% bootstrap CI {f['spearman_ci'][0]:+.2f} "
        f".. {f['spearman_ci'][1]:+.2f}, p={f['spearman_p']:.3g})",
        f"top-{f['top_k']} overlap: {f['top_k_overlap']}/{f['top_k']} (brief "
        f"{f['top_brief']}, long {f['top_long']})",
        f"brief front kept after retraining: {len(f['brief_front_kept'])}/"
        f"{len(f['brief_front'])} {f['brief_front_kept']} (front of the retrained with the "
        f"long PSNR: {f['long_front']})",
        f"mean PSNR gain {f['mean_gain']:+.3f} dB",
    ]
    if len(f["brief_steps"]) > 1:
        lines.append("note: the brief PSNRs come from different budgets (pruned trials at "
                     "their last rung); the correlation above mixes them")
    same = f.get("same_budget")
    if same:
        lines.append(f"among the {same['pairs']} trials measured after {same['brief_steps']} "
                     f"steps alone: Kendall tau {same['kendall_tau']:+.3f} (95% bootstrap CI "
                     f"{same['kendall_ci'][0]:+.2f} .. {same['kendall_ci'][1]:+.2f})")
    if "rungs" in f:
        lines += rung_table_lines(f)
    return lines


__all__ = ["MIN_RUNG_TAU", "Brief", "agreement", "brief_of", "briefs", "budgets_measured",
           "check_request", "find_sibling", "load_sibling", "pairs_frame", "pairs_needed",
           "recommend_min_steps", "report_lines", "retrains", "rung_agreement", "rung_column",
           "rung_figures", "rung_markdown", "rung_psnrs", "rung_table_lines", "select_trials",
           "store_rung_fidelity", "stored_rung_fidelity", "study_steps", "tau_interval",
           "top_k_overlap", "with_long_psnr"]
