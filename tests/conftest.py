"""Shared fixtures: the benchmark data beside the checkout (skips cleanly without it)."""

from __future__ import annotations

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


from tests.pg import postgres_url  # noqa: E402, F401  (a suite-wide fixture)
