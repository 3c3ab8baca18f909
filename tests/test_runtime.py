"""Deployment runtimes: the registry's refusals, the missing-extra line, each CPU runtime's output
against PyTorch on real photographs (Set5), a wrong or broken graph as a RuntimeCheckError, and
the conditions a runtime measurement records."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from srnas.evaluators.data import load_image
from srnas.evaluators.deploy import export_onnx
from srnas.evaluators.latency import fixed_input
from srnas.evaluators.memory import measure_memory
from srnas.evaluators.runtime import (
    RUNTIMES,
    TOLERANCE,
    RuntimeCheckError,
    RuntimeUnavailable,
    check_runtime,
    get_runtime,
    measure_runtime,
    supported_precisions,
)
from srnas.space.errors import ConfigError
from srnas.space.network import build_model
from srnas.space.presets import get_preset

FAST = dict(warmup=1, runs=3, min_warmup_s=0.0, min_timed_s=0.0)
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
openvino = pytest.mark.skipif(not HAS_OPENVINO, reason="openvino not installed (srnas[openvino])")
CPU_RUNTIMES = ["onnxruntime", pytest.param("openvino", marks=openvino)]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def _private_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SRNAS_LOCK_DIR", str(tmp_path))


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(get_preset("tiny", scale=4))


@pytest.fixture(scope="module")
def tiny_onnx(tiny: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export shared by the module's tests (the exporter takes seconds)."""
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(tiny, path)
    return path


# ---- the registry's refusals ---------------------------------------------------------------


def test_the_registry_names_every_runtime() -> None:
    assert list(RUNTIMES) == ["torch", "onnxruntime", "openvino", "tensorrt"]
    assert RUNTIMES["openvino"].extra == "openvino" and RUNTIMES["tensorrt"].extra == "tensorrt"
    assert "proxy" in RUNTIMES["onnxruntime"].memory


@pytest.mark.parametrize(("runtime", "precision", "device", "field", "rule"), [
    ("onnxruntime", "fp16", "cpu", "precision", "onnxruntime on cpu supports fp32 only"),
    ("onnxruntime", "bf16", "cpu", "precision", "onnxruntime on cpu supports fp32 only"),
    ("torch", "fp16", "cpu", "precision", "torch on cpu supports fp32, bf16 only"),
    ("tensorrt", "fp32", "cpu", "runtime", "tensorrt runs on cuda, not on the cpu device"),
    ("tvm", "fp32", "cpu", "runtime", "must be one of torch, onnxruntime, openvino, tensorrt"),
    ("torch", "int8", "cpu", "precision", "must be one of fp32, fp16, bf16"),
])
def test_refused_combinations_are_one_line(runtime, precision, device, field, rule) -> None:
    with pytest.raises(ConfigError) as info:
        check_runtime(runtime, precision, device)
    assert info.value.field == field and info.value.rule == rule
    assert "\n" not in str(info.value)


@cuda
@pytest.mark.gpu
def test_bf16_under_tensorrt_is_refused() -> None:
    pytest.importorskip("tensorrt")
    with pytest.raises(ConfigError, match="tensorrt on cuda supports fp32, fp16 only"):
        check_runtime("tensorrt", "bf16", "cuda")


def test_precisions_the_cpu_runtimes_offer() -> None:
    assert supported_precisions("onnxruntime", "cpu") == ("fp32",)
    assert supported_precisions("torch", "cpu") == ("fp32", "bf16")
    assert supported_precisions("tensorrt", "cpu") == ()  # not a CPU runtime: no import needed
    if HAS_OPENVINO:
        assert supported_precisions("openvino", "cpu")[0] == "fp32"


@pytest.mark.parametrize(("runtime", "precision", "device", "extra"), [
    ("openvino", "fp32", "cpu", "srnas[openvino]"),
    ("tensorrt", "fp16", "cuda", "srnas[tensorrt]"),
])
def test_a_missing_runtime_names_its_extra(monkeypatch, runtime, precision, device,
                                           extra) -> None:
    entry = get_runtime(runtime)
    monkeypatch.setitem(RUNTIMES, runtime, entry)
    real = importlib.import_module

    def no_package(name: str, package: str | None = None):
        if name == entry.package:
            raise ImportError(f"No module named {name!r}")
        return real(name, package)

    monkeypatch.setattr("srnas.evaluators.runtime.importlib.import_module", no_package)
    if device == "cuda" and not torch.cuda.is_available():
        with pytest.raises(RuntimeUnavailable) as info:
            entry.load_backend()
    else:
        with pytest.raises(RuntimeUnavailable) as info:
            check_runtime(runtime, precision, device)
    assert str(info.value) == f"runtime: {runtime} is not installed: pip install {extra} " \
                              f"(got {runtime!r})"


# ---- output against PyTorch ----------------------------------------------------------------


def _lr_images(root: Path) -> list[tuple[str, np.ndarray]]:
    folder = root / "Set5" / "LR_bicubic" / "X4"
    return [(p.name, load_image(p)) for p in sorted(folder.glob("*.png"))]


@pytest.mark.parametrize("runtime", CPU_RUNTIMES)
def test_runtime_output_equals_pytorch_on_set5(runtime, tiny, tiny_onnx, benchmark_root) -> None:
    backend = get_runtime(runtime).load_backend()
    net = build_model(tiny.config).eval()
    net.load_state_dict(tiny.state_dict())
    net.deploy()
    images = _lr_images(benchmark_root)
    assert len(images) == 5
    for name, image in images:
        x = torch.tensor(image).permute(2, 0, 1)[None].float().div(255).contiguous()
        with torch.inference_mode():
            expected = net(x).numpy()
        session = backend.load(tiny_onnx, x.numpy(), torch.device("cpu"), "fp32", 1)
        got = session.output()
        assert got.shape == (1, 3, 4 * image.shape[0], 4 * image.shape[1]), name
        assert np.abs(got - expected).max() <= TOLERANCE["fp32"], name


# ---- measurements --------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", CPU_RUNTIMES)
def test_a_runtime_measurement_records_its_conditions(runtime, tiny, tiny_onnx) -> None:
    result = measure_runtime(tiny, (32, 40), "cpu", runtime=runtime, threads=1,
                             onnx_path=tiny_onnx, **FAST)
    lat = result.latency
    assert lat.runtime == runtime and lat.runtime_version
    assert lat.threads == 1 and lat.dtype == "float32" and lat.input_hw == (32, 40)
    assert lat.runs == 3 and lat.warmup == 1 and 0 < lat.min_ms <= lat.median_ms
    knob = "intra_op_num_threads" if runtime == "onnxruntime" else "INFERENCE_NUM_THREADS"
    assert lat.settings[knob] == 1  # what the runtime reports back, not what was asked
    if runtime == "openvino":
        assert lat.settings["INFERENCE_PRECISION_HINT"] == "f32"
    assert 0 <= result.check_max_abs_diff <= TOLERANCE["fp32"]
    # Memory: the labelled proxy, equal to PyTorch's own count for the same network and input.
    assert result.memory_is_proxy and result.memory.method == "proxy:torch-cpu-live-tensors"
    assert result.memory.peak_bytes == measure_memory(tiny.deploy(), (32, 40)).peak_bytes
    fields = result.fields()
    assert (fields["runtime"], fields["precision"], fields["threads"]) == (runtime, "fp32", 1)
    assert fields["device"].startswith("cpu: ")


def test_torch_runtime_is_the_eager_measurement(tiny) -> None:
    result = measure_runtime(tiny, (16, 16), "cpu", runtime="torch", precision="bf16",
                             threads=1, **FAST)
    assert result.latency.runtime == "torch" and result.latency.dtype == "bfloat16"
    assert result.memory.method == "cpu-live-tensors" and not result.memory_is_proxy
    assert result.check_max_abs_diff is None


@openvino
def test_openvino_bf16_is_checked_at_its_own_tolerance(tiny, tiny_onnx) -> None:
    if "bf16" not in supported_precisions("openvino", "cpu"):
        pytest.skip("this CPU has no bf16 in OpenVINO's capabilities")
    result = measure_runtime(tiny, (32, 32), "cpu", runtime="openvino", precision="bf16",
                             threads=1, onnx_path=tiny_onnx, **FAST)
    assert result.latency.settings["INFERENCE_PRECISION_HINT"] == "bf16"
    assert TOLERANCE["fp32"] < result.check_max_abs_diff <= TOLERANCE["bf16"]  # really bf16
    assert result.memory.peak_bytes < measure_memory(tiny, (32, 32)).peak_bytes


def test_a_graph_of_another_network_is_a_check_failure(tiny_onnx) -> None:
    torch.manual_seed(1)
    other = build_model(get_preset("tiny", scale=4))  # same shapes, other weights
    with pytest.raises(RuntimeCheckError, match=r"onnxruntime fp32 differs from PyTorch by "
                       r"[0-9.e+-]+ on the fixed input \(tolerance 0.0001\)"):
        measure_runtime(other, (32, 32), "cpu", runtime="onnxruntime", onnx_path=tiny_onnx,
                        **FAST)


@pytest.mark.parametrize("runtime", CPU_RUNTIMES)
def test_a_file_the_runtime_cannot_load_is_a_check_failure(runtime, tiny, tmp_path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx graph")
    with pytest.raises(RuntimeCheckError, match=f"^runtime: {runtime} cannot load the "
                       "exported network"):
        measure_runtime(tiny, (32, 32), "cpu", runtime=runtime, onnx_path=broken, **FAST)


def test_an_export_failure_is_a_check_failure(tiny, monkeypatch) -> None:
    def refuse(model, path):
        raise RuntimeError("Failed to export the model: aten::foo has no ONNX translation")

    monkeypatch.setattr("srnas.evaluators.runtime._export", refuse)
    with pytest.raises(RuntimeCheckError, match=r"the ONNX export failed \(RuntimeError: "
                       "Failed to export the model: aten::foo"):
        measure_runtime(tiny, (32, 32), "cpu", runtime="onnxruntime", **FAST)


def test_the_check_input_is_the_latency_input(tiny, tiny_onnx, monkeypatch) -> None:
    """The check runs on the fixed seeded input the timing uses (not another image)."""
    seen: list[np.ndarray] = []
    backend = get_runtime("onnxruntime").load_backend()
    real = backend.load

    def spy(path, x, *args):
        seen.append(x)
        return real(path, x, *args)

    monkeypatch.setattr(backend, "load", spy)
    measure_runtime(tiny, (24, 20), "cpu", runtime="onnxruntime", onnx_path=tiny_onnx, **FAST)
    assert np.array_equal(seen[0], fixed_input((24, 20), torch.device("cpu")).numpy())


# ---- CUDA (skipped without one) ------------------------------------------------------------


@cuda
@pytest.mark.gpu
def test_onnxruntime_cuda_provider(tiny, tiny_onnx) -> None:
    if "fp32" not in supported_precisions("onnxruntime", "cuda"):
        pytest.skip("onnxruntime-gpu (CUDAExecutionProvider) not installed")
    for precision in supported_precisions("onnxruntime", "cuda"):
        result = measure_runtime(tiny, (64, 64), "cuda", runtime="onnxruntime",
                                 precision=precision, onnx_path=tiny_onnx, **FAST)
        assert result.latency.settings["providers"][0] == "CUDAExecutionProvider"
        assert result.latency.device.startswith("cuda: ")


@cuda
@pytest.mark.gpu
def test_tensorrt_fp32_and_fp16(tiny, tiny_onnx) -> None:
    pytest.importorskip("tensorrt")
    for precision in ("fp32", "fp16"):
        result = measure_runtime(tiny, (64, 64), "cuda", runtime="tensorrt",
                                 precision=precision, onnx_path=tiny_onnx, **FAST)
        assert result.latency.settings["fp16"] is (precision == "fp16")
        assert result.memory.method.startswith("tensorrt-engine") and not result.memory_is_proxy
        assert result.memory.peak_bytes > 0
