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
``--all-studies`` never merges them. A name ending in ``:fidelity`` is reserved: a search
refuses it (:func:`check_search_study_name`), and a study of such a name that srnas did not make
(its ``fidelity_of`` attr does not name the source study, :func:`is_sibling_of`) is never
read or written as a sibling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from srnas.space.errors import ConfigError, StudyError

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


# Optuna's study names are a VARCHAR(512) (optuna.storages._rdb.models.MAX_INDEXED_STRING_LENGTH,
# not public): a longer one fails deep in SQLAlchemy with a misleading message.
MAX_STUDY_NAME = 512
# A search's name leaves room for its sibling's suffix, so `srnas fidelity` can always follow.
MAX_SEARCH_STUDY_NAME = MAX_STUDY_NAME - len(FIDELITY_SUFFIX)


def check_search_study_name(name: str) -> None:
    """A search's study name: not empty, not reserved for a sibling, short enough for Optuna
    with its sibling's suffix. One-line :class:`ConfigError` naming ``study``."""
    if not name.strip():
        raise ConfigError("study", "must not be empty", name)
    if is_fidelity_study(name):
        raise ConfigError("study", f"must not end in {FIDELITY_SUFFIX!r}: that suffix names "
                          "the sibling study where `srnas fidelity` keeps retrains", name)
    if len(name) > MAX_SEARCH_STUDY_NAME:
        raise ConfigError("study", f"must be at most {MAX_SEARCH_STUDY_NAME} characters (its "
                          f"fidelity sibling adds {FIDELITY_SUFFIX!r} within Optuna's "
                          f"{MAX_STUDY_NAME}; got {len(name)} characters)", name[:40] + "...")


def is_sibling_of(attrs: Mapping[str, Any], source: str) -> bool:
    """True when study attrs ``attrs`` are those `srnas fidelity` wrote on creating the sibling
    of study ``source``: a same-named study made otherwise is not one."""
    return attrs.get(ATTR_FIDELITY_OF) == source and isinstance(attrs.get("format"), int)


def check_sibling(attrs: Mapping[str, Any], source: str, n_trials: int) -> None:
    """Refuse to use study ``fidelity_study_name(source)`` as the sibling unless srnas made it
    (an empty study with no attrs is a creation cut short, and is adopted)."""
    if is_sibling_of(attrs, source) or (not attrs and n_trials == 0):
        return
    raise StudyError("study", f"study {fidelity_study_name(source)!r} exists but was not made "
                     "by `srnas fidelity` (its fidelity_of attr does not name this study): "
                     "rename or delete it to retrain", source)


__all__ = ["ATTR_FIDELITY_OF", "BRIEF_PSNR", "BRIEF_STEPS", "FIDELITY_FORMAT",
           "FIDELITY_SUFFIX", "MAX_SEARCH_STUDY_NAME", "MAX_STUDY_NAME", "SOURCE_TRIAL", "STEPS",
           "check_search_study_name", "check_sibling", "fidelity_study_name",
           "is_fidelity_study", "is_sibling_of"]
