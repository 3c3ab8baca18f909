"""Output files of studies/ commands: checked up front, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

from srnas.space import atomic
from srnas.space.errors import ConfigError


def check_out_path(out: str | Path, suffixes: tuple[str, ...], field: str = "out") -> Path:
    """``out`` as a path, if it has one of ``suffixes`` and its folder exists and is
    writable: checked before any work, so a bad path fails fast and leaves nothing behind."""
    path = Path(out)
    shown = str(out)
    if path.suffix.lower() not in suffixes:
        raise ConfigError(field, f"must end in {' or '.join(suffixes)}", shown)
    if path.is_dir():
        raise ConfigError(field, "is a folder, not a file", shown)
    if not path.parent.is_dir():
        raise ConfigError(field, "its folder does not exist", shown)
    if not os.access(path.parent, os.W_OK | os.X_OK) or (
            path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(field, "is not writable", shown)
    return path


def write_atomic(path: Path, data: str | bytes) -> None:
    """:func:`srnas.space.atomic.write_atomic`, a failure (full disk, read-only folder) as the
    one-line error of ``--out``."""
    try:
        atomic.write_atomic(path, data)
    except OSError as e:
        raise ConfigError("out", f"cannot be written: {e.strerror}", str(path)) from None
