"""``srnas export --onnx`` against a full disk and a killed export's leftovers (issue 23, items
8 and 14): a full disk is one line and leaves no file; the hidden temporary file a killed export
left is removed by the next export to the same target, while a live export's is kept."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from srnas.evaluators.deploy import remove_dead_temps
from tests.cli import assert_usage_error, run
from tests.tmpfs import tmpfs


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: room for nothing an export writes."""
    with tmpfs(tmp_path / "full", "64k") as folder:
        yield folder


def test_export_onto_a_full_disk_is_one_line_and_leaves_nothing(
        small_disk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (small_disk / "filler").write_bytes(b"x" * 60_000)
    target = small_disk / "m.onnx"
    assert_usage_error(capsys, "export", "tiny", "--untrained", "--scale", "2",
                       "--onnx", str(target), needles=("--onnx", "No space left on device"))
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


def test_a_killed_exports_temp_file_is_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    target = tmp_path / "m.onnx"
    dead = tmp_path / ".m.onnx.abc123.tmp"
    dead.write_bytes(b"half an onnx file")
    live = tmp_path / ".m.onnx.def456.tmp"
    live.write_bytes(b"being written")
    other = tmp_path / ".n.onnx.ghi789.tmp"  # another target's: not this export's business
    other.write_bytes(b"x")
    fd = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a live export holds
        assert remove_dead_temps(target) == [dead]
    finally:
        os.close(fd)
    assert not dead.exists() and live.exists() and other.exists()


def test_the_next_export_cleans_the_leftover(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "m.onnx"
    leftover = tmp_path / ".m.onnx.killed.tmp"
    leftover.write_bytes(b"half an onnx file")
    code, _, err = run(capsys, "export", "tiny", "--untrained", "--scale", "2",
                         "--onnx", str(target))
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


@pytest.mark.parametrize("content", [None, b"not an image"])
def test_a_bad_check_image_names_the_flag(tmp_path: Path, content: bytes | None,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "photo.png"
    if content is not None:
        image.write_bytes(content)
    target = tmp_path / "m.onnx"
    line = assert_usage_error(capsys, "export", "tiny", "--untrained", "--scale", "2",
                              "--onnx", str(target), "--check-image", str(image),
                              needles=("srnas export: error: --check-image: cannot be used",))
    assert str(image) in line and not target.exists()
