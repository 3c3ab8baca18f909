"""The Python API for notebooks: Pareto fronts of srnas studies as pandas DataFrames.

    from studies.front import load_study, pareto_front, hypervolume, pick
    study = load_study("x4-h100", "sqlite:///srnas.db")
    front = pareto_front(study, budgets={"latency_ms": 20})
    hypervolume(front), pick(front, "knee")

The front is the set of feasible, non-dominated COMPLETE trials over the study's objectives
(Optuna's ``best_trials`` when no budget or device is given). Budgets are applied after the
fact and the front is recomputed over the trials within them; for a budget on an objective this
equals filtering the front, for a budget on another measure (e.g. params) it also admits trials
that were dominated only by trials over the budget, which is what "the best under X" means.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from space.errors import SrnasError
from studies.frame import (
    Objectives,
    load_study,
    merge_studies,
    study_names,
    study_objectives,
    trials_frame,
)
from studies.hv import hypervolume_min
from studies.schema import BUDGET_KEYS, MEASURE_COLUMNS, OBJECTIVE_DIRECTIONS

if TYPE_CHECKING:
    import numpy as np
    import optuna
    import pandas as pd

__all__ = [
    "PICKS",
    "SORT_KEYS",
    "check_budgets",
    "default_reference_point",
    "feasible_candidates",
    "hypervolume",
    "load_study",
    "merge_studies",
    "pareto_front",
    "pick",
    "select_device",
    "study_names",
    "study_objectives",
    "trials_frame",
]

PICKS = ("knee", "max-psnr", "min-latency", "min-memory")
SORT_KEYS = ("psnr", "latency_ms", "memory_mb")
# The reference point sits this fraction of the observed range beyond the worst value, so the
# trials that are worst in one objective still add volume.
REFERENCE_MARGIN = 0.1


def check_budgets(budgets: Mapping[str, float] | None) -> dict[str, float]:
    """Budgets as {measure: bound}, each measure one of ``BUDGET_KEYS``, each bound > 0."""
    checked: dict[str, float] = {}
    for key, value in (budgets or {}).items():
        if value is None:
            continue
        if key not in BUDGET_KEYS:
            raise SrnasError(f"budgets: must be among {', '.join(BUDGET_KEYS)} (got {key!r})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value <= 0:
            raise SrnasError(f"{BUDGET_KEYS[key]}: must be a positive number (got {value!r})")
        checked[key] = float(value)
    return checked


def _fmt_up(value: float) -> str:
    """A short decimal that is not below ``value``: a suggested budget must admit the trial."""
    short = f"{value:.6g}"
    return short if float(short) >= value else repr(float(value))


def _loss_matrix(frame: pd.DataFrame, objectives: Objectives) -> np.ndarray:
    import numpy as np

    columns = []
    for name, direction in objectives:
        values = frame[name].to_numpy(dtype=float, na_value=np.nan)
        loss = -values if direction == "maximize" else values
        # A missing (or non-finite, stored as missing) value counts as the worst possible, so
        # it can neither sneak onto the front nor knock a measured trial off it.
        columns.append(np.where(np.isnan(loss), np.inf, loss))
    return np.column_stack(columns) if columns else np.empty((len(frame), 0))


def _non_dominated(loss: np.ndarray) -> np.ndarray:
    """Mask of rows no other row dominates (<= everywhere, < somewhere); equal rows both stay,
    as in Optuna's ``best_trials``. Chunked so memory stays O(chunk x n)."""
    import numpy as np

    n = loss.shape[0]
    keep = np.ones(n, dtype=bool)
    for start in range(0, n, 512):
        block = loss[start:start + 512, None, :]  # (b, 1, d) against (1, n, d)
        no_worse = np.all(loss[None, :, :] <= block, axis=2)
        better = np.any(loss[None, :, :] < block, axis=2)
        keep[start:start + 512] = ~np.any(no_worse & better, axis=1)
    return keep


def select_device(frame: pd.DataFrame, device: str | None, merged: bool) -> pd.DataFrame:
    """Trials measured on ``device``: an exact (case-insensitive) match, else every device name
    containing it (``--device H100``). Latencies from different devices do not compare, so a
    merge of studies must come down to one device."""
    devices = sorted({str(d) for d in frame["device"].dropna()})
    if device is None:
        if merged and len(devices) > 1:
            raise SrnasError(f"--all-studies: merged trials were measured on {len(devices)} "
                             f"devices; choose one with --device: {'; '.join(devices)} "
                             f"(got no --device)")
        return frame
    wanted = device.casefold()
    exact = [d for d in devices if d.casefold() == wanted]
    matching = exact or [d for d in devices if wanted in d.casefold()]
    if not matching:
        raise SrnasError(f"--device: no feasible complete trial was measured on it; devices: "
                         f"{'; '.join(devices) or 'none recorded'} (got {device!r})")
    if merged and len(matching) > 1:
        raise SrnasError(f"--device: matches {len(matching)} devices, --all-studies needs "
                         f"one: {'; '.join(matching)} (got {device!r})")
    return frame[frame["device"].isin(matching)]


def _apply_budgets(frame: pd.DataFrame, budgets: dict[str, float],
                   context: str) -> pd.DataFrame:
    """Keep the trials within every budget, in the order given (the CLI's: latency, memory,
    params); when one empties the set, say which and the smallest bound that would have
    admitted a trial, with the earlier budgets still applied."""
    applied: list[str] = []
    for key, bound in budgets.items():
        flag = BUDGET_KEYS[key]
        values = frame[key].astype("float64")
        kept = frame[values.le(bound).fillna(False).to_numpy(dtype=bool)]
        if kept.empty:
            earlier = f" within {', '.join(applied)}" if applied else ""
            recorded = values.dropna()
            if recorded.empty:
                raise SrnasError(f"{flag}: no feasible trial{context}{earlier} records {key} "
                                 f"(got {bound:g})")
            raise SrnasError(
                f"{flag}: removed the last feasible trial{context}{earlier}; the smallest value "
                f"that admits one is {_fmt_up(float(recorded.min()))} (got {bound:g})")
        frame = kept
        applied.append(f"{flag} {bound:g}")
    return frame


def default_reference_point(candidates: pd.DataFrame, objectives: Objectives,
                            budgets: Mapping[str, float] | None = None,
                            margin: float = REFERENCE_MARGIN) -> dict[str, float]:
    """Per objective: a budget on it if given (the box the user asked about), else the worst
    value among ``candidates`` pushed ``margin`` x its observed range further out (x its
    magnitude when all values are equal, or 1 when they are all 0)."""
    reference: dict[str, float] = {}
    for name, direction in objectives:
        if budgets and name in budgets and direction == "minimize":
            reference[name] = float(budgets[name])
            continue
        values = candidates[name].astype("float64").dropna()
        if values.empty:
            raise SrnasError(f"reference point: no trial records {name} (got {len(candidates)} "
                             f"trials)")
        lo, hi = float(values.min()), float(values.max())
        spread = (hi - lo) or abs(hi) or 1.0
        reference[name] = lo - margin * spread if direction == "maximize" else hi + margin * spread
    return reference


def feasible_candidates(frame: pd.DataFrame, budgets: Mapping[str, float] | None = None,
                        device: str | None = None) -> pd.DataFrame:
    """The trials a front is drawn from: COMPLETE, feasible, on ``device``, within ``budgets``.
    Each filter that leaves nothing is an error saying why."""
    studies: list[str] = frame.attrs.get("studies", [])
    label = ", ".join(studies) or "the frame"
    complete = frame[frame["state"] == "COMPLETE"]
    if complete.empty:
        states = frame["state"].value_counts()
        words = {"FAIL": "failed", "RUNNING": "running", "WAITING": "waiting", "PRUNED": "pruned"}
        seen = ", ".join(f"{n} {words.get(s, s.lower())}" for s, n in states.items()) \
            or "no trials"
        raise SrnasError(f"study: {label} has no complete trial yet ({seen}) (got {label!r})")
    feasible = complete[complete["feasible"]]
    if feasible.empty:
        raise SrnasError(f"study: all {len(complete)} complete trials of {label} break the "
                         f"study's constraints, none is feasible (got {label!r})")
    on_device = select_device(feasible, device, merged=len(studies) > 1)
    context = f" on {device!r}" if device else ""
    return _apply_budgets(on_device, check_budgets(budgets), context)


def pareto_front(source: optuna.Study | pd.DataFrame, budgets: Mapping[str, float] | None = None,
                 device: str | None = None, sort: str = "psnr") -> pd.DataFrame:
    """Feasible non-dominated COMPLETE trials of a study (or of a frame from
    :func:`trials_frame` / :func:`merge_studies`), within ``budgets`` and on ``device``.

    ``front.attrs``: ``objectives``, ``studies``, ``budgets``, ``device``, ``n_candidates``
    (feasible complete trials within device and budgets) and ``reference_point`` (see
    :func:`default_reference_point`), which :func:`hypervolume` uses by default.
    """
    import pandas as pd

    frame = source if isinstance(source, pd.DataFrame) else trials_frame(source)
    objectives: Objectives = frame.attrs["objectives"]
    studies: list[str] = frame.attrs.get("studies", [])
    checked = check_budgets(budgets)
    sortable = tuple(dict.fromkeys(SORT_KEYS + MEASURE_COLUMNS))
    if sort not in sortable:
        raise SrnasError(f"--sort: must be one of {', '.join(sortable)} (got {sort!r})")

    candidates = feasible_candidates(frame, checked, device)
    front = candidates[_non_dominated(_loss_matrix(candidates, objectives))]
    ascending = OBJECTIVE_DIRECTIONS.get(sort, "minimize") == "minimize"
    front = front.sort_values([sort, "study", "number"], ascending=[ascending, True, True],
                              na_position="last", kind="stable").reset_index(drop=True)
    front.attrs = {
        "objectives": list(objectives),
        "studies": list(studies),
        "budgets": checked,
        "device": device,
        "devices": sorted({str(d) for d in front["device"].dropna()}),
        "n_candidates": len(candidates),
        "reference_point": default_reference_point(candidates, objectives, checked),
    }
    return front


def hypervolume(front: pd.DataFrame, reference_point: Mapping[str, float] | None = None,
                objectives: Objectives | None = None) -> float:
    """Hypervolume of ``front`` over its objectives, bounded by ``reference_point`` (default:
    the one :func:`pareto_front` chose). Units are the product of the objectives' units."""
    objectives = objectives or front.attrs["objectives"]
    reference = dict(reference_point or front.attrs["reference_point"])
    missing = [n for n, _ in objectives if n not in reference]
    if missing:
        raise SrnasError(f"reference point: needs a value for every objective; missing "
                         f"{', '.join(missing)} (got {reference!r})")
    ref = [-reference[n] if d == "maximize" else reference[n] for n, d in objectives]
    points = _loss_matrix(front, objectives).tolist()
    return hypervolume_min(points, ref)


def _first(front: pd.DataFrame, keys: list[tuple[str, bool]], how: str) -> pd.Series:
    main = keys[0][0]
    if main not in front or front[main].isna().all():
        raise SrnasError(f"--pick: {how} needs {main}, which no front trial records "
                         f"(got {how!r})")
    keys = [(column, ascending) for column, ascending in keys if column in front]
    ordered = front.sort_values([k for k, _ in keys] + ["study", "number"],
                                ascending=[a for _, a in keys] + [True, True],
                                na_position="last", kind="stable")
    return ordered.iloc[0]


def _knee(front: pd.DataFrame) -> pd.Series:
    """The trial closest (Euclidean) to the ideal point once every objective is min-max
    normalised over the front: a balanced compromise that does not depend on units."""
    import numpy as np

    loss = _loss_matrix(front, front.attrs["objectives"])
    lo, hi = loss.min(axis=0), loss.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    distance = np.sqrt((((loss - lo) / span) ** 2).sum(axis=1))
    order = np.lexsort((front["number"].to_numpy(), front["study"].to_numpy(), distance))
    return front.iloc[int(order[0])]


def pick(front: pd.DataFrame, how: str) -> pd.Series:
    """One trial of a front: ``knee`` (see :func:`_knee`), ``max-psnr`` (ties: lower latency),
    ``min-latency`` or ``min-memory`` (ties: higher PSNR); remaining ties: lowest trial."""
    if how not in PICKS:
        raise SrnasError(f"--pick: must be one of {', '.join(PICKS)} (got {how!r})")
    if front.empty:
        raise SrnasError(f"--pick: the front is empty (got {how!r})")
    if how == "knee":
        return _knee(front)
    keys = {
        "max-psnr": [("psnr", False), ("latency_ms", True)],
        "min-latency": [("latency_ms", True), ("psnr", False)],
        "min-memory": [("memory_mb", True), ("psnr", False)],
    }[how]
    return _first(front, keys, how)


def front_records(front: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain JSON-ready dicts (numpy scalars unwrapped, missing values as None)."""
    import pandas as pd

    records = []
    for row in front.to_dict("records"):
        plain: dict[str, Any] = {}
        for key, value in row.items():
            if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
                plain[key] = None
            elif hasattr(value, "isoformat"):
                plain[key] = value.isoformat()
            elif hasattr(value, "item"):
                plain[key] = value.item()
            else:
                plain[key] = value
        records.append(plain)
    return records
