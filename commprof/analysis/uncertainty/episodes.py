"""Slow episodes among the steps outside the profiler: several steps in a row in which the job was slow, which the
trace did not record.

A job slowed for a few steps after the profiler stopped (a checkpoint, a neighbour's burst, a data shard's
compaction) made its steps outside the profiler vary by 37.8% (an outside tester's rank asleep 25 ms in steps 20-22
of 28; its other steps: 16.5%), which calls a traced run disturbed and withholds its advice, for steps the report
says nothing else about.  Such steps are no one-off stall
(``spread`` leaves out single slow steps, never three in a row) but an episode, told by its size as in the
profiled steps (``changepoint.size_episode``: the k slowest steps in one run of three or more, or in several, each
far above the others' median and above the slowest other step, none the first or the last), in the job's step (the
slowest rank's wall time, at the steps every rank timed) or in a rank's with the job's step slow in each of them;
the steps found are left out of every rank's noise and named instead, where the other steps are at least twice as
many (a shared host's run slow in 3 of its 7 steps outside the profiler is that noisy, and 4 steps would understate
it).  The trace cannot say which rank was slow in
them, or why: the report says so, and how to trace them.  One limit: a one-off stall slower than the episode's steps
hides it (the episode is then not the slowest steps), and the series keeps its variation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from ...numlist import number_list
from .changepoint import size_episode


class Episode(NamedTuple):
    """Steps outside the profiler in which the job was slow, left out of the run's noise."""

    steps: tuple[int, ...]  # step numbers
    low_ms: float  # the job's step in them (the slowest rank's wall time), the fastest and the slowest
    high_ms: float
    factor: float  # their median over the median of the job's other steps


MAX_RANKS = 8  # ranks' own series searched beside the job's step
MIN_OTHERS = 2  # the other steps, at least this many times the episode's: what is left measures the run's noise
Series = Mapping[int, Sequence[tuple[int, float]]]  # per rank: (step number, wall time in ms), in step order


def find(outside: Series) -> tuple[dict[int, list[tuple[int, float]]], tuple[Episode, ...]]:
    """Each rank's steps outside the profiler less the job's slow episode, and the episode (none or one)."""
    kept = {r: list(v) for r, v in outside.items()}
    common = sorted(set.intersection(*(set(n for n, _ms in v) for v in outside.values()))) if outside else []
    if not common:
        return kept, ()
    at = [dict(v) for v in outside.values()]
    job = [max(d[n] for d in at) for n in common]  # the job's step: the slowest rank's wall time
    # beside it, the ranks whose slowest step stands furthest above their median (a 1,024-rank job: a few, not all)
    apart = sorted(at, key=lambda d: -max(d[n] for n in common) / max(float(np.median([d[n] for n in common])), 1e-9))
    cp = size_episode([job, *([d[n] for n in common] for d in apart[:MAX_RANKS])])
    if cp is None:
        return kept, ()
    runs = cp.segments or ((cp.start, cp.stop),)
    if MIN_OTHERS * sum(b - a for a, b in runs) > len(common) - sum(b - a for a, b in runs):
        return kept, ()  # as much the run as its other steps: its noise, not an episode
    if any(common[b - 1] - common[a] != b - 1 - a for a, b in runs):
        return kept, ()  # the steps around the profiled ones are apart: no episode spans the trace
    steps = tuple(common[i] for a, b in runs for i in range(a, b))
    inside, others = [job[common.index(n)] for n in steps], [v for n, v in zip(common, job, strict=True)
                                                             if n not in steps]
    ref = float(np.median(others))
    ep = Episode(steps=steps, low_ms=min(inside), high_ms=max(inside),
                 factor=float(np.median(inside)) / ref if ref > 0 else float("inf"))
    return {r: [(n, ms) for n, ms in v if n not in steps] for r, v in kept.items()}, (ep,)


def describe(episodes: Sequence[Episode]) -> str:
    """'steps 20-22 (41-45 ms, 2.1x the median of the job's other steps), which the trace did not record: ...'."""
    def one(e: Episode) -> str:
        ms = f"{e.low_ms:.0f} ms" if round(e.low_ms) == round(e.high_ms) else f"{e.low_ms:.0f}-{e.high_ms:.0f} ms"
        return f"steps {number_list(e.steps, min_run=2)} ({ms}, {e.factor:.1f}x the median of the job's other steps)"
    if not episodes:
        return ""
    return ("; ".join(one(e) for e in episodes) + ", which the trace did not record: it cannot say which rank was slow "
            "in them or why (if such steps recur, trace them: commprof.trace's schedule)")
