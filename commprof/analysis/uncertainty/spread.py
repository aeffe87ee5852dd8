"""The spread of a per-step figure over the analyzed steps (docs/metrics.md, "Uncertainty").

The central figure is the mean over the analyzed steps after leaving out outlier steps (each named with why), the
median and the range beside it.  An outlier is a step over ``OUTLIER_FACTOR`` times the median of the others and
``OUTLIER_SDS`` robust deviations (``robust_sd``: 1.4826 × MAD) above it (a stall, an export, a collector pause),
only where the slow steps (over halfway from the median to the least such step) are at most a quarter and no
``LASTING_STEPS`` of them in a row (by step number): else the run is noisy or slowed for good."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

OUTLIER_FACTOR = 2.0  # a step this many times the median of the others (and OUTLIER_SDS robust deviations above
OUTLIER_SDS = 5.0  # it) is left out of a mean, named: at most a quarter of the steps
LASTING_STEPS = 3  # such steps in a row are a slowdown that lasted, not one-off stalls (``changepoint.MIN_STEPS``)
MAD_TO_SD = 1.4826  # the median absolute deviation of normal values times this is their standard deviation


def robust_sd(values: np.ndarray, centre: float) -> float:
    """The standard deviation of ``values`` as their median absolute deviation from ``centre`` tells it: a few far
    values (the steps being judged) do not move it."""
    return MAD_TO_SD * float(np.median(np.abs(values - centre)))


class Outlier(NamedTuple):
    """A step left out of a mean, and why."""

    label: str
    value: float
    why: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Spread:
    """A per-step figure over the analyzed steps: the central figure is ``mean`` (outliers left out)."""

    n: int  # steps analyzed (outliers included)
    mean: float
    median: float
    low: float
    high: float
    outliers: tuple[Outlier, ...] = ()

    @property
    def kept(self) -> int:
        return self.n - len(self.outliers)


def spread(values: Sequence[float], labels: Sequence[str] | None = None,
           numbers: Sequence[int] | None = None, alike: Sequence[bool] | None = None) -> Spread | None:
    """The spread of ``values`` (one per step, labelled e.g. "step 7"; ``numbers``: the steps' numbers, where steps
    may be apart: "in a row" is by them, else by position; ``alike``: which steps are of the run's usual kind, the
    only ones that can be outliers, judged among themselves (their median, their count for the quarter): a step of
    another kind, the one of four that synchronizes the gradients, is no stall); None without values."""
    vals = [float(v) for v in values]
    if not vals:
        return None
    names = list(labels) if labels is not None else [f"#{i}" for i in range(len(vals))]
    outliers = []
    keep = list(range(len(vals)))
    pool = [i for i in keep if alike is None or alike[i]]  # the steps of the usual kind, judged among themselves
    if len(pool) >= 3:
        cands = []
        for i in pool:
            others = np.asarray([vals[j] for j in pool if j != i])
            ref = float(np.median(others))
            if ref > 0 and vals[i] > OUTLIER_FACTOR * ref and vals[i] > ref + OUTLIER_SDS * robust_sd(others, ref):
                cands.append((vals[i], i, ref))
        # a one-off: at most a quarter of the steps slow (over halfway from the median to the least candidate: a rank
        # asleep in 6 of 12 steps had its slowest, 47 ms beside 38-45, left out), none in a row of LASTING_STEPS; more
        # is a noisy run or a slowdown that lasted (a rank slow from step 13 on had its 3 slowest of 5 left out)
        cut = (float(np.median([vals[i] for i in pool])) + min((v for v, _i, _r in cands), default=0.0)) / 2
        slow = [i for i in pool if cands and vals[i] > cut]
        at, k = sorted(numbers[i] if numbers is not None else i for i in slow), LASTING_STEPS - 1
        lasting = any(at[j + k] - at[j] == k for j in range(len(at) - k))
        for v, i, ref in (sorted(cands, reverse=True) if len(slow) <= len(pool) // 4 and not lasting else []):
            outliers.append(Outlier(names[i], v, f"{v / ref:.1f}x the median of the other steps ({ref:.3g})"))
            keep.remove(i)
        outliers.sort(key=lambda o: names.index(o[0]))
    kept = [vals[i] for i in keep] or vals
    return Spread(n=len(vals), mean=float(np.mean(kept)), median=float(np.median(vals)), low=min(vals),
                  high=max(vals), outliers=tuple(outliers))
