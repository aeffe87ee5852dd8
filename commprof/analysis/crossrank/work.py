"""The work each rank was given, against its peers': the floating-point operations of its matrix products per step
(``reader.matmuls``, from the operators' recorded shapes).  Unlike a time, it carries no noise: ranks given equal
shards run the same products step after step, so a rank that runs more was given more (a larger batch, longer
sequences, a larger pipeline stage, more routed tokens), and a rank slower on the same products is slower, not
busier.  The root cause's sentence tells which, where the named rank's trace shows it (``critfindings``)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ...model import RankTrace

MORE_WORK = 1.10  # a rank given this much more matrix work per step than its peers' median was given more work
SAME_WORK = 0.02  # within this fraction of its peers' median, its work is theirs
MIN_FLOPS = 1e6  # a step with less matrix work than this says nothing of what a rank was given


@dataclass(frozen=True, slots=True)
class WorkGap:
    """The named ranks' matrix work per step against their peers' (GFLOP, means over the steps every one of them
    profiled), and the largest named rank's over the peers' median."""

    ranks_gflop: float
    peers_gflop: float
    ratio: float
    steps: int
    peers: int

    @property
    def more(self) -> bool:
        return self.ratio >= MORE_WORK

    @property
    def same(self) -> bool:
        return abs(self.ratio - 1.0) <= SAME_WORK


def work_by_rank(ranks: Sequence[RankTrace], steps: Collection[int] | None = None) -> dict[int, dict[int, float]]:
    """Each rank's matrix FLOPs per profiled step (``steps``: the analyzed ones; None: all), for the ranks whose
    trace recorded the shapes of their products."""
    out = {}
    for rt in ranks:
        per = {s: f for s, f in rt.matrix_flops if (steps is None or s in steps) and f >= MIN_FLOPS}
        if per:
            out[rt.rank] = per
    return out


def work_gap(named: Sequence[int], works: Mapping[int, Mapping[int, float]]) -> WorkGap | None:
    """The named ranks' work against their peers' over the steps all of them profiled; None where a named rank or
    every peer has no work recorded, or no step is common to all."""
    if not named or any(r not in works for r in named):
        return None
    peers = [r for r in works if r not in named]
    if not peers:
        return None
    common = set.intersection(*(set(works[r]) for r in (*named, *peers)))
    if not common:
        return None
    mean = {r: float(np.mean([works[r][s] for s in common])) for r in (*named, *peers)}
    peers_median = float(np.median([mean[r] for r in peers]))
    if peers_median <= 0:
        return None
    top = max(mean[r] for r in named)
    return WorkGap(ranks_gflop=top / 1e9, peers_gflop=peers_median / 1e9, ratio=top / peers_median,
                   steps=len(common), peers=len(peers))


def most_work(works: Mapping[int, Mapping[int, float]], rank: int) -> WorkGap | None:
    """``rank``'s work against all others' (``work_gap``) where it was given ``MORE_WORK`` or more, else None."""
    gap = work_gap((rank,), works)
    return gap if gap is not None and gap.more else None
