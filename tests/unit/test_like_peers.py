"""A rank's own work is set beside its peers' only where it began where theirs did (``peers.like_peers``): on gloo, a
rank that arrives last at a DDP bucket's all-reduce waits for it and begins its next own work at its end, while its
peers' work runs on from the step's start beside the all-reduce.  Compared anyway, a rank with twice the batch read
"shorter" at most comparisons and was never named (4 of 4 real runs)."""

from __future__ import annotations

import numpy as np
import pytest
from builders import collective, lane, rank_trace, run

from commprof.analysis.crossrank.critgraph import build
from commprof.analysis.crossrank.matching import cross_rank
from commprof.analysis.crossrank.peers import like_peers, own_and_peer
from commprof.analysis.crossrank.rootcause import COMPUTE, critical
from commprof.model import Run

US = 1_000
MS = 1_000_000


def uneven(steps: int, scale: float, rng: np.random.Generator, buckets: int = 4) -> Run:
    """Two CPU ranks; rank 0's backward chunks take ``scale`` times rank 1's (~3 ms each, +-5%).  Each bucket's
    all-reduce ends 300 us after its last arrival; the rank that arrived last waits for it (its next chunk starts at
    the end), the other goes on computing at once; both wait for every bucket at the step's end, then 1 ms of
    optimizer."""
    ready = np.zeros(2, dtype=np.int64)
    work: dict[int, list[tuple[int, int, int]]] = {0: [], 1: []}
    colls: dict[int, list] = {0: [], 1: []}
    spans: dict[int, list[tuple[int, int, int]]] = {0: [], 1: []}
    seq = 0
    for s in range(steps):
        start, t = ready.copy(), ready.copy()
        ends = []
        for _b in range(buckets):
            arr = np.zeros(2, dtype=np.int64)
            for r in range(2):
                d = int(3 * MS * (scale if r == 0 else 1.0) * rng.uniform(0.95, 1.05))
                work[r].append((int(t[r]), int(t[r]) + d, s))
                arr[r] = t[r] + d
            end = int(arr.max()) + 300 * US
            for r in range(2):
                colls[r].append(collective(int(arr[r]), end, step=s, group="0", group_size=2, seq=seq))
            last = int(np.argmax(arr))
            t = arr.copy()
            t[last] = end  # the last to arrive waits for the all-reduce
            ends.append(end)
            seq += 1
        for r in range(2):
            begin = max(int(t[r]), max(ends))  # every bucket done before the optimizer
            d = int(1 * MS * rng.uniform(0.95, 1.05))
            work[r].append((begin, begin + d, s))
            ready[r] = begin + d + 20 * US
            spans[r].append((s, int(start[r]), int(ready[r])))
    return run(*[rank_trace(r, steps=spans[r], compute=lane([(a, b) for a, b, _ in work[r]], [s for *_, s in work[r]]),
                            collectives=colls[r], world_size=2, device_kind="cpu") for r in range(2)])


def test_a_rank_with_twice_the_work_is_named_for_its_compute():
    rn = uneven(12, 2.0, np.random.default_rng(1))
    crit = critical(rn.ranks, cross_rank(rn.ranks))
    assert crit is not None
    c = crit.cause
    assert c.ranks == (0,) and c.what == COMPUTE and c.ratio is not None and c.ratio > 1.5, c.text
    # rank 0 waits for bucket 1's all-reduce and starts bucket 2's work at its end; rank 1 runs on from the step's
    # start: only the first bucket and the step's end (the optimizer, alike) begin alike; at the first, rank 0 is
    # twice as long every time
    for g in build(rn.ranks, cross_rank(rn.ranks), None, None):
        pairs, end = like_peers(g, 0)
        assert len(pairs) == 1 and end is not None
        own, med, ended = own_and_peer(g, 0)
        assert own.size == 2 and ended and own[0] > 1.8 * med[0]


def test_like_ranks_name_no_one():
    rn = uneven(12, 1.0, np.random.default_rng(2))
    c = critical(rn.ranks, cross_rank(rn.ranks)).cause  # type: ignore[union-attr]
    assert c.ranks == () and c.text.startswith("No single rank holds the job back: bringing rank"), c.text


def tp_dp(steps: int, slow: float, rng: np.random.Generator) -> Run:
    """Four CPU ranks: data-parallel groups {0, 2} and {1, 3}, tensor-parallel groups {0, 1} and {2, 3}.  Each step:
    ~2 ms of work, a DP all-reduce, ~2 ms (rank 0: ``slow`` times), a TP all-reduce, 1 ms.  Every rank waits for
    each all-reduce (they end 300 us after its group's last arrival)."""
    dp = {0: ("dp0", (0, 2)), 2: ("dp0", (0, 2)), 1: ("dp1", (1, 3)), 3: ("dp1", (1, 3))}
    tp = {0: ("tp0", (0, 1)), 1: ("tp0", (0, 1)), 2: ("tp1", (2, 3)), 3: ("tp1", (2, 3))}
    ready = np.zeros(4, dtype=np.int64)
    work: dict[int, list[tuple[int, int, int]]] = {r: [] for r in range(4)}
    colls: dict[int, list] = {r: [] for r in range(4)}
    spans: dict[int, list[tuple[int, int, int]]] = {r: [] for r in range(4)}
    for s in range(steps):
        start = ready.copy()
        for phase, groups in enumerate((dp, tp)):
            arr = np.zeros(4, dtype=np.int64)
            for r in range(4):
                d = int(2 * MS * (slow if r == 0 and phase == 1 else 1.0) * rng.uniform(0.95, 1.05))
                work[r].append((int(ready[r]), int(ready[r]) + d, s))
                arr[r] = ready[r] + d
            for r in range(4):
                name, members = groups[r]
                end = int(max(arr[m] for m in members)) + 300 * US
                colls[r].append(collective(int(arr[r]), end, step=s, group=name, group_size=2, seq=2 * s + phase))
                ready[r] = end
        for r in range(4):
            d = int(1 * MS * rng.uniform(0.95, 1.05))
            work[r].append((int(ready[r]), int(ready[r]) + d, s))
            ready[r] += d + 20 * US
            spans[r].append((s, int(start[r]), int(ready[r])))
    return run(*[rank_trace(r, steps=spans[r], compute=lane([(a, b) for a, b, _ in work[r]], [s for *_, s in work[r]]),
                            collectives=colls[r], world_size=4, device_kind="cpu") for r in range(4)])


def test_tensor_parallel_peers_after_their_own_replica_groups_are_alike():
    """Rank 0's TP all-reduce follows the DP all-reduce of group {0, 2}, its TP peer's that of {1, 3}: other
    instances, the same operation at the same level in a sibling group; they are compared (an exact match dropped
    every TP comparison), and rank 0, twice as slow before it, is named."""
    rn = tp_dp(10, 2.0, np.random.default_rng(3))
    for g in build(rn.ranks, cross_rank(rn.ranks), None, None):
        pairs, end = like_peers(g, 0)
        assert len(pairs) == 2 and end is not None  # the DP all-reduce (from the step's start) and the TP one
    c = critical(rn.ranks, cross_rank(rn.ranks)).cause  # type: ignore[union-attr]
    assert c.predicted_gain_ms == pytest.approx(2.0, rel=0.2)
    # its compute over its peers': (2 + 4 + 1) / (2 + 2 + 1)
    assert c.ranks == (0,) and c.what == COMPUTE and c.ratio == pytest.approx(1.4, abs=0.1), c.text
