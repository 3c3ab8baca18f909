"""The search space, declared once as data.

Each dimension is fixed (one value), categorical (a list of choices), or a numeric range. A
user narrows, widens or fixes dimensions from a YAML file::

    kernel_size: [7, 9, 11, 13]          # choices
    n_blocks: {low: 1, high: 4}          # integer range
    lr: {low: 1.0e-4, high: 1.0e-3, log: true}
    block_type: milk                     # fixed

Dimensions a block type claims (``space/blocks.py``: MiLK claims ``dict_size``, ``gate`` and
``shared_kernel``) are suggested only when the sampled block type claims them (a convattn
network has no dictionary, sums its branches and always uses the shared kernel). The values of
``block_type`` and the defaults of block-type fields come from the block registry. Parameter
names never contain "/" (Ray would turn them into nested dicts).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from srnas.space.blocks import BLOCKS, applies, block_fields, get_block
from srnas.space.config import ArchConfig, from_dict, read_text
from srnas.space.errors import ConfigError

MILK_ONLY = get_block("milk").dims
WINDOW_ONLY = ("window_size", "heads")  # only meaningful when window attention is on
TRAIN_DIMS = ("lr", "batch_size", "patch_size")
ESC_LR = 5e-4


class Suggester(Protocol):
    """What sampling needs: Optuna's ``Trial`` or any proxy with the same methods."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...
    def suggest_int(self, name: str, low: int, high: int, step: int = 1,
                    log: bool = False) -> int: ...
    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float: ...


@dataclass(frozen=True)
class Dim:
    """One searched dimension: ``choices`` (categorical, one choice = fixed) or a range."""

    name: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False

    @property
    def fixed(self) -> bool:
        return self.choices is not None and len(self.choices) == 1

    def values(self) -> tuple[Any, ...]:
        """Every value of a categorical or integer dimension (a float range gives its ends)."""
        if self.choices is not None:
            return self.choices
        assert self.low is not None and self.high is not None
        if self.integer:
            return tuple(range(int(self.low), int(self.high) + 1))
        return (self.low, self.high)

    def suggest(self, trial: Suggester) -> Any:
        if self.choices is not None:
            return self.choices[0] if self.fixed else trial.suggest_categorical(
                self.name, list(self.choices))
        assert self.low is not None and self.high is not None
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)

    def contains(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        assert self.low is not None and self.high is not None
        return self.low <= value <= self.high

    def to_data(self) -> Any:
        if self.choices is not None:
            return self.choices[0] if self.fixed else list(self.choices)
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        return out


# Integer fields of the config and the training: a range of them is an integer range.
_INTEGER = ("dim", "kernel_size", "conv_layers", "n_blocks", "batch_size", "patch_size")


def _block_dims() -> dict[str, Dim]:
    """Default dimensions of block-type fields (each block type's ``BlockField.search``)."""
    return {name: _parse_dim(name, f.search, integer=f.integer)
            for name, (f, _) in block_fields().items() if f.search is not None}


def _defaults() -> dict[str, Dim]:
    block = _block_dims()
    dims = [
        # The five dimensions the user named. This order is the order of suggestion, which a
        # seed's sequence of networks depends on: new dimensions go after the existing ones.
        Dim("kernel_size", choices=(7, 9, 11, 13, 15, 17)),
        block.pop("dict_size"),
        Dim("split_ratio", choices=(0.125, 0.25, 0.375, 0.5)),
        block.pop("gate"),
        Dim("n_blocks", low=1, high=6, integer=True),
        # Around them.
        Dim("block_type", choices=tuple(n for n, b in BLOCKS.items() if b.default_search)),
        Dim("dim", choices=(32, 48, 64)),
        Dim("conv_layers", low=1, high=5, integer=True),
        Dim("window_attn", choices=(True, False)),
        Dim("shared_kernel", choices=(True, False)),
        Dim("window_size", choices=(32,)),
        Dim("heads", choices=(4,)),
        Dim("ffn_ratio", choices=(1.25,)),
        Dim("first_ffn_ratio", choices=(2.0,)),
        Dim("layer_norm", choices=(False,)),
        # Training hyperparameters of the brief training.
        Dim("lr", low=2e-4, high=2e-3, log=True),
        Dim("batch_size", choices=(8,)),
        Dim("patch_size", choices=(48,)),
        *block.values(),
    ]
    return {d.name: d for d in dims}


def dim_names() -> tuple[str, ...]:
    """Every search dimension (those of registered block types included)."""
    return tuple(_defaults())


def __getattr__(name: str) -> Any:
    if name == "DIM_NAMES":  # a live view: block types registered later add their fields
        return dim_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Sample:
    """One sampled point: the network and its brief-training hyperparameters."""

    arch: ArchConfig
    train: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchSpace:
    dims: dict[str, Dim] = field(default_factory=_defaults)

    def __post_init__(self) -> None:
        _validate_space(self)

    # -- sampling ------------------------------------------------------------------------
    def sample(self, trial: Suggester, scale: int = 4) -> Sample:
        """Suggest every applicable dimension and return the config it describes."""
        values: dict[str, Any] = {}
        order = ["block_type", *[n for n in self.dims if n != "block_type"]]
        for name in order:
            if not self._applies(name, values):
                continue
            values[name] = self.dims[name].suggest(trial)
        return self._to_sample(values, scale)

    def _applies(self, name: str, values: dict[str, Any]) -> bool:
        """Conditional dimensions: honest about what a config does not have. ``window_attn``
        is suggested before window_size/heads (dict order of the defaults)."""
        if not applies(name, values.get("block_type")):
            return False
        if name in WINDOW_ONLY:
            flags = values.get("window_attn", True)
            return flags is True or (isinstance(flags, list | tuple) and True in flags)
        return True

    def _to_sample(self, values: dict[str, Any], scale: int) -> Sample:
        arch = {k: v for k, v in values.items() if k not in TRAIN_DIMS}
        train = {k: values[k] for k in TRAIN_DIMS if k in values}
        for k in ("batch_size", "patch_size"):  # YAML may say 48.0; validation made it whole
            if k in train:
                train[k] = int(train[k])
        return Sample(from_dict({**arch, "scale": scale}), train)

    def params_for(self, config: ArchConfig, train: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
        """The suggested-parameter dict that makes ``sample`` return ``config`` (used to
        enqueue baselines such as esc-light); an error if the config lies outside the space."""
        values = {**config.to_dict(), **self._train_defaults(), **(train or {})}
        params: dict[str, Any] = {}
        for name, dim in self.dims.items():
            if not self._applies(name, values):
                continue
            value = values[name]
            if not dim.contains(value):
                raise ConfigError(name, f"value is outside the search space {dim.to_data()}",
                                  value)
            if not dim.fixed:
                params[name] = value
        return params

    def _train_defaults(self) -> dict[str, Any]:
        out = {}
        for name in TRAIN_DIMS:
            d = self.dims[name]
            vals = d.values()
            if name == "lr" and d.contains(ESC_LR):
                out[name] = ESC_LR  # a baseline trains as its paper did
            else:
                out[name] = vals[0] if d.choices is not None else (
                    math.sqrt(vals[0] * vals[1]) if d.log else (vals[0] + vals[1]) / 2)
        return out

    # -- serialisation -------------------------------------------------------------------
    def to_data(self) -> dict[str, Any]:
        return {name: d.to_data() for name, d in self.dims.items()}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_data(), sort_keys=False)

    @property
    def space_id(self) -> str:
        import hashlib
        import json

        return hashlib.sha256(json.dumps(self.to_data(), sort_keys=True).encode()).hexdigest()[:8]


def _parse_dim(name: str, raw: Any, *, integer: bool | None = None) -> Dim:
    if integer is None:
        default = _defaults()[name]
        fields = block_fields()
        integer = default.integer or name in _INTEGER or (
            name in fields and fields[name][0].integer)
    if isinstance(raw, list):
        if not raw:
            raise ConfigError(name, "a list of choices must not be empty", raw)
        if len(set(map(repr, raw))) != len(raw):
            raise ConfigError(name, "choices must be distinct", raw)
        return Dim(name, choices=tuple(raw))
    if isinstance(raw, dict):
        unknown = sorted(set(raw) - {"low", "high", "log"})
        if unknown or "low" not in raw or "high" not in raw:
            raise ConfigError(name, "a range needs exactly 'low', 'high' and optional 'log'", raw)
        low, high, log = raw["low"], raw["high"], raw.get("log", False)
        for key, v in (("low", low), ("high", high)):
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ConfigError(f"{name}.{key}", "must be a number", v)
        if not isinstance(log, bool):
            raise ConfigError(f"{name}.log", "must be true or false", log)
        if low > high:
            raise ConfigError(name, "low must not exceed high", raw)
        if integer and not (float(low).is_integer() and float(high).is_integer()):
            raise ConfigError(name, "an integer range needs integer bounds", raw)
        if log and low <= 0:
            raise ConfigError(name, "a log range needs low > 0", raw)
        if name == "kernel_size":
            # Ranges of kernel sizes would include even sizes: expand to the odd values.
            odd = tuple(k for k in range(int(low), int(high) + 1) if k % 2)
            if not odd:
                raise ConfigError(name, "the range holds no odd kernel size", raw)
            return Dim(name, choices=odd)
        return Dim(name, low=low, high=high, log=log, integer=integer)
    return Dim(name, choices=(raw,))


def _validate_space(space: SearchSpace) -> None:
    names = dim_names()
    unknown = sorted(set(space.dims) - set(names))
    if unknown:
        raise ConfigError(unknown[0], f"is not a search dimension; known: {', '.join(names)}",
                          space.dims[unknown[0]].to_data())
    missing = [n for n in names if n not in space.dims]
    if missing:
        raise ConfigError(missing[0], "is missing from the search space", None)
    base = ArchConfig().to_dict()
    # Each value alone must satisfy the config's rules (checked on a config of a block type the
    # dimension applies to, at one of the space's own widths: rules such as "heads divides dim"
    # must name a width the user gave), and every dim x split_ratio x heads combination must
    # give a valid split (checked below, naming the combination).
    width = space.dims["dim"].values()[0] if "dim" in space.dims else base["dim"]
    if isinstance(width, int) and not isinstance(width, bool):
        base["dim"] = width
        # A split valid at this width for the probes of the other fields.
        base["split_ratio"] = 0.5 if width % 2 == 0 and width >= 4 else 1.0

    def on_block(block_type: object) -> dict[str, Any]:
        """``base`` as a network of ``block_type``, its own fields at their probe values."""
        if block_type not in BLOCKS:
            return {**base, "block_type": block_type}  # from_dict names the unknown type
        return {**base, "block_type": block_type, **get_block(block_type).probe}

    # A dimension some block type claims is probed on the first one claiming it.
    claimer = {d: n for n, b in reversed(BLOCKS.items()) for d in b.dims}
    for name, d in space.dims.items():
        if name in TRAIN_DIMS:
            _check_train_dim(d)
            continue
        if d.choices is None and not d.integer:
            raise ConfigError(name, "must be a list of choices or an integer range",
                              d.to_data())
        for value in d.values() if d.choices is not None or d.integer else ():
            owner = claimer.get(name, base["block_type"])
            if name == "window_attn" and isinstance(value, list | tuple):
                probe = {**on_block(owner), name: value, "n_blocks": len(value)}
            elif name == "block_type":
                probe = on_block(value)
            else:
                probe = {**on_block(owner), name: value}
            try:
                from_dict(probe)
            except ConfigError as exc:
                if exc.field != name and not (name == "dim" and exc.field in ("heads",
                                                                              "split_ratio")):
                    continue  # the combination checks below report these precisely
                raise ConfigError(name, f"choice {value!r} breaks a rule: {exc.rule}",
                                  d.to_data()) from None
    dims, ratios, heads = (space.dims[n].values() for n in ("dim", "split_ratio", "heads"))
    for dim, ratio in itertools.product(dims, ratios):
        pdim = dim * ratio
        if not math.isclose(pdim, round(pdim)) or round(pdim) < 2:
            raise ConfigError("split_ratio", f"dim {dim} x split_ratio {ratio} must give an "
                              "integer number of attended channels >= 2", list(ratios))
    windows = space.dims["window_attn"].values()
    for flags in windows:
        if isinstance(flags, list | tuple) and len(windows) > 1:
            raise ConfigError("window_attn", "a per-block list can only be fixed (write it as "
                              "window_attn: [[true, false, ...]]); Optuna choices are scalars",
                              space.dims["window_attn"].to_data())
        if isinstance(flags, list | tuple) and any(n != len(flags) for n in
                                                   space.dims["n_blocks"].values()):
            raise ConfigError("window_attn", "a per-block list needs n_blocks fixed to its "
                              "length", list(flags))
    if any(f is True or (isinstance(f, list | tuple) and True in f) for f in windows):
        for dim, h in itertools.product(dims, heads):
            if dim % h:
                raise ConfigError("heads", f"must divide every dim choice (dim {dim})", h)


def _check_train_dim(d: Dim) -> None:
    for v in d.values():
        if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
            raise ConfigError(d.name, "values must be positive numbers", d.to_data())
    if d.name in ("batch_size", "patch_size"):
        if not all(float(v).is_integer() for v in d.values()):
            raise ConfigError(d.name, "values must be integers", d.to_data())
        if d.name == "patch_size" and min(d.values()) < 12:
            raise ConfigError(d.name, "must be at least 12 (HR pixels)", d.to_data())


def space_from_data(data: object, *, source: str = "space") -> SearchSpace:
    """Defaults overridden by a mapping of dimension name -> fixed value, choices or range."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, "must be a mapping of dimension names", type(data).__name__)
    dims = _defaults()
    for name, raw in data.items():
        if name not in dims:
            raise ConfigError(str(name), "is not a search dimension; known: "
                              + ", ".join(dims), raw)
        dims[name] = _parse_dim(name, raw)
    return SearchSpace(dims)


def load_space(path: str | Path) -> SearchSpace:
    p = Path(path)
    if not p.is_file():
        raise ConfigError("space", "must be an existing YAML file", str(p))
    try:
        data = yaml.safe_load(read_text(p, "space"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError("space", f"is not valid YAML{where}", str(p)) from None
    return space_from_data(data, source=str(p))


def sample_config(trial: Suggester, space: SearchSpace | None = None, scale: int = 4) -> Sample:
    """Module-level convenience: ``(space or SearchSpace()).sample(trial, scale)``."""
    return (space or SearchSpace()).sample(trial, scale)
