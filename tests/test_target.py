"""Measurement on a target node, on a real two-node Ray cluster (``ray.cluster_utils.Cluster``):
a head, and a second node with no CPU that advertises ``srnas-target-edge``. The measurement
runs there (its node id is the second node's), a target nobody advertises is one line, a
runtime/precision the target lacks is refused by the target itself, and a target that leaves
mid-measurement fails that measurement with the reason."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from srnas.evaluators.runtime import RuntimeSpec  # noqa: E402
from srnas.search.target import (  # noqa: E402
    TargetLost,
    check_target,
    measure_on_target,
    resource,
    target_measurer,
    target_name,
)
from srnas.space.errors import ConfigError  # noqa: E402
from srnas.space.network import build_model  # noqa: E402
from srnas.space.presets import get_preset  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(300)]
FAST = dict(warmup=1, runs=3, min_warmup_s=0.0, min_timed_s=0.0)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if ray.is_initialized():
        ray.shutdown()  # the session's local Ray, if an earlier module started one
    saved = os.environ.get("SRNAS_LOCK_DIR")
    os.environ["SRNAS_LOCK_DIR"] = str(tmp_path_factory.mktemp("locks"))  # nodes inherit it
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    edge = c.add_node(num_cpus=0, resources={resource("edge"): 1})
    c.wait_for_nodes()
    ray.init(address=c.address, logging_level=logging.ERROR, log_to_driver=False)
    try:
        yield {"cluster": c, "edge": edge, "head": c.head_node}
    finally:
        ray.shutdown()
        c.shutdown()
        if saved is None:
            os.environ.pop("SRNAS_LOCK_DIR", None)
        else:
            os.environ["SRNAS_LOCK_DIR"] = saved


def test_target_names() -> None:
    assert resource("jetson-orin.1") == "srnas-target-jetson-orin.1"
    with pytest.raises(ConfigError, match=r"^target: must be letters, digits"):
        target_name("a b")


def test_a_target_no_node_advertises_is_one_line(cluster) -> None:
    with pytest.raises(ConfigError) as info:
        check_target("jetson")
    message = str(info.value)
    assert message.startswith("target: no node of the Ray cluster advertises the resource "
                              "srnas-target-jetson (targets offered: edge); `ray status` lists")
    assert "--resources '{\"srnas-target-jetson\": 1}'" in message and "\n" not in message


def test_the_target_checks_the_runtime_itself(cluster) -> None:
    where = check_target("edge", RuntimeSpec("onnxruntime"), device="cpu")
    assert where["node"] == cluster["edge"].node_id != cluster["head"].node_id
    with pytest.raises(ConfigError, match=r"^precision: onnxruntime on cpu supports fp32 only"):
        check_target("edge", RuntimeSpec("onnxruntime", "fp16"), device="cpu")


def test_a_measurement_runs_on_the_target_node(cluster) -> None:
    config = get_preset("tiny", scale=4)
    done = measure_on_target(config, (32, 32), "edge", RuntimeSpec("onnxruntime", options=FAST),
                             device="cpu")
    assert done.node == cluster["edge"].node_id  # the node id Ray gave the second node
    assert done.node != ray.get_runtime_context().get_node_id()  # not the driver's (head)
    fields = done.fields()
    assert fields["runtime"] == "onnxruntime" and fields["measured_node"] == done.node
    assert fields["measured_device"].startswith("cpu: ")
    assert 0 < done.task_seconds <= done.total_seconds
    assert done.measurement.check_max_abs_diff <= 1e-4
    assert done.measurement.latency.input_hw == (32, 32)


def test_target_measurer_is_evaluates_measure_hook(cluster) -> None:
    measure = target_measurer("edge", RuntimeSpec("onnxruntime", options=FAST), device="cpu")
    done = measure(build_model(get_preset("tiny", scale=4)), (24, 24), "cpu")
    conditions = done.conditions()  # what evaluate() records beside the figures
    assert conditions["measured_node"] == cluster["edge"].node_id
    assert conditions["runtime"] == "onnxruntime" and conditions["target"] == "edge"
    assert done.latency.input_hw == (24, 24) and done.memory.method.startswith("proxy:")


def test_a_target_that_leaves_fails_the_waiting_measurement(cluster) -> None:
    config = get_preset("tiny", scale=4)
    long = RuntimeSpec("torch", options={**FAST, "min_timed_s": 120.0, "runs": 10**6})
    outcome: dict[str, BaseException | object] = {}

    def measure() -> None:
        try:
            outcome["result"] = measure_on_target(config, (32, 32), "edge", long, device="cpu")
        except BaseException as exc:  # the test inspects it
            outcome["error"] = exc

    thread = threading.Thread(target=measure)
    thread.start()
    time.sleep(8)  # the task is placed and timing (120 s of timed runs)
    assert thread.is_alive()
    started = time.monotonic()
    cluster["cluster"].remove_node(cluster["edge"])
    thread.join(90)
    assert not thread.is_alive()
    error = outcome.get("error")
    assert isinstance(error, TargetLost), outcome
    assert str(error).startswith("target: the node advertising srnas-target-edge ")
    assert "the measurement did not finish" in str(error)
    assert time.monotonic() - started < 90
    with pytest.raises(ConfigError, match="no node of the Ray cluster advertises"):
        check_target("edge")  # and the next trial is told before it starts

