"""Where ``srnas fidelity`` keeps its long-budget results: a sibling study.

Optuna refuses to update a finished trial (``UpdateFinishedTrialError``), so a retrain of
trial N of study ``S`` cannot land on that trial. It lands in the sibling study
``S:fidelity`` (:func:`fidelity_study_name`), in the same storage, as one trial per retrain:

Study ``S:fidelity``
  - single objective: ``psnr`` (maximize), the validation PSNR after the long training
  - user attrs: ``fidelity_of`` = ``S``, ``format`` = :data:`FIDELITY_FORMAT`

Trial (one per (source trial, steps) pair; added whole with ``Study.add_trial`` when its
training ends, so a killed run leaves no RUNNING trial behind and a rerun redoes only what
is missing)
  - value: the long-budget PSNR (COMPLETE); FAIL with ``failure_reason`` when it failed
  - user attrs: ``source_trial`` (the trial number in ``S``), ``steps`` (the long budget),
    ``brief_psnr`` and ``brief_steps`` (what the search measured, from the source trial),
    ``seed``, ``train`` (lr, batch_size, patch_size), ``arch_id``, ``ssim``, ``device``,
    ``threads`` (torch's intra-op threads: CPU gradients, so the PSNR, depend on it),
    ``train_seconds``, ``val_psnr`` ({step: psnr} along the way)

Readers (``srnas fidelity``, ``srnas pareto --fidelity N``, a notebook with
``optuna.load_study(study_name="S:fidelity", ...)``) read it through Optuna's public API only.
Sibling studies are not searches: study listings show them under their source study and
``--all-studies`` never merges them.
"""

from __future__ import annotations

FIDELITY_SUFFIX = ":fidelity"
FIDELITY_FORMAT = 1
ATTR_FIDELITY_OF = "fidelity_of"
# Trial attrs of a retrain.
SOURCE_TRIAL = "source_trial"
STEPS = "steps"
BRIEF_PSNR = "brief_psnr"
BRIEF_STEPS = "brief_steps"


def fidelity_study_name(study: str) -> str:
    return f"{study}{FIDELITY_SUFFIX}"


def is_fidelity_study(name: str) -> bool:
    return name.endswith(FIDELITY_SUFFIX)


__all__ = ["ATTR_FIDELITY_OF", "BRIEF_PSNR", "BRIEF_STEPS", "FIDELITY_FORMAT",
           "FIDELITY_SUFFIX", "SOURCE_TRIAL", "STEPS", "fidelity_study_name",
           "is_fidelity_study"]
