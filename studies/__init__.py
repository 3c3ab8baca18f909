"""studies: read srnas's Optuna studies back: list them, Pareto fronts with budgets and
hypervolume, plots, and the export of one architecture.

The notebook API: ``load_study``, ``trials_frame``, ``pareto_front``, ``hypervolume``,
``pick``, ``merge_studies``, ``export_trial``, ``plot_front``, ``list_studies``; the CLI is a
thin layer over them. Nothing here imports torch or Ray, and nothing reads Optuna's tables
directly. Names load on first use (pandas and matplotlib are heavy).
"""

from __future__ import annotations

from srnas.space.lazy import lazy_getattr

_LAZY = {
    "load_study": "srnas.studies.frame",
    "trials_frame": "srnas.studies.frame",
    "merge_studies": "srnas.studies.frame",
    "study_names": "srnas.studies.frame",
    "pareto_front": "srnas.studies.front",
    "feasible_candidates": "srnas.studies.front",
    "hypervolume": "srnas.studies.front",
    "pick": "srnas.studies.front",
    "export_trial": "srnas.studies.export",
    "plot_front": "srnas.studies.plot",
    "list_studies": "srnas.studies.listing",
    "open_storage": "srnas.studies.storage",
    "mask_url": "srnas.studies.storage",
}

__all__ = list(_LAZY)
__getattr__ = lazy_getattr(__name__, _LAZY)
