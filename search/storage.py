"""The storage a search writes to: checked first (nothing created), opened last."""

from __future__ import annotations

import optuna

from studies.storage import _sqlite_path, engine_kwargs, probe, storage_error


def check_for_write(url: str) -> None:
    """Fail in one line, before Ray starts and before anything is created: a malformed URL, an
    unknown dialect or driver, a SQLite file in a missing folder, an unreachable server."""
    from sqlalchemy import exc

    if "://" not in url:
        raise storage_error("must be a SQLAlchemy URL such as sqlite:///srnas.db", url)
    if url.startswith("sqlite"):
        try:
            path = _sqlite_path(url)
        except (exc.ArgumentError, ValueError):
            raise storage_error("is not a valid SQLAlchemy URL", url) from None
        if path is not None and not path.resolve().parent.is_dir():
            raise storage_error(f"its folder {path.parent} does not exist", url)
        if path is not None and path.is_dir():
            raise storage_error(f"{path} is a folder, not a SQLite file", url)
        return  # connecting would create the file: leave that to open_for_write
    probe(url, engine_kwargs(url), require_tables=False)


def open_for_write(url: str) -> optuna.storages.RDBStorage:
    """An ``RDBStorage`` object (Ray's OptunaSearch wants the object, not a URL string)."""
    check_for_write(url)
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs(url))


__all__ = ["check_for_write", "open_for_write"]
