"""Device resolution and the latency protocol (no assertions on speed: benchmarks report it)."""

from __future__ import annotations

import platform
import threading
from pathlib import Path

import pytest
import torch

import srnas.evaluators.latency as latency_mod
from srnas.evaluators.device import (
    CpuSample,
    device_name,
    environment,
    foreign_cpu,
    pin_malloc_thresholds,
    resolve_device,
)
from srnas.evaluators.flops import measure_complexity
from srnas.evaluators.latency import (
    LatencyResult,
    cpu_default_input_hw,
    default_latency_input_hw,
    measure_latency,
)
from srnas.evaluators.lock import DeviceLockTimeout, device_lock
from srnas.space.errors import SrnasError
from srnas.space.network import build_model, count_params
from srnas.space.presets import get_preset

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
FAST = dict(warmup=1, runs=3, min_warmup_s=0.0, min_timed_s=0.0)


@pytest.fixture(autouse=True)
def _private_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SRNAS_LOCK_DIR", str(tmp_path))


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    return build_model(get_preset("tiny", scale=4))


# ---- device ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cpu", "CPU", " cpu "])
def test_resolve_cpu(name: str) -> None:
    assert resolve_device(name) == torch.device("cpu")


@pytest.mark.parametrize("name", ["tpu", "cuda:x", "cpu:0", "", "cuda:-1", "gpu"])
def test_resolve_rejects_unknown_names(name: str) -> None:
    with pytest.raises(SrnasError, match=r"^device: must be 'cpu', 'cuda' or 'cuda:N'") as info:
        resolve_device(name)
    assert "\n" not in str(info.value) and repr(name) in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_resolve_cuda_without_cuda_is_one_line(name: str) -> None:
    with pytest.raises(SrnasError, match=r"^device: CUDA was asked for but no CUDA device"):
        resolve_device(name)


def test_device_name_and_environment() -> None:
    cpu = torch.device("cpu")
    assert device_name(cpu).startswith("cpu: ") and len(device_name(cpu)) > 5
    env = environment(cpu)
    assert env["torch"] == torch.__version__
    assert env["threads"] == torch.get_num_threads()
    assert env["dtype"] == "float32"
    assert "cuda" not in env


def test_foreign_cpu_is_other_processes_cores() -> None:
    start = CpuSample(wall_s=0.0, machine_busy_s=10.0, process_s=1.0)
    assert foreign_cpu(start, CpuSample(2.0, 13.0, 2.0)) == pytest.approx(1.0)
    assert foreign_cpu(start, CpuSample(2.0, 11.9, 3.0)) == 0.0  # tick rounding never < 0
    assert foreign_cpu(start, CpuSample(2.0, None, 3.0)) is None


def test_pin_malloc_thresholds_is_idempotent() -> None:
    first = pin_malloc_thresholds()
    assert pin_malloc_thresholds() is first
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert first


# ---- default sizes --------------------------------------------------------------------------


def test_default_input_sizes() -> None:
    assert cpu_default_input_hw(4) == (64, 64)
    assert cpu_default_input_hw(3) == (85, 85)
    assert cpu_default_input_hw(2) == (128, 128)
    assert default_latency_input_hw(torch.device("cpu"), 4) == (64, 64)
    assert default_latency_input_hw(torch.device("cuda"), 4) == (180, 320)  # 1280x720 output
    assert default_latency_input_hw(torch.device("cuda"), 2) == (360, 640)


# ---- latency --------------------------------------------------------------------------------


def test_latency_result_records_conditions(tiny: torch.nn.Module) -> None:
    result = measure_latency(tiny, (16, 24), "cpu", **FAST)
    assert isinstance(result, LatencyResult)
    assert 0 < result.min_ms <= result.median_ms
    assert result.iqr_ms >= 0 and result.cv >= 0 and result.mean_ms > 0
    assert result.runs == 3 and result.warmup == 1
    assert result.input_hw == (16, 24)
    assert result.device == device_name(torch.device("cpu"))
    assert result.dtype == "float32" and result.threads == torch.get_num_threads()
    assert result.torch_version == torch.__version__
    if Path("/proc/stat").exists():
        assert result.foreign_cpu is not None and result.foreign_cpu >= 0
    d = result.to_dict()
    assert d["input_hw"] == [16, 24] and d["median_ms"] == result.median_ms


def test_latency_leaves_the_model_as_it_was(tiny: torch.nn.Module) -> None:
    tiny.train()
    params = [p.detach().clone() for p in tiny.parameters()]
    measure_latency(tiny, (16, 16), "cpu", **FAST)
    measure_latency(tiny, (16, 16), "cpu", dtype=torch.float64, **FAST)
    assert tiny.training
    assert all(p.dtype == torch.float32 for p in tiny.parameters())
    assert all(torch.equal(a, b) for a, b in zip(params, tiny.parameters(), strict=True))


def test_latency_default_input_comes_from_the_scale(tiny: torch.nn.Module) -> None:
    assert measure_latency(tiny, device="cpu", **FAST).input_hw == cpu_default_input_hw(4)


class _FakeClock:
    """A ``time`` stand-in on which time passes only while the model runs (1 ms a forward), so
    the minimum-time loops run a known number of times, whatever the machine's speed."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


_CLOCK = _FakeClock()  # module-level: a copied model still ticks this one


class _Ticking(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _CLOCK.now += 1e-3
        return self.inner(x)


def test_minimum_times_extend_the_run_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(latency_mod, "time", _CLOCK)
    model = _Ticking(torch.nn.Conv2d(3, 3, 1))  # the loops are under test, not the network

    def measure(warmup: int, runs: int, min_s: float) -> LatencyResult:
        return measure_latency(model, (8, 8), "cpu", warmup=warmup, runs=runs,
                               min_warmup_s=min_s, min_timed_s=min_s)

    bare = measure(1, 2, 0.0)
    assert (bare.warmup, bare.runs) == (1, 2)  # no minimum time: exactly the counts asked for
    short = measure(1, 2, 0.05)
    assert short.warmup > 1 and short.runs > 2
    longer = measure(1, 2, 0.1)
    assert longer.warmup > short.warmup and longer.runs > short.runs
    assert longer.runs * longer.mean_ms >= 100 - 1e-6  # fake ms: timed until the minimum
    many = measure(80, 120, 0.05)  # counts that outlast the minimum times are kept
    assert (many.warmup, many.runs) == (80, 120)


class _Slow(_Ticking):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _CLOCK.now += 1.5  # a network of 1.5 s a forward
        return self.inner(x)


def test_slow_networks_stop_at_the_floor_of_runs_once_past_the_maximum_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(latency_mod, "time", _CLOCK)
    slow = measure_latency(_Slow(torch.nn.Conv2d(3, 3, 1)), (8, 8), "cpu", warmup=10, runs=30)
    # Warm-up: 2 runs take 3 s > MAX_WARMUP_S; timed: 5 runs take 7.5 s > MAX_TIMED_S.
    assert (slow.warmup, slow.runs) == (latency_mod.MIN_WARMUP_RUNS, latency_mod.MIN_RUNS)
    assert slow.median_ms == pytest.approx(1500.0)


def test_time_runs_is_the_loop_every_runtime_shares(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(latency_mod, "time", _CLOCK)
    calls: list[str] = []
    settled: list[int] = []

    def run() -> None:  # a runtime's one inference: 2 fake ms
        _CLOCK.now += 2e-3
        calls.append("run")

    timing = latency_mod.time_runs(run, latency_mod.wall_ms(run), warmup=3, runs=4,
                                   min_warmup_s=0.0, min_timed_s=0.0,
                                   settle=lambda: settled.append(len(calls)))
    assert (timing.warmup, len(timing.times), len(calls)) == (3, 4, 7)
    assert settled == [3]  # after the warm-up, before the first timed run
    assert timing.times == pytest.approx([2.0] * 4)
    result = latency_mod.latency_result(timing, (8, 8), torch.device("cpu"), "float32", 1,
                                        runtime="onnxruntime", settings={"threads": 1})
    assert (result.median_ms, result.iqr_ms, result.runs) == (pytest.approx(2.0), 0.0, 4)
    assert result.runtime == "onnxruntime" and result.to_dict()["settings"] == {"threads": 1}


def test_threads_are_set_for_the_measurement_only(tiny: torch.nn.Module) -> None:
    before = torch.get_num_threads()
    assert measure_latency(tiny, (16, 16), "cpu", threads=1, **FAST).threads == 1
    assert torch.get_num_threads() == before


def test_bad_arguments(tiny: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="runs >= 2"):
        measure_latency(tiny, (16, 16), "cpu", runs=1)
    with pytest.raises(ValueError, match="threads"):
        measure_latency(tiny, (16, 16), "cpu", threads=0, **FAST)
    with pytest.raises(ValueError, match="input_hw is required"):
        measure_latency(torch.nn.Conv2d(3, 3, 1), device="cpu", **FAST)


def _hold_from_another_thread(ready: threading.Event, done: threading.Event) -> None:
    with device_lock("cpu"):
        ready.set()
        done.wait(10)


def test_latency_waits_for_the_device_lock(tiny: torch.nn.Module) -> None:
    ready, done = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_from_another_thread, args=(ready, done))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(DeviceLockTimeout):
            measure_latency(tiny, (16, 16), "cpu", lock_timeout_s=0.1, **FAST)
        # lock=False is for a caller that serialises on its own terms.
        assert measure_latency(tiny, (16, 16), "cpu", lock=False, **FAST).runs == 3
    finally:
        done.set()
        holder.join()


def test_latency_reenters_a_lock_the_caller_holds(tiny: torch.nn.Module) -> None:
    with device_lock("cpu", timeout_s=1):
        assert measure_latency(tiny, (16, 16), "cpu", lock_timeout_s=0.1, **FAST).runs == 3


# ---- complexity -----------------------------------------------------------------------------


def test_complexity_wrapper_counts_the_shared_kernel_once(tiny: torch.nn.Module) -> None:
    figures = measure_complexity(tiny, (32, 32))
    assert figures["params"] == count_params(tiny)
    assert figures["flops"] > 0
    assert measure_complexity(tiny, (64, 64))["flops"] > figures["flops"]


# ---- CUDA -----------------------------------------------------------------------------------


@pytest.mark.gpu
@gpu
def test_cuda_latency(tiny: torch.nn.Module) -> None:
    device = resolve_device("cuda")
    result = measure_latency(tiny, (32, 32), device, warmup=2, runs=5)
    assert result.device.startswith("cuda: ") and 0 < result.min_ms <= result.median_ms
    assert next(tiny.parameters()).device.type == "cpu"  # measured on a copy
    assert torch.backends.cudnn.benchmark is False  # restored
    env = environment(device)
    assert env["cuda"] and env["cudnn"]
