"""A per-device lock shared by every process on a node, so that timings never overlap other work.

Ray runs trials in separate worker processes, so a ``threading.Lock`` is not enough: the lock is
``fcntl.flock`` on one file per device in a node-local directory (``SRNAS_LOCK_DIR``, default
``<tempdir>/srnas-locks``). The kernel drops an flock when its holder dies, so a crashed trial
never leaves a stale lock behind.

Two modes:

* exclusive (``device_lock(device)``): the latency and memory phase. Nothing else that takes the
  lock runs on the device meanwhile.
* shared (``device_lock(device, shared=True)``): compute that must not overlap a timing but may
  overlap other compute, e.g. one training step. Take it per step, not per run, so a waiting
  measurement gets in between two steps.

Writers get preference: a waiting exclusive request holds a second "gate" file, which every new
request passes through first, so a stream of shared holders cannot starve a measurement.

Within one process the lock is re-entrant for the thread that holds it (a caller may hold the
exclusive lock around latency and memory while ``measure_latency`` takes it again); other threads
of that process wait like other processes do.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from srnas.space.errors import LockTimeout

LOCK_DIR_ENV = "SRNAS_LOCK_DIR"


class DeviceLockTimeout(LockTimeout):
    """The device lock was not acquired within ``timeout_s``."""


def lock_dir() -> Path:
    """Where the lock files live; must be node-local (flock over NFS is not reliable)."""
    configured = os.environ.get(LOCK_DIR_ENV)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "srnas-locks"


def lock_key(device: torch.device | str) -> str:
    """The file-name key of a device: 'cpu' for the whole machine, 'cuda-<physical id>' per GPU.

    A GPU is keyed by its physical identity, not its index: Ray gives every trial its own
    ``CUDA_VISIBLE_DEVICES``, so each trial calls its GPU ``cuda:0`` and index keys would make
    trials on different GPUs wait for each other (and, worse, two processes with different
    visibility could name one GPU differently).
    """
    device = torch.device(device)
    if device.type == "cpu":
        # One CPU lock for the machine: CPU trials share cores, caches and memory bandwidth.
        return "cpu"
    if device.type != "cuda":
        return _sanitize(device.type)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return "cuda-" + _sanitize(_cuda_physical_id(index))


def _cuda_physical_id(index: int) -> str:
    try:
        uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    except (RuntimeError, AssertionError):
        uuid = None
    if uuid:
        return str(uuid)
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")]
    visible = [v for v in visible if v]
    return visible[index] if index < len(visible) else str(index)


def _sanitize(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


@dataclass
class _Held:
    """What this process holds for one key (re-entrancy and thread exclusion within a process)."""

    rlock: threading.RLock = field(default_factory=threading.RLock)
    depth: int = 0
    shared: bool = False
    fd: int = -1


_registry_guard = threading.Lock()
_held: dict[str, _Held] = {}
# Seconds the calling thread has spent waiting for device locks (all keys): what a trial's
# phases subtract to report work, not waiting for another trial's timing. Per thread, so that
# another thread's waits (a test's stand-in for another trial) never count as this one's.
_waits = threading.local()


def waited_seconds() -> float:
    """Seconds the calling thread has waited so far to acquire device locks (monotonic; take
    the difference around a section to learn how much of its wall time was waiting)."""
    return getattr(_waits, "seconds", 0.0)


def _add_wait(seconds: float) -> None:
    _waits.seconds = waited_seconds() + seconds


def _reset_after_fork() -> None:
    # A forked child inherits the parent's flocks through shared file descriptions, but it must
    # not believe it holds them (the parent will release them), nor inherit a locked RLock.
    global _registry_guard, _held
    _registry_guard = threading.Lock()
    _held = {}


os.register_at_fork(after_in_child=_reset_after_fork)


def _state(key: str) -> _Held:
    with _registry_guard:
        return _held.setdefault(key, _Held())


def _open(path: Path) -> int:
    # O_CLOEXEC: a subprocess started while we hold the lock must not keep it alive.
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _flock(fd: int, operation: int, deadline: float | None) -> bool:
    """flock with an optional deadline (flock itself has none): poll with a capped backoff."""
    if deadline is None:
        fcntl.flock(fd, operation)
        return True
    delay = 0.001
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.05)


def _timeout(key: str, path: Path, timeout_s: float | None) -> DeviceLockTimeout:
    try:
        holder = path.read_text().strip() or "unknown"
    except OSError:
        holder = "unknown"
    return DeviceLockTimeout(
        "device_lock", f"{key!r} not acquired within {timeout_s} s (last exclusive holder: "
        f"{holder}; lock file {path})")


def _acquire_files(key: str, shared: bool, deadline: float | None, timeout_s: float | None) -> int:
    """Take the gate, then the main lock; returns the main lock's fd (the gate is released)."""
    directory = lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{key}.lock"
    gate = _open(directory / f"{key}.gate")
    fd = _open(path)
    try:
        if not _flock(gate, fcntl.LOCK_EX, deadline):
            raise _timeout(key, path, timeout_s)
        try:
            # Shared requests pass the gate and go on; an exclusive one keeps the gate closed
            # behind it while it waits for the current shared holders to finish.
            operation = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
            if not _flock(fd, operation, deadline):
                raise _timeout(key, path, timeout_s)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
    except BaseException:
        os.close(fd)
        raise
    finally:
        os.close(gate)
    if not shared:
        # Who holds it, for the timeout message of whoever waits next.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return fd


@contextmanager
def device_lock(
    device: torch.device | str, timeout_s: float | None = None, *, shared: bool = False
) -> Iterator[Path]:
    """Hold the node-wide lock of ``device`` (exclusive unless ``shared``); yields its file.

    ``timeout_s=None`` waits as long as it takes; otherwise :class:`DeviceLockTimeout` is raised
    when the lock is not acquired in time. A thread that holds the shared lock cannot upgrade to
    exclusive (that would deadlock against another upgrader); it gets a ``RuntimeError``.
    """
    if timeout_s is not None and timeout_s < 0:
        raise ValueError(f"timeout_s must be >= 0 or None, got {timeout_s!r}")
    key = lock_key(device)
    path = lock_dir() / f"{key}.lock"
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    state = _state(key)
    left = _remaining(deadline)
    asked = time.perf_counter()
    if not state.rlock.acquire(timeout=-1 if left is None else left):
        _add_wait(time.perf_counter() - asked)
        raise _timeout(key, path, timeout_s)
    try:
        if state.depth > 0:  # this thread already holds it
            if state.shared and not shared:
                raise RuntimeError(
                    f"device lock {key!r}: cannot upgrade a shared hold to "
                    "exclusive; take the exclusive lock first"
                )
            state.depth += 1
            try:
                yield path
            finally:
                state.depth -= 1
            return
        try:
            state.fd = _acquire_files(key, shared, deadline, timeout_s)
        finally:
            _add_wait(time.perf_counter() - asked)
        state.shared, state.depth = shared, 1
        try:
            yield path
        finally:
            state.depth = 0
            # Unlock explicitly: a forked child may share this file description, and close()
            # alone would then leave the lock held.
            fcntl.flock(state.fd, fcntl.LOCK_UN)
            os.close(state.fd)
            state.fd = -1
    finally:
        state.rlock.release()


class SharedHold:
    """The device's shared lock held across a long computation (a training run), let go and
    taken again at :meth:`breathe`, so that a timing waiting for the exclusive lock gets in
    between two steps (writers have preference: it goes first). On CUDA, call it only where the
    device is idle (after a synchronisation): kernels still queued would run during the timing.
    """

    def __init__(self, device: torch.device | str, timeout_s: float | None = None) -> None:
        self.device, self.timeout_s = device, timeout_s
        self._hold: ExitStack | None = None

    def __enter__(self) -> SharedHold:
        self._take()
        return self

    def __exit__(self, *exc: object) -> None:
        self._let_go()

    def breathe(self) -> None:
        self._let_go()
        self._take()

    def _take(self) -> None:
        hold = ExitStack()
        hold.enter_context(device_lock(self.device, self.timeout_s, shared=True))
        self._hold = hold

    def _let_go(self) -> None:
        if self._hold is not None:
            self._hold.close()
            self._hold = None
