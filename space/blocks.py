"""Block types: the attention module a network uses in every conv layer, as a registry.

A block type is ONE file that declares a :class:`BlockType` and calls :func:`register_block`
with it (the built-ins, ``space/block_convattn.py`` and ``space/block_milk.py``, are
registered here, so that they do not import this module back). Its record says everything
the rest of srnas asks of it:

- ``build``: the module factory, ``build(config) -> nn.Module`` whose ``forward(x,
  shared_kernel)`` maps (B, dim, H, W) to itself. Import torch inside it, not at the top of the
  file: this metadata is read without torch (studies/, ``srnas --help``).
- ``fields``: config fields only this block type has, with their defaults and their type, and
  optionally their default search dimension (YAML form, as in a ``--space`` file). Fields of
  schema 1 (``dict_size``, ``gate``) are dataclass fields of ``ArchConfig``; any other lands
  in ``ArchConfig.options`` and round-trips through ``to_dict`` like the rest.
- ``dims``: the block-conditional search dimensions that apply to it. A dimension claimed by
  some block type is suggested only when the sampled block type claims it too; every other
  dimension applies to every block type.
- ``validate``: its own config rules (one-line ``ConfigError``), run after the common ones.
- ``probe``: values of its own fields that satisfy ``validate``, used to check a search space
  value by value.
- ``summary``: the extra words a plot hover shows for it (e.g. ``dict 8 gate softmax``).

A registry lives per process: a block type from outside srnas must be imported wherever its
networks are built, Ray's workers included (import it from a module they import, or name it in
Ray's ``runtime_env``); ConvAttn and MiLK load with this module.
"""

from __future__ import annotations

from srnas.space.block_convattn import CONVATTN
from srnas.space.block_milk import MILK
from srnas.space.block_type import BlockField, BlockType
from srnas.space.registry import Registry

BLOCKS: Registry[BlockType] = Registry("block type", "block_type", first=("convattn", "milk"))


def register_block(block: BlockType) -> BlockType:
    """Make ``block`` a value of ``block_type`` (configs, search spaces, plots)."""
    return BLOCKS.register(block.name, block)


def unregister_block(name: str) -> BlockType:
    return BLOCKS.unregister(name)


def get_block(name: object) -> BlockType:
    """The record of ``name``; an unknown name is ``block_type: must be one of [...]``."""
    return BLOCKS.get(name)


def block_names() -> tuple[str, ...]:
    return BLOCKS.names()


def block_fields() -> dict[str, tuple[BlockField, tuple[str, ...]]]:
    """Every block-owned field -> (its declaration, the block types that own it)."""
    out: dict[str, tuple[BlockField, tuple[str, ...]]] = {}
    for name, block in BLOCKS.items():
        for f in block.fields:
            owners = out[f.name][1] if f.name in out else ()
            out[f.name] = (out[f.name][0] if f.name in out else f, (*owners, name))
    return out


def conditional_dims() -> tuple[str, ...]:
    """Search dimensions some block type claims (suggested only for block types claiming them)."""
    return tuple(dict.fromkeys(d for _, b in BLOCKS.items() for d in b.dims))


def applies(dim: str, block_type: object) -> bool:
    """Whether search dimension ``dim`` is suggested for a network of ``block_type``."""
    if dim not in conditional_dims():
        return True
    return block_type in BLOCKS and dim in get_block(block_type).dims


# ESC's ConvAttn and MiLK-ConvAttn are registered like any other block type.
register_block(CONVATTN)
register_block(MILK)

__all__ = [
    "BLOCKS",
    "BlockField",
    "BlockType",
    "applies",
    "block_fields",
    "block_names",
    "conditional_dims",
    "get_block",
    "register_block",
    "unregister_block",
]
