"""Periodic slow steps: work a rank does every k steps (a checkpoint, an evaluation, logging, a metric's host-side
reduction, a collector pass) that its peers then wait for.

Rank 0 of two saving a checkpoint every third step made its steps 3, 6, 9 and 12 take 120-194 ms against 58 ms, and
rank 1's steps 4, 7, 10 and 13 as long (it waits for rank 0 in the next step's first all-reduce). The report read
that as noise ("steps outside the profiler vary by 62.4%": disturbed, advice withheld), named rank 1's step 10 a
one-off stall, and did not name rank 0. Such steps are neither one-off stalls (``spread``) nor an episode
(``episodes``: steps in a row): they recur at a period, and the rank whose slow steps come first in each period is
where the work is.

Each rank's timed steps (the analyzed profiled ones and the sidecar's outside the profiler, ``steptimes.
unprofiled_steps``) are read on their own. A phase of k (2 or more) *stands apart* where it holds at least
``MIN_REPEATS`` of them, each slower than every step at the other phases (``STRAY`` of those aside: the profiler's
first step, a one-off stall) and than halfway from their median to the phase's mean (a missed checkpoint, a step as
fast as the others, breaks the pattern). A rank is periodic at the smallest k with such a phase whose mean step is at
least ``SLOW_FACTOR`` times the median of its other steps. (A bar on single steps missed them on a loaded host: rank
0's checkpoint steps, 121-155 ms, beside other steps of 43-107 ms whose spread set the bar at 158 ms.) The rank whose
periodic steps stand furthest above its others sets the period; every rank is then placed at its phase of k that
stands apart by ``FOLLOW_SHARE`` of that rank's excess or more (its waits need not be as long: rank 1's were 108-129
ms beside other steps of 59-106 ms). The ranks whose phase comes first (the least lag, modulo k, to every other's)
lead, the others follow that many steps later.

Only such a pattern, with a rank first and others after it, placed on at least ``MIN_SHARE`` of the ranks timed, is
told as one rank's work: in a synchronous job every rank waits for the first. Two or more ranks slow alike in the
same steps are the job's own rhythm (``rhythm``: gradient accumulation traced per micro-batch), told where its
profiled steps moved more bytes than the others (``runnoise``); otherwise work whose waiter step times cannot tell
(the critical path tells it in the profiled steps); two ranks a step apart at k = 2 could each be waiting for the
other. Chance alone: of 1,000 runs of lognormal steps varying by 15% (30%) with a Pareto tail one step in ten, 11
timed steps, 0.2% (4.2%) of ranks are periodic alone; no run of 2, 4 or 8 ranks, independent, had a pattern of one
rank's work, nor of 2 or 8 ranks sharing that noise, where 0.1% (4%) had a phase apart on every rank alike: hence the
bytes a rhythm must show. The periodic steps are left out of the run's noise and of the median of the steps outside
the profiler that the step as it is now is, and named instead (``runnoise``, ``steptimes``); where the pattern shows
in the analyzed steps, the root cause counts the leading ranks slower than their peers beyond chance (this test
stands for ``rootcause._slower``'s, which a loaded host's jitter defeated) and says what recurs
(``crossrank.critfindings``)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from ...numlist import number_list, ranks_text

SLOW_FACTOR = 1.5  # a periodic phase's mean step over the median of the rank's other steps, at least
MIN_REPEATS = 3  # steps at a phase that stands apart: fewer cannot tell a period from chance
STRAY = 1  # steps off the phase allowed to be as slow (the profiler's first step, a one-off stall)
MIN_SHARE = 0.75  # of the ranks timed, placed at k: the others of a synchronous job wait for the first
ALIKE_EXCESS = 2.0  # the job's rhythm: every rank's slow steps stand as far above its others, within this factor
FOLLOW_SHARE = 0.25  # a placed rank's phase stands above its other steps by this share of the first's excess
Series = Mapping[int, Sequence[tuple[int, float]]]  # per rank: (step number, wall time in ms)


class Periodic(NamedTuple):
    """Slow steps that recur every ``period`` steps, first on ``ranks``, then on ``followers`` (rank, lag)."""

    period: int
    ranks: tuple[int, ...]
    steps: tuple[int, ...]  # the leading ranks' slow steps (the first rank's where they differ)
    low_ms: float  # the leading ranks' slow steps, the fastest and the slowest
    high_ms: float
    factor: float  # their median over the median of the leading ranks' other steps
    followers: tuple[tuple[int, int], ...] = ()  # (rank, steps later), ranks slow at the same period after them
    left_out: tuple[tuple[int, int], ...] = ()  # every (rank, step) that is periodic: the leaders' and followers'


def _arrays(vals: Sequence[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray([n for n, _v in vals], dtype=np.int64).reshape(-1),
            np.asarray([v for _n, v in vals], dtype=np.float64).reshape(-1))


def _apart(nums: np.ndarray, vals: np.ndarray, k: int) -> tuple[int, float] | None:
    """(the phase of k whose steps, ``MIN_REPEATS`` or more, are each slower than every step at the other phases,
    ``STRAY`` of those aside, and than halfway from those steps' median to their own mean; that mean less that
    median): the largest such excess; None if none.  Only the phases of the ``STRAY`` + 1 slowest steps can."""
    best: tuple[int, float] | None = None
    for j in sorted({int(nums[i]) % k for i in np.argsort(vals)[::-1][:STRAY + 1]}):
        mask = nums % k == j
        at, rest = vals[mask], np.sort(vals[~mask])
        if at.size < MIN_REPEATS or rest.size <= STRAY:
            continue
        ref, mean = float(np.median(rest)), float(at.mean())
        if float(at.min()) > max(float(rest[-1 - STRAY]), (ref + mean) / 2) and (best is None or mean - ref > best[1]):
            best = (j, mean - ref)
    return best


def periods(nums: np.ndarray, vals: np.ndarray) -> list[int]:
    """The periods a phase that stands apart can have, smallest first: two or more of the ``STRAY`` + 2 slowest steps
    lie at it, so the period divides a difference of their numbers; from 2 to the span over ``MIN_REPEATS`` - 1.  (A
    search of every period took 1.1 s for a rank's 400 steps and grew as their cube.)"""
    if nums.size < 2:
        return []
    top = [int(n) for n in nums[np.argsort(vals)[::-1][:STRAY + 2]]]
    return sorted(divisors(top, 2, (int(nums.max()) - int(nums.min())) // (MIN_REPEATS - 1)))


def divisors(steps: Sequence[int], lo: int, hi: int) -> set[int]:
    """Every divisor from ``lo`` to ``hi`` of a difference between two of ``steps``."""
    out: set[int] = set()
    for d in {abs(a - b) for a in steps for b in steps if a != b}:
        for i in range(1, math.isqrt(d) + 1):
            if d % i == 0:
                out |= {x for x in (i, d // i) if lo <= x <= hi}
    return out


def rank_period(vals: Sequence[tuple[int, float]]) -> tuple[int, int, tuple[int, ...]] | None:
    """(period, phase, the steps at it) of one rank's timed steps; None where no phase of any period stands apart
    by ``SLOW_FACTOR`` (see the module's docstring)."""
    if len(vals) < 2 * MIN_REPEATS:
        return None
    nums, v = _arrays(vals)
    for k in periods(nums, v):
        got = _apart(nums, v, k)
        if got is None:
            continue
        ref = float(np.median(v[nums % k != got[0]]))
        if got[1] + ref >= SLOW_FACTOR * ref:
            return k, got[0], tuple(int(n) for n in nums[nums % k == got[0]])
    return None


def find(series: Series) -> tuple[Periodic, ...]:
    """The periodic slow steps of a run, leaders first (see the module's docstring): at most one record, at the
    period of the rank whose periodic slow steps stand furthest above its others."""
    got = _pattern(series)
    return (got,) if got is not None and got.followers else ()


def rhythm(series: Series) -> tuple[Periodic, ...]:
    """The job's own rhythm: slow steps at one phase of a period on ``MIN_SHARE`` of the ranks or more, every one
    at the same phase (none first; ``Periodic.followers`` empty). Traced per micro-batch with gradient
    accumulation, the one step in four that synchronizes read as "one-off stalls" and "disturbed" (``runnoise``
    tells it only where those steps moved more bytes than the others). Two ranks or more, their slow steps'
    excess over their others within ``ALIKE_EXCESS`` of each other (rank 0 pausing 140 ms where its 7 peers
    waited 40 ms is its work, which step times cannot pin on a step, not a rhythm; one rank alone is no "every
    rank"). Left out of the run's noise and named; the step as it is now, the median of the steps outside the
    profiler, keeps them (it is then the step of the usual kind)."""
    got = _pattern(series)
    if got is None or got.followers or len(got.ranks) < 2:
        return ()
    ex = [a[1] for r in got.ranks if (a := _apart(*_arrays(series[r]), got.period)) is not None]
    return (got,) if len(ex) == len(got.ranks) and max(ex) <= ALIKE_EXCESS * min(ex) else ()


def _pattern(series: Series) -> Periodic | None:
    """The run's pattern at the period of the rank whose periodic slow steps stand furthest above its others; None
    where none, no phase comes first, or too few ranks are placed."""
    seeds = {r: got for r, vals in series.items() if (got := rank_period(vals)) is not None}
    if not seeds:
        return None

    def excess(r: int) -> float:
        at = set(seeds[r][2])
        vals = series[r]
        return float(np.mean([v for n, v in vals if n in at]) - np.median([v for n, v in vals if n not in at]))

    seed = max(seeds, key=lambda r: (excess(r), -r))
    k, phase_s, steps_s = seeds[seed]
    # every rank's phase of k that stands apart, by FOLLOW_SHARE of the seed's excess or more
    phases = {r: ph[0] for r, vals in series.items()
              if (ph := _apart(*_arrays(vals), k)) is not None and ph[1] >= FOLLOW_SHARE * excess(seed)}
    phases[seed] = phase_s
    worst = {ph: max((o - ph) % k for o in phases.values()) for ph in set(phases.values())}
    firsts = [ph for ph, w in worst.items() if w == min(worst.values())]
    if len(firsts) != 1 or len(phases) < MIN_SHARE * len(series):
        return None  # two phases each first (who waits for whom cannot be told), or too few ranks
    lead_ph = firsts[0]
    lag = {r: (ph - lead_ph) % k for r, ph in phases.items()}
    lo, hi = steps_s[0] - lag[seed], steps_s[-1] - lag[seed]  # the leaders' periodic steps, first and last
    left = {r: [n for n, _v in series[r] if n % k == phases[r] and lo <= n - lag[r] <= hi] for r in phases}
    lead = sorted(r for r in phases if lag[r] == 0)
    at = {(r, n) for r in lead for n in left[r]}
    slow_ms = [v for r in lead for n, v in series[r] if (r, n) in at]
    other_ms = [v for r in lead for n, v in series[r] if (r, n) not in at]
    if not slow_ms or not other_ms:
        return None
    ref = float(np.median(other_ms))
    steps = next(tuple(left[r]) for r in lead if left[r])  # a leader timed in the window (ranks may differ)
    return Periodic(period=k, ranks=tuple(lead), steps=steps, low_ms=min(slow_ms),
                    high_ms=max(slow_ms), factor=float(np.median(slow_ms)) / ref if ref > 0 else float("inf"),
                    followers=tuple(sorted((r, g) for r, g in lag.items() if g)),
                    left_out=tuple(sorted((r, n) for r, ns in left.items() for n in ns)))


def without(series: Series, periodic: Sequence[Periodic]) -> dict[int, list[tuple[int, float]]]:
    """Each rank's steps less its periodic ones."""
    drop = {rn for p in periodic for rn in p.left_out}
    return {r: [(n, v) for n, v in vals if (r, n) not in drop] for r, vals in series.items()}


def _later(follow: tuple[tuple[int, int], ...]) -> str:
    by: dict[int, list[int]] = defaultdict(list)
    for r, lag in follow:
        by[lag].append(r)
    return "; ".join(f"{ranks_text(rs, limit=8)} " + ("a step later" if lag == 1 else f"{lag} steps later")
                     for lag, rs in sorted(by.items()))


def describe_one(p: Periodic) -> str:
    """'every 3 steps on rank 0 (steps 3, 6, 9, 12: 120-195 ms, 2.3x its other steps), then on rank 1 a step
    later'."""
    ms = f"{p.low_ms:.0f} ms" if round(p.low_ms) == round(p.high_ms) else f"{p.low_ms:.0f}-{p.high_ms:.0f} ms"
    its = "its" if len(p.ranks) == 1 else "their"
    then = f", then on {_later(p.followers)}" if p.followers else ""
    return (f"every {p.period} steps on {ranks_text(p.ranks, limit=8)} (steps {number_list(p.steps, limit=8)}: "
            f"{ms}, {p.factor:.1f}x {its} other steps){then}")


def describe(periodic: Sequence[Periodic]) -> str:
    return "; ".join(describe_one(p) for p in periodic)


def describe_rhythm(rhythms: Sequence[Periodic]) -> str:
    """'every 4 steps on ranks 0, 1 (steps 3, 7, 11, 15: 83-103 ms, 2.0x their other steps), every rank alike: ...'."""
    return "; ".join(f"{describe_one(p)}, every rank alike, each of them moving more bytes than the others (the "
                     "steps that synchronize under gradient accumulation traced one micro-batch per step)"
                     for p in rhythms)
