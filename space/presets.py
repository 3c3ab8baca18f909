"""Named configurations: the paper's ESC models, a MiLK network of ESC-light's size, and a tiny
one for tests."""

from __future__ import annotations

from srnas.space.config import ArchConfig
from srnas.space.errors import ConfigError

_PRESETS: dict[str, dict[str, object]] = {
    # ESC (ICCV 2025), exactly as in the authors' code.
    "esc": dict(dim=64, split_ratio=0.25, kernel_size=13, n_blocks=5, conv_layers=5,
                window_size=32, heads=4, ffn_ratio=1.25, first_ffn_ratio=2.0),
    "esc-light": dict(dim=64, split_ratio=0.25, kernel_size=13, n_blocks=3, conv_layers=5,
                      window_size=32, heads=4, ffn_ratio=1.25, first_ffn_ratio=2.0),
    # MiLK-ConvAttn in ESC-light's frame: 8 bases, 2-way softmax gate, shared kernel kept.
    "milk-light": dict(dim=64, split_ratio=0.25, kernel_size=13, block_type="milk", dict_size=8,
                       gate="softmax", shared_kernel=True, n_blocks=3, conv_layers=5,
                       window_size=32, heads=4, ffn_ratio=1.25, first_ffn_ratio=2.0),
    # For tests: well under 50K parameters, still exercising every component.
    "tiny": dict(dim=16, split_ratio=0.25, kernel_size=7, block_type="milk", dict_size=2,
                 gate="softmax", shared_kernel=True, n_blocks=1, conv_layers=2,
                 window_size=8, heads=2, ffn_ratio=1.25, first_ffn_ratio=2.0),
}

PRESET_NAMES = tuple(_PRESETS)


def get_preset(name: str, scale: int = 4) -> ArchConfig:
    try:
        fields = _PRESETS[name]
    except KeyError:
        raise ConfigError("preset", f"must be one of {list(PRESET_NAMES)}", name) from None
    return ArchConfig(scale=scale, **fields)  # type: ignore[arg-type]
