"""Training patches read from a prepared store (:mod:`evaluators.store`): the in-memory
samplers' batches, without decoding or resizing anything up front.

- :class:`StorePatchSampler` gives :class:`evaluators.data.PatchSampler`'s batches (a trial's
  brief training): the same draws from one ``numpy.random.Generator(seed)`` in the same order,
  and each LR patch made from its HR crop plus a margin (:func:`evaluators.patches.crop_pair`),
  which equals that crop of the whole image's MATLAB-bicubic LR. So for one seed the batches
  are PatchSampler's on the decoded images, bit for bit.
- :class:`StorePatchDataset` is :class:`evaluators.patches.PatchDataset` (long runs, any number
  of loader workers) over the store.

Construction reads only the store's index (the images' shapes): no pixel is read until a batch
is drawn, and then only the crops' pages, which the page cache shares between processes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from srnas.evaluators.data import NamedImage, PatchSampler, augment, to_tensor, usable_indices
from srnas.evaluators.patches import PatchDataset, crop_pair
from srnas.evaluators.resize import check_scale
from srnas.evaluators.store import TrainStore
from srnas.space.errors import DataError

__all__ = ["StorePatchDataset", "StorePatchSampler", "patch_dataset", "patch_sampler"]


class _CroppedImages(Sequence[np.ndarray]):
    """The usable images of a store, each a view cropped to a multiple of the scale (made on
    access, so holding this costs nothing per image)."""

    def __init__(self, store: TrainStore, keep: np.ndarray, scale: int) -> None:
        self.store, self.keep, self.scale = store, keep, scale
        self.lr_shapes = store.shapes[keep, :2] // scale

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, k: int) -> np.ndarray:  # type: ignore[override]
        h, w = (int(v) * self.scale for v in self.lr_shapes[k])
        return self.store.image(int(self.keep[k]))[:h, :w]


def _usable(store: TrainStore, scale: int, patch: int, patch_field: str, images_field: str
            ) -> _CroppedImages:
    s = check_scale(scale)
    keep = usable_indices(store.names, store.shapes, s, patch, patch_field=patch_field,
                          images_field=images_field, stacklevel=4)
    return _CroppedImages(store, keep, s)


class StorePatchSampler:
    """:class:`evaluators.data.PatchSampler` over a store (same constructor checks, same
    batches for the same seed)."""

    def __init__(self, store: TrainStore, scale: int, patch: int, batch: int, seed: int
                 ) -> None:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise DataError("batch", "must be a positive integer", batch)
        self._images = _usable(store, scale, patch, "patch", "images")
        self.scale = self._images.scale
        self.patch = patch
        self.lr_patch = patch // self.scale
        self.batch = batch
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    @property
    def names(self) -> list[str]:
        names = self._images.store.names
        return [names[int(i)] for i in self._images.keep]

    def __len__(self) -> int:
        """Number of usable images."""
        return len(self._images)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lr, hr)`` float32 in [0, 1], shapes (B, 3, p/s, p/s) and (B, 3, p, p)."""
        p, s = self.lr_patch, self.scale
        lr_shapes = self._images.lr_shapes
        lrs = np.empty((self.batch, p, p, 3), dtype=np.uint8)
        hrs = np.empty((self.batch, p * s, p * s, 3), dtype=np.uint8)
        for i in range(self.batch):
            # The draws of PatchSampler.next_batch, in its order.
            k = int(self._rng.integers(len(self._images)))
            y = int(self._rng.integers(int(lr_shapes[k, 0]) - p + 1))
            x = int(self._rng.integers(int(lr_shapes[k, 1]) - p + 1))
            aug = int(self._rng.integers(8))
            lr, hr = crop_pair(self._images[k], s, p, y, x)
            lrs[i] = augment(lr, aug)
            hrs[i] = augment(hr, aug)
        return to_tensor(lrs), to_tensor(hrs)


class StorePatchDataset(PatchDataset):
    """:class:`evaluators.patches.PatchDataset` over a store: sample ``i`` is the same as
    PatchDataset's over the decoded images."""

    def __init__(self, store: TrainStore, scale: int, patch: int, seed: int) -> None:
        # PatchDataset.__init__ would take decoded images; its draw and crop read only _hr.
        images = _usable(store, scale, patch, "patch_size", "train")
        self.scale, self.patch, self.seed = images.scale, patch, seed
        self.names = [store.names[int(i)] for i in images.keep]
        self._hr = images  # type: ignore[assignment]


def patch_sampler(train: TrainStore | Sequence[NamedImage], scale: int, patch: int,
                  batch: int, seed: int) -> StorePatchSampler | PatchSampler:
    """A trial's sampler over its training data: a store's (nothing read up front) or, for
    decoded images (the built-in photographs), :class:`~evaluators.data.PatchSampler` (LR
    made up front). The same batches either way for the same images and seed."""
    if isinstance(train, TrainStore):
        return StorePatchSampler(train, scale, patch, batch, seed)
    return PatchSampler(list(train), scale, patch, batch, seed)


def patch_dataset(train: TrainStore | Sequence[NamedImage], scale: int, patch: int,
                  seed: int) -> PatchDataset:
    """``srnas train``'s dataset over its training data (a store, or decoded images)."""
    if isinstance(train, TrainStore):
        return StorePatchDataset(train, scale, patch, seed)
    return PatchDataset(list(train), scale, patch, seed)
