"""A prepared training store as read: its format, :class:`TrainStore` and :func:`open_store`
(verified when opened). Preparing one is :mod:`evaluators.store`; this half imports nothing of
srnas but ``space``, so :mod:`evaluators.data` can recognise a store among training folders.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from srnas.evaluators.train_folders import (
    INDEX_FILE,
    as_folders,
    check_train_folders,
    is_store,
    one_or_more,
)
from srnas.space.errors import DataError

__all__ = ["DATA_FILE", "FORMAT", "FORMAT_VERSION", "INDEX_FILE", "TrainStore", "as_folders",
           "check_train_folders", "is_store", "one_or_more", "open_store"]

FORMAT = "srnas-train-store"
FORMAT_VERSION = 1
DATA_FILE = "images.u8"


def json_digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


def os_reason(err: OSError) -> str:
    return err.strerror or type(err).__name__


class TrainStore:
    """An opened, verified store: ``len(store)`` images, ``store.names``, ``store.shapes``
    (N x 3), and ``store.image(i)``, a read-only view of the mapping (nothing is copied)."""

    def __init__(self, path: Path, index: dict[str, Any], data: BinaryIO) -> None:
        self.path = path
        self.index = index
        self.names: list[str] = index["names"]
        self.shapes = np.asarray(index["shapes"], dtype=np.int64).reshape(-1, 3)
        self.offsets = np.asarray(index["offsets"], dtype=np.int64)
        self.total_bytes: int = index["total_bytes"]
        self.manifest_digest: str = index["manifest_digest"]
        self._data = np.memmap(data, dtype=np.uint8, mode="r", shape=(self.total_bytes,))

    def __len__(self) -> int:
        return len(self.names)

    def image(self, i: int) -> np.ndarray:
        """Image ``i`` as a read-only (H, W, 3) uint8 view of the mapped file."""
        h, w, c = (int(v) for v in self.shapes[i])
        start = int(self.offsets[i])
        return self._data[start:start + h * w * c].reshape(h, w, c)

    @property
    def pixels(self) -> int:
        return int((self.shapes[:, 0] * self.shapes[:, 1]).sum())

    def info(self) -> dict[str, Any]:
        """What the store holds, for ``srnas data info``."""
        index = self.index
        return {"path": str(self.path), "images": len(self), "megapixels": self.pixels / 1e6,
                "bytes": self.total_bytes, "folders": index["folders"],
                "format_version": index["version"], "srnas": index["srnas"],
                "created": index["created"], "manifest_digest": self.manifest_digest}

    def verify_data(self) -> None:
        """Read every byte and check the pixels' digest (O(size): for ``srnas data info``)."""
        digests = (image_digest(self.image(i)) for i in range(len(self)))
        if data_digest(digests) != self.index["data_sha256"]:
            raise DataError(self.path, "store's pixels do not match its index: prepare it again",
                            str(self.path / DATA_FILE))

    # Pickled by path: a mapping must not be pickled as a copy of its bytes (spawned workers).
    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        other = open_store(state["path"])
        self.__dict__.update(other.__dict__)


def data_digest(image_digests: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for d in image_digests:
        h.update(d)
    return h.hexdigest()


def image_digest(arr: np.ndarray) -> bytes:
    return hashlib.sha256(np.ascontiguousarray(arr).data).digest()


def open_store(path: str | Path) -> TrainStore:
    """Open and verify a store (index parses and is intact, format version matches, data file
    has the index's size); anything else is a one-line :class:`DataError` naming ``path``."""
    path = Path(path)
    index_path = path / INDEX_FILE
    if not index_path.is_file():
        raise DataError(path, f"is not a training store (no {INDEX_FILE})", str(path))
    # Both files are opened through one descriptor of the folder: a store replaced meanwhile
    # (renamed aside, see _publish) cannot pair one version's index with another's pixels.
    try:
        folder_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as err:
        raise DataError(path, "store cannot be opened", os_reason(err)) from err
    try:
        index = _read_index(path, folder_fd)
        try:
            data_fd = os.open(DATA_FILE, os.O_RDONLY, dir_fd=folder_fd)
        except OSError as err:
            raise DataError(path, f"store has no readable {DATA_FILE}: prepare it again",
                            os_reason(err)) from err
    finally:
        os.close(folder_fd)
    with open(data_fd, "rb") as data:
        size = os.fstat(data.fileno()).st_size
        try:
            total = int(index["total_bytes"])
            if size != total:
                raise DataError(path, f"store data file is truncated: {size} of {total} bytes: "
                                "prepare it again", str(path / DATA_FILE))
            store = TrainStore(path, index, data)
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, DataError):
                raise
            raise DataError(path, "store index is incomplete: prepare it again",
                            str(index_path)) from err
    sizes = store.shapes.prod(axis=1)
    if (len(store.names) != len(sizes) or len(store.offsets) != len(sizes) or not len(sizes)
            or not np.array_equal(store.offsets, np.cumsum(sizes) - sizes)
            or int(sizes.sum()) != total):
        raise DataError(path, "store index is inconsistent: prepare it again", str(index_path))
    return store


def _read_index(path: Path, folder_fd: int) -> dict[str, Any]:
    try:
        with open(os.open(INDEX_FILE, os.O_RDONLY, dir_fd=folder_fd), "rb") as f:
            index = json.loads(f.read())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(path, "store index cannot be read: prepare it again", str(err)) from err
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise DataError(path, f"is not an {FORMAT}", str(path / INDEX_FILE))
    if index.get("version") != FORMAT_VERSION:
        raise DataError(path, f"store has format version {index.get('version')!r}, this srnas "
                        f"reads {FORMAT_VERSION}: prepare it again", index.get("srnas"))
    body = {k: v for k, v in index.items() if k != "digest"}
    if index.get("digest") != json_digest(body):
        raise DataError(path, "store index is damaged (digest mismatch): prepare it again",
                        str(path / INDEX_FILE))
    return index


