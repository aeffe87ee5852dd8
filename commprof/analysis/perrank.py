"""What ``analyze()`` computes from one rank alone, and the digest the engine's map step hands over.

A large run is analyzed as a map step (one task per rank: parse, then every analysis that needs only that rank)
and a reduce step (matching collectives across ranks, clocks, stragglers, bandwidth, the advisor).  The map
step hands the reduce step a rank's ``RankDigest`` — overlap, DDP bucket rows, input transfers, pipeline busy
time, and the unions the straggler split reads — beside its ``RankTrace``, whose interval lanes (by far its
largest part: one entry per kernel or operator) can then be spilled to disk (``commprof.engine.spill``).  So the
reduce step holds what crosses ranks (steps, collectives, sidecars) and the per-step results, not the events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .. import intervals as iv
from ..model import RankTrace, SpilledArray
from .ddp.buckets import BucketStep, bucket_steps
from .overlap import RankOverlap, rank_overlap
from .spans import lane_span, rank_spans
from .transfers import Transfers, transfers

StepsKey = tuple[int, ...] | range | None


def steps_key(steps: Iterable[int] | None) -> StepsKey:
    """A compact, canonical form of a step selection (the analyses use only its set of numbers): consecutive
    numbers become a ``range``, so ``--steps 3:`` (a million numbers) travels to each worker in a few bytes."""
    if steps is None:
        return None
    if isinstance(steps, range) and steps.step == 1:
        return steps
    nums = sorted(set(steps))
    if nums and nums[-1] - nums[0] == len(nums) - 1:
        return range(nums[0], nums[-1] + 1)
    return tuple(nums)


@dataclass(frozen=True, slots=True)
class RankResults:
    """What ``analyze()`` computes from one rank alone, for one step selection."""

    overlap: RankOverlap
    bucket_rows: tuple[BucketStep, ...]
    transfers: Transfers | None


def rank_results(rt: RankTrace, wanted: tuple[int, ...] | None) -> RankResults:
    return RankResults(rank_overlap(rt, wanted), tuple(bucket_steps(rt, wanted)), transfers(rt, wanted))


@dataclass(frozen=True, slots=True)
class RankDigest:
    steps: StepsKey  # ``steps_key`` of the steps ``results`` were computed for (None: all)
    results: RankResults
    compute_busy_ns: dict[int, int]  # step -> length of the compute union (steps with recorded module calls)
    # for the straggler split: the union of compute, then the exposed communication (both canonical), as one
    # 2 x (n_compute + m) array of starts and ends
    unions: np.ndarray | SpilledArray
    n_compute: int

    def spans(self) -> tuple[iv.Span, iv.Span]:
        u = self.unions.get() if isinstance(self.unions, SpilledArray) else self.unions
        k = self.n_compute
        return (u[0, :k], u[1, :k]), (u[0, k:], u[1, k:])


def digest(rt: RankTrace, steps: Iterable[int] | None = None) -> RankDigest:
    key = steps_key(steps)
    recorded = {c.step for c in rt.sidecar.module_calls} if rt.sidecar is not None else set()
    busy = {s.number: compute_busy(rt, s.number) for s in rt.steps if s.number in recorded}
    comp, comm = late_split_spans(rt)
    unions = np.stack([np.concatenate([comp[0], comm[0]]), np.concatenate([comp[1], comm[1]])])
    return RankDigest(key, rank_results(rt, tuple(key) if key is not None else None), busy, unions,
                      int(comp[0].size))


def compute_busy(rt: RankTrace, step: int, d: RankDigest | None = None) -> int:
    """ns of compute in one step (the union of the compute intervals attributed to it)."""
    if d is not None and step in d.compute_busy_ns:
        return int(d.compute_busy_ns[step])
    return iv.length(lane_span(rt.compute, step))


def late_split_spans(rt: RankTrace, d: RankDigest | None = None) -> tuple[iv.Span, iv.Span]:
    """The rank's compute union and its exposed communication, over the whole trace."""
    if d is not None:
        return d.spans()
    s = rank_spans(rt)
    return s.compute, s.exposed


def results_for(rt: RankTrace, wanted: tuple[int, ...] | None, key: StepsKey,
                d: RankDigest | None = None) -> RankResults:
    """The rank's results for these steps (``key = steps_key(wanted)``): the map step's where it computed them
    for the same steps, else computed now (from spilled lanes if need be)."""
    return d.results if d is not None and d.steps == key else rank_results(rt, wanted)
