"""Checks of the numbers a launch asks Ray for, shared by ``srnas search`` and ``srnas
fidelity`` (library form: each error names the setting's field).

A NaN passes every ``<`` and ``>`` test, and Ray takes a negative or NaN request without a
word and leaves the trial PENDING forever; an infinite time budget never ends. So each value is
checked to be finite and in range before anything is created or started.
"""

from __future__ import annotations

import math

from srnas.space.errors import ConfigError


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and \
        math.isfinite(value)


def check_trial_resources(cpus_per_trial: float, gpus_per_trial: float | None,
                          concurrency: int | None = None) -> None:
    """CPUs per trial: finite and > 0; GPUs per trial (None: Ray's default): finite and >= 0;
    concurrency (None: as the resources allow): >= 1."""
    if not (_finite(cpus_per_trial) and cpus_per_trial > 0):
        raise ConfigError("cpus_per_trial", "must be a positive number", cpus_per_trial)
    if gpus_per_trial is not None and not (_finite(gpus_per_trial) and gpus_per_trial >= 0):
        raise ConfigError("gpus_per_trial", "must be a finite number >= 0", gpus_per_trial)
    if concurrency is not None and not (isinstance(concurrency, int) and concurrency >= 1):
        raise ConfigError("concurrency", "must be >= 1", concurrency)


def check_time_budget(seconds: float | None) -> None:
    """A search's time budget (None: none): a finite number of seconds above zero."""
    if seconds is not None and not (_finite(seconds) and seconds > 0):
        raise ConfigError("time_budget_s", "must be a positive number of seconds", seconds)


def check_storage_retry(seconds: float | None) -> None:
    """How long a writer waits out a database outage (None: the default): finite, >= 0."""
    if seconds is not None and not (_finite(seconds) and seconds >= 0):
        raise ConfigError("storage_retry_s", "must be a finite number of seconds >= 0",
                          seconds)


__all__ = ["check_storage_retry", "check_time_budget", "check_trial_resources"]
