"""MATLAB-compatible bicubic ``imresize`` for uint8 images, and the SR degradation built on it.

Every SR benchmark's LR images were made with MATLAB's ``imresize(hr, 1/s, 'bicubic')``, so the
LR we make on the fly must be the same function or PSNRs are not comparable with the papers'.
What MATLAB does, and this module copies:

- cubic kernel with a = -0.5 (Keys); when shrinking, the kernel is stretched by 1/scale
  (antialiasing), when enlarging it is not;
- sample positions ``u = x / scale + 0.5 * (1 - 1 / scale)`` (pixel centres aligned);
- borders: symmetric padding (edge pixel repeated, ``[1..n, n..1]``), as index folding;
- weights normalised to sum to 1 per output pixel;
- one dimension at a time, the one with the smaller scale first, rows (height) first on a tie;
- each pass accumulates in float64 and rounds (half away from zero) and saturates to uint8
  before the next pass, because MATLAB's resize kernel returns the input's class.

Weights and indices depend only on (in_length, out_length, scale), so they are built once and
cached; applying them is one matrix product per pass for small sizes and a loop over the
kernel's taps for large ones (a dense matrix would cost O(in_length) per output pixel).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from srnas.space.errors import DataError

__all__ = ["check_scale", "imresize", "make_lr", "upscale"]

KERNEL_WIDTH = 4.0  # support of the cubic kernel, in input pixels, when not antialiasing

# Above this many input pixels per kernel tap, a gather per tap beats a dense matrix product.
_DENSE_MAX_RATIO = 24


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1.0)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1.0) & (ax <= 2.0))
    return inner + outer


@lru_cache(maxsize=512)
def _contributions(
    in_length: int, out_length: int, scale: float, antialias: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per output pixel, the input indices (0-based) it reads and their weights.

    A line-by-line port of MATLAB's ``contributions`` (imresize.m), float64 throughout.
    Returns read-only ``(weights, indices)``, both of shape (out_length, taps).
    """
    if scale < 1.0 and antialias:
        width = KERNEL_WIDTH / scale

        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * _cubic(scale * x)

    else:
        width = KERNEL_WIDTH
        kernel = _cubic

    x = np.arange(1, out_length + 1, dtype=np.float64)[:, None]  # MATLAB's 1-based positions
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    ind = left + np.arange(taps, dtype=np.float64)[None, :]
    weights = kernel(u - ind)
    weights = weights / weights.sum(axis=1, keepdims=True)

    # Symmetric padding: index into [1..n, n..1] periodically, then back to 0-based.
    aux = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = aux[np.mod(ind.astype(np.int64) - 1, 2 * in_length)]

    # Drop taps that are zero for every output pixel (MATLAB's "kill"), so loops are shorter.
    keep = np.any(weights != 0.0, axis=0)
    weights = np.ascontiguousarray(weights[:, keep])
    indices = np.ascontiguousarray(indices[:, keep])
    weights.flags.writeable = False
    indices.flags.writeable = False
    return weights, indices


@lru_cache(maxsize=512)
def _dense_matrix(in_length: int, out_length: int, scale: float, antialias: bool) -> np.ndarray:
    """The same resampling as an (out_length, in_length) matrix, for small inputs."""
    weights, indices = _contributions(in_length, out_length, scale, antialias)
    matrix = np.zeros((out_length, in_length), dtype=np.float64)
    rows = np.broadcast_to(np.arange(out_length)[:, None], indices.shape)
    # Folded border indices repeat within a row; their weights must add up.
    np.add.at(matrix, (rows, indices), weights)
    matrix.flags.writeable = False
    return matrix


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """MATLAB's double-to-uint8 conversion: round half away from zero, then saturate."""
    # After clipping every value is >= 0, where floor(v + 0.5) is exactly MATLAB's round.
    return np.floor(np.clip(values, 0.0, 255.0) + 0.5).astype(np.uint8)


def _resize_axis0(img: np.ndarray, out_length: int, scale: float, antialias: bool) -> np.ndarray:
    """Resize a (L, ...) uint8 array along its first axis; returns uint8 (out_length, ...)."""
    in_length = img.shape[0]
    weights, indices = _contributions(in_length, out_length, scale, antialias)
    rest = img.shape[1:]
    flat = img.reshape(in_length, -1)
    if in_length <= _DENSE_MAX_RATIO * weights.shape[1]:
        out = _dense_matrix(in_length, out_length, scale, antialias) @ flat.astype(np.float64)
    else:
        out = np.zeros((out_length, flat.shape[1]), dtype=np.float64)
        for tap in range(weights.shape[1]):
            out += weights[:, tap, None] * flat[indices[:, tap]]
    return _to_uint8(out).reshape((out_length, *rest))


def imresize(
    img: np.ndarray,
    scale: float | None = None,
    output_shape: tuple[int, int] | None = None,
    antialias: bool = True,
) -> np.ndarray:
    """MATLAB ``imresize(img, scale_or_size, 'bicubic')`` for a uint8 (H, W) or (H, W, C) array.

    Give ``scale`` (output size ``ceil(scale * input)``, as MATLAB) or ``output_shape`` (then
    each dimension's scale is out / in, as MATLAB), or both when the exact sizes are known.
    """
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise ValueError(
            f"imresize needs a uint8 (H, W) or (H, W, C) array, got {img.dtype} {img.shape}"
        )
    in_shape = img.shape[:2]
    if min(in_shape) < 1:
        raise ValueError(f"imresize needs a non-empty image, got shape {img.shape}")
    if scale is None and output_shape is None:
        raise ValueError("imresize needs scale or output_shape")
    if output_shape is None:
        assert scale is not None
        output_shape = (math.ceil(scale * in_shape[0]), math.ceil(scale * in_shape[1]))
    if min(output_shape) < 1:
        raise ValueError(f"imresize output shape must be positive, got {output_shape}")
    if scale is None:
        scales = (output_shape[0] / in_shape[0], output_shape[1] / in_shape[1])
    else:
        scales = (float(scale), float(scale))

    # MATLAB resizes the dimension with the smaller scale first (a stable sort: rows on a tie).
    order = (0, 1) if scales[0] <= scales[1] else (1, 0)
    out = img
    for dim in order:
        if dim == 0:
            out = _resize_axis0(out, output_shape[0], scales[0], antialias)
        else:
            moved = np.swapaxes(out, 0, 1)
            out = np.swapaxes(_resize_axis0(moved, output_shape[1], scales[1], antialias), 0, 1)
    return np.ascontiguousarray(out)


def check_scale(scale: object) -> int:
    """``scale`` as an int, or a :class:`DataError` when it is not a positive integer."""
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise DataError("scale", "must be a positive integer", scale)
    return int(scale)


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The benchmark degradation: crop ``hr`` top-left to a multiple of ``scale``, then shrink.

    Returns uint8 ``(H // scale, W // scale, C)``; the matching HR is
    ``hr[: H // scale * scale, : W // scale * scale]``.
    """
    s = check_scale(scale)
    h, w = hr.shape[0] // s, hr.shape[1] // s
    if h < 1 or w < 1:
        raise DataError("image", f"must be at least {s}x{s} pixels for scale {s}", tuple(hr.shape))
    cropped = hr[: h * s, : w * s]
    if s == 1:
        return np.array(cropped, dtype=np.uint8)
    return imresize(cropped, scale=1.0 / s, output_shape=(h, w))


def upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB bicubic enlargement by an integer ``scale`` (the bicubic SR baseline)."""
    s = check_scale(scale)
    return imresize(lr, scale=float(s), output_shape=(lr.shape[0] * s, lr.shape[1] * s))
