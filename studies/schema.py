"""What one srnas trial leaves in its Optuna study: the contract between search/ (writer) and
studies/ (reader). Plain data, no Optuna internals: the study stays a standard Optuna study.

Study level
  - objectives: Optuna's own ``study.metric_names`` (e.g. ["psnr", "latency_ms", "memory_mb"])
    with ``study.directions``; srnas also stores them as the study user attr ``objectives``
    ([[name, "maximize"|"minimize"], ...]) so a reader without metric names still knows them.
  - user attrs: ``objectives``, ``srnas_version``, ``scale``, ``space`` (the search space as a
    dict), ``budgets`` ({"latency_ms": x, ...} for the budgets given at launch).

Trial level (user attrs, all JSON-serialisable)
  - ``arch``: the architecture config as a dict (``space.ArchConfig.to_dict()``), ``arch_id``
  - ``params`` (int), ``flops`` (int, multiply-adds at ``input_hw``)
  - ``latency_ms`` (median), ``latency_iqr_ms``, ``latency_cv``, ``memory_mb``
  - ``psnr``, ``ssim`` (validation, Y channel, BasicSR convention)
  - ``device`` (e.g. "cpu: AMD EPYC 7B13" or "cuda: NVIDIA H100 80GB HBM3"), ``dtype``,
    ``input_hw`` ([h, w] of the latency/memory input), ``threads``, ``versions`` (dict)
  - ``steps``, ``train_seconds``, ``eval_seconds``
  - ``status``: one of STATUS_*; ``failure_reason`` for failed trials, ``infeasible_reason``
    for trials stopped before training because a budget was already broken
  - ``baseline``: the preset name when the trial evaluated a known config (e.g. "esc-light")
Constraints: ``trial.set_constraint(name, measured - budget)`` for each budget (<= 0 feasible),
names from BUDGET_KEYS; Optuna's ``best_trials`` then excludes infeasible trials.
"""

from __future__ import annotations

STATUS_OK = "ok"
STATUS_INFEASIBLE = "infeasible_untrained"
STATUS_FAILED = "failed"

# Measures a budget can bound, with the flag name used by every CLI command.
BUDGET_KEYS: dict[str, str] = {
    "latency_ms": "--max-latency-ms",
    "memory_mb": "--max-memory-mb",
    "params": "--max-params",
}

# Objectives a search may optimise, with their fixed direction.
OBJECTIVE_DIRECTIONS: dict[str, str] = {
    "psnr": "maximize",
    "ssim": "maximize",
    "latency_ms": "minimize",
    "memory_mb": "minimize",
    "params": "minimize",
    "flops": "minimize",
}
DEFAULT_OBJECTIVES: tuple[str, ...] = ("psnr", "latency_ms", "memory_mb")

# Columns of a front, in display order (the searched parameters follow as ``p_<name>``).
MEASURE_COLUMNS: tuple[str, ...] = (
    "psnr", "ssim", "latency_ms", "latency_iqr_ms", "memory_mb", "params", "flops",
)
DEFAULT_STORAGE = "sqlite:///srnas.db"
STORAGE_ENV = "SRNAS_STORAGE"
