"""PSNR and SSIM as the SR literature reports them (BasicSR / ESC convention).

- The network output is clamped to [0, 1], scaled by 255 and rounded to uint8 first
  (:func:`tensor_to_uint8`), so the score is that of the image a user would save.
- Both images go to the Y channel of BT.601 YCbCr on the [16, 235] scale:
  ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` with RGB in [0, 1], kept in float (not rounded),
  as BasicSR's ``bgr2ycbcr(..., y_only=True)``. Gray images are loaded as RGB first, so they
  get the same formula (BasicSR's convention; the README's Set14 row notes the difference).
- ``shave`` pixels (the scale, by convention) are cut from every border.
- PSNR with peak 255; SSIM with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
  averaged over the "valid" positions where the window fits, as BasicSR's ``calculate_ssim``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["psnr_y", "rgb_to_y", "ssim_y", "tensor_to_uint8"]

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64)  # R, G, B
_PEAK = 255.0
_SSIM_RADIUS = 5
_SSIM_SIGMA = 1.5
_C1 = (0.01 * _PEAK) ** 2
_C2 = (0.03 * _PEAK) ** 2


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Y channel (float64, [16, 235] scale) of an RGB (..., 3) image.

    uint8 input is read as RGB / 255; float input must already be in [0, 1].
    """
    if img.ndim < 1 or img.shape[-1] != 3:
        raise ValueError(f"rgb_to_y needs an (..., 3) RGB array, got shape {img.shape}")
    rgb = img.astype(np.float64) / 255.0 if img.dtype == np.uint8 else img.astype(np.float64)
    return rgb @ _Y_WEIGHTS + 16.0


def _shaved_y(sr: np.ndarray, hr: np.ndarray, shave: int) -> tuple[np.ndarray, np.ndarray]:
    if sr.shape != hr.shape or sr.ndim != 3 or sr.shape[2] != 3:
        raise ValueError(f"need two (H, W, 3) images of one shape, got {sr.shape} and {hr.shape}")
    if sr.dtype != np.uint8 or hr.dtype != np.uint8:
        raise ValueError(f"need uint8 images (round the output first), got {sr.dtype}, {hr.dtype}")
    if shave < 0 or 2 * shave >= min(sr.shape[:2]):
        raise ValueError(f"shave {shave} leaves nothing of a {sr.shape[0]}x{sr.shape[1]} image")
    if shave:
        sr = sr[shave:-shave, shave:-shave]
        hr = hr[shave:-shave, shave:-shave]
    return rgb_to_y(sr), rgb_to_y(hr)


def psnr_y(sr: np.ndarray, hr: np.ndarray, shave: int) -> float:
    """PSNR in dB on the Y channel of two uint8 (H, W, 3) images; ``inf`` when identical."""
    y_sr, y_hr = _shaved_y(sr, hr, shave)
    mse = float(np.mean((y_sr - y_hr) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(_PEAK**2 / mse)


def _gaussian_window() -> np.ndarray:
    # Same taps as OpenCV's getGaussianKernel(11, 1.5) and scipy's gaussian_filter(sigma=1.5,
    # truncate=3.5): sampled, then normalised to sum 1.
    x = np.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2.0 * _SSIM_SIGMA**2))
    return g / g.sum()


_WINDOW = _gaussian_window()


def _filter_valid(img: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter keeping only positions where the whole window fits."""
    n = _WINDOW.size
    h, w = img.shape
    rows = sum(_WINDOW[k] * img[k : h - n + 1 + k] for k in range(n))
    return sum(_WINDOW[k] * rows[:, k : w - n + 1 + k] for k in range(n))


def ssim_y(sr: np.ndarray, hr: np.ndarray, shave: int) -> float:
    """Mean SSIM on the Y channel of two uint8 (H, W, 3) images (BasicSR's ``calculate_ssim``)."""
    y_sr, y_hr = _shaved_y(sr, hr, shave)
    if min(y_sr.shape) < _WINDOW.size:
        raise ValueError(
            f"SSIM needs at least {_WINDOW.size}x{_WINDOW.size} pixels after "
            f"shaving, got {y_sr.shape[0]}x{y_sr.shape[1]}"
        )
    mu1 = _filter_valid(y_sr)
    mu2 = _filter_valid(y_hr)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = _filter_valid(y_sr * y_sr) - mu1_sq
    sigma2_sq = _filter_valid(y_hr * y_hr) - mu2_sq
    sigma12 = _filter_valid(y_sr * y_hr) - mu12
    ssim_map = ((2.0 * mu12 + _C1) * (2.0 * sigma12 + _C2)) / (
        (mu1_sq + mu2_sq + _C1) * (sigma1_sq + sigma2_sq + _C2)
    )
    return float(ssim_map.mean())


def tensor_to_uint8(t: torch.Tensor) -> np.ndarray:
    """A (3, H, W) or (1, 3, H, W) float tensor in [0, 1] to a uint8 (H, W, 3) array.

    Clamped, scaled by 255 and rounded (half to even, as BasicSR's ``tensor2img``). NaN becomes
    0 so that a broken output scores badly but deterministically.
    """
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"tensor_to_uint8 takes one image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"tensor_to_uint8 needs (3, H, W) or (1, 3, H, W), got {tuple(t.shape)}")
    values = torch.nan_to_num(t.detach().to(device="cpu", dtype=torch.float32), nan=0.0)
    scaled = values.clamp(0.0, 1.0) * 255.0
    return scaled.round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
