"""Text forms of study listings and fronts: an aligned table for people, Markdown for reports
(the table's cells under the same header, as a pipe table), CSV and JSON for programs (JSON
carries the hypervolume and reference point; CSV is rows only, so any CSV reader takes it).
Tables are laid out by ``tabulate``."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

# Units and cell formats of the objectives and measures: the objective registry's.
from srnas.space.objectives import OBJECTIVES, UNITS
from srnas.studies import reference as refs
from srnas.studies.measured import conditions_text, target_text

if TYPE_CHECKING:
    import pandas as pd

FORMATS_LIST = ("table", "csv", "json", "markdown")
FORMATS_FRONT = ("table", "csv", "json", "markdown")
PLACEMENT_COLUMNS = ("host", "node", "gpu_ids")
# Where latency and memory were measured (a target node's; else the same as the placement).
MEASURED_PLACEMENT = ("measured_host", "measured_node")
# Said once in the header when the same on every row (a front never mixes them).
CONDITION_COLUMNS = ("device", "measured_device", "input_hw", "runtime", "precision", "target")
NODE_ID_CHARS = 8  # a Ray node id is 56 hex digits; a table shows its start (as git does)
REFERENCE_RULE = ("worst feasible value pushed out by 10% of its range; a budget's bound for "
                  "its own measure")


# -- studies list -------------------------------------------------------------------------------
def list_json(summaries: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps(list(summaries), indent=2)


LIST_HEADER = ("study", "objectives", "complete", "running", "failed", "pruned", "infeasible",
               "best psnr", "devices", "last update", "retrained")
_LIST_RIGHT = {2, 3, 4, 5, 6, 7}  # the counts and the PSNR


def _list_rows(summaries: Sequence[Mapping[str, Any]]) -> list[Sequence[str]]:
    rows: list[Sequence[str]] = []
    for s in summaries:
        objectives = ", ".join(f"{n} ({d[:3]})" for n, d in s["objectives"])
        best = "-" if s["best_psnr"] is None else f"{s['best_psnr']:.3f}"
        rows.append((s["name"], objectives, *(str(s["trials"][k]) for k in
                     ("complete", "running", "failed", "pruned", "infeasible")), best,
                     "; ".join(s["devices"]) or "-", s["last_update"] or "-",
                     ", ".join(f"{n} at {steps} steps" for steps, n in
                               (s.get("fidelity") or {}).items()) or "-"))
    return rows


def list_table(summaries: Sequence[Mapping[str, Any]]) -> str:
    return _align([LIST_HEADER, *_list_rows(summaries)], right=_LIST_RIGHT)


def list_markdown(summaries: Sequence[Mapping[str, Any]]) -> str:
    """The table's cells as a Markdown pipe table."""
    return _markdown(_list_rows(summaries), LIST_HEADER, right=_LIST_RIGHT)


def list_csv(summaries: Sequence[Mapping[str, Any]]) -> str:
    """One row per study, the table's columns as plain values (counts as integers, the PSNR at
    full precision, lists joined by "; ")."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.replace(" ", "_") for c in LIST_HEADER])
    for s in summaries:
        writer.writerow([
            s["name"], "; ".join(f"{n} ({d})" for n, d in s["objectives"]),
            *(s["trials"][k] for k in ("complete", "running", "failed", "pruned", "infeasible")),
            "" if s["best_psnr"] is None else s["best_psnr"], "; ".join(s["devices"]),
            s["last_update"] or "", "; ".join(f"{n} at {steps} steps" for steps, n in
                                               (s.get("fidelity") or {}).items())])
    return out.getvalue()


def _align(rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """Columns two spaces apart, ``right`` ones right-aligned, no trailing blanks. The first
    row is passed as a row, not as tabulate's headers (which it would pad by two more)."""
    align = ["right" if i in right else "left" for i in range(len(rows[0]))]
    text = tabulate([list(r) for r in rows], tablefmt="plain", colalign=align,
                    disable_numparse=True)  # cells are formatted already: keep them as given
    return "\n".join(line.rstrip() for line in text.split("\n"))


def _markdown(rows: Sequence[Sequence[str]], header: Sequence[str], right: set[int]) -> str:
    """A pipe table (GitHub's): right-aligned columns marked so; a ``|`` in a cell escaped."""
    def escape(cells: Sequence[str]) -> list[str]:
        return [c.replace("|", "\\|") for c in cells]

    align = ["right" if i in right else "left" for i in range(len(header))]
    return tabulate([escape(r) for r in rows], headers=escape(header), tablefmt="pipe",
                    colalign=align, disable_numparse=True)


# -- pareto ---------------------------------------------------------------------------------------
def _visible_columns(front: pd.DataFrame) -> list[str]:
    """Drop what is constant or empty on every row and said once in the header instead."""
    skip = {"state", "feasible", "status", "datetime_complete", "arch"}
    if len(front.attrs.get("studies", [])) <= 1:
        skip.add("study")
    for name in CONDITION_COLUMNS:  # one device, input, runtime...: said in the header
        # No target is a value of its own ("local"); a device or input not recorded is none.
        if name in front and front[name].nunique(dropna=name != "target") <= 1:
            skip.add(name)
    # Where trials ran (host, Ray node, GPU ids) and where they were measured: shown when it
    # differs between rows.
    for group in (PLACEMENT_COLUMNS, MEASURED_PLACEMENT):
        placement = [n for n in group if n in front]
        if all(len({v for v in front[n] if isinstance(v, str) and v}) <= 1 for n in placement):
            skip.update(placement)
    columns = []
    for name in front.columns:
        if name in skip or (name not in ("number", "arch_id", "target")
                            and front[name].isna().all()):
            continue
        columns.append(name)
    return columns


# Measures that are not objectives but share one's format.
_FORMAT_OF = {"latency_iqr_ms": "latency_ms"}


def _cell(name: str, value: Any) -> str:
    if name == "target":
        return target_text(value)
    if value is None or (not isinstance(value, (str, dict, list)) and _isna(value)):
        return "-"
    objective = _FORMAT_OF.get(name, name)
    if objective in OBJECTIVES and not isinstance(value, (str, dict, list)):
        return OBJECTIVES.get(objective).display(value)
    if name in ("node", "measured_node"):
        return str(value)[:NODE_ID_CHARS]
    if name == "gpu_ids":
        return str(value) or "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _isna(value: Any) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def _number(value: float) -> str:
    return f"{value:.6g}" if math.isfinite(value) else str(value)


def front_header(front: pd.DataFrame, hv: float, reference: Mapping[str, float],
                 reference_given: bool, storage: str) -> list[str]:
    attrs = front.attrs
    objectives = attrs["objectives"]
    budgets = attrs.get("budgets") or {}
    budget_text = ", ".join(f"{k} <= {_number(v)}" for k, v in budgets.items()) or "none"
    devices = "; ".join(attrs.get("devices") or []) or "not recorded"
    inputs = ", ".join(attrs.get("inputs") or []) or "not recorded"
    training = "; ".join(attrs.get("training") or []) or "not recorded"
    units = " x ".join(UNITS.get(n, n) for n, _ in objectives)
    ref_text = ", ".join(f"{n}={_number(reference[n])}" for n, _ in objectives)
    below = attrs.get("below_bicubic") or []
    left_off = (f"; {_plural(len(below), 'feasible trial')} not above it left off the front "
                f"(below bicubic): {_shown(below)}" if below else "")
    return [
        f"study {', '.join(attrs['studies'])} ({storage}): {_plural(len(front), 'trial')} on the "
        f"Pareto front of {_plural(attrs['n_candidates'], 'feasible complete trial')}",
        f"objectives: {', '.join(f'{n} ({d[:3]})' for n, d in objectives)}; device: {devices}; "
        f"input: {inputs}; measured with: {measured_text(attrs)}; budgets: {budget_text}",
        f"psnr after training: {training}",
        refs.bicubic_text(attrs.get("bicubic")) + left_off,
        f"hypervolume: {_number(hv)} ({units}) at reference point {ref_text} "
        f"({reference_rule(front, reference_given)})",
    ]


def measured_text(attrs: Mapping[str, Any]) -> str:
    """How and where a front's latency and memory were measured: ``onnxruntime fp32 on target
    edge (trained on cpu: ...)``; where the trials trained only when that is another device."""
    text = conditions_text(attrs.get("runtimes") or [], attrs.get("precisions") or [],
                           attrs.get("targets") or [None])
    trained = attrs.get("trained_on") or []
    if trained and trained != (attrs.get("devices") or []):
        text += f" (trained on {'; '.join(trained)})"
    return text


def _shown(labels: Sequence[str], limit: int = 12) -> str:
    more = f", ... ({len(labels) - limit} more)" if len(labels) > limit else ""
    return ", ".join(labels[:limit]) + more


def reference_rule(front: pd.DataFrame, reference_given: bool) -> str:
    """Where the reference point came from, per objective: fixed with the study (bicubic, a
    budget, the first launch's bound) or, for a study that records none, today's moving rule,
    said so."""
    if reference_given:
        return "given with --reference-point"
    rules = front.attrs.get("reference_rules") or {}
    if not rules:
        return REFERENCE_RULE
    moving = [n for n, r in rules.items() if r == refs.RULE_MOVING]
    fixed = ", ".join(f"{n}: {r}" for n, r in rules.items() if r != refs.RULE_MOVING)
    if not moving:
        return f"fixed with the study; {fixed}"
    if not fixed:
        return f"{refs.NOT_RECORDED}: {refs.RULE_MOVING}"
    return f"{fixed}; {', '.join(moving)}: {refs.RULE_MOVING}, not yet fixed with the study"


HISTORY_HEADER = ("trials", "front", "hypervolume")


def history_lines(history: Sequence[Mapping[str, Any]], every: int,
                  markdown: bool = False) -> list[str]:
    """``srnas pareto --history``: the hypervolume after every ``every`` trials (a title line,
    a blank line in Markdown, then the table)."""
    rows = [(str(h["trials"]), str(h["front"]), _number(h["hypervolume"])) for h in history]
    title = (f"hypervolume after every {_plural(every, 'trial')} (trial order, the reference "
             "point above):")
    if markdown:
        return [title, "", _markdown(rows, HISTORY_HEADER, right={0, 1, 2})]
    return [title, _align([HISTORY_HEADER, *rows], right={0, 1, 2})]


def history_csv(history: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["trials", "front", "hypervolume"])
    for h in history:
        writer.writerow([h["trials"], h["front"], h["hypervolume"]])
    return out.getvalue()


def _front_rows(front: pd.DataFrame) -> tuple[list[str], list[list[str]], set[int]]:
    """The front's visible columns: their titles, the formatted cells, the numeric ones."""
    columns = _visible_columns(front)
    titles = ["trial" if c == "number" else c.removeprefix("p_") for c in columns]
    rows = [[_cell(c, record[c]) for c in columns]
            for record in front[columns].to_dict("records")]
    numeric = {i for i, c in enumerate(columns)
               if c == "number" or c in UNITS or front[c].dtype.kind in "iuf"}
    return titles, rows, numeric


def front_table(front: pd.DataFrame, header: Sequence[str]) -> str:
    titles, rows, numeric = _front_rows(front)
    return "\n".join([*header, "", _align([titles, *rows], right=numeric)])


def front_markdown(front: pd.DataFrame, header: Sequence[str]) -> str:
    """The table as Markdown: ``header`` (:func:`front_header`) as one paragraph of lines,
    then the front's cells as a pipe table."""
    titles, rows, numeric = _front_rows(front)
    notes = [f"{line}  " for line in header]  # two trailing blanks: a Markdown line break
    return "\n".join([*notes, "", _markdown(rows, titles, right=numeric)])


def front_csv(front: pd.DataFrame) -> str:
    return front.drop(columns=["arch"], errors="ignore").to_csv(index=False)


def front_json(front: pd.DataFrame, records: list[dict[str, Any]], hv: float,
               reference: Mapping[str, float], reference_given: bool, storage: str) -> str:
    attrs = front.attrs
    document = {
        "studies": attrs["studies"],
        "storage": storage,
        "objectives": [[n, d] for n, d in attrs["objectives"]],
        "budgets": attrs.get("budgets") or {},
        "device": attrs.get("device"),
        "devices": attrs.get("devices") or [],
        "trained_on": attrs.get("trained_on") or [],
        "input_hw": attrs.get("input_hw"),
        "inputs": attrs.get("inputs") or [],
        # The filters given (None: not filtered) and what the front was measured with.
        "runtime": attrs.get("runtime"),
        "runtimes": attrs.get("runtimes") or [],
        "precision": attrs.get("precision"),
        "precisions": attrs.get("precisions") or [],
        "target": attrs.get("target"),
        "targets": list(attrs.get("targets") or []),
        "measured_with": measured_text(attrs),
        "n_candidates": attrs["n_candidates"],
        "hypervolume": hv,
        "reference_point": dict(reference),
        "reference_rule": "given" if reference_given else reference_rule(front, False),
        "reference_rules": {} if reference_given else dict(attrs.get("reference_rules") or {}),
        "bicubic": attrs.get("bicubic"),
        "below_bicubic": list(attrs.get("below_bicubic") or []),
        "trials": records,
    }
    return json.dumps(document, indent=2)
