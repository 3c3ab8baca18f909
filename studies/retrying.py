"""A writer's storage whose every call survives the database going away under it.

:class:`srnas.studies.retry.ConnectRetry` makes a *new* connection wait for the server; this
covers the statement under way when the server goes (a fast shutdown, a failover, a dropped
network path terminates it: Optuna raises ``StorageInternalError`` from the driver's
``OperationalError``). Each call is run again after such a disconnect, with backoff, for at
most ``retry_s`` seconds from the first failure; the new attempt checks out a fresh
connection, which waits for the server through ``ConnectRetry``.

Where the retries sit: in front of Optuna's trial cache, not under it. A Study puts that
cache in front of any ``RDBStorage`` it is given (``optuna.storages.get_storage``), and the
cache reaches the database through backend methods outside Optuna's public API (new trials,
params, trial reads); a storage that is not an ``RDBStorage`` is used as it is. So
:class:`RetryingStorage` is a plain ``BaseStorage`` that holds the cache Optuna itself builds
(``get_storage(backend)``, public) and runs each public ``BaseStorage`` call on it, plus the
heartbeat on the backend: every statement a study sends passes through one retry. The cache
is safe to call again: it updates itself only after its backend call returned.

Running a call again is safe for what Optuna writes: reads are reads; params and attrs are
set, not appended; a state change that did commit before its acknowledgement was lost is
found on the retry (Optuna's ``UpdateFinishedTrialError``) and taken as done when the stored
trial holds exactly what was asked. One window is left: a new trial whose commit reached the
server while the acknowledgement did not is created again; the first stays RUNNING without a
heartbeat and the next launch's stale check fails it (``lost heartbeat``).

Stale trials are failed through the backend (:func:`heartbeat_backend`): Optuna's
``fail_stale_trials`` works only on a storage of its own heartbeat kind.
"""

from __future__ import annotations

import abc
import functools
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import TrialState

from srnas.space.errors import find_cause
from srnas.studies.retry import BACKOFF_MAX_S, BACKOFF_START_S


def is_disconnect(error: BaseException) -> bool:
    """The database went away during the call: a DB-API error SQLAlchemy found to be a
    disconnect, or an ``OperationalError`` (which the drivers raise for a terminated session,
    a refused connection and a dropped network path alike)."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    cause = find_cause(error, DBAPIError)
    return cause is not None and (bool(cause.connection_invalidated)
                                  or isinstance(cause, OperationalError))


# The study's calls: every public call of Optuna's storage API, run on the cache.
STUDY_CALLS = tuple(sorted(
    name for name in dir(BaseStorage)
    if not name.startswith("_") and callable(getattr(BaseStorage, name))
    and name != "remove_session"))
# The driver's heartbeat, run on the backend (the cache passes it through unchanged).
HEARTBEAT_CALLS = ("record_heartbeat",)
RETRIED_CALLS = tuple(sorted(STUDY_CALLS + HEARTBEAT_CALLS))


class RetryingStorage(BaseStorage):
    """The storage a writer hands its studies: Optuna's own cache over ``backend``, each of
    whose :data:`RETRIED_CALLS` is run again across a disconnect for at most ``retry_s``
    seconds (see the module's docstring). ``clock`` and ``sleep`` are for tests."""

    def __init__(self, backend: RDBStorage, *, retry_s: float,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.backend = backend
        self.cached = optuna.storages.get_storage(backend)
        self.retry_s = float(retry_s)
        self.clock, self.sleep = clock, sleep
        self.disconnects = 0  # calls that met a disconnect and were run again

    # What callers read off an RDBStorage (the engine for its events, the URL for messages,
    # the heartbeat settings for the searcher's beat).
    @property
    def engine(self) -> Any:
        return self.backend.engine

    @property
    def url(self) -> str:
        return self.backend.url

    @property
    def heartbeat_interval(self) -> int | None:
        return self.backend.heartbeat_interval

    def remove_session(self) -> None:
        self.backend.remove_session()

    def __getstate__(self) -> dict[Any, Any]:
        state = dict(self.__dict__)
        state.pop("clock", None)
        state.pop("sleep", None)
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        self.__dict__.update(state)
        self.clock, self.sleep = time.monotonic, time.sleep

    def run_again(self, call: Callable[..., Any], name: str, *args: Any, **kwargs: Any) -> Any:
        """``call(*args, **kwargs)``, run again after a disconnect while time is left."""
        started: float | None = None
        delay = BACKOFF_START_S
        while True:
            try:
                return call(*args, **kwargs)
            except UpdateFinishedTrialError:
                # A state change whose first attempt committed before the disconnect.
                if started is None or name != "set_trial_state_values" \
                        or not self._already_set(*args, **kwargs):
                    raise
                return True
            except Exception as error:
                if not is_disconnect(error):
                    raise
                now = self.clock()
                if started is None:
                    started = now
                    self.disconnects += 1
                if now - started >= self.retry_s:
                    raise
                self.sleep(min(delay, max(self.retry_s - (now - started), 0.01)))
                delay = min(delay * 2, BACKOFF_MAX_S)

    def _already_set(self, trial_id: int, state: TrialState,
                     values: Any = None) -> bool:
        trial = self.backend.get_trial(trial_id)
        return trial.state == state and (values is None or list(trial.values or [])
                                         == [float(v) for v in values])


def _retried(name: str, on: str) -> Callable[..., Any]:
    # updated=(): the docs and name, not BaseStorage's ``__isabstractmethod__`` mark.
    @functools.wraps(getattr(BaseStorage if on == "cached" else RDBStorage, name), updated=())
    def call(self: RetryingStorage, *args: Any, **kwargs: Any) -> Any:
        # Looked up at each call: whatever the cache's or backend's method is now.
        target = getattr(getattr(self, on), name)
        return self.run_again(target, name, *args, **kwargs)

    return call


for _name in STUDY_CALLS:
    setattr(RetryingStorage, _name, _retried(_name, "cached"))
for _name in HEARTBEAT_CALLS:
    setattr(RetryingStorage, _name, _retried(_name, "backend"))
abc.update_abstractmethods(RetryingStorage)  # the abstract calls are defined now


def heartbeat_backend(storage: BaseStorage) -> BaseStorage:
    """The storage Optuna's heartbeat functions work on: the backend of a
    :class:`RetryingStorage`, any other storage as it is."""
    return storage.backend if isinstance(storage, RetryingStorage) else storage


__all__ = ["HEARTBEAT_CALLS", "RETRIED_CALLS", "STUDY_CALLS", "RetryingStorage",
           "heartbeat_backend", "is_disconnect"]
