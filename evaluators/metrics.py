"""PSNR and SSIM as the SR literature reports them (BasicSR / ESC convention).

- The network output is clamped to [0, 1], scaled by 255 and rounded to uint8 first
  (:func:`tensor_to_uint8`), so the score is that of the image a user would save.
- Both images go to the Y channel of BT.601 YCbCr on the [16, 235] scale:
  ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` with RGB in [0, 1], kept in float (not rounded),
  as BasicSR's ``bgr2ycbcr(..., y_only=True)``. Gray images are loaded as RGB first, so they
  get the same formula (BasicSR's convention; the README's Set14 row notes the difference).
- ``shave`` pixels (the scale, by convention) are cut from every border.
- PSNR with peak 255; SSIM with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
  averaged over the "valid" positions where the window fits, as BasicSR's ``calculate_ssim``:
  scikit-image's ``structural_similarity`` configured to that convention (below).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from skimage.metrics import structural_similarity

__all__ = ["psnr_y", "rgb_to_y", "ssim_y", "tensor_to_uint8"]

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64)  # R, G, B
_PEAK = 255.0
_SSIM_SIGMA = 1.5
# scikit-image's window for a Gaussian of sigma 1.5: 2 * round(3.5 * sigma) + 1 = 11 taps.
_SSIM_WINDOW = 11


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


def ssim_y(sr: np.ndarray, hr: np.ndarray, shave: int) -> float:
    """Mean SSIM on the Y channel of two uint8 (H, W, 3) images (BasicSR's ``calculate_ssim``).

    scikit-image's SSIM set to BasicSR's convention: a Gaussian window of sigma 1.5 (its 11
    taps, truncated at 3.5 sigma, are OpenCV's getGaussianKernel(11, 1.5)), population
    (not sample) covariances, K1 0.01 and K2 0.03 (its defaults) of the 255 peak, and the mean
    over the positions where the whole window fits (it filters the full image, then crops the
    5-pixel rim that BasicSR's "valid" filtering never computes): its figures to ~1e-15 (Set5,
    Set14).
    """
    y_sr, y_hr = _shaved_y(sr, hr, shave)
    if min(y_sr.shape) < _SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels after "
            f"shaving, got {y_sr.shape[0]}x{y_sr.shape[1]}"
        )
    return float(structural_similarity(y_hr, y_sr, gaussian_weights=True, sigma=_SSIM_SIGMA,
                                       use_sample_covariance=False, data_range=_PEAK))


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
