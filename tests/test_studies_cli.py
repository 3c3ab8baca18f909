"""``srnas studies list`` / ``pareto`` / ``plot`` through the real entry point, on a fabricated
SQLite study; the Optuna CLI as an independent reader of the same storage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from tests.cli import assert_one_line, run
from tests.fabricate import fake_trial, make_known_study, make_mixed_study, make_study

optuna.logging.set_verbosity(optuna.logging.WARNING)
OPTUNA_CLI = Path(sys.executable).with_name("optuna")


def one_line_error(capsys, command: str, *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    assert out == ""
    assert err.startswith(f"srnas {command}: error: "), err
    return assert_one_line(err)


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("studies") / "srnas.db"
    url = f"sqlite:///{path}"
    make_known_study(url, "known")
    other = make_study(url, "other")
    fake_trial(other, psnr=29.9, latency_ms=4.0, memory_mb=95.0)
    return url


def test_list_table_and_json(capsys, db) -> None:
    code, out, _ = run(capsys, "studies", "list", "--storage", db)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["study", "objectives", "complete"]
    assert lines[1].startswith("known") and "32.000" in lines[1]
    code, out, _ = run(capsys, "studies", "list", "--storage", db, "--format", "json")
    known = {s["name"]: s for s in json.loads(out)}["known"]
    assert known["trials"] == {"complete": 6, "running": 1, "failed": 1, "pruned": 1,
                               "infeasible": 1}
    assert known["best_psnr"] == 32.0  # 33 dB is trial 5, over the launch latency budget
    assert known["devices"] == ["cpu: test"]
    assert known["objectives"] == [["psnr", "maximize"], ["latency_ms", "minimize"],
                                   ["memory_mb", "minimize"]]


def test_list_and_pareto_csv_and_markdown(capsys, db) -> None:
    code, out, _ = run(capsys, "studies", "list", "--storage", db, "--format", "csv")
    rows = out.splitlines()
    assert code == 0 and rows[0].split(",")[0] == "study" and len(rows) == 3
    assert sorted(r.split(",")[0] for r in rows[1:]) == ["known", "other"]
    code, out, _ = run(capsys, "studies", "list", "--storage", db, "--format", "markdown")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("| study") and set(lines[1]) <= set("|:- ")
    assert len(lines) == 4
    code, out, _ = run(capsys, "pareto", "known", "--storage", db, "--format", "markdown")
    lines = out.split("\n\n")[-1].splitlines()  # after the header paragraph
    header = [c.strip() for c in lines[0].split("|")]
    assert code == 0 and out.startswith("study known (sqlite:///")
    assert len(lines) == 2 + 5  # header, rule, the 5 front trials
    header[header.index("trial")] = "number"
    column = header.index("number")
    assert [int(r.split("|")[column]) for r in lines[2:]] == [8, 1, 0, 2, 4]


def test_storage_from_environment(capsys, db, monkeypatch) -> None:
    monkeypatch.setenv("SRNAS_STORAGE", db)
    code, out, _ = run(capsys, "studies", "list", "--format", "json")
    assert code == 0 and {s["name"] for s in json.loads(out)} == {"known", "other"}


def test_pareto_table_header(capsys, db) -> None:
    code, out, _ = run(capsys, "pareto", "known", "--storage", db)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("study known (sqlite:///") and "5 trials on the Pareto front of 6"\
        in lines[0]
    assert lines[2] == "psnr after training: 200 steps (fifo)"
    assert lines[3].startswith("bicubic: not recorded with this study")
    # A study without a recorded reference point: today's moving rule, said so.
    assert lines[4].startswith("hypervolume: ") and "at reference point psnr=27.6, " \
        "latency_ms=43.5, memory_mb=322" in lines[4] and "records no fixed reference" in lines[4]
    table = lines[6:]
    assert table[0].split()[:3] == ["trial", "arch_id", "psnr"]
    assert [int(r.split()[0]) for r in table[1:]] == [8, 1, 0, 2, 4]


def test_pareto_json_csv_sort_and_budgets(capsys, db) -> None:
    code, out, _ = run(capsys, "pareto", "known", "--storage", db, "--format", "json",
                       "--max-latency-ms", "15", "--sort", "latency_ms")
    document = json.loads(out)
    assert code == 0
    assert [t["number"] for t in document["trials"]] == [2, 0]
    assert document["budgets"] == {"latency_ms": 15.0}
    assert document["reference_point"]["latency_ms"] == 15.0
    assert document["hypervolume"] > 0
    assert document["trials"][0]["arch"]["dim"] == 32  # trial 2's architecture
    code, out, _ = run(capsys, "pareto", "known", "--storage", db, "--format", "csv",
                       "--max-params", "250000")
    rows = out.splitlines()
    assert rows[0].startswith("study,number,state,status,feasible,arch_id,psnr")
    assert sorted(int(r.split(",")[1]) for r in rows[1:]) == [3, 4]


def test_pareto_reference_point_given(capsys, db) -> None:
    code, out, _ = run(capsys, "pareto", "other", "--storage", db, "--format", "json",
                       "--reference-point", "psnr=28.9,latency_ms=5,memory_mb=100")
    document = json.loads(out)
    assert code == 0 and document["reference_rule"] == "given"
    assert document["hypervolume"] == pytest.approx(1.0 * 1.0 * 5.0)


def test_pareto_matches_optuna_best_trials(capsys, db) -> None:
    done = subprocess.run([str(OPTUNA_CLI), "best-trials", "--study-name", "known",
                           "--storage", db, "-f", "json"], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    theirs = sorted(t["number"] for t in json.loads(done.stdout))
    code, out, _ = run(capsys, "pareto", "known", "--storage", db, "--format", "json")
    ours = sorted(t["number"] for t in json.loads(out)["trials"])
    assert code == 0 and ours == theirs == [0, 1, 2, 4, 8]


def test_all_studies(capsys, db) -> None:
    code, out, _ = run(capsys, "pareto", "--all-studies", "--storage", db, "--format", "json")
    document = json.loads(out)
    assert code == 0 and document["studies"] == ["known", "other"]
    # other's (29.9 dB, 4 ms, 95 MB) dominates known's trial 2 (29 dB, 5 ms, 90 MB)? No: more
    # memory. It joins the front; nothing of known's leaves it.
    assert sorted((t["study"], t["number"]) for t in document["trials"]) == [
        ("known", 0), ("known", 1), ("known", 2), ("known", 4), ("known", 8), ("other", 0)]


@pytest.mark.parametrize(("argv", "needle"), [
    (["pareto", "nope"], "no study of that name in sqlite:///"),
    (["pareto", "known", "--max-latency-ms", "4"], "smallest value that admits one is 5"),
    (["pareto", "known", "--max-latency-ms", "-3"], "--max-latency-ms: must be a positive"),
    (["pareto", "known", "--max-memory-mb", "lots"], "--max-memory-mb: must be a number"),
    (["pareto", "known", "--format", "xml"], "--format: must be one of table, csv, json, "
                                             "markdown (got 'xml')"),
    (["pareto", "known", "--sort", "ssim"], "--sort: must be one of"),
    (["pareto", "known", "--device", "tpu"], "--device: no feasible complete trial"),
    (["pareto", "known", "--input", "16"], "--input: must be HxW with positive integers"),
    (["pareto", "known", "--input", "16x16"], "--input: no feasible complete trial was "
                                              "measured at it; inputs: 180x320 (got '16x16')"),
    (["pareto", "known", "--reference-point", "psnr=1"], "--reference-point: needs every"),
    (["pareto"], "STUDY: give a study name, or --all-studies"),
    (["pareto", "known", "--all-studies"], "STUDY: give a study or --all-studies, not both"),
    (["studies", "list", "--format", "yaml"], "--format: must be one of table, csv, json, "
                                              "markdown (got 'yaml')"),
    (["plot", "known", "--out", "front.svg"], "--out: must end in .png or .html"),
    (["plot", "known"], "--out: is required"),
    (["export", "known", "--pick", "knee"], "--out: is required"),
])
def test_bad_input_is_one_line(capsys, db, argv, needle) -> None:
    err = one_line_error(capsys, argv[0], *argv, "--storage", db)
    assert needle in err
    if argv[:2] == ["pareto", "nope"]:
        assert "studies: known, other" in err


def test_missing_sqlite_file_is_not_created(capsys, tmp_path) -> None:
    path = tmp_path / "absent.db"
    for argv in (["studies", "list"], ["pareto", "x"], ["plot", "x", "--out", "f.png"]):
        err = one_line_error(capsys, argv[0], *argv, "--storage", f"sqlite:///{path}")
        assert "--storage: points to no SQLite file" in err
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_empty_storage(capsys, tmp_path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()  # an empty file: a read must not turn it into an Optuna database
    err = one_line_error(capsys, "studies", "studies", "list", "--storage", f"sqlite:///{empty}")
    assert "empty storage" in err
    assert empty.stat().st_size == 0
    no_studies = tmp_path / "no-studies.db"
    optuna.storages.RDBStorage(f"sqlite:///{no_studies}")  # Optuna tables, no study
    err = one_line_error(capsys, "pareto", "pareto", "x", "--storage",
                         f"sqlite:///{no_studies}")
    assert "empty storage: it holds no studies" in err


@pytest.mark.parametrize(("url", "needle"), [
    ("postgresql+psycopg2://srnas:s3cret@127.0.0.1:1/studies", "cannot be opened"),
    ("srnas.db", "must be a SQLAlchemy URL"),
    ("nosuchdialect://u:s3cret@host/db", "unknown database dialect"),
    ("postgresql+psycopg2://srnas:s3cret@host:port/db", "not a valid SQLAlchemy URL"),
])
def test_bad_storage_urls_mask_the_password(capsys, url, needle) -> None:
    err = one_line_error(capsys, "studies", "studies", "list", "--storage", url)
    assert err.startswith("srnas studies: error: --storage: ") and needle in err
    assert "s3cret" not in err


def test_plot_png_and_html(capsys, db, tmp_path) -> None:
    png, html = tmp_path / "front.png", tmp_path / "front.html"
    assert run(capsys, "plot", "known", "--storage", db, "--out", str(png))[0] == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, _ = run(capsys, "plot", "known", "--storage", db, "--out", str(html),
                       "--max-latency-ms", "35")
    assert code == 0 and out.startswith("wrote ")
    text = html.read_text()
    assert "plotly" in text and "esc-light" in text and "latency budget 35 ms" in text
    arch_id = optuna.load_study(study_name="known", storage=db).trials[1].user_attrs["arch_id"]
    assert f"{arch_id}\\u003cbr\\u003ePSNR 31.000 dB" in text  # trial 1's hover
    assert sorted(p.name for p in tmp_path.iterdir()) == ["front.html", "front.png"]


@pytest.fixture(scope="module")
def mixed_db(tmp_path_factory) -> str:
    """0: CPU at 180x320; 1: H100 at 180x320; 2: H100 at 90x160."""
    url = f"sqlite:///{tmp_path_factory.mktemp('mixed') / 'srnas.db'}"
    make_mixed_study(url)
    return url


def test_pareto_refuses_mixed_devices_and_inputs_in_one_study(capsys, mixed_db) -> None:
    err = one_line_error(capsys, "pareto", "pareto", "mixed", "--storage", mixed_db)
    assert err.startswith("srnas pareto: error: STUDY: the feasible complete trials of mixed "
                          "were measured on 2 devices (cpu: AMD EPYC; cuda: NVIDIA H100) and 2 "
                          "latency inputs (90x160, 180x320)")
    assert "device (--device NAME) and input_hw (--input HxW)" in err
    err = one_line_error(capsys, "pareto", "pareto", "mixed", "--device", "H100", "--storage",
                         mixed_db)
    assert "2 latency inputs (90x160, 180x320)" in err and "--device NAME" not in err
    err = one_line_error(capsys, "pareto", "pareto", "mixed", "--input", "180x320",
                         "--storage", mixed_db)
    assert "2 devices (cpu: AMD EPYC; cuda: NVIDIA H100)" in err and "--input HxW" not in err


@pytest.mark.parametrize(("narrow", "expected"), [
    (["--device", "cpu"], [0]),
    (["--device", "H100", "--input", "180x320"], [1]),
    (["--device", "cuda: NVIDIA H100", "--input", "90x160"], [2]),
])
def test_pareto_narrowed_mixed_study(capsys, mixed_db, narrow, expected) -> None:
    code, out, err = run(capsys, "pareto", "mixed", *narrow, "--storage", mixed_db,
                         "--format", "json")
    assert code == 0, err
    document = json.loads(out)
    assert [t["number"] for t in document["trials"]] == expected
    assert len(document["devices"]) == 1 and len(document["inputs"]) == 1
    code, out, _ = run(capsys, "pareto", "mixed", *narrow, "--storage", mixed_db)
    assert code == 0 and "; input: " in out.splitlines()[1]


def test_all_studies_refuses_mixed_inputs(capsys, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'two.db'}"
    fake_trial(make_study(url, "a"), psnr=30.0, latency_ms=4.0, memory_mb=100.0)
    fake_trial(make_study(url, "b"), psnr=30.0, latency_ms=1.0, memory_mb=100.0,
               extra={"input_hw": [90, 160]})
    err = one_line_error(capsys, "pareto", "pareto", "--all-studies", "--storage", url)
    assert "error: --all-studies: the feasible complete trials of a, b were measured on 2 " \
        "latency inputs (90x160, 180x320)" in err
    code, out, _ = run(capsys, "pareto", "--all-studies", "--input", "90x160", "--storage", url,
                       "--format", "json")
    assert code == 0 and [t["study"] for t in json.loads(out)["trials"]] == ["b"]


def test_plot_mixed_study_narrowed(capsys, mixed_db, tmp_path) -> None:
    png = tmp_path / "front.png"
    err = one_line_error(capsys, "plot", "plot", "mixed", "--storage", mixed_db, "--out",
                         str(png))
    assert "2 devices" in err and not png.exists()
    assert run(capsys, "plot", "mixed", "--device", "H100", "--input", "90x160", "--storage",
               mixed_db, "--out", str(png))[0] == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

