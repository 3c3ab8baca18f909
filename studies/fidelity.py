"""How far a study's brief-training ranking holds after longer training.

Reads a study and its sibling ``STUDY:fidelity`` (see :mod:`srnas.studies.schema`): which
trials to retrain, the (brief, long) PSNR pairs, and the agreement between the two rankings --
Kendall's tau and Spearman's rho with paired-bootstrap 95 % intervals (scipy.stats), the
overlap of the top k, and whether the brief front's members stay non-dominated when the long
PSNR replaces the brief one. No torch and no Ray: the retraining itself is search/'s job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from srnas.space.contract import ATTR_MEASUREMENT
from srnas.space.errors import ConfigError, StudyError
from srnas.studies.frame import get_trial, nested_attr, require_arch, study_objectives
from srnas.studies.front import non_dominated, pareto_front
from srnas.studies.schema import (
    BRIEF_PSNR,
    BRIEF_STEPS,
    SOURCE_TRIAL,
    STEPS,
    fidelity_study_name,
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
    """The study's ``:fidelity`` sibling in ``storage``, if a retrain ever ran."""
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


def pairs_frame(trials: pd.DataFrame, steps: int, sibling: optuna.Study | None) -> pd.DataFrame:
    """One row per retrained trial of a study (``trials``: its :func:`trials_frame`):
    ``number``, ``brief_psnr``, ``brief_steps``, ``long_psnr``, ``gain`` (long - brief),
    ``on_brief_front``, and the study's other objectives (from the source trial)."""
    import pandas as pd

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
        rows.append(row)
    columns = ["number", "state", "arch_id", "brief_psnr", "brief_steps", "long_psnr",
               "long_steps", "gain", "on_brief_front"] + [n for n, _ in objectives
                                                          if n != "psnr"]
    result = pd.DataFrame(rows, columns=columns)
    result.attrs["objectives"] = objectives
    result.attrs["study"] = ", ".join(trials.attrs.get("studies", []))
    result.attrs["steps"] = steps
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
    }


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
    return lines


__all__ = ["Brief", "agreement", "brief_of", "briefs", "budgets_measured", "check_request",
           "load_sibling", "pairs_frame", "report_lines", "retrains", "select_trials",
           "study_steps", "top_k_overlap", "with_long_psnr"]
