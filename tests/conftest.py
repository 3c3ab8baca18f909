"""Shared fixtures: the benchmark data beside the checkout (skips cleanly without it), one Ray
instance for the in-process Ray tests, and the marks that keep ``make test-fast`` fast."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_BENCHMARK = REPO.parent / "shared" / "data" / "benchmark"

# A small corner of the search space for real searches in tests: every trial trains in a
# second or two on 2 cores, and the tiny preset is a point of it (for --baseline tiny).
SMALL_SPACE_YAML = """\
dim: [16]
split_ratio: [0.25, 0.5]
kernel_size: [5, 7]
n_blocks: 1
conv_layers: {low: 1, high: 2}
window_size: 8
heads: 2
dict_size: {low: 1, high: 3}
batch_size: 4
patch_size: 32
"""


@pytest.fixture(scope="session")
def benchmark_root() -> Path:
    if not (SHARED_BENCHMARK / "Set5" / "HR").is_dir():
        pytest.skip(f"benchmark data not found at {SHARED_BENCHMARK} (only beside the checkout)")
    return SHARED_BENCHMARK


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One local Ray instance for every in-process Ray test: the first ``srnas search`` (or
    ``ray.init``) starts it and later ones reuse it (search.cluster.start_ray keeps a Ray the
    process already has); it is shut down once, after the last test. A test that needs no Ray
    in this process (a driver that must join another cluster) shuts it down itself, and the
    next search starts a fresh one."""
    yield
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


@pytest.fixture(autouse=True)
def _no_ray_beside_other_tests(request: pytest.FixtureRequest) -> None:
    """The session's Ray lives while Ray tests follow one another; any other test gets a
    process without it: a test that forks (DataLoader workers, multiprocessing) must not copy
    Ray's threads into its children (it crashed the suite with a segmentation fault)."""
    import sys

    if request.node.get_closest_marker("ray") is not None:
        return
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test that takes the PostgreSQL server is a postgres test whether or not it says so, so
    # `make test-fast` (-m "not postgres") never starts one.
    for item in items:
        if "postgres_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


from tests.pg import postgres_url  # noqa: E402, F401  (a suite-wide fixture)
