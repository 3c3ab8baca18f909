"""The study contract: what one srnas search leaves in its Optuna study.

search/ writes it (``srnas.search.record``, the one function that records a trial), studies/
reads it, evaluators/ produces the statuses. It lives here, at the bottom of the import graph
(``space <- evaluators <- search``, ``space <- studies``), so every package uses these names
and none keeps a copy. Plain data, no Optuna internals: the study stays a standard Optuna
study that ``optuna best-trials`` and optuna-dashboard read too.

Study level
  - objectives: Optuna's own ``study.metric_names`` (e.g. ["psnr", "latency_ms", "memory_mb"])
    with ``study.directions``; also the user attr ``objectives`` ([[name, direction], ...]) so a
    reader without metric names still knows them.
  - user attrs: ``objectives``, ``srnas_version``, ``scale``, ``space`` (the search space as a
    dict), ``budgets`` (the latest launch's budgets, {"latency_ms": x, ...}) and
    ``measurement``: the settings every figure of the study was measured under (see
    :data:`MEASUREMENT_KEYS`). Written once, when the study is created; a launch with other
    settings is refused, so one study never mixes figures that do not compare.
  - ``bicubic`` (:data:`ATTR_BICUBIC`): the bicubic baseline measured under the study's own
    settings (scale, validation data, device kind, latency input), written once, at creation
    or at the first launch of an older study: ``psnr``, ``ssim``, ``images`` (scored like a
    network, ``srnas evaluate --bicubic``'s path) and ``latency_ms``, ``memory_mb``,
    ``device``, ``input_hw``, ``method`` (timed as an upsampling on that device). No network
    that is not above its PSNR is on a front.
  - ``reference_point`` (:data:`ATTR_REFERENCE_POINT`): the hypervolume's fixed reference,
    ``{"values": {objective: value}, "rules": {objective: why}}``. Quality objectives take
    bicubic's value and budgeted ones their budget at creation; the others are fixed at the end
    of the first launch that completes a feasible trial (its worst value + 10 % of the range).
    Readers use it for every hypervolume, so adding a trial never moves the figure.

Trial level (user attrs, all JSON-serialisable)
  - ``arch``: the architecture config (``ArchConfig.to_dict()``), ``arch_id`` (canonical)
  - ``params`` (int), ``flops`` (int, multiply-adds at ``input_hw``)
  - ``latency_ms`` (median), ``latency_iqr_ms``, ``latency_cv``, ``memory_mb``: measured on
    the deployed network (the D4 average of the shared kernel baked in)
  - ``psnr``, ``ssim`` (validation, Y channel, BasicSR convention)
  - ``device`` (e.g. "cpu: AMD EPYC 7B13" or "cuda: NVIDIA H100 80GB HBM3"), ``dtype``,
    ``tf32`` ({"matmul": bool, "cudnn": bool} on CUDA), ``input_hw`` ([h, w] of the
    latency/memory/FLOPs input), ``threads``, ``versions`` (dict)
  - where the trial ran: ``node`` (the Ray node id, 56 hex digits: unique even when several
    Ray nodes share a machine), ``host`` (that node's IP address) and ``gpu_ids`` (the GPU ids
    Ray assigned the trial, as strings, e.g. ["1"]; [] without a GPU). Ray points the trial's
    ``CUDA_VISIBLE_DEVICES`` at them, so the trial itself calls its GPU ``cuda:0``. A trial
    given a GPU by a node that declares logical GPUs (``ray start --num-gpus N``) but where
    torch sees no CUDA device runs on the CPU: ``device`` then says "cpu: ...".
  - ``steps``, ``train_seconds``, ``eval_seconds``, ``phase_seconds``, ``train_seed`` (the
    training seed; the sampled ``lr``, ``batch_size`` and ``patch_size`` are trial params).
    ``phase_seconds`` holds each phase's work net of device-lock waits (data, build,
    complexity, latency, memory, train, validate) and ``lock_wait``, the seconds spent waiting
    for other trials on the device; ``eval_seconds`` is their sum, the evaluation's wall time
  - ``rung_psnr``: {steps: psnr} for every rung reached (multi-fidelity searches; the last
    rung's PSNR is ``psnr`` for trials that completed their schedule)
  - ``rung_results`` (:data:`ATTR_RUNG_RESULTS`): {steps: {objective: value}}, the vector the
    MO-ASHA scheduler ranked the trial by at each rung, written by the deciding driver at
    decision time (while the trial runs), so other drivers and later launches rank against it
  - ``status``: one of :data:`STATUSES`; ``failure_reason`` for failed trials,
    ``infeasible_reason`` for trials not trained because a budget was already broken
  - ``baseline``: the preset name when the trial evaluated a known config (e.g. "esc-light")

Constraints: ``trial.set_constraint(name, measured - budget)`` for each budget (<= 0 feasible),
names from :data:`BUDGET_KEYS`; Optuna's ``best_trials`` then excludes infeasible trials.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from srnas.space.objectives import BUDGET_KEYS, OBJECTIVE_DIRECTIONS, UNTRAINED_VALUES

# -- trial statuses (user attr ``status``) ----------------------------------------------------
STATUS_OK = "ok"
# Measured, but a budget was already broken by the cheap figures: never trained. The trial is
# COMPLETE (so samplers learn the region is bad) with UNTRAINED_VALUES as its quality
# objectives, and infeasible through its constraints (so no front ever shows it).
STATUS_INFEASIBLE = "infeasible_untrained"
STATUS_FAILED = "failed"
# PRUNED trials (never COMPLETE: a partial PSNR must never enter a front; never FAIL: nothing
# went wrong). Their PSNR at each rung reached is in ``rung_psnr``, not in ``psnr``.
STATUS_STOPPED_AT_RUNG = "stopped_at_rung"  # the scheduler stopped it at a rung
STATUS_STOPPED_BY_CAP = "stopped_by_time_cap"  # the per-trial wall-time cap cut its schedule
STATUSES = (STATUS_OK, STATUS_INFEASIBLE, STATUS_FAILED, STATUS_STOPPED_AT_RUNG,
            STATUS_STOPPED_BY_CAP)
# Not final statuses: what a trial reports while it trains. ``rung``: the validation at a rung
# of the multi-fidelity ladder (the scheduler decides on it); ``training``: any other
# mid-training validation. A last result still carrying ``training`` means the trial was
# stopped before its schedule ended.
STATUS_RUNG = "rung"
STATUS_TRAINING = "training"

# -- objectives and budgets --------------------------------------------------------------------
# Live views of the objective registry (``space/objectives.py``), kept under the names every
# package imports:
# - UNTRAINED_VALUES: the quality objectives an untrained (infeasible) trial is told, at their
#   worst possible values ({"psnr": 0.0, "ssim": 0.0});
# - OBJECTIVE_DIRECTIONS: objectives a search may optimise, with their fixed direction;
# - BUDGET_KEYS: measures a budget can bound -> the library argument that sets it (the CLI flag
#   is the same name with dashes: ``max_latency_ms`` -> ``--max-latency-ms``).
DEFAULT_OBJECTIVES: tuple[str, ...] = ("psnr", "latency_ms", "memory_mb")

# Columns of a front, in display order (the searched parameters follow as ``p_<name>``).
MEASURE_COLUMNS: tuple[str, ...] = (
    "psnr", "ssim", "latency_ms", "latency_iqr_ms", "memory_mb", "params", "flops",
)

# -- study-level attrs -------------------------------------------------------------------------
ATTR_OBJECTIVES = "objectives"
ATTR_SCALE = "scale"
ATTR_SPACE = "space"
ATTR_BUDGETS = "budgets"
ATTR_MEASUREMENT = "measurement"
ATTR_VERSION = "srnas_version"
# {trial number: reason} for trials failed because their driver died (lost heartbeat).
ATTR_LOST_TRIALS = "lost_trials"
# The bicubic baseline under the study's own settings, and the fixed hypervolume reference.
ATTR_BICUBIC = "bicubic"
ATTR_REFERENCE_POINT = "reference_point"

# -- trial-level attrs written by the scheduler ------------------------------------------------
ATTR_RUNG_PSNR = "rung_psnr"
ATTR_RUNG_RESULTS = "rung_results"

# The measurement settings a study records at creation; two launches compare only if all agree.
MEASUREMENT_KEYS: dict[str, str] = {
    "scale": "upscaling factor",
    "space_id": "search space",
    "steps": "training steps per trial",
    "train_seconds": "training wall-time cap per trial (seconds)",
    "scheduler": "trial scheduler",
    "train_data": "training images",
    "val_data": "validation images",
    "device_kind": "device kind the trials measure on",
    "input_hw": "latency/memory/FLOPs input (HxW)",
    "runtime": "latency/memory runtime",
    "precision": "latency/memory precision",
    "target": "target node of the latency/memory measurement",
}

# -- storage -----------------------------------------------------------------------------------
DEFAULT_STORAGE = "sqlite:///srnas.db"
STORAGE_ENV = "SRNAS_STORAGE"
HEARTBEAT_ENV = "SRNAS_HEARTBEAT_S"  # the drivers' heartbeat interval in seconds (default 30)


def measurement_differences(recorded: Mapping[str, Any],
                            requested: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, recorded, requested)`` for every measurement setting that differs.

    Keys a study did not record (an older study) are not compared: nothing is known about them.
    """
    return [(key, recorded[key], requested.get(key)) for key in MEASUREMENT_KEYS
            if key in recorded and _normal(recorded[key]) != _normal(requested.get(key))]


def _normal(value: Any) -> Any:
    # JSON round trips turn tuples into lists; compare the data, not the container type.
    return list(value) if isinstance(value, tuple) else value


__all__ = [
    "ATTR_BICUBIC",
    "ATTR_BUDGETS",
    "ATTR_LOST_TRIALS",
    "ATTR_MEASUREMENT",
    "ATTR_OBJECTIVES",
    "ATTR_REFERENCE_POINT",
    "ATTR_RUNG_PSNR",
    "ATTR_RUNG_RESULTS",
    "ATTR_SCALE",
    "ATTR_SPACE",
    "ATTR_VERSION",
    "BUDGET_KEYS",
    "DEFAULT_OBJECTIVES",
    "DEFAULT_STORAGE",
    "HEARTBEAT_ENV",
    "MEASUREMENT_KEYS",
    "MEASURE_COLUMNS",
    "OBJECTIVE_DIRECTIONS",
    "STATUSES",
    "STATUS_FAILED",
    "STATUS_INFEASIBLE",
    "STATUS_OK",
    "STATUS_RUNG",
    "STATUS_STOPPED_AT_RUNG",
    "STATUS_STOPPED_BY_CAP",
    "STATUS_TRAINING",
    "STORAGE_ENV",
    "UNTRAINED_VALUES",
    "measurement_differences",
]
