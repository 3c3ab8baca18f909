"""space: the architecture family as data (configs, presets, search space) and its networks.

Config-level names import without torch, so studies/ can read and write configs cheaply; the
torch-backed names (``build_model`` and the modules) load on first use.
"""

from __future__ import annotations

from typing import Any

from space.config import SCHEMA_VERSION, ArchConfig, from_dict, from_json, from_yaml, load_config
from space.errors import ConfigError, SrnasError
from space.presets import PRESET_NAMES, get_preset

_LAZY = {
    "build_model": "space.network",
    "count_params": "space.network",
    "SRNet": "space.network",
    "ConvAttn": "space.modules",
    "MiLKConvAttn": "space.modules",
    "WindowAttention": "space.modules",
    "count_flops": "space.complexity",
    "complexity": "space.complexity",
    "default_input_hw": "space.complexity",
    "SearchSpace": "space.searchspace",
    "sample_config": "space.searchspace",
    "load_space": "space.searchspace",
}

__all__ = [
    "PRESET_NAMES",
    "SCHEMA_VERSION",
    "ArchConfig",
    "ConfigError",
    "SrnasError",
    "from_dict",
    "from_json",
    "from_yaml",
    "get_preset",
    "load_config",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'space' has no attribute {name!r}")
