"""What a block type is (:class:`BlockType`, :class:`BlockField`), apart from the registry
(:mod:`srnas.space.blocks`) so that the built-in block types can be declared in files of their
own which the registry imports, with no import going back. See :mod:`srnas.space.blocks` for
what each field means."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from srnas.space.config import ArchConfig


@dataclass(frozen=True)
class BlockField:
    """A config field only some block types have."""

    name: str
    default: Any = None
    types: tuple[type, ...] = (int, float, str, bool, type(None))
    search: Any = None  # the default search dimension (YAML form); None: not searched

    @property
    def integer(self) -> bool:
        return int in self.types and float not in self.types


@dataclass(frozen=True)
class BlockType:
    name: str
    label: str
    build: Callable[[ArchConfig], nn.Module]
    fields: tuple[BlockField, ...] = ()
    dims: tuple[str, ...] = ()
    validate: Callable[[ArchConfig], None] | None = None
    probe: Mapping[str, Any] = field(default_factory=dict)
    summary: Callable[[Mapping[str, Any]], str] | None = None
    # Whether the default search space offers it (a plug-in may want to be opt-in).
    default_search: bool = True

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


__all__ = ["BlockField", "BlockType"]
