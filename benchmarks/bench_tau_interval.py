"""How often does a per-rung tau interval's lower bound mislead? (``srnas fidelity`` per rung)

Draws n pairs from a bivariate normal whose Kendall tau is known (rho = sin(pi tau / 2)),
computes tau and the lower bound of two 95 % intervals -- the one ``srnas fidelity`` uses
(:func:`srnas.studies.fidelity.tau_interval`: Fisher z, variance 0.437 / (n - 4)) and the
normal approximation with tau's variance under independence, 2(2n+5)/(9n(n-1)) -- and reports
how often each lower bound is above the true tau (nominal 2.5 %) and clears
:data:`~srnas.studies.fidelity.MIN_RUNG_TAU` (a false clear when the true tau is at or below
it; the power to recommend a rung when it is above).

    .venv/bin/python benchmarks/bench_tau_interval.py [--reps 3000] [--seed 0]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from srnas.studies import fidelity as fid


def tau_of(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau without ties (continuous draws), O(n^2) in numpy."""
    n = len(x)
    s = sum(float(np.sum(np.sign(x[i + 1:] - x[i]) * np.sign(y[i + 1:] - y[i])))
            for i in range(n - 1))
    return s / (n * (n - 1) / 2)


def low_independence(tau: float, n: int) -> float:
    return max(-1.0, tau - fid.Z_95 * math.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    threshold = fid.MIN_RUNG_TAU
    print(f"{args.reps} samples per row; columns: srnas (Fisher z) / independence variance")
    print("| true tau | pairs | lower bound > true tau | lower bound >= "
          f"{threshold:g} | mean lower bound |")
    print("|---:|---:|---:|---:|---:|")
    for true in (0.3, 0.5, 0.75, 0.9):
        rho = math.sin(math.pi * true / 2)
        cov = [[1.0, rho], [rho, 1.0]]
        for n in (6, 8, 10, 16, 24, 40):
            above = np.zeros(2)
            clears = np.zeros(2)
            total = np.zeros(2)
            for _ in range(args.reps):
                xy = rng.multivariate_normal([0.0, 0.0], cov, size=n)
                tau = tau_of(xy[:, 0], xy[:, 1])
                lows = (fid.tau_interval(tau, n)[0], low_independence(tau, n))
                for k, low in enumerate(lows):
                    above[k] += low > true
                    clears[k] += low >= threshold
                    total[k] += low
            r = args.reps
            print(f"| {true:.2f} | {n} | {above[0] / r:.1%} / {above[1] / r:.1%} | "
                  f"{clears[0] / r:.1%} / {clears[1] / r:.1%} | "
                  f"{total[0] / r:+.2f} / {total[1] / r:+.2f} |", flush=True)


if __name__ == "__main__":
    main()
