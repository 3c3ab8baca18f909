"""Loading, folders, benchmark layouts, the offline default set and the patch sampler."""

from __future__ import annotations

import socket
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srnas.evaluators.data import (
    DEFAULT_TRAIN,
    DEFAULT_VAL,
    IMAGE_EXTS,
    PatchSampler,
    benchmark_set,
    default_images,
    hr_only_set,
    list_images,
    load_folder,
    load_image,
)
from srnas.evaluators.resize import make_lr
from srnas.space.errors import DataError

BENCH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "benchmark"


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(arr)
    (img.convert(mode) if mode else img).save(path)
    return path


# -- load_image --------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif"])
def test_lossless_formats_round_trip(tmp_path: Path, ext: str) -> None:
    arr = _noise(7, 9)
    out = load_image(_save(tmp_path / f"a{ext}", arr))
    assert out.dtype == np.uint8
    assert np.array_equal(out, arr)


def test_jpeg_loads_as_rgb(tmp_path: Path) -> None:
    out = load_image(_save(tmp_path / "a.JPG", _noise(16, 12)))
    assert out.shape == (16, 12, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("mode", ["L", "1", "LA"])
def test_gray_becomes_three_equal_channels(tmp_path: Path, mode: str) -> None:
    out = load_image(_save(tmp_path / "g.png", _noise(6, 5), mode))
    assert out.shape == (6, 5, 3)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_palette_and_rgba_become_rgb(tmp_path: Path) -> None:
    arr = _noise(6, 5)
    rgba = np.dstack([arr, np.full((6, 5), 7, np.uint8)])
    assert np.array_equal(load_image(_save(tmp_path / "a.png", rgba)), arr)  # alpha dropped
    pal = Image.fromarray(arr).quantize(16)
    pal.save(tmp_path / "p.png")
    assert np.array_equal(load_image(tmp_path / "p.png"), np.asarray(pal.convert("RGB")))


def test_16_bit_gray_is_scaled_to_8_bits(tmp_path: Path) -> None:
    wide = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "w.png")
    out = load_image(tmp_path / "w.png")
    assert out[..., 0].tolist() == [[0, 1, 255, 128]]


def test_corrupt_truncated_and_missing_files_name_the_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG not really an image")
    good = _save(tmp_path / "good.png", _noise(64, 64))
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.read_bytes()[:400])
    for path in (junk, truncated, tmp_path / "missing.png"):
        with pytest.raises(DataError) as info:
            load_image(path)
        message = str(info.value)
        assert str(path) in message and "\n" not in message


# -- list_images -------------------------------------------------------------------------------


def test_list_images_sorted_and_filtered(tmp_path: Path) -> None:
    for name in ["b.png", "a.JPEG", "c.tif", "notes.txt", ".hidden.png"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.JPEG", "b.png", "c.tif"]
    assert ".png" in IMAGE_EXTS and ".bmp" in IMAGE_EXTS


def test_list_images_recursive_in_a_stable_order(tmp_path: Path) -> None:
    for name in ["b/2.png", "b/10.png", "a.png", "b/c/1.PNG", ".hidden/x.png", "b/.y.png",
                 "b/notes.txt", "z.png"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    rel = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path, recursive=True)]
    assert rel == ["a.png", "b/10.png", "b/2.png", "b/c/1.PNG", "z.png"]
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "z.png"]


def test_list_images_errors_name_the_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.png").write_bytes(b"x")
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("x")
    for folder, rule in [
        (tmp_path / "missing", "does not exist"),
        (tmp_path / "file.png", "must be a folder"),
        (tmp_path / "empty", "no images"),
        (tmp_path / "texts", "no images"),
    ]:
        with pytest.raises(DataError, match=rule) as info:
            list_images(folder)
        assert str(folder) in str(info.value)


# -- default images ----------------------------------------------------------------------------


def test_default_images_are_bundled_and_never_downloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("default_images tried to use the network")

    import skimage.data._fetchers as fetchers

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(fetchers, "_fetch", no_network)
    monkeypatch.setitem(sys.modules, "pooch", None)  # importing pooch would now fail

    train, val = default_images()
    assert [n for n, _ in train] == [Path(f).stem for f in DEFAULT_TRAIN]
    assert [n for n, _ in val] == [Path(f).stem for f in DEFAULT_VAL] == ["chelsea", "coffee"]
    assert not {n for n, _ in train} & {n for n, _ in val}
    for _, img in train + val:
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert min(img.shape[:2]) >= 256


def test_default_validation_pairs() -> None:
    _, val = default_images()
    pairs = hr_only_set(val, 4)
    assert [p.name for p in pairs] == ["chelsea", "coffee"]
    for name, lr, hr in pairs:
        assert hr.shape == (lr.shape[0] * 4, lr.shape[1] * 4, 3), name
        assert np.array_equal(lr, make_lr(hr, 4))


# -- benchmark_set -----------------------------------------------------------------------------


def _edsr_layout(root: Path, scales: tuple[int, ...]) -> dict[str, np.ndarray]:
    hrs = {"img1": _noise(37, 50, 1), "img2": _noise(41, 29, 2)}
    for name, hr in hrs.items():
        _save(root / "HR" / f"{name}.png", hr)
        for s in scales:
            _save(root / "LR_bicubic" / f"X{s}" / f"{name}x{s}.png", make_lr(hr, s))
    return hrs


def test_edsr_layout_uses_shipped_lr_and_crops_hr(tmp_path: Path) -> None:
    hrs = _edsr_layout(tmp_path, (2, 3))
    # Mark the shipped LR so we can tell it was read, not recomputed.
    marked = make_lr(hrs["img1"], 3)
    marked[0, 0] = 255 - marked[0, 0]
    _save(tmp_path / "LR_bicubic" / "X3" / "img1x3.png", marked)
    pairs = benchmark_set(tmp_path, 3)
    assert [p.name for p in pairs] == ["img1", "img2"]
    assert np.array_equal(pairs[0].lr, marked)
    assert np.array_equal(pairs[0].hr, hrs["img1"][:36, :48])
    assert pairs[1].hr.shape == (39, 27, 3) and pairs[1].lr.shape == (13, 9, 3)


def test_wrong_scale_names_scale_and_scales_present(tmp_path: Path) -> None:
    _edsr_layout(tmp_path, (2, 3))
    with pytest.raises(DataError, match=r"X4 .*scale 4.*scales present: \[2, 3\]"):
        benchmark_set(tmp_path, 4)


def test_missing_or_wrong_size_lr_file(tmp_path: Path) -> None:
    _edsr_layout(tmp_path, (2,))
    (tmp_path / "LR_bicubic" / "X2" / "img2x2.png").unlink()
    with pytest.raises(DataError, match=r"img2x2\.png"):
        benchmark_set(tmp_path, 2)
    _save(tmp_path / "LR_bicubic" / "X2" / "img2x2.png", _noise(5, 5))
    with pytest.raises(DataError, match="LR size"):
        benchmark_set(tmp_path, 2)


def test_hr_only_folders_make_their_own_lr(tmp_path: Path) -> None:
    hrs = _edsr_layout(tmp_path / "edsr", ())  # HR/ without LR_bicubic/
    for name, hr in hrs.items():
        _save(tmp_path / "flat" / f"{name}.png", hr)
    for root in (tmp_path / "edsr", tmp_path / "flat"):
        pairs = benchmark_set(root, 4)
        assert [p.name for p in pairs] == ["img1", "img2"]
        assert np.array_equal(pairs[0].lr, make_lr(hrs["img1"], 4))
        assert pairs[0].hr.shape == (36, 48, 3)


def test_benchmark_set_on_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        benchmark_set(tmp_path / "nope", 2)


@pytest.mark.parametrize("scale", [2, 4])
def test_real_set5(scale: int) -> None:
    root = BENCH / "Set5"
    if not root.is_dir():
        pytest.skip(f"benchmark data not found at {root}")
    pairs = benchmark_set(root, scale)
    assert [p.name for p in pairs] == ["baby", "bird", "butterfly", "head", "woman"]
    for name, lr, hr in pairs:
        assert hr.shape == (lr.shape[0] * scale, lr.shape[1] * scale, 3)
        assert np.array_equal(lr, make_lr(hr, scale)), name


# -- PatchSampler ------------------------------------------------------------------------------


def _images() -> list[tuple[str, np.ndarray]]:
    return [("a", _noise(70, 90, 1)), ("b", _noise(64, 64, 2)), ("c", _noise(100, 81, 3))]


def test_batches_have_the_promised_shapes_and_range() -> None:
    sampler = PatchSampler(_images(), scale=4, patch=64, batch=5, seed=0)
    lr, hr = sampler.next_batch()
    assert lr.shape == (5, 3, 16, 16) and hr.shape == (5, 3, 64, 64)
    assert lr.dtype == hr.dtype == torch.float32
    assert float(hr.min()) >= 0.0 and float(hr.max()) <= 1.0
    assert len(sampler) == 3


def test_same_seed_same_batches_other_seed_other_batches() -> None:
    a = PatchSampler(_images(), 2, 32, 4, seed=7)
    b = PatchSampler(_images(), 2, 32, 4, seed=7)
    c = PatchSampler(_images(), 2, 32, 4, seed=8)
    for _ in range(3):
        (la, ha), (lb, hb), (lc, _) = a.next_batch(), b.next_batch(), c.next_batch()
        assert torch.equal(la, lb) and torch.equal(ha, hb)
        assert not torch.equal(la, lc)


def test_lr_and_hr_patches_are_aligned() -> None:
    # Away from the patch border (the kernel's reach), the LR patch is the HR patch shrunk;
    # a misaligned or differently flipped pair of noise patches would differ by ~100 levels.
    sampler = PatchSampler(_images(), scale=4, patch=48, batch=32, seed=1)
    lr, hr = sampler.next_batch()
    to_u8 = lambda t: (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # noqa: E731
    for i in range(lr.shape[0]):
        expected = make_lr(to_u8(hr[i]), 4).astype(int)[3:-3, 3:-3]
        got = to_u8(lr[i]).astype(int)[3:-3, 3:-3]
        assert np.abs(expected - got).max() <= 1  # transposes change MATLAB's pass order


def test_all_eight_flips_and_rotations_occur() -> None:
    # One image whose HR is an asymmetric gradient; each symmetry gives a distinct patch.
    ramp = np.arange(16, dtype=np.uint8)
    hr = (ramp[:, None] * 8 + ramp[None, :]).astype(np.uint8)
    img = np.repeat(hr[:, :, None], 3, axis=2)
    sampler = PatchSampler([("ramp", img)], scale=2, patch=16, batch=64, seed=3)
    _, patches = sampler.next_batch()
    assert len({p.numpy().tobytes() for p in patches}) == 8


def test_small_images_skipped_with_one_warning() -> None:
    images = [*_images(), ("tiny", _noise(20, 90)), ("thin", _noise(90, 30))]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampler = PatchSampler(images, scale=4, patch=64, batch=2, seed=0)
    assert len(caught) == 1
    assert "tiny" in str(caught[0].message) and "thin" in str(caught[0].message)
    assert sampler.names == ["a", "b", "c"]


def test_no_usable_image_is_a_data_error() -> None:
    with pytest.warns(UserWarning, match="tiny"), pytest.raises(DataError, match="64x64"):
        PatchSampler([("tiny", _noise(20, 20))], scale=4, patch=64, batch=2, seed=0)
    with pytest.raises(DataError, match="empty"):
        PatchSampler([], scale=4, patch=64, batch=2, seed=0)


@pytest.mark.parametrize(("patch", "batch"), [(30, 4), (0, 4), (64, 0)])
def test_bad_patch_or_batch(patch: int, batch: int) -> None:
    with pytest.raises(DataError):
        PatchSampler(_images(), scale=4, patch=patch, batch=batch, seed=0)


def test_from_folder(tmp_path: Path) -> None:
    for name, img in _images():
        _save(tmp_path / f"{name}.png", img)
    from_disk = PatchSampler.from_folder(tmp_path, 2, 32, 3, seed=5)
    in_memory = PatchSampler(_images(), 2, 32, 3, seed=5)
    assert from_disk.names == ["a", "b", "c"]
    assert [(n, img.tobytes()) for n, img in load_folder(tmp_path)] == [
        (n, img.tobytes()) for n, img in _images()
    ]
    disk_batch, memory_batch = from_disk.next_batch(), in_memory.next_batch()
    assert all(torch.equal(x, y) for x, y in zip(disk_batch, memory_batch, strict=True))
