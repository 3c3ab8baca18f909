"""Open the study database named by ``--storage`` for reading, and mask its password.

Everything in studies/ reads; nothing here may leave a trace in the storage it was pointed at:
a missing SQLite file is reported, not created, and no Optuna tables are created in a database
that lacks them. Every failure becomes one :class:`SrnasError` line naming ``--storage``, the
rule and the URL with any password masked.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from space.errors import SrnasError
from studies.schema import DEFAULT_STORAGE, STORAGE_ENV

if TYPE_CHECKING:
    from optuna.storages import RDBStorage

# A dead host should fail the command in seconds, not after the driver's default (minutes).
CONNECT_TIMEOUT_S = 5

# The password runs to the last "@" before the path ("/" cannot occur unencoded in it).
_USERINFO_PASSWORD = re.compile(r"(://[^:/@]*:)([^/]*)(@)")
_QUERY_PASSWORD = re.compile(r"((?:^|[?&;])password=)([^&;]*)", re.IGNORECASE)


def resolve_url(url: str | None = None) -> str:
    """The storage to use: the explicit URL, else ``$SRNAS_STORAGE``, else the default file."""
    return url or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (in the user info or a query parameter).

    Done with patterns rather than SQLAlchemy's parser so that it also masks URLs that do not
    parse, which are exactly the ones that end up in error messages.
    """
    masked = _USERINFO_PASSWORD.sub(r"\1***\3", url)
    return _QUERY_PASSWORD.sub(r"\1***", masked)


def storage_error(rule: str, url: str) -> SrnasError:
    return SrnasError(f"--storage: {rule} (got {mask_url(url)!r})")


def _sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL, or None for in-memory / URI-style databases."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database or ""
    if database in ("", ":memory:") or parsed.query.get("uri") in ("true", "1"):
        return None
    return Path(database)


def engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("postgresql"):
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    if url.startswith("mysql"):
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    return {}


def probe(url: str, engine_kwargs: dict[str, Any], *, require_tables: bool = True) -> None:
    """Connect once and (for readers) check the database has tables at all: a clean message
    for a dead host or an empty database before Optuna gets to raise something less readable.
    The search (a writer) probes with ``require_tables=False``."""
    import sqlalchemy
    from sqlalchemy import exc

    try:
        engine = sqlalchemy.create_engine(url, **engine_kwargs)
    except exc.NoSuchModuleError:  # (an ArgumentError subclass: must come first)
        raise storage_error("names an unknown database dialect", url) from None
    except (exc.ArgumentError, ValueError):  # ValueError: e.g. a port that is not a number
        raise storage_error("is not a valid SQLAlchemy URL", url) from None
    except ImportError as e:
        raise storage_error(f"needs a database driver that is not installed ({e.name})",
                            url) from None
    try:
        with engine.connect() as connection:
            tables = sqlalchemy.inspect(connection).get_table_names()
    except exc.DBAPIError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig is not None else type(e).__name__
        raise storage_error(f"cannot be opened: {mask_url(reason)}", url) from None
    finally:
        engine.dispose()
    if require_tables and not tables:
        raise storage_error("is an empty storage: it holds no studies", url)


def open_storage(url: str | None = None) -> RDBStorage:
    """Open an existing study storage for reading (``url`` defaults as in :func:`resolve_url`)."""
    import optuna
    from sqlalchemy import exc

    url = resolve_url(url)
    if "://" not in url:
        raise storage_error("must be a SQLAlchemy URL such as sqlite:///srnas.db", url)
    kwargs = engine_kwargs(url)
    if url.startswith("sqlite"):
        try:
            path = _sqlite_path(url)
        except (exc.ArgumentError, ValueError):
            raise storage_error("is not a valid SQLAlchemy URL", url) from None
        # SQLite creates a missing file on connect: check first so a read leaves nothing behind.
        if path is not None and not path.is_file():
            what = "is a folder" if path.is_dir() else "does not exist"
            raise storage_error(f"points to no SQLite file ({path} {what})", url)
    probe(url, kwargs)
    try:
        # skip_table_creation: a read must not turn someone else's database into an Optuna one.
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs,
                                          skip_table_creation=True)
    except exc.DBAPIError:
        raise storage_error("is not an Optuna study storage", url) from None
    except RuntimeError as e:  # Optuna's schema-version check (a storage from a newer Optuna)
        raise storage_error(f"cannot be read by this Optuna: {str(e).splitlines()[0]}",
                            url) from None
