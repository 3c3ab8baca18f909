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
    from optuna.storages import BaseStorage, RDBStorage

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

# Query-string keys whose values are secrets (``password``, ``sslpassword``, ``api_token``,
# ``client_secret`` ...), matched anywhere in the key, case-insensitively.
_SECRET_KEY = re.compile(r"pass(word|wd)|pwd|secret|token", re.IGNORECASE)
# The user info's password: ``scheme://user:`` up to an ``@`` (which one: see mask_url).
_USERINFO = re.compile(r"^([A-Za-z0-9+._-]+://[^:/@?#]*:)")
# A query pair's ``key=``. Pairs are split on ``&`` only, as SQLAlchemy splits them
# (``parse_qsl``): a ``;`` belongs to the value.
_QUERY_KEY = re.compile(r"([A-Za-z0-9_.-]+)=")
# Where a secret value may end: an ``&`` that starts a pair whose key reads like a driver
# option (lower case, as every libpq / MySQL driver option is). Any other ``&`` is taken as
# part of the secret and masked with it; parse() refuses a URL SQLAlchemy would split there.
_SECRET_END = re.compile(r"&[a-z][a-z0-9_]*=")
MASK = "***"
# Fragments of a secret shorter than this are not hunted for in free text (a driver message):
# the whole secret always is.
_MIN_FRAGMENT = 4


def resolve_url(url: str | None = None) -> str:
    """The storage to use: the explicit URL, else ``$SRNAS_STORAGE``, else the default file."""
    return url or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


def _parsed(url: str) -> Any:
    from sqlalchemy import exc
    from sqlalchemy.engine import make_url

    try:
        return make_url(url)
    except (exc.ArgumentError, ValueError, TypeError):
        return None


def _password_span(url: str) -> tuple[int, int] | None:
    """Where the user info's password lies in ``url`` (start, end), or None.

    With one ``@`` after ``scheme://user:`` this is exactly SQLAlchemy's password (and the
    driver's). With more -- a password holding an unencoded ``@``, which SQLAlchemy would end
    at the first one and hand the rest to the driver as the host -- it runs to the last ``@``
    (to the end when a query secret comes before that ``@``): masking too much rather than a
    piece of a secret. :func:`parse` refuses such URLs."""
    head = _USERINFO.match(url)
    if head is None or "@" not in url[head.end():]:
        return None
    start = head.end()
    rest = url[start:]
    cut = rest.rindex("@")
    if "?" in rest[:cut] and _SECRET_KEY.search(rest[:cut]):
        cut = len(rest)  # a query's secret may hold the last "@": its tail could be secret too
    return start, start + cut


def ambiguous_password(url: str) -> bool:
    """True when ``url`` has a password and more than one ``@`` after it (see
    :func:`_password_span`)."""
    head = _USERINFO.match(url)
    return head is not None and url[head.end():].count("@") > 1


def _query_text(url: str) -> str | None:
    """The URL's query string as typed: after the first ``?`` past the password (a password
    may hold a ``?`` of its own), or None."""
    span = _password_span(url)
    at = url.find("?", span[1] if span is not None else 0)
    return None if at < 0 else url[at + 1:]


def split_query_secret(url: str, query: Mapping[str, Any]) -> str | None:
    """The key of a query secret that SQLAlchemy's parse (``query``) cuts short of what
    :func:`mask_url` masks -- it holds an unencoded ``&`` -- or None."""
    from urllib.parse import unquote_plus

    raw = _query_text(url)
    if raw is None:
        return None
    for key, start, end in _query_secrets(raw):
        value = query.get(key)
        values = value if isinstance(value, tuple) else (value,)
        if unquote_plus(raw[start:end]) not in values:
            return key
    return None


def mask_url(url: str) -> str:
    """The URL with every secret replaced by ``***``: the user info's password (whatever
    characters it holds, encoded or not) and every query value whose key names a password,
    secret or token. A URL without one comes back unchanged.

    Text surgery guided by SQLAlchemy's parse rather than a re-rendered URL: the user sees
    their URL as typed, and URLs that do not parse (exactly the ones that end up in error
    messages) are masked too, conservatively."""
    text = str(url)
    span = _password_span(text)
    if span is not None:
        text = text[:span[0]] + MASK + text[span[1]:]
    if "?" not in text:
        return text
    base, query = text.split("?", 1)
    for start, end in reversed([(a, b) for _key, a, b in _query_secrets(query)]):
        query = query[:start] + MASK + query[end:]
    return base + "?" + query


def _query_secrets(query: str) -> list[tuple[str, int, int]]:
    """The secret pairs of a URL's query string: (key, value start, value end), in order.
    A secret's value runs to the next plausible ``&option=`` (:data:`_SECRET_END`) or the
    end, so one holding an unencoded ``&`` is covered whole."""
    found: list[tuple[str, int, int]] = []
    pos = 0
    while pos < len(query):
        pair = _QUERY_KEY.match(query, pos)
        if pair is None:  # a piece without "=": SQLAlchemy drops it; nothing to mask
            amp = query.find("&", pos)
            pos = len(query) if amp < 0 else amp + 1
            continue
        key, start = pair.group(1), pair.end()
        if _SECRET_KEY.search(key):
            stop = _SECRET_END.search(query, start)
            end = len(query) if stop is None else stop.start()
            if end > start and query[start:end] != MASK:
                found.append((key, start, end))
        else:
            amp = query.find("&", start)
            end = len(query) if amp < 0 else amp
        pos = end + 1
    return found


def secrets_of(url: str) -> list[str]:
    """The secret strings of ``url`` (its password as typed and as parsed, secret query values,
    their percent-decoded and quoted forms), longest first: what no text shown may hold."""
    from urllib.parse import unquote

    text = str(url)
    found: set[str] = set()
    span = _password_span(text)
    if span is not None:
        found.add(text[span[0]:span[1]])
    parsed = _parsed(text)
    if parsed is not None and parsed.password:
        found.add(str(parsed.password))
    query = _query_text(text)
    if query is not None:
        found |= {query[start:end] for _key, start, end in _query_secrets(query)}
        if parsed is not None:
            found |= {str(v) for k, v in parsed.query.items()
                      if _SECRET_KEY.search(k) and isinstance(v, str)}
    found |= {unquote(s) for s in found}
    found |= {repr(s)[1:-1] for s in found}  # as a message quotes it (backslashes doubled)
    return sorted((s for s in found if s and s != MASK), key=len, reverse=True)


def redact(text: str, url: str) -> str:
    """Free text (a driver's error, a log line) with ``url`` and its secrets masked out:
    the URL itself, every secret whole and every longer fragment of one (a driver that was
    handed half a password, e.g. as a host name, prints that half)."""
    text = str(text).replace(str(url), mask_url(url))
    secrets = secrets_of(url)
    fragments = {f for s in secrets for f in re.split(r"[/@:?#&;=%+ ]", s)
                 if len(f) >= _MIN_FRAGMENT}
    for secret in [*secrets, *sorted(fragments, key=len, reverse=True)]:
        text = text.replace(secret, MASK)
    return text


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

    def redact(self, text: str) -> str:
        """``text`` (a driver's message) with this URL's secrets taken out."""
        return redact(text, self.url)

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
    if ambiguous_password(url):
        # SQLAlchemy would end the password at the first "@" and give the driver the rest as
        # the host: a wrong connection whose error prints that half of the password.
        raise storage_error("has more than one '@' after the password: percent-encode an "
                            "'@' in the password as %40", url)
    try:
        parsed = make_url(url)
    except (exc.ArgumentError, ValueError):
        raise storage_error("is not a valid SQLAlchemy URL", url) from None
    split = split_query_secret(url, parsed.query)
    if split is not None:
        # SQLAlchemy would hand the driver the secret's tail as another option, and the
        # driver's "invalid connection option" error would print that piece of it.
        raise storage_error(f"has a query secret ({split}=) holding an unencoded '&': "
                            "percent-encode an '&' in it as %26", url)
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
        raise storage_error(f"cannot be opened: {_reason(e, url)}", url) from None
    finally:
        engine.dispose()
    if require_tables and not tables:
        raise storage_error("is an empty storage: it holds no studies", url)


def _reason(error: Exception, url: str) -> str:
    """The driver's first line of a database error, with the URL's secrets taken out."""
    orig = getattr(error, "orig", None)
    lines = str(orig if orig is not None else "").strip().splitlines()
    return redact(lines[0] if lines else type(error).__name__, url)


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
            if not os.access(path.resolve().parent, os.W_OK | os.X_OK):
                # SQLite writes its journal beside the file: the first write would fail.
                raise storage_error(f"its folder {path.parent} cannot be written by this "
                                    "process (SQLite keeps its journal there)", target.url)
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
    """The storage object (with the drivers' heartbeat settings when ``heartbeat``)."""
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


def open_for_write(target: StorageURL, *, retry_s: float | None = None
                   ) -> BaseStorage:
    """An ``RDBStorage`` object with heartbeats (srnas's searcher and the heartbeat thread
    share the object, hence one connection pool, rather than each opening the URL). Drivers
    starting together on an empty storage race to create Optuna's schema (an IntegrityError
    on ``alembic_version``, or on PostgreSQL's ``CREATE TYPE``): the loser retries, and finds
    the schema made.

    On a database server, every later connection waits out an outage for ``retry_s`` seconds
    (None: :data:`srnas.studies.retry.DEFAULT_STORAGE_RETRY_S`; 0: no waiting), see
    :mod:`srnas.studies.retry`, and a storage call the outage cut off is run again: the
    object is then a :class:`srnas.studies.retrying.RetryingStorage` over the ``RDBStorage``.
    Opening itself is not retried (a dead host fails in seconds)."""
    import time

    from sqlalchemy import exc

    from srnas.studies.retry import DEFAULT_STORAGE_RETRY_S, wait_out_outages
    from srnas.studies.retrying import RetryingStorage

    server = target.dialect in ("postgresql", "mysql")
    wait_s = (DEFAULT_STORAGE_RETRY_S if retry_s is None else retry_s) if server else 0.0
    for attempt in range(8):
        try:
            storage = _rdb(target, heartbeat=True)
            if not wait_s > 0:
                return storage
            wait_out_outages(storage, wait_s, target.masked, scrub=target.redact)
            return RetryingStorage(storage, retry_s=wait_s)
        except (exc.IntegrityError, exc.ProgrammingError, exc.OperationalError) as error:
            if attempt == 7 or not _schema_race(error):
                raise storage_error(f"cannot be opened: {_reason(error, target.url)}",
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
    "ambiguous_password",
    "check_for_write",
    "exists",
    "mask_url",
    "open_for_write",
    "open_storage",
    "parse",
    "probe",
    "redact",
    "resolve_url",
    "secrets_of",
    "split_query_secret",
    "storage_error",
]
