"""Studies know under which runtime, precision and target their latencies were measured:
``srnas pareto``, ``plot`` and ``export`` say it and filter on it, and refuse a set that mixes
them, on fabricated studies written by the search's own recorder with the fields a runtime and
a target node record (``RuntimeMeasurement.conditions()``, ``TargetMeasurement.where()``)."""

from __future__ import annotations

import json

import optuna
import pytest
import yaml

from srnas.evaluators import runtime_names
from srnas.space.config import ArchConfig
from srnas.studies import measured
from srnas.studies.front import pareto_front, trials_frame
from tests.cli import assert_usage_error, run
from tests.fabricate import fake_trial, make_known_study, make_study

optuna.logging.set_verbosity(optuna.logging.WARNING)

TRAINED = "cpu: Trainer Xeon"
EDGE = "cpu: ARM Cortex-A78AE"
EDGE_NODE, TRAIN_NODE = "e" * 56, "a" * 56
# What a trial measured by onnxruntime on target node ``edge`` records beside its figures.
ON_EDGE = {"runtime": "onnxruntime", "runtime_version": "1.22.0", "precision": "fp32",
           "runtime_settings": {"intra_op_num_threads": 1}, "runtime_check_max_abs_diff": 2e-6,
           "memory_method": "proxy:torch-cpu-live-tensors", "target": "edge",
           "measured_node": EDGE_NODE, "measured_host": "10.0.0.9", "measured_device": EDGE,
           "measure_seconds": 1.5, "measure_dispatch_seconds": 0.25,
           "node": TRAIN_NODE, "host": "10.0.0.1"}
LOCAL_TORCH = {"node": TRAIN_NODE, "host": "10.0.0.1"}  # eager fp32 here: records no runtime


def _arch(i: int) -> ArchConfig:
    return ArchConfig(dim=16 + 8 * i, kernel_size=7, n_blocks=1 + i % 3)


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    """Study ``mixed``: trials 0-1 eager PyTorch where they trained, 2-4 onnxruntime on target
    edge (4 in fp16); study ``edge``: trials 0-1 on edge only; ``known``: an older study."""
    url = f"sqlite:///{tmp_path_factory.mktemp('runtime') / 'srnas.db'}"
    mixed = make_study(url, "mixed")
    for i, (psnr, lat, extra) in enumerate([
            (30.0, 10.0, LOCAL_TORCH), (31.0, 20.0, LOCAL_TORCH),
            (30.5, 40.0, ON_EDGE), (31.5, 80.0, ON_EDGE),
            (31.2, 30.0, {**ON_EDGE, "precision": "fp16"})]):
        fake_trial(mixed, psnr=psnr, latency_ms=lat, memory_mb=100.0, arch=_arch(i),
                   device=TRAINED, extra=extra)
    edge = make_study(url, "edge")
    for i, (psnr, lat) in enumerate([(30.0, 50.0), (31.0, 70.0)]):
        fake_trial(edge, psnr=psnr, latency_ms=lat, memory_mb=90.0, arch=_arch(i),
                   device=TRAINED, extra=ON_EDGE)
    make_known_study(url, "known")
    return url


def _json(capsys, *argv: str) -> dict:
    code, out, err = run(capsys, *argv, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def test_defaults_are_the_measuring_commands_defaults() -> None:
    assert (measured.DEFAULT_RUNTIME, measured.DEFAULT_PRECISION) == (
        runtime_names.DEFAULT_RUNTIME, runtime_names.DEFAULT_PRECISION)


def test_an_older_study_reads_as_eager_fp32_measured_where_it_trained(capsys, db) -> None:
    document = _json(capsys, "pareto", "known", "--storage", db)
    assert document["runtimes"] == ["torch"] and document["precisions"] == ["fp32"]
    assert document["targets"] == [None] and document["devices"] == ["cpu: test"]
    assert document["measured_with"] == "torch fp32 where each trial trained"
    assert {t["runtime"] for t in document["trials"]} == {"torch"}
    code, out, _ = run(capsys, "pareto", "known", "--storage", db)
    assert code == 0 and "measured with: torch fp32 where each trial trained;" in \
        out.splitlines()[1]


def test_a_mixed_study_is_refused_naming_what_differs(capsys, db) -> None:
    line = assert_usage_error(capsys, "pareto", "mixed", "--storage", db)
    assert line == (
        "srnas pareto: error: STUDY: the feasible complete trials of mixed were measured on "
        f"2 devices ({EDGE}; {TRAINED}) and 2 runtimes (onnxruntime, torch) and 2 precisions "
        "(fp16, fp32) and 2 targets (edge, local), whose figures do not compare; narrow them "
        "to one with device (--device NAME) and runtime (--runtime NAME) and precision "
        "(--precision P) and target (--target NAME, or local) (got 'mixed')")
    # The runtime alone leaves two precisions.
    line = assert_usage_error(capsys, "pareto", "mixed", "--runtime", "onnxruntime",
                              "--storage", db)
    assert "2 precisions (fp16, fp32)" in line and "runtimes" not in line


@pytest.mark.parametrize(("narrow", "numbers"), [
    (["--runtime", "onnxruntime", "--precision", "fp32"], [3, 2]),
    (["--target", "edge", "--precision", "fp32"], [3, 2]),
    (["--target", "edge", "--precision", "fp16"], [4]),
    (["--target", "local"], [1, 0]),
    (["--runtime", "torch"], [1, 0]),
    (["--device", "ARM", "--precision", "fp32"], [3, 2]),
])
def test_filters_narrow_a_mixed_study(capsys, db, narrow, numbers) -> None:
    document = _json(capsys, "pareto", "mixed", *narrow, "--storage", db)
    assert [t["number"] for t in document["trials"]] == numbers
    assert len(document["runtimes"]) == len(document["precisions"]) == 1
    assert len(document["targets"]) == 1 and len(document["devices"]) == 1


def test_the_front_says_where_it_was_measured_and_where_it_trained(capsys, db) -> None:
    document = _json(capsys, "pareto", "edge", "--storage", db)
    assert document["devices"] == [EDGE] and document["trained_on"] == [TRAINED]
    assert document["runtimes"] == ["onnxruntime"] and document["targets"] == ["edge"]
    assert document["measured_with"] == f"onnxruntime fp32 on target edge (trained on {TRAINED})"
    for trial in document["trials"]:
        assert trial["measured_node"] == EDGE_NODE and trial["node"] == TRAIN_NODE
        assert trial["measured_host"] == "10.0.0.9" and trial["host"] == "10.0.0.1"
        assert trial["measured_device"] == EDGE and trial["device"] == TRAINED
    code, out, _ = run(capsys, "pareto", "edge", "--storage", db)
    header = out.splitlines()[1]
    assert code == 0 and f"; device: {EDGE}; input: 180x320; measured with: onnxruntime fp32 " \
        f"on target edge (trained on {TRAINED}); budgets: none" in header
    # Constant on every row: said once above, no column of its own.
    titles = out.split("\n\n")[-1].splitlines()[0].split()
    assert not {"runtime", "precision", "target", "measured_node"} & set(titles)


def test_the_table_shows_conditions_that_differ_between_rows(db) -> None:
    study = optuna.load_study(study_name="mixed", storage=db)
    frame = trials_frame(study)
    assert list(frame["runtime"]) == ["torch", "torch", "onnxruntime", "onnxruntime",
                                      "onnxruntime"]
    assert list(frame["measured_device"]) == [TRAINED, TRAINED, EDGE, EDGE, EDGE]
    assert [t if isinstance(t, str) else None for t in frame["target"]] == [
        None, None, "edge", "edge", "edge"]
    from srnas.studies import render

    # Two targets on one front is refused, but a frame narrowed by hand may hold both: the
    # table then shows the columns (trial 0 local, trial 2 on edge).
    candidates = frame[frame["number"].isin([0, 2])].copy()
    candidates.attrs = {**frame.attrs, "studies": ["mixed"]}
    titles, rows, _ = render._front_rows(candidates)
    assert {"runtime", "target", "measured_device", "measured_node"} <= set(titles)
    target = titles.index("target")
    assert [r[target] for r in rows] == ["local", "edge"]


@pytest.mark.parametrize(("argv", "line"), [
    (["--runtime", "openvino"], "--runtime: no feasible complete trial was measured with it; "
     "runtimes: onnxruntime, torch (got 'openvino')"),
    (["--target", "jetson"], "--target: no feasible complete trial was measured on it; "
     "targets: edge, local (got 'jetson')"),
    (["--precision", "bf16"], "--precision: no feasible complete trial was measured at it; "
     "precisions: fp16, fp32 (got 'bf16')"),
    (["--runtime", "tvm"], "--runtime: must be one of torch, onnxruntime, openvino, tensorrt "
     "(got 'tvm')"),
])
def test_a_filter_that_keeps_nothing_is_one_line(capsys, db, argv, line) -> None:
    got = assert_usage_error(capsys, "pareto", "mixed", *argv, "--storage", db)
    assert got == f"srnas pareto: error: {line}"


def test_all_studies_mixing_runtimes_is_refused(capsys, db) -> None:
    line = assert_usage_error(capsys, "pareto", "--all-studies", "--storage", db)
    assert "2 runtimes (onnxruntime, torch)" in line and "--all-studies" in line
    document = _json(capsys, "pareto", "--all-studies", "--target", "edge", "--precision",
                     "fp32", "--storage", db)
    assert {t["study"] for t in document["trials"]} == {"mixed", "edge"}


def test_plot_names_device_runtime_and_target(capsys, db, tmp_path) -> None:
    html = tmp_path / "edge.html"
    code, _, err = run(capsys, "plot", "mixed", "--target", "edge", "--precision", "fp32",
                       "--storage", db, "--out", str(html))
    assert code == 0, err
    text = html.read_text()
    assert f"mixed on {EDGE} at input 180x320, onnxruntime fp32 on target edge" in text
    assert "latency (ms, median; onnxruntime fp32)" in text
    png = tmp_path / "mixed.png"
    line = assert_usage_error(capsys, "plot", "mixed", "--storage", db, "--out", str(png))
    assert "2 runtimes" in line and not png.exists()


def test_plot_leaves_out_grey_points_of_other_conditions(db) -> None:
    from srnas.studies.plot import plot_layers

    study = optuna.load_study(study_name="mixed", storage=db)
    others, candidates, _, title = plot_layers(study, None, None, None, {
        "runtime": None, "precision": None, "target": "local"})
    assert sorted(candidates["number"]) == [0, 1] and others.empty  # no edge trial in grey
    assert "torch fp32 where each trial trained" in title


def test_export_records_where_it_was_measured_and_trained(capsys, db, tmp_path) -> None:
    out = tmp_path / "edge.yaml"
    code, printed, err = run(capsys, "export", "mixed", "--trial", "2", "--out", str(out),
                             "--storage", db)
    assert code == 0, err
    assert f"latency/memory measured with onnxruntime fp32 on {EDGE} (on target edge)" in printed
    provenance = yaml.safe_load(out.read_text())["provenance"]
    assert provenance["measured_with"] == {
        "runtime": "onnxruntime", "precision": "fp32", "target": "edge", "device": EDGE,
        "host": "10.0.0.9", "node": EDGE_NODE, "threads": 1, "runtime_version": "1.22.0",
        "runtime_check_max_abs_diff": 2e-6, "memory_method": "proxy:torch-cpu-live-tensors",
        "measure_seconds": 1.5, "measure_dispatch_seconds": 0.25,
        "runtime_settings": {"intra_op_num_threads": 1}}
    assert provenance["trained_on"] == {"device": TRAINED, "host": "10.0.0.1",
                                        "node": TRAIN_NODE}
    local = tmp_path / "local.json"
    assert run(capsys, "export", "mixed", "--trial", "0", "--out", str(local), "--storage",
               db)[0] == 0
    plain = json.loads(local.read_text())["provenance"]["measured_with"]
    assert (plain["runtime"], plain["precision"], plain["target"]) == ("torch", "fp32", None)
    assert plain["device"] == TRAINED and plain["node"] == TRAIN_NODE


@pytest.mark.parametrize(("argv", "line"), [
    (["--trial", "2", "--runtime", "torch"], "--runtime: trial 2 was measured with onnxruntime "
     "(got 'torch')"),
    (["--trial", "0", "--target", "edge"], "--target: trial 0 was measured where it trained "
     "(no target) (got 'edge')"),
    (["--trial", "2", "--target", "local"], "--target: trial 2 was measured on target edge "
     "(got 'local')"),
    (["--trial", "4", "--precision", "fp32"], "--precision: trial 4 was measured at fp16 "
     "(got 'fp32')"),
    (["--trial", "2", "--device", "Xeon"], f"--device: trial 2 was measured on '{EDGE}' "
     "(got 'Xeon')"),
])
def test_export_of_a_trial_checks_its_conditions(capsys, db, tmp_path, argv, line) -> None:
    out = tmp_path / "x.yaml"
    got = assert_usage_error(capsys, "export", "mixed", *argv, "--out", str(out), "--storage",
                             db)
    assert got == f"srnas export: error: {line}" and not out.exists()


def test_export_pick_ranks_under_one_set_of_conditions(capsys, db, tmp_path) -> None:
    out = tmp_path / "pick.json"
    line = assert_usage_error(capsys, "export", "mixed", "--pick", "min-latency", "--out",
                              str(out), "--storage", db)
    assert "2 runtimes" in line and not out.exists()
    assert run(capsys, "export", "mixed", "--pick", "min-latency", "--target", "edge",
               "--precision", "fp32", "--out", str(out), "--storage", db)[0] == 0
    provenance = json.loads(out.read_text())["provenance"]
    assert provenance["trial"] == 2  # 40 ms: the fastest fp32 trial on edge (0 is local)
    assert provenance["selection"]["target"] == "edge"
    assert provenance["selection"]["precision"] == "fp32"


def test_the_notebook_api_filters_too(db) -> None:
    study = optuna.load_study(study_name="mixed", storage=db)
    front = pareto_front(study, target="edge", precision="fp16")
    assert list(front["number"]) == [4] and front.attrs["precisions"] == ["fp16"]
    assert front.attrs["targets"] == ["edge"] and front.attrs["trained_on"] == [TRAINED]


def test_a_frame_read_without_the_columns_reads_as_an_older_study(db) -> None:
    from srnas.studies import frame as frames

    study = optuna.load_study(study_name="known", storage=db)
    front = pareto_front(frames.trials_frame(study))
    assert front.attrs["runtimes"] == ["torch"] and front.attrs["targets"] == [None]
