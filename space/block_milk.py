"""MiLK-ConvAttn as a block type: a per-module dictionary of large kernels mixed per sample and
channel, gated against the dynamic 3x3 (see ``srnas.space.modules.MiLKConvAttn``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from srnas.space.block_type import BlockField, BlockType
from srnas.space.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from srnas.space.config import ArchConfig

GATES = ("softmax", "sigmoid", "sum")
DICT_RANGE = (1, 16)


def _build(cfg: ArchConfig) -> nn.Module:
    from srnas.space.modules import MiLKConvAttn

    assert cfg.dict_size is not None and cfg.gate is not None  # guaranteed by validation
    # residual=False: the ESC layer around it already has the skip.
    return MiLKConvAttn(cfg.dim, cfg.pdim, cfg.kernel_size, cfg.dict_size, cfg.gate,
                        use_shared_kernel=cfg.shared_kernel, residual=False)


def _validate(cfg: ArchConfig) -> None:
    if cfg.dict_size is None:
        raise ConfigError("dict_size", "is required for block_type 'milk'", cfg.dict_size)
    lo, hi = DICT_RANGE
    if not lo <= cfg.dict_size <= hi:
        raise ConfigError("dict_size", f"must be between {lo} and {hi}", cfg.dict_size)
    if cfg.gate is None:
        raise ConfigError("gate", f"is required for block_type 'milk': {list(GATES)}", cfg.gate)
    if cfg.gate not in GATES:
        raise ConfigError("gate", f"must be one of {list(GATES)}", cfg.gate)


def _summary(arch: Mapping[str, Any]) -> str:
    return f"dict {arch.get('dict_size')} gate {arch.get('gate')}"


MILK = BlockType(
    name="milk", label="MiLK-ConvAttn", build=_build, validate=_validate, summary=_summary,
    # Schema-1 fields of ArchConfig (None on other block types).
    fields=(BlockField("dict_size", None, (int, type(None)), search={"low": 1, "high": 8}),
            BlockField("gate", None, (str, type(None)), search=list(GATES))),
    # shared_kernel is a field of every network, but only MiLK may search it: ConvAttn's
    # shared kernel is its only long-range path.
    dims=("dict_size", "gate", "shared_kernel"),
    probe={"dict_size": 1, "gate": "sum"})
