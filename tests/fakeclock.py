"""A clock for retry tests: ``clock()`` reads the time, ``clock.sleep(s)`` advances it and
records the wait, so backoff is checked exactly and takes no real time."""

from __future__ import annotations


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


__all__ = ["FakeClock"]
