"""MATLAB-compatible bicubic resize: bit-exact against the shipped benchmark LR files, and
against a scalar, line-by-line transcription of MATLAB's imresize written here."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import srnas.evaluators.resize as resize_mod
from srnas.evaluators.resize import imresize, make_lr, upscale
from srnas.space.errors import DataError

BENCH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "benchmark"
SET_SIZES = {"Set5": 5, "Set14": 14}


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


# -- reference: MATLAB's imresize.m, one output pixel at a time --------------------------------


def _ref_cubic(x: float) -> float:
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0


def _ref_resize_line(line: list[int], out_len: int, scale: float) -> list[int]:
    n = len(line)
    shrink = scale < 1
    width = 4 / scale if shrink else 4.0
    out = []
    for x in range(1, out_len + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = math.ceil(width) + 2
        ws, idx = [], []
        for j in range(taps):
            k = left + j
            d = u - k
            ws.append(scale * _ref_cubic(scale * d) if shrink else _ref_cubic(d))
            # symmetric padding in 1-based indices: ..., 2, 1, | 1, 2, ..., n, | n, n-1, ...
            m = (k - 1) % (2 * n)
            idx.append(m if m < n else 2 * n - 1 - m)
        total = sum(ws)
        acc = sum(w / total * line[i] for w, i in zip(ws, idx, strict=True))
        out.append(min(255, max(0, math.floor(acc + 0.5))))
    return out


def _ref_imresize(img: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    scales = (out_shape[0] / img.shape[0], out_shape[1] / img.shape[1])
    order = sorted(range(2), key=lambda d: scales[d])  # stable: rows first on a tie
    cur = img.astype(np.int64)
    for dim in order:
        moved = np.moveaxis(cur, dim, 0)
        res = np.empty((out_shape[dim], *moved.shape[1:]), dtype=np.int64)
        for j in range(moved.shape[1]):
            for c in range(moved.shape[2]):
                res[:, j, c] = _ref_resize_line(list(moved[:, j, c]), out_shape[dim], scales[dim])
        cur = np.moveaxis(res, 0, dim)
    return cur.astype(np.uint8)


# -- the benchmark files -----------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("set_name", ["Set5", "Set14"])
def test_reproduces_every_shipped_lr_file_bit_for_bit(set_name: str, scale: int) -> None:
    root = BENCH / set_name
    if not root.is_dir():
        pytest.skip(f"benchmark data not found at {root}")
    hr_paths = sorted((root / "HR").glob("*.png"))
    assert len(hr_paths) == SET_SIZES[set_name]
    for hr_path in hr_paths:
        lr_path = root / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png"
        shipped = _rgb(lr_path)
        mine = make_lr(_rgb(hr_path), scale)
        assert mine.shape == shipped.shape, hr_path.name
        differing = int(np.count_nonzero(mine != shipped))
        assert differing == 0, f"{hr_path.name} x{scale}: {differing} values differ"


# -- against the scalar reference --------------------------------------------------------------


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    out_h=st.integers(1, 14),
    out_w=st.integers(1, 14),
    seed=st.integers(0, 2**16),
)
def test_matches_scalar_reference(h: int, w: int, out_h: int, out_w: int, seed: int) -> None:
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 2), dtype=np.uint8)
    out = imresize(img, output_shape=(out_h, out_w))
    assert np.array_equal(out, _ref_imresize(img, (out_h, out_w)))


@pytest.mark.parametrize("ratio", [0, 10**6])
def test_dense_and_per_tap_paths_agree_with_reference(
    monkeypatch: pytest.MonkeyPatch, ratio: int
) -> None:
    # Force one implementation, then the other; both must equal the reference.
    monkeypatch.setattr(resize_mod, "_DENSE_MAX_RATIO", ratio)
    img = np.random.default_rng(1).integers(0, 256, (24, 30, 3), dtype=np.uint8)
    assert np.array_equal(make_lr(img, 3), _ref_imresize(img, (8, 10)))
    small = img[:7, :9]
    assert np.array_equal(upscale(small, 2), _ref_imresize(small, (14, 18)))


def test_width_first_when_it_shrinks_more() -> None:
    img = np.random.default_rng(2).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    assert np.array_equal(imresize(img, output_shape=(9, 5)), _ref_imresize(img, (9, 5)))


# -- properties --------------------------------------------------------------------------------


def test_cubic_kernel_values() -> None:
    x = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -0.5])
    expected = [1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0, 0.5625]  # Keys, a = -0.5
    assert np.allclose(resize_mod._cubic(x), expected)


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_constant_image_stays_constant(scale: int) -> None:
    img = np.full((25, 37, 3), 173, dtype=np.uint8)
    lr = make_lr(img, scale)
    assert lr.shape == (25 // scale, 37 // scale, 3)
    assert np.all(lr == 173)
    assert np.all(upscale(lr, scale) == 173)


def test_make_lr_crops_top_left_then_shrinks() -> None:
    img = np.random.default_rng(3).integers(0, 256, (50, 43, 3), dtype=np.uint8)
    assert np.array_equal(make_lr(img, 4), make_lr(img[:48, :40], 4))
    assert make_lr(img, 4).shape == (12, 10, 3)
    assert not np.array_equal(make_lr(img, 4), make_lr(img[2:, 3:], 4))


def test_scale_one_is_identity() -> None:
    img = np.random.default_rng(4).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    assert np.array_equal(imresize(img, scale=1.0), img)


def test_upscale_size_and_gray_2d_input() -> None:
    lr = np.random.default_rng(5).integers(0, 256, (10, 13), dtype=np.uint8)
    assert upscale(lr, 3).shape == (30, 39)
    assert imresize(lr, scale=0.5).shape == (5, 7)  # ceil, as MATLAB


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "2", None])
def test_bad_scale_is_a_data_error(bad: object) -> None:
    img = np.zeros((8, 8, 3), dtype=np.uint8)
    with pytest.raises(DataError, match="scale"):
        make_lr(img, bad)  # type: ignore[arg-type]


def test_image_smaller_than_scale_is_a_data_error() -> None:
    with pytest.raises(DataError, match="at least 4x4"):
        make_lr(np.zeros((3, 9, 3), dtype=np.uint8), 4)


def test_rejects_float_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        imresize(np.zeros((8, 8, 3), dtype=np.float32), scale=0.5)


# -- how the work is done (speed itself is for the benchmarks) ------------------------------------


def test_weights_are_built_once_per_geometry_and_reused() -> None:
    resize_mod._contributions.cache_clear()
    resize_mod._dense_matrix.cache_clear()
    patch = np.random.default_rng(6).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    first = make_lr(patch, 4)
    built = resize_mod._contributions.cache_info().misses
    dense_built = resize_mod._dense_matrix.cache_info().misses
    assert built >= 1 and dense_built >= 1
    for _ in range(5):
        assert np.array_equal(make_lr(patch, 4), first)
    assert resize_mod._contributions.cache_info().misses == built
    assert resize_mod._dense_matrix.cache_info().misses == dense_built
    assert resize_mod._contributions.cache_info().hits > 0
    # The cached arrays are shared, so no caller may write into them.
    weights, indices = resize_mod._contributions(64, 16, 0.25, True)
    assert not weights.flags.writeable and not indices.flags.writeable


def test_large_images_never_build_a_dense_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    # A dense (out, in) matrix costs O(in_length) per output pixel; a DIV2K-sized image must
    # take the per-tap path on both axes, and a patch the dense one.
    sizes: list[int] = []
    real = resize_mod._dense_matrix

    def spy(in_length: int, out_length: int, scale: float, antialias: bool) -> np.ndarray:
        sizes.append(in_length)
        return real(in_length, out_length, scale, antialias)

    monkeypatch.setattr(resize_mod, "_dense_matrix", spy)
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (1356, 2040, 3), dtype=np.uint8)
    assert make_lr(image, 2).shape == (678, 1020, 3)
    assert sizes == []
    make_lr(image[:64, :64], 4)
    assert sizes == [64, 64]
