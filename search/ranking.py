"""Multi-objective successive halving, the pure part: the rung ladder and the promotion rule.

The rule follows Syne Tune's MOASHA (Schmucker et al., 2021): a trial that reaches a rung
continues iff its result vector is among the best ``ceil(n / eta)`` of the ``n`` vectors
recorded at that rung so far, asynchronously (no waiting for a rung to fill). "Best" is the
order of non-dominated sorting: first front first; inside a front, larger exclusive
hypervolume contribution first (the volume only that point dominates, bounded by the rung's
worst values pushed out by 10 % of their range), so a rung keeps the points that add most to
its front, wherever they sit on it; remaining ties (e.g. identical vectors) go to the trial
that reached the rung first. Crowding distance was the alternative: it cannot order a front of
two (both ends are infinite), which is what the first rungs mostly hold. No Ray.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

from srnas.space.errors import ConfigError
from srnas.studies.hv import hypervolume_min

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


def _reference(losses: list[list[float]]) -> list[float]:
    """Each objective's worst finite loss, pushed out by 10 % of its range (of its magnitude
    when all are equal, or 1 when all are 0)."""
    reference = []
    for m in range(len(losses[0])):
        values = [row[m] for row in losses if math.isfinite(row[m])] or [0.0]
        lo, hi = min(values), max(values)
        reference.append(hi + 0.1 * ((hi - lo) or abs(hi) or 1.0))
    return reference


def _contributions(losses: list[list[float]], front: list[int],
                   reference: list[float]) -> dict[int, float]:
    """Exclusive hypervolume contribution of each point of ``front``."""
    def volume(indices: list[int]) -> float:
        return hypervolume_min([losses[i] for i in indices
                                if all(math.isfinite(v) for v in losses[i])], reference)

    whole = volume(front)
    return {i: whole - volume([j for j in front if j != i]) for i in front}


def rank(vectors: Mapping[K, Sequence[float]], maximize: Sequence[bool]) -> list[K]:
    """Keys from best to worst: by front, then exclusive hypervolume contribution
    (descending), then the mapping's order (the order trials reached the rung). A NaN counts as
    the worst value."""
    keys = list(vectors)
    if not keys:
        return []
    losses = [[_loss(v, up) for v, up in zip(vectors[k], maximize, strict=True)] for k in keys]
    reference = _reference(losses)
    order: list[int] = []
    for front in _fronts(losses):
        gain = _contributions(losses, front, reference)
        order.extend(sorted(front, key=lambda i: (-round(gain[i], 12), i)))
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
