"""Latency and memory measured on a target node of the Ray cluster: the device a network ships
to (a Jetson, an ARM server, a CPU box behind OpenVINO), while the trial trains where it is.

A node offers itself as target NAME by advertising the custom resource ``srnas-target-NAME``
(``ray start --address HEAD --num-cpus 0 --resources '{"srnas-target-NAME": 1}'``; ``--num-cpus
0`` keeps training trials off it). A measurement is a Ray task of its own that asks for one unit
of that resource and no CPU: with a capacity of 1 the node runs one measurement at a time, and
its device lock (``evaluators.lock``, node-local) keeps anything else that takes it off the
timed cores. The task builds the deployed network from the config there, exports it for the
runtime there (:func:`srnas.evaluators.runtime.measure_runtime`) and returns the figures with
where they were taken (node id, host, device name).

Failure modes, each one line:

* a target no node advertises: :func:`check_target` (call it before any trial starts);
* a target node that leaves while a measurement waits or runs: :class:`TargetLost` for that
  measurement (the task is not retried elsewhere: ``max_retries=0``), the caller records it;
* a network the runtime refuses: the task's :class:`RuntimeCheckError`, as on a local run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import ray

from srnas.evaluators.runtime import RuntimeMeasurement, RuntimeSpec
from srnas.space.config import ArchConfig
from srnas.space.errors import ConfigError, SrnasError

PREFIX = "srnas-target-"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
POLL_S = 1.0  # how often a waiting measurement checks that its target is still in the cluster


class TargetLost(SrnasError):
    """The target node left the cluster while a measurement waited for it or ran on it."""


def target_name(text: str) -> str:
    """A target name as ``--target`` takes it (letters, digits, '_', '.', '-')."""
    if not _NAME_RE.match(text):
        raise ConfigError("target", "must be letters, digits, '_', '.' or '-' (the node "
                          f"advertises {PREFIX}NAME)", text)
    return text


def resource(target: str) -> str:
    """The custom resource a node advertises to be target ``target``."""
    return PREFIX + target_name(target)


def _how(target: str) -> str:
    return (f"`ray status` lists each node's resources; a node offers this target with "
            f"ray start --address HEAD --num-cpus 0 --resources '{{\"{resource(target)}\": 1}}'")


def target_nodes(target: str) -> list[dict[str, Any]]:
    """The live nodes that advertise ``target`` (Ray's node records)."""
    key = resource(target)
    return [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get(key, 0) > 0]


def advertised_targets() -> list[str]:
    """Every target some node of the cluster advertises now."""
    return sorted(k.removeprefix(PREFIX) for k in ray.cluster_resources() if k.startswith(PREFIX))


def check_target(target: str, spec: RuntimeSpec | None = None, device: str = "auto",
                 timeout_s: float = 120.0) -> dict[str, Any]:
    """Refuse, in one line, a target that no node advertises; with ``spec``, also check on the
    target itself that its runtime and precision run there (the driver may lack the runtime the
    device has). Returns where the target is (node, host, device)."""
    if not target_nodes(target):
        offered = advertised_targets()
        rule = (f"no node of the Ray cluster advertises the resource {resource(target)}"
                + (f" (targets offered: {', '.join(offered)})" if offered else "")
                + f"; {_how(target)}")
        raise ConfigError("target", rule, target)
    ref = _options(target, _where).remote(spec, device)
    return _wait(ref, target, timeout_s)


def _options(target: str, fn: Any = None) -> Any:
    # num_cpus=0: a target node may offer no CPU to the cluster (so no trial trains there);
    # max_retries=0: a measurement whose node died must fail, not rerun on another node.
    # scheduling_strategy="DEFAULT": called from a Tune trial, the task would otherwise be
    # captured by the trial's placement group, whose bundle holds no target resource.
    task = fn or _task
    return task.options(num_cpus=0, resources={resource(target): 1}, max_retries=0,
                        scheduling_strategy="DEFAULT")


def _placement(device: Any) -> dict[str, Any]:
    from srnas.evaluators.device import device_name

    return {"node": ray.get_runtime_context().get_node_id(),
            "host": ray.util.get_node_ip_address(), "device": device_name(device)}


def _resolve(device: str) -> Any:
    import torch

    from srnas.evaluators.device import resolve_device

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return resolve_device(device)


@ray.remote
def _where(spec: RuntimeSpec | None, device: str) -> dict[str, Any]:
    from srnas.evaluators.runtime import check_runtime

    dev = _resolve(device)
    if spec is not None:
        check_runtime(spec.runtime, spec.precision, dev)
    return _placement(dev)


@ray.remote
def _task(arch: dict[str, Any], input_hw: tuple[int, int] | None, spec: RuntimeSpec,
          device: str, seed: int) -> tuple[RuntimeMeasurement, dict[str, Any], float]:
    import torch

    from srnas.space.config import from_dict
    from srnas.space.network import build_model

    started = time.perf_counter()
    dev = _resolve(device)
    torch.manual_seed(seed)
    model = build_model(from_dict(arch))
    measurement = spec.measure(model, input_hw, dev)
    return measurement, _placement(dev), time.perf_counter() - started


@dataclass(frozen=True)
class TargetMeasurement:
    """A measurement taken on a target node, where it was taken and what it cost."""

    measurement: RuntimeMeasurement
    target: str
    node: str
    host: str
    device: str
    task_seconds: float  # on the node: build + export + check + timing
    total_seconds: float  # at the caller: dispatch + waiting for the node + the task

    def where(self) -> dict[str, Any]:
        """Where and at what cost it was measured (``measured_*``, beside the trial's own
        ``node``/``host``, where it trained)."""
        return {"target": self.target, "measured_node": self.node, "measured_host": self.host,
                "measured_device": self.device, "measure_seconds": self.total_seconds,
                "measure_dispatch_seconds": max(0.0, self.total_seconds - self.task_seconds)}

    def located(self) -> RuntimeMeasurement:
        """The measurement with :meth:`where` in it (what ``evaluate``'s hook records)."""
        return replace(self.measurement, where=self.where())

    def fields(self) -> dict[str, Any]:
        """The trial's measured figures plus where they were measured."""
        return self.located().fields()


def _lost(target: str, why: str) -> TargetLost:
    return TargetLost("target", f"the node advertising {resource(target)} {why}; the "
                      "measurement did not finish", target)


def _wait(ref: Any, target: str, timeout_s: float | None) -> Any:
    """``ray.get(ref)``, failing with :class:`TargetLost` when no node advertises ``target``
    any more (Ray would otherwise keep an unschedulable task pending for ever)."""
    from ray.exceptions import (
        GetTimeoutError,
        NodeDiedError,
        ObjectLostError,
        RayTaskError,
        TaskCancelledError,
        WorkerCrashedError,
    )

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        ready, _ = ray.wait([ref], timeout=POLL_S)
        if ready:
            break
        if not target_nodes(target):
            ray.cancel(ref, force=True)
            raise _lost(target, "left the cluster")
        if deadline is not None and time.monotonic() > deadline:
            ray.cancel(ref, force=True)
            raise TargetLost("target", f"no result from {resource(target)} within "
                             f"{timeout_s:g} s", target)
    try:
        return ray.get(ref)
    except RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, SrnasError):
            raise cause from None  # the network's own failure (RuntimeCheckError, ...)
        raise
    except (NodeDiedError, WorkerCrashedError, ObjectLostError, TaskCancelledError,
            GetTimeoutError) as exc:
        raise _lost(target, f"failed ({type(exc).__name__})") from None


def measure_on_target(config: ArchConfig, input_hw: tuple[int, int] | None, target: str,
                      spec: RuntimeSpec | None = None, *, device: str = "auto",
                      seed: int = 0, timeout_s: float | None = None) -> TargetMeasurement:
    """Latency and memory of ``config``'s deployed network under ``spec`` on target node
    ``target`` (``device`` resolved there: ``auto`` is CUDA where that node has it). Blocks
    until the node has measured it; one at a time per node (resource capacity 1)."""
    spec = spec or RuntimeSpec()
    started = time.perf_counter()
    ref = _options(target).remote(config.to_dict(), input_hw, spec, device, seed)
    measurement, where, task_s = _wait(ref, target, timeout_s)
    return TargetMeasurement(measurement, target, where["node"], where["host"],
                             where["device"], task_s, time.perf_counter() - started)


def target_measurer(target: str, spec: RuntimeSpec | None = None, *, device: str = "auto",
                    seed: int = 0, timeout_s: float | None = None
                    ) -> Callable[[Any, Any, Any], RuntimeMeasurement]:
    """A ``measure(model, input_hw, device)`` for ``evaluate``: measures ``model.config`` on
    target node ``target`` (the trial's own device is not used; ``device`` is the target's)."""

    def measure(model: Any, input_hw: Any, _trial_device: Any) -> RuntimeMeasurement:
        return measure_on_target(model.config, input_hw, target, spec, device=device,
                                 seed=seed, timeout_s=timeout_s).located()

    return measure


__all__ = ["PREFIX", "TargetLost", "TargetMeasurement", "advertised_targets", "check_target",
           "measure_on_target", "resource", "target_measurer", "target_name", "target_nodes"]
