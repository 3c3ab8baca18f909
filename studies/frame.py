"""Studies as pandas DataFrames: one row per trial, the columns of the study
contract (``srnas.space.contract``).

Read through Optuna's public API only (``optuna.load_study``, ``Study.get_trials``,
``FrozenTrial.constraints``); the storage's tables are Optuna's private business.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from srnas.space.contract import (
    ATTR_MEASUREMENT,
    DEFAULT_OBJECTIVES,
    MEASURE_COLUMNS,
    OBJECTIVE_DIRECTIONS,
    STATUS_INFEASIBLE,
)
from srnas.space.errors import StorageError, StudyError
from srnas.studies.measured import MEASURED_COLUMNS, measured_columns

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from optuna.storages import BaseStorage

Objectives = list[tuple[str, str]]  # [(name, "maximize" | "minimize"), ...]

# Columns before the measures and after them; searched parameters follow as p_<name>.
LEAD_COLUMNS = ("study", "number", "state", "status", "feasible", "arch_id")
# ``input_hw`` is the recorded latency/memory/FLOPs input as "HxW" text (e.g. "180x320").
# ``host``, ``node`` and ``gpu_ids`` say where the trial ran: the Ray node's IP address, its
# node id and the GPU ids Ray assigned it as text ("0", "0,1"; empty without a GPU).
# ``arch`` holds the recorded ArchConfig dict (for notebooks and JSON; too wide for a table).
# The measurement conditions (runtime, precision, target, where measured) follow ``device``.
TAIL_COLUMNS = ("device", *MEASURED_COLUMNS, "input_hw", "host", "node", "gpu_ids", "baseline",
                "datetime_complete", "arch")


def as_storage(storage: BaseStorage | str | None) -> BaseStorage:
    """A storage object as is; a URL (or None: the default) opened for reading."""
    if storage is None or isinstance(storage, str):
        from srnas.studies.storage import open_storage

        return open_storage(storage)
    return storage


def study_names(storage: BaseStorage | str | None) -> list[str]:
    """Names of the search studies in a storage (not the ``:fidelity`` siblings that hold
    retrains, see :mod:`srnas.studies.schema`); an empty storage is an error."""
    import optuna

    from srnas.studies.schema import is_fidelity_study

    store = as_storage(storage)
    names = sorted(n for n in optuna.get_all_study_names(store) if not is_fidelity_study(n))
    if not names:
        raise StorageError("storage", "is an empty storage: it holds no studies",
                           _storage_label(store))
    return names


def _storage_label(store: BaseStorage) -> str:
    from srnas.studies.storage import mask_url

    url = getattr(store, "url", None)
    return mask_url(url) if isinstance(url, str) else type(store).__name__


def load_study(name: str, storage: BaseStorage | str | None = None) -> optuna.Study:
    """Load a study by name; an unknown name is an error listing the studies that exist."""
    import optuna

    store = as_storage(storage)
    names = study_names(store)
    if name not in names:
        shown = ", ".join(names[:20]) + (f", ... ({len(names) - 20} more)"
                                         if len(names) > 20 else "")
        raise StudyError("study", f"no study of that name in {_storage_label(store)}; "
                         f"studies: {shown}", name)
    return optuna.load_study(study_name=name, storage=store)


def study_objectives(study: optuna.Study) -> Objectives:
    """Objective names and directions: Optuna's metric names, else srnas's ``objectives`` user
    attr, else the default objectives when the directions fit them, else ``value_<i>``."""
    from optuna.study import StudyDirection

    directions = ["maximize" if d == StudyDirection.MAXIMIZE else "minimize"
                  for d in study.directions]
    names = study.metric_names
    if names is None:
        recorded = study.user_attrs.get("objectives")
        if isinstance(recorded, list) and len(recorded) == len(directions):
            names = [str(item[0]) for item in recorded]
        elif len(directions) == len(DEFAULT_OBJECTIVES) and all(
                OBJECTIVE_DIRECTIONS[n] == d for n, d in zip(DEFAULT_OBJECTIVES, directions,
                                                              strict=True)):
            names = list(DEFAULT_OBJECTIVES)
        else:
            names = [f"value_{i}" for i in range(len(directions))]
    return list(zip(names, directions, strict=True))


def is_feasible(trial: optuna.trial.FrozenTrial) -> bool:
    """Optuna's rule (every constraint <= 0) plus srnas's own mark for untrained trials."""
    if trial.user_attrs.get("status") == STATUS_INFEASIBLE:
        return False
    return all(v <= 0 for v in trial.constraints.values())


def nested_attr(attrs: dict[str, Any], key: str) -> Any:
    """A dict-valued user attr such as ``arch`` or ``versions``, also when it was recorded
    flattened as ``arch/dim``, ``arch/scale``, ... (Ray flattens nested result dicts); None
    when absent."""
    value = attrs.get(key)
    if isinstance(value, dict):
        return value
    prefix = f"{key}/"
    flat = {k[len(prefix):]: v for k, v in attrs.items() if k.startswith(prefix)}
    return flat or value


def get_trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    """Trial ``number`` of ``study``, of any state: the one lookup of export, fidelity and
    ``--trial`` (a missing number is a one-line :class:`StudyError` on ``trial``)."""
    found = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in found:
        span = f"0..{max(found)}" if found else "none"
        raise StudyError("trial", f"study {study.study_name!r} has no trial of that number "
                         f"(trials: {span})", number)
    return found[number]


def require_arch(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The architecture ``trial`` recorded (user attr ``arch``), or a one-line error."""
    arch = nested_attr(trial.user_attrs, "arch")
    if not isinstance(arch, dict):
        raise StudyError("trial", f"trial {trial.number} records no architecture (user attr "
                         f"'arch') in study {study.study_name!r}", trial.number)
    return arch


def hw_text(value: Any) -> str | None:
    """A recorded ``input_hw`` ([h, w]) as "HxW"; None when absent or not two integers."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        return f"{int(value[0])}x{int(value[1])}"
    return None


def gpu_text(value: Any) -> str | None:
    """Recorded ``gpu_ids`` (["0", "1"]) as "0,1"; "" for a trial Ray gave no GPU; None when
    not recorded (a study from before the attr existed)."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def trial_row(trial: optuna.trial.FrozenTrial, study_name: str,
              objectives: Objectives) -> dict[str, Any]:
    attrs = trial.user_attrs
    row: dict[str, Any] = {
        "study": study_name,
        "number": trial.number,
        "state": trial.state.name,
        "status": attrs.get("status"),
        "feasible": is_feasible(trial),
        "arch_id": attrs.get("arch_id"),
    }
    for name in MEASURE_COLUMNS:
        row[name] = _number(attrs.get(name))
    # The objective values Optuna ranks by are authoritative for the objectives' columns.
    if trial.values is not None and len(trial.values) == len(objectives):
        for (name, _), value in zip(objectives, trial.values, strict=True):
            row[name] = _number(value)
    row["device"] = attrs.get("device")
    row.update(measured_columns(attrs))
    row["input_hw"] = hw_text(attrs.get("input_hw"))
    row["host"] = attrs.get("host")
    row["node"] = attrs.get("node")
    row["gpu_ids"] = gpu_text(attrs.get("gpu_ids"))
    row["baseline"] = attrs.get("baseline")
    row["datetime_complete"] = trial.datetime_complete
    row["arch"] = nested_attr(attrs, "arch")
    for key, value in trial.params.items():
        row[f"p_{key}"] = value
    return row


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """Every trial of a study, one row each (see ``LEAD_COLUMNS``, ``MEASURE_COLUMNS``,
    ``TAIL_COLUMNS`` and ``p_<param>``). ``frame.attrs`` holds ``objectives`` and ``studies``."""
    objectives = study_objectives(study)
    rows = [trial_row(t, study.study_name, objectives)
            for t in study.get_trials(deepcopy=False)]
    frame = _frame(rows, objectives, [study.study_name], training_text(study))
    return _with_references(frame, [study])


def _with_references(frame: pd.DataFrame, studies: Sequence[optuna.Study]) -> pd.DataFrame:
    """``frame.attrs``: ``bicubic`` (the recorded baseline; of several studies, the one with
    the highest PSNR: no front member may be below any of them) and ``reference`` (the fixed
    reference point, when every study records the same one; None otherwise)."""
    from srnas.studies.reference import bicubic_of, recorded_reference

    attrs = [s.user_attrs for s in studies]
    bicubics = [b for b in map(bicubic_of, attrs) if b is not None]
    frame.attrs["bicubic"] = max(bicubics, key=lambda b: b["psnr"]) if bicubics else None
    references = [recorded_reference(a) for a in attrs]
    same = all(r == references[0] for r in references)
    frame.attrs["reference"] = references[0] if references and same else None
    return frame


def training_text(study: optuna.Study) -> list[str]:
    """Under which training budget the study's PSNRs were measured, from the measurement
    settings it recorded at creation (none for studies made before they were recorded)."""
    m = study.user_attrs.get(ATTR_MEASUREMENT) or {}
    if "steps" not in m:
        return []
    cap = m.get("train_seconds")
    return [f"{m['steps']} steps ({m.get('scheduler', '?')})"
            + (f", capped at {cap:g} s" if cap else "")]


def _frame(rows: list[dict[str, Any]], objectives: Objectives,
           studies: Sequence[str], training: Sequence[str] = ()) -> pd.DataFrame:
    import pandas as pd

    measures = list(MEASURE_COLUMNS) + [n for n, _ in objectives if n not in MEASURE_COLUMNS]
    fixed = [*LEAD_COLUMNS, *measures, *TAIL_COLUMNS]
    params = sorted({k for row in rows for k in row if k.startswith("p_")})
    frame = pd.DataFrame(rows, columns=[*fixed, *params])
    for name in measures:
        frame[name] = frame[name].astype("float64")
    for name in ("params", "flops"):
        # Counts are integers; the nullable type keeps them so when some trials lack them.
        frame[name] = frame[name].round().astype("Int64")
    frame["feasible"] = frame["feasible"].astype(bool)
    frame.attrs["objectives"] = list(objectives)
    frame.attrs["studies"] = list(studies)
    frame.attrs["training"] = sorted(set(training))
    return frame


def merge_studies(studies: Sequence[optuna.Study]) -> pd.DataFrame:
    """One frame from several studies (``all_studies``): they must share their objectives;
    the same-device and same-input check is the front's job, since trials, not studies, carry
    them."""
    if not studies:
        raise StudyError("all_studies", "no study to merge", [])
    objectives = study_objectives(studies[0])
    rows: list[dict[str, Any]] = []
    for study in studies:
        theirs = study_objectives(study)
        if theirs != objectives:
            raise StudyError(
                "all_studies", f"studies must share their objectives; "
                f"{studies[0].study_name!r} has {_objectives_text(objectives)}, "
                f"{study.study_name!r} has {_objectives_text(theirs)}",
                [s.study_name for s in studies])
        rows += [trial_row(t, study.study_name, objectives)
                 for t in study.get_trials(deepcopy=False)]
    frame = _frame(rows, objectives, [s.study_name for s in studies],
                   [text for s in studies for text in training_text(s)])
    return _with_references(frame, studies)


def _objectives_text(objectives: Objectives) -> str:
    return ", ".join(f"{n} ({d[:3]})" for n, d in objectives)
