"""The Python API for notebooks: Pareto fronts of srnas studies as pandas DataFrames.

    from srnas.studies.front import load_study, pareto_front, hypervolume, pick
    study = load_study("x4-h100", "sqlite:///srnas.db")
    front = pareto_front(study, budgets={"latency_ms": 20})
    hypervolume(front), pick(front, "knee")

The front is the set of feasible, non-dominated COMPLETE trials over the study's objectives
(Optuna's ``best_trials`` when no budget, device or input is given). Trials measured on
different devices or latency inputs, by different runtimes or precisions, or on different
target nodes do not compare: a study (or merge) whose candidates span more than one is refused
until ``device`` / ``input_hw`` / ``runtime`` / ``precision`` / ``target`` narrow it to one
(the conditions are :data:`srnas.studies.measured.MEASURED_COLUMNS`). Budgets are
applied after the fact and the front is recomputed over the trials within them; for a budget on
an objective this equals filtering the front, for a budget on another measure (e.g. params) it
also admits trials that were dominated only by trials over the budget, which is what "the best
under X" means.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from srnas.space.contract import BUDGET_KEYS, MEASURE_COLUMNS, OBJECTIVE_DIRECTIONS
from srnas.space.errors import ConfigError, StudyError
from srnas.studies import pareto
from srnas.studies import reference as refs
from srnas.studies.frame import (
    Objectives,
    hw_text,
    load_study,
    merge_studies,
    study_names,
    study_objectives,
    trials_frame,
)
from srnas.studies.measured import LOCAL, ensure_measured, target_text
from srnas.studies.picks import PICKS, SORT_KEYS

if TYPE_CHECKING:
    import numpy as np
    import optuna
    import pandas as pd

__all__ = [
    "PICKS",
    "SORT_KEYS",
    "check_budgets",
    "check_comparable",
    "check_input_hw",
    "default_reference_point",
    "feasible_candidates",
    "hypervolume",
    "hypervolume_history",
    "load_study",
    "loss_matrix",
    "merge_studies",
    "non_dominated",
    "pareto_front",
    "pick",
    "select_device",
    "select_input",
    "select_precision",
    "select_runtime",
    "select_target",
    "study_names",
    "study_objectives",
    "study_reference_point",
    "trials_frame",
]

REFERENCE_MARGIN = pareto.REFERENCE_MARGIN


def check_budgets(budgets: Mapping[str, float] | None) -> dict[str, float]:
    """Budgets as {measure: bound}, each measure one of ``BUDGET_KEYS``, each bound > 0."""
    checked: dict[str, float] = {}
    for key, value in (budgets or {}).items():
        if value is None:
            continue
        if key not in BUDGET_KEYS:
            raise ConfigError("budgets", f"must be among {', '.join(BUDGET_KEYS)}", key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value <= 0:
            raise ConfigError(BUDGET_KEYS[key], "must be a positive number", value)
        checked[key] = float(value)
    return checked


def _fmt_up(value: float) -> str:
    """A short decimal that is not below ``value``: a suggested budget must admit the trial."""
    short = f"{value:.6g}"
    return short if float(short) >= value else repr(float(value))


def loss_matrix(frame: pd.DataFrame, objectives: Objectives) -> np.ndarray:
    """The objectives of ``frame``'s rows as losses (see :func:`srnas.studies.pareto.losses`):
    a missing value counts as the worst possible, so it can neither sneak onto the front nor
    knock a measured trial off it."""
    import numpy as np

    if not objectives:
        return np.empty((len(frame), 0))
    names = [name for name, _ in objectives]
    values = frame[names].to_numpy(dtype=float, na_value=np.nan)
    return pareto.losses(values, [d == "maximize" for _, d in objectives])


def non_dominated(frame: pd.DataFrame, objectives: Objectives) -> np.ndarray:
    """Mask of ``frame``'s rows no other row dominates; equal rows both stay, as in Optuna's
    ``best_trials``."""
    return pareto.non_dominated(loss_matrix(frame, objectives))


def select_device(frame: pd.DataFrame, device: str | None) -> pd.DataFrame:
    """Trials whose latency and memory were measured on ``device`` (``measured_device``: the
    target node's device, else the one the trial trained on): an exact (case-insensitive)
    match, else every device name containing it (``device="H100"``). Latencies from different
    devices do not compare, so what is left must come down to one device (see
    :func:`check_comparable`)."""
    if device is None:
        return frame
    devices = _distinct(frame, "measured_device")
    wanted = device.casefold()
    exact = [d for d in devices if d.casefold() == wanted]
    matching = exact or [d for d in devices if wanted in d.casefold()]
    if not matching:
        raise StudyError("device", f"no feasible complete trial was measured on it; devices: "
                         f"{'; '.join(devices) or 'none recorded'}", device)
    return frame[frame["measured_device"].isin(matching)]


def _values(frame: pd.DataFrame, column: str) -> pd.Series:
    """A condition column as the filters and messages name it (no target: ``local``)."""
    return frame[column].map(target_text) if column == "target" else frame[column]


def _distinct(frame: pd.DataFrame, column: str) -> list[str]:
    """The distinct recorded values of a condition column, sorted (inputs: smallest first)."""
    if column == "input_hw":
        return _inputs(frame)
    return sorted({str(v) for v in _values(frame, column).dropna()})


def _select_exact(frame: pd.DataFrame, column: str, wanted: str | None, how: str
                  ) -> pd.DataFrame:
    if wanted is None:
        return frame
    kept = frame[(_values(frame, column) == wanted).to_numpy(dtype=bool)]
    if kept.empty:
        seen = _distinct(frame, column)
        raise StudyError(column, f"no feasible complete trial was measured {how} it; "
                         f"{column}s: {', '.join(seen) or 'none recorded'}", wanted)
    return kept


def select_runtime(frame: pd.DataFrame, runtime: str | None) -> pd.DataFrame:
    """Trials whose latency and memory ``runtime`` measured (``torch``: eager PyTorch, also
    every trial that records no runtime)."""
    return _select_exact(frame, "runtime", runtime, "with")


def select_precision(frame: pd.DataFrame, precision: str | None) -> pd.DataFrame:
    """Trials measured at ``precision`` (fp32 also for every trial that records none)."""
    return _select_exact(frame, "precision", precision, "at")


def select_target(frame: pd.DataFrame, target: str | None) -> pd.DataFrame:
    """Trials measured on target node ``target``; ``"local"``: those measured where they
    trained."""
    return _select_exact(frame, "target", target, "on")


def check_input_hw(input_hw: Sequence[int] | str | None) -> str | None:
    """``input_hw`` ((h, w), [h, w] or "HxW") as the "HxW" text the frame records; None stays
    None (no filter)."""
    if input_hw is None:
        return None
    text = hw_text(input_hw) if not isinstance(input_hw, str) else input_hw.strip().lower()
    parts = text.split("x") if text else []
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ConfigError("input_hw", "must be two positive integers (h, w), e.g. (180, 320)",
                          input_hw)
    return f"{int(parts[0])}x{int(parts[1])}"


def _inputs(frame: pd.DataFrame) -> list[str]:
    """The distinct recorded inputs ("HxW"), smallest first."""
    def key(text: str) -> tuple[int, ...]:
        parts = text.split("x")
        return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else ()

    return sorted({str(i) for i in frame["input_hw"].dropna()}, key=lambda t: (key(t), t))


def select_input(frame: pd.DataFrame, input_hw: Sequence[int] | str | None) -> pd.DataFrame:
    """Trials whose latency/memory/FLOPs input (user attr ``input_hw``) is ``input_hw``."""
    wanted = check_input_hw(input_hw)
    if wanted is None:
        return frame
    kept = frame[frame["input_hw"] == wanted]
    if kept.empty:
        inputs = _inputs(frame)
        raise StudyError("input_hw", f"no feasible complete trial was measured at it; inputs: "
                         f"{', '.join(inputs) or 'none recorded'}", input_hw)
    return kept


# The conditions a latency depends on: (column, what several are called, separator, the
# field and flag that narrow them).
_CONDITIONS = (
    ("measured_device", "devices", "; ", "device (--device NAME)"),
    ("input_hw", "latency inputs", ", ", "input_hw (--input HxW)"),
    ("runtime", "runtimes", ", ", "runtime (--runtime NAME)"),
    ("precision", "precisions", ", ", "precision (--precision P)"),
    ("target", "targets", ", ", f"target (--target NAME, or {LOCAL})"),
)


def check_comparable(frame: pd.DataFrame, field: str, label: str, value: object) -> None:
    """Refuse to rank trials measured on more than one device or latency input, by more than
    one runtime or precision, or on more than one target (or on one and where they trained):
    their figures do not compare. Trials that record no device (or no input) are no group of
    their own."""
    frame = ensure_measured(frame)
    mixed, narrow = [], []
    for column, noun, sep, how in _CONDITIONS:
        seen = _distinct(frame, column)
        if len(seen) > 1:
            mixed.append(f"{len(seen)} {noun} ({sep.join(seen)})")
            narrow.append(how)
    if mixed:
        raise StudyError(field, f"the feasible complete trials of {label} were measured on "
                         f"{' and '.join(mixed)}, whose figures do not compare; narrow them to "
                         f"one with {' and '.join(narrow)}", value)


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
                raise StudyError(flag, f"no feasible trial{context}{earlier} records {key}",
                                 bound)
            raise StudyError(
                flag, f"removed the last feasible trial{context}{earlier}; the smallest value "
                f"that admits one is {_fmt_up(float(recorded.min()))}", bound)
        frame = kept
        applied.append(f"{key} <= {bound:g}")
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
            raise StudyError("reference_point", f"has no default: none of the "
                             f"{len(candidates)} candidate trials records {name}")
        sign = -1.0 if direction == "maximize" else 1.0
        bound = pareto.reference_point(sign * values.to_numpy()[:, None], margin)[0]
        reference[name] = float(sign * bound)
    return reference


def study_reference_point(attrs: Mapping[str, Any], candidates: pd.DataFrame,
                          objectives: Objectives, budgets: Mapping[str, float] | None = None,
                          ) -> tuple[dict[str, float], dict[str, str]]:
    """(reference point, the rule each coordinate came from). Per objective: a budget given
    for it here (the box asked about), else the study's fixed reference point
    (``attrs["reference"]``, see :mod:`srnas.studies.reference`), else today's moving rule
    over ``candidates`` (:func:`default_reference_point`; rule :data:`refs.RULE_MOVING`)."""
    recorded = (attrs.get("reference") or {}).get("values") or {}
    recorded_rules = (attrs.get("reference") or {}).get("rules") or {}
    values: dict[str, float] = {}
    rules: dict[str, str] = {}
    moving = [(n, d) for n, d in objectives
              if not (budgets and n in budgets and d == "minimize") and n not in recorded]
    fallback = default_reference_point(candidates, moving) if moving else {}
    for name, direction in objectives:
        if budgets and name in budgets and direction == "minimize":
            values[name], rules[name] = float(budgets[name]), refs.RULE_BUDGET
        elif name in recorded:
            values[name] = float(recorded[name])
            rules[name] = recorded_rules.get(name, "recorded")
        else:
            values[name], rules[name] = fallback[name], refs.RULE_MOVING
    return values, rules


def feasible_candidates(frame: pd.DataFrame, budgets: Mapping[str, float] | None = None,
                        device: str | None = None,
                        input_hw: Sequence[int] | str | None = None, *,
                        runtime: str | None = None, precision: str | None = None,
                        target: str | None = None) -> pd.DataFrame:
    """The trials a front is drawn from: COMPLETE, feasible, on ``device``, at ``input_hw``,
    by ``runtime`` at ``precision`` on ``target`` (``"local"``: where each trained), measured
    under one of each (see :func:`check_comparable`), within ``budgets``. Each filter that
    leaves nothing is an error saying why."""
    frame = ensure_measured(frame)
    studies: list[str] = frame.attrs.get("studies", [])
    label = ", ".join(studies) or "the frame"
    merged = len(studies) > 1
    field, value = ("all_studies", list(studies)) if merged else ("study", label)
    complete = frame[frame["state"] == "COMPLETE"]
    if complete.empty:
        states = frame["state"].value_counts()
        words = {"FAIL": "failed", "RUNNING": "running", "WAITING": "waiting", "PRUNED": "pruned"}
        seen = ", ".join(f"{n} {words.get(s, s.lower())}" for s, n in states.items()) \
            or "no trials"
        raise StudyError(field, f"{label} has no complete trial yet ({seen})", value)
    feasible = complete[complete["feasible"]]
    if feasible.empty:
        raise StudyError(field, f"all {len(complete)} complete trials of {label} break the "
                         f"study's constraints, none is feasible", value)
    narrowed = select_input(select_device(feasible, device), input_hw)
    narrowed = select_target(select_precision(select_runtime(narrowed, runtime), precision),
                             target)
    check_comparable(narrowed, field, label, value)
    where = [f"on {device!r}"] if device else []
    where += [f"at input {check_input_hw(input_hw)}"] if input_hw is not None else []
    where += [f"with {runtime}"] if runtime else []
    where += [f"at {precision}"] if precision else []
    where += [f"on target {target}"] if target else []
    context = "".join(f" {w}" for w in where)
    return _apply_budgets(narrowed, check_budgets(budgets), context)


def pareto_front(source: optuna.Study | pd.DataFrame, budgets: Mapping[str, float] | None = None,
                 device: str | None = None, sort: str = "psnr",
                 input_hw: Sequence[int] | str | None = None, *, runtime: str | None = None,
                 precision: str | None = None, target: str | None = None) -> pd.DataFrame:
    """Feasible non-dominated COMPLETE trials of a study (or of a frame from
    :func:`trials_frame` / :func:`merge_studies`), within ``budgets``, on ``device``, at
    ``input_hw`` ((h, w) of the latency input), by ``runtime`` at ``precision`` and on
    ``target`` (``"local"``: measured where each trial trained). Trials measured under
    different conditions do not compare: when the candidates span more than one, narrow them
    with these (else a :class:`StudyError`).

    ``front.attrs``: ``objectives``, ``studies``, ``budgets``, the filters given (``device``,
    ``input_hw``, ``runtime``, ``precision``, ``target``) and what the trials were measured
    under (``devices``: where latency and memory were measured, ``trained_on``: where the
    trials trained, ``inputs``, ``runtimes``, ``precisions``, ``targets``: target names, None
    for measured where trained), ``n_candidates`` (feasible complete trials within the filters
    and budgets) and ``reference_point`` (see :func:`default_reference_point`), which
    :func:`hypervolume` uses by default.
    """
    import pandas as pd

    frame = source if isinstance(source, pd.DataFrame) else trials_frame(source)
    objectives: Objectives = frame.attrs["objectives"]
    studies: list[str] = frame.attrs.get("studies", [])
    checked = check_budgets(budgets)
    sortable = tuple(dict.fromkeys(SORT_KEYS + MEASURE_COLUMNS))
    if sort not in sortable:
        raise ConfigError("sort", f"must be one of {', '.join(sortable)}", sort)

    candidates = feasible_candidates(frame, checked, device, input_hw, runtime=runtime,
                                     precision=precision, target=target)
    # Bicubic costs next to nothing: a network not above its PSNR is dominated by it.
    bicubic = frame.attrs.get("bicubic")
    below = refs.below_bicubic(candidates["psnr"].to_numpy(dtype=float, na_value=float("nan")),
                              bicubic)
    judged = candidates[~below]
    front = judged[non_dominated(judged, objectives)]
    ascending = OBJECTIVE_DIRECTIONS.get(sort, "minimize") == "minimize"
    front = front.sort_values([sort, "study", "number"], ascending=[ascending, True, True],
                              na_position="last", kind="stable").reset_index(drop=True)
    shown = front if len(front) else candidates
    front.attrs = {
        "objectives": list(objectives),
        "studies": list(studies),
        "budgets": checked,
        "device": device,
        # An empty front (every candidate below bicubic) still says where they were measured.
        "devices": _distinct(shown, "measured_device"),
        "trained_on": _distinct(shown, "device"),
        "input_hw": check_input_hw(input_hw),
        "inputs": _inputs(shown),
        "runtime": runtime,
        "runtimes": _distinct(shown, "runtime"),
        "precision": precision,
        "precisions": _distinct(shown, "precision"),
        "target": target,
        "targets": sorted({t if isinstance(t, str) else None for t in shown["target"]},
                          key=lambda t: (t is not None, t or "")),
        "n_candidates": len(candidates),
        "training": list(frame.attrs.get("training", [])),
        "bicubic": bicubic,
        "below_bicubic": _labels(candidates[below], len(studies) > 1),
    }
    front.attrs["reference_point"], front.attrs["reference_rules"] = study_reference_point(
        frame.attrs, candidates, objectives, checked)
    return front


def _labels(rows: pd.DataFrame, merged: bool) -> list[str]:
    """Trials as the tables name them: ``#3`` (``study#3`` in a merge)."""
    return [f"{s}#{n}" if merged else f"#{n}" for s, n in zip(rows["study"], rows["number"],
                                                               strict=True)]


def hypervolume_history(frame: pd.DataFrame, every: int, reference: Mapping[str, float],
                        budgets: Mapping[str, float] | None = None, device: str | None = None,
                        input_hw: Sequence[int] | str | None = None,
                        **conditions: str | None) -> list[dict[str, Any]]:
    """Hypervolume of the front after every ``every`` trials in trial order (and after the
    last), at one ``reference`` point, so the figures compare: ``{"trials", "front",
    "hypervolume"}`` each. A prefix with no feasible complete trial yet has an empty front.
    ``conditions``: ``runtime``, ``precision``, ``target`` as :func:`pareto_front` takes them."""
    ordered = frame.sort_values(["study", "number"], kind="stable")
    total = len(ordered)
    cuts = list(range(every, total + 1, every))
    if not cuts or cuts[-1] != total:
        cuts.append(total)
    history = []
    for cut in cuts:
        prefix = ordered.iloc[:cut]
        prefix.attrs = dict(frame.attrs)
        try:
            front = pareto_front(prefix, budgets=budgets, device=device, input_hw=input_hw,
                                 **conditions)
        except StudyError:
            history.append({"trials": cut, "front": 0, "hypervolume": 0.0})
            continue
        history.append({"trials": cut, "front": len(front),
                        "hypervolume": hypervolume(front, reference)})
    return history


def hypervolume(front: pd.DataFrame, reference_point: Mapping[str, float] | None = None,
                objectives: Objectives | None = None) -> float:
    """Hypervolume of ``front`` over its objectives, bounded by ``reference_point`` (default:
    the one :func:`pareto_front` chose). Units are the product of the objectives' units."""
    objectives = objectives or front.attrs["objectives"]
    reference = dict(reference_point or front.attrs["reference_point"])
    missing = [n for n, _ in objectives if n not in reference]
    if missing:
        raise ConfigError("reference_point", f"needs a value for every objective; missing "
                          f"{', '.join(missing)}", reference)
    ref = [-reference[n] if d == "maximize" else reference[n] for n, d in objectives]
    return pareto.hypervolume(loss_matrix(front, objectives), ref)


def _first(front: pd.DataFrame, keys: list[tuple[str, bool]], how: str) -> pd.Series:
    main = keys[0][0]
    if main not in front or front[main].isna().all():
        raise StudyError("pick", f"{how} needs {main}, which no front trial records", how)
    keys = [(column, ascending) for column, ascending in keys if column in front]
    ordered = front.sort_values([k for k, _ in keys] + ["study", "number"],
                                ascending=[a for _, a in keys] + [True, True],
                                na_position="last", kind="stable")
    return ordered.iloc[0]


def _knee(front: pd.DataFrame) -> pd.Series:
    """The trial closest (Euclidean) to the ideal point once every objective is min-max
    normalised over the front: a balanced compromise that does not depend on units."""
    import numpy as np

    loss = loss_matrix(front, front.attrs["objectives"])
    lo, hi = loss.min(axis=0), loss.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    distance = np.sqrt((((loss - lo) / span) ** 2).sum(axis=1))
    order = np.lexsort((front["number"].to_numpy(), front["study"].to_numpy(), distance))
    return front.iloc[int(order[0])]


def pick(front: pd.DataFrame, how: str) -> pd.Series:
    """One trial of a front: ``knee`` (see :func:`_knee`), ``max-psnr`` (ties: lower latency),
    ``min-latency`` or ``min-memory`` (ties: higher PSNR); remaining ties: lowest trial."""
    if how not in PICKS:
        raise ConfigError("pick", f"must be one of {', '.join(PICKS)}", how)
    if front.empty:
        below = front.attrs.get("below_bicubic") or []
        why = (f": all {len(below)} feasible complete trials are not above bicubic's PSNR "
               "(below bicubic)" if below else "")
        raise StudyError("pick", f"the front is empty{why}", how)
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
