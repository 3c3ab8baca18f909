"""The prepared training store: round trip, layouts, manifest, verification, locking, atomic
publishing, bad images; and patches read from it equal the in-memory samplers' patches."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import multiprocessing
import os
import pickle
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srnas.evaluators import store as store_mod
from srnas.evaluators.data import PatchSampler, load_image
from srnas.evaluators.patches import PatchDataset, crop_pair
from srnas.evaluators.resize import make_lr
from srnas.evaluators.store import (
    DATA_FILE,
    INDEX_FILE,
    TrainStore,
    json_digest,
    open_store,
    prepare_store,
    store_for_folders,
    store_lock,
    store_path_for,
)
from srnas.evaluators.store_patches import StorePatchDataset, StorePatchSampler
from srnas.space.errors import DataError


def _noise(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "train"
    # Written out of order, nested, with a hidden file and a hidden folder that must be ignored.
    _save(root / "b.png", _noise(70, 90, 1))
    _save(root / "sub" / "z" / "d.png", _noise(41, 53, 4))
    _save(root / "a.bmp", _noise(64, 64, 2))
    _save(root / "sub" / "c.png", _noise(100, 81, 3))
    _save(root / ".hidden.png", _noise(8, 8, 5))
    _save(root / ".cache" / "e.png", _noise(8, 8, 6))
    return root


def _one_line(err: pytest.ExceptionInfo[DataError], *needles: str) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


# -- round trip and layouts --------------------------------------------------------------------


def test_round_trip_nested_in_stable_order(folder: Path, tmp_path: Path) -> None:
    store = prepare_store([folder], tmp_path / "store", progress=False, workers=1)
    assert store.names == ["a", "b", "sub/c", "sub/z/d"]
    files = ["a.bmp", "b.png", "sub/c.png", "sub/z/d.png"]
    for i, rel in enumerate(files):
        image = store.image(i)
        assert np.array_equal(image, load_image(folder / rel))
        assert isinstance(image, np.memmap) and not image.flags.writeable  # a view, no copy
    assert store.total_bytes == (tmp_path / "store" / DATA_FILE).stat().st_size
    assert store.pixels == sum(load_image(folder / r).shape[0] * load_image(folder / r).shape[1]
                               for r in files)
    store.verify_data()
    info = store.info()
    assert info["images"] == 4 and info["bytes"] == store.total_bytes
    assert info["folders"] == [str(folder.resolve())] and info["format_version"] == 1
    # The same folders prepared by several decoding processes give the same bytes.
    again = prepare_store([folder], tmp_path / "store2", progress=False, workers=2)
    assert (tmp_path / "store2" / DATA_FILE).read_bytes() == (
        tmp_path / "store" / DATA_FILE).read_bytes()
    assert again.names == store.names
    with open(store.path / DATA_FILE, "r+b") as f:  # same size, one pixel changed
        f.seek(5)
        f.write(bytes([store.image(0)[0, 1, 2] ^ 0xFF]))
    with pytest.raises(DataError) as err:
        open_store(store.path).verify_data()
    _one_line(err, "do not match")


def test_several_folders_keep_their_order_and_names(folder: Path, tmp_path: Path) -> None:
    other = tmp_path / "Flickr2K"
    _save(other / "0001.png", _noise(33, 44, 9))
    store = prepare_store([other, folder], tmp_path / "store", progress=False, workers=1)
    assert store.names == ["Flickr2K/0001", "train/a", "train/b", "train/sub/c",
                           "train/sub/z/d"]
    assert np.array_equal(store.image(0), _noise(33, 44, 9))
    assert np.array_equal(store.image(4), _noise(41, 53, 4))


def test_store_pickles_by_path_not_by_bytes(folder: Path, tmp_path: Path) -> None:
    store = prepare_store([folder], tmp_path / "store", progress=False, workers=1)
    payload = pickle.dumps(store)
    assert len(payload) < 1000
    assert np.array_equal(pickle.loads(payload).image(2), store.image(2))


def test_existing_folder_that_is_not_a_store_is_not_overwritten(folder: Path,
                                                                tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    with pytest.raises(DataError) as info:
        prepare_store([folder], tmp_path / "mine", progress=False, workers=1)
    _one_line(info, "not a training store")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "keep me"


# -- the automatic path: manifest, rebuilds ----------------------------------------------------


def test_cache_prepares_once_then_opens_and_rebuilds_a_changed_folder(
        folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    first = store_for_folders([folder], cache, progress=False, workers=1)
    assert "preparing the training store" in capsys.readouterr().err
    assert first.path == store_path_for([folder], cache)
    second = store_for_folders([folder], cache, progress=False, workers=1)
    assert capsys.readouterr().err == ""  # opened, not prepared
    assert second.manifest_digest == first.manifest_digest

    _save(folder / "b.png", _noise(70, 90, 11))  # same name and size, new pixels and mtime
    os.utime(folder / "b.png", ns=(time.time_ns(), time.time_ns() + 10**9))
    third = store_for_folders([folder], cache, progress=False, workers=1)
    assert "changed since their store was prepared: rebuilding" in capsys.readouterr().err
    assert np.array_equal(third.image(1), _noise(70, 90, 11))
    assert np.array_equal(first.image(1), _noise(70, 90, 1))  # a mapped old store still reads
    assert sorted(p.name for p in (cache / "stores").iterdir() if not p.name.startswith(".")
                  ) == [third.path.name]  # replaced, not added


def test_cache_location_from_environment(folder: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SRNAS_CACHE", str(tmp_path / "env-cache"))
    store = store_for_folders(folder, progress=False, workers=1)
    assert store.path.parent == tmp_path / "env-cache" / "stores"
    monkeypatch.delenv("SRNAS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setitem(sys.modules, "platformdirs", None)  # the fallback without platformdirs
    assert store_path_for([folder]).parent == tmp_path / "xdg" / "srnas" / "stores"


# -- verification when opened ------------------------------------------------------------------


def test_truncated_data_file_is_one_line_and_the_cache_rebuilds(
        folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = store_for_folders([folder], tmp_path / "cache", progress=False, workers=1)
    data = store.path / DATA_FILE
    with open(data, "r+b") as f:
        f.truncate(store.total_bytes - 100)
    with pytest.raises(DataError) as info:
        open_store(store.path)
    _one_line(info, "truncated", str(store.path))
    capsys.readouterr()
    rebuilt = store_for_folders([folder], tmp_path / "cache", progress=False, workers=1)
    assert "rebuilding the training store" in capsys.readouterr().err
    assert np.array_equal(rebuilt.image(3), _noise(41, 53, 4))


def _rewrite_index(path: Path, **changes: object) -> None:
    index = json.loads((path / INDEX_FILE).read_text())
    index.update(changes)
    body = {k: v for k, v in index.items() if k != "digest"}
    index["digest"] = json_digest(body)
    (path / INDEX_FILE).write_text(json.dumps(index))


@pytest.mark.parametrize(("damage", "needle"), [
    ("version", "format version 99"),
    ("foreign", "is not an srnas-train-store"),
    ("digest", "digest mismatch"),
    ("garbage", "cannot be read"),
    ("missing", "no index.json"),
    ("offsets", "inconsistent"),
])
def test_foreign_other_version_or_damaged_index_is_one_line(
        folder: Path, tmp_path: Path, damage: str, needle: str) -> None:
    path = prepare_store([folder], tmp_path / "store", progress=False, workers=1).path
    index_path = path / INDEX_FILE
    if damage == "version":
        _rewrite_index(path, version=99)
    elif damage == "foreign":
        index_path.write_text(json.dumps({"format": "lmdb", "version": 1}))
    elif damage == "digest":
        index_path.write_text(index_path.read_text().replace('"b"', '"x"'))
    elif damage == "garbage":
        index_path.write_bytes(b"\x00\xff not json")
    elif damage == "missing":
        index_path.unlink()
    else:
        index = json.loads(index_path.read_text())
        _rewrite_index(path, offsets=[0, *index["offsets"][2:], index["offsets"][1]])
    with pytest.raises(DataError) as info:
        open_store(path)
    _one_line(info, needle)


# -- concurrent preparers, kills and full disks ------------------------------------------------


def _prepare_in_child(folder: str, cache: str) -> tuple[str, bytes]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        store = store_for_folders([folder], cache, progress=False, workers=1)
    return err.getvalue(), bytes(store.image(2))


def test_concurrent_preparers_prepare_once_the_other_waits(folder: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    out = store_path_for([folder], cache)
    out.parent.mkdir(parents=True)
    # The workers fork before the lock is taken (a forked copy of its descriptor would hold it).
    with multiprocessing.get_context("fork").Pool(2) as pool:
        # Holding the store's lock here makes both children reach it before either prepares.
        with store_lock(out, "test"):
            pending = [pool.apply_async(_prepare_in_child, (str(folder), str(cache)))
                       for _ in range(2)]
            time.sleep(1.5)
            assert not out.exists()
        results = [r.get(timeout=60) for r in pending]
    errs = [e for e, _ in results]
    assert sum("preparing the training store" in e for e in errs) == 1, errs
    assert all("waiting for another process" in e for e in errs), errs
    assert results[0][1] == results[1][1] == _noise(100, 81, 3).tobytes()


def test_full_disk_leaves_nothing_that_looks_like_a_store(
        folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "store"

    def no_space(*_: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    for target in ("posix_fallocate", "pwrite"):
        with monkeypatch.context() as m:
            m.setattr(store_mod.os, target, no_space)
            with pytest.raises(DataError) as info:
                prepare_store([folder], out, progress=False, workers=1)
        _one_line(info, "--out", "No space left on device", str(out))
        assert not out.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == [".store.lock", "train"]
    assert len(prepare_store([folder], out, progress=False, workers=1)) == 4


def test_a_kill_mid_prepare_leaves_no_complete_store_and_the_next_prepares(
        folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "store"
    # The child is SIGKILLed while writing its second image.
    script = (
        "import os, signal, sys\n"
        "from srnas.evaluators import store\n"
        "real = store._decode_into\n"
        "seen = []\n"
        "def dying(job):\n"
        "    seen.append(job)\n"
        "    if len(seen) == 2:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(job)\n"
        "store._decode_into = dying\n"
        "store.prepare_store([sys.argv[1]], sys.argv[2], progress=False, workers=1)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(folder), str(out)],
                          capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr
    assert not out.exists()
    assert any(p.name.startswith(".store.tmp-") for p in tmp_path.iterdir())  # hidden, partial
    with pytest.raises(DataError):
        open_store(out)
    store = prepare_store([folder], out, progress=False, workers=1)
    assert len(store) == 4 and np.array_equal(store.image(0), _noise(64, 64, 2))
    assert not any(p.name.startswith(".store.tmp-") for p in tmp_path.iterdir())


@pytest.mark.parametrize("kind", ["junk", "truncated"])
def test_unreadable_image_is_named_in_one_line_and_nothing_is_left(
        folder: Path, tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    good = (folder / "b.png").read_bytes()
    bad = folder / "sub" / "bad.png"
    bad.write_bytes(b"\x89PNG not an image" if kind == "junk" else good[:400])
    writes: list[object] = []
    real_write = store_mod._write
    monkeypatch.setattr(store_mod, "_write", lambda *a: writes.append(a) or real_write(*a))
    out = tmp_path / "store"
    with pytest.raises(DataError) as info:
        prepare_store([folder], out, progress=False, workers=1)
    _one_line(info, str(bad))
    if kind == "junk":
        assert writes == []  # found by the header pass, before anything is written
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".store.lock", "train"]


# -- patches from the store ----------------------------------------------------------------------


def _images() -> list[tuple[str, np.ndarray]]:
    return [("a", _noise(70, 90, 1)), ("b", _noise(64, 64, 2)), ("c", _noise(100, 81, 3)),
            ("tiny", _noise(20, 90, 7))]


@pytest.fixture
def store(tmp_path: Path) -> TrainStore:
    for name, img in _images():
        _save(tmp_path / "imgs" / f"{name}.png", img)
    return prepare_store([tmp_path / "imgs"], tmp_path / "store", progress=False, workers=1)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_store_sampler_gives_patch_samplers_batches(store: TrainStore, scale: int) -> None:
    patch = 12 * (4 // scale + 1) if scale != 3 else 33
    with warnings.catch_warnings(record=True) as mine:
        warnings.simplefilter("always")
        from_store = StorePatchSampler(store, scale, patch, batch=6, seed=5)
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        in_memory = PatchSampler(_images(), scale, patch, batch=6, seed=5)
    assert [str(w.message) for w in mine] == [str(w.message) for w in theirs]
    assert mine[0].filename == __file__  # the warning points at the caller, as PatchSampler's
    assert from_store.names == in_memory.names == ["a", "b", "c"]
    assert len(from_store) == 3
    for _ in range(4):
        (ls, hs), (lm, hm) = from_store.next_batch(), in_memory.next_batch()
        assert ls.dtype == torch.float32 and ls.shape == lm.shape
        assert torch.equal(hs, hm) and torch.equal(ls, lm)


def test_store_patches_equal_the_whole_images_lr_at_every_position(store: TrainStore) -> None:
    for scale in (2, 3, 4):
        ds = StorePatchDataset(store, scale, 4 * scale, seed=1)
        reference = PatchDataset(_images(), scale, 4 * scale, seed=1)
        whole = [make_lr(img, scale) for _, img in _images()]
        assert ds.names == reference.names == ["a", "b", "c", "tiny"]
        for index in range(60):
            k, y, x, aug = ds.draw(index)
            assert (k, y, x, aug) == reference.draw(index)
            lr, hr = ds.crop(k, y, x)
            assert np.array_equal(lr, whole[k][y:y + 4, x:x + 4]), (scale, index)
            assert np.array_equal(hr, _images()[k][1][y * scale:(y + 4) * scale,
                                                      x * scale:(x + 4) * scale])
            a, b = ds[index], reference[index]
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_crop_pair_at_the_borders_matches_make_lr() -> None:
    img = _noise(37, 50, 8)
    for scale in (2, 3, 4):
        whole = make_lr(img, scale)
        for y, x in [(0, 0), (whole.shape[0] - 3, whole.shape[1] - 3), (1, whole.shape[1] - 3)]:
            lr, _ = crop_pair(img, scale, 3, y, x)
            assert np.array_equal(lr, whole[y:y + 3, x:x + 3])


def test_opening_and_constructing_read_no_pixels(store: TrainStore,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    monkeypatch.setattr(store_mod, "load_image", lambda *_: pytest.fail("decoded"))
    opened = open_store(store.path)
    real_image = TrainStore.image
    monkeypatch.setattr(TrainStore, "image", lambda self, i: reads.append(i) or
                        real_image(self, i))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler = StorePatchSampler(opened, 4, 16, batch=3, seed=0)
        dataset = StorePatchDataset(opened, 4, 16, seed=0)
    assert reads == []  # construction touched the index only
    sampler.next_batch()
    dataset[0]
    assert len(reads) == 3 + 3  # views per sample: the sampler 1; the dataset 2 shapes + 1 crop
