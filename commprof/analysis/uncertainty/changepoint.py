"""A lasting change in a per-step figure: the step where a run's steps moved to another level and stayed there.

A rank that becomes slow mid-run (a neighbour arrives, a GPU throttles, a data shard grows) splits the analyzed steps
into two *regimes*.  Judged over all of them, every figure is a blend: a median of two levels, a "one-off stall" that
lasted half the run, a root cause whose gain is the median of 25 ms and 0 ms.  Each regime must be judged on its own.

The test: for every split of the steps into a first part of ``k`` and a last part of ``n - k`` steps (each at least
``MIN_STEPS``), the standardized Mann-Whitney rank sum of the first part; the largest over the splits is the
statistic, and its p-value is the share of ``PERMUTATIONS`` random orders of the same steps (a fixed seed: the same
run gives the same answer) that reach it.  Ranks, not values: one stall does not make a regime, and the test holds for
any distribution of step times.  Searching over the splits is part of the permutation's statistic, so the p-value
needs no further correction.  A change is named where p <= ``ALPHA`` and the two parts' medians differ by at least
``MIN_SHIFT_PCT`` of the lower one (a shift too small to change a verdict is left alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_STEPS = 3  # steps in each regime: fewer is a stall, not a regime
ALPHA = 0.05
MIN_SHIFT_PCT = 20.0
PERMUTATIONS = 4000
SEED = 20261207


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangePoint:
    at: int  # index of the first value of the second regime
    before: float  # the first regime's median
    after: float  # the second regime's median
    p: float  # the permutation p-value of the split

    @property
    def shift_pct(self) -> float:
        low = min(self.before, self.after)
        return 100.0 * abs(self.after - self.before) / low if low > 0 else float("inf")


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties averaged."""
    order = np.argsort(values, kind="stable")
    r = np.empty(values.size, dtype=np.float64)
    r[order] = np.arange(1, values.size + 1, dtype=np.float64)
    for v in np.unique(values):
        tie = values == v
        if tie.sum() > 1:
            r[tie] = r[tie].mean()
    return r


def _stats(ranks: np.ndarray) -> np.ndarray:
    """Per row of ``ranks`` (orders of the steps' ranks): per split k, the standardized rank sum of the first k."""
    n = ranks.shape[-1]
    k = np.arange(MIN_STEPS, n - MIN_STEPS + 1, dtype=np.float64)
    sums = np.cumsum(ranks, axis=-1)[..., MIN_STEPS - 1:n - MIN_STEPS]
    return np.abs(sums - k * (n + 1) / 2) / np.sqrt(k * (n - k) * (n + 1) / 12)


def change_point(values: Sequence[float]) -> ChangePoint | None:
    """The lasting change in ``values`` (per step, in order), or None: too few steps, no split beyond chance, or a
    shift under ``MIN_SHIFT_PCT``."""
    v = np.asarray([float(x) for x in values], dtype=np.float64)
    n = v.size
    if n < 2 * MIN_STEPS or np.ptp(v) == 0:
        return None
    r = _ranks(v)
    observed = _stats(r)
    best = int(np.argmax(observed))
    at = best + MIN_STEPS
    before, after = float(np.median(v[:at])), float(np.median(v[at:]))
    cp = ChangePoint(at=at, before=before, after=after, p=1.0)
    if cp.shift_pct < MIN_SHIFT_PCT:
        return None
    rng = np.random.default_rng(SEED)
    perms = rng.permuted(np.tile(r, (PERMUTATIONS, 1)), axis=1)
    reached = int((_stats(perms).max(axis=1) >= observed[best] - 1e-9).sum())
    p = (1 + reached) / (PERMUTATIONS + 1)
    return ChangePoint(at=at, before=before, after=after, p=p) if p <= ALPHA else None
