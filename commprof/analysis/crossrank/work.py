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
from .pgkind import DATA, TENSOR, GroupKind

MORE_WORK = 1.10  # a rank given this much more matrix work per step than its peers' median was given more work
SAME_WORK = 0.02  # within this fraction of its peers' median, its work is theirs
MIN_FLOPS = 1e6  # a step with less matrix work than this says nothing of what a rank was given
CANDIDATES = 8  # ranks furthest above their peers' work tried for the lead where no rank is named (``most_work``)


@dataclass(frozen=True, slots=True)
class WorkGap:
    """The named ranks' matrix work per step against their peers' (GFLOP: the named ranks' mean over the steps all of
    them profiled; the peers' median of their means over the steps each shares with them), and the largest named
    rank's over its peers' (the median over the peers of the ratio on the steps they share); ``kind``: what the
    peers are (``pgkind``: DATA or TENSOR peers, which run the same products; None: every other rank)."""

    ranks_gflop: float
    peers_gflop: float
    ratio: float
    steps: int
    peers: int
    kind: str | None = None
    rank: int | None = None  # the named rank with the most work (``work_gap``'s largest)

    @property
    def more(self) -> bool:
        return self.ratio >= MORE_WORK

    @property
    def no_more(self) -> bool:
        """Not more than its peers' (the same within ``SAME_WORK``, or less)."""
        return self.ratio <= 1.0 + SAME_WORK


def work_by_rank(ranks: Sequence[RankTrace], steps: Collection[int] | None = None) -> dict[int, dict[int, float]]:
    """Each rank's matrix FLOPs per profiled step (``steps``: the analyzed ones; None: all), for the ranks whose
    trace recorded the shapes of their products."""
    out = {}
    for rt in ranks:
        per = {s: f for s, f in rt.matrix_flops if (steps is None or s in steps) and f >= MIN_FLOPS}
        if per:
            out[rt.rank] = per
    return out


def peers_of(named: Sequence[int], kinds: Mapping[str, GroupKind]) -> tuple[Collection[int] | None, str | None]:
    """The ranks whose work the named ranks' is compared with, and what they are: the other members of the smallest
    data-parallel group holding the first named rank (replicas run the same products), else of its smallest
    tensor-parallel group (shards of the same products); else every other rank (None: pipeline stages and experts
    do different work by design, so there the comparison is the partition's or the routing's)."""
    for kind in (DATA, TENSOR):
        groups = [k.ranks for k in kinds.values() if k.kind == kind and named[0] in k.ranks and len(k.ranks) > 1]
        if groups:
            return [r for r in min(groups, key=len) if r not in named], kind
    return None, None


def work_gap(named: Sequence[int], works: Mapping[int, Mapping[int, float]], peers: Collection[int] | None = None,
             kind: str | None = None) -> WorkGap | None:
    """The named ranks' work against their ``peers``' (None: every other rank with work recorded); None where a
    named rank or every peer has no work recorded, or no peer profiled a step the named ranks all did."""
    if not named or any(r not in works for r in named):
        return None
    common = set.intersection(*(set(works[r]) for r in named))
    if not common:
        return None
    own = {r: float(np.mean([works[r][s] for s in common])) for r in named}
    top = max(named, key=lambda r: own[r])
    others = [r for r in (works if peers is None else peers) if r not in named and r in works]
    ratios, means = [], []
    for r in others:
        shared = sorted(common & set(works[r]))
        if shared:
            theirs = float(np.mean([works[r][s] for s in shared]))
            ratios.append(float(np.mean([works[top][s] for s in shared])) / theirs)
            means.append(theirs)
    if not ratios:
        return None
    mine = own[top]
    return WorkGap(ranks_gflop=mine / 1e9, peers_gflop=float(np.median(means)) / 1e9, ratio=float(np.median(ratios)),
                   steps=len(common), peers=len(ratios), kind=kind, rank=top)


def most_work(works: Mapping[int, Mapping[int, float]], kinds: Mapping[str, GroupKind]) -> WorkGap | None:
    """The rank given the most work against its peers (``peers_of``, ``work_gap``), where that is ``MORE_WORK`` or
    more; None otherwise.  Tried on the ``CANDIDATES`` ranks whose mean work per step stands furthest above their
    peers' median mean (at 1,024 ranks, every rank against every peer step by step costs seconds)."""
    mean = {r: float(np.mean(list(w.values()))) for r, w in works.items() if w}

    everyone = float(np.median(list(mean.values()))) if mean else 0.0
    peers_by_rank = {r: peers_of((r,), kinds) for r in mean}

    def rough(r: int) -> float:
        peers = peers_by_rank[r][0]
        theirs = [mean[p] for p in peers if p in mean] if peers is not None else [everyone]
        median = float(np.median(theirs)) if theirs else 0.0
        return mean[r] / median if median > 0 else 0.0

    gaps = [g for r in sorted(mean, key=lambda r: -rough(r))[:CANDIDATES]
            if (g := work_gap((r,), works, *peers_by_rank[r])) is not None and g.more]
    return max(gaps, key=lambda g: g.ratio, default=None)
