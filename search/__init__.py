"""search: launch a multi-objective architecture search -- Ray Tune runs the trials, an Optuna
sampler proposes, every measurement lands in the SQL study (written by :mod:`.record`).
Only this package imports Ray, and only when a search runs. Names load on first use."""

from __future__ import annotations

from srnas.space.lazy import lazy_getattr

_LAZY = {
    "SearchSettings": "srnas.search.settings",
    "SearchOutcome": "srnas.search.run",
    "run_search": "srnas.search.run",
    "dry_run": "srnas.search.run",
    "make_sampler": "srnas.search.seeded",
    "SrnasSearcher": "srnas.search.searcher",
    "init_study": "srnas.search.record",
    "record_result": "srnas.search.record",
    "main": "srnas.search.cli",
}

__all__ = list(_LAZY)
__getattr__ = lazy_getattr(__name__, _LAZY)
