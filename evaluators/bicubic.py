"""The bicubic baseline: MATLAB bicubic up-scaling of each LR image, scored like a network."""

from __future__ import annotations

import numpy as np

from srnas.evaluators.data import ValSet
from srnas.evaluators.metrics import psnr_y, ssim_y
from srnas.evaluators.resize import upscale


def bicubic_baseline(pairs: ValSet, scale: int) -> dict[str, float | int]:
    """Mean Y-channel PSNR / SSIM of bicubic up-scaling (``scale`` pixels shaved)."""
    psnrs, ssims = [], []
    for pair in pairs:
        sr = upscale(pair.lr, scale)
        hr = pair.hr[: sr.shape[0], : sr.shape[1]]
        psnrs.append(psnr_y(sr, hr, scale))
        ssims.append(ssim_y(sr, hr, scale))
    return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)), "images": len(pairs)}
