"""The one way srnas replaces a file: write a temporary file beside it, fsync it, rename it
over the target, fsync the folder. A reader (or a kill, or a power cut once the folder is
synced) sees the old file or the new one, never a part of one. No torch: studies/ writes its
exports and plots through it too."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# A writer's temporary file: ``.NAME.<random>.tmp`` in the target's folder.
TEMP_SUFFIX = ".tmp"


def fsync_dir(folder: str | Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders have no handle: Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _plain_permissions(path: str | Path) -> None:
    # mkstemp makes the file 0600; give it the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@contextmanager
def atomic_write(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in ``target``'s folder to write; when the block ends normally it
    is fsynced, given plain permissions and renamed over ``target``. An exception (a full disk,
    Ctrl-C) removes it and leaves ``target`` as it was."""
    target = Path(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        _plain_permissions(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(target.parent)


def write_atomic(target: str | Path, data: str | bytes) -> Path:
    """``data`` (text is UTF-8) as the new content of ``target``, through :func:`atomic_write`."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_write(target) as tmp:
        tmp.write_bytes(payload)
    return Path(target)


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Remove temporary files a killed writer left in ``folder`` (call it holding the folder's
    lock: a live writer's temporary file looks the same)."""
    removed = []
    for tmp in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


__all__ = ["TEMP_SUFFIX", "atomic_write", "fsync_dir", "remove_stale_temps", "write_atomic"]
