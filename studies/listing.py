"""One summary per study of a storage: what ``srnas studies list`` shows."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from srnas.space.contract import STATUS_INFEASIBLE
from srnas.studies.frame import as_storage, is_feasible, study_names, study_objectives
from srnas.studies.schema import FIDELITY_SUFFIX, is_fidelity_study, is_sibling_of

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

STATE_KEYS = ("complete", "running", "failed", "pruned", "infeasible")


def _bucket(trial: optuna.trial.FrozenTrial) -> str:
    """complete = COMPLETE and feasible; infeasible = broke a constraint (or was stopped before
    training for it), whatever state the search left it in; the rest by Optuna state."""
    state = trial.state.name
    if state in ("RUNNING", "WAITING"):
        return "running"
    if state == "FAIL":
        return "failed"
    if trial.user_attrs.get("status") == STATUS_INFEASIBLE or (
            state == "COMPLETE" and not is_feasible(trial)):
        return "infeasible"
    return "complete" if state == "COMPLETE" else "pruned"


def summarize(study: optuna.Study) -> dict[str, Any]:
    objectives = study_objectives(study)
    counts = dict.fromkeys(STATE_KEYS, 0)
    best_psnr: float | None = None
    devices: set[str] = set()
    last: datetime | None = None
    psnr_index = next((i for i, (n, _) in enumerate(objectives) if n == "psnr"), None)
    for trial in study.get_trials(deepcopy=False):
        bucket = _bucket(trial)
        counts[bucket] += 1
        if trial.user_attrs.get("device"):
            devices.add(str(trial.user_attrs["device"]))
        stamps = [t for t in (trial.datetime_complete, trial.datetime_start) if t is not None]
        if stamps and (last is None or max(stamps) > last):
            last = max(stamps)
        if bucket == "complete":
            psnr = trial.values[psnr_index] if psnr_index is not None and trial.values \
                else trial.user_attrs.get("psnr")
            if isinstance(psnr, (int, float)) and (best_psnr is None or psnr > best_psnr):
                best_psnr = float(psnr)
    return {
        "name": study.study_name,
        "objectives": [[n, d] for n, d in objectives],
        "trials": counts,
        "best_psnr": best_psnr,
        "devices": sorted(devices),
        "last_update": last.isoformat(timespec="seconds") if last else None,
    }


def list_studies(storage: BaseStorage | str | None = None) -> list[dict[str, Any]]:
    """Summaries of every study, by name; an empty storage is an error.

    A study named like a sibling (``X:fidelity``) that `srnas fidelity` did not make is listed
    as a study of its own, and not counted as retrains of ``X``."""
    import optuna

    from srnas.studies.fidelity import budgets_measured, find_sibling, retrains

    store = as_storage(storage)
    names = study_names(store)
    summaries = []
    for name in names:
        summary = summarize(optuna.load_study(study_name=name, storage=store))
        # Retrains of `srnas fidelity` live in a sibling study: shown with their source.
        sibling = find_sibling(name, store)
        if sibling is not None and not is_sibling_of(sibling.user_attrs, name):
            sibling = None
        summary["fidelity"] = {str(steps): len(retrains(sibling, steps))
                               for steps in budgets_measured(sibling)}
        summaries.append(summary)
    for name in _impostors(store):
        summary = summarize(optuna.load_study(study_name=name, storage=store))
        summaries.append({**summary, "fidelity": {}})
    return sorted(summaries, key=lambda s: s["name"])


def _impostors(store: BaseStorage) -> list[str]:
    """Studies named like a sibling that srnas did not make (e.g. by Optuna directly)."""
    import optuna

    found = []
    for summary in optuna.get_all_study_summaries(store, include_best_trial=False):
        name = summary.study_name
        if not is_fidelity_study(name):
            continue
        source = name[: -len(FIDELITY_SUFFIX)]
        if not is_sibling_of(summary.user_attrs, source):
            found.append(name)
    return found
