"""Fabricated srnas studies: trials written with ``optuna.trial.create_trial`` exactly as the
search records them (``studies.schema``), for tests, demos and notebooks without a search run.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from space.config import ArchConfig
from studies.schema import DEFAULT_OBJECTIVES, OBJECTIVE_DIRECTIONS, STATUS_FAILED, STATUS_OK

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

# The searched parameters a fake trial records (a subset of the space, enough for p_ columns).
_SEARCHED = ("dim", "kernel_size", "n_blocks", "block_type")


def make_study(storage: BaseStorage | str, name: str,
               objectives: Sequence[str] = DEFAULT_OBJECTIVES,
               budgets: Mapping[str, float] | None = None) -> optuna.Study:
    """An empty study with srnas's study-level attributes (metric names, objectives, budgets)."""
    import optuna

    directions = [OBJECTIVE_DIRECTIONS[n] for n in objectives]
    study = optuna.create_study(study_name=name, storage=storage, directions=directions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # set_metric_names is "experimental" in Optuna 5
        study.set_metric_names(list(objectives))
    study.set_user_attr("objectives", [[n, d] for n, d in zip(objectives, directions,
                                                              strict=True)])
    study.set_user_attr("srnas_version", "test")
    study.set_user_attr("scale", 4)
    study.set_user_attr("budgets", dict(budgets or {}))
    return study


def fake_trial(study: optuna.Study, *, psnr: float | None = None,
               latency_ms: float | None = None, memory_mb: float | None = None,
               arch: ArchConfig | None = None, params: int | None = None,
               flops: int | None = None, device: str = "cpu: test", state: str = "COMPLETE",
               extra: Mapping[str, Any] | None = None) -> optuna.trial.FrozenTrial:
    """Add one trial; constraints follow the study's ``budgets`` attr (measured - budget).

    Objective values come from the measures of the same name; ``extra`` overrides user attrs
    (e.g. ``{"baseline": "esc-light"}`` or ``{"status": "infeasible_untrained"}``).
    """
    import optuna
    from optuna.distributions import CategoricalDistribution, IntDistribution

    arch = arch or ArchConfig()
    measures: dict[str, Any] = {"psnr": psnr, "ssim": None if psnr is None else psnr / 40,
                                "latency_ms": latency_ms, "latency_iqr_ms": None,
                                "memory_mb": memory_mb, "params": params, "flops": flops}
    if latency_ms is not None:
        measures["latency_iqr_ms"] = round(latency_ms * 0.02, 6)
    attrs: dict[str, Any] = {
        "arch": arch.to_dict(), "arch_id": arch.arch_id, "device": device, "dtype": "float32",
        "input_hw": [180, 320], "threads": 1, "versions": {"torch": "test", "optuna": "5"},
        "status": STATUS_FAILED if state == "FAIL" else STATUS_OK,
        **{k: v for k, v in measures.items() if v is not None},
    }
    if state == "FAIL":
        attrs["failure_reason"] = "non-finite loss"
    attrs.update(extra or {})
    names = study.metric_names or list(DEFAULT_OBJECTIVES)
    complete = state == "COMPLETE"
    values = [float(attrs[n]) for n in names] if complete else None
    budgets = study.user_attrs.get("budgets") or {}
    constraints = {k: float(attrs[k]) - float(b) for k, b in budgets.items()
                   if k in attrs} if complete else None
    distributions = {
        "dim": IntDistribution(8, 128, step=8), "kernel_size": IntDistribution(3, 31, step=2),
        "n_blocks": IntDistribution(1, 8), "block_type": CategoricalDistribution(["convattn",
                                                                                 "milk"]),
    }
    trial = optuna.trial.create_trial(
        state=optuna.trial.TrialState[state], values=values,
        params={k: getattr(arch, k) for k in _SEARCHED}, distributions=distributions,
        user_attrs=attrs, constraints=constraints or None,
    )
    study.add_trial(trial)
    return study.get_trials(deepcopy=False)[-1]


# The reference study of the tests and docs: (psnr, latency_ms, memory_mb, params, state,
# extra). Launch budget latency_ms <= 50. Its front is trials {0, 1, 2, 4, 8}: 3 is dominated
# by 0, 5 breaks the latency budget (it would otherwise lead on PSNR), 6 failed, 7 is still
# running, 9 was pruned; 8 is the esc-light baseline.
KNOWN_TRIALS: tuple[tuple[float | None, float | None, float | None, int | None, str,
                          dict[str, Any]], ...] = (
    (30.0, 10.0, 100.0, 500_000, "COMPLETE", {}),
    (31.0, 20.0, 150.0, 600_000, "COMPLETE", {}),
    (29.0, 5.0, 90.0, 300_000, "COMPLETE", {}),
    (29.5, 12.0, 110.0, 200_000, "COMPLETE", {}),
    (28.0, 30.0, 80.0, 250_000, "COMPLETE", {}),
    (33.0, 60.0, 200.0, 1_000_000, "COMPLETE", {}),
    (None, None, None, None, "FAIL", {}),
    (None, None, None, None, "RUNNING", {}),
    (32.0, 40.0, 300.0, 900_000, "COMPLETE", {"baseline": "esc-light"}),
    (None, None, None, None, "PRUNED", {}),
)
KNOWN_BUDGETS = {"latency_ms": 50.0}


def make_known_study(storage: BaseStorage | str, name: str = "known",
                     device: str = "cpu: test") -> optuna.Study:
    """The reference study (``KNOWN_TRIALS``); trial i gets a distinct valid architecture."""
    study = make_study(storage, name, budgets=KNOWN_BUDGETS)
    for i, (psnr, latency, memory, params, state, extra) in enumerate(KNOWN_TRIALS):
        arch = ArchConfig(dim=16 + 8 * i, kernel_size=7 + 2 * (i % 4), n_blocks=1 + i % 3)
        fake_trial(study, psnr=psnr, latency_ms=latency, memory_mb=memory, params=params,
                   flops=None if params is None else params * 1000, arch=arch, device=device,
                   state=state, extra=extra)
    return study
