"""space: the architecture family as data (configs, presets, search space) and its networks.

Extension points are registries (``register_block``, ``register_preset``,
``register_objective``; see ``space/registry.py``). Config-level names import without torch,
so studies/ can read and write configs cheaply; the torch-backed names (``build_model`` and the
modules) load on first use.
"""

from __future__ import annotations

from srnas.space.blocks import BlockField, BlockType, get_block, register_block
from srnas.space.config import (
    SCHEMA_VERSION,
    ArchConfig,
    from_dict,
    from_json,
    from_yaml,
    load_config,
)
from srnas.space.errors import (
    ConfigError,
    DataError,
    DeviceError,
    LockTimeout,
    SrnasError,
    StorageError,
    StudyError,
    TrainingError,
)
from srnas.space.lazy import lazy_getattr
from srnas.space.objectives import Objective, get_objective, register_objective
from srnas.space.presets import PRESET_NAMES, get_preset, register_preset

_LAZY = {
    "build_model": "srnas.space.network",
    "count_params": "srnas.space.network",
    "SRNet": "srnas.space.network",
    "ConvAttn": "srnas.space.modules",
    "MiLKConvAttn": "srnas.space.modules",
    "WindowAttention": "srnas.space.modules",
    "count_flops": "srnas.space.complexity",
    "complexity": "srnas.space.complexity",
    "default_input_hw": "srnas.space.complexity",
    "SearchSpace": "srnas.space.searchspace",
    "sample_config": "srnas.space.searchspace",
    "load_space": "srnas.space.searchspace",
    "parse_hw": "srnas.space.parsing",
    "resolve_spec": "srnas.space.parsing",
}

__all__ = [
    "PRESET_NAMES",
    "SCHEMA_VERSION",
    "ArchConfig",
    "BlockField",
    "BlockType",
    "ConfigError",
    "DataError",
    "DeviceError",
    "LockTimeout",
    "Objective",
    "SrnasError",
    "StorageError",
    "StudyError",
    "TrainingError",
    "from_dict",
    "from_json",
    "from_yaml",
    "get_block",
    "get_objective",
    "get_preset",
    "load_config",
    "register_block",
    "register_objective",
    "register_preset",
    *_LAZY,
]


__getattr__ = lazy_getattr(__name__, _LAZY)
