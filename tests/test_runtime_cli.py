"""``srnas evaluate --runtime/--precision``: refusals in one line before anything runs, a
missing runtime naming its extra, and a run whose result says runtime, precision, threads and
device apart."""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path

import pytest

from srnas.evaluators.runtime import RuntimeCheckError
from tests.cli import assert_usage_error, run

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
EVAL = ("evaluate", "tiny", "--scale", "4", "--steps", "2", "--batch-size", "2",
        "--patch-size", "32")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SRNAS_LOCK_DIR", str(tmp_path / "locks"))
    return tmp_path


@pytest.mark.parametrize(("flags", "line"), [
    (("--runtime", "onnxruntime", "--precision", "fp16"),
     "srnas evaluate: error: --precision: onnxruntime on cpu supports fp32 only (got 'fp16')"),
    (("--runtime", "tensorrt", "--device", "cpu"),
     "srnas evaluate: error: --runtime: tensorrt runs on cuda, not on the cpu device "
     "(got 'tensorrt')"),
    (("--runtime", "tvm"), "srnas evaluate: error: --runtime: must be one of torch, "
     "onnxruntime, openvino, tensorrt (got 'tvm')"),
    (("--precision", "int8"),
     "srnas evaluate: error: --precision: must be one of fp32, fp16, bf16 (got 'int8')"),
    (("--precision", "fp16", "--device", "cpu"),
     "srnas evaluate: error: --precision: torch on cpu supports fp32, bf16 only (got 'fp16')"),
])
def test_refused_before_anything_runs(capsys, _isolated, flags, line) -> None:
    assert assert_usage_error(capsys, *EVAL, *flags) == line
    assert list(_isolated.iterdir()) == []


def test_a_missing_runtime_is_one_line_naming_the_extra(capsys, monkeypatch) -> None:
    real = importlib.import_module

    def no_openvino(name: str, package: str | None = None):
        if name == "openvino":
            raise ImportError("No module named 'openvino'")
        return real(name, package)

    monkeypatch.setattr("srnas.evaluators.runtime.importlib.import_module", no_openvino)
    line = assert_usage_error(capsys, *EVAL, "--runtime", "openvino", "--device", "cpu")
    assert line == ("srnas evaluate: error: --runtime: openvino is not installed: "
                    "pip install srnas[openvino] (got 'openvino')")


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["onnxruntime", pytest.param("openvino", marks=(
    pytest.mark.skipif(not HAS_OPENVINO, reason="openvino not installed")))])
def test_evaluate_under_a_runtime_reports_its_conditions(capsys, runtime) -> None:
    code, out, err = run(capsys, *EVAL, "--runtime", runtime, "--device", "cpu",
                         "--format", "json")
    assert code == 0, err
    result = json.loads(out)  # one record: one JSON object
    assert result["runtime"] == runtime and result["precision"] == "fp32"
    assert result["device"].startswith("cpu: ") and result["threads"] >= 1
    knob = "intra_op_num_threads" if runtime == "onnxruntime" else "INFERENCE_NUM_THREADS"
    assert result["runtime_settings"][knob] == result["threads"]
    assert result["memory_method"] == "proxy:torch-cpu-live-tensors"
    assert result["runtime_check_max_abs_diff"] <= 1e-4
    assert result["eager_latency_ms"] > 0 and result["latency_ms"] > 0
    assert "runtime" in result["phase_seconds"]


@pytest.mark.slow
def test_a_network_the_runtime_refuses_is_a_failed_evaluation(capsys, monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise RuntimeCheckError("runtime", "onnxruntime cannot run the exported network "
                                "(Fail: a kernel is missing)", "onnxruntime")

    monkeypatch.setattr("srnas.evaluators.runtime.measure_runtime", refuse)
    code, out, err = run(capsys, *EVAL, "--runtime", "onnxruntime", "--device", "cpu",
                         "--format", "json")
    assert code == 1 and "Traceback" not in err
    result = json.loads(out)
    assert result["status"] == "failed"
    assert "onnxruntime cannot run the exported network" in result["failure_reason"]
    assert "latency_ms" not in result and result["eager_latency_ms"] > 0
