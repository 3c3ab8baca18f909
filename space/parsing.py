"""Parsing helpers every package's commands and settings share: an architecture spec (preset
name or config file), an ``HxW`` size, and the input an exported config was measured at.
Library code: errors name the argument (``spec``, ``input_hw``); the CLI shows the flag.
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


def recorded_input_hw(spec: str) -> tuple[int, int] | None:
    """The measurement input an exported trial was counted at (``provenance.input_hw``), so
    that ``arch show`` of an export reports the FLOPs the study recorded; None for a preset, a
    plain config, or anything unreadable (the caller then uses its default)."""
    path = Path(spec)
    if spec in PRESET_NAMES or path.suffix.lower() not in (".json", ".yaml", ".yml"):
        return None
    try:
        import yaml

        raw = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
        hw = raw["provenance"]["input_hw"]
        return int(hw[0]), int(hw[1])
    except Exception:  # not an export, or no recorded input: use the default
        return None


__all__ = ["parse_hw", "recorded_input_hw", "resolve_spec"]
