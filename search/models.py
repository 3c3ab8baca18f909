"""Networks to measure or ship, named on a command line: a training run folder (``RUN/``:
config.yaml + best.safetensors), a weights file (its header records the config), or a config /
preset / study trial with separate weights; a network without weights is refused unless
random weights are asked for. Here because a study's trial (studies/) and trained weights
(evaluators/) meet only in search/."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from srnas.space.errors import ConfigError, SrnasError

if TYPE_CHECKING:
    from srnas.evaluators.trained import Trained


def resolve_models(specs: Sequence[str], weights: Sequence[str] = (), *,
                   trial: int | None = None, storage: str | None = None,
                   scale: int | None = None, untrained: bool = False,
                   field: str = "models") -> list[Trained]:
    """Each spec as a network to load: a RUN/ folder or a .safetensors file brings its own
    weights; a config, preset or study (``trial``) takes the next of ``weights``. Scales are
    reconciled (``scale``, else the trained models' one); a model without weights is an error
    unless ``untrained``. Errors about a spec name ``field``."""
    from srnas.evaluators.trained import (
        RUN_CONFIG,
        Trained,
        from_run,
        from_weights_file,
        is_run_folder,
        is_weights_file,
        training_steps,
    )
    from srnas.search.sources import resolve_source

    pending = [Path(w) for w in weights]
    models: list[Trained] = []
    for spec in specs:
        # With --trial a bare name is a study, whatever the current folder holds.
        on_disk = trial is None or not _bare_name(spec)
        if on_disk and is_run_folder(spec):
            models.append(from_run(spec))
        elif on_disk and Path(spec).is_dir():
            raise ConfigError(field, f"is a folder but not a training run (no {RUN_CONFIG})",
                              spec)
        elif on_disk and is_weights_file(spec):
            try:
                models.append(from_weights_file(spec))
            except SrnasError as e:  # the file is the spec itself, not a --weights
                if e.field != "weights":
                    raise
                raise type(e)(field, e.rule, e.value) from None
        else:
            try:
                source = resolve_source(spec, trial=trial, storage=storage, scale=scale)
            except SrnasError as e:
                if e.field != "spec":
                    raise
                raise type(e)(field, e.rule, e.value) from None
            file = pending.pop(0) if pending else None
            budget = training_steps(file) if file is not None else (None, None)
            models.append(Trained(source.label, source.config, file, *budget))
    if pending:
        raise ConfigError("weights", "one more than the models that take weights (configs, "
                          "presets, study trials; RUN/ folders and .safetensors files bring "
                          "their own)", str(pending[0]))
    models = _one_scale(models, scale)
    for m in models:
        if m.weights is None and not untrained:
            raise ConfigError("weights", f"model {m.label} has none: give --weights "
                              "W.safetensors or a RUN/ folder (measuring random weights is "
                              "almost always a mistake; --untrained allows it)")
    return models


def _bare_name(spec: str) -> bool:
    """True for a name without a folder part (``default``, not ``./default`` or ``runs/a``):
    with ``--trial`` it names a study, so a folder of that name in the current directory does
    not shadow the study (``./NAME`` still reads the folder)."""
    return Path(spec).name == spec and not spec.endswith(".safetensors")


def _one_scale(models: list[Trained], scale: int | None) -> list[Trained]:
    """Trained models keep their scale (``scale`` must agree); untrained ones follow it, or the
    trained models' scale."""
    from srnas.evaluators.weights import weights_config

    for m in models:
        recorded = weights_config(m.weights) if m.weights is not None else None
        if recorded is not None and recorded.scale != m.config.scale:
            raise ConfigError("scale", f"{m.weights} were trained at x{recorded.scale}, the "
                              f"model {m.label} is x{m.config.scale}", m.config.scale)
        if scale is not None and m.weights is not None and m.config.scale != scale:
            raise ConfigError("scale", f"model {m.label} was trained at x{m.config.scale}",
                              scale)
    trained = {m.config.scale for m in models if m.weights is not None}
    target = scale if scale is not None else (trained.pop() if len(trained) == 1 else None)
    if target is None:
        return models
    return [m if m.config.scale == target else
            dataclasses.replace(m, config=m.config.replace(scale=target)) for m in models]


__all__ = ["resolve_models"]
