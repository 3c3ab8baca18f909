"""A network as a deployable ONNX file, checked against PyTorch before it is kept.

- Exporter: ``torch.onnx.export(dynamo=True)`` (``torch.export`` + onnxscript). The legacy
  TorchScript exporter cannot export this family: the per-sample dynamic depthwise kernels are
  "a convolution kernel of unknown shape" to it (torch 2.13).
- Graph: input ``lr`` (1, 3, height, width), RGB float32 in [0, 1]; output ``sr`` (1, 3,
  s*height, s*width), not clamped. Batch 1 (the dynamic kernels fold the batch into the conv
  groups), height and width dynamic, weights inside the one file, the D4 average of the shared
  kernel baked in (``SRNet.deploy``), srnas's config and provenance in ``metadata_props``.
- Window attention pads its input up to a multiple of the window with a size-dependent amount,
  so the trace runs at a size that is *not* a multiple of the window (traced at a multiple, the
  padding would be left out of the graph). The graph pads by reflection, which needs sides of
  at least ``window_size // 2 + 1`` (17 for ESC's 32-pixel windows); PyTorch switches to
  replicate padding below that, the ONNX graph refuses such inputs.
- Every export is run with onnxruntime (CPUExecutionProvider) on a real photograph at two sizes
  other than the traced one (one a multiple of the window, one not); the file is written under a
  temporary name and only renamed into place when the largest absolute difference from PyTorch
  is within the tolerance (1e-4), so a failing export leaves no file behind.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from glob import escape as glob_escape
from pathlib import Path

import numpy as np
import torch

from srnas.evaluators.data import load_image, skimage_data_dir
from srnas.space.atomic import TEMP_SUFFIX, atomic_write
from srnas.space.config import ArchConfig
from srnas.space.errors import ConfigError, DataError, SrnasError, find_cause
from srnas.space.network import SRNet

OPSET = 18  # torchlib's own opset in torch 2.13: no version conversion after the export
TOLERANCE = 1e-4
EXPORTER = "torch.onnx.export(dynamo=True)"
INPUT_NAME, OUTPUT_NAME = "lr", "sr"
CHECK_PHOTO = "chelsea.png"  # bundled in scikit-image's wheel (a validation photograph)
# Trace and check sizes derive from the window; a network without window attention uses ESC's.
NOMINAL_WINDOW = 32


class ExportCheckError(SrnasError):
    """An exported file that does not reproduce PyTorch's output (it has been removed)."""


@dataclass(frozen=True)
class OnnxCheck:
    image: str
    input_hw: tuple[int, int]
    max_abs_diff: float


@dataclass(frozen=True)
class OnnxExport:
    """What was written and how it was verified."""

    path: str
    opset: int
    exporter: str
    traced_hw: tuple[int, int]
    min_side: int
    checks: tuple[OnnxCheck, ...]
    tolerance: float
    seconds: float
    bytes: int

    @property
    def max_abs_diff(self) -> float:
        return max(c.max_abs_diff for c in self.checks)


def _window(config: ArchConfig) -> int:
    return config.window_size if config.any_window else NOMINAL_WINDOW


def min_input_side(config: ArchConfig) -> int:
    """The smallest input side the exported graph runs (reflect padding up to the window);
    ``torch.export`` specialises sides of 0 and 1, so 2 without window attention."""
    return _window(config) // 2 + 1 if config.any_window else 2


def _off_multiple(value: int, window: int) -> int:
    while value % window == 0:
        value += 1
    return value


def trace_hw(config: ArchConfig) -> tuple[int, int]:
    """The traced input: no side a multiple of the window (so the padding is in the graph), and
    height != width (so the two stay separate symbols)."""
    ws = _window(config)
    h = _off_multiple(ws + ws // 2 + 1, ws)
    w = _off_multiple(2 * ws + ws // 2 + 3, ws)
    return h, w if w != h else _off_multiple(w + 1, ws)


def check_sizes(config: ArchConfig) -> list[tuple[int, int]]:
    """Two check sizes, neither the traced one: a multiple of the window (no padding) and not."""
    ws = _window(config)
    return [(2 * ws, 3 * ws), (2 * ws + 5, 3 * ws + 3)]


def check_inputs(config: ArchConfig, image: str | Path | None = None
                 ) -> list[tuple[str, np.ndarray]]:
    """Centre crops of ``image`` (default: a bundled photograph) at :func:`check_sizes`, as
    (name, RGB uint8); an image smaller than a crop is used at its own size."""
    path = Path(image) if image is not None else skimage_data_dir() / CHECK_PHOTO
    try:
        photo = load_image(path)
    except DataError as e:  # load_image names the file as its field: this one is a flag's
        raise DataError("check_image", f"cannot be used: {e.rule}", str(path)) from None
    smallest = min_input_side(config)
    if min(photo.shape[:2]) < smallest:
        raise DataError("check_image", f"needs sides of at least {smallest} pixels for this "
                        "network", f"{path} {photo.shape[0]}x{photo.shape[1]}")
    crops: dict[tuple[int, int], np.ndarray] = {}
    for h, w in check_sizes(config):
        h, w = min(h, photo.shape[0]), min(w, photo.shape[1])
        top, left = (photo.shape[0] - h) // 2, (photo.shape[1] - w) // 2
        crops.setdefault((h, w), photo[top:top + h, left:left + w])
    return [(f"{path.stem} {h}x{w}", np.ascontiguousarray(c)) for (h, w), c in crops.items()]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's progress lines, its warnings about optional torchvision ops and pytree
    deprecations say nothing about this export: keep the command's output to its own lines."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _prepared(model: SRNet) -> SRNet:
    # A copy: deploy() writes the baked kernel into the module, and a caller may still train it.
    return copy.deepcopy(model).cpu().deploy().eval()


def export_onnx(model: SRNet, path: str | Path, *, opset: int = OPSET,
                metadata: Mapping[str, str] | None = None) -> tuple[int, int]:
    """Write ``model`` (deployed copy) to ``path`` unchecked; returns the traced input size.
    Use :func:`export_checked` for a file to ship."""
    net = _prepared(model)
    hw = trace_hw(net.config)
    x = torch.rand(1, 3, *hw, generator=torch.Generator().manual_seed(0))
    with _quiet():
        program = torch.onnx.export(
            net, (x,), None, dynamo=True, opset_version=opset, external_data=False,
            verbose=False, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes={"x": {2: "height", 3: "width"}})
    assert program is not None  # dynamo=True always returns the program
    props = {
        "srnas.arch_id": net.config.arch_id,
        "srnas.arch": net.config.to_json(indent=None),
        "srnas.scale": str(net.config.scale),
        "srnas.input": f"{INPUT_NAME}: RGB float32 in [0, 1], (1, 3, H, W), H and W >= "
                       f"{min_input_side(net.config)}",
        "srnas.output": f"{OUTPUT_NAME}: (1, 3, {net.config.scale}H, {net.config.scale}W), "
                        "clamp to [0, 1] before saving",
        **{str(k): str(v) for k, v in (metadata or {}).items()},
    }
    _strip_node_metadata(program.model)
    program.model.metadata_props.update(props)
    with _quiet():
        program.save(str(path), external_data=False)
    return hw


def _strip_node_metadata(model: object) -> None:
    """Drop what torch's exporter attaches to every node and value: the exporting machine's
    file paths and source lines (stack traces), FX node dumps and module scopes. They are for
    debugging an export, not for shipping: about 60 % of a file's bytes, and paths of the
    user's machine would travel with the model."""
    # onnx_ir is onnxscript's IR (program.model is one of its models), installed with it.
    from onnx_ir.traversal import RecursiveGraphIterator

    graphs = [model.graph, *model.functions.values()]  # type: ignore[attr-defined]
    for graph in graphs:
        for value in [*graph.inputs, *graph.outputs, *getattr(graph, "initializers", {}).values()]:
            value.metadata_props.clear()
        for node in RecursiveGraphIterator(graph):
            node.metadata_props.clear()
            node.doc_string = None
            for value in node.outputs:
                value.metadata_props.clear()


def _session(path: Path):  # -> onnxruntime.InferenceSession (imported lazily: heavy)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # failures come back as exceptions; no duplicate log lines
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def compare(model: SRNet, path: str | Path, inputs: Sequence[tuple[str, np.ndarray]]
            ) -> list[OnnxCheck]:
    """Largest absolute difference between onnxruntime on ``path`` and PyTorch (deployed
    ``model``), float outputs, for each (name, RGB uint8) input."""
    net = _prepared(model)
    session = _session(Path(path))
    checks = []
    for name, image in inputs:
        # A copy: decoded images are read-only arrays, which torch.from_numpy warns about.
        x = torch.tensor(image).permute(2, 0, 1)[None].float().div(255).contiguous()
        with torch.inference_mode():
            expected = net(x).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
        if got.shape != expected.shape:
            diff = float("inf")
        else:
            diff = float(np.abs(got.astype(np.float64) - expected).max())
        checks.append(OnnxCheck(name, (image.shape[0], image.shape[1]), diff))
    return checks


def export_checked(model: SRNet, path: str | Path, *, image: str | Path | None = None,
                   tolerance: float = TOLERANCE, opset: int = OPSET,
                   metadata: Mapping[str, str] | None = None) -> OnnxExport:
    """Export ``model`` to ``path`` and keep the file only if onnxruntime reproduces PyTorch
    within ``tolerance`` on :func:`check_inputs` (``image`` or the bundled photograph); on a
    larger difference, or a run that fails, raise :class:`ExportCheckError` and leave nothing."""
    target = Path(path)
    if target.suffix.lower() != ".onnx":
        raise ConfigError("onnx", "must end in .onnx", str(path))
    if not target.parent.is_dir():
        raise ConfigError("onnx", "its folder does not exist", str(path))
    inputs = check_inputs(model.config, image)  # a bad image fails before the slow export
    started = time.perf_counter()
    remove_dead_temps(target)
    try:
        with atomic_write(target) as tmp, _held(tmp):
            traced = export_onnx(model, tmp, opset=opset, metadata=metadata)
            try:
                checks = compare(model, tmp, inputs)
            except Exception as e:  # onnxruntime's: a graph that does not run is a bad file
                raise ExportCheckError("onnx", f"onnxruntime cannot run the export "
                                       f"({type(e).__name__}: {e}); nothing written",
                                       str(path)) from None
            worst = max(checks, key=lambda c: c.max_abs_diff)
            if not worst.max_abs_diff <= tolerance:
                raise ExportCheckError("onnx", f"onnxruntime differs from PyTorch by "
                                       f"{worst.max_abs_diff:.3g} (tolerance {tolerance:g}) on "
                                       f"{worst.image}; nothing written", str(path))
    except SrnasError:
        raise
    except Exception as e:  # a full disk, a read-only folder: torch wraps the OSError at times
        cause = _os_error(e)
        if cause is None:
            raise
        raise ConfigError("onnx", f"cannot be written: {cause.strerror or cause}; nothing "
                          "written", str(path)) from None
    return OnnxExport(str(target), opset, EXPORTER, traced, min_input_side(model.config),
                      tuple(checks), tolerance, time.perf_counter() - started,
                      target.stat().st_size)


def _os_error(error: BaseException) -> OSError | None:
    """The OSError behind ``error`` (itself, or its cause or context, as torch's exporter
    re-raises a failed write), if any."""
    found = find_cause(error, OSError)
    return found if isinstance(found, OSError) and found.errno is not None else None


@contextlib.contextmanager
def _held(tmp: Path) -> Iterator[None]:
    """An exclusive lock on the export's temporary file while it is written and checked: the
    mark of a live export for :func:`remove_dead_temps` (the kernel drops it when the process
    dies, however it dies)."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): leftovers are then never removed automatically
        yield
        return
    fd = os.open(tmp, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def remove_dead_temps(target: str | Path) -> list[Path]:
    """Remove the temporary files (``.NAME.onnx.*.tmp``) that killed exports to ``target``
    left; a live export holds a lock on its own (:func:`_held`) and keeps it."""
    try:
        import fcntl
    except ImportError:
        return []
    target = Path(target)
    removed = []
    for tmp in sorted(target.parent.glob(f".{glob_escape(target.name)}.*{TEMP_SUFFIX}")):
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # held: an export in progress
        else:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
        finally:
            os.close(fd)
    return removed


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (srnas's config and provenance among them)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def config_of(path: str | Path) -> ArchConfig:
    """The config an srnas ONNX file was exported from."""
    from srnas.space.config import from_dict

    return from_dict(json.loads(read_onnx_metadata(path)["srnas.arch"]), source=f"{path}")


__all__ = ["EXPORTER", "OPSET", "TOLERANCE", "ExportCheckError", "OnnxCheck", "OnnxExport",
           "check_inputs", "check_sizes", "compare", "config_of", "export_checked",
           "export_onnx", "min_input_side", "read_onnx_metadata", "remove_dead_temps",
           "trace_hw"]
