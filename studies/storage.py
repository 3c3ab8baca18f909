"""The one place that parses, checks, opens and masks a study storage URL.

Readers (``srnas studies``, ``pareto``, ``export``) and the writer (``srnas search``) both come
here. A read leaves no trace in the storage it was pointed at: a missing SQLite file is
reported, not created, and no Optuna tables are created in a database that lacks them. A write
is checked before Ray starts and before anything is created, then opened once. Every failure
is one :class:`StorageError` line naming ``storage``, the rule and the URL with any password
masked.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srnas.space.contract import DEFAULT_STORAGE, STORAGE_ENV
from srnas.space.errors import StorageError

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


def storage_error(rule: str, url: str) -> StorageError:
    return StorageError("storage", rule, mask_url(url))


@dataclass(frozen=True)
class StorageURL:
    """A parsed storage URL: its text, its dialect and (SQLite only) its database file."""

    url: str
    dialect: str
    sqlite_file: Path | None  # None for in-memory / URI-style SQLite and for servers

    @property
    def masked(self) -> str:
        return mask_url(self.url)

    def engine_kwargs(self) -> dict[str, Any]:
        if self.dialect in ("postgresql", "mysql"):
            return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
        return {}


def parse(url: str | None = None) -> StorageURL:
    """Parse (and default) a storage URL; a malformed one is a one-line error."""
    from sqlalchemy import exc
    from sqlalchemy.engine import make_url

    url = resolve_url(url)
    if "://" not in url:
        raise storage_error("must be a SQLAlchemy URL such as sqlite:///srnas.db", url)
    try:
        parsed = make_url(url)
    except (exc.ArgumentError, ValueError):
        raise storage_error("is not a valid SQLAlchemy URL", url) from None
    dialect = parsed.get_backend_name()
    sqlite_file = None
    if dialect == "sqlite":
        database = parsed.database or ""
        if database not in ("", ":memory:") and parsed.query.get("uri") not in ("true", "1"):
            sqlite_file = Path(database)
    return StorageURL(url, dialect, sqlite_file)


def probe(target: StorageURL, *, require_tables: bool = True) -> None:
    """Connect once and (for readers) check the database has tables at all: a clean message
    for a dead host or an empty database before Optuna gets to raise something less readable.
    """
    import sqlalchemy
    from sqlalchemy import exc

    url = target.url
    try:
        engine = sqlalchemy.create_engine(url, **target.engine_kwargs())
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


def check_for_write(url: str | None = None) -> StorageURL:
    """Fail in one line, before Ray starts and before anything is created: a malformed URL, an
    unknown dialect or driver, a SQLite file in a missing folder, an unreachable server."""
    target = parse(url)
    path = target.sqlite_file
    if target.dialect == "sqlite":
        if path is not None and not path.resolve().parent.is_dir():
            raise storage_error(f"its folder {path.parent} does not exist", target.url)
        if path is not None and path.is_dir():
            raise storage_error(f"{path} is a folder, not a SQLite file", target.url)
        return target  # connecting would create the file: leave that to open_for_write
    probe(target, require_tables=False)
    return target


def exists(target: StorageURL) -> bool:
    """False when the storage certainly holds nothing yet (a SQLite file that does not exist),
    so a first launch can be checked without creating anything."""
    return not (target.sqlite_file is not None and not target.sqlite_file.is_file())


def open_for_write(target: StorageURL) -> RDBStorage:
    """An ``RDBStorage`` object (Ray's OptunaSearch wants the object, not a URL string)."""
    import optuna

    return optuna.storages.RDBStorage(target.url, engine_kwargs=target.engine_kwargs())


def open_storage(url: str | None = None) -> RDBStorage:
    """Open an existing study storage for reading (``url`` defaults as in :func:`resolve_url`)."""
    import optuna
    from sqlalchemy import exc

    target = parse(url)
    path = target.sqlite_file
    # SQLite creates a missing file on connect: check first so a read leaves nothing behind.
    if target.dialect == "sqlite" and path is not None and not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise storage_error(f"points to no SQLite file ({path} {what})", target.url)
    probe(target)
    try:
        # skip_table_creation: a read must not turn someone else's database into an Optuna one.
        return optuna.storages.RDBStorage(target.url, engine_kwargs=target.engine_kwargs(),
                                          skip_table_creation=True)
    except exc.DBAPIError:
        raise storage_error("is not an Optuna study storage", target.url) from None
    except RuntimeError as e:  # Optuna's schema-version check (a storage from a newer Optuna)
        raise storage_error(f"cannot be read by this Optuna: {str(e).splitlines()[0]}",
                            target.url) from None


__all__ = [
    "StorageURL",
    "check_for_write",
    "exists",
    "mask_url",
    "open_for_write",
    "open_storage",
    "parse",
    "probe",
    "resolve_url",
    "storage_error",
]
