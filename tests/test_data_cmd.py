"""Training data at scale, end to end: ``srnas data prepare`` / ``info``, trials and ``srnas
train`` reading the prepared store, several ``--train`` folders.

The claims checked on work done, not on timings: a trial on a prepared store decodes no image
and lists no folder, however many images it holds; concurrent trials prepare one store once;
a changed folder is rebuilt, saying so."""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from PIL import Image

from srnas.evaluators import store as store_mod
from srnas.evaluators.data import load_image
from srnas.evaluators.evaluate import DataSpec, evaluate, load_data
from srnas.evaluators.recipe import Recipe
from srnas.evaluators.store import open_store, store_path_for, train_manifest
from srnas.evaluators.store_patches import StorePatchSampler
from srnas.space.presets import get_preset
from tests.cli import assert_usage_error, run


def _noise(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _folder(root: Path, n: int, seed: int = 0, nested: bool = True) -> Path:
    """``n`` small images, some in a sub-folder (LSDIR's layout)."""
    for i in range(n):
        sub = root / "sub" if nested and i % 2 else root
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_noise(40 + i, 50 + 2 * i, seed + i)).save(sub / f"{i:03d}.png")
    return root


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("SRNAS_CACHE", str(path))
    return path


# -- srnas data prepare / info -------------------------------------------------------------------


def test_prepare_then_info_then_up_to_date_then_a_changed_folder_is_rebuilt(
        tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path / "train", 5)
    code, out, err = run(capsys, "data", "prepare", str(folder))
    assert code == 0, err
    where = store_path_for([folder], cache)  # where a search's trials will look
    assert f"prepared {where}" in out and "3.000 MB per megapixel" in out
    assert "preparing the training store: 5 images" in err and "decoding" in err  # tqdm

    code, out, _ = run(capsys, "data", "info", str(where), "--format", "json", "--verify")
    info = json.loads(out)
    files = sorted(folder.rglob("*.png"))
    sizes = [Image.open(p).size for p in files]  # independent truth: the files' headers
    assert info["images"] == 5 and info["verified"] is True
    assert info["bytes"] == sum(w * h * 3 for w, h in sizes)
    assert info["megapixels"] == pytest.approx(sum(w * h for w, h in sizes) / 1e6)
    assert info["folders"] == [str(folder.resolve())] and info["srnas"]
    assert info["manifest_digest"] == train_manifest([folder])
    # The training folders name their cached store as well as its path does.
    code, text, _ = run(capsys, "data", "info", str(folder))
    assert code == 0 and text.startswith("store") and str(where) in text and "manifest" in text

    code, out, err = run(capsys, "data", "prepare", str(folder))
    assert code == 0 and "is up to date" in out and "preparing" not in err

    Image.fromarray(_noise(60, 60, 99)).save(folder / "sub" / "new.png")
    code, out, err = run(capsys, "data", "prepare", str(folder))
    assert code == 0 and f"prepared {where}" in out
    assert "changed since their store was prepared: rebuilding" in err
    assert len(open_store(where)) == 6


def test_prepare_out_is_a_store_train_reads_as_it_is(
        tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _folder(tmp_path / "A", 3), _folder(tmp_path / "B", 2, seed=10)
    out_store = tmp_path / "shared" / "df2k.store"
    code, out, _ = run(capsys, "data", "prepare", str(a), str(b), "--out", str(out_store))
    assert code == 0 and f"--train {out_store}" in out
    store = open_store(out_store)
    assert store.names == ["A/000", "A/002", "A/sub/001", "B/000", "B/sub/001"]
    # --train STORE: opened as it is, nothing prepared in the cache.
    train, _ = load_data(DataSpec(str(out_store)), 2)
    assert train.path == out_store and not cache.exists()
    # A store is a whole training set: with another folder it is one line.
    assert_usage_error(capsys, "search", "--trials", "1", "--train", str(out_store),
                       "--train", str(a), needles=(
                           "srnas search: error: --train: a prepared store must be the only "
                           "training folder", str(out_store)))


@pytest.mark.parametrize(("argv", "needles"), [
    (["data", "prepare", "MISSING"], ("srnas data: error: DIR: must be an existing folder",)),
    (["data", "prepare", "{a}", "{a}/"], ("DIR: must not name a folder twice",)),
    (["data", "prepare", "{empty}"], ("folder holds no images",)),
    (["data", "prepare", "{a}", "--workers", "0"], ("--workers: must be a positive integer",)),
    (["data", "prepare", "{a}", "--out", "{a}"], ("exists and is not a training store",)),
    (["data", "info", "{a}"], ("PATH: no store of these folders in the cache",
                               "srnas data prepare")),
    (["data", "info", "{damaged}"], ("store index is damaged",)),
    (["data", "info", "{a}", "--format", "yaml"], ("--format: must be one of",)),
    (["search", "--train", "{a}", "--train", "{a}"], ("--train: must not name a folder twice",)),
])
def test_bad_input_is_one_line(tmp_path: Path, cache: Path, argv: list[str],
                               needles: tuple[str, ...],
                               capsys: pytest.CaptureFixture[str]) -> None:
    a = _folder(tmp_path / "a", 2)
    (tmp_path / "empty").mkdir()
    damaged = tmp_path / "damaged"
    store_mod.prepare_store([a], damaged, progress=False)
    index = json.loads((damaged / "index.json").read_text())
    index["names"][0] = "forged"
    (damaged / "index.json").write_text(json.dumps(index))
    subs = {"a": str(a), "empty": str(tmp_path / "empty"), "damaged": str(damaged)}
    assert_usage_error(capsys, *(x.format(**subs) for x in argv), needles=needles)


# -- a trial's data phase ------------------------------------------------------------------------


@contextlib.contextmanager
def _watch(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list]]:
    """Every image file opened (PIL) and every folder listing made for a store."""
    seen: dict[str, list] = {"opened": [], "listed": []}
    real_open, real_sources = PIL.Image.open, store_mod._sources

    def opened(fp: object, *args: object, **kwargs: object) -> PIL.Image.Image:
        seen["opened"].append(str(fp))
        return real_open(fp, *args, **kwargs)  # type: ignore[arg-type]

    def listed(folders: object) -> object:
        seen["listed"].append(folders)
        return real_sources(folders)  # type: ignore[arg-type]

    monkeypatch.setattr(PIL.Image, "open", opened)
    monkeypatch.setattr(store_mod, "_sources", listed)
    yield seen


@pytest.mark.parametrize("n", [3, 24])
def test_a_trial_on_a_prepared_store_decodes_no_image_and_lists_no_folder(
        tmp_path: Path, cache: Path, n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _folder(tmp_path / "train", n)
    val = _folder(tmp_path / "val", 1, nested=False)
    store_mod.store_for_folders([folder], progress=False)  # srnas data prepare, or trial one
    # What a search's driver hands its trials: the manifest, listed once, in the driver.
    data = DataSpec(str(folder), str(val), train_manifest([folder]), str(cache))
    with _watch(monkeypatch) as seen:
        r = evaluate(get_preset("tiny", 2), Recipe.brief(steps=2, batch_size=2, patch_size=16),
                     data, input_hw=(16, 16))
    assert r.status == "ok" and r.steps == 2
    assert any(str(val) in p for p in seen["opened"])  # the watch sees what is decoded...
    assert not [p for p in seen["opened"] if str(folder) in p]  # ...and no training image
    assert seen["listed"] == []  # and no training folder listed, for 3 images as for 24
    assert "data" in r.phase_seconds


def test_a_trial_batch_reads_the_store_as_the_decoded_images(tmp_path: Path,
                                                             cache: Path) -> None:
    folder = _folder(tmp_path / "train", 4)
    train, _ = load_data(DataSpec(str(folder)), 2)
    sampler = StorePatchSampler(train, 2, 16, 3, seed=7)
    lr, hr = sampler.next_batch()
    assert hr.shape == (3, 3, 16, 16) and lr.shape == (3, 3, 8, 8)
    # Each HR patch is a crop of one of the folder's images (decoded here independently).
    images = [load_image(p) for p in sorted(folder.rglob("*.png"))]
    patches = (hr.numpy() * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)

    def is_crop(patch: np.ndarray) -> bool:
        for img in images:
            for sym in range(8):
                p = patch.transpose(1, 0, 2) if sym & 4 else patch
                p = p[::-1] if sym & 2 else p
                p = p[:, ::-1] if sym & 1 else p
                for y in range(0, img.shape[0] - 15, 2):
                    for x in range(0, img.shape[1] - 15, 2):
                        if np.array_equal(img[y:y + 16, x:x + 16], p):
                            return True
        return False

    assert all(is_crop(p) for p in patches)


def _trial_data_phase(folder: str, manifest: str, cache: str) -> str:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        load_data(DataSpec(folder, None, manifest, cache), 2)
    return err.getvalue()


def test_concurrent_trials_on_one_node_prepare_the_store_once(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "train", 6)
    cache = tmp_path / "cache"
    manifest = train_manifest([folder])
    with multiprocessing.get_context("fork").Pool(3) as pool:
        errs = pool.starmap(_trial_data_phase, [(str(folder), manifest, str(cache))] * 3)
    assert sum("preparing the training store" in e for e in errs) == 1, errs
    # One store and its lock file; no temporary folder left behind.
    left = sorted(p.name for p in (cache / "stores").iterdir())
    key = store_path_for([folder], cache).name
    assert left == [f".{key}.lock", key]


def test_a_trial_rebuilds_a_changed_folders_store_and_says_so(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path / "train", 3)
    cache = tmp_path / "cache"
    store_mod.store_for_folders([folder], cache, progress=False)
    os.utime(folder / "000.png", ns=(1, 1))  # same bytes, another modification time
    capfd.readouterr()
    train, _ = load_data(DataSpec(str(folder), None, train_manifest([folder]), str(cache)), 2)
    assert "training folders changed since their store was prepared: rebuilding" in \
        capfd.readouterr().err
    assert train.manifest_digest == train_manifest([folder])


# -- several --train folders ----------------------------------------------------------------------


def test_several_train_folders_reach_the_trial_in_order(tmp_path: Path, cache: Path) -> None:
    from srnas.search.settings import SearchSettings
    from srnas.search.trainable import trial_data

    a, b = _folder(tmp_path / "DIV2K", 2), _folder(tmp_path / "Flickr2K", 3, seed=5)
    settings = SearchSettings(train=[str(a), str(b)], trials=1)
    assert settings.train == (str(a), str(b))
    assert settings.measurement("cpu")["train_data"] == [str(a.resolve()), str(b.resolve())]
    one = SearchSettings(train=[str(a)], trials=1)  # one folder: recorded as before
    assert one.train == str(a) and one.measurement("cpu")["train_data"] == str(a.resolve())
    data = trial_data(settings)
    assert data.train_folders == (str(a.resolve()), str(b.resolve()))
    assert data.cache == str(cache)
    train, _ = load_data(data, 2)
    assert train.names == ["DIV2K/000", "DIV2K/sub/001", "Flickr2K/000", "Flickr2K/002",
                           "Flickr2K/sub/001"]


def test_srnas_train_reads_several_folders_and_resume_keeps_them(
        tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _folder(tmp_path / "a", 2), _folder(tmp_path / "b", 2, seed=3)
    out = tmp_path / "run"
    flags = ["--scale", "2", "--batch-size", "2", "--patch-size", "16",
             "--checkpoint-every", "2", "--train", str(a), "--train", str(b)]
    code, stdout, err = run(capsys, "train", "tiny", "--steps", "2", *flags, "--out", str(out))
    assert code == 0, err
    assert "(4 images)" in stdout
    data = json.loads((out / "train.json").read_text())["data"]
    assert data["train"] == [str(a.resolve()), str(b.resolve())]
    # --resume with the same folders is accepted (nothing left to do); another set is refused.
    code, stdout, err = run(capsys, "train", "--out", str(out), "--resume", "--train", str(a),
                            "--train", str(b))
    assert code == 0 and "already trained" in stdout, err
    assert_usage_error(capsys, "train", "--out", str(out), "--resume", "--train", str(a),
                       needles=("--train: cannot change on resume",))


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_search_over_two_train_folders_trains_on_their_store(
        tmp_path: Path, cache: Path, ray_session: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    import optuna

    from tests.conftest import SMALL_SPACE_YAML

    a, b = _folder(tmp_path / "a", 2), _folder(tmp_path / "b", 2, seed=3)
    space = tmp_path / "space.yaml"
    space.write_text(SMALL_SPACE_YAML.replace("patch_size: 32", "patch_size: 16"))
    db = f"sqlite:///{tmp_path / 'study.db'}"
    code, _, err = run(capsys, "search", "--storage", db, "--study", "t", "--space", str(space),
                       "--steps", "2", "--input", "16x16", "--scale", "2", "--trials", "2",
                       "--concurrency", "2", "--scheduler", "fifo", "--train", str(a),
                       "--train", str(b))
    assert code == 0, err
    study = optuna.load_study(study_name="t", storage=db)
    assert study.user_attrs["measurement"]["train_data"] == [str(a.resolve()),
                                                             str(b.resolve())]
    done = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(done) == 2 and all(t.user_attrs["phase_seconds"]["data"] >= 0 for t in done)
    # The trials' one store (prepared once, by whichever came first) holds both folders.
    where = store_path_for([a, b], cache)
    assert sorted(p.name for p in (cache / "stores").iterdir()) == [f".{where.name}.lock",
                                                                    where.name]
    assert [n.split("/")[0] for n in open_store(where).names] == ["a", "a", "b", "b"]
