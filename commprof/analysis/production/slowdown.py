"""Slow ranks over a whole job, from the monitor's rollups: how late each rank issued its collectives compared
with the others, step by step, and the step ranges in which a rank was late.

Clocks are aligned as the trace analysis aligns them, by moments common to all ranks: a step ends when its last
collective completes, which every rank leaves together, so each rank's offset to the reference rank (the lowest)
is the median difference of their step ends.  A rank's lateness in a collective instance (same process group and
sequence number on every rank) is its aligned issue time minus the earliest rank's; per step, its largest over
the step's instances (once a late rank has joined one collective, the others of the step find it on time: the
lateness it brought into the step shows in the first).  A rank is slow in a step when its lateness exceeds
``max(MIN_LATE_MS, median + 5 robust standard deviations)`` of every rank's per-step lateness; slow steps closer
than ``MAX_GAP`` steps merge into one range.  A range is kept when it lasts ``MIN_STEPS`` steps or more and the
lateness it brought adds up to at least one median step of the job (the others waited a whole step for it):
shorter or cheaper bursts (a GC pause, a neighbour's job on a shared host) are noise at the monitor's grain —
except a single step more than ``STALL_STEPS`` median steps and ``STALL_MIN_MS`` late (a stall): that is slow
however short the run, a range of its own (the noise around it is judged without it).  Slow steps that recur
every k steps (work the rank does at a period: a checkpoint, an evaluation) are one range with their period, judged
before the others; the steps the rank's own monitor rolled up in, a little late, are no such period (on a 2-core
host with 3 ranks a rank's rollups every 20 steps made it 7 ms late in each).  The first monitored step (start-up)
is left out.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ...model import MonitorRun
from ..uncertainty.periodic import divisors

MIN_LATE_MS = 2.0
MAX_GAP = 3
MIN_STEPS = 5
STALL_STEPS = 3.0  # a single step this many median steps late is slow, however short the range ...
STALL_MIN_MS = 1000.0  # ... and at least this late: a busy 2-core host's scheduling hiccups reached 300 ms
PERIODIC_REPEATS = 3  # late steps at one phase of a period: work a rank does every k steps (a checkpoint)
ROLLUP_MAX_MS = 50.0  # the most a rank's own rollup delays it (2,000 Flight Recorder entries: 34 ms)


@dataclass(frozen=True, slots=True)
class RankLateness:
    rank: int
    steps: np.ndarray  # int64
    late_ms: np.ndarray  # lateness in each step (its largest over the step's collectives)


@dataclass(frozen=True, slots=True)
class SlowRange:
    rank: int
    first_step: int
    last_step: int
    mean_late_ms: float  # over its slow steps
    slow_steps: int = 1  # the steps in the range late beyond the threshold
    stall: bool = False  # one step more than STALL_STEPS median steps and STALL_MIN_MS late (periodic: any of them)
    period: int | None = None  # late every ``period`` steps, at ``steps`` (``_periodic``), else a range
    steps: tuple[int, ...] = ()

    def spans(self) -> list[tuple[float, float]]:
        """The steps a plot shades: each late step of a periodic range (not the steps between), else the range."""
        if self.period is not None:
            return [(n - 0.5, n + 0.5) for n in self.steps]
        return [(self.first_step, self.last_step)]


@dataclass(frozen=True, slots=True)
class Slowdown:
    reference_rank: int
    offsets_ns: dict[int, int]  # add to a rank's clock to get the reference rank's
    threshold_ms: float
    series: tuple[RankLateness, ...]
    ranges: tuple[SlowRange, ...]
    instances: int


def _offsets(mrun: MonitorRun) -> tuple[int, dict[int, int]]:
    ends = {r.rank: {s: e for s, _b, e in r.steps} for r in mrun.ranks}
    ref = min(ends)
    out = {ref: 0}
    for rank, e in ends.items():
        common = sorted(set(e) & set(ends[ref]))
        if rank != ref and common:
            out[rank] = int(np.median([ends[ref][s] - e[s] for s in common]))
    return ref, out


def slowdown(mrun: MonitorRun) -> Slowdown | None:
    """None with fewer than two ranks' rollups."""
    if len(mrun.ranks) < 2:
        return None
    ref, offsets = _offsets(mrun)
    starts = {r.rank: {s: b for s, b, _e in r.steps} for r in mrun.ranks}
    issued: dict[tuple[str, int], dict[int, tuple[int, float]]] = defaultdict(dict)  # (pg, seq) -> rank -> step, t
    for r in mrun.ranks:
        if r.rank not in offsets:
            continue
        for c in r.collectives:
            for i in c.issues:
                b = starts[r.rank].get(i.step)
                if b is not None:
                    issued[(c.pg, i.seq)][r.rank] = (i.step, b + i.offset_us * 1e3 + offsets[r.rank])
    per: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    n = 0
    for ranks in issued.values():
        if len(ranks) < len(offsets):
            continue  # not every rank's side of it was rolled up
        n += 1
        first = min(t for _s, t in ranks.values())
        for rank, (step, t) in ranks.items():
            per[rank][step].append((t - first) / 1e6)
    series = []
    first_step = min((min(v) for v in per.values() if v), default=None)
    for rank in sorted(per):
        steps = sorted(s for s in per[rank] if s != first_step)  # the first step: start-up, ranks ready at their pace
        series.append(RankLateness(rank, np.array(steps, dtype=np.int64),
                                   np.array([float(max(per[rank][s])) for s in steps])))
    if not series:
        return Slowdown(ref, offsets, MIN_LATE_MS, (), (), 0)
    allv = np.concatenate([s.late_ms for s in series])
    med = float(np.median(allv))
    mad = float(np.median(np.abs(allv - med))) * 1.4826
    threshold = max(MIN_LATE_MS, med + 5 * mad)
    durs = [(e - b) / 1e6 for r in mrun.ranks for _s, b, e in r.steps if e > b]
    min_lost_ms = float(np.median(durs)) if durs else 0.0
    rollups = {r.rank: frozenset(r.rollups) for r in mrun.ranks}
    ranges = [r for s in series for r in _ranges(s, threshold, min_lost_ms, rollups.get(s.rank, frozenset()))]
    return Slowdown(ref, offsets, threshold, tuple(series), tuple(ranges), n)


def _periodic(s: RankLateness, idx: np.ndarray, stall_ms: float, min_lost_ms: float,
              rollups: frozenset[int] = frozenset()) -> tuple[SlowRange | None, np.ndarray]:
    """The rank's late steps (``idx``) that recur every k steps, k over ``MAX_GAP`` (closer ones merge into a range),
    the smallest that holds of the gaps between them and the divisors of the differences between the three latest
    (a stray late step in every period breaks the gaps): at least ``PERIODIC_REPEATS`` of them at one phase of k,
    every monitored step at that phase from the first to the last of them late, their lateness half the rank's or
    more and a median step or more; one range with its period, and the late steps left.  Steps its own monitor
    rolled up in (``MonitorRank.rollups``), late by ``ROLLUP_MAX_MS`` or less, are not searched: the monitor's
    work, not the job's (a 3-rank run on 2 cores was 7 ms late at each); a checkpoint saved at those steps is later
    than that and stays."""
    cand = np.array([i for i in idx.tolist() if int(s.steps[i]) not in rollups or s.late_ms[i] > ROLLUP_MAX_MS],
                    dtype=np.int64)
    steps = s.steps[cand]
    if steps.size < PERIODIC_REPEATS:
        return None, idx
    total = float(s.late_ms[cand].sum())
    top = [int(n) for n in steps[np.argsort(s.late_ms[cand])[::-1][:3]]]
    for k in sorted({int(g) for g in np.diff(steps) if g > MAX_GAP} | divisors(top, MAX_GAP + 1, int(steps[-1]))):
        phases, counts = np.unique(steps % k, return_counts=True)
        phase = int(phases[np.argmax(counts)])
        on = cand[steps % k == phase]
        first, last = int(s.steps[on[0]]), int(s.steps[on[-1]])
        due = int(np.count_nonzero((s.steps % k == phase) & (s.steps >= first) & (s.steps <= last)))
        late = s.late_ms[on]
        if on.size >= PERIODIC_REPEATS and due == on.size and 2 * late.sum() >= total and late.sum() >= min_lost_ms:
            return (SlowRange(s.rank, first, last, float(late.mean()), int(on.size), bool((late > stall_ms).any()),
                              k, tuple(int(n) for n in s.steps[on])), idx[~np.isin(idx, on)])
    return None, idx


def _ranges(s: RankLateness, threshold: float, min_lost_ms: float,
            rollups: frozenset[int] = frozenset()) -> list[SlowRange]:
    """Late steps that recur at a period are one range of their own (``_periodic``: a checkpoint every 100 steps
    read as one stall per checkpoint, or, each under a second, as nothing); a stall is a range of its own step
    (merged with the noise around it, "steps 2-14, 717 ms late on average" hid a 5 s stall at step 4 among 2-6 ms);
    the other slow steps merge and are kept by the rules above."""
    idx = np.flatnonzero(s.late_ms > threshold)
    stall_ms = max(STALL_STEPS * min_lost_ms, STALL_MIN_MS)
    periodic, idx = _periodic(s, idx, stall_ms, min_lost_ms, rollups)
    stalls: list[list[int]] = []
    for i in (int(i) for i in idx if s.late_ms[i] > stall_ms):  # consecutive steps of one stall are one range
        if stalls and s.steps[i] == s.steps[stalls[-1][-1]] + 1:
            stalls[-1].append(i)
        else:
            stalls.append([i])
    out = [SlowRange(s.rank, int(s.steps[g[0]]), int(s.steps[g[-1]]), float(np.mean(s.late_ms[g])), len(g), True)
           for g in stalls]
    rest = [int(i) for i in idx if s.late_ms[i] <= stall_ms]
    runs: list[list[int]] = []
    for i in rest:
        if runs and s.steps[i] - s.steps[runs[-1][-1]] <= MAX_GAP:
            runs[-1].append(i)
        else:
            runs.append([i])
    out += [SlowRange(s.rank, int(s.steps[r[0]]), int(s.steps[r[-1]]), float(np.mean(s.late_ms[r])), len(r))
            for r in runs if len(r) >= MIN_STEPS and float(np.sum(s.late_ms[r])) >= min_lost_ms]
    return sorted(out + ([periodic] if periodic is not None else []), key=lambda r: r.first_step)
