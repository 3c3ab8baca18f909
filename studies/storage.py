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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srnas.space.contract import DEFAULT_STORAGE, STORAGE_ENV
from srnas.space.errors import StorageError
from srnas.studies.heartbeat import heartbeat_settings

if TYPE_CHECKING:
    from optuna.storages import RDBStorage

# A dead host should fail the command in seconds, not after the driver's default (minutes).
CONNECT_TIMEOUT_S = 5

# Connection pool of a database server (PostgreSQL, MySQL). Only the driver process of a search
# (``srnas search``) and the readers (``srnas pareto`` ...) connect; Ray's workers never do.
# Optuna's RDBStorage holds one session, hence at most one connection, per thread at a time,
# and a driver has two threads that use it: Tune's loop (searcher, live view) and the
# heartbeat. So: two pooled connections kept open (no reconnect per operation: a connection
# costs a TLS handshake and a server process), up to two more for a moment before a caller
# waits, i.e. at most 4 per process whatever the search's size or concurrency (PostgreSQL's
# default max_connections of 100 leaves room for many drivers and readers). Pre-ping and
# recycling keep a search of hours alive across a server restart and across firewalls or
# poolers that drop connections idle for long (a pooled connection is replaced after 30 min).
POOL_KWARGS: dict[str, Any] = {
    "pool_size": 2,
    "max_overflow": 2,
    "pool_timeout": 60,
    "pool_recycle": 1800,
    "pool_pre_ping": True,
}
# How srnas's connections show in PostgreSQL's pg_stat_activity (unless the URL names one).
APPLICATION_NAME = "srnas"

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
        """SQLAlchemy engine settings: a connect timeout and a bounded pool for a server
        (:data:`POOL_KWARGS`); SQLite keeps SQLAlchemy's defaults (a file, no server)."""
        if self.dialect not in ("postgresql", "mysql"):
            return {}
        connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S}
        if self.dialect == "postgresql" and "application_name" not in _query(self.url):
            connect_args["application_name"] = APPLICATION_NAME
        return {"connect_args": connect_args, **POOL_KWARGS}


def _query(url: str) -> Mapping[str, Any]:
    from sqlalchemy import exc
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).query
    except (exc.ArgumentError, ValueError):  # parse() reports malformed URLs, not this
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
        if path is not None and path.is_file():
            if not os.access(path, os.R_OK | os.W_OK):
                raise storage_error(f"{path} cannot be written by this process", target.url)
            probe(target, require_tables=False)  # a file that is not a database says so here
        elif path is not None and not os.access(path.resolve().parent, os.W_OK):
            raise storage_error(f"its folder {path.parent} cannot be written by this process",
                                target.url)
        return target  # connecting would create the file: leave that to open_for_write
    probe(target, require_tables=False)
    return target


def exists(target: StorageURL) -> bool:
    """False when the storage certainly holds nothing yet (a SQLite file that does not exist),
    so a first launch can be checked without creating anything."""
    return not (target.sqlite_file is not None and not target.sqlite_file.is_file())


def _rdb(target: StorageURL, *, heartbeat: bool, **kwargs: Any) -> RDBStorage:
    import warnings

    import optuna

    from srnas.studies.stale import record_lost_trial

    if heartbeat:
        interval, grace = heartbeat_settings()
        kwargs.update(heartbeat_interval=interval, grace_period=grace,
                      heartbeat_stale_trial_callback=record_lost_trial)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(target.url, engine_kwargs=target.engine_kwargs(),
                                          **kwargs)


def open_for_write(target: StorageURL) -> RDBStorage:
    """An ``RDBStorage`` object (Ray's OptunaSearch wants the object, not a URL string), with
    heartbeats. Drivers starting together on an empty storage race to create Optuna's schema
    (an IntegrityError on ``alembic_version``, or on PostgreSQL's ``CREATE TYPE``): the loser
    retries, and finds the schema made."""
    import time

    from sqlalchemy import exc

    for attempt in range(8):
        try:
            return _rdb(target, heartbeat=True)
        except (exc.IntegrityError, exc.ProgrammingError, exc.OperationalError) as error:
            if attempt == 7 or not _schema_race(error):
                raise storage_error(f"cannot be opened: {mask_url(str(error.orig))}",
                                    target.url) from None
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _schema_race(error: Exception) -> bool:
    text = str(error).lower()
    return any(s in text for s in ("already exists", "unique constraint", "duplicate key",
                                   "locked", "alembic_version"))


def open_storage(url: str | None = None, *, heartbeat: bool = False) -> RDBStorage:
    """Open an existing study storage for reading (``url`` defaults as in :func:`resolve_url`);
    ``heartbeat``: with the drivers' heartbeat settings, to fail trials of dead drivers."""
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
        return _rdb(target, heartbeat=heartbeat, skip_table_creation=True)
    except exc.DBAPIError:
        raise storage_error("is not an Optuna study storage", target.url) from None
    except RuntimeError as e:  # Optuna's schema-version check (a storage from a newer Optuna)
        raise storage_error(f"cannot be read by this Optuna: {str(e).splitlines()[0]}",
                            target.url) from None


__all__ = [
    "StorageURL",
    "check_for_write",
    "exists",
    "heartbeat_settings",
    "mask_url",
    "open_for_write",
    "open_storage",
    "parse",
    "probe",
    "resolve_url",
    "storage_error",
]
