"""ESC's ConvAttn as a block type: the shared dense large kernel plus a dynamic 3x3."""

from __future__ import annotations

from typing import TYPE_CHECKING

from srnas.space.block_type import BlockType
from srnas.space.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from srnas.space.config import ArchConfig


def _build(cfg: ArchConfig) -> nn.Module:
    from srnas.space.modules import ConvAttn

    return ConvAttn(cfg.pdim)


def _validate(cfg: ArchConfig) -> None:
    if not cfg.shared_kernel:
        raise ConfigError("shared_kernel", "convattn blocks need the shared kernel (their only "
                          "long-range path)", cfg.shared_kernel)


CONVATTN = BlockType(
    name="convattn", label="ConvAttn (ESC)", build=_build, validate=_validate)
