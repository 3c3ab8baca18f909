"""Images in, (LR, HR) pairs out: loading, benchmark sets, the offline default set, patches.

- Every image is loaded as RGB uint8 (gray, palette, 16-bit and alpha images converted), so
  metrics and networks see one format; a file that cannot be decoded is a :class:`DataError`
  naming it.
- LR images are made from HR with :func:`evaluators.resize.make_lr` (MATLAB bicubic), except
  in benchmark folders that ship their own ``LR_bicubic/X<s>`` files, which are used as is.
- The offline default is a fixed selection of the photographs bundled inside scikit-image's
  wheel, read straight from its package folder: nothing is ever downloaded.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from srnas.evaluators.resize import check_scale, make_lr
from srnas.evaluators.store_format import is_store, open_store
from srnas.space.errors import DataError

__all__ = [
    "DEFAULT_TRAIN",
    "DEFAULT_VAL",
    "IMAGE_EXTS",
    "NamedImage",
    "PatchSampler",
    "ValPair",
    "ValSet",
    "benchmark_set",
    "bundled_images",
    "default_images",
    "hr_only_set",
    "list_images",
    "load_folder",
    "load_image",
    "usable_images",
    "usable_indices",
]

IMAGE_EXTS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

NamedImage = tuple[str, np.ndarray]


class ValPair(NamedTuple):
    """One validation image: its name, the LR input and the HR target (cropped to match)."""

    name: str
    lr: np.ndarray
    hr: np.ndarray


ValSet = list[ValPair]

# -- loading ---------------------------------------------------------------------------------

_16BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3).

    Gray and palette images are expanded to RGB, alpha is dropped (as OpenCV's IMREAD_COLOR,
    which BasicSR uses), 16-bit gray is scaled to 8 bits.
    """
    path = Path(path)
    with image_errors(path), Image.open(path) as img:
        img.load()  # decode now: a truncated file fails here, not later in a worker
        if img.mode in _16BIT_MODES:
            wide = np.asarray(img).astype(np.float64)
            gray = np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8)
            return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
        rgb = img if img.mode == "RGB" else img.convert("RGB")
        arr = np.asarray(rgb, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        raise DataError(path, "must decode to a non-empty RGB image", arr.shape)
    return np.ascontiguousarray(arr)


@contextmanager
def image_errors(path: Path) -> Iterator[None]:
    """PIL's failures on one file as a one-line DataError naming it."""
    try:
        yield
    except FileNotFoundError as err:
        raise DataError(path, "image file does not exist", str(err)) from err
    except Image.DecompressionBombError as err:
        raise DataError(path, "too many pixels to load safely", str(err)) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        # PIL reports corrupt or truncated data as any of these.
        raise DataError(path, "cannot be read as an image", str(err)) from err


def check_folder(folders: str | Path | Sequence[str | Path]) -> int:
    """Check, without decoding pixels, that each training folder holds images (sub-folders
    included, as training lists them) and that every file is one PIL can read (its header and
    structure): what a search's driver checks before any trial starts, cheap even for DIV2K's
    800 photographs. A folder that is a prepared store (:mod:`evaluators.store`) is opened and
    its index verified instead. Returns the number of images."""
    total = 0
    for folder in [folders] if isinstance(folders, (str, Path)) else folders:
        if is_store(folder):
            total += len(open_store(folder))
            continue
        files = list_images(folder, recursive=True)
        for path in files:
            with image_errors(path), Image.open(path) as img:
                img.verify()
        total += len(files)
    return total


def list_images(folder: str | Path, *, recursive: bool = False) -> list[Path]:
    """The image files directly inside ``folder`` (by extension, any case), sorted by name.

    Hidden files (such as macOS ``._name.png`` metadata) are ignored. ``recursive`` also lists
    sub-folders (LSDIR's layout), hidden ones skipped, sorted by the relative path's parts so
    the order is the same on every machine and filesystem.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(folder, "data folder does not exist", str(folder))
    if not folder.is_dir():
        raise DataError(folder, "must be a folder of images", "a file")
    if recursive:
        files = sorted(_image_tree(folder), key=lambda p: p.relative_to(folder).parts)
    else:
        files = sorted(p for p in folder.iterdir() if p.is_file() and _is_image_name(p.name))
    if not files:
        raise DataError(folder, f"folder holds no images ({', '.join(IMAGE_EXTS)})", 0)
    return files


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTS


def _image_tree(folder: Path) -> Iterator[Path]:
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # pruned: never descended into
        for name in names:
            path = Path(root) / name
            if _is_image_name(name) and path.is_file():
                yield path


def load_folder(folder: str | Path) -> list[NamedImage]:
    """Every image in ``folder`` as (file stem, RGB uint8), in :func:`list_images` order."""
    return [(p.stem, load_image(p)) for p in list_images(folder)]


# -- offline default -------------------------------------------------------------------------

# Natural photographs bundled in scikit-image's wheel (skimage/data/, no pooch fetch needed).
# Validation: the two colour photographs of everyday scenes (a cat, a coffee cup), small enough
# that validating on CPU is cheap. Everything else natural goes to training; both halves of the
# motorcycle stereo pair stay in training so no near-duplicate leaks into validation. Left out
# on purpose: synthetic, text, microscopy, medical and binary images (not what SR is for).
DEFAULT_TRAIN: tuple[str, ...] = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "rocket.jpg",
)
DEFAULT_VAL: tuple[str, ...] = ("chelsea.png", "coffee.png")


def skimage_data_dir() -> Path:
    # The package folder itself, not skimage.data.data_dir (which may point at pooch's cache).
    import skimage

    return Path(skimage.__file__).resolve().parent / "data"


def default_images() -> tuple[list[NamedImage], list[NamedImage]]:
    """(train, validation) lists of (name, RGB uint8) from scikit-image's bundled photographs."""
    return bundled_images(DEFAULT_TRAIN), bundled_images(DEFAULT_VAL)


def bundled_images(names: Sequence[str]) -> list[NamedImage]:
    """The named photographs of scikit-image's package folder (one half of
    :func:`default_images`: a trial on its own training folders decodes only the validation
    half)."""
    folder = skimage_data_dir()
    return [(Path(n).stem, load_image(folder / n)) for n in names]


# -- validation sets -------------------------------------------------------------------------


def _crop_to_multiple(hr: np.ndarray, scale: int) -> np.ndarray:
    h, w = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
    return hr[:h, :w]


def _check_scoreable(pairs: ValSet, scale: int, where: str | Path) -> ValSet:
    """Every validation image must hold SSIM's 11x11 window after ``scale`` pixels are shaved."""
    smallest = 2 * scale + 11
    for pair in pairs:
        if min(pair.hr.shape[:2]) < smallest:
            raise DataError(f"{where}: {pair.name}", f"validation images need at least "
                            f"{smallest}x{smallest} pixels at x{scale}", pair.hr.shape[:2])
    return pairs


def hr_only_set(images: Sequence[NamedImage], scale: int) -> ValSet:
    """Pairs for in-memory HR images: LR made with :func:`make_lr`, HR cropped to match."""
    s = check_scale(scale)
    pairs: ValSet = []
    for name, hr in images:
        try:
            lr = make_lr(hr, s)
        except DataError as err:
            raise DataError(name, err.rule, err.value) from err
        pairs.append(ValPair(name, lr, np.ascontiguousarray(_crop_to_multiple(hr, s))))
    return _check_scoreable(pairs, s, "validation set")


def _lr_file(lr_dir: Path, stem: str, scale: int, hr_suffix: str) -> Path:
    # EDSR / DIV2K name LR files <stem>x<s>.<ext>; prefer the HR's extension, then png.
    for suffix in dict.fromkeys((hr_suffix, ".png", *IMAGE_EXTS)):
        candidate = lr_dir / f"{stem}x{scale}{suffix}"
        if candidate.is_file():
            return candidate
    raise DataError(
        lr_dir / f"{stem}x{scale}.png", "LR file for this HR image is missing", str(lr_dir)
    )


def benchmark_set(root: str | Path, scale: int) -> ValSet:
    """A validation set from a folder: EDSR layout (``HR/`` + ``LR_bicubic/X<s>/``) or HR only.

    In the EDSR layout the shipped LR files are used and each HR is cropped top-left to a
    multiple of ``scale`` (the benchmarks' originals are not); without ``LR_bicubic`` the LR is
    made with :func:`make_lr`. A folder without ``HR/`` is read as HR images.
    """
    s = check_scale(scale)
    root = Path(root)
    hr_dir = root / "HR"
    if not hr_dir.is_dir():
        return hr_only_set(load_folder(root), s)

    lr_root = root / "LR_bicubic"
    if not lr_root.is_dir():
        return hr_only_set(load_folder(hr_dir), s)
    lr_dir = lr_root / f"X{s}"
    if not lr_dir.is_dir():
        present = sorted(
            int(p.name[1:])
            for p in lr_root.iterdir()
            if p.is_dir() and p.name[:1] in "Xx" and p.name[1:].isdigit()
        )
        raise DataError(lr_root, f"has no X{s} folder for scale {s}; scales present: {present}", s)

    pairs: ValSet = []
    for hr_path in list_images(hr_dir):
        hr = _crop_to_multiple(load_image(hr_path), s)
        lr_path = _lr_file(lr_dir, hr_path.stem, s, hr_path.suffix)
        lr = load_image(lr_path)
        expected = (hr.shape[0] // s, hr.shape[1] // s)
        if lr.shape[:2] != expected or min(expected) < 1:
            raise DataError(
                lr_path, f"LR size must be the HR size // {s} = {expected}", lr.shape[:2]
            )
        pairs.append(ValPair(hr_path.stem, lr, np.ascontiguousarray(hr)))
    return _check_scoreable(pairs, s, root)


# -- training patches ------------------------------------------------------------------------


def usable_images(images: Sequence[NamedImage], scale: int, patch: int, *,
                  patch_field: str = "patch", images_field: str = "images"
                  ) -> list[NamedImage]:
    """The training images cropped to a multiple of ``scale`` that hold an HR ``patch``
    (checked: a positive multiple of the scale); smaller ones are skipped with a warning, and
    none left is an error."""
    s = check_scale(scale)
    shapes = np.array([hr.shape[:2] for _, hr in images], dtype=np.int64).reshape(-1, 2)
    keep = usable_indices([name for name, _ in images], shapes, s, patch,
                          patch_field=patch_field, images_field=images_field, stacklevel=4)
    return [(images[i][0], _crop_to_multiple(images[i][1], s)) for i in keep]


def usable_indices(names: Sequence[str], shapes: np.ndarray, scale: int, patch: int, *,
                   patch_field: str = "patch", images_field: str = "images",
                   stacklevel: int = 3) -> np.ndarray:
    """:func:`usable_images` from the images' (H, W) alone: the indices of those that hold an
    HR ``patch`` once cropped to a multiple of ``scale`` (a prepared store's shapes: nothing
    is read). Same checks, warning and errors."""
    s = check_scale(scale)
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < s or patch % s:
        raise DataError(patch_field, f"HR patch size must be a positive multiple of scale {s}",
                        patch)
    if not len(names):
        raise DataError(images_field, "training set is empty", 0)
    hw = np.asarray(shapes, dtype=np.int64)[:, :2]
    fits = (hw // s * s).min(axis=1) >= patch
    if not fits.all():
        small = [f"{names[i]} ({hw[i, 1]}x{hw[i, 0]})" for i in np.flatnonzero(~fits)]
        warnings.warn(f"skipping {len(small)} image(s) smaller than the {patch}x{patch} "
                      f"patch: {', '.join(small)}", stacklevel=stacklevel)
    if not fits.any():
        raise DataError(images_field, f"no image is at least {patch}x{patch} pixels",
                        len(names))
    return np.flatnonzero(fits)


class PatchSampler:
    """Seeded random (LR, HR) training patches with flips and 90-degree rotations.

    Each image's LR is made once, up front, with :func:`make_lr` (the MATLAB degradation, so
    training matches the benchmarks). A batch draws, per sample, an image (uniformly), an
    aligned crop position and one of the 8 flips/rotations. Everything comes from one
    ``numpy.random.Generator(seed)``, so one seed gives one sequence of batches on any machine.
    """

    def __init__(
        self,
        images: Sequence[NamedImage],
        scale: int,
        patch: int,
        batch: int,
        seed: int,
    ) -> None:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise DataError("batch", "must be a positive integer", batch)
        kept = usable_images(images, scale, patch)
        s = check_scale(scale)
        self.scale = s
        self.patch = patch
        self.lr_patch = patch // s
        self.batch = batch
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self.names: list[str] = [name for name, _ in kept]
        self._lr = [make_lr(hr, s) for _, hr in kept]
        self._hr = [np.ascontiguousarray(hr) for _, hr in kept]

    @classmethod
    def from_folder(
        cls, folder: str | Path, scale: int, patch: int, batch: int, seed: int
    ) -> PatchSampler:
        """A sampler over every image in ``folder`` (see :func:`list_images`)."""
        return cls(load_folder(folder), scale, patch, batch, seed)

    def __len__(self) -> int:
        """Number of usable images."""
        return len(self._lr)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lr, hr)`` float32 in [0, 1], shapes (B, 3, p/s, p/s) and (B, 3, p, p)."""
        p, s = self.lr_patch, self.scale
        lrs = np.empty((self.batch, p, p, 3), dtype=np.uint8)
        hrs = np.empty((self.batch, p * s, p * s, 3), dtype=np.uint8)
        for i in range(self.batch):
            k = int(self._rng.integers(len(self._lr)))
            lr_img, hr_img = self._lr[k], self._hr[k]
            y = int(self._rng.integers(lr_img.shape[0] - p + 1))
            x = int(self._rng.integers(lr_img.shape[1] - p + 1))
            aug = int(self._rng.integers(8))
            lrs[i] = augment(lr_img[y : y + p, x : x + p], aug)
            hrs[i] = augment(hr_img[y * s : (y + p) * s, x * s : (x + p) * s], aug)
        return to_tensor(lrs), to_tensor(hrs)


def augment(img: np.ndarray, aug: int) -> np.ndarray:
    """One of the 8 symmetries of the square: bit 0 h-flip, bit 1 v-flip, bit 2 transpose."""
    if aug & 1:
        img = img[:, ::-1]
    if aug & 2:
        img = img[::-1]
    if aug & 4:
        img = img.transpose(1, 0, 2)
    return img


def to_tensor(batch: np.ndarray) -> torch.Tensor:
    # In numpy: torch's float() of a permuted (non-contiguous) uint8 view is ~50x slower on CPU.
    out = np.ascontiguousarray(batch.transpose(0, 3, 1, 2)).astype(np.float32)
    out /= np.float32(255.0)
    return torch.from_numpy(out)
