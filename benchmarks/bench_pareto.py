"""Time of one MO-ASHA rung decision, as Tune makes it, at 100 / 1,000 / 5,000 results.

A decision is ``MOASHAScheduler.on_trial_result`` for the n-th result reaching a rung that
already records n - 1: the scheduler ranks the rung (non-dominated sorting, then exclusive
hypervolume contributions) inside Tune's controller loop, which waits for it. "old" is the
pure-Python ranking srnas used before ``srnas.studies.pareto`` (kept below, verbatim in
substance: a quadratic peel of fronts and one exact hypervolume per leave-one-out), "new" the
numpy one; both run in the same process on the same vectors, and the two decisions are
checked to agree. The vectors are synthetic trade-offs like a search's (PSNR rising with
latency and memory, with noise), 3 objectives unless ``--objectives 2``.

    .venv/bin/python benchmarks/bench_pareto.py [--sizes 100 1000 5000] [--objectives 3]
                                                [--repeat 20] [--old-limit 60]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace

import numpy as np

# -- the previous implementation (search/ranking.py and studies/hv.py before the change) -------


def _old_dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True))


def _old_fronts(losses: list[list[float]]) -> list[list[int]]:
    remaining = list(range(len(losses)))
    fronts = []
    while remaining:
        front = [i for i in remaining
                 if not any(_old_dominates(losses[j], losses[i]) for j in remaining if j != i)]
        fronts.append(front)
        remaining = [i for i in remaining if i not in front]
    return fronts


def _old_hv(points: list[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    if len(ref) == 1:
        return ref[0] - min(p[0] for p in points)
    if len(ref) == 2:
        by_x = sorted(points)
        area, best_y = 0.0, ref[1]
        for i, (x, y) in enumerate(by_x):
            best_y = min(best_y, y)
            next_x = by_x[i + 1][0] if i + 1 < len(by_x) else ref[0]
            area += (next_x - x) * (ref[1] - best_y)
        return area
    by_last = sorted(points, key=lambda p: p[-1])
    volume = 0.0
    for i, point in enumerate(by_last):
        upper = by_last[i + 1][-1] if i + 1 < len(by_last) else ref[-1]
        if upper - point[-1] > 0:
            volume += (upper - point[-1]) * _old_hv([p[:-1] for p in by_last[: i + 1]],
                                                    ref[:-1])
    return volume


def _old_hypervolume(points: list[list[float]], reference: list[float]) -> float:
    ref = tuple(reference)
    inside = sorted({tuple(p) for p in points if all(v < r for v, r in zip(p, ref,
                                                                            strict=True))})
    return _old_hv(inside, ref) if inside else 0.0


def old_rank(vectors: Mapping[str, Sequence[float]], maximize: Sequence[bool]) -> list[str]:
    keys = list(vectors)
    losses = [[(math.inf if math.isnan(v) else (-v if up else v))
               for v, up in zip(vectors[k], maximize, strict=True)] for k in keys]
    reference = []
    for m in range(len(losses[0])):
        values = [row[m] for row in losses if math.isfinite(row[m])] or [0.0]
        lo, hi = min(values), max(values)
        reference.append(hi + 0.1 * ((hi - lo) or abs(hi) or 1.0))
    order: list[int] = []
    for front in _old_fronts(losses):
        def volume(indices: list[int]) -> float:
            return _old_hypervolume([losses[i] for i in indices
                                     if all(math.isfinite(v) for v in losses[i])], reference)

        whole = volume(front)
        gain = {i: whole - volume([j for j in front if j != i]) for i in front}
        order.extend(sorted(front, key=lambda i: (-round(gain[i], 12), i)))
    return [keys[i] for i in order]


def old_promote(key: str, vectors: Mapping[str, Sequence[float]], maximize: Sequence[bool],
                eta: int) -> bool:
    return key in old_rank(vectors, maximize)[:math.ceil(len(vectors) / eta)]


# -- the measurement ---------------------------------------------------------------------------


def synthetic(n: int, objectives: int, seed: int = 0) -> list[list[float]]:
    """(psnr, latency_ms[, memory_mb]) of ``n`` made-up networks: larger ones are slower,
    heavier and (noisily) better, at a coarse 0.01 dB / 0.01 ms resolution like real ones."""
    rng = np.random.default_rng(seed)
    size = rng.lognormal(0.0, 0.8, n)
    psnr = 28.0 + 1.2 * np.log1p(size) + rng.normal(0, 0.15, n)
    latency = 2.0 + 6.0 * size * rng.lognormal(0, 0.25, n)
    memory = 40.0 + 30.0 * size * rng.lognormal(0, 0.2, n)
    columns = [psnr.round(2), latency.round(2), memory.round(1)][:objectives]
    return np.column_stack(columns).tolist()


def decision_seconds(vectors: list[list[float]], promote: Callable[..., bool],
                     repeat: int) -> tuple[float, bool]:
    """Median seconds of the scheduler's decision on the last vector, and the decision."""
    from ray.tune.schedulers import TrialScheduler

    import srnas.search.scheduler as scheduler_module

    names = ["psnr", "latency_ms", "memory_mb"][:len(vectors[0])]
    modes = ["max", "min", "min"][:len(vectors[0])]
    original = scheduler_module.promote
    scheduler_module.promote = promote
    try:
        times, decision = [], None
        for _ in range(repeat):
            s = scheduler_module.MOASHAScheduler(names, modes, (10, 30, 90), eta=3)
            s.recorded[10] = {f"t{i}": v for i, v in enumerate(vectors[:-1])}
            result = {"status": "rung", "step": 10, **dict(zip(names, vectors[-1],
                                                               strict=True))}
            start = time.perf_counter()
            verdict = s.on_trial_result(None, SimpleNamespace(trial_id="last"), result)
            times.append(time.perf_counter() - start)
            decision = verdict == TrialScheduler.CONTINUE
    finally:
        scheduler_module.promote = original
    return statistics.median(times), bool(decision)


def main(argv: Sequence[str] | None = None) -> None:
    from srnas.search.ranking import promote as new_promote

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--objectives", type=int, choices=(2, 3), default=3)
    parser.add_argument("--repeat", type=int, default=20, help="timed decisions per size (new)")
    parser.add_argument("--old-limit", type=float, default=60.0,
                        help="skip the old ranking at sizes after one that took this long (s)")
    args = parser.parse_args(argv)

    print(f"rung decision, {args.objectives} objectives, eta 3 (median of {args.repeat} new, "
          "1-3 old)")
    print(f"{'results':>8}  {'old ms':>10}  {'new ms':>8}  {'speed-up':>8}  decision")
    old_too_slow = False
    for n in args.sizes:
        vectors = synthetic(n, args.objectives, seed=n)
        new_s, new_keep = decision_seconds(vectors, new_promote, args.repeat)
        if old_too_slow:
            print(f"{n:>8}  {'skipped':>10}  {new_s * 1e3:8.2f}  {'':>8}  "
                  f"{'continue' if new_keep else 'stop'}")
            continue
        old_s, old_keep = decision_seconds(vectors, old_promote, 1 if n > 500 else 3)
        if old_keep != new_keep:
            raise SystemExit(f"the decisions differ at {n} results: old {old_keep}, "
                             f"new {new_keep}")
        old_too_slow = old_s > args.old_limit
        print(f"{n:>8}  {old_s * 1e3:10.1f}  {new_s * 1e3:8.2f}  {old_s / new_s:7.0f}x  "
              f"{'continue' if new_keep else 'stop'}")


if __name__ == "__main__":
    main()
