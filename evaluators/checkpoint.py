"""Checkpoints of a long training run: one safetensors file, written atomically, read without
unpickling anything.

A checkpoint holds every tensor a resumed run needs (network, moving average, best weights so
far, optimizer state, torch's CPU and CUDA generator states) and, in the file's string header,
JSON for everything else: the step, the trainer's bookkeeping, the optimizer's hyperparameters,
numpy's and Python's generator states. One file, so one ``os.replace`` moves the whole state in:
a kill while writing leaves the previous checkpoint in place and at worst a stray temporary
file (removed by ``srnas.space.atomic.remove_stale_temps``). A SHA-256 of the tensors and of
every other header field, kept in the header as ``digest``, turns a damaged or edited file
(the step, the lr, a generator state) into a one-line error instead of a silently different
run.

Format ``srnas-checkpoint/1`` (before the header was covered) is still read, by its format:
its ``sha256`` covers the tensors only, as when it was written. A version-2 file edited to
claim version 1 has no ``sha256`` and is refused.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from srnas.evaluators.tensorfile import load_strict, save_tensors
from srnas.space.errors import ConfigError

FORMAT = "srnas-checkpoint/2"
FORMAT_V1 = "srnas-checkpoint/1"  # digest of the tensors only ("sha256")
DIGEST = "digest"

Tensors = dict[str, torch.Tensor]


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` read: ``tensors`` grouped by prefix (``model``, ``ema``,
    ``best``), the optimizer's state dict, the generators' states and the trainer's ``info``."""

    path: Path
    step: int
    info: dict[str, Any]
    groups: dict[str, Tensors] = field(default_factory=dict)
    optimizer: dict[str, Any] = field(default_factory=dict)
    rng: dict[str, Any] = field(default_factory=dict)


# -- writing ---------------------------------------------------------------------------------


def save_checkpoint(path: str | Path, *, step: int, info: Mapping[str, Any],
                    groups: Mapping[str, Mapping[str, torch.Tensor]],
                    optimizer: torch.optim.Optimizer) -> Path:
    """Write a checkpoint of ``step`` atomically: tensor ``groups`` (e.g. ``{"model":
    state_dict}``), ``optimizer``'s state, every generator's state and the JSON ``info``."""
    tensors: Tensors = {}
    for prefix, state in groups.items():
        tensors.update({f"{prefix}.{k}": v for k, v in state.items()})
    optim_tensors, optim_json = _optimizer_parts(optimizer.state_dict())
    rng_tensors, rng_json = capture_rng()
    tensors.update(optim_tensors)
    tensors.update(rng_tensors)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    header = {
        "format": FORMAT,
        "step": str(step),
        "info": json.dumps(dict(info)),
        "optimizer": json.dumps(optim_json),
        "rng": json.dumps(rng_json),
    }
    header[DIGEST] = _digest(tensors, header)
    return save_tensors(tensors, Path(path), header)


def _tensor_hash(tensors: Mapping[str, torch.Tensor]) -> Any:  # a hashlib sha256 object
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """The tensors' SHA-256 alone: the digest of format ``srnas-checkpoint/1``."""
    return _tensor_hash(tensors).hexdigest()


def _digest(tensors: Mapping[str, torch.Tensor], header: Mapping[str, str]) -> str:
    """SHA-256 of the tensors, then of every header field but the digest itself (sorted; each
    with its length, so no two headers hash alike by moving text between fields)."""
    h = _tensor_hash(tensors)
    for key in sorted(k for k in header if k != DIGEST):
        value = str(header[key])
        h.update(f"header|{len(key)}|{key}|{len(value)}|".encode())
        h.update(value.encode())
    return h.hexdigest()


def _optimizer_parts(state: dict[str, Any]) -> tuple[Tensors, dict[str, Any]]:
    """An optimizer state dict as tensors (``optim.<param>.<key>``) plus JSON for the rest."""
    tensors: Tensors = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, per_param in state["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()}
              for g in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


# -- generator states ------------------------------------------------------------------------


def capture_rng() -> tuple[Tensors, dict[str, Any]]:
    """Every generator a run may draw from: torch's CPU (and CUDA, once initialised) states as
    byte tensors, numpy's global and Python's ``random`` as JSON."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    version, words, gauss = random.getstate()
    return tensors, {"numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
                     "python": [version, list(words), gauss]}


def restore_rng(checkpoint: Checkpoint) -> None:
    """Put every generator back where :func:`capture_rng` found it."""
    state = checkpoint.rng
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda", [])
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, words, gauss = state["python"]
    random.setstate((version, tuple(words), gauss))


# -- reading ---------------------------------------------------------------------------------


def _damaged(path: Path, what: str) -> ConfigError:
    return ConfigError("checkpoint", f"is damaged ({what}); the run cannot resume from it",
                       str(path))


def read_header(path: str | Path) -> dict[str, str]:
    """A checkpoint's string header, checked to be one (cheap: no tensor is read)."""
    from safetensors import safe_open

    file = Path(path)
    if not file.is_file():
        raise ConfigError("checkpoint", "does not exist", str(file))
    try:
        with safe_open(str(file), framework="pt") as handle:
            header = dict(handle.metadata() or {})
    except Exception as e:  # safetensors raises its own types for a short or garbled file
        raise _damaged(file, f"unreadable safetensors: {e}") from None
    if header.get("format") not in (FORMAT, FORMAT_V1):
        raise ConfigError("checkpoint", f"is not an srnas checkpoint (format "
                          f"{header.get('format')!r}, expected {FORMAT!r})", str(file))
    return header


def read_info(path: str | Path) -> tuple[int, dict[str, Any]]:
    """(step, info) of a checkpoint, from its header alone."""
    return _step_info(read_header(path), Path(path))


def _step_info(header: dict[str, str], path: Path) -> tuple[int, dict[str, Any]]:
    try:
        return int(header["step"]), json.loads(header["info"])
    except (KeyError, ValueError) as e:
        raise _damaged(path, f"header field {e}") from None


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and verify a whole checkpoint (digest included); any damage is a ConfigError."""
    from safetensors.torch import load_file

    file = Path(path)
    header = read_header(file)
    step, info = _step_info(header, file)
    try:
        tensors = load_file(str(file))
    except Exception as e:
        raise _damaged(file, f"unreadable tensors: {e}") from None
    if header["format"] == FORMAT_V1:
        if set(header) - {"format", "step", "info", "optimizer", "rng", "sha256"} or \
                tensor_digest(tensors) != header.get("sha256"):
            raise _damaged(file, "its tensors do not match the digest written with them")
    elif _digest(tensors, header) != header.get(DIGEST):
        raise _damaged(file, "its header or tensors do not match the digest written with them")
    try:
        optim_json = json.loads(header["optimizer"])
        rng = json.loads(header["rng"])
    except (KeyError, ValueError) as e:
        raise _damaged(file, f"header field {e}") from None
    groups: dict[str, Tensors] = {}
    optim_state: dict[int, dict[str, Any]] = {}
    cuda: dict[int, torch.Tensor] = {}
    for name, tensor in tensors.items():
        prefix, _, rest = name.partition(".")
        if prefix == "optim":
            index, _, key = rest.partition(".")
            optim_state.setdefault(int(index), {})[key] = tensor
        elif name == "rng.torch":
            rng["torch"] = tensor
        elif prefix == "rng":
            cuda[int(rest.rpartition(".")[2])] = tensor
        else:
            groups.setdefault(prefix, {})[rest] = tensor
    for index, scalars in optim_json.get("scalars", {}).items():
        optim_state.setdefault(int(index), {}).update(scalars)
    rng["cuda"] = [cuda[i] for i in sorted(cuda)]
    param_groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()}
                    for g in optim_json["param_groups"]]
    return Checkpoint(file, step, info, groups,
                      {"state": optim_state, "param_groups": param_groups}, rng)


def load_group(module: nn.Module, checkpoint: Checkpoint, prefix: str) -> None:
    """Load ``checkpoint``'s tensor group ``prefix`` into ``module`` (strict), naming the first
    tensor that is missing, extra or of another shape."""
    load_strict(module, checkpoint.groups.get(prefix, {}), "checkpoint", str(checkpoint.path),
                what=f"{prefix} ")


__all__ = [
    "FORMAT",
    "FORMAT_V1",
    "Checkpoint",
    "capture_rng",
    "load_checkpoint",
    "load_group",
    "read_header",
    "read_info",
    "restore_rng",
    "save_checkpoint",
    "tensor_digest",
]
