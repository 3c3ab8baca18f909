"""The device lock serialises separate processes (as Ray's workers are), times out clearly and
is released when its holder dies."""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from pathlib import Path

import pytest

from srnas.evaluators.lock import DeviceLockTimeout, device_lock, lock_dir, lock_key

# spawn, not fork: Ray's trial workers are independent interpreters, not forked relatives.
CTX = mp.get_context("spawn")
HOLD_S = 0.15


def _record_entries(
    lock_root: str, log_path: str, start: mp.synchronize.Event, rounds: int
) -> None:
    """Write 'enter <pid>' and 'exit <pid>' lines to a shared log while holding the lock."""
    os.environ["SRNAS_LOCK_DIR"] = lock_root
    # O_APPEND: each short write lands whole at the end, in the order the writes happened.
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start.wait()
        for _ in range(rounds):
            with device_lock("cpu"):
                os.write(fd, f"enter {os.getpid()}\n".encode())
                time.sleep(HOLD_S)  # a window in which another holder would show up in the log
                os.write(fd, f"exit {os.getpid()}\n".encode())
    finally:
        os.close(fd)


def _hold(
    lock_root: str,
    shared: bool,
    held: mp.synchronize.Event,
    release: mp.synchronize.Event,
    crash: bool,
) -> None:
    os.environ["SRNAS_LOCK_DIR"] = lock_root
    with device_lock("cpu", shared=shared):
        held.set()
        if crash:
            os._exit(3)  # dies holding the lock: the kernel must drop it
        release.wait(30)


@pytest.fixture
def lock_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SRNAS_LOCK_DIR", str(tmp_path))
    return tmp_path


class _Holder:
    """A separate process holding the CPU lock until ``stop``."""

    def __init__(self, root: Path, shared: bool = False, crash: bool = False) -> None:
        self.held, self.release = CTX.Event(), CTX.Event()
        self.process = CTX.Process(
            target=_hold, args=(str(root), shared, self.held, self.release, crash)
        )

    def __enter__(self) -> _Holder:
        self.process.start()
        assert self.held.wait(60), "holder process never got the lock"
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.process.join(30)


def test_two_processes_never_overlap(lock_root: Path, tmp_path: Path) -> None:
    log = tmp_path / "entries.log"
    start = CTX.Event()
    procs = [
        CTX.Process(target=_record_entries, args=(str(lock_root), str(log), start, 2))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    events = [line.split() for line in log.read_text().splitlines()]
    assert len(events) == 8
    # Strictly alternating enter/exit of one holder at a time: no one entered while another
    # was inside.
    for (kind_in, pid_in), (kind_out, pid_out) in zip(events[::2], events[1::2], strict=True):
        assert (kind_in, kind_out) == ("enter", "exit") and pid_in == pid_out, events
    assert len({pid for _, pid in events}) == 2


def test_timeout_names_the_lock_and_holder(lock_root: Path) -> None:
    with _Holder(lock_root) as holder:
        with (
            pytest.raises(
                DeviceLockTimeout, match=r"'cpu'.*within 0.2 s.*pid " + str(holder.process.pid)
            ),
            device_lock("cpu", timeout_s=0.2),
        ):
            pass
        # It gave up while the lock was still held, instead of waiting for the release.
        assert holder.process.is_alive() and not holder.release.is_set()
    with device_lock("cpu", timeout_s=5):  # free again once the holder let go
        pass


def test_lock_of_a_dead_holder_is_released(lock_root: Path) -> None:
    holder = _Holder(lock_root, crash=True)
    with holder:
        holder.process.join(30)
    assert holder.process.exitcode == 3
    with device_lock("cpu", timeout_s=5):
        pass


def test_shared_holders_exclude_a_measurement_not_each_other(lock_root: Path) -> None:
    with _Holder(lock_root, shared=True):
        with device_lock("cpu", timeout_s=5, shared=True):
            pass
        with pytest.raises(DeviceLockTimeout), device_lock("cpu", timeout_s=0.2):
            pass
    with device_lock("cpu", timeout_s=5):
        pass


def test_reentrant_in_one_thread_exclusive_across_threads(lock_root: Path) -> None:
    with device_lock("cpu"), device_lock("cpu", timeout_s=0.1), device_lock("cpu", shared=True):
        outcome: list[str] = []

        def other_thread() -> None:
            try:
                with device_lock("cpu", timeout_s=0.1):
                    outcome.append("acquired")
            except DeviceLockTimeout:
                outcome.append("timed out")

        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        assert outcome == ["timed out"]
    with device_lock("cpu", timeout_s=1):
        pass


def test_shared_hold_cannot_upgrade(lock_root: Path) -> None:
    with (
        device_lock("cpu", shared=True),
        pytest.raises(RuntimeError, match="upgrade"),
        device_lock("cpu"),
    ):
        pass
    with device_lock("cpu", timeout_s=1):  # the failed upgrade left nothing held
        pass


def test_lock_dir_and_keys(lock_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert lock_dir() == lock_root
    assert lock_key("cpu") == "cpu"
    with device_lock("cpu") as path:
        assert path == lock_root / "cpu.lock"
        assert f"pid {os.getpid()}" in path.read_text()
    monkeypatch.delenv("SRNAS_LOCK_DIR")
    assert lock_dir().name == "srnas-locks"


def test_negative_timeout_is_refused(lock_root: Path) -> None:
    with pytest.raises(ValueError, match="timeout_s"), device_lock("cpu", timeout_s=-1):
        pass
