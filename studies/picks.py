"""The choices a front offers on the command line -- which member ``export --pick`` takes and
how ``pareto --sort`` orders rows -- apart from studies.front, so the command table (and
``srnas --help``) reads them without importing numpy."""

from __future__ import annotations

PICKS = ("knee", "max-psnr", "min-latency", "min-memory")
SORT_KEYS = ("psnr", "latency_ms", "memory_mb")

__all__ = ["PICKS", "SORT_KEYS"]
