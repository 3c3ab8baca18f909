"""Exact hypervolume of a set of points, every objective minimised.

Optuna 5 has a hypervolume routine only in its private ``optuna._hypervolume`` package (the
public API uses it inside ``plot_hypervolume_history`` and never returns the number), so
studies/ carries its own: slicing along the last objective down to a 2-D sweep. That is exact
for any number of objectives and O(n^(d-1) log n), ample for fronts of a few hundred trials.
"""

from __future__ import annotations

from collections.abc import Sequence


def hypervolume_min(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """Volume dominated by ``points`` and bounded by ``reference`` (all objectives minimised).

    Points that are not strictly better than the reference in every objective add nothing.
    """
    ref = tuple(float(r) for r in reference)
    inside = sorted({tuple(float(v) for v in p) for p in points
                     if len(p) == len(ref) and all(v < r for v, r in zip(p, ref, strict=True))})
    if not ref:
        raise ValueError("the reference point has no coordinates")
    if not inside:
        return 0.0
    return _hv(inside, ref)


def _hv(points: list[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    if len(ref) == 1:
        return ref[0] - min(p[0] for p in points)
    if len(ref) == 2:
        return _hv2(points, ref)
    # Slice along the last objective: between two consecutive last-coordinates, the dominated
    # region is the (d-1)-volume of the points at or below the lower one, times the gap.
    by_last = sorted(points, key=lambda p: p[-1])
    volume = 0.0
    for i, point in enumerate(by_last):
        upper = by_last[i + 1][-1] if i + 1 < len(by_last) else ref[-1]
        depth = upper - point[-1]
        if depth > 0:
            volume += depth * _hv([p[:-1] for p in by_last[: i + 1]], ref[:-1])
    return volume


def _hv2(points: list[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    by_x = sorted(points)
    area = 0.0
    best_y = ref[1]
    for i, (x, y) in enumerate(by_x):
        best_y = min(best_y, y)
        next_x = by_x[i + 1][0] if i + 1 < len(by_x) else ref[0]
        area += (next_x - x) * (ref[1] - best_y)
    return area
