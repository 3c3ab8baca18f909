"""A prepared training store: the HR images of one or more folders, decoded once, in one flat
file that every process on a node maps and shares through the page cache.

Layout: a folder holding ``images.u8`` (the images' RGB uint8 HWC bytes, concatenated, nothing
else) and ``index.json`` (per image its name, byte offset and shape; the manifest of the source
folders -- relative names, sizes, modification times -- and its digest; the format version; the
srnas version; the total size; a digest of the pixels and a SHA-256 of the index itself).

Why this format and not LMDB, npz or HDF5:

- ``numpy.memmap`` of one plain file is zero-copy: an image is a slice of the mapping, a random
  crop is a slice of that, and the pages are the kernel's page cache, so N trial processes on a
  node hold one copy between them (PSS, not RSS, shows it) and a trial's start maps a file
  instead of decoding a folder. It needs no dependency beyond numpy.
- LMDB (BasicSR's choice) is also mapped, but stores values as byte strings keyed by name:
  BasicSR must cut images into sub-images to make random access cheap, and it is one more
  compiled dependency. npz is a zip: members are not mappable when compressed and ``np.load``
  of an npz copies. HDF5 (h5py) reads through its own chunk cache, per process, so processes do
  not share decoded pages, and it adds a large dependency.
- The index is JSON so ``srnas data info`` and a person can read it; it is read once per
  process.

Images are stored whole, not cropped: cropping to a multiple of the scale is a free view when a
trial samples (as :func:`evaluators.data.usable_images` does), so one store serves every scale
and patches from it are exactly the patches the in-memory path gives for the same seed.

Publishing is atomic: the store is written into a hidden temporary folder beside the target,
fsynced and renamed into place, so a kill or a full disk never leaves a folder that looks like
a complete store (space is reserved up front, so a full disk is found before any decoding).
Concurrent preparers of one store are serialised by ``fcntl.flock`` on a lock file beside it:
the second waits, then finds the store complete and opens it. flock is node-local; on a shared
filesystem prepare once with ``srnas data prepare`` before launching.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from srnas.evaluators.data import image_errors, list_images, load_image
from srnas.evaluators.store_format import (
    DATA_FILE,
    FORMAT,
    FORMAT_VERSION,
    INDEX_FILE,
    TrainStore,
    check_train_folders,
    data_digest,
    image_digest,
    is_store,
    json_digest,
    open_store,
    os_reason,
)
from srnas.space.atomic import fsync_dir
from srnas.space.errors import DataError
from srnas.space.version import srnas_version

__all__ = [
    "CACHE_ENV",
    "FORMAT",
    "FORMAT_VERSION",
    "TrainStore",
    "default_cache_dir",
    "folder_manifest",
    "is_store",
    "open_store",
    "prepare_store",
    "store_for_folders",
    "train_manifest",
    "train_store",
]

CACHE_ENV = "SRNAS_CACHE"
_PREFIX = "srnas:"


# -- the manifest of the source folders ------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    folder: int  # index into the folders given
    rel: str  # posix path relative to its folder
    path: Path
    size: int
    mtime_ns: int


def _sources(folders: Sequence[Path]) -> list[_Source]:
    out = []
    for i, folder in enumerate(folders):
        for path in list_images(folder, recursive=True):
            st = path.stat()
            out.append(_Source(i, path.relative_to(folder).as_posix(), path, st.st_size,
                               st.st_mtime_ns))
    return out


def _manifest_rows(sources: Sequence[_Source]) -> list[list[Any]]:
    return [[s.folder, s.rel, s.size, s.mtime_ns] for s in sources]


def folder_manifest(folders: Sequence[str | Path]) -> str:
    """The digest of what the folders hold (relative names, sizes, modification times): equal
    digests mean the store made from them is still theirs."""
    return json_digest(_manifest_rows(_sources(_check_folders(folders))))


def _check_folders(folders: Sequence[str | Path] | str | Path) -> list[Path]:
    return check_train_folders(folders)


def _names(folders: Sequence[Path], sources: Sequence[_Source]) -> list[str]:
    # One folder: the relative path without suffix (load_folder's stem, plus sub-folders);
    # several: prefixed by the folder's name, so DIV2K's and Flickr2K's files stay apart.
    def name(s: _Source) -> str:
        stem = s.rel.rsplit(".", 1)[0]
        return stem if len(folders) == 1 else f"{folders[s.folder].name}/{stem}"

    return [name(s) for s in sources]


# -- preparing -------------------------------------------------------------------------------


def prepare_store(folders: Sequence[str | Path] | str | Path, out: str | Path, *,
                  progress: bool = True, workers: int | None = None,
                  field: str = "--out") -> TrainStore:
    """Decode every image of ``folders`` (recursively, stable order) into a store at ``out``
    and open it. Returns the existing store if ``out`` already holds one for these folders
    as they are now (waiting first if another process is preparing it). ``workers``
    processes decode (default: the CPUs, at most 8). Write failures (a full disk) are one
    line naming ``field`` and the reason; nothing that looks like a store is left."""
    folder_paths = _check_folders(folders)
    out = Path(out)
    sources = _sources(folder_paths)
    manifest = _manifest_rows(sources)
    digest = json_digest(manifest)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(field, f"cannot create the store's folder ({err.strerror})",
                        str(out.parent)) from err
    with store_lock(out, field):
        reason = _reason_to_prepare(out, digest)
        if reason is None:
            return open_store(out)
        _remove_temps(out)
        shapes = _headers(sources)  # a file PIL cannot read is named before anything is written
        print(f"{_PREFIX} {reason}: {len(sources)} images, {_mb(shapes)} MB decoded, into {out}",
              file=sys.stderr, flush=True)
        index = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "srnas": srnas_version(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "folders": [str(f.resolve()) for f in folder_paths],
            "manifest": manifest,
            "manifest_digest": digest,
            "names": _names(folder_paths, sources),
            "shapes": shapes,
        }
        sizes = [h * w * c for h, w, c in shapes]
        index["offsets"] = [0, *np.cumsum(sizes[:-1]).tolist()] if sizes else []
        index["total_bytes"] = int(sum(sizes))
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            index["data_sha256"] = _write(tmp, sources, index, progress, workers, field)
            if _manifest_rows(_sources(folder_paths)) != manifest:
                raise DataError(folder_paths[0], "training folder changed while its store was "
                                "being prepared: prepare it again", str(out))
            index["digest"] = json_digest(index)
            _write_file(tmp / INDEX_FILE, json.dumps(index, separators=(",", ":")).encode())
            fsync_dir(tmp)
            _publish(tmp, out)
        except OSError as err:
            raise DataError(field, f"cannot write the training store ({os_reason(err)})",
                            str(out)) from err
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return open_store(out)


def _reason_to_prepare(out: Path, digest: str) -> str | None:
    if not out.exists():
        return "preparing the training store"
    try:
        store = open_store(out)
    except DataError as err:
        if not (out / INDEX_FILE).is_file() and any(out.iterdir()):
            raise DataError(out, "exists and is not a training store: not overwritten",
                            str(out)) from err
        return f"rebuilding the training store ({err.rule})"
    if store.manifest_digest != digest:
        return "the training folders changed since their store was prepared: rebuilding it"
    return None


def _mb(shapes: Sequence[Sequence[int]]) -> str:
    return f"{sum(math.prod(s) for s in shapes) / 1e6:,.1f}"


def _headers(sources: Sequence[_Source]) -> list[list[int]]:
    shapes = []
    for s in sources:
        with image_errors(s.path), Image.open(s.path) as img:
            w, h = img.size
        if min(w, h) < 1:
            raise DataError(s.path, "must decode to a non-empty RGB image", (h, w))
        shapes.append([h, w, 3])
    return shapes


def _write(tmp: Path, sources: Sequence[_Source], index: dict[str, Any], progress: bool,
           workers: int | None, field: str) -> str:
    """Decode into ``tmp/images.u8`` (space reserved first); returns the pixels' digest."""
    tmp.mkdir()
    data = tmp / DATA_FILE
    fd = os.open(data, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        _reserve(fd, index["total_bytes"])
        jobs = [(str(s.path), off, tuple(shape))
                for s, off, shape in zip(sources, index["offsets"], index["shapes"], strict=True)]
        n = workers or min(os.cpu_count() or 1, 8)
        bar = _bar(len(jobs), progress)
        digests = []
        # A daemonic process (a multiprocessing pool's worker) may not start children.
        if n <= 1 or len(jobs) < 2 or multiprocessing.current_process().daemon:
            _open_worker(str(data))
            try:
                for job in jobs:
                    digests.append(_decode_into(job))
                    bar.update(1)
            finally:
                _close_worker()
        else:
            ctx = multiprocessing.get_context(
                "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
            pool = ProcessPoolExecutor(n, mp_context=ctx, initializer=_open_worker,
                                       initargs=(str(data),))
            try:
                for d in pool.map(_decode_into, jobs, chunksize=1):
                    digests.append(d)
                    bar.update(1)
            finally:  # on a bad image, do not decode the rest before saying so
                pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        os.fsync(fd)
    finally:
        os.close(fd)
    return data_digest(digests)


def _reserve(fd: int, size: int) -> None:
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
        os.ftruncate(fd, size)  # filesystems without fallocate: a full disk shows on write


_worker_fd: int | None = None


def _open_worker(data: str) -> None:
    global _worker_fd
    _worker_fd = os.open(data, os.O_WRONLY)


def _close_worker() -> None:
    global _worker_fd
    if _worker_fd is not None:
        os.close(_worker_fd)
        _worker_fd = None


def _decode_into(job: tuple[str, int, tuple[int, int, int]]) -> bytes:
    path, offset, shape = job
    arr = load_image(path)
    if arr.shape != shape:
        raise DataError(path, f"decodes to {arr.shape}, its header says {shape}", arr.shape)
    assert _worker_fd is not None
    view = memoryview(np.ascontiguousarray(arr)).cast("B")
    done = 0
    while done < len(view):
        done += os.pwrite(_worker_fd, view[done:], offset + done)
    return image_digest(arr)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, progress: bool) -> Any:
    if not progress:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, unit="image", desc="decoding", file=sys.stderr)


def _write_file(path: Path, payload: bytes) -> None:
    with open(path, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())


def _publish(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an old store there is moved aside first and removed after
    (processes that still map its data keep reading it: unlinked files stay mapped)."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}-{os.urandom(4).hex()}"
        os.rename(out, old)
    os.rename(tmp, out)
    fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_temps(out: Path) -> None:
    # Called under the store's lock: no other process is writing, so these are a killed one's.
    for pattern in (f".{out.name}.tmp-*", f".{out.name}.old-*"):
        for stale in out.parent.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def store_lock(out: Path, field: str) -> Iterator[None]:
    lock_path = out.parent / f".{out.name}.lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise DataError(field, f"cannot create the store's lock file ({os_reason(err)})",
                        str(lock_path)) from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{_PREFIX} waiting for another process preparing {out}", file=sys.stderr,
                  flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the flock


# -- the automatic path ----------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$SRNAS_CACHE``, else the platform's user cache folder for srnas (node-local)."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    try:
        from platformdirs import user_cache_dir
    except ImportError:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "srnas"
    return Path(user_cache_dir("srnas"))


def store_path_for(folders: Sequence[str | Path], cache_dir: str | Path | None = None) -> Path:
    """Where the automatic store of ``folders`` lives: one per list of folders (by resolved
    path), so a changed folder replaces its store rather than adding one to the cache."""
    key = json_digest([str(f.resolve()) for f in _check_folders(folders)])[:20]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "stores" / key


def store_for_folders(folders: Sequence[str | Path] | str | Path,
                      cache_dir: str | Path | None = None, *, manifest: str | None = None,
                      progress: bool = True, workers: int | None = None) -> TrainStore:
    """The store of ``folders`` in the node's cache, prepared on first use (once per node:
    concurrent callers wait for the first) and rebuilt, saying so, when a folder's manifest
    (names, sizes, modification times) changed or the store is damaged or from another format.

    ``manifest``: the folders' :func:`folder_manifest` as the caller already knows it (a
    search's driver computes it once): a store with that manifest is opened without listing
    the folders, so a trial's cost does not grow with the number of images.
    """
    folder_paths = _check_folders(folders)
    out = store_path_for(folder_paths, cache_dir)
    try:
        store = open_store(out)
        if store.manifest_digest == (manifest or folder_manifest(folder_paths)):
            return store
    except DataError:
        pass
    return prepare_store(folder_paths, out, progress=progress, workers=workers,
                         field=CACHE_ENV)


def train_store(folders: Sequence[str | Path] | str | Path,
                cache_dir: str | Path | None = None, *, manifest: str | None = None,
                progress: bool = True, workers: int | None = None) -> TrainStore:
    """The store training reads for ``--train folders``: a folder that is a prepared store
    (``srnas data prepare --out``, e.g. on shared storage) is opened as it is; image folders
    go through :func:`store_for_folders` (the node's cache)."""
    folder_paths = _check_folders(folders)  # a store only alone
    if is_store(folder_paths[0]):
        return open_store(folder_paths[0])
    return store_for_folders(folder_paths, cache_dir, manifest=manifest, progress=progress,
                             workers=workers)


def train_manifest(folders: Sequence[str | Path] | str | Path) -> str | None:
    """What a driver hands its trials for :func:`train_store` (one listing, in the driver):
    the folders' manifest, or ``None`` for a prepared store (nothing to compare)."""
    folder_paths = _check_folders(folders)
    if any(is_store(f) for f in folder_paths):
        return None
    return folder_manifest(folder_paths)
