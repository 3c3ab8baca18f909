"""Under which conditions a trial's latency and memory were measured: the runtime, its
precision, and where (the target node, or the node the trial trained on).

A trial measured by a runtime or on a target node records ``runtime``, ``precision`` and, on a
target, ``target`` and ``measured_device`` / ``measured_host`` / ``measured_node`` beside its
own ``device`` / ``host`` / ``node`` (where it trained; see ``srnas.space.contract``). A trial
measured by eager PyTorch fp32 where it trained records none of them, nor did any trial of a
study made before runtimes existed: it reads as torch, fp32, no target, measured where it
trained.

The frame columns (:data:`MEASURED_COLUMNS`) are always filled for a measured trial, so the
front's filters and its comparability check read one column each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

# What a trial that records no runtime was measured with: evaluate's own measurement (the
# defaults of srnas.evaluators.runtime_names; studies imports no evaluators code).
DEFAULT_RUNTIME, DEFAULT_PRECISION = "torch", "fp32"
# --target's word for "measured where the trial trained" (no target node).
LOCAL = "local"
MEASURED_COLUMNS = ("runtime", "precision", "target", "measured_device", "measured_host",
                    "measured_node")


def measured_columns(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's :data:`MEASURED_COLUMNS` from its user attrs (defaults for older trials)."""
    target = attrs.get("target")
    return {
        "runtime": attrs.get("runtime") or DEFAULT_RUNTIME,
        "precision": attrs.get("precision") or DEFAULT_PRECISION,
        "target": target if isinstance(target, str) and target else None,
        # No target: measured where it trained.
        "measured_device": attrs.get("measured_device") or attrs.get("device"),
        "measured_host": attrs.get("measured_host") or attrs.get("host"),
        "measured_node": attrs.get("measured_node") or attrs.get("node"),
    }


def ensure_measured(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as is when it has the columns; else (a frame read without them) every trial as
    an older study's: torch, fp32, measured where it trained."""
    if all(name in frame for name in MEASURED_COLUMNS):
        return frame
    n = len(frame)
    return _insert(frame, {
        "runtime": [DEFAULT_RUNTIME] * n, "precision": [DEFAULT_PRECISION] * n,
        "target": [None] * n, "measured_device": list(frame["device"]),
        "measured_host": list(frame["host"]), "measured_node": list(frame["node"])})


def _insert(frame: pd.DataFrame, columns: dict[str, list[Any]]) -> pd.DataFrame:
    out = frame.drop(columns=[c for c in columns if c in frame])
    at = list(out.columns).index("device") + 1 if "device" in out else len(out.columns)
    for offset, (name, values) in enumerate(columns.items()):
        out.insert(at + offset, name, values)
    out.attrs = dict(frame.attrs)
    return out


def target_text(target: object) -> str:
    """A recorded target as ``--target`` names it (:data:`LOCAL` for none: None or NaN, as
    pandas may hold a missing value)."""
    return target if isinstance(target, str) and target else LOCAL


def conditions_text(runtimes: Sequence[str], precisions: Sequence[str],
                    targets: Sequence[str | None]) -> str:
    """``onnxruntime fp32 on target edge`` / ``torch fp32 where each trial trained``."""
    what = f"{'/'.join(runtimes) or DEFAULT_RUNTIME} {'/'.join(precisions) or DEFAULT_PRECISION}"
    named = [t for t in targets if t]
    if not named:
        return f"{what} where each trial trained"
    where = f"on target {', '.join(named)}"
    mixed = " and where each trial trained" if None in targets else ""
    return f"{what} {where}{mixed}"


__all__ = ["DEFAULT_PRECISION", "DEFAULT_RUNTIME", "LOCAL", "MEASURED_COLUMNS",
           "conditions_text", "ensure_measured", "measured_columns", "target_text"]
