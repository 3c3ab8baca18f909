"""Shared fixtures: the benchmark data beside the checkout (skips cleanly without it)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_BENCHMARK = REPO.parent / "shared" / "data" / "benchmark"


@pytest.fixture(scope="session")
def benchmark_root() -> Path:
    if not (SHARED_BENCHMARK / "Set5" / "HR").is_dir():
        pytest.skip(f"benchmark data not found at {SHARED_BENCHMARK} (only beside the checkout)")
    return SHARED_BENCHMARK


from tests.pg import postgres_url  # noqa: E402, F401  (a suite-wide fixture)
