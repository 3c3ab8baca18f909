"""Heartbeats of a driver's running trials, so a trial whose driver died is failed, not left
RUNNING forever.

Optuna's RDB heartbeat (``RDBStorage(heartbeat_interval=, grace_period=)``) beats only inside
``study.optimize``; the searcher (:mod:`srnas.search.searcher`) asks and tells, so the driver
beats for its own running trials from a thread (the searcher beats once for each new trial
before it is sampled). A trial whose last beat is older than the grace period belongs to a dead
driver: ``srnas.studies.stale.fail_stale_trials`` fails it (the next launch does, and so does
``srnas studies list --fix-stale``), and a live driver's trials are never stale because it
keeps beating for them. Interval and grace period: ``srnas.studies.storage``. The thread
lives here, outside the searcher: Tune pickles the searcher.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

import optuna

log = logging.getLogger(__name__)


class Heartbeat:
    """Records a heartbeat every ``interval`` seconds for each id ``running()`` returns."""

    def __init__(self, storage: optuna.storages.BaseStorage, running: Callable[[], Iterable[int]],
                 interval: float) -> None:
        self.storage, self.running, self.interval = storage, running, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="srnas-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _beat(self) -> None:
        while not self._stop.is_set():
            for trial_id in list(self.running()):
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as exc:  # a missed beat is retried; the search goes on
                    log.warning("heartbeat of trial %s not recorded: %s", trial_id, exc)
            self._stop.wait(self.interval)


__all__ = ["Heartbeat"]
