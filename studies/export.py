"""Export one trial's architecture as a config file that ``space.load_config`` reads back.

The file has two sections: ``arch`` (``ArchConfig.to_dict()``, the part space/ rebuilds) and
``provenance`` (where it came from, what was measured, and under which conditions:
``measured_with`` says the runtime, precision, device and node the latency and memory were
measured on, ``trained_on`` where the trial trained). Nothing secret goes in: the storage
URL is masked. The file is written atomically, so a reader never sees half of it.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from srnas.space.config import from_dict
from srnas.space.contract import BUDGET_KEYS, MEASURE_COLUMNS
from srnas.space.errors import ConfigError, StudyError
from srnas.studies.files import check_out_path, write_atomic
from srnas.studies.frame import (
    get_trial,
    hw_text,
    is_feasible,
    nested_attr,
    require_arch,
    study_objectives,
)
from srnas.studies.measured import LOCAL, measured_columns, target_text

if TYPE_CHECKING:
    import optuna

EXPORT_FORMAT = 1
_STATE_WORDS = {"FAIL": "failed", "RUNNING": "is still running", "WAITING": "is waiting to run",
                "PRUNED": "was pruned"}
SUFFIXES = (".yaml", ".yml", ".json")
# Recorded measurement context worth keeping next to the figures (the contract's trial level).
_CONTEXT_ATTRS = ("latency_cv", "dtype", "input_hw", "threads", "steps", "train_seconds",
                  "eval_seconds")
# How latency and memory were taken, as the trial recorded it (evaluators.runtime and
# search.target), beside the conditions every trial has (measured_columns).
_MEASURED_ATTRS = ("runtime_version", "runtime_check_max_abs_diff", "memory_method",
                   "measure_seconds", "measure_dispatch_seconds")


def measured_with(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Where and how a trial's latency and memory were measured (``runtime``, ``precision``,
    ``target``: None when measured where it trained, ``device``, ``host``, ``node``, and what
    the runtime recorded: its version, settings, threads, the check against PyTorch)."""
    columns = measured_columns(attrs)
    found: dict[str, Any] = {
        "runtime": columns["runtime"], "precision": columns["precision"],
        "target": columns["target"], "device": columns["measured_device"],
        "host": columns["measured_host"], "node": columns["measured_node"],
        "threads": attrs.get("threads"),
    }
    found.update({k: _plain(attrs[k]) for k in _MEASURED_ATTRS if k in attrs})
    settings = nested_attr(dict(attrs), "runtime_settings")
    if isinstance(settings, Mapping):
        found["runtime_settings"] = _plain(settings)
    return found


def _plain(value: Any) -> Any:
    """JSON/YAML-safe copy of a recorded value (non-finite floats become None)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return value


def _versions() -> dict[str, str]:
    from importlib import metadata

    found = {"python": sys.version.split()[0]}
    for name in ("srnas", "optuna"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "unknown"
    return found


def find_trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    """A COMPLETE trial by number; a missing, running, pruned or failed one is an error."""
    trial = get_trial(study, number)
    if trial.state.name != "COMPLETE":
        reason = trial.user_attrs.get("failure_reason") or trial.user_attrs.get(
            "infeasible_reason")
        why = f": {reason}" if reason else ""
        state = _STATE_WORDS.get(trial.state.name, trial.state.name.lower())
        raise StudyError("trial", f"trial {number} {state}{why}; only a complete trial can be "
                         f"exported", number)
    require_arch(study, trial)
    return trial


def export_document(study: optuna.Study, trial: optuna.trial.FrozenTrial, *,
                    storage_url: str | None = None,
                    selection: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``{"arch": ..., "provenance": ...}`` mapping for one trial (validated arch)."""
    from srnas.studies.storage import mask_url

    attrs = trial.user_attrs
    try:
        config = from_dict(nested_attr(attrs, "arch"), source=f"trial {trial.number} arch")
    except ConfigError as e:
        raise StudyError("trial", f"trial {trial.number} records an architecture that this "
                         f"srnas rejects: {e}", trial.number) from None
    objectives = study_objectives(study)
    measured = {name: _plain(attrs.get(name)) for name in MEASURE_COLUMNS if name in attrs}
    if trial.values is not None:
        measured.update({n: _plain(v) for (n, _), v in zip(objectives, trial.values,
                                                          strict=True)})
    provenance: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "study": study.study_name,
        "trial": trial.number,
        "storage": mask_url(storage_url) if storage_url else None,
        "arch_id": config.arch_id,
        "objectives": {n: d for n, d in objectives},
        "feasible": is_feasible(trial),
        "measured": measured,
        "device": attrs.get("device"),
        **{k: _plain(attrs[k]) for k in _CONTEXT_ATTRS if k in attrs},
        "measured_with": measured_with(attrs),
        "trained_on": {"device": attrs.get("device"), "host": attrs.get("host"),
                       "node": attrs.get("node")},
        "searched_params": _plain(trial.params),
        "versions": _plain(nested_attr(attrs, "versions") or {}),
        "exported_with": _versions(),
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    recorded_id = attrs.get("arch_id")
    if recorded_id and recorded_id != config.arch_id:
        # The config schema changed since the search: keep both ids so the trial stays findable.
        provenance["recorded_arch_id"] = recorded_id
    if attrs.get("baseline"):
        provenance["baseline"] = attrs["baseline"]
    if selection:
        provenance["selection"] = _plain(dict(selection))
    return {"arch": config.to_dict(), "provenance": provenance}


def render(document: Mapping[str, Any], path: Path) -> str:
    if path.suffix.lower() == ".json":
        return json.dumps(document, indent=2) + "\n"
    header = "# srnas architecture export: `arch` rebuilds the network, `provenance` is context\n"
    return header + yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False)


def _check_trial_fits(trial: optuna.trial.FrozenTrial, budgets: Mapping[str, float],
                      device: str | None, input_hw: Sequence[int] | str | None,
                      conditions: Mapping[str, str | None]) -> None:
    """With a trial number, budgets, ``device``, ``input_hw`` and the runtime, precision and
    target are checks on that trial, not filters."""
    from srnas.studies.front import check_input_hw

    for key, bound in budgets.items():
        value = trial.user_attrs.get(key)
        if not isinstance(value, (int, float)) or value > bound:
            raise StudyError(BUDGET_KEYS[key], f"trial {trial.number} has {key} {value} over "
                             f"the budget", bound)
    columns = measured_columns(trial.user_attrs)
    recorded = str(columns["measured_device"])
    if device and device.casefold() not in recorded.casefold():
        raise StudyError("device", f"trial {trial.number} was measured on {recorded!r}", device)
    columns["target"] = target_text(columns["target"])
    for key, how in (("runtime", "with"), ("precision", "at"), ("target", "on")):
        wanted = conditions.get(key)
        if wanted is not None and wanted != columns[key]:
            was = f"{how} {columns[key]}"
            if key == "target":
                was = ("where it trained (no target)" if columns[key] == LOCAL
                       else f"on target {columns[key]}")
            raise StudyError(key, f"trial {trial.number} was measured {was}", wanted)
    measured = hw_text(trial.user_attrs.get("input_hw"))
    if input_hw is not None and measured != check_input_hw(input_hw):
        raise StudyError("input_hw", f"trial {trial.number} was measured at input "
                         f"{measured or 'not recorded'}", input_hw)


def export_trial(study: optuna.Study, which: int | str, out: str | Path, *,
                 budgets: Mapping[str, float] | None = None, device: str | None = None,
                 input_hw: Sequence[int] | str | None = None,
                 storage_url: str | None = None, runtime: str | None = None,
                 precision: str | None = None, target: str | None = None) -> dict[str, Any]:
    """Write trial ``which`` (a number, or a pick such as ``"knee"`` on the front within
    ``budgets``, on ``device``, at ``input_hw``, by ``runtime`` at ``precision`` on ``target``)
    to ``out`` (.yaml/.yml/.json); returns what was written. A pick ranks trials measured under
    one set of conditions only: narrow a study that spans several with these.

    With a trial number, the budgets and conditions are a check: a trial outside them is an
    error.
    """
    from srnas.studies.front import PICKS, check_budgets, check_input_hw, pareto_front, pick

    if isinstance(which, str) and which not in PICKS:
        raise ConfigError("pick", f"must be one of {', '.join(PICKS)}", which)
    path = check_out_path(out, SUFFIXES)
    checked = check_budgets(budgets)
    wanted_hw = check_input_hw(input_hw)
    selection: dict[str, Any]
    conditions = {"runtime": runtime, "precision": precision, "target": target}
    if isinstance(which, str):
        front = pareto_front(study, budgets=checked, device=device, input_hw=input_hw,
                             **conditions)
        number = int(pick(front, which)["number"])
        selection = {"pick": which, "budgets": checked, "device": device,
                     "input_hw": wanted_hw, "front_size": len(front),
                     # The runtime, precision and target filters, where given.
                     **{k: v for k, v in conditions.items() if v is not None}}
    else:
        number = int(which)
        selection = {"trial": number}
    trial = find_trial(study, number)
    if isinstance(which, int):
        _check_trial_fits(trial, checked, device, input_hw, conditions)
    document = export_document(study, trial, storage_url=storage_url, selection=selection)
    write_atomic(path, render(document, path))
    return document
