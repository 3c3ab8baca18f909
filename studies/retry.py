"""A writer's storage that waits out a database outage (a restart, a failover, a network blip)
instead of dying with it.

Every connection of an ``RDBStorage`` engine is made through SQLAlchemy's ``do_connect``
event; :class:`ConnectRetry` answers it by connecting with backoff (0.5 s doubling to 10 s)
for at most ``retry_s`` seconds after the first refusal. With the pool's pre-ping
(:data:`srnas.studies.storage.POOL_KWARGS`) a pooled connection that the outage killed is
replaced through the same path, so every storage call of the driver -- the searcher's ask and
tell, the heartbeat thread, the live view, the scheduler's reads, a fidelity retrain's record
-- blocks while the database is away and goes on when it is back. Ray's trials never touch the
storage: they keep training meanwhile, and their results are recorded once the database
answers. Past the bound the driver's connect error propagates as before.

Opening the storage is not retried: an unreachable database at launch is one line in seconds
(:func:`srnas.studies.storage.check_for_write`). A statement under way at the very moment the
server goes (not the idle connections, which pre-ping replaces) fails with the connection; the
storage object of :mod:`srnas.studies.retrying` runs such a call again.
"""

from __future__ import annotations

import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TextIO

# How long a writer waits for its database to come back, by default: long enough for a server
# restart or a managed database's failover (typically 30-120 s), short enough that a database
# that is gone for good ends the launch within minutes.
DEFAULT_STORAGE_RETRY_S = 180.0
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 10.0


class ConnectRetry:
    """A ``do_connect`` listener: connect, retrying refused connections for ``retry_s`` s.

    ``label`` (the masked URL) names the storage in the two lines printed (to ``out``,
    default stderr) per outage: when the waiting starts, and when the database is back or the
    wait gives up; ``scrub`` takes the URL's secrets out of the driver's message.
    ``retries``, ``outages`` and ``waited_s`` count what happened."""

    def __init__(self, retry_s: float, label: str, out: TextIO | None = None, *,
                 scrub: Callable[[str], str] = str,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.retry_s, self.label, self.out, self.scrub = retry_s, label, out, scrub
        self.clock, self.sleep = clock, sleep
        self.retries = 0
        self.outages = 0
        self.waited_s = 0.0  # longest outage waited out
        self._lock = threading.Lock()
        self._waiting = 0  # calls waiting now (one line per outage, not per thread)

    def _say(self, text: str) -> None:
        print(f"srnas: storage {self.label}: {text}", file=self.out or sys.stderr, flush=True)

    def __call__(self, dialect: Any, conn_rec: Any, cargs: tuple, cparams: dict) -> Any:
        dbapi = getattr(dialect, "loaded_dbapi", None) or dialect.dbapi
        transient = tuple(getattr(dbapi, n) for n in ("OperationalError", "InterfaceError")
                          if hasattr(dbapi, n))
        started: float | None = None
        delay = BACKOFF_START_S
        while True:
            try:
                connection = dialect.connect(*cargs, **cparams)
            except transient as error:
                now = self.clock()
                if started is None:
                    started = now
                    self._begin(error)
                if now - started >= self.retry_s:
                    self._end(f"still unreachable after {now - started:.0f} s "
                              f"(--storage-retry-s {self.retry_s:g}): giving up")
                    raise
                with self._lock:
                    self.retries += 1
                self.sleep(min(delay, max(self.retry_s - (now - started), 0.01)))
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            if started is not None:
                waited = self.clock() - started
                with self._lock:
                    self.waited_s = max(self.waited_s, waited)
                self._end(f"reachable again after {waited:.0f} s; the search goes on")
            return connection

    def _begin(self, error: Exception) -> None:
        with self._lock:
            self._waiting += 1
            first = self._waiting == 1
            if first:
                self.outages += 1
        if first:
            lines = str(error).strip().splitlines()
            reason = self.scrub(lines[0] if lines else type(error).__name__)
            self._say(f"unreachable ({reason}); retrying for up to {self.retry_s:g} s "
                      "(--storage-retry-s); running trials keep training")

    def _end(self, text: str) -> None:
        with self._lock:
            self._waiting -= 1
            last = self._waiting == 0
        if last:
            self._say(text)


_ATTACHED: weakref.WeakKeyDictionary[Any, ConnectRetry] = weakref.WeakKeyDictionary()


def wait_out_outages(storage: Any, retry_s: float, label: str, *,
                     scrub: Callable[[str], str] = str,
                     out: TextIO | None = None) -> ConnectRetry | None:
    """Make every later connection of ``storage`` (an ``RDBStorage`` of a database server)
    retry for ``retry_s`` seconds; None (nothing attached) when ``retry_s`` is 0."""
    import sqlalchemy

    if not retry_s > 0:
        return None
    listener = ConnectRetry(retry_s, label, out, scrub=scrub)
    sqlalchemy.event.listen(storage.engine, "do_connect", listener)
    _ATTACHED[storage] = listener
    return listener


def retry_of(storage: Any) -> ConnectRetry | None:
    """The outage listener :func:`wait_out_outages` attached to ``storage``, if any."""
    return _ATTACHED.get(storage)


__all__ = ["BACKOFF_MAX_S", "BACKOFF_START_S", "DEFAULT_STORAGE_RETRY_S", "ConnectRetry",
           "retry_of", "wait_out_outages"]
