"""A change in a per-step figure that held for a run of steps: a rank slow from step 12 on, or only in steps 8-14.

A rank that becomes slow mid-run (a neighbour arrives, a GPU throttles, a data shard grows), or for a few steps (a
checkpoint, a compaction), splits the analyzed steps into two *regimes*: the steps of the change and the others.
Judged over all of them, every figure is a blend: a median of two levels, a "one-off stall" that lasted half the
run, a root cause whose gain is the median of 25 ms and 0 ms.  Each regime must be judged on its own.

The test, over one or more series of the same steps (the job's step, a rank's own work): for every *segment* of
consecutive steps with at least ``MIN_STEPS`` inside and outside it (the steps before a change that held to the last
step; or an episode between two steps), the standardized Mann-Whitney rank sum of the segment against the other
steps.  The statistic is the largest over the series and the segments (the changes that held first, then the
episodes, each at half the level: ``change_points``); its p-value is the share of
``PERMUTATIONS`` random orders of the steps (one order for every series at once: they are figures of the same
steps; a fixed seed: the same run gives the same answer) that reach it.  The search over series and segments is
part of the statistic, so the p-value needs no further correction.  Ranks, not values: one stall does not make a
regime, and the test holds for any distribution of step times; but one stall can hide one, on few steps (six fast
steps, one of them a stall slower than the six slow ones, read p = 0.2): ``regimes`` searches the series again without
the job's one-off stalls.
No order test tells an episode of 3 steps in 12 from chance (3 steps at one of 8 places hold the 3 slowest with
chance 8/220), nor a change from fewer than about 10 steps.  Episodes are searched up to ``MAX_EPISODE_STEPS``
steps (past it, changes that held to the last step only: the segments grow as the square of the steps).

An episode too short for any order test (3 steps in 12: a rank slow in steps 8-10 read "compute 1.2x, -1.19 ms" or
"no single rank") is told by its size instead (``size_episode``, searched beside the order tests: ``regimes`` judges
each change found): the k slowest steps (k from ``MIN_STEPS`` to half the steps), in one run of at least
``MIN_STEPS`` consecutive steps or in several (rank 1 asleep in steps 4-6 and 11-13: neither run is slower than the
other's steps), none the first or the last step, each of them over ``SIZE_SDS`` robust deviations (1.4826 x MAD)
above the other steps' median and slower than every other step by ``MIN_SHIFT_PCT`` of the job's step or more (a
rank on the path in half the steps has a median and MAD of 0 in its own work: the gap is what guards its three
slowest steps in a row, a chance of 10 in 220 by order alone), their median above the others' by as much, and the
job's step in each of them as far above its median in the others (else it is the path changing hands).  That is no
order test but the one-off stall's rule (``spread``) over runs of steps: under noise alone (lognormal or
Pareto, the ranks taking turns on the path) at most 1 of 400 seeded runs of 12, 16 or 24 steps had one, 4 of 400 of
8 steps (``tests/unit/test_regimes.py``).  Its p-value is None; ``sds`` says how far it stands out, ``segments``
where it is in several runs.

Where the change is (``_where``): the segment of least absolute deviation from the medians inside and outside it,
in the series of the largest statistic.  A change is named where p <= ``alpha`` and those medians differ by at least
``MIN_SHIFT_PCT`` of the lower one (a shift too small to change a verdict is left alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .spread import robust_sd

MIN_STEPS = 3  # steps in each regime: fewer is a stall, not a regime
ALPHA = 0.05
MIN_SHIFT_PCT = 20.0
PERMUTATIONS = 4000
CELLS = 4_000_000  # permutations x series x segments scored at once (memory: 8 bytes each, a few times)
MAX_EPISODE_STEPS = 64
SIZE_SDS = 5.0  # an episode told by its size: each step this many robust deviations above the others' median
SEED = 20261207


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangePoint:
    start: int  # the segment's first index
    stop: int  # one past its last index
    n: int  # values tested
    inside: float  # the segment's median
    outside: float  # the other values' median
    p: float | None  # the permutation p-value of the scan (every series and segment searched); None: by its size
    series: int = 0  # which of the series tested changed
    sds: float | None = None  # an episode told by its size: its least step over the others' median, in robust SDs
    gap: float | None = None  # ... and over the slowest other step (the series' unit)
    # an episode told by its size in several runs of steps (rank 1 slow in steps 4-6 and 11-13): each run's (start,
    # stop); ``start`` and ``stop`` then span them all
    segments: tuple[tuple[int, int], ...] = ()

    @property
    def members(self) -> tuple[int, ...]:
        """The indices of the segment's steps (of every run of an episode in several)."""
        if self.segments:
            return tuple(i for a, b in self.segments for i in range(a, b))
        return tuple(range(self.start, self.stop))

    @property
    def shift_pct(self) -> float:
        low, high = sorted((self.inside, self.outside))
        if low <= 0:
            return float("inf") if high > 0 else 0.0
        return 100.0 * (high - low) / low

    @property
    def lasting(self) -> bool:
        """A change that held to the last step: the segment is the steps before it."""
        return self.start == 0

    @property
    def changed(self) -> tuple[int, int, float]:
        """The steps that changed (first index, one past the last) and their median: from the change on for a
        ``lasting`` change, else the segment."""
        return (self.stop, self.n, self.outside) if self.lasting else (self.start, self.stop, self.inside)

    @property
    def others(self) -> float:
        """The median of the steps that did not change."""
        return self.inside if self.lasting else self.outside

    @property
    def at(self) -> int:
        """The first index after the change (a ``lasting`` change), else the segment's first index."""
        return self.stop if self.lasting else self.start


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


def _segments(n: int, episodes: bool) -> tuple[np.ndarray, np.ndarray]:
    """The segments' (start, stop) with at least ``MIN_STEPS`` inside and outside: the steps before a change (start
    0), or the episodes (neither the first nor the last step), up to ``MAX_EPISODE_STEPS`` steps."""
    if not episodes:
        pairs = [(0, b) for b in range(MIN_STEPS, n - MIN_STEPS + 1)]
    elif n <= MAX_EPISODE_STEPS:
        pairs = [(a, b) for a in range(1, n) for b in range(a + MIN_STEPS, n) if n - (b - a) >= MIN_STEPS]
    else:
        pairs = []
    return np.array([a for a, _ in pairs], dtype=np.int64), np.array([b for _, b in pairs], dtype=np.int64)


def _stats(ranks: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Per row of ``ranks`` (orders of the steps' ranks, last axis the steps), per segment: the standardized rank
    sum of the segment."""
    n = ranks.shape[-1]
    cum = np.concatenate([np.zeros((*ranks.shape[:-1], 1)), np.cumsum(ranks, axis=-1)], axis=-1)
    m = (stops - starts).astype(np.float64)
    sums = cum[..., stops] - cum[..., starts]
    return np.abs(sums - m * (n + 1) / 2) / np.sqrt(m * (n - m) * (n + 1) / 12)


def _where(v: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> tuple[int, int]:
    """Where the change is: the segment of least absolute deviation from the medians inside and outside it.  The
    rank statistic tells whether there is one, not where: standardized, it favours balanced splits (a change after
    100 of 120 steps read as after 98); the deviations do not, and one stall among the steps moves them little."""
    def cost(a: int, b: int) -> float:
        inside, outside = v[a:b], np.concatenate([v[:a], v[b:]])
        return float(np.abs(inside - np.median(inside)).sum() + np.abs(outside - np.median(outside)).sum())

    return min(zip(starts.tolist(), stops.tolist(), strict=True), key=lambda ab: cost(*ab))


def change_points(series: Sequence[Sequence[float]], alpha: float = ALPHA) -> ChangePoint | None:
    """The change that held for a run of steps in any of ``series`` (each one value per step, in the same order),
    or None: too few steps, nothing beyond chance, or a shift under ``MIN_SHIFT_PCT``.  A change that held to the
    last step first, then an episode, each at ``alpha`` / 2: one scan over both would spend most of its power on the
    episodes (a clean half-and-half split of 12 steps read p = 0.013 instead of 0.002), and a change that held is
    the simpler account where both fit (rank 0 slow in the first half and rank 1 in the second read as rank 1's
    episode in steps 6-9)."""
    vals = np.asarray([[float(x) for x in s] for s in series], dtype=np.float64)
    if vals.ndim != 2 or vals.shape[1] < 2 * MIN_STEPS:
        return None
    keep = [i for i in range(vals.shape[0]) if np.ptp(vals[i]) > 0]
    if not keep:
        return None
    ranks = np.stack([_ranks(vals[i]) for i in keep])
    for episodes in (False, True):
        starts, stops = _segments(vals.shape[1], episodes)
        if starts.size:
            cp = _scan(vals[keep], ranks, starts, stops, alpha / 2)
            if cp is not None:
                return replace(cp, series=keep[cp.series])
    return None


def _scan(vals: np.ndarray, ranks: np.ndarray, starts: np.ndarray, stops: np.ndarray,
          alpha: float) -> ChangePoint | None:
    n = vals.shape[1]
    observed = _stats(ranks, starts, stops)  # series x segments
    top = float(observed.max())
    rng = np.random.default_rng(SEED)
    batch = max(1, min(PERMUTATIONS, CELLS // (ranks.shape[0] * starts.size)))
    reached = 0
    for done in range(0, PERMUTATIONS, batch):
        order = rng.permuted(np.tile(np.arange(n), (min(batch, PERMUTATIONS - done), 1)), axis=1)
        stats = _stats(ranks[:, order], starts, stops)  # series x permutations x segments
        reached += int((stats.max(axis=(0, 2)) >= top - 1e-9).sum())
    p = (1 + reached) / (PERMUTATIONS + 1)
    if p > alpha:
        return None
    row = int(np.argmax(observed.max(axis=1)))
    v = vals[row]
    a, b = _where(v, starts, stops)
    cp = ChangePoint(start=a, stop=b, n=n, inside=float(np.median(v[a:b])),
                     outside=float(np.median(np.concatenate([v[:a], v[b:]]))), p=p, series=row)
    return cp if cp.shift_pct >= MIN_SHIFT_PCT else None


def size_episode(series: Sequence[Sequence[float]]) -> ChangePoint | None:
    """The steps that stand out by their size in any of ``series`` (the first: the job's step, the scale of the
    shift), in one run of steps or several, furthest above the other steps, or None (see the module's text)."""
    vals = np.asarray([[float(x) for x in s] for s in series], dtype=np.float64)
    if vals.ndim != 2 or vals.shape[1] < 2 * MIN_STEPS:
        return None
    n = vals.shape[1]
    scale = float(np.median(vals[0]))
    shift = MIN_SHIFT_PCT / 100 * scale  # apart from the other steps' median and from the slowest of them
    found: list[ChangePoint] = []
    for row, v in enumerate(vals):
        order = np.argsort(-v, kind="stable")
        for k in range(MIN_STEPS, min(n // 2, MAX_EPISODE_STEPS) + 1):
            if v[order[k - 1]] <= v[order[k]]:
                continue  # a tie across the cut: no set of the k slowest
            runs = _runs(np.sort(order[:k]))  # slower than every other step: the k slowest, in runs of steps
            if runs[0][0] == 0 or runs[-1][1] == n or min(b - a for a, b in runs) < MIN_STEPS:
                continue
            mask = np.zeros(n, dtype=bool)
            mask[order[:k]] = True
            others = v[~mask]
            ref = float(np.median(others))
            sd = robust_sd(others, ref)
            least, inside = float(v[mask].min()), float(np.median(v[mask]))
            if (least > ref + SIZE_SDS * sd and inside - ref >= shift and least - float(others.max()) >= shift
                    and _slowest(vals[0], mask, shift)):  # the job's step too: not the path changing hands
                found.append(ChangePoint(start=runs[0][0], stop=runs[-1][1], n=n, inside=inside, outside=ref, p=None,
                                         series=row, sds=(least - ref) / sd if sd > 0 else float("inf"),
                                         gap=least - float(others.max()), segments=runs if len(runs) > 1 else ()))
    # the set furthest apart from the other steps: the 3 slowest steps may stand out, and the 4 slowest with them,
    # the 4th barely above the others (a rank on the path in every other step: 33-35 ms in its episode, 17-20 ms or
    # nothing in the other steps, read steps 7-10 for 8-10)
    return max(found, key=lambda c: (c.gap or 0.0, -c.series), default=None)


def _runs(idx: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Sorted indices as runs of consecutive ones: ((start, stop), ...)."""
    cuts = np.flatnonzero(np.diff(idx) != 1) + 1
    return tuple((int(r[0]), int(r[-1]) + 1) for r in np.split(idx, cuts))


def _slowest(step: np.ndarray, mask: np.ndarray, shift: float) -> bool:
    """Was the job's step slow in each of the steps of ``mask``: ``shift`` above the other steps' median?  (Not above
    every other step: the host's noise slowed two other steps of a run as much, rank 1 asleep in steps 4-6 and
    11-13.)"""
    return bool(step[mask].min() - np.median(step[~mask]) >= shift)


def change_point(values: Sequence[float], alpha: float = ALPHA) -> ChangePoint | None:
    """``change_points`` of one series."""
    return change_points([values], alpha)
