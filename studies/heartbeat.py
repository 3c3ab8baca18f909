"""The drivers' heartbeat settings, read by the storage (which beats) and by the stale-trial
callback (which explains a lost trial): one module both import, so neither imports the other."""

from __future__ import annotations

import os

from srnas.space.contract import HEARTBEAT_ENV


def heartbeat_settings() -> tuple[int, int]:
    """(interval, grace period) in seconds of the drivers' heartbeats: every 30 s, stale after
    120 s (``$SRNAS_HEARTBEAT_S`` sets the interval; the grace period is 4 intervals, so a
    driver busy for a moment is never taken for dead)."""
    text = os.environ.get(HEARTBEAT_ENV, "")
    interval = int(text) if text.isdigit() and int(text) > 0 else 30
    return interval, 4 * interval


__all__ = ["heartbeat_settings"]
