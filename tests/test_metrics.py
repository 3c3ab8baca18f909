"""PSNR / SSIM on Y: against scikit-image's implementations and the README's bicubic table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from srnas.evaluators.metrics import psnr_y, rgb_to_y, ssim_y, tensor_to_uint8
from srnas.evaluators.resize import upscale

BENCH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "benchmark"

# README.md of the benchmark folder: bicubic, Y channel, scale shaved, every image read as RGB.
BICUBIC_PSNR = {
    ("Set5", 2): 33.66,
    ("Set5", 3): 30.39,
    ("Set5", 4): 28.42,
    ("Set14", 2): 30.32,
    ("Set14", 3): 27.63,
    ("Set14", 4): 26.09,
}


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _skimage_y(img: np.ndarray, shave: int) -> np.ndarray:
    # Independent Y: BasicSR's bgr2ycbcr(y_only=True) weights, written out per channel.
    f = img.astype(np.float64) / 255.0
    y = 16.0 + 65.481 * f[..., 0] + 128.553 * f[..., 1] + 24.966 * f[..., 2]
    return y[shave:-shave, shave:-shave] if shave else y


def _skimage_scores(sr: np.ndarray, hr: np.ndarray, shave: int) -> tuple[float, float]:
    a, b = _skimage_y(sr, shave), _skimage_y(hr, shave)
    psnr = peak_signal_noise_ratio(b, a, data_range=255)
    ssim = structural_similarity(
        b, a, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    return float(psnr), float(ssim)


def _noisy_pair(seed: int, shape: tuple[int, int] = (48, 40)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    noise = rng.normal(0, 12, hr.shape)
    sr = np.clip(np.round(hr + noise), 0, 255).astype(np.uint8)
    return sr, hr


# -- rgb_to_y ----------------------------------------------------------------------------------


def test_rgb_to_y_range_and_weights() -> None:
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    assert np.allclose(rgb_to_y(px)[0], [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966])


def test_rgb_to_y_float_input_is_in_unit_range() -> None:
    img = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    assert np.allclose(rgb_to_y(img), rgb_to_y(img.astype(np.float32) / 255.0))


# -- against scikit-image ----------------------------------------------------------------------


@pytest.mark.parametrize("shave", [0, 2, 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_psnr_and_ssim_agree_with_skimage(seed: int, shave: int) -> None:
    sr, hr = _noisy_pair(seed)
    psnr_ref, ssim_ref = _skimage_scores(sr, hr, shave)
    assert psnr_y(sr, hr, shave) == pytest.approx(psnr_ref, abs=1e-9)
    assert ssim_y(sr, hr, shave) == pytest.approx(ssim_ref, abs=1e-9)


def test_psnr_of_a_known_offset() -> None:
    hr = np.full((20, 20, 3), 100, dtype=np.uint8)
    sr = hr + 10
    dy = 10 * (65.481 + 128.553 + 24.966) / 255
    assert psnr_y(sr, hr, 2) == pytest.approx(20 * math.log10(255 / dy))


def test_identical_images() -> None:
    sr, hr = _noisy_pair(2)
    assert psnr_y(hr, hr.copy(), 4) == math.inf
    assert ssim_y(hr, hr.copy(), 4) == pytest.approx(1.0)
    assert ssim_y(sr, hr, 4) < 0.99


def test_shave_ignores_the_border() -> None:
    _, hr = _noisy_pair(3)
    sr = hr.copy()
    sr[:3] = 0
    sr[:, -3:] = 255
    assert psnr_y(sr, hr, 3) == math.inf
    assert psnr_y(sr, hr, 2) < 40


def test_mismatched_shapes_and_dtypes_are_rejected() -> None:
    sr, hr = _noisy_pair(4)
    with pytest.raises(ValueError, match="shape"):
        psnr_y(sr[:-1], hr, 2)
    with pytest.raises(ValueError, match="uint8"):
        ssim_y(sr.astype(np.float32), hr, 2)
    with pytest.raises(ValueError, match="shave"):
        psnr_y(sr, hr, 20)


# -- tensor_to_uint8 ---------------------------------------------------------------------------


def test_tensor_to_uint8_clamps_rounds_and_transposes() -> None:
    t = torch.tensor([[[-0.5, 2.0], [128 / 255, 0.3]]]).expand(3, 2, 2).clone()
    t[1] *= 0.5
    out = tensor_to_uint8(t.unsqueeze(0))
    assert out.dtype == np.uint8
    assert out.shape == (2, 2, 3)
    assert out[..., 0].tolist() == [[0, 255], [128, round(0.3 * 255)]]
    assert out[..., 1].tolist() == [[0, 255], [64, round(0.15 * 255)]]
    assert np.array_equal(tensor_to_uint8(t), out)


def test_tensor_to_uint8_rejects_batches_and_nan_is_zero() -> None:
    with pytest.raises(ValueError, match="batch"):
        tensor_to_uint8(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError):
        tensor_to_uint8(torch.zeros(1, 4, 4))
    assert tensor_to_uint8(torch.full((3, 2, 2), float("nan"))).max() == 0


# -- the bicubic baseline ----------------------------------------------------------------------


@pytest.mark.parametrize(("set_name", "scale"), list(BICUBIC_PSNR))
def test_bicubic_baseline_matches_readme(set_name: str, scale: int) -> None:
    root = BENCH / set_name
    if not root.is_dir():
        pytest.skip(f"benchmark data not found at {root}")
    psnrs = []
    for hr_path in sorted((root / "HR").glob("*.png")):
        lr = _rgb(root / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png")
        sr = upscale(lr, scale)
        hr = _rgb(hr_path)[: sr.shape[0], : sr.shape[1]]
        assert hr.shape == sr.shape
        psnr = psnr_y(sr, hr, scale)
        psnrs.append(psnr)
        psnr_ref, ssim_ref = _skimage_scores(sr, hr, scale)
        assert psnr == pytest.approx(psnr_ref, abs=1e-9)
        assert ssim_y(sr, hr, scale) == pytest.approx(ssim_ref, abs=1e-9)
    assert float(np.mean(psnrs)) == pytest.approx(BICUBIC_PSNR[(set_name, scale)], abs=0.02)
