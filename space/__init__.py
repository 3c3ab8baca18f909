"""space: the architecture family as data (configs, presets, search space) and its networks.

Config-level names import without torch, so studies/ can read and write configs cheaply; the
torch-backed names (``build_model`` and the modules) load on first use.
"""

from __future__ import annotations

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
from srnas.space.presets import PRESET_NAMES, get_preset

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
    "ConfigError",
    "DataError",
    "DeviceError",
    "LockTimeout",
    "SrnasError",
    "StorageError",
    "StudyError",
    "TrainingError",
    "from_dict",
    "from_json",
    "from_yaml",
    "get_preset",
    "load_config",
    *_LAZY,
]


__getattr__ = lazy_getattr(__name__, _LAZY)
