"""Network weights on disk: safetensors only, so loading a file never runs pickled code.

A weights file belongs to one config: its metadata carries the config's ``arch_id`` (and the
config itself as JSON), so a file is never silently loaded into another network. Loading
checks every tensor name and shape and names the first that does not fit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from srnas.evaluators.tensorfile import load_strict, save_tensors
from srnas.space.config import ArchConfig, from_dict
from srnas.space.errors import ConfigError

WEIGHTS_SUFFIX = ".safetensors"


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors refuses shared or non-contiguous storage; a clone per tensor is cheap next
    # to training and keeps the file independent of how the module laid its buffers out.
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def save_weights(model: nn.Module, path: str | Path, config: ArchConfig | None = None,
                 metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``model``'s state dict to ``path`` atomically (temporary file + rename), with
    ``config`` (its arch_id and JSON) and string ``metadata`` in the file's header."""

    target = Path(path)
    if target.suffix != WEIGHTS_SUFFIX:
        raise ConfigError("weights", f"must end in {WEIGHTS_SUFFIX}", str(path))
    header = {str(k): str(v) for k, v in (metadata or {}).items()}
    if config is not None:
        header.update(arch_id=config.arch_id, arch=config.to_json(indent=None))
    return save_tensors(_state(model), target, header)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string header of a weights file (empty when it has none)."""
    from safetensors import safe_open

    file = _existing(path)
    try:
        with safe_open(str(file), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as e:  # safetensors raises its own error types for a damaged header
        raise ConfigError("weights", f"is not a readable safetensors file ({e})",
                          str(path)) from None


# A config's JSON is a few hundred bytes; a header field far beyond that is not one.
MAX_ARCH_JSON = 1 << 20


def weights_config(path: str | Path) -> ArchConfig | None:
    """The config recorded in a weights file's header, if any; a header ``arch`` that is not
    a config (not JSON, nested absurdly deep, of the wrong shape or fields) is one
    :class:`ConfigError` naming the file."""
    text = read_metadata(path).get("arch")
    if not text:
        return None
    if len(text) > MAX_ARCH_JSON:
        raise ConfigError("weights", f"record an arch of {len(text):,} characters in their "
                          "header, not a config", str(path))
    try:
        return _arch_from_json(text, path)
    except RecursionError:
        raise ConfigError("weights", "record an arch in their header nested too deep to be "
                          "a config", str(path)) from None


def _arch_from_json(text: str, path: str | Path) -> ArchConfig:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ConfigError("weights", f"record an arch in their header that is not valid JSON "
                          f"({e})", str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError("weights", f"record an arch in their header that is a JSON "
                          f"{type(data).__name__}, not a config object", str(path))
    try:
        return from_dict(data, source=f"{path} arch")
    except ConfigError as e:
        raise ConfigError("weights", f"record an arch in their header that this srnas "
                          f"rejects: {e}", str(path)) from None


def _existing(path: str | Path) -> Path:
    file = Path(path)
    if not file.is_file():
        raise ConfigError("weights", "must be an existing .safetensors file", str(path))
    return file


def load_weights(model: nn.Module, path: str | Path, config: ArchConfig | None = None
                 ) -> dict[str, str]:
    """Load ``path`` into ``model`` (strict: every tensor present, every shape equal) and
    return the file's metadata. A file recorded for another ``config`` is refused first; then
    the first missing, unexpected or mismatching tensor is named."""
    from safetensors.torch import load_file

    metadata = read_metadata(path)
    recorded = metadata.get("arch_id")
    if config is not None and recorded and recorded != config.arch_id:
        raise ConfigError("weights", f"were trained for arch_id {recorded}, not this config's "
                          f"{config.arch_id}", str(path))
    try:
        tensors = load_file(str(_existing(path)))
    except Exception as e:
        raise ConfigError("weights", f"is not a readable safetensors file ({e})",
                          str(path)) from None
    load_strict(model, tensors, "weights", str(path))
    return metadata


__all__ = ["WEIGHTS_SUFFIX", "load_weights", "read_metadata", "save_weights",
           "weights_config"]
