"""The writers of ``export --out``, ``plot --out`` and ``data prepare --out`` against a full disk
(issue 23, items 8 and 14): one line naming the flag, exit 2, nothing new left behind, and a file
that was there before kept as it was (each of them writes through a temporary file and a
rename). ``train`` and ``export --onnx`` have their own tests (test_reliability_train.py,
test_reliability_export.py)."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli import assert_one_line, assert_usage_error, run
from tests.fabricate import make_known_study
from tests.tmpfs import tmpfs


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs filled to the last byte by ``filler`` (the caller may first put a file
    of its own there: fill it with :func:`fill`)."""
    with tmpfs(tmp_path / "full", "256k") as folder:
        yield folder


def fill(folder: Path) -> None:
    with (folder / "filler").open("ab", buffering=0) as f:  # nothing left to flush on close
        try:
            while True:
                f.write(b"x" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e


@pytest.fixture
def study(tmp_path: Path) -> str:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    make_known_study(storage, "known")
    return storage


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "filler"}


@pytest.mark.parametrize("argv", [
    ("export", "known", "--pick", "knee", "--out", "{dir}/best.yaml"),
    ("plot", "known", "--out", "{dir}/front.png"),
    ("plot", "known", "--out", "{dir}/front.html"),
], ids=lambda a: " ".join(a[:1] + a[-1:]))
@pytest.mark.parametrize("existing", [False, True], ids=["new", "replace"])
def test_a_full_disk_is_one_line_and_keeps_what_was_there(
        full_disk: Path, study: str, capsys: pytest.CaptureFixture[str],
        argv: tuple[str, ...], existing: bool) -> None:
    args = [a.format(dir=full_disk) for a in argv]
    target = Path(args[-1])
    if existing:
        target.write_bytes(b"the user's earlier file\n")
    fill(full_disk)
    before = _files(full_disk)
    assert_usage_error(capsys, *args, "--storage", study,
                       needles=("--out", "No space left on device"))
    assert _files(full_disk) == before  # no temporary file, the earlier file intact


def _images(folder: Path, n: int = 3) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(
            folder / f"{i}.png")
    return folder


def test_a_store_prepared_onto_a_full_disk_is_one_line_and_leaves_no_store(
        full_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = _images(tmp_path / "images")
    fill(full_disk)
    before = _files(full_disk)
    code, _, err = run(capsys, "data", "prepare", str(images), "--out",
                       str(full_disk / "store"))
    assert code == 2, err
    # The progress line ("preparing ...") then the error, and no traceback.
    last = err.splitlines()[-1]
    assert_one_line(last + "\n", "--out", "No space left on device")
    assert "Traceback" not in err
    left = set(_files(full_disk)) - set(before)
    assert left <= {".store.lock"}, left  # the lock file stays (flock needs it), no store


def test_a_store_prepared_again_onto_a_full_disk_keeps_the_one_there(
        full_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = _images(tmp_path / "images")
    store = full_disk / "store"
    code, _, err = run(capsys, "data", "prepare", str(images), "--out", str(store))
    assert code == 0, err
    kept = {p.relative_to(store): p.read_bytes() for p in store.rglob("*") if p.is_file()}
    # A different set into the same --out: refused or rebuilt, never a half-written store.
    more = _images(tmp_path / "more", n=4)
    fill(full_disk)
    code, _, err = run(capsys, "data", "prepare", str(more), "--out", str(store))
    assert code == 2 and "Traceback" not in err, err
    assert {p.relative_to(store): p.read_bytes() for p in store.rglob("*")
            if p.is_file()} == kept
