"""The architecture config: frozen, typed, validated on construction, with a strict round trip.

One :class:`ArchConfig` describes one network of the family. Conditional fields are honest: a
field that only some block types have (``space/blocks.py``: ``dict_size`` and ``gate`` are
MiLK's) must be ``None`` on the others. Fields of block types registered after schema 1 live in
``options`` and read and write like the others (``to_dict`` puts them beside the rest).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from srnas.space.blocks import BlockType, block_fields, get_block
from srnas.space.errors import ConfigError

SCHEMA_VERSION = 1
SCALES = (2, 3, 4)
KERNEL_RANGE = (3, 31)

_FLOAT_FIELDS = ("split_ratio", "ffn_ratio", "first_ffn_ratio")


@dataclass(frozen=True)
class ArchConfig:
    """One point of the architecture family. Defaults are ESC-light at x4."""

    scale: int = 4
    dim: int = 64
    split_ratio: float = 0.25
    kernel_size: int = 13
    block_type: str = "convattn"  # a registered block type (space/blocks.py)
    dict_size: int | None = None
    gate: str | None = None
    shared_kernel: bool = True
    n_blocks: int = 3
    conv_layers: int = 5
    # Window self-attention: one flag for every block, or one flag per block (a list as long
    # as n_blocks). A list whose flags are all equal is stored as the single flag, so one
    # network has one arch_id.
    window_attn: bool | tuple[bool, ...] = True
    window_size: int = 32
    heads: int = 4
    ffn_ratio: float = 1.25
    first_ffn_ratio: float = 2.0
    layer_norm: bool = False
    # The block type's own fields beyond schema 1, as sorted (name, value) pairs; a mapping
    # is accepted. Empty for convattn and milk, so their ids are those of schema 1.
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        # Numbers in one form: `split_ratio: 1` and `1.0` are one network, one config.
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
        if isinstance(self.window_attn, list | tuple) and not isinstance(self.window_attn, str):
            flags = tuple(self.window_attn)
            if flags and all(isinstance(f, bool) for f in flags) and len(set(flags)) == 1:
                flags = flags[0]  # type: ignore[assignment]
            object.__setattr__(self, "window_attn", flags)
        _validate(self)

    def option(self, name: str) -> Any:
        """The value of block-type field ``name`` (``None`` where this block type has none)."""
        return dict(self.options).get(name)

    def block_has_window(self, index: int) -> bool:
        """Whether block ``index`` keeps its window self-attention."""
        flags = self.window_attn
        return flags if isinstance(flags, bool) else flags[index]

    @property
    def any_window(self) -> bool:
        return any(self.block_has_window(i) for i in range(self.n_blocks))

    # -- derived -------------------------------------------------------------------------
    @property
    def pdim(self) -> int:
        """Channels that go through the attention block (the rest bypass it)."""
        return round(self.dim * self.split_ratio)

    def canonical(self) -> dict[str, Any]:
        """The fields that decide the network, in one form: window dims only where some block
        has window attention, the split as the attended channel count over the width (two
        ratios that give the same channel count build the same network)."""
        data = self.to_dict()
        if not self.any_window:
            del data["window_size"], data["heads"]
        data["split_ratio"] = self.pdim / self.dim
        return data

    @property
    def arch_id(self) -> str:
        """Stable short id of the network: a hash of :meth:`canonical` (schema version
        included). Two configs that build the same network share it."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["options"]
        if isinstance(self.window_attn, tuple):
            data["window_attn"] = list(self.window_attn)
        return {"schema_version": SCHEMA_VERSION, **data, **dict(self.options)}

    def to_json(self, indent: int | None = 2) -> str:
        separators = (",", ":") if indent is None else None
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True, separators=separators)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **changes: Any) -> ArchConfig:
        return from_dict({**self.to_dict(), **changes})


FIELD_NAMES = tuple(f.name for f in fields(ArchConfig) if f.name != "options")
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "scale": (int,),
    "dim": (int,),
    "split_ratio": (float, int),
    "kernel_size": (int,),
    "block_type": (str,),
    "dict_size": (int, type(None)),
    "gate": (str, type(None)),
    "shared_kernel": (bool,),
    "n_blocks": (int,),
    "conv_layers": (int,),
    "window_attn": (bool, tuple, list),
    "window_size": (int,),
    "heads": (int,),
    "ffn_ratio": (float, int),
    "first_ffn_ratio": (float, int),
    "layer_norm": (bool,),
}


def _check_type(name: str, value: object) -> None:
    allowed = _FIELD_TYPES[name]
    # bool is an int subclass: reject True where a number is meant, and 1 where a bool is.
    if isinstance(value, bool) and bool not in allowed:
        raise ConfigError(name, "must be a number, not a boolean", value)
    if not isinstance(value, allowed):
        names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
        raise ConfigError(name, f"must be {names}", value)


def _in_range(name: str, value: int | float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise ConfigError(name, f"must be between {lo} and {hi}", value)


def _validate(c: ArchConfig) -> None:
    for name in FIELD_NAMES:
        _check_type(name, getattr(c, name))
    if c.scale not in SCALES:
        raise ConfigError("scale", f"must be one of {list(SCALES)}", c.scale)
    _in_range("dim", c.dim, 4, 512)
    if not 0 < c.split_ratio <= 1:
        raise ConfigError("split_ratio", "must be in (0, 1]", c.split_ratio)
    pdim = c.dim * c.split_ratio
    if not math.isclose(pdim, round(pdim), abs_tol=1e-9) or round(pdim) < 2:
        raise ConfigError(
            "split_ratio", f"dim x split_ratio must be an integer >= 2 (dim={c.dim})", c.split_ratio
        )
    if c.kernel_size % 2 == 0 or not KERNEL_RANGE[0] <= c.kernel_size <= KERNEL_RANGE[1]:
        raise ConfigError("kernel_size", "must be odd and between 3 and 31", c.kernel_size)
    block = get_block(c.block_type)  # "block_type: must be one of [...]"
    _settle_options(c, block)
    for name, (_, owners) in block_fields().items():
        if name in FIELD_NAMES and c.block_type not in owners and getattr(c, name) is not None:
            raise ConfigError(name, f"only applies to block_type {_either(owners)}",
                              getattr(c, name))
    if block.validate is not None:
        block.validate(c)
    _in_range("n_blocks", c.n_blocks, 1, 32)
    _in_range("conv_layers", c.conv_layers, 1, 16)
    if isinstance(c.window_attn, tuple):
        flags = c.window_attn
        if len(flags) != c.n_blocks or not all(isinstance(f, bool) for f in flags):
            raise ConfigError("window_attn", f"must be true/false or a list of {c.n_blocks} "
                              "true/false flags, one per block", list(flags))
    if c.any_window:
        _in_range("window_size", c.window_size, 2, 64)
        _in_range("heads", c.heads, 1, 32)
        if c.dim % c.heads:
            raise ConfigError("heads", f"must divide dim={c.dim}", c.heads)
    _in_range("ffn_ratio", c.ffn_ratio, 0.25, 8)
    _in_range("first_ffn_ratio", c.first_ffn_ratio, 0.25, 8)


def _either(names: tuple[str, ...]) -> str:
    return " or ".join(repr(n) for n in names)


def _settle_options(c: ArchConfig, block: BlockType) -> None:
    """``options`` in one form: this block type's own non-schema-1 fields, defaults filled in,
    types checked, sorted by name; a field of another block type is an error."""
    given = dict(c.options.items() if isinstance(c.options, dict) else c.options)
    declared = block_fields()
    for name, value in given.items():
        if name not in declared or name in FIELD_NAMES:
            raise ConfigError(str(name), "is not a block-type field", value)
        if name not in block.field_names:
            raise ConfigError(name, f"only applies to block_type {_either(declared[name][1])}",
                              value)
    settled = {}
    for f in block.fields:
        if f.name in FIELD_NAMES:
            continue
        value = given.get(f.name, f.default)
        if isinstance(value, bool) and bool not in f.types:
            raise ConfigError(f.name, "must be a number, not a boolean", value)
        if not isinstance(value, f.types):
            raise ConfigError(f.name, "must be " + " or ".join(
                "null" if t is type(None) else t.__name__ for t in f.types), value)
        settled[f.name] = value
    object.__setattr__(c, "options", tuple(sorted(settled.items())))


def extra_field_names() -> tuple[str, ...]:
    """Config fields of registered block types beyond schema 1's (stored in ``options``)."""
    return tuple(n for n in block_fields() if n not in FIELD_NAMES)


def from_dict(data: object, *, source: str = "config") -> ArchConfig:
    """Build a config from a mapping, rejecting unknown keys and other schema versions."""
    if not isinstance(data, dict):
        raise ConfigError(source, "must be a mapping of field names to values", type(data).__name__)
    data = dict(data)
    version = data.pop("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise ConfigError("schema_version", f"must be {SCHEMA_VERSION}", version)
    extra = extra_field_names()
    known = (*FIELD_NAMES, *extra)
    unknown = sorted(set(data) - set(known), key=str)
    if unknown:
        raise ConfigError(str(unknown[0]), f"is not a config field; known: "
                          f"{', '.join(known)}",
                          data[unknown[0]])
    # Bypass dataclass TypeErrors so the type check can name the field.
    for name, value in data.items():
        if name in FIELD_NAMES:
            _check_type(name, value)
    options = {name: data.pop(name) for name in extra if name in data}
    return ArchConfig(**data, options=tuple(options.items()))


def from_json(text: str, *, source: str = "config") -> ArchConfig:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(source, f"is not valid JSON: {exc.msg} at line {exc.lineno}",
                          text[:40]) from None
    return from_dict(data, source=source)


def from_yaml(text: str, *, source: str = "config") -> ArchConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(source, f"is not valid YAML{where}", text[:40]) from None
    return from_dict(data, source=source)


def read_text(path: Path, field: str) -> str:
    """A config or space file's text; unreadable or non-UTF-8 files are one-line errors."""
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(field, f"cannot be read: {exc.strerror}", str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(field, f"is not UTF-8 text (byte {exc.start})", str(path)) from None


def load_config(path: str | Path) -> ArchConfig:
    """Read a config file (.json, .yaml or .yml). An exported study config is accepted too:
    its ``arch`` section is the config and the rest is provenance."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("path", "must be an existing config file", str(p))
    text = read_text(p, "path")
    loader = from_json if p.suffix.lower() == ".json" else from_yaml
    if p.suffix.lower() not in (".json", ".yaml", ".yml"):
        raise ConfigError("path", "must end in .json, .yaml or .yml", str(p))
    try:
        raw = json.loads(text) if loader is from_json else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError):
        return loader(text, source=str(p))  # re-parse to raise the named error
    if isinstance(raw, dict) and "arch" in raw and isinstance(raw["arch"], dict):
        return from_dict(raw["arch"], source=f"{p}:arch")
    return from_dict(raw, source=str(p))
