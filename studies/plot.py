"""PSNR against latency for a study: PNG (matplotlib, Agg) or interactive HTML (plotly).

Every complete trial is a point; memory is the colour; the Pareto front (over all the study's
objectives) is highlighted, and its PSNR-latency envelope is drawn as a staircase joining the
front trials that are non-dominated in those two measures alone (joining every front trial in
latency order would zigzag, since memory keeps some of them on the front). Baseline trials
(user attr ``baseline``) carry their preset name. The study's bicubic baseline is a
horizontal line at its PSNR (and a point at its latency as an upsampling, when that was timed on
the same device); trials not above it are drawn apart, marked ``below bicubic``: none is ever
on the front.

Every plot says where and how its latencies were measured: the device, the input, the runtime
and precision, and the target node (else: where each trial trained), in its title and on its
latency axis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srnas.space.blocks import BLOCKS
from srnas.space.errors import StudyError
from srnas.studies.files import check_out_path, write_atomic
from srnas.studies.front import (
    feasible_candidates,
    hypervolume,
    pareto_front,
    trials_frame,
)
from srnas.studies.measured import conditions_text, ensure_measured, target_text
from srnas.studies.reference import RULE_MOVING, below_bicubic

if TYPE_CHECKING:
    import optuna
    import pandas as pd

SUFFIXES = (".png", ".html")


def check_plot_out(out: str | Path, field: str = "out") -> Path:
    """``out`` for a plot: .png or .html in an existing, writable folder."""
    return check_out_path(out, SUFFIXES, field)


def arch_summary(arch: Any) -> str:
    """One line for a hover: block type, width, kernel, blocks x layers, split, window."""
    if not isinstance(arch, Mapping):
        return "?"
    parts = [str(arch.get("block_type", "?"))]
    # The block type's own words (MiLK: its dictionary and gate); a type not registered in
    # this process (a plug-in's study read elsewhere) shows by name alone.
    block = BLOCKS.get(arch["block_type"]) if arch.get("block_type") in BLOCKS else None
    if block is not None and block.summary is not None:
        parts.append(block.summary(arch))
    parts += [f"dim {arch.get('dim')}", f"k {arch.get('kernel_size')}",
              f"{arch.get('n_blocks')}x{arch.get('conv_layers')} blocks",
              f"split {arch.get('split_ratio')}"]
    flags = arch.get("window_attn")
    if isinstance(flags, list):
        parts.append(f"window {arch.get('window_size')} in {sum(flags)}/{len(flags)} blocks")
    else:
        parts.append(f"window {arch.get('window_size')}" if flags else "no window")
    return ", ".join(parts)


def envelope(front: pd.DataFrame) -> pd.DataFrame:
    """Front trials non-dominated in (PSNR up, latency down) alone, by latency."""
    ordered = front.dropna(subset=["psnr", "latency_ms"]).sort_values(
        ["latency_ms", "psnr"], ascending=[True, False])
    keep, best = [], float("-inf")
    for index, psnr in ordered["psnr"].items():
        if psnr > best:
            keep.append(index)
            best = psnr
    return ordered.loc[keep]


def plot_layers(source: optuna.Study | pd.DataFrame, budgets: Mapping[str, float] | None,
            device: str | None, input_hw: Sequence[int] | str | None,
            conditions: Mapping[str, str | None],
            ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    """(others, candidates, front, title): trials outside budgets/constraints are the grey
    'others'; candidates are what the front was drawn from. Trials of another device, input,
    runtime, precision or target are left out: their latencies do not compare."""
    import pandas as pd

    frame = ensure_measured(source if isinstance(source, pd.DataFrame)
                            else trials_frame(source))
    front = pareto_front(frame, budgets=budgets, device=device, input_hw=input_hw,
                         **conditions)
    candidates = feasible_candidates(frame, budgets, device, input_hw, **conditions)
    complete = frame[frame["state"] == "COMPLETE"].dropna(subset=["psnr", "latency_ms"])
    if complete.empty:
        raise StudyError("study", "no complete trial records psnr and latency_ms, which the "
                         "plot needs", ", ".join(frame.attrs["studies"]))
    # Grey points too must share the candidates' measurement conditions (where recorded).
    for column in ("measured_device", "input_hw", "runtime", "precision"):
        kept = set(candidates[column].dropna())
        if kept:
            complete = complete[complete[column].isin(kept) | complete[column].isna()]
    # No target ("local": measured where it trained) is a condition of its own.
    targets = set(candidates["target"].map(target_text))
    complete = complete[complete["target"].map(target_text).isin(targets)]
    keys = set(zip(candidates["study"], candidates["number"], strict=True))
    inside = [(s, n) in keys for s, n in zip(complete["study"], complete["number"], strict=True)]
    others = complete[[not x for x in inside]]
    reference = front.attrs["reference_point"]
    hv = hypervolume(front)
    ref_text = ", ".join(f"{k}={v:.4g}" for k, v in reference.items())
    fixed = all(r != RULE_MOVING for r in (front.attrs.get("reference_rules") or {}).values())
    ref_text += " fixed with the study" if fixed else " (not fixed with the study)"
    where = "; ".join(front.attrs["devices"]) or "an unrecorded device"
    if front.attrs.get("inputs"):
        where += f" at input {', '.join(front.attrs['inputs'])}"
    where += f", {measured_label(front.attrs)}"
    title = (f"{', '.join(frame.attrs['studies'])} on {where}: {len(front)} front trials of "
             f"{len(candidates)}; hypervolume {hv:.4g} at ({ref_text})")
    below = front.attrs.get("below_bicubic") or []
    if below:
        title += f"; {len(below)} below bicubic"
    return others, candidates.dropna(subset=["psnr", "latency_ms"]), front, title


def measured_label(attrs: Mapping[str, Any]) -> str:
    """``onnxruntime fp32 on target edge``: the runtime, precision and target of a front."""
    return conditions_text(attrs.get("runtimes") or [], attrs.get("precisions") or [],
                           attrs.get("targets") or [None])


def plot_front(source: optuna.Study | pd.DataFrame, out: str | Path, *,
               budgets: Mapping[str, float] | None = None, device: str | None = None,
               input_hw: Sequence[int] | str | None = None, runtime: str | None = None,
               precision: str | None = None, target: str | None = None) -> Path:
    """Write the plot to ``out`` (.png or .html) and return its path; ``budgets``, ``device``,
    ``input_hw``, ``runtime``, ``precision`` and ``target`` narrow the trials as in
    :func:`studies.front.pareto_front`."""
    path = check_plot_out(out)
    conditions = {"runtime": runtime, "precision": precision, "target": target}
    others, candidates, front, title = plot_layers(source, budgets, device, input_hw, conditions)
    bicubic = front.attrs.get("bicubic")
    below = below_bicubic(candidates["psnr"].to_numpy(dtype=float), bicubic)
    layers = Layers(others, candidates[~below], candidates[below], front, bicubic,
                    _same_device(bicubic, front))
    if path.suffix.lower() == ".png":
        _png(path, layers, title, budgets or {})
    else:
        _html(path, layers, title, budgets or {})
    return path


@dataclass
class Layers:
    """What a plot draws: the grey ``others``, the feasible trials above bicubic and below
    it, the front, and bicubic itself (``bicubic_point``: its latency is comparable, i.e. it
    was timed on the front's device at its input)."""

    others: pd.DataFrame
    candidates: pd.DataFrame
    below: pd.DataFrame
    front: pd.DataFrame
    bicubic: dict[str, Any] | None
    bicubic_point: bool

    @property
    def latency_axis(self) -> str:
        """The latency axis says what timed it: ``latency (ms, median; onnxruntime fp32)``."""
        attrs = self.front.attrs
        runtime = f"{'/'.join(attrs.get('runtimes') or ['?'])} " \
                  f"{'/'.join(attrs.get('precisions') or ['?'])}"
        return f"latency (ms, median; {runtime})"


def _same_device(bicubic: Mapping[str, Any] | None, front: pd.DataFrame) -> bool:
    """Bicubic's latency is an eager-PyTorch upsampling timed where the search ran: it compares
    only with a front measured the same way (torch fp32, no target) on its device and input."""
    if not bicubic or not isinstance(bicubic.get("latency_ms"), int | float):
        return False
    attrs = front.attrs
    if (attrs.get("runtimes") not in (["torch"], []) or attrs.get("precisions") not in
            (["fp32"], []) or any(attrs.get("targets") or [])):
        return False
    hw = bicubic.get("input_hw")
    hw_text = f"{hw[0]}x{hw[1]}" if isinstance(hw, list | tuple) and len(hw) == 2 else None
    return (front.attrs.get("devices") in ([bicubic.get("device")], [])
            and front.attrs.get("inputs") in ([hw_text], []))


def _bicubic_label(bicubic: Mapping[str, Any]) -> str:
    return f"bicubic ({bicubic['psnr']:.2f} dB)"


def _png(path: Path, layers: Layers, title: str, budgets: Mapping[str, float]) -> None:
    import pandas as pd

    others, candidates, front = layers.others, layers.candidates, layers.front

    # A bare Figure (no pyplot): renders with Agg without switching the backend of a notebook
    # that calls this, and leaves no global figure behind.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 6), dpi=120)
    ax = fig.subplots()
    if len(others):
        ax.scatter(others["latency_ms"], others["psnr"], marker="x", s=18, c="0.65",
                   label="infeasible / over budget")
    memory = candidates["memory_mb"]
    has_memory = memory.notna().any()
    points = ax.scatter(candidates["latency_ms"], candidates["psnr"], s=28,
                        c=memory if has_memory else "tab:blue", cmap="viridis",
                        alpha=0.8, label="feasible trials")
    if has_memory:
        fig.colorbar(points, ax=ax, label="peak memory (MB)")
    ax.scatter(front["latency_ms"], front["psnr"], s=90, facecolors="none",
               edgecolors="crimson", linewidths=1.6, label="Pareto front (all objectives)")
    line = envelope(front)
    ax.step(line["latency_ms"], line["psnr"], where="post", color="crimson", lw=1.2,
            label="PSNR-latency trade-off")
    if len(layers.below):
        ax.scatter(layers.below["latency_ms"], layers.below["psnr"], marker="v", s=30,
                   c="darkorange", label="below bicubic (never on the front)")
    baselines = _baselines(others, candidates, layers.below)
    if len(baselines):
        ax.scatter(baselines["latency_ms"], baselines["psnr"], marker="D", s=40,
                   facecolors="none", edgecolors="black", label="baselines (--baseline)")
    for _, row in baselines.iterrows():
        ax.annotate(str(row["baseline"]), (row["latency_ms"], row["psnr"]),
                    textcoords="offset points", xytext=(6, 6), fontsize=9)
    if layers.bicubic is not None:
        ax.axhline(layers.bicubic["psnr"], color="darkorange", ls=":", lw=1.2,
                   label=_bicubic_label(layers.bicubic))
        if layers.bicubic_point:
            ax.scatter([layers.bicubic["latency_ms"]], [layers.bicubic["psnr"]], marker="*",
                       s=120, c="darkorange", label="bicubic as an upsampling")
    if "latency_ms" in budgets:
        ax.axvline(budgets["latency_ms"], color="0.3", ls="--", lw=1,
                   label=f"latency budget {budgets['latency_ms']:g} ms")
    latency = pd.concat([candidates["latency_ms"], layers.below["latency_ms"]])
    if latency.min() > 0 and latency.max() / latency.min() > 20:
        ax.set_xscale("log")
    finish_png(fig, ax, path, title, layers.latency_axis, "PSNR (dB)")


def finish_png(fig: Any, ax: Any, path: Path, title: str, xlabel: str, ylabel: str) -> None:
    """Labels, title, grid and legend the way every srnas PNG has them; written atomically."""
    import io

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9, wrap=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    write_atomic(path, buffer.getvalue())


def _baselines(*frames: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    rows = [f[f["baseline"].notna()] for f in frames if len(f)]
    return pd.concat(rows) if rows else frames[0].iloc[0:0]


def _hover(frame: pd.DataFrame) -> list[str]:
    lines = []
    for _, row in frame.iterrows():
        params = f"{row['params']:,}" if row["params"] is not None and \
            str(row["params"]) != "<NA>" else "?"
        flops = f"{row['flops'] / 1e9:.2f} G" if str(row["flops"]) != "<NA>" else "?"
        baseline = f" [{row['baseline']}]" if isinstance(row["baseline"], str) else ""
        lines.append(
            f"{row['study']} #{row['number']}{baseline} · {row['arch_id']}<br>"
            f"PSNR {row['psnr']:.3f} dB · latency {row['latency_ms']:.3f} ms · "
            f"memory {row['memory_mb']:.1f} MB<br>params {params} · FLOPs {flops}<br>"
            f"{arch_summary(row['arch'])}")
    return lines


def _html(path: Path, layers: Layers, title: str, budgets: Mapping[str, float]) -> None:
    import plotly.graph_objects as go

    others, candidates, front = layers.others, layers.candidates, layers.front
    fig = go.Figure()
    if len(others):
        fig.add_trace(go.Scatter(x=others["latency_ms"], y=others["psnr"], mode="markers",
                                 name="infeasible / over budget",
                                 marker={"symbol": "x", "color": "#aaa", "size": 7},
                                 text=_hover(others), hoverinfo="text"))
    has_memory = candidates["memory_mb"].notna().any()
    marker: dict[str, Any] = {"size": 9, "opacity": 0.85}
    if has_memory:
        marker.update(color=candidates["memory_mb"], colorscale="Viridis", showscale=True,
                      colorbar={"title": "memory (MB)"})
    fig.add_trace(go.Scatter(x=candidates["latency_ms"], y=candidates["psnr"], mode="markers",
                             name="feasible trials", marker=marker, text=_hover(candidates),
                             hoverinfo="text"))
    line = envelope(front)
    fig.add_trace(go.Scatter(x=line["latency_ms"], y=line["psnr"], mode="lines",
                             line={"shape": "hv", "color": "crimson"}, hoverinfo="skip",
                             name="PSNR-latency trade-off"))
    fig.add_trace(go.Scatter(x=front["latency_ms"], y=front["psnr"], mode="markers",
                             name="Pareto front (all objectives)", text=_hover(front),
                             hoverinfo="text",
                             marker={"size": 15, "color": "rgba(0,0,0,0)",
                                     "line": {"color": "crimson", "width": 2}}))
    if len(layers.below):
        fig.add_trace(go.Scatter(x=layers.below["latency_ms"], y=layers.below["psnr"],
                                 mode="markers", name="below bicubic (never on the front)",
                                 marker={"symbol": "triangle-down", "color": "darkorange",
                                         "size": 9},
                                 text=_hover(layers.below), hoverinfo="text"))
    for _, row in _baselines(others, candidates, layers.below).iterrows():
        fig.add_annotation(x=row["latency_ms"], y=row["psnr"], text=str(row["baseline"]),
                           showarrow=True, arrowhead=1)
    if layers.bicubic is not None:
        fig.add_hline(y=layers.bicubic["psnr"], line_dash="dot", line_color="darkorange",
                      annotation_text=_bicubic_label(layers.bicubic))
        if layers.bicubic_point:
            fig.add_trace(go.Scatter(x=[layers.bicubic["latency_ms"]],
                                     y=[layers.bicubic["psnr"]], mode="markers",
                                     name="bicubic as an upsampling",
                                     marker={"symbol": "star", "color": "darkorange",
                                             "size": 14}))
    if "latency_ms" in budgets:
        fig.add_vline(x=budgets["latency_ms"], line_dash="dash",
                      annotation_text=f"latency budget {budgets['latency_ms']:g} ms")
    fig.update_layout(title={"text": title, "font": {"size": 12}},
                      xaxis_title=layers.latency_axis, yaxis_title="PSNR (dB)",
                      template="plotly_white", legend={"x": 0.99, "xanchor": "right", "y": 0.01})
    # Self-contained (plotly.js inlined): the file must open offline, e.g. on a cluster node.
    write_atomic(path, fig.to_html(include_plotlyjs=True, full_html=True))
