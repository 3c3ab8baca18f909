"""The Ray side of a launch: join or start Ray, check the cluster address before Ray does,
size trials against the nodes, keep Tune quiet. Shared by ``srnas search`` and
``srnas fidelity``."""

from __future__ import annotations

import logging
import math
import os
import socket
from typing import Any

from srnas.space.errors import ConfigError


def check_address(address: str) -> None:
    """Fail in seconds, not minutes, when a host:port cluster address does not answer.

    ``auto`` is Ray's: ``$RAY_ADDRESS``, else the cluster ``ray start`` started last on this
    machine. Ray Client addresses (``ray://``) are refused: they need ``ray[client]``, and
    Ray's documentation warns that Ray Client does not work as expected for Ray Tune; the
    driver belongs on the cluster (run ``srnas search`` on the head node).
    """
    if address in ("auto", "local"):
        return
    if address.startswith("ray://"):
        raise ConfigError("address", "Ray Client (ray://) is not supported for Ray Tune: run "
                          "srnas search on a node of the cluster (e.g. the head) with --address "
                          "auto or host:port", address)
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError("address", "must be host:port (the head node's GCS address, as "
                          "given to ray start --address) or auto", address)
    try:
        with socket.create_connection((host, int(port)), timeout=5) as connection:
            speaks_grpc = _answers_http2(connection)
    except OSError as exc:
        raise ConfigError("address", f"no Ray cluster answers there ({exc.strerror or exc})",
                          address) from None
    if not speaks_grpc:
        # ray.init would retry such an address for a minute before failing.
        raise ConfigError("address", "something answers there, but not a Ray cluster (no "
                          "gRPC/HTTP2 server: give the head node's GCS port, 6379 by "
                          "default)", address)


# The HTTP/2 connection preface and an empty SETTINGS frame (RFC 9113 §3.4, §6.5).
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _answers_http2(connection: socket.socket, timeout: float = 3.0) -> bool:
    """Ray's GCS is a gRPC server: to an HTTP/2 preface it answers with a SETTINGS frame
    (frame type 4 in the fourth byte of its first frame header)."""
    connection.settimeout(timeout)
    try:
        connection.sendall(_HTTP2_PREFACE)
        header = b""
        while len(header) < 9:
            chunk = connection.recv(9 - len(header))
            if not chunk:
                return False
            header += chunk
    except OSError:
        return False
    return header[3] == 4


def quiet_tune() -> None:
    """Tune's own progress tables and its per-trial CSV/JSON/TensorBoard loggers: the study
    already holds every result, so they only cost time and clutter (set before the Tuner)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def start_ray(address: str | None = None, verbose: bool = False) -> None:
    """Join ``address`` (``auto``, host:port, or $RAY_ADDRESS) or start a local Ray instance."""
    import ray

    quiet_tune()
    if ray.is_initialized():
        # In-process use (a notebook, a test): keep the Ray this process already has, unless
        # another cluster was asked for by address.
        wanted = address
        if not wanted or wanted == "auto" or \
                ray.get_runtime_context().gcs_address == wanted:
            return
        check_address(wanted)
        ray.shutdown()
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.INFO if verbose else logging.ERROR,
        "log_to_driver": verbose,
        "configure_logging": True,
        # Trials share a node's cores: busy-waiting OpenMP threads of one trial would slow
        # another's forward pass by an order of magnitude (measured: 45x on 2 cores).
        "runtime_env": {"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}},
    }
    # No --address: $RAY_ADDRESS when set, else a new local instance. (Ray's own default,
    # address=None, would silently join a cluster that `ray start` left on this machine.)
    env_address = os.environ.get("RAY_ADDRESS") or None
    address = address or env_address
    if address:
        # Ray reads $RAY_ADDRESS for "auto" too: check what it will really join.
        check_address(env_address if address == "auto" and env_address else address)
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ray.exceptions.AuthenticationError) as exc:
            if _refused_token(exc):
                # Ray 2.60 turns token authentication on for a head that found a token
                # (~/.ray/auth_token, left by any earlier local Ray), but a driver given an
                # explicit address never turns it on by itself.
                raise ConfigError("address", "the Ray cluster refused this process's token: "
                                  "set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN to the cluster's "
                                  "token", address) from None
            raise ConfigError("address", f"cannot join the Ray cluster: "
                              f"{str(exc).strip().splitlines()[0]}", address) from None
    else:
        ray.init(address="local", **kwargs)


def _refused_token(exc: BaseException | None) -> bool:
    """Whether Ray's token authentication is behind a failed ``ray.init`` (Ray wraps it in a
    ConnectionError around a RuntimeError)."""
    import ray

    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, ray.exceptions.AuthenticationError) or "InvalidAuthToken" in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def gpus_per_trial(requested: float | None) -> float:
    """GPUs each trial asks Ray for: 1 by default where a node has one (one trial per GPU:
    latency on a shared GPU lies), else 0. A trial runs on one node, so the largest node's
    GPUs bound it (a request no node can meet would wait forever); Ray gives a trial a
    fraction of one GPU or whole GPUs."""
    import ray

    largest = max((float(n.get("Resources", {}).get("GPU", 0.0)) for n in ray.nodes()
                   if n.get("Alive")), default=0.0)
    if requested is None:
        return 1.0 if largest >= 1 else 0.0
    if not math.isfinite(requested) or requested < 0:
        raise ConfigError("gpus_per_trial", "must be a finite number >= 0", requested)
    if requested > largest:
        total = float(ray.cluster_resources().get("GPU", 0))
        raise ConfigError("gpus_per_trial", f"must not exceed the {largest:g} GPU(s) Ray sees "
                          f"on one node ({total:g} in the cluster)", requested)
    if requested > 1 and not float(requested).is_integer():
        raise ConfigError("gpus_per_trial", "above 1 must be a whole number (Ray gives a "
                          "trial a fraction of one GPU or whole GPUs)", requested)
    return requested


def quiet_tune_errors(verbose: bool) -> None:
    """Tune logs a failed trial's whole traceback at ERROR; the live view already prints the
    reason in one line, and the traceback stays in Ray's logs (``--verbose`` shows it here)."""
    level = logging.INFO if verbose else logging.CRITICAL
    for name in ("ray.tune", "ray.air", "ray.train"):
        logging.getLogger(name).setLevel(level)


def check_cpus_per_trial(cpus: float) -> None:
    """A trial asking for more CPUs than any node has would wait forever."""
    import ray

    largest = max((n.get("Resources", {}).get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")),
                  default=0.0)
    if cpus > largest:
        raise ConfigError("cpus_per_trial", f"must not exceed the largest node's {largest:g} "
                          "CPUs", cpus)


def default_concurrency(cpus_per_trial: float, gpus: float) -> int:
    import ray

    res = ray.cluster_resources()
    by_cpu = int(res.get("CPU", 1) // cpus_per_trial)
    by_gpu = int(res.get("GPU", 0) // gpus) if gpus > 0 else by_cpu
    return max(1, min(by_cpu, by_gpu))



__all__ = ["check_address", "check_cpus_per_trial", "default_concurrency", "gpus_per_trial",
           "quiet_tune", "quiet_tune_errors", "start_ray"]
