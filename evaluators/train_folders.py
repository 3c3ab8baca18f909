"""Training folders as srnas records and checks them: one folder or several, or a prepared
store. Path rules only (no numpy, no image is read): the search's settings use them, and
``srnas --help`` declares the search's flags from there."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from srnas.space.errors import DataError

# A store is a folder holding this index (see evaluators.store_format).
INDEX_FILE = "index.json"


def is_store(path: str | Path) -> bool:
    """Whether ``path`` is meant as a store (a folder holding an index): opening it says
    whether it is a good one."""
    return (Path(path) / INDEX_FILE).is_file()


def one_or_more(folders: str | Path | Iterable[str | Path] | None
                ) -> str | tuple[str, ...] | None:
    """Training folders as recorded: ``None`` (the built-in images), one folder as a ``str``
    (how one was recorded before several were allowed, so old runs and studies still match),
    several as a tuple of ``str`` in the order given."""
    if folders is None:
        return None
    if isinstance(folders, (str, Path)):
        return str(folders)
    given = tuple(str(f) for f in folders)
    if not given:
        return None
    return given[0] if len(given) == 1 else given


def as_folders(folders: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """:func:`one_or_more`'s value as a tuple of folders (empty: the built-in images)."""
    if folders is None:
        return ()
    return (folders,) if isinstance(folders, str) else tuple(folders)


def check_train_folders(folders: str | Path | Sequence[str | Path]) -> list[Path]:
    """The rules on a list of training folders, checked before anything is read: at least one,
    none named twice (its images would be drawn twice as often), and a prepared store only
    alone (it is a whole training set)."""
    paths = [Path(folders)] if isinstance(folders, (str, Path)) else [Path(f) for f in folders]
    if not paths:
        raise DataError("train", "at least one training folder is needed", 0)
    seen: set[Path] = set()
    for path in paths:
        resolved = path.resolve()
        if resolved in seen:
            raise DataError("train", "must not name a folder twice", str(path))
        seen.add(resolved)
        if len(paths) > 1 and is_store(path):
            raise DataError("train", "a prepared store must be the only training folder",
                            str(path))
    return paths


__all__ = ["INDEX_FILE", "as_folders", "check_train_folders", "is_store", "one_or_more"]
