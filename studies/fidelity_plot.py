"""The fidelity scatter: brief-training PSNR against long-training PSNR, one point per retrained
trial, the diagonal, and the brief front's members marked. PNG (matplotlib) or HTML (plotly)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srnas.studies.files import write_atomic
from srnas.studies.plot import check_plot_out, finish_png

if TYPE_CHECKING:
    import pandas as pd


def plot_title(pairs: pd.DataFrame, figures: Mapping[str, Any], steps: int) -> str:
    brief = "/".join(map(str, figures["brief_steps"]))
    lo, hi = figures["kendall_ci"]
    title = (f"{pairs.attrs.get('study')}: PSNR after {brief} vs {steps} training steps, "
             f"{figures['pairs']} trials; Kendall tau {figures['kendall_tau']:+.2f} "
             f"(95% CI {lo:+.2f}..{hi:+.2f})")
    # Which rung ranks as the long budget does, beside the mixed ranking the scatter shows.
    rungs = [f"{r['steps']}: {r['kendall_tau']:+.2f}" if r["kendall_tau"] is not None
             else f"{r['steps']}: -" for r in figures.get("rungs") or []]
    return title + (f"\ntau per rung (steps: tau) {', '.join(rungs)}" if rungs else "")


def plot_fidelity(pairs: pd.DataFrame, figures: Mapping[str, Any], steps: int,
                  out: str | Path) -> Path:
    path = check_plot_out(out)
    lo = float(min(pairs["brief_psnr"].min(), pairs["long_psnr"].min())) - 0.2
    hi = float(max(pairs["brief_psnr"].max(), pairs["long_psnr"].max())) + 0.2
    front = pairs[pairs["on_brief_front"]]
    rest = pairs[~pairs["on_brief_front"]]
    title = plot_title(pairs, figures, steps)
    brief_label = f"PSNR after {'/'.join(map(str, figures['brief_steps']))} steps (dB)"
    long_label = f"PSNR after {steps} steps (dB)"
    if path.suffix.lower() == ".html":
        import plotly.graph_objects as go

        fig = go.Figure()
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="no change",
                                 line={"dash": "dash", "color": "#888"}, hoverinfo="skip"))
        for part, name, marker in ((rest, "other trials", {"size": 9}),
                                   (front, "brief front", {"size": 13, "color": "crimson"})):
            fig.add_trace(go.Scatter(
                x=part["brief_psnr"], y=part["long_psnr"], mode="markers+text", name=name,
                text=[f"#{n}" for n in part["number"]], textposition="top center",
                marker=marker))
        fig.update_layout(title={"text": title.replace("\n", "<br>"), "font": {"size": 12}},
                          xaxis_title=brief_label, yaxis_title=long_label,
                          template="plotly_white")
        write_atomic(path, fig.to_html(include_plotlyjs=True, full_html=True))
        return path
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 6), dpi=120)
    ax = fig.subplots()
    ax.plot([lo, hi], [lo, hi], ls="--", color="0.5", lw=1, label="no change")
    ax.scatter(rest["brief_psnr"], rest["long_psnr"], s=30, label="other trials")
    ax.scatter(front["brief_psnr"], front["long_psnr"], s=80, facecolors="none",
               edgecolors="crimson", linewidths=1.6, label="brief front")
    for row in pairs.itertuples():
        ax.annotate(f"#{row.number}", (row.brief_psnr, row.long_psnr),
                    textcoords="offset points", xytext=(5, 4), fontsize=8)
    finish_png(fig, ax, path, title, brief_label, long_label)
    return path


__all__ = ["plot_fidelity", "plot_title"]
