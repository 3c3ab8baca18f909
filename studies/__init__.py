"""studies: read srnas's Optuna studies back: list them, Pareto fronts with budgets and
hypervolume, plots, and the export of one architecture.

The notebook API is :mod:`studies.front` (``load_study``, ``trials_frame``, ``pareto_front``,
``hypervolume``, ``pick``, ``merge_studies``), with :func:`studies.export.export_trial` and
:func:`studies.plot.plot_front`; :mod:`studies.cli` is a thin layer over them. Nothing here
imports torch or Ray, and nothing reads Optuna's tables directly.
"""
