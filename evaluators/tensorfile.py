"""Safetensors files of srnas (weights and checkpoints): written atomically, loaded strictly.
One module both use, so neither needs the other."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from srnas.space.atomic import atomic_write
from srnas.space.errors import ConfigError


def save_tensors(tensors: Mapping[str, torch.Tensor], target: Path,
                 header: Mapping[str, str]) -> Path:
    """A safetensors file (string ``header``) written through :func:`atomic_write`."""
    from safetensors.torch import save_file

    with atomic_write(target) as tmp:
        save_file(dict(tensors), tmp, metadata=dict(header))
    return target


def load_strict(model: nn.Module, tensors: Mapping[str, torch.Tensor], field: str, where: str,
                what: str = "") -> None:
    """``model.load_state_dict(tensors, strict=True)``, but a mismatch is a one-line
    :class:`ConfigError` on ``field`` naming the first missing, mismatching or extra tensor
    (``what`` says which tensors, e.g. a checkpoint's "ema ")."""
    subject = f"{what}weights " if what else ""  # the field already says "weights"
    expected = model.state_dict()
    for name, tensor in expected.items():
        if name not in tensors:
            raise ConfigError(field, f"{subject}lack tensor {name!r} of shape "
                              f"{tuple(tensor.shape)}", where)
        if tuple(tensors[name].shape) != tuple(tensor.shape):
            raise ConfigError(field, f"{what}tensor {name!r} has shape "
                              f"{tuple(tensors[name].shape)}, the config needs "
                              f"{tuple(tensor.shape)}", where)
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise ConfigError(field, f"{subject}hold tensor {extra[0]!r} that the config has "
                          "no place for", where)
    model.load_state_dict(dict(tensors), strict=True)


__all__ = ["load_strict", "save_tensors"]
