"""Multi-objective successive halving, the pure part: the rung ladder and the promotion rule.

The rule follows Syne Tune's MOASHA (Schmucker et al., 2021): a trial that reaches a rung
continues iff its result vector is among the best ``ceil(n / eta)`` of the ``n`` vectors
recorded at that rung so far, asynchronously (no waiting for a rung to fill). "Best" is the
order of non-dominated sorting: first front first; inside a front, larger exclusive
hypervolume contribution first (the volume only that point dominates, bounded by the rung's
worst values pushed out by 10 % of their range: :func:`srnas.studies.pareto.reference_point`),
so a rung keeps the points that add most to its front, wherever they sit on it; remaining ties
(e.g. identical vectors) go to the trial that reached the rung first. Crowding distance was
the alternative: it cannot order a front of two (both ends are infinite), which is what the
first rungs mostly hold. No Ray; the arithmetic is :mod:`srnas.studies.pareto`, vectorised:
Tune's controller loop waits on every decision.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from srnas.space.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

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


def _losses(vectors: Mapping[K, Sequence[float]], maximize: Sequence[bool]) -> np.ndarray:
    # numpy is imported on the first decision, not with the scheduler table: `srnas --help`
    # reads that table.
    from srnas.studies import pareto

    return pareto.losses([vectors[k] for k in vectors], maximize)


def rank(vectors: Mapping[K, Sequence[float]], maximize: Sequence[bool]) -> list[K]:
    """Keys from best to worst: by front, then exclusive hypervolume contribution
    (descending), then the mapping's order (the order trials reached the rung). A NaN counts as
    the worst value."""
    keys = list(vectors)
    if not keys:
        return []
    from srnas.studies import pareto

    return [keys[i] for i in pareto.order(_losses(vectors, maximize))]


def promote(key: K, vectors: Mapping[K, Sequence[float]], maximize: Sequence[bool],
            eta: int) -> bool:
    """Whether ``key`` (one of ``vectors``: every result recorded at its rung, itself included)
    is among the top ``ceil(n / eta)`` and so continues to the next rung."""
    if key not in vectors:
        raise KeyError(key)
    keep = math.ceil(len(vectors) / eta)
    # Only the front the cut falls in is ordered: the decision is membership of the top keep.
    position = list(vectors).index(key)
    from srnas.studies import pareto

    return position in pareto.order(_losses(vectors, maximize), limit=keep)


__all__ = ["default_min_steps", "promote", "rank", "rung_ladder"]
