"""``srnas train`` against races, full disks, read-only folders, SIGTERM, a kill -9 with loader
workers, another thread count on resume, and its messages (issue 23, items 2, 6, 8, 9, 13, 14,
15 and 16). Real processes, real signals, real mounts (a small tmpfs; skipped where mounting is
not allowed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from srnas.evaluators.checkpoint import load_checkpoint, read_info
from srnas.evaluators.fit import FitProgress, fit
from srnas.evaluators.recipe import Recipe
from srnas.evaluators.runs import Every, run_lock
from srnas.space import get_preset
from srnas.space.errors import ConfigError
from tests.cli import assert_usage_error, run
from tests.tmpfs import remount_read_only, tmpfs

REPO = Path(__file__).resolve().parents[1]
TINY = get_preset("tiny", 2)
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# 60 tiny steps, a checkpoint every 5: long enough to signal a process in the middle of it.
LONG = ["tiny", "--scale", "2", "--steps", "60", "--batch-size", "2", "--patch-size", "16",
        "--checkpoint-every", "5", "--val-every", "60"]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # As the subprocesses (OMP_NUM_THREADS=1): a resume here is then bit-identical to them.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train(*argv: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "srnas.search.cli", "train", *argv],
                            cwd=REPO, env=kwargs.pop("env", ENV), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def _step(out: Path) -> int:
    try:
        return read_info(out / "checkpoint.safetensors")[0]
    except ConfigError:
        return -1


def _wait_for_step(out: Path, step: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while _step(out) < step:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.005)


def _same_weights(a: Path, b: Path) -> None:
    for name in ("last.safetensors",):
        x, y = load_file(str(a / name)), load_file(str(b / name))
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), name
    ca, cb = load_checkpoint(a / "checkpoint.safetensors"), load_checkpoint(
        b / "checkpoint.safetensors")
    for group in ("model", "ema"):
        assert all(torch.equal(ca.groups[group][k], cb.groups[group][k])
                   for k in cb.groups[group]), group


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run of LONG, in this process."""
    from srnas.search.cli import main

    out = tmp_path_factory.mktemp("ref") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", *LONG, "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    return out


# -- item 2: two new runs racing for one folder ------------------------------------------------


@pytest.mark.slow
def test_two_new_runs_into_one_folder_never_replace_each_other(tmp_path: Path) -> None:
    """A (30 one-megapixel images to prepare) and B (the built-in photographs) both start a new
    run in one folder while it is empty. A is stopped (SIGSTOP, as a loaded machine deschedules
    it) once it is past the folder check and loading its data; B trains to the end; A goes on.
    Before the fix A then trained over B's finished run and exited 0."""
    rng = np.random.default_rng(0)
    big = tmp_path / "big"
    big.mkdir()
    for i in range(30):
        Image.fromarray(rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)).save(
            big / f"{i}.png", compress_level=0)
    out, cache = tmp_path / "run", tmp_path / "cache"
    env = {**ENV, "SRNAS_CACHE": str(cache)}
    short = [*LONG[:3], "--steps", "4", *LONG[5:9], "--checkpoint-every", "2"]
    a = _train(*short, "--train", str(big), "--out", str(out), env=env)
    deadline = time.monotonic() + 120
    while not (cache.exists() and any(cache.rglob("*"))):  # A is preparing its data
        assert a.poll() is None and time.monotonic() < deadline, a.communicate()
        time.sleep(0.002)
    a.send_signal(signal.SIGSTOP)
    try:
        assert not (out / "checkpoint.safetensors").exists()  # A had not claimed the folder
        b = _train(*short, "--out", str(out), env=env)
        _, b_err = b.communicate(timeout=180)
        assert b.returncode == 0, b_err
        finished = {p.name: p.read_bytes() for p in out.iterdir() if p.name != ".lock"}
    finally:
        a.send_signal(signal.SIGCONT)
    _, a_err = a.communicate(timeout=180)
    assert a.returncode == 2, a_err
    assert "Traceback" not in a_err  # the last line is the error (the one before: A's store)
    assert a_err.strip().splitlines()[-1].startswith(
        "srnas train: error: --out: already holds a run"), a_err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != ".lock"} == finished
    assert '"train": "built-in"' in (out / "train.json").read_text()  # B's run, intact


# -- item 6: an empty --out ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_out_is_refused_and_nothing_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        value: str) -> None:
    monkeypatch.chdir(tmp_path)
    for extra in ([], ["--resume"]):
        assert_usage_error(capsys, "train", "tiny", "--steps", "2", "--out", value, *extra,
                           needles=("srnas train: error: --out: must name a folder",))
    with pytest.raises(ConfigError, match="must name a folder"):
        fit(TINY, Recipe(steps=2, batch_size=2, patch_size=16), value)
    assert list(tmp_path.iterdir()) == []


# -- item 8: a full disk -----------------------------------------------------------------------


def _fill(folder: Path) -> Path:
    """Take every free byte of ``folder``'s file system."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_the_run_resumes_bit_identical(
        tmp_path: Path, reference: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with tmpfs(tmp_path / "disk", "16m") as disk:
        out = disk / "run"
        proc = _train(*LONG, "--out", str(out))
        _wait_for_step(out, 10, proc)
        filler = _fill(disk)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, err
        assert "Traceback" not in err
        step = _step(out)
        line = err.strip().splitlines()[-1]
        assert line.startswith("srnas train: error: --out: cannot be written: No space left "
                               "on device (writing "), line
        assert line.endswith(f"the last checkpoint, at step {step}, is intact: srnas train "
                             f"--out {out} --resume"), line
        assert 10 <= step < 60 and load_checkpoint(out / "checkpoint.safetensors").step == step
        assert not list(out.glob(".*.tmp"))
        filler.unlink()
        code, _, err = run(capsys, "train", "--out", str(out), "--resume")
        assert code == 0, err
        _same_weights(out, reference)


# -- item 9: a read-only run folder ------------------------------------------------------------


class _Stop(Exception):
    pass


def _stopped_run(out: Path, at: int = 6) -> None:
    """A run of 12 steps stopped at step ``at`` (its last checkpoint: step 4)."""
    def progress(p: FitProgress) -> None:
        if p.step == at:
            raise _Stop

    with pytest.raises(_Stop):
        fit(TINY, Recipe(steps=12, batch_size=2, patch_size=16, ema=0.9), out,
            every=Every(checkpoint=4, validate=4, log=2), progress=progress)


def test_resume_in_a_read_only_folder_is_one_line(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with tmpfs(tmp_path / "ro", "16m") as disk:
        out = disk / "run"
        _stopped_run(out)
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        remount_read_only(disk)
        assert_usage_error(capsys, "train", "--out", str(out), "--resume",
                           needles=("srnas train: error: --out: cannot be written: "
                                    "Read-only file system",))
        # The lock file writable (bind-mounted from elsewhere), the folder not: the first
        # write of the resume fails, in one line, and nothing changes.
        lock = tmp_path / "lock"
        lock.touch()
        done = subprocess.run(["mount", "--bind", str(lock), str(out / ".lock")],
                              capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot bind-mount here: {done.stderr.decode()[:200]}")
        try:
            line = assert_usage_error(capsys, "train", "--out", str(out), "--resume",
                                      needles=("--out: cannot be written: Read-only file "
                                               "system (writing ", "at step 4, is intact"))
            assert "Traceback" not in line
        finally:
            subprocess.run(["umount", str(out / ".lock")], capture_output=True, check=False)
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# -- item 13: SIGTERM ----------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_says_how_to_resume_exits_143_and_resumes_bit_identical(
        tmp_path: Path, reference: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two SIGTERMs at random moments after a checkpoint (one may land in a checkpoint write),
    a resume after each."""
    out = tmp_path / "run"
    rng = np.random.default_rng(23)
    argv = [*LONG, "--out", str(out)]
    for at in (10, 30):
        # Past the checkpoint already there: the first run may have got beyond 30 before its
        # SIGTERM took effect, and a signal before the resumed run installs its handler is
        # Python's default death (-15), not what is tested.
        start = _step(out)
        proc = _train(*argv)
        _wait_for_step(out, max(at, start + 1), proc)
        time.sleep(float(rng.uniform(0, 0.3)))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, err
        step = _step(out)
        assert "Traceback" not in err
        assert err.strip().splitlines()[-2:] == [
            f"srnas train: the last checkpoint is step {step}; continue with srnas train "
            f"--out {out} --resume", "srnas train: terminated"], err
        assert at <= step < 60 and not list(out.glob(".*.tmp"))
        load_checkpoint(out / "checkpoint.safetensors")  # intact
        argv = ["--out", str(out), "--resume"]
    code, _, err = run(capsys, "train", "--out", str(out), "--resume")
    assert code == 0, err
    _same_weights(out, reference)


# -- item 14: kill -9 with loader workers ----------------------------------------------------


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_kill_9_with_loader_workers_frees_the_run_at_once(
        tmp_path: Path, reference: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    proc = _train(*LONG, "--workers", "2", "--out", str(out))
    _wait_for_step(out, 10, proc)
    workers = _children(proc.pid)
    assert len(workers) >= 2, workers
    proc.send_signal(signal.SIGKILL)
    proc.wait()  # not communicate(): the orphans hold the pipes until they exit
    try:
        # At once, as the resume takes it: the orphaned workers (their parent's watchdog finds
        # it gone within ~5 s) must not hold it. Before the fix (flock) this was "in use".
        with run_lock(out):
            orphans = [w for w in workers if _alive(w)]
        assert orphans, "the workers died before the lock was tried: nothing was tested"
        code, _, err = run(capsys, "train", "--out", str(out), "--resume")
        assert code == 0, err
    finally:
        for w in workers:  # the killed run's own workers, if any outlived the resume
            if _alive(w):
                os.kill(w, signal.SIGKILL)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    _same_weights(out, reference)
    print(f"orphaned loader workers alive when --resume took the lock: {len(orphans)}")


# -- item 15: another thread count on resume ---------------------------------------------------


def _ours(err: str) -> list[str]:
    """The command's own lines on stderr (not the progress lines of its validations)."""
    return [line for line in err.splitlines() if not line.startswith("step ")]


def test_a_resume_under_another_thread_count_warns_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    _stopped_run(out)  # 1 thread (the autouse fixture)
    torch.set_num_threads(2)
    code, _, err = run(capsys, "train", "--out", str(out), "--resume")
    assert code == 0, err
    assert _ours(err) == [
        "srnas train: warning: the checkpoint was written with 1 CPU thread, now 2: the "
        "resumed run will not be bit-identical to an uninterrupted one"], err
    torch.set_num_threads(1)
    again = tmp_path / "again"
    _stopped_run(again)
    code, _, err = run(capsys, "train", "--out", str(again), "--resume")
    assert code == 0 and "warning" not in err, err


# -- item 16: messages name the flag -------------------------------------------------------------


def test_messages_name_the_flag_not_a_path_or_an_argument(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty, broken = tmp_path / "empty", tmp_path / "broken"
    empty.mkdir()
    broken.mkdir()
    (broken / "a.png").write_text("not an image")
    (tmp_path / "bad.yaml").write_text("no_such_field: 1\n")
    base = ["train", "--scale", "2", "--steps", "1", "--batch-size", "2", "--patch-size", "16"]
    for argv, needle in (
            (["tiny", "--train", str(empty)], f"--train: {empty}: folder holds no images"),
            (["tiny", "--val", str(broken)], f"--val: {broken / 'a.png'}: cannot be read"),
            ([str(tmp_path / "bad.yaml")], f"SPEC: {tmp_path / 'bad.yaml'}: no_such_field: is "
                                           "not a config field"),
            (["tiny", "--patch-size", "100000"], "--train: no image is at least")):
        assert_usage_error(capsys, *base, *argv, "--out", str(tmp_path / "r"),
                           needles=(f"srnas train: error: {needle}",))
    out = tmp_path / "run"
    _stopped_run(out)
    assert_usage_error(capsys, "train", "--out", str(out), "--resume", "--train", str(broken),
                       needles=("--train: cannot change on resume: the run was started with "
                                "the built-in data (got",))


def test_a_python_warning_is_one_line_without_its_source(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 640-pixel patches: 9 of the 10 built-in photographs are smaller and skipped.
    code, _, err = run(capsys, "train", "tiny", "--scale", "2", "--steps", "1",
                       "--batch-size", "1", "--patch-size", "640", "--out", str(tmp_path / "r"))
    assert code == 0, err
    (line,) = _ours(err)
    assert line.startswith("srnas train: warning: skipping 9 image(s) smaller than the "
                           "640x640 patch: astronaut (512x512)"), err
    assert "UserWarning" not in err and ".py:" not in err
