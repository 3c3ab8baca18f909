"""studies.pareto against brute-force definitions on random inputs, ties, duplicates and
infinities included (small integer coordinates make ties and equal rows common)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srnas.studies import pareto

INF = math.inf


def brute_dominates(a, b) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True))


def brute_fronts(rows: list[list[float]]) -> list[list[int]]:
    """The definition: a front is what nothing left dominates, peeled off in turn."""
    remaining = list(range(len(rows)))
    found = []
    while remaining:
        front = [i for i in remaining
                 if not any(brute_dominates(rows[j], rows[i]) for j in remaining if j != i)]
        found.append(front)
        remaining = [i for i in remaining if i not in front]
    return found


def brute_hypervolume(rows, ref) -> float:
    """Inclusion-exclusion over the boxes [p, ref] of the points inside the reference box."""
    boxes = [p for p in rows if all(v < r for v, r in zip(p, ref, strict=True))]
    total = 0.0
    for size in range(1, len(boxes) + 1):
        for subset in itertools.combinations(boxes, size):
            corner = [max(c) for c in zip(*subset, strict=True)]
            total += (-1) ** (size + 1) * math.prod(r - c for r, c in zip(ref, corner,
                                                                           strict=True))
    return total


def brute_contributions(rows, ref) -> list[float]:
    whole = brute_hypervolume(rows, ref)
    return [whole - brute_hypervolume(rows[:i] + rows[i + 1:], ref) for i in range(len(rows))]


def brute_order(rows: list[list[float]]) -> list[int]:
    """search.ranking's rule written out: fronts, then contribution (over the finite points,
    bounded by the reference rule), then input order."""
    reference = []
    for m in range(len(rows[0])):
        values = [r[m] for r in rows if math.isfinite(r[m])] or [0.0]
        lo, hi = min(values), max(values)
        reference.append(hi + 0.1 * ((hi - lo) or abs(hi) or 1.0))
    ranked = []
    for front in brute_fronts(rows):
        finite = [i for i in front if all(math.isfinite(v) for v in rows[i])]
        gains = dict(zip(finite, brute_contributions([rows[i] for i in finite], reference),
                         strict=True))
        ranked += sorted(front, key=lambda i: (-round(gains.get(i, 0.0), 12), i))
    return ranked


def matrices(max_rows: int, dims: tuple[int, ...] = (1, 2, 3), with_inf: bool = True):
    coordinate = st.integers(0, 4).map(float)
    if with_inf:
        coordinate = coordinate | st.just(INF)
    return st.sampled_from(dims).flatmap(lambda d: st.lists(
        st.lists(coordinate, min_size=d, max_size=d), min_size=1, max_size=max_rows))


@settings(max_examples=300, deadline=None)
@given(matrices(14, dims=(1, 2, 3, 4)))
def test_fronts_match_the_definition(rows) -> None:
    got = [list(f) for f in pareto.fronts(np.array(rows))]
    assert got == brute_fronts(rows)
    assert list(np.flatnonzero(pareto.non_dominated(np.array(rows)))) == got[0]
    # Stopping early returns a prefix of the fronts covering at least that many rows.
    early = pareto.fronts(np.array(rows), enough=2)
    assert [list(f) for f in early] == got[:len(early)]
    assert sum(f.size for f in early) >= min(2, len(rows))


@settings(max_examples=200, deadline=None)
@given(matrices(7, with_inf=False), st.integers(3, 6))
def test_hypervolume_and_contributions_match_inclusion_exclusion(rows, top) -> None:
    ref = [float(top)] * len(rows[0])
    assert pareto.hypervolume(np.array(rows), ref) == pytest.approx(
        brute_hypervolume(rows, ref), abs=1e-9)
    assert pareto.contributions(np.array(rows), ref) == pytest.approx(
        brute_contributions(rows, ref), abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(matrices(10))
def test_order_matches_the_ranking_rule(rows) -> None:
    table = np.array(rows)
    full = list(pareto.order(table))
    assert full == brute_order(rows)
    for limit in range(1, len(rows) + 1):
        cut = pareto.order(table, limit=limit)
        assert len(cut) == limit and set(cut) == set(full[:limit])


def test_contributions_by_hand() -> None:
    # Staircase (1, 3), (2, 2), (3, 1) under (4, 4): each owns one unit square; the dominated
    # (3, 3) and the two copies of (0.5, 3.5)'s neighbour own nothing.
    rows = [[1, 3], [2, 2], [3, 1], [3, 3]]
    assert list(pareto.contributions(rows, [4, 4])) == [1.0, 1.0, 1.0, 0.0]
    assert list(pareto.contributions([[1, 1], [1, 1]], [2, 2])) == [0.0, 0.0]
    assert list(pareto.contributions([[5, 1]], [4, 4])) == [0.0]  # outside the box


def test_losses_and_reference_point() -> None:
    table = pareto.losses([[30.0, 10.0], [math.nan, 5.0]], [True, False])
    assert table.tolist() == [[-30.0, 10.0], [INF, 5.0]]
    assert pareto.reference_point(table) == pytest.approx([-27.0, 10.5])
    # All equal: 10 % of the magnitude; all zero: 0.1; nothing finite: NaN.
    assert pareto.reference_point([[2.0, 0.0, INF]]).tolist()[:2] == pytest.approx([2.2, 0.1])
    assert math.isnan(pareto.reference_point([[2.0, 0.0, INF]])[2])


def test_hypervolume_refuses_an_empty_reference() -> None:
    with pytest.raises(ValueError, match="no coordinates"):
        pareto.hypervolume([[1.0]], [])


def test_large_inputs_stay_exact() -> None:
    """Batched volumes (chunked over sets) agree with the recursive slicing for 3-D fronts
    larger than one batch."""
    rng = np.random.default_rng(3)
    theta = rng.random((300, 2)) * (math.pi / 2)
    front = 1 - np.column_stack([np.cos(theta[:, 0]) * np.sin(theta[:, 1]),
                                 np.sin(theta[:, 0]) * np.sin(theta[:, 1]),
                                 np.cos(theta[:, 1])])
    ref = np.full(3, 1.1)
    whole = pareto.hypervolume(front, ref)
    gains = pareto.contributions(front, ref)
    for i in (0, 150, 299):
        assert gains[i] == pytest.approx(whole - pareto.hypervolume(np.delete(front, i, 0), ref),
                                         abs=1e-12)
    assert whole == pytest.approx(sliced_volume_3d(front.tolist(), ref.tolist()), rel=1e-12)


def sliced_volume_3d(points: list[list[float]], ref: list[float]) -> float:
    """3-D hypervolume written out plainly: between consecutive z levels, the 2-D staircase
    area of the points at or below the lower level, times the depth."""
    levels = [*sorted({p[2] for p in points}), ref[2]]
    volume = 0.0
    for z, next_z in itertools.pairwise(levels):
        below = sorted((p[0], p[1]) for p in points if p[2] <= z)
        area, lowest = 0.0, ref[1]
        for k, (x, y) in enumerate(below):
            lowest = min(lowest, y)
            right = below[k + 1][0] if k + 1 < len(below) else ref[0]
            area += (right - x) * (ref[1] - lowest)
        volume += area * (next_z - z)
    return volume
