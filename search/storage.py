"""Open (and create if needed) the study storage a search writes to."""

from __future__ import annotations

from pathlib import Path

import optuna

from studies.storage import CONNECT_TIMEOUT_S, mask_url, storage_error


def open_for_write(url: str) -> optuna.storages.RDBStorage:
    """An ``RDBStorage`` object (Ray's OptunaSearch wants the object, not a URL string).

    Checked up front so a bad ``--storage`` fails in one line before Ray starts: a malformed
    URL, an unknown dialect, a SQLite file in a missing folder, an unreachable server.
    """
    import sqlalchemy
    from sqlalchemy import exc

    if "://" not in url:
        raise storage_error("must be a SQLAlchemy URL such as sqlite:///srnas.db", url)
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except exc.ArgumentError:
        raise storage_error("is not a valid SQLAlchemy URL", url) from None
    kwargs = {}
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database or ""
        if db and db != ":memory:" and not Path(db).resolve().parent.is_dir():
            raise storage_error(f"its folder {Path(db).parent} does not exist", url)
    else:
        kwargs = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    try:
        engine = sqlalchemy.create_engine(url, **kwargs)
        with engine.connect():
            pass
        engine.dispose()
    except exc.NoSuchModuleError:
        raise storage_error("names an unknown database dialect", url) from None
    except ImportError as e:
        raise storage_error(f"needs a database driver that is not installed ({e.name})",
                            url) from None
    except exc.DBAPIError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig is not None else type(e).__name__
        raise storage_error(f"cannot be opened: {mask_url(reason)}", url) from None
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
