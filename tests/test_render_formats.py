"""Markdown and CSV forms of the studies list and a Pareto front (studies/render.py)."""

from __future__ import annotations

import csv
import io

import pandas as pd

from srnas.studies import render

SUMMARIES = [
    {"name": "a|b", "objectives": [("psnr", "maximize"), ("latency_ms", "minimize")],
     "trials": {"complete": 12, "running": 0, "failed": 1, "pruned": 3, "infeasible": 0},
     "best_psnr": 30.12345, "devices": ["cpu: x86_64"], "last_update": "2025-01-02 03:04",
     "fidelity": {"600": 4}},
    {"name": "b", "objectives": [("psnr", "maximize")],
     "trials": {"complete": 0, "running": 2, "failed": 0, "pruned": 0, "infeasible": 0},
     "best_psnr": None, "devices": [], "last_update": None},
]


def test_list_markdown_is_the_tables_cells_as_a_pipe_table() -> None:
    lines = render.list_markdown(SUMMARIES).splitlines()
    assert len(lines) == 2 + len(SUMMARIES)
    header, rule, first, second = (line.strip("|").split("|") for line in lines[:4])
    assert [c.strip() for c in header][:3] == ["study", "objectives", "complete"]
    # Counts and PSNR right-aligned, names left; a "|" in a name escaped, not a new column.
    assert rule[0].strip().startswith(":") and rule[2].strip().endswith(":")
    assert "a\\" in first[0] and first[1].strip() == "b" and len(first) == len(header) + 1
    assert "30.123" in lines[2] and "4 at 600 steps" in lines[2]
    assert [c.strip() for c in second][7] == "-"


def test_list_csv_has_plain_values() -> None:
    rows = list(csv.DictReader(io.StringIO(render.list_csv(SUMMARIES))))
    assert rows[0]["study"] == "a|b" and rows[0]["complete"] == "12"
    assert float(rows[0]["best_psnr"]) == 30.12345 and rows[1]["best_psnr"] == ""
    assert rows[0]["objectives"] == "psnr (maximize); latency_ms (minimize)"
    assert rows[0]["retrained"] == "4 at 600 steps" and rows[1]["devices"] == ""


def test_front_markdown_has_the_header_and_the_tables_columns() -> None:
    front = pd.DataFrame({"number": [3, 7], "psnr": [30.1234, 29.5], "latency_ms": [1.5, 0.75],
                          "arch_id": ["abc", "def"], "arch": [{}, {}]})
    front.attrs.update(studies=["s"])
    header = ["study s: 2 trials", "hypervolume: 1.5"]
    text = render.front_markdown(front, header)
    notes, table = text.split("\n\n")
    assert notes.splitlines() == ["study s: 2 trials  ", "hypervolume: 1.5  "]
    lines = table.splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["trial", "psnr",
                                                                   "latency_ms", "arch_id"]
    assert "30.123" in lines[2] and "0.750" in lines[3]
    # The plain table shows the same cells.
    plain = render.front_table(front, header)
    assert all(cell in plain for cell in ("30.123", "0.750", "def"))
