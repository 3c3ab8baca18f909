"""Named configurations, as a registry: the paper's ESC models, a MiLK network of ESC-light's
size, and a tiny one for tests. ``register_preset(name, **fields)`` adds one (a block type's
file may register presets of its own)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from srnas.space.config import ArchConfig, from_dict
from srnas.space.registry import Registry

PRESETS: Registry[Mapping[str, Any]] = Registry("preset", "preset")


def register_preset(name: str, **fields: Any) -> None:
    """``name`` -> the config ``fields`` (every field but ``scale``, which callers choose)."""
    if "scale" in fields:
        raise ValueError(f"preset {name!r}: the scale is chosen at get_preset, not stored")
    from_dict(fields)  # a preset that is not a valid config fails where it is declared
    PRESETS.register(name, dict(fields))


def unregister_preset(name: str) -> None:
    PRESETS.unregister(name)


# A live view: presets registered later appear in it.
PRESET_NAMES = PRESETS.names_view()


def get_preset(name: str, scale: int = 4) -> ArchConfig:
    return from_dict({**PRESETS.get(name), "scale": scale})


# ESC (ICCV 2025), exactly as in the authors' code.
register_preset("esc", dim=64, split_ratio=0.25, kernel_size=13, n_blocks=5, conv_layers=5,
                window_size=32, heads=4, ffn_ratio=1.25, first_ffn_ratio=2.0)
register_preset("esc-light", dim=64, split_ratio=0.25, kernel_size=13, n_blocks=3,
                conv_layers=5, window_size=32, heads=4, ffn_ratio=1.25, first_ffn_ratio=2.0)
# MiLK-ConvAttn in ESC-light's frame: 8 bases, 2-way softmax gate, shared kernel kept.
register_preset("milk-light", dim=64, split_ratio=0.25, kernel_size=13, block_type="milk",
                dict_size=8, gate="softmax", shared_kernel=True, n_blocks=3, conv_layers=5,
                window_size=32, heads=4, ffn_ratio=1.25, first_ffn_ratio=2.0)
# For tests: well under 50K parameters, still exercising every component.
register_preset("tiny", dim=16, split_ratio=0.25, kernel_size=7, block_type="milk", dict_size=2,
                gate="softmax", shared_kernel=True, n_blocks=1, conv_layers=2, window_size=8,
                heads=2, ffn_ratio=1.25, first_ffn_ratio=2.0)

__all__ = ["PRESETS", "PRESET_NAMES", "get_preset", "register_preset", "unregister_preset"]
