"""A benchmark table as text: an aligned table or Markdown (each under a caption that says what
was measured where), CSV (rows only, full precision) or JSON (conditions and rows)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tabulate import tabulate

from srnas.space.errors import ConfigError

if TYPE_CHECKING:  # annotations only: the CLI reads FORMATS without importing torch
    from srnas.evaluators.benchmark import BenchRow, BenchTable

FORMATS = ("table", "markdown", "csv", "json")
# Above this many cores busy with other work while timing, the caption flags the latencies.
BUSY_CORES = 0.25


def caption(table: BenchTable) -> list[str]:
    """What every figure means and where it was measured; one line each."""
    h, w = table.input_hw
    oh, ow = table.output_hw
    sets = ", ".join(f"{f.name} ({f.images} images)" for f in table.folders)
    speed = (f"latency: median (IQR) of batch-1 inference, {table.threads} threads"
             if table.latency else "latency: not measured (--no-latency)")
    speed += f"; latency and memory: {runtime_text(table)}"
    busy = max((r.latency_foreign_cpu or 0.0 for r in table.rows), default=0.0)
    if busy > BUSY_CORES:
        speed += (f"; other processes kept up to {busy:.1f} cores busy while timing: the "
                  "latencies are suspect")
    lines = [
        f"x{table.scale} on {sets}: PSNR (dB) / SSIM on the Y channel, {table.scale} pixels "
        "shaved, output rounded to uint8 (BasicSR)",
        f"device {table.device}, {table.dtype}{_tf32(table)}; input {h}x{w} -> output "
        f"{oh}x{ow} for FLOPs (multiply-adds), latency and memory (peak of one inference"
        + (f", {table.memory_method})" if table.memory_method else ")"),
        speed,
    ]
    for row in table.rows[1:]:
        source = f" from {row.weights}" if row.weights else " (random weights, --untrained)"
        lines.append(f"{row.model}: {row.trained}{source}")
    return lines


def runtime_text(table: BenchTable) -> str:
    """What ran the networks for latency and memory: ``onnxruntime 1.22.0 fp32
    (intra_op_num_threads 2), output within 3.1e-06 of PyTorch`` / ``torch fp32 (eager)``."""
    if table.runtime == "torch" and not table.runtime_settings:
        text = f"{table.runtime} {table.precision} (eager)"
    else:
        settings = ", ".join(f"{k} {v}" for k, v in sorted(table.runtime_settings.items()))
        text = f"{table.runtime} {table.precision}" + (f" ({settings})" if settings else "")
    diffs = [r.runtime_check_max_abs_diff for r in table.rows
             if r.runtime_check_max_abs_diff is not None]
    if diffs:
        text += (f", exported as srnas export --onnx exports it; output within "
                 f"{max(diffs):.1e} of PyTorch")
    return text


def _tf32(table: BenchTable) -> str:
    if table.tf32 is None:
        return ""
    return " (TF32 " + ", ".join(f"{k} {'on' if v else 'off'}" for k, v in table.tf32.items()) + ")"


def _cells(row: BenchRow, table: BenchTable) -> list[str]:
    def num(value: float | int | None, spec: str, unit: str = "") -> str:
        return "-" if value is None else f"{value:{spec}}{unit}"

    lat = num(row.latency_ms, ".1f")
    if row.latency_iqr_ms is not None:
        lat += f" ({row.latency_iqr_ms:.1f})"
    flops = None if row.flops is None else row.flops / 1e9
    cells = [row.model, row.trained, num(row.params, ","), num(flops, ".2f"), lat,
             num(row.memory_mb, ".1f")]
    for f in table.folders:
        psnr, ssim = row.scores[f.name]
        cells.append(f"{psnr:.2f} / {ssim:.4f}")
    return cells


def _header(table: BenchTable) -> list[str]:
    return ["model", "trained", "params", "FLOPs (G)", "latency ms", "memory MB",
            *(f.name for f in table.folders)]


def _aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    # Names left, figures right, as a paper's table reads; the header goes in as a row (as
    # tabulate's headers it would be padded by two more), the cells as formatted.
    align = ["left", *["right"] * (len(rows[0]) - 1)]
    text = tabulate([list(r) for r in rows], tablefmt="plain", colalign=align,
                    disable_numparse=True)
    return [line.rstrip() for line in text.split("\n")]


def as_table(table: BenchTable) -> str:
    rows = [_header(table), *(_cells(r, table) for r in table.rows)]
    body = _aligned(rows)
    return "\n".join([*caption(table), "", body[0], "-" * len(body[0]), *body[1:]]) + "\n"


def as_markdown(table: BenchTable) -> str:
    # Written out, not tabulate's "pipe" format: that pads every cell and alignment rule to
    # its column's width, and this output is the unpadded "| model | trained |" over
    # "|:---|---:|" (what its tests check).
    rows = [_header(table), *(_cells(r, table) for r in table.rows)]
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    lines.insert(1, "|" + "|".join([":---"] + ["---:"] * (len(rows[0]) - 1)) + "|")
    notes = [f"*{line}*  " for line in caption(table)]
    return "\n".join([*notes, "", *lines]) + "\n"


def as_csv(table: BenchTable) -> str:
    names = [f.name for f in table.folders]
    fields = ["model", "trained", "steps", "weights", "arch_id", "params", "flops",
              "latency_ms", "latency_iqr_ms", "latency_foreign_cpu", "memory_mb",
              "runtime_check_max_abs_diff", "runtime", "precision",
              *(f"{k}_{n}" for n in names for k in ("psnr", "ssim"))]
    out = io.StringIO()
    writer = csv.DictWriter(out, fields, lineterminator="\n")
    writer.writeheader()
    for i, row in enumerate(table.rows):
        record: dict[str, object] = {k: getattr(row, k) for k in fields[:12]}
        # Rows only: each measured row carries what measured it (bicubic, first, is scored
        # only).
        measured = i > 0
        record["runtime"] = table.runtime if measured else None
        record["precision"] = table.precision if measured else None
        for n in names:
            record[f"psnr_{n}"], record[f"ssim_{n}"] = row.scores[n]
        writer.writerow({k: "" if v is None else v for k, v in record.items()})
    return out.getvalue()


def as_json(table: BenchTable) -> str:
    return json.dumps(table.to_dict(), indent=2) + "\n"


def render(table: BenchTable, fmt: str = "table") -> str:
    renderers = {"table": as_table, "markdown": as_markdown, "csv": as_csv, "json": as_json}
    if fmt not in renderers:
        raise ConfigError("format", f"must be one of {', '.join(FORMATS)}", fmt)
    return renderers[fmt](table)


__all__ = ["FORMATS", "as_csv", "as_json", "as_markdown", "as_table", "caption", "render"]
