"""A rank's own work at its peers' median speed: what the root cause replays (``rootcause``) and compares.

- Before a collective: the median of the other ranks' own work before the same instance (in lockstep they did the
  same work); where the rank's work is *compared* with its peers' (is it slower, by what ratio), only those whose
  own work began where its did (``like_peers``).
- Before a send or recv between pipeline stages, the other side did other work (its own stage, or nothing while it
  waited to post the recv): a stage's peers are the other stages of the step (the ranks with send/recv pairs).  Its
  own work there is scaled by the stages' median total of that part in the step over its own total: a stage that
  computes twice its peers' total gets half; under jitter the ratios stay near 1.
- Before the step's end: the median of the other ranks' own work before theirs (compared: likewise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .critgraph import Parts, StepGraph
from .pgkind import NAMES, GroupKind

COMPUTE, HOST, IDLE = "compute", "launch/host", "idle before collectives"
PART_FIELDS = {COMPUTE: ("compute_p", "compute_e"), HOST: ("host_p", "host_e"), IDLE: ("idle_p", "idle_e")}
ALL = (COMPUTE, HOST, IDLE)


def stage_factor(g: StepGraph, rank: int, what: str) -> float | None:
    """Pipeline stages: the median over the other stages of their total ``what`` in the step over the rank's own;
    None where the rank has no send/recv pair, or no other stage."""
    on_link = g.inst_link[g.pair_inst]
    stages = np.unique(g.pair_rank[on_link])
    if rank not in stages or stages.size < 2:
        return None
    fp, fe = PART_FIELDS[what]
    pos = np.searchsorted(g.ranks, g.pair_rank)
    total = np.bincount(pos, weights=getattr(g.parts, fp), minlength=g.ranks.size) + getattr(g.parts, fe)
    ri = g.rank_index
    own = float(total[ri[rank]]) if rank in ri else 0.0
    others = [float(total[ri[int(r)]]) for r in stages.tolist() if r != rank and int(r) in ri]
    if own <= 0 or not others:
        return None
    return float(np.median(others)) / own


def _began(g: StepGraph, pred: np.ndarray) -> np.ndarray:
    """Per entry of ``pred`` (a pair's predecessor pair, ``g.pred``, or a rank's step end's, ``g.pred_end``), the
    instance whose end its own work began at (-1: the step's start)."""
    return np.where(pred >= 0, g.pair_inst[np.maximum(pred, 0)], -1)


def _alike(g: StepGraph, size: np.ndarray, at: int, others: np.ndarray) -> np.ndarray:
    """Which of the instances ``others`` (or -1, the step's start) begin own work as ``at`` does: the same one, or
    one of a sibling group (another group of its size) with the same operation at the same level of the step's
    dependencies (tensor-parallel peers follow the data-parallel all-reduces of their own replica groups); ``size``:
    each instance's count of ranks."""
    same = others == at
    if at < 0:
        return same
    ok = others >= 0
    o = np.maximum(others, 0)
    sibling = (ok & (g.inst_group[o] != g.inst_group[at]) & (g.inst_level[o] == g.inst_level[at])
               & (size[o] == size[at]) & np.array([g.inst_op[int(x)] == g.inst_op[at] for x in o.tolist()], dtype=bool))
    return same | sibling


def like_peers(g: StepGraph, rank: int) -> tuple[list[tuple[int, np.ndarray]], tuple[int, np.ndarray] | None]:
    """Where the rank's own work can be set beside its peers': per collective pair of the rank (send/recv pairs
    aside), the pair and its peers' pairs at the instance whose own work began where its did (``_alike``: the end of
    the same collective or a sibling group's like one, or the step's start); and its step end with its peers' step
    ends likewise (``rank_index`` positions), or None.  A rank that arrives last at a bucket's all-reduce waits for
    it and begins its next own work at its end, while its peers' work runs on from the step's start beside it (DDP on
    gloo: 2 ms against 12-17 ms before each later bucket, so a rank with twice the batch read "shorter" at 3 of 5
    comparisons, "compute 0.8x its peers'", and was never named): a pair without such peers is no comparison."""
    began = _began(g, g.pred)
    size = np.bincount(g.pair_inst, minlength=g.inst_level.size)
    order = np.argsort(g.pair_inst, kind="stable")
    bounds = np.searchsorted(g.pair_inst[order], np.arange(g.inst_level.size + 1))
    pairs = []
    for p in np.flatnonzero((g.pair_rank == rank) & ~g.inst_link[g.pair_inst]).tolist():
        inst = int(g.pair_inst[p])
        at = order[bounds[inst]:bounds[inst + 1]]
        at = at[at != p]
        like = at[_alike(g, size, int(began[p]), began[at])]
        if like.size:
            pairs.append((p, like))
    i = g.rank_index.get(rank)
    if i is None:
        return pairs, None
    ends = _began(g, g.pred_end)
    peers = np.delete(np.arange(ends.size), i)
    peers = peers[_alike(g, size, int(ends[i]), ends[peers])]
    return pairs, ((i, peers) if peers.size else None)


def peer_parts(g: StepGraph, ranks: Sequence[int], which: Sequence[str], clip: bool = True) -> Parts:
    """``g``'s parts with the own work (the fields of ``which``) of each of ``ranks`` cut to its peers' median where
    it was longer (``clip``; else set to it): every other rank at the instance, and at the step's end (a window that
    began earlier than its peers' is over-cut, but the replay's dependencies bound it: it still waits for its
    collectives; restricted to like peers, ``like_peers``, the step's end went uncut where the slow rank's window
    there began earlier than its peers', and 15 of 30 real runs with a rank asleep 25 ms lost their verdict,
    benchmarks/bench_regimes.py); before a send or recv, scaled (``stage_factor``)."""
    new = {f: getattr(g.parts, f).copy() for f in ("compute_p", "host_p", "idle_p", "compute_e", "host_e", "idle_e")}
    order = np.argsort(g.pair_inst, kind="stable")
    bounds = np.searchsorted(g.pair_inst[order], np.arange(g.inst_level.size + 1))
    link = g.inst_link[g.pair_inst]
    for rank in ranks:
        mine = np.flatnonzero(g.pair_rank == rank)
        for w in which:
            f = PART_FIELDS[w][0]
            col = getattr(g.parts, f)
            factor = stage_factor(g, rank, w) if link[mine].any() else None
            for p in mine.tolist():
                if link[p]:
                    med = int(col[p] * factor) if factor is not None else int(col[p])
                else:
                    inst = int(g.pair_inst[p])
                    others = order[bounds[inst]:bounds[inst + 1]]
                    others = others[others != p]
                    if others.size == 0:
                        continue
                    med = int(np.median(col[others]))
                new[f][p] = min(int(col[p]), med) if clip else med
        i = g.rank_index.get(rank)
        if i is not None and g.ranks.size > 1:
            for w in which:
                f = PART_FIELDS[w][1]
                col = getattr(g.parts, f)
                med = int(np.median(np.delete(col, i)))
                new[f][i] = min(int(col[i]), med) if clip else med
    return Parts(**new)


def own_and_peer(g: StepGraph, rank: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """The rank's own work (all parts) and its peers' median at each comparison of the step (``like_peers``): each
    collective it joins, its send/recv pairs together (one comparison: they are scaled by one ratio), its step's end
    (the last, where compared: the third value)."""
    total = sum(getattr(g.parts, PART_FIELDS[w][0]) for w in ALL)
    pairs, end = like_peers(g, rank)
    own_l = [int(total[p]) for p, _ in pairs]
    med_l = [int(np.median(total[like])) for _, like in pairs]
    link = np.flatnonzero((g.pair_rank == rank) & g.inst_link[g.pair_inst])
    if link.size:
        peer = peer_parts(g, (rank,), ALL, clip=False)
        own_l.append(int(total[link].sum()))
        med_l.append(int(sum(getattr(peer, PART_FIELDS[w][0])[link].sum() for w in ALL)))
    if end is not None:
        ends = sum(getattr(g.parts, PART_FIELDS[w][1]) for w in ALL)
        own_l.append(int(ends[end[0]]))
        med_l.append(int(np.median(ends[end[1]])))
    return np.asarray(own_l, dtype=np.int64), np.asarray(med_l, dtype=np.int64), end is not None


def ratio_to_peers(graphs: Sequence[StepGraph], rank: int, what: str,
                   kinds: Mapping[str, GroupKind]) -> tuple[float | None, str]:
    """The rank's own ``what`` over the step / its peers' median of the same, and its peers' kind (the smallest
    group it belongs to)."""
    mine = peer = 0.0
    smallest: tuple[int, str] | None = None
    stages = [x for g in graphs if (x := stage_factor(g, rank, what)) is not None]
    f, fe = PART_FIELDS[what]
    for g in graphs:
        pairs, end = like_peers(g, rank)  # where its own work began where its peers' did
        col, cole = getattr(g.parts, f), getattr(g.parts, fe)
        mine += sum(float(col[p]) for p, _ in pairs) + (float(cole[end[0]]) if end is not None else 0.0)
        peer += (sum(float(np.median(col[like])) for _, like in pairs)
                 + (float(np.median(cole[end[1]])) if end is not None else 0.0))
        m = g.pair_rank == rank
        for inst in set(g.pair_inst[m].tolist()):
            name = g.groups[int(g.inst_group[inst])]
            k = kinds.get(name)
            if k is not None and (smallest is None or len(k.ranks) < smallest[0]):
                smallest = (len(k.ranks), k.kind)
    if stages:  # a pipeline stage: its total against the other stages' median
        mine, peer = float(np.median([1 / x for x in stages if x > 0] or [1.0])), 1.0
    ratio = mine / peer if peer > 0 else float("inf") if mine > 0 else None  # neither had any: no ratio
    return ratio, (NAMES[smallest[1]] if smallest else "")
