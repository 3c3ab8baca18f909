"""Where a command's network comes from: a preset, a config file (an exported study config
included) or a study's trial. Only this composition layer may read both a study (studies/)
and build networks (evaluators/), so ``train`` and ``benchmark`` (through
:mod:`srnas.search.models`) resolve their source here; ``fidelity`` reads its trials' recipes
from the study itself (:mod:`srnas.search.fidelity`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srnas.space.config import ArchConfig, from_dict
from srnas.space.errors import ConfigError
from srnas.space.parsing import resolve_spec
from srnas.space.presets import PRESET_NAMES
from srnas.space.searchspace import TRAIN_DIMS


@dataclass(frozen=True)
class Source:
    """A resolved network: its config, a label for tables, and (for a trial) the training
    settings the trial was sampled with (``lr``, ``batch_size``, ``patch_size``)."""

    config: ArchConfig
    label: str
    train: dict[str, Any]


def resolve_source(spec: str, *, trial: int | None = None, storage: str | None = None,
                   scale: int | None = None) -> Source:
    """``spec`` is a preset, a config file, or (with ``trial``) a study name in ``storage``.
    A trial of any state that recorded its architecture may be used: a pruned trial is a
    legitimate candidate for longer training."""
    if trial is None:
        if spec not in PRESET_NAMES and not Path(spec).exists():
            raise ConfigError("spec", f"must be a preset ({', '.join(PRESET_NAMES)}), an "
                              "existing config file, or a study name with --trial", spec)
        config = resolve_spec(spec, scale)
        return Source(config, spec if spec in PRESET_NAMES else Path(spec).stem, {})
    from srnas.studies.frame import get_trial, load_study, require_arch
    from srnas.studies.storage import open_storage

    study = load_study(spec, open_storage(storage))
    found = get_trial(study, trial)
    arch = require_arch(study, found)
    config = from_dict(arch, source=f"trial {trial} arch")
    if scale is not None:
        config = config.replace(scale=scale)
    sampled = {k: int(v) if k != "lr" else float(v)
               for k, v in found.params.items() if k in TRAIN_DIMS}
    return Source(config, f"{spec}#{trial}", sampled)


__all__ = ["Source", "resolve_source"]
