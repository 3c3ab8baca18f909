"""Training patches for long runs: a torch ``Dataset`` indexed by global sample number, so that
any number of loader workers, and a run resumed at any step, see the same patches.

Sample ``i`` of a run draws its image (uniformly), its aligned crop and one of the 8 flips and
rotations from ``numpy.random.default_rng((seed, i))`` and from nothing else: batch ``b`` is
samples ``b * batch .. (b + 1) * batch - 1``, which worker makes it does not matter, and
resuming at step ``k`` is starting the batch sampler at ``k``. The data's whole random state is
(seed, next step).

Only the HR images are held in memory; each sample's LR patch is made from its HR crop plus a
margin of ``LR_MARGIN`` LR pixels (clipped at the image border), which gives exactly the LR
pixels :func:`evaluators.resize.make_lr` makes from the whole image: the antialiased cubic
kernel reads 2 * scale HR pixels either side of an LR pixel's centre, and where the margin is
clipped the crop's border is the image's, padded the same way (tested). A folder of
DIV2K-sized photographs then costs its decoded size once (shared with forked workers), not an
up-front resize of every image.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from srnas.evaluators.data import NamedImage, augment, usable_images
from srnas.evaluators.resize import check_scale, make_lr

LR_MARGIN = 3  # LR pixels of context around a crop; 2 is the least that keeps LR exact


class PatchDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """``dataset[i]``: sample ``i``'s (LR, HR) uint8 patches, channels first:
    (3, p/s, p/s) and (3, p, p)."""

    def __init__(self, images: Sequence[NamedImage], scale: int, patch: int, seed: int) -> None:
        kept = usable_images(images, scale, patch, patch_field="patch_size",
                             images_field="train")
        self.scale, self.patch, self.seed = check_scale(scale), patch, seed
        self.names = [name for name, _ in kept]
        # Views, not copies: the images stay in memory once (load_data caches them too).
        self._hr = [hr for _, hr in kept]

    def __len__(self) -> int:
        """Usable images (samples are unbounded: any index is valid)."""
        return len(self._hr)

    def draw(self, index: int) -> tuple[int, int, int, int]:
        """Sample ``index``'s (image, LR row, LR column, symmetry 0-7)."""
        rng = np.random.default_rng((self.seed, int(index)))
        s, p = self.scale, self.patch // self.scale
        k = int(rng.integers(len(self._hr)))
        y = int(rng.integers(self._hr[k].shape[0] // s - p + 1))
        x = int(rng.integers(self._hr[k].shape[1] // s - p + 1))
        return k, y, x, int(rng.integers(8))

    def crop(self, k: int, y: int, x: int) -> tuple[np.ndarray, np.ndarray]:
        """(LR, HR) HxWx3 uint8 patches of image ``k`` at LR position (y, x), unaugmented."""
        return crop_pair(self._hr[k], self.scale, self.patch // self.scale, y, x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        k, y, x, aug = self.draw(index)
        lr, hr = self.crop(k, y, x)
        return _chw(augment(lr, aug)), _chw(augment(hr, aug))


def crop_pair(hr: np.ndarray, scale: int, lr_patch: int, y: int, x: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """(LR, HR) patches of ``hr`` (cropped to a multiple of ``scale``) at LR position (y, x):
    the LR made from the HR crop plus ``LR_MARGIN`` (equal to that crop of the whole image's
    :func:`make_lr`). Reads only the crop and its margin, so ``hr`` may be a mapped file."""
    s, p, m = scale, lr_patch, LR_MARGIN
    y0, x0 = max(y - m, 0), max(x - m, 0)
    y1, x1 = min(y + p + m, hr.shape[0] // s), min(x + p + m, hr.shape[1] // s)
    lr = make_lr(hr[y0 * s:y1 * s, x0 * s:x1 * s], s)[y - y0:y - y0 + p, x - x0:x - x0 + p]
    return lr, hr[y * s:(y + p) * s, x * s:(x + p) * s]


def _chw(img: np.ndarray) -> torch.Tensor:
    # Transposed here, in the worker: a permuted uint8 view converts to float ~50x slower.
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


class StepBatches(Sampler[list[int]]):
    """The sample numbers of steps ``start .. stop - 1``, one list of ``batch`` per step."""

    def __init__(self, batch: int, start: int, stop: int) -> None:
        self.batch, self.start, self.stop = batch, start, stop

    def __iter__(self) -> Iterator[list[int]]:
        b = self.batch
        for step in range(self.start, self.stop):
            yield list(range(step * b, (step + 1) * b))

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)


def batch_loader(dataset: PatchDataset, batch: int, start: int, stop: int, *, workers: int = 0,
                 pin_memory: bool = False) -> DataLoader:
    """Batches of steps ``start .. stop - 1`` as uint8 (lr, hr) tensors, made by ``workers``
    processes (0: in this one). Workers are forked where the platform allows, so the decoded
    images are shared with them rather than pickled once per worker."""
    context = None
    if workers and "fork" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("fork")
    return DataLoader(dataset, batch_sampler=StepBatches(batch, start, stop),
                      num_workers=workers, pin_memory=pin_memory,
                      multiprocessing_context=context,
                      prefetch_factor=4 if workers else None)


__all__ = ["LR_MARGIN", "PatchDataset", "StepBatches", "batch_loader", "crop_pair"]
