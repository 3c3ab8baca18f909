"""The README's cluster recipe, run as written: Ray nodes started with ``ray start`` that
declare logical GPUs, a search of 20 tiny trials (4 at a time) that joins them with
``--address auto`` and writes to a real PostgreSQL server through a plain ``postgresql://``
URL, the queries afterwards, and what the database saw meanwhile.

One run of ``scripts/cluster_demo.sh`` (a module fixture) serves the recipe, GPU-assignment
and connection tests; the storage-URL forms and the placement columns are checked on their own.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import optuna
import pytest

from srnas.search.cli import main
from srnas.studies import storage as storage_url
from tests.fabricate import fake_trial, make_study

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SCRIPT = REPO / "scripts" / "cluster_demo.sh"
RECIPE_MARKER = "<!-- cluster-recipe"
SETTINGS_MARKER = "<!-- cluster-settings"
DEMO_DATABASE = "srnas_cluster"
DEMO_TRIALS, DEMO_CONCURRENCY, DEMO_GPUS_PER_NODE = 20, 4, 2
DEMO_TIMEOUT_S = 420


# -- the README's recipe block and the script that runs it ------------------------------------
def readme_block(marker: str) -> list[str]:
    """The non-comment lines of the README's ```sh block that follows ``marker``."""
    text = README.read_text()
    block = re.search(r"```sh\n(.*?)```", text[text.index(marker):], re.DOTALL)
    assert block is not None, f"no ```sh block after {marker!r}"
    return [line.strip() for line in block.group(1).splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _assigned(lines: list[str]) -> set[str]:
    names = set()
    for line in lines:
        match = re.match(r"(?:export\s+)?([A-Z_][A-Z0-9_]*)=", line)
        if match:
            names.add(match.group(1))
    return names


def test_the_demo_script_runs_every_line_of_the_readme_recipe_as_written() -> None:
    lines = readme_block(RECIPE_MARKER)
    assert any(line.startswith("ray start --head") for line in lines)
    assert any(line.startswith("ray start --address") for line in lines)
    assert any(line.startswith("srnas search --address auto") for line in lines)
    script_lines = [line.strip() for line in SCRIPT.read_text().splitlines()]
    missing = [line for line in lines if line not in script_lines]
    assert not missing, f"README recipe lines the demo script does not run: {missing}"
    # ...and sets, for one machine, every setting the README's settings block asks for.
    settings = _assigned(readme_block(SETTINGS_MARKER))
    assert {"SRNAS_STORAGE", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "HEAD_IP"} <= settings
    unset = settings - _assigned(script_lines)
    assert not unset, f"README settings the demo script does not set: {sorted(unset)}"


# -- one demo run, watched from pg_stat_activity ------------------------------------------------
def _server(postgres_url: str) -> tuple[str, int]:
    parts = urlsplit(postgres_url)
    return parts.hostname or "127.0.0.1", int(parts.port or 5432)


def _admin(host: str, port: int):  # a connection to the maintenance database, not the study's
    import psycopg2

    connection = psycopg2.connect(host=host, port=port, user="postgres", dbname="postgres")
    connection.autocommit = True
    return connection


def _connections(cursor, database: str) -> list[tuple[str, int]]:
    """(application name, server process id) of every connection to ``database``."""
    return [(name, pid) for name, pid, _ in _activity(cursor, database)]


def _activity(cursor, database: str) -> list[tuple[str, int, str]]:
    # Client connections only: the server's own autovacuum workers visit the database too.
    cursor.execute("SELECT application_name, pid, coalesce(state, 'starting') "
                   "FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'",
                   (database,))
    return [(name or "", pid, state) for name, pid, state in cursor.fetchall()]


@dataclass
class DemoRun:
    returncode: int
    output: str
    url: str
    peak: int = 0
    peak_names: list[str] = field(default_factory=list)
    peak_rows: list[tuple[str, int, str]] = field(default_factory=list)
    samples: int = 0
    backends: set[int] = field(default_factory=set)  # every server process seen: the churn
    left_open: list[tuple[str, int]] = field(default_factory=list)


@pytest.fixture(scope="module")
def demo(postgres_url: str) -> Iterator[DemoRun]:
    host, port = _server(postgres_url)
    admin = _admin(host, port)
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{DEMO_DATABASE}"')
        cursor.execute(f'CREATE DATABASE "{DEMO_DATABASE}"')
    # The README's form: a plain postgresql:// URL (psycopg 3 under SQLAlchemy 2.1).
    url = f"postgresql://postgres@{host}:{port}/{DEMO_DATABASE}"
    run = DemoRun(returncode=-1, output="", url=url)
    stop = threading.Event()

    def watch() -> None:
        with admin.cursor() as cursor:
            while not stop.is_set():
                seen = _activity(cursor, DEMO_DATABASE)
                run.samples += 1
                run.backends.update(pid for _, pid, _ in seen)
                if len(seen) > run.peak:
                    run.peak, run.peak_names = len(seen), sorted(n for n, _, _ in seen)
                    run.peak_rows = sorted(seen)
                stop.wait(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    env = {**os.environ, "SRNAS_STORAGE": url, "TRIALS": str(DEMO_TRIALS),
           "CONCURRENCY": str(DEMO_CONCURRENCY), "GPUS": str(DEMO_GPUS_PER_NODE)}
    env.pop("RAY_ADDRESS", None)
    try:
        done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env,
                              timeout=DEMO_TIMEOUT_S, check=False)
        run.returncode, run.output = done.returncode, done.stdout + done.stderr
    finally:
        stop.set()
        watcher.join(timeout=5)
    # A server process ends a moment after its client hangs up: give it a few seconds.
    with admin.cursor() as cursor:
        for _ in range(50):
            run.left_open = _connections(cursor, DEMO_DATABASE)
            if not run.left_open:
                break
            time.sleep(0.1)
    admin.close()
    print(f"\ncluster demo: peak {run.peak} connections to {DEMO_DATABASE} "
          f"{run.peak_rows} over {run.samples} samples, "
          f"{len(run.backends)} connections opened in all; "
          f"{len(run.left_open)} left open after the search", file=sys.stderr)
    yield run


def _study(run: DemoRun) -> optuna.Study:
    store = storage_url.open_storage(run.url)
    try:
        return optuna.load_study(study_name="cluster-demo", storage=store)
    finally:
        store.engine.dispose()


@pytest.mark.e2e
@pytest.mark.postgres
@pytest.mark.ray
@pytest.mark.slow
def test_the_readme_recipe_runs_a_search_on_a_two_node_cluster(demo: DemoRun) -> None:
    assert demo.returncode == 0, demo.output[-4000:]
    assert "front.csv: " in demo.output
    trials = _study(demo).get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == DEMO_TRIALS and len(complete) == DEMO_TRIALS, \
        [(t.number, t.state.name, t.user_attrs.get("failure_reason")) for t in trials]


@pytest.mark.e2e
@pytest.mark.postgres
@pytest.mark.ray
@pytest.mark.slow
def test_concurrent_trials_hold_distinct_gpus_on_more_than_one_node(demo: DemoRun) -> None:
    import torch

    assert demo.returncode == 0, demo.output[-4000:]
    trials = [t for t in _study(demo).get_trials(deepcopy=False)
              if t.state == optuna.trial.TrialState.COMPLETE]
    for t in trials:
        attrs = t.user_attrs
        assert re.fullmatch(r"[0-9a-f]{56}", attrs["node"]), attrs.get("node")
        assert attrs["host"] and len(attrs["gpu_ids"]) == 1, attrs
        if not torch.cuda.is_available():
            # A logical GPU without CUDA: the trial ran (and measured) on the CPU.
            assert attrs["device"].startswith("cpu"), attrs["device"]
    slots = {(t.user_attrs["node"], tuple(t.user_attrs["gpu_ids"])) for t in trials}
    nodes = {node for node, _ in slots}
    assert len(nodes) == 2, slots
    assert len(slots) <= 2 * DEMO_GPUS_PER_NODE
    # Trials alive at the same time (the driver asks a trial before Ray places it and tells it
    # after its GPU is released, so these windows cover the GPU's use) never share a GPU.
    overlapping = 0
    for a, b in itertools.combinations(trials, 2):
        if a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete:
            overlapping += 1
            assert (a.user_attrs["node"], a.user_attrs["gpu_ids"]) != \
                (b.user_attrs["node"], b.user_attrs["gpu_ids"]), (a.number, b.number)
    assert overlapping >= DEMO_TRIALS // 2  # they did run concurrently
    events = sorted([(t.datetime_start, 1) for t in trials]
                    + [(t.datetime_complete, -1) for t in trials])
    alive = list(itertools.accumulate(step for _, step in events))
    per_slot = {f"{node[:8]}/gpu{','.join(gpus)}": sum(
        1 for t in trials if (t.user_attrs["node"], tuple(t.user_attrs["gpu_ids"])) ==
        (node, gpus)) for node, gpus in sorted(slots)}
    print(f"\nGPU assignment: {len(trials)} trials, at most {max(alive)} at a time, on "
          f"{len(nodes)} nodes; trials per node/GPU: {per_slot}", file=sys.stderr)


@pytest.mark.e2e
@pytest.mark.postgres
@pytest.mark.ray
@pytest.mark.slow
def test_the_search_keeps_database_connections_bounded_and_leaves_none_open(
        demo: DemoRun) -> None:
    assert demo.returncode == 0, demo.output[-4000:]
    assert demo.samples > 100  # the watcher really watched the whole run
    pool = storage_url.POOL_KWARGS
    # One srnas process at a time talks to the database and its pool bounds it (the server
    # processes of one that just exited may linger for a moment beside the next one's).
    assert 1 <= demo.peak <= pool["pool_size"] + pool["max_overflow"], demo.peak_names
    assert set(demo.peak_names) == {storage_url.APPLICATION_NAME}, demo.peak_rows
    # Pooled connections are reused: at most a pool's worth per srnas process the script runs,
    # fewer than one per trial (and far fewer than one per storage operation).
    runs = sum(1 for line in SCRIPT.read_text().splitlines() if line.startswith("srnas "))
    bound = runs * (pool["pool_size"] + pool["max_overflow"])
    assert len(demo.backends) <= bound < DEMO_TRIALS, (len(demo.backends), bound)
    assert demo.left_open == []


# -- storage URL forms on the real server -------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.parametrize(("form", "driver"), [
    ("postgresql://postgres@{server}/{db}", "psycopg"),  # README, --help
    ("postgresql://postgres:s3cret@{server}/{db}", "psycopg"),  # README, --help (a password)
    ("postgresql+psycopg://postgres@{server}/{db}", "psycopg"),
    ("postgresql+psycopg2://postgres@{server}/{db}", "psycopg2"),  # --help
])
def test_every_documented_storage_url_form_opens_the_real_server(
        postgres_url: str, form: str, driver: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    host, port = _server(postgres_url)
    db = urlsplit(postgres_url).path.lstrip("/")
    url = form.format(server=f"{host}:{port}", db=db)
    # The writer's path: check, open (creating Optuna's schema if needed), write a study.
    store = storage_url.open_for_write(storage_url.check_for_write(url))
    try:
        assert store.engine.dialect.driver == driver
        name = f"form-{driver}-{'pw' if 's3cret' in url else 'nopw'}-{form.split(':')[0]}"
        if name in optuna.get_all_study_names(store):
            optuna.delete_study(study_name=name, storage=store)
        make_study(store, name)
    finally:
        store.engine.dispose()
    # The readers' path, through the CLI and through $SRNAS_STORAGE.
    assert main(["studies", "list", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert name in out and "s3cret" not in out
    monkeypatch.setenv("SRNAS_STORAGE", url)
    assert main(["studies", "list"]) == 0
    assert name in capsys.readouterr().out


@pytest.mark.postgres
def test_connections_carry_the_srnas_application_name_and_a_bounded_pool(
        postgres_url: str) -> None:
    host, port = _server(postgres_url)
    db = urlsplit(postgres_url).path.lstrip("/")
    url = f"postgresql://postgres@{host}:{port}/{db}"
    kwargs = storage_url.parse(url).engine_kwargs()
    assert kwargs["pool_size"] + kwargs["max_overflow"] <= 4 and kwargs["pool_pre_ping"]
    named = storage_url.parse(url + "?application_name=mine").engine_kwargs()
    assert "application_name" not in named["connect_args"]  # the URL's own name wins
    store = storage_url.open_for_write(storage_url.check_for_write(url))
    admin = _admin(host, port)
    try:
        optuna.get_all_study_names(store)
        with admin.cursor() as cursor:
            names = [n for n, _ in _connections(cursor, db)]
        assert storage_url.APPLICATION_NAME in names
    finally:
        store.engine.dispose()
        admin.close()


# -- addresses ------------------------------------------------------------------------------------
def test_a_ray_client_address_is_refused_in_one_line(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
    assert main(["search", "--address", "ray://head:10001", "--storage",
                 f"sqlite:///{tmp_path / 's.db'}", "--trials", "1"]) == 2
    err = capsys.readouterr().err
    assert "error: --address: Ray Client (ray://) is not supported" in err and \
        err.count("\n") == 1
    assert not ray.is_initialized() and not (tmp_path / "s.db").exists()


# -- where trials ran, in the front ----------------------------------------------------------------
def test_pareto_shows_node_and_gpu_columns_when_trials_ran_in_different_places(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    study = make_study(url, "placed")
    node_a, node_b = "a" * 56, "b" * 56
    for psnr, latency, node, gpus in ((30.0, 10.0, node_a, ["0"]), (31.0, 20.0, node_b, ["1"])):
        fake_trial(study, psnr=psnr, latency_ms=latency, memory_mb=100.0,
                   extra={"node": node, "host": "10.0.0.7", "gpu_ids": gpus})
    assert main(["pareto", "placed", "--storage", url]) == 0
    table = capsys.readouterr().out
    header = next(line for line in table.splitlines() if line.startswith("trial"))
    assert {"host", "node", "gpu_ids"} <= set(header.split())
    assert "aaaaaaaa " in table and node_a not in table  # the node id, shortened
    assert main(["pareto", "placed", "--storage", url, "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    columns = rows[0].split(",")
    assert {"host", "node", "gpu_ids"} <= set(columns)
    assert node_a in rows[1] + rows[2]

    # One place for every trial: said nowhere in the table (as a single device is not).
    same = make_study(url, "one-place")
    for psnr, latency in ((30.0, 10.0), (31.0, 20.0)):
        fake_trial(same, psnr=psnr, latency_ms=latency, memory_mb=100.0,
                   extra={"node": node_a, "host": "10.0.0.7", "gpu_ids": []})
    assert main(["pareto", "one-place", "--storage", url]) == 0
    header = next(line for line in capsys.readouterr().out.splitlines()
                  if line.startswith("trial"))
    assert not {"host", "node", "gpu_ids"} & set(header.split())


# -- GPUs per trial, without starting Ray ---------------------------------------------------------
@pytest.fixture
def two_gpu_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray's view of a cluster of two nodes with 2 GPUs each (and a dead one with 8)."""
    import ray

    nodes = [{"Alive": True, "Resources": {"CPU": 4.0, "GPU": 2.0}},
             {"Alive": True, "Resources": {"CPU": 4.0, "GPU": 2.0}},
             {"Alive": False, "Resources": {"CPU": 4.0, "GPU": 8.0}}]
    monkeypatch.setattr(ray, "nodes", lambda: nodes)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 8.0, "GPU": 4.0})


@pytest.mark.parametrize(("requested", "expected"), [(None, 1.0), (0.0, 0.0), (0.5, 0.5),
                                                     (1.0, 1.0), (2.0, 2.0)])
def test_gpus_per_trial_defaults_to_one_and_accepts_what_a_node_can_give(
        two_gpu_nodes: None, requested: float | None, expected: float) -> None:
    from srnas.search.cluster import gpus_per_trial

    assert gpus_per_trial(requested) == expected


@pytest.mark.parametrize(("requested", "fragment"), [
    (3.0, "gpus_per_trial: must not exceed the 2 GPU(s) Ray sees on one node (4 in the "
          "cluster) (got 3.0)"),
    (1.5, "gpus_per_trial: above 1 must be a whole number"),
])
def test_gpus_per_trial_no_node_can_give_is_refused_in_one_line(
        two_gpu_nodes: None, requested: float, fragment: str) -> None:
    from srnas.search.cluster import gpus_per_trial
    from srnas.space.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        gpus_per_trial(requested)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_a_trial_given_a_gpu_torch_cannot_see_runs_on_the_cpu(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from srnas.search.trainable import trial_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert trial_device(1.0) == trial_device(0.0) == trial_device(None) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert trial_device(1.0) == "cuda" and trial_device(0.0) == "cpu"
