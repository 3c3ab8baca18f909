"""Faults a long search must survive: a killed driver, an interrupted one, drivers racing to
create the schema. Real processes, real Ray, real SQLite / PostgreSQL; tiny budgets."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tests.conftest import SMALL_SPACE_YAML
from tests.pg import fresh_database

SRNAS = [sys.executable, "-c", "import sys; from srnas.search.cli import main; "
         "sys.exit(main(sys.argv[1:]))"]
RUNNING = optuna.trial.TrialState.RUNNING
COMPLETE = optuna.trial.TrialState.COMPLETE
# Steps that make a trial last several seconds on a CPU: one then outlives the grace period.
LONG_STEPS = 600


def _search_argv(url: str, space: Path, trials: int, steps: int = 150) -> list[str]:
    return [*SRNAS, "search", "--storage", url, "--study", "f", "--space", str(space),
            "--steps", str(steps), "--input", "16x16", "--scale", "2", "--concurrency", "1",
            "--scheduler", "fifo", "--trials", str(trials)]


def _driver(url: str, space: Path, trials: int, env: dict[str, str],
            steps: int = 150) -> subprocess.Popen:
    """A `srnas search` process in a session of its own (the tests signal it and its Ray)."""
    return subprocess.Popen(_search_argv(url, space, trials, steps), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _states(url: str) -> list[optuna.trial.TrialState]:
    try:
        return [t.state for t in optuna.load_study(study_name="f", storage=url).trials]
    except KeyError:  # the study does not exist yet
        return []


def _grace(env: dict[str, str]) -> int:
    """The stale-after period the drivers run with (4 heartbeat intervals)."""
    interval = int(env["SRNAS_HEARTBEAT_S"])
    return 4 * interval


def _wait_running_longer_than(url: str, seconds: float, timeout: float = 120) -> None:
    """Until a RUNNING trial started more than ``seconds`` ago (by its own start time): only
    then does "not stale" show that its driver's heartbeat, not its youth, keeps it alive."""
    from datetime import datetime

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        trials = optuna.load_study(study_name="f", storage=url).trials
        started = [t.datetime_start for t in trials if t.state == RUNNING and t.datetime_start]
        if started and (datetime.now() - min(started)).total_seconds() > seconds:
            return
        time.sleep(0.2)
    raise AssertionError(f"no trial ran for more than {seconds} s within {timeout} s")


def _wait_for(url: str, done: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = _states(url)
        if states.count(COMPLETE) >= done and RUNNING in states:
            return
        time.sleep(0.5)
    raise AssertionError(f"no {done} complete trial(s) and one running in {timeout} s")


@pytest.fixture
def space(tmp_path: Path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(SMALL_SPACE_YAML)
    return path


@pytest.fixture
def env() -> dict[str, str]:
    # Beat every second, stale after 4: a dead driver is found in seconds, not minutes.
    return {**os.environ, "SRNAS_HEARTBEAT_S": "1", "PYTHONUNBUFFERED": "1"}


@pytest.mark.e2e
@pytest.mark.ray
@pytest.mark.slow
def test_a_killed_driver_loses_nothing_and_its_trial_is_failed_on_relaunch(
        tmp_path: Path, space: Path, env: dict[str, str]) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    # Trials long enough (seconds each) that one outlives the grace period while it runs.
    driver = _driver(url, space, 20, env, steps=LONG_STEPS)
    try:
        _wait_for(url, done=1)
        # A live driver beats for its trials: past the grace period, nothing of it is stale.
        _wait_running_longer_than(url, _grace(env) + 1)
        fix = subprocess.run([*SRNAS, "studies", "list", "--storage", url, "--fix-stale"],
                             env=env, capture_output=True, text=True, timeout=60)
        assert fix.returncode == 0 and "whose driver died" not in fix.stderr, fix.stderr
        assert driver.poll() is None and "FAIL" not in {s.name for s in _states(url)}
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        killed = time.monotonic()
    finally:
        if driver.poll() is None:
            driver.kill()
    before = optuna.load_study(study_name="f", storage=url).trials
    complete_before = {t.number: t.values for t in before if t.state == COMPLETE}
    assert RUNNING in [t.state for t in before]  # the killed driver's trial, left behind
    # Its last beat is at most one interval before the kill: once the grace period has passed
    # since the kill, the trial is stale by definition (a deadline, not a guess).
    time.sleep(max(0.0, killed + _grace(env) + 1 - time.monotonic()))
    relaunch = subprocess.run(_search_argv(url, space, 1, LONG_STEPS), env=env, capture_output=True,
                              text=True, timeout=300)
    assert relaunch.returncode == 0, relaunch.stderr[-2000:]
    assert "left RUNNING by a driver that died (lost heartbeat)" in relaunch.stdout
    study = optuna.load_study(study_name="f", storage=url)
    trials = study.trials
    assert RUNNING not in [t.state for t in trials]
    assert {t.number: t.values for t in trials if t.number in complete_before} == complete_before
    assert len({t.number for t in trials}) == len(trials)
    lost = study.user_attrs["lost_trials"]
    assert lost and all("lost heartbeat" in reason for reason in lost.values())
    # The relaunch's own trial completed on top of what the dead driver finished.
    assert sum(t.state == COMPLETE for t in trials) == len(complete_before) + 1


@pytest.mark.e2e
@pytest.mark.ray
@pytest.mark.slow
def test_an_interrupted_search_exits_130_and_leaves_the_study_consistent(
        tmp_path: Path, space: Path, env: dict[str, str]) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    driver = _driver(url, space, 8, env)
    try:
        _wait_for(url, done=1)
        driver.send_signal(signal.SIGINT)
        _, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("srnas search: interrupted: ") and "of 8 trials finished" in last
    assert "run the same command again" in last
    assert RUNNING not in _states(url)


def _race(url: str, barrier: multiprocessing.synchronize.Barrier, trials: int,
          errors: multiprocessing.Queue) -> None:
    """One driver's storage path: open for writing, create or load the study, record trials."""
    try:
        from srnas.search.record import record_result
        from srnas.search.seeded import make_sampler
        from srnas.studies.storage import check_for_write, open_for_write

        barrier.wait()
        storage = open_for_write(check_for_write(url))
        study = optuna.create_study(study_name="race", storage=storage, load_if_exists=True,
                                    directions=["maximize"], sampler=make_sampler("random", 0))
        for _ in range(trials):
            trial = study.ask()
            x = trial.suggest_float("x", 0.0, 1.0)
            values, state = record_result(trial, {"psnr": x, "status": "ok"}, ["psnr"], {})
            study.tell(trial, values, state=state)
    except BaseException as exc:  # reported to the test, which fails on any
        errors.put(f"{type(exc).__name__}: {exc}")


def _three_drivers_at_once(url: str, trials: int = 4) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, errors = ctx.Barrier(3), ctx.Queue()
    drivers = [ctx.Process(target=_race, args=(url, barrier, trials, errors)) for _ in range(3)]
    for d in drivers:
        d.start()
    for d in drivers:
        d.join(timeout=120)
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert not problems, problems
    assert all(d.exitcode == 0 for d in drivers)
    trials_ = optuna.load_study(study_name="race", storage=url).trials
    assert len(trials_) == 3 * trials and all(t.state == COMPLETE for t in trials_)
    assert len({t.params["x"] for t in trials_}) == 3 * trials  # no replayed proposals
    assert sorted(t.number for t in trials_) == list(range(3 * trials))


def test_three_drivers_starting_together_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    _three_drivers_at_once(f"sqlite:///{tmp_path / 'race.db'}")


@pytest.mark.postgres
def test_three_drivers_starting_together_on_a_fresh_postgresql_database(
        postgres_url: str) -> None:
    _three_drivers_at_once(fresh_database(postgres_url, "race"))


def _files_holding(root: Path, needle: bytes) -> list[str]:
    found = []
    for path in root.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                found.append(str(path))
        except OSError:
            continue
    return found


@pytest.mark.ray
@pytest.mark.postgres
def test_the_storage_password_never_reaches_disk(postgres_url: str, tmp_path: Path,
                                                 space: Path, monkeypatch: pytest.MonkeyPatch
                                                 ) -> None:
    import tempfile

    from sqlalchemy.engine import make_url

    from srnas.search.cli import main

    secret = "s3cret-Pw-42"
    # The test server trusts local connections, so any password opens it: what is checked is
    # where the URL travels.
    url = make_url(postgres_url).set(password=secret).render_as_string(hide_password=False)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # Tune's experiment folder lands here
    assert main(["search", "--storage", url, "--study", "secret", "--space", str(space),
                 "--steps", "2", "--input", "16x16", "--scale", "2", "--trials", "2",
                 "--concurrency", "2", "--scheduler", "fifo"]) == 0
    assert not list(scratch.glob("srnas-ray-*"))  # Tune's experiment folder is gone
    assert _files_holding(scratch, secret.encode()) == []
    ray_logs = Path("/tmp/ray/session_latest")
    if ray_logs.exists():
        assert _files_holding(ray_logs.resolve(), secret.encode()) == []
    study = optuna.load_study(study_name="secret", storage=postgres_url)
    for trial in study.trials:
        assert secret not in str(trial.user_attrs)
    assert secret not in str(study.user_attrs)
    out = tmp_path / "best.yaml"
    # A 2-step network may be below bicubic (never on the front): export a complete trial.
    done = next(t.number for t in study.trials if t.state.name == "COMPLETE")
    assert main(["export", "secret", "--storage", url, "--trial", str(done), "--out",
                 str(out)]) == 0
    assert secret not in out.read_text()


@pytest.mark.e2e
@pytest.mark.ray
@pytest.mark.slow
def test_a_killed_ray_worker_fails_its_trial_with_the_reason_and_the_search_goes_on(
        tmp_path: Path, space: Path, env: dict[str, str]) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    driver = _driver(url, space, 4, env)
    try:
        _wait_for(url, done=1)
        workers = subprocess.run(["pgrep", "-f", "-s", str(driver.pid), "ImplicitFunc"],
                                 capture_output=True, text=True).stdout.split()
        assert workers, "no Ray worker found"
        for pid in workers:
            os.kill(int(pid), signal.SIGKILL)
        out, err = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, err[-2000:]
    assert "Traceback" not in out + err  # Ray's traceback stays in Ray's logs
    trials = optuna.load_study(study_name="f", storage=url).trials
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 1 and failed[0].user_attrs["failure_reason"].startswith(
        "worker process died"), [t.user_attrs.get("failure_reason") for t in failed]
    assert sum(t.state == COMPLETE for t in trials) == 3 and RUNNING not in [t.state for t in
                                                                             trials]


def test_an_out_of_memory_error_in_a_trial_is_recorded_as_such(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Injected: the evaluation raises CUDA's out-of-memory error inside the trainable."""
    import torch

    import srnas.evaluators.evaluate as evaluate_mod
    from srnas.search import trainable as trainable_mod
    from srnas.search.record import record_result
    from srnas.search.settings import SearchSettings

    def oom(*args: object, **kwargs: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    reports: list[dict] = []
    monkeypatch.setattr(evaluate_mod, "evaluate", oom)
    monkeypatch.setattr(trainable_mod.tune, "report", reports.append)
    settings = SearchSettings(scheduler="fifo")
    config = {"arch": {"dim": 16, "split_ratio": 0.25, "kernel_size": 7, "n_blocks": 1,
                       "conv_layers": 1}, "train": {}}
    trainable_mod.search_trainable(settings)(config)
    (report,) = reports
    assert report["status"] == "failed"
    assert report["failure_reason"].startswith("out of memory: OutOfMemoryError: CUDA out of")
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    trial = study.ask()
    _, state = record_result(trial, report, ["psnr", "latency_ms", "memory_mb"], {})
    assert state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["failure_reason"] == report["failure_reason"]


@pytest.mark.parametrize(("text", "reason"), [
    ("Failure # 1 (occurred at x)\nray.exceptions.OutOfMemoryError: Task was killed due to "
     "the node running low on memory.", "out of memory"),
    ("Failure # 1 (occurred at x)\nThe actor died unexpectedly before finishing this task.",
     "worker process died"),
    ("Failure # 1 (occurred at x)\nValueError: bad thing\n  more", "ValueError: bad thing"),
    # What Tune writes for an exception that escaped the trainable: Ray's coloured task line,
    # the traceback, the exception last.
    ("Failure # 1 (occurred at x)\n\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=6216, "
     "ip=192.0.2.2, repr=f)\n  File \"t.py\", line 14, in f\n    raise ValueError(\"bad\")\n"
     "ValueError: bad thing\n", "ValueError: bad thing"),
    # A worker killed with SIGKILL (Ray 2.60's text).
    ("Failure # 1 (occurred at x)\nThe actor died unexpectedly before finishing this task.\n"
     "\tclass_name: ImplicitFunc\nThe actor is dead because its worker process has died. "
     "Worker exit type: SYSTEM_ERROR", "worker process died"),
    ("Failure # 1 (occurred at x)\nTask was killed due to the node running low on memory.",
     "out of memory"),
])
def test_worker_failures_are_named(tmp_path: Path, text: str, reason: str) -> None:
    from types import SimpleNamespace

    from srnas.search.live import worker_failure

    error_file = tmp_path / "error.txt"
    error_file.write_text(text)
    trial = SimpleNamespace(error_file=str(error_file))
    assert worker_failure(trial).startswith(reason)


def test_a_worker_failure_without_an_error_file_has_the_generic_reason(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from srnas.search.live import worker_failure

    for missing in (None, str(tmp_path / "absent.txt")):
        assert worker_failure(SimpleNamespace(error_file=missing)) == (
            "its Ray worker failed (see the Ray logs)")


@pytest.mark.e2e
@pytest.mark.ray
@pytest.mark.slow
def test_three_srnas_search_drivers_started_together_on_one_fresh_study(
        tmp_path: Path, space: Path, env: dict[str, str]) -> None:
    """Three whole `srnas search` processes (each with its own local Ray) on one new SQLite
    study: all succeed, exactly 3 x 2 trials, no replayed proposal, no traceback."""
    url = f"sqlite:///{tmp_path / 'f.db'}"
    argv = [*SRNAS, "search", "--storage", url, "--study", "f", "--space", str(space),
            "--steps", "2", "--input", "16x16", "--scale", "2", "--concurrency", "1",
            "--scheduler", "fifo", "--trials", "2", "--sampler", "random"]
    drivers = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(3)]
    outputs = [d.communicate(timeout=300) for d in drivers]
    for driver, (out, err) in zip(drivers, outputs, strict=True):
        assert driver.returncode == 0, err[-2000:]
        assert "Traceback" not in out + err
    trials = optuna.load_study(study_name="f", storage=url).trials
    assert len(trials) == 6 and all(t.state == COMPLETE for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 6
