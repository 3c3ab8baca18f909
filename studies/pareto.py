"""Pareto arithmetic on loss matrices, in numpy: the one implementation the search's scheduler,
the fronts of ``srnas pareto`` and the fidelity report share.

Every function takes a ``(n, d)`` float array of *losses* (every objective minimised: see
:func:`losses`, which negates the maximised ones and turns a missing value into ``+inf``, the
worst). ``a`` dominates ``b`` when ``a <= b`` everywhere and ``a < b`` somewhere, so equal rows
never dominate each other and share a front (as in Optuna's ``best_trials``).

Hypervolumes are exact: a cumulative-minimum sweep in 2-D, slices of it along the last
objective in 3-D (both vectorised over many point sets at once, which is what exclusive
contributions need), and recursive slicing beyond (O(n^(d-1) log n), ample for fronts of a
few hundred trials). Optuna 5 keeps its own routine private (``optuna._hypervolume``), and
``moocore`` (LGPL, a C extension with cffi) would be a dependency for speed this does not need.
No torch, no Ray, no pandas.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

# The reference point sits this fraction of the observed range beyond the worst value, so the
# trials that are worst in one objective still add volume.
REFERENCE_MARGIN = 0.1
# Rows compared at once in the dominance test, and the most cells one batched volume
# computation holds: memory stays O(chunk x n), a few MB, whatever the number of results.
_CHUNK_ROWS = 256
_BATCH_CELLS = 1 << 22

Floats = NDArray[np.float64]
Mask = NDArray[np.bool_]
Indices = NDArray[np.intp]


def losses(values: ArrayLike, maximize: Sequence[bool]) -> Floats:
    """``values`` ``(n, d)`` as losses: maximised columns negated, NaN (missing) as ``+inf``."""
    signs = np.where(np.asarray(maximize, dtype=bool), -1.0, 1.0)
    table = np.asarray(values, dtype=float).reshape(-1, signs.size) * signs
    return np.where(np.isnan(table), np.inf, table)


def _checked(loss: ArrayLike) -> Floats:
    table = np.asarray(loss, dtype=float)
    if table.ndim != 2:
        raise ValueError(f"losses must be an (n, d) array (got shape {table.shape})")
    if np.isnan(table).any():
        raise ValueError("losses must not be NaN: a missing value is +inf (see losses())")
    return table


def _lexicographic(table: Floats) -> tuple[Indices, Floats, Indices]:
    """The rows in lexicographic order (``by``, ``ordered``) and their equality groups
    (non-decreasing along that order)."""
    by = np.lexsort(table.T[::-1])
    ordered = table[by]
    _, group = np.unique(ordered, axis=0, return_inverse=True)
    return by, ordered, group.reshape(-1)


def _dominance(ordered: Floats, group: Indices, rows: slice = slice(None)) -> Mask:
    """``D[i, j]``: sorted row ``i`` (of ``rows``) dominates sorted row ``j``. Only a row
    before it in lexicographic order, and not an equal one, can dominate a row, so the first
    objective needs no comparison."""
    block = ordered[rows]
    matrix = group[rows, None] < group[None, :]
    for m in range(1, ordered.shape[1]):
        matrix &= block[:, m, None] <= ordered[None, :, m]
    return matrix


def non_dominated(loss: ArrayLike) -> Mask:
    """Mask of the rows no other row dominates (the first front)."""
    table = _checked(loss)
    by, ordered, group = _lexicographic(table)
    dominated = np.zeros(table.shape[0], dtype=bool)
    for start in range(0, table.shape[0], _CHUNK_ROWS):
        dominated |= _dominance(ordered, group, slice(start, start + _CHUNK_ROWS)).any(axis=0)
    keep = np.empty_like(dominated)
    keep[by] = ~dominated
    return keep


def fronts(loss: ArrayLike, enough: int | None = None) -> list[Indices]:
    """Non-dominated sorting: row indices grouped by front, best front first, each front in
    row order. With ``enough``, stop once the fronts returned hold at least that many rows."""
    table = _checked(loss)
    n = table.shape[0]
    by, ordered, group = _lexicographic(table)
    matrix = _dominance(ordered, group).view(np.uint8)
    counts = matrix.sum(axis=0, dtype=np.int64)  # how many rows dominate each (sorted) row
    remaining = np.ones(n, dtype=bool)
    found: list[Indices] = []
    taken = 0
    while taken < n and (enough is None or taken < enough):
        front = np.flatnonzero(remaining & (counts == 0))
        found.append(np.sort(by[front]))
        taken += front.size
        remaining[front] = False
        counts -= matrix[front].sum(axis=0, dtype=np.int64)  # its rows dominate no more
    return found


def reference_point(loss: ArrayLike, margin: float = REFERENCE_MARGIN) -> Floats:
    """Per objective, the worst finite loss pushed ``margin`` x its range further out (x its
    magnitude when all values are equal, or 1 when they are all 0); NaN for an objective no
    row has a finite value of (no volume is bounded by it)."""
    table = np.asarray(loss, dtype=float)
    finite = np.isfinite(table)
    reference = np.full(table.shape[1], np.nan)
    for m in range(table.shape[1]):
        values = table[finite[:, m], m]
        if values.size:
            lo, hi = float(values.min()), float(values.max())
            reference[m] = hi + margin * ((hi - lo) or abs(hi) or 1.0)
    return reference


def _inside(points: ArrayLike, reference: ArrayLike) -> tuple[Floats, Floats]:
    ref = np.asarray(reference, dtype=float).reshape(-1)
    if ref.size == 0:
        raise ValueError("the reference point has no coordinates")
    table = np.asarray(points, dtype=float).reshape(-1, ref.size)
    return table, ref


def hypervolume(points: ArrayLike, reference: ArrayLike) -> float:
    """Volume dominated by ``points`` (losses) and bounded by ``reference``. Points that are
    not strictly better than the reference in every objective add nothing."""
    table, ref = _inside(points, reference)
    table = np.unique(table[np.all(table < ref, axis=1)], axis=0)
    if table.shape[0] == 0:
        return 0.0
    return _volume(table, ref)


def contributions(points: ArrayLike, reference: ArrayLike) -> Floats:
    """Exclusive hypervolume contribution of each point: the volume only it dominates, i.e.
    the hypervolume of all the points minus that of all but it (0 for a dominated point, for
    each of two equal points and for a point outside the reference box)."""
    table, ref = _inside(points, reference)
    gain = np.zeros(table.shape[0])
    inside = np.flatnonzero(np.all(table < ref, axis=1))
    if inside.size == 0:
        return gain
    kept = table[inside]
    if ref.size == 1:
        best = np.flatnonzero(kept[:, 0] == kept[:, 0].min())
        if best.size == 1:
            rest = np.delete(kept[:, 0], best[0])
            gain[inside[best[0]]] = (rest.min() if rest.size else ref[0]) - kept[best[0], 0]
    elif ref.size <= 3:
        gain[inside] = _exclusive(kept, ref)
    else:
        whole = _volume(kept, ref)
        for k, i in enumerate(inside):
            gain[i] = whole - _volume(np.delete(kept, k, axis=0), ref)
    return gain


def order(loss: ArrayLike, reference: ArrayLike | None = None,
          limit: int | None = None) -> Indices:
    """Rows from best to worst: by front; inside a front, by exclusive hypervolume
    contribution (descending; points with a non-finite loss add none) bounded by
    ``reference`` (default :func:`reference_point` of all rows); remaining ties by row index.
    Contributions are rounded to 12 decimals, so float noise is a tie, not an order.

    With ``limit``, only the first ``limit`` rows are returned, and fronts wholly inside them
    come unordered (by row): which rows make the cut is all such a caller asks, and only the
    front the cut falls in needs its contributions."""
    table = _checked(loss)
    ref = reference_point(table) if reference is None else np.asarray(reference, dtype=float)
    ranked: list[Indices] = []
    taken = 0
    for front in fronts(table, limit):
        if limit is not None and taken + front.size <= limit:
            ranked.append(front)
        else:
            points = table[front]
            finite = np.all(np.isfinite(points), axis=1)
            gain = np.zeros(front.size)
            if finite.any():
                gain[finite] = contributions(points[finite], ref)
            ranked.append(front[np.lexsort((front, -np.round(gain, 12)))])
        taken += front.size
    result = np.concatenate(ranked) if ranked else np.empty(0, dtype=np.intp)
    return result if limit is None else result[:limit]


# -- exact volumes ----------------------------------------------------------------------------
# Points are strictly inside the reference box from here on.


def _areas(xy: Floats, ref: Floats, present: Mask) -> Floats:
    """2-D hypervolume of each set ``present[s]`` of ``xy`` (sorted by x): between one x and
    the next, the dominated height is ref_y minus the lowest y of the set so far (a point not
    in the set leaves it as it was; before the set's first point it is 0)."""
    width = np.diff(np.append(xy[:, 0], ref[0]))
    lowest = np.minimum.accumulate(np.where(present, xy[:, 1], ref[1]), axis=1)
    return ((ref[1] - lowest) * width).sum(axis=1)


def _volume(points: Floats, ref: Floats) -> float:
    if ref.size == 1:
        return float(ref[0] - points[:, 0].min())
    pts = points[np.lexsort(points.T[::-1])]
    m = pts.shape[0]
    if ref.size == 2:
        return float(_areas(pts, ref, np.ones((1, m), dtype=bool))[0])
    if ref.size == 3:
        # Slices along z: the area of the points at or below each z, times the depth to the
        # next z; prefixes in blocks so memory stays bounded.
        z_rank = np.empty(m, dtype=np.intp)
        by_z = np.argsort(pts[:, 2], kind="stable")
        z_rank[by_z] = np.arange(m)
        depth = np.diff(np.append(pts[by_z, 2], ref[2]))
        step = max(1, _BATCH_CELLS // m)
        volume = 0.0
        for k in range(0, m, step):
            prefixes = np.arange(k, min(m, k + step))
            areas = _areas(pts, ref, z_rank[None, :] <= prefixes[:, None])
            volume += float((areas * depth[prefixes]).sum())
        return volume
    # Beyond 3-D: slice along the last objective, recursively.
    by_last = points[np.argsort(points[:, -1], kind="stable")]
    upper = np.append(by_last[1:, -1], ref[-1])
    volume = 0.0
    for i in range(by_last.shape[0]):
        if upper[i] > by_last[i, -1]:
            volume += (upper[i] - by_last[i, -1]) * _volume(by_last[: i + 1, :-1], ref[:-1])
    return volume


def _exclusive(points: Floats, ref: Floats) -> Floats:
    """Exclusive contributions in 2-D or 3-D. 2-D: within a set, only a point of its
    staircase (a strict new lowest y in x order) owns anything: the rectangle up to the next
    staircase point's x and the previous one's y, less what the points it dominates cover of
    it. 3-D: the same areas in each slice along z (the points at or below it), times the
    slice's depth."""
    by_x = np.lexsort(points.T[::-1])
    pts = points[by_x]
    m = pts.shape[0]
    if ref.size == 2:
        present = np.ones((1, m), dtype=bool)
        depth = np.ones(1)
    else:
        z_rank = np.empty(m, dtype=np.intp)
        by_z = np.argsort(pts[:, 2], kind="stable")
        z_rank[by_z] = np.arange(m)
        depth = np.diff(np.append(pts[by_z, 2], ref[2]))
        present = z_rank[None, :] <= np.arange(m)[:, None]
    gain = np.zeros(m)
    step = max(1, _BATCH_CELLS // m)
    for k in range(0, present.shape[0], step):
        gain += (_exclusive_areas(pts, ref, present[k:k + step])
                 * depth[k:k + step, None]).sum(axis=0)
    result = np.empty(m)
    result[by_x] = gain
    return result


def _exclusive_areas(xy: Floats, ref: Floats, present: Mask) -> Floats:
    """``A[s, j]``: the 2-D area only point ``j`` dominates within set ``present[s]`` (``xy``
    sorted by x, then y). Ys are handled as integer ranks so that each segment (a staircase
    point and the points after it up to the next) can run its own cumulative minimum inside
    one flat ``minimum.accumulate``: later segments are offset to lower values."""
    sets, m = present.shape
    x, y = xy[:, 0], xy[:, 1]
    levels, y_rank = np.unique(y, return_inverse=True)
    y_rank = y_rank.reshape(-1)
    top, absent = levels.size, levels.size + 1  # ranks of ref_y and of "no point"
    y_of = np.append(levels, [ref[1], np.inf])
    ranks = np.where(present, y_rank[None, :], absent)
    before = np.minimum(np.minimum.accumulate(ranks, axis=1), top)
    before = np.concatenate([np.full((sets, 1), top), before[:, :-1]], axis=1)
    stair = ranks < before
    segment = np.cumsum(stair, axis=1) + (np.arange(sets) * (m + 1))[:, None]
    n_segments = sets * (m + 1)
    # Each segment's ceiling: the y of the staircase point before it (ref_y for the first).
    ceiling = np.full(n_segments, ref[1])
    ceiling[segment[stair]] = y_of[before[stair]]
    # What the segment's other points cover of its rectangle, column by column.
    span = absent + 1
    offset = (n_segments - segment) * span
    others = np.where(stair, absent, ranks) + offset
    lowest = y_of[np.minimum.accumulate(others.reshape(-1)).reshape(sets, m) - offset]
    width = np.diff(np.append(x, ref[0]))
    cell = width[None, :] * (ceiling[segment] - np.minimum(ceiling[segment], lowest))
    covered = np.bincount(segment.reshape(-1), weights=cell.reshape(-1), minlength=n_segments)
    # The rectangle of each staircase point: to the next staircase point's x (or ref_x).
    where = np.flatnonzero(stair.reshape(-1))
    row, col = where // m, where % m
    right = np.full(where.size, ref[0])
    same_row = row[1:] == row[:-1]
    right[:-1][same_row] = x[col[1:][same_row]]
    owned = segment[stair]
    areas = np.zeros((sets, m))
    areas[stair] = (right - x[col]) * (ceiling[owned] - y[col]) - covered[owned]
    return areas


__all__ = [
    "REFERENCE_MARGIN",
    "contributions",
    "fronts",
    "hypervolume",
    "losses",
    "non_dominated",
    "order",
    "reference_point",
]
