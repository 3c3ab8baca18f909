"""Multi-objective successive halving, the pure part: the rung ladder and the promotion rule.

The rule follows Syne Tune's MOASHA (Schmucker et al., 2021): a trial that reaches a rung
continues iff its result vector is among the best ``ceil(n / eta)`` of the ``n`` vectors
recorded at that rung so far, asynchronously (no waiting for a rung to fill). "Best" is the
order of non-dominated sorting: first front first; inside a front, larger crowding distance
first (NSGA-II's, boundary points infinite), so a rung keeps the spread of the front rather
than one corner of it; remaining ties go to the trial that reached the rung first. No Ray.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

from srnas.space.errors import ConfigError

K = TypeVar("K", bound=Hashable)


def rung_ladder(min_steps: int, steps: int, eta: int) -> tuple[int, ...]:
    """Rungs at ``min_steps * eta**k`` below ``steps``, then ``steps`` (the last rung)."""
    if isinstance(eta, bool) or not isinstance(eta, int) or eta < 2:
        raise ConfigError("eta", "must be an integer >= 2", eta)
    if isinstance(min_steps, bool) or not isinstance(min_steps, int) or min_steps < 1:
        raise ConfigError("min_steps", "must be a positive integer", min_steps)
    if min_steps >= steps:
        raise ConfigError("min_steps", f"must be below --steps ({steps}): a ladder needs at "
                          "least two rungs", min_steps)
    rungs = []
    level = min_steps
    while level < steps:
        rungs.append(level)
        level *= eta
    return (*rungs, steps)


def default_min_steps(steps: int, eta: int) -> int:
    """Three rungs: the smallest R with R * eta**2 >= steps (200 steps, eta 3: 23, 69, 200)."""
    return max(1, math.ceil(steps / eta**2))


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """a dominates b (all objectives as losses: smaller is better)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True))


def _fronts(losses: list[list[float]]) -> list[list[int]]:
    """Non-dominated sorting: indices grouped by front, each front in input order."""
    remaining = list(range(len(losses)))
    fronts = []
    while remaining:
        front = [i for i in remaining
                 if not any(_dominates(losses[j], losses[i]) for j in remaining if j != i)]
        fronts.append(front)
        remaining = [i for i in remaining if i not in front]
    return fronts


def _crowding(losses: list[list[float]], front: list[int]) -> dict[int, float]:
    distance = dict.fromkeys(front, 0.0)
    if len(front) <= 2:
        return dict.fromkeys(front, math.inf)
    for m in range(len(losses[front[0]])):
        ordered = sorted(front, key=lambda i: losses[i][m])
        low, high = losses[ordered[0]][m], losses[ordered[-1]][m]
        distance[ordered[0]] = distance[ordered[-1]] = math.inf
        if high == low:
            continue
        for prev, here, nxt in zip(ordered, ordered[1:], ordered[2:], strict=False):
            distance[here] += (losses[nxt][m] - losses[prev][m]) / (high - low)
    return distance


def rank(vectors: Mapping[K, Sequence[float]], maximize: Sequence[bool]) -> list[K]:
    """Keys from best to worst: by front, then crowding distance (descending), then the
    mapping's order (the order trials reached the rung). A NaN counts as the worst value."""
    keys = list(vectors)
    losses = [[_loss(v, up) for v, up in zip(vectors[k], maximize, strict=True)] for k in keys]
    order: list[int] = []
    for front in _fronts(losses):
        crowd = _crowding(losses, front)
        order.extend(sorted(front, key=lambda i: (-crowd[i], i)))
    return [keys[i] for i in order]


def _loss(value: float, maximize: bool) -> float:
    if math.isnan(value):
        return math.inf
    return -value if maximize else value


def promote(key: K, vectors: Mapping[K, Sequence[float]], maximize: Sequence[bool],
            eta: int) -> bool:
    """Whether ``key`` (one of ``vectors``: every result recorded at its rung, itself included)
    is among the top ``ceil(n / eta)`` and so continues to the next rung."""
    if key not in vectors:
        raise KeyError(key)
    keep = math.ceil(len(vectors) / eta)
    return key in rank(vectors, maximize)[:keep]


__all__ = ["default_min_steps", "promote", "rank", "rung_ladder"]
