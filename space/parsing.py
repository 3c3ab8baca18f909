"""Parsing helpers every package's commands and settings share: an architecture spec (preset
name or config file) and an ``HxW`` size. Library code: errors name the argument (``spec``,
``input_hw``); the CLI shows the flag.
"""

from __future__ import annotations

from pathlib import Path

from srnas.space.config import ArchConfig, load_config
from srnas.space.errors import ConfigError
from srnas.space.presets import PRESET_NAMES, get_preset


def resolve_spec(spec: str, scale: int | None = None) -> ArchConfig:
    """A preset name or a config file; ``scale`` (if given) overrides the file's scale."""
    if spec in PRESET_NAMES:
        return get_preset(spec, scale if scale is not None else 4)
    if not Path(spec).exists():
        raise ConfigError("spec", f"must be a preset ({', '.join(PRESET_NAMES)}) or an existing "
                          "config file", spec)
    config = load_config(spec)
    return config.replace(scale=scale) if scale is not None else config


def parse_hw(text: str, field: str = "input_hw") -> tuple[int, int]:
    """'180x320' -> (180, 320)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(field, "must be HxW with positive integers, e.g. 180x320",
                          text) from None
    if h < 1 or w < 1:
        raise ConfigError(field, "must be HxW with positive integers, e.g. 180x320", text)
    return h, w


__all__ = ["parse_hw", "resolve_spec"]
