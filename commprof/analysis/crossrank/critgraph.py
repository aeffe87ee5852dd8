"""The cross-rank dependency graph of one step, and its replay: the model under the critical path and the root cause.

What crosses ranks is only the matched collectives' times (``crossrank.GroupMatch``, aligned clocks) and, per rank,
its compute union (the map step's digest): no event lists.

Per rank, each collective instance it joins is a *pair* (rank, instance).  A rank's work between two points is its
**own work**: from its predecessor (the end of the latest collective it had to wait for, or the step's start) to its
arrival at the next collective (or to the step's end).  Own work splits into compute (its compute union), idle
(nothing ran: the gap just before it joins the collective, at the step's start, and every gap of at least
``IDLE_GAP_NS`` between its operations: data loading, host stalls, sleeps) and host (the shorter gaps: launch
latency, Python between operators).

- A collective *gates* a rank when the rank's compute was idle when the collective ended and for at least half of the
  collective's transfer (its last arrival to its end): the gap it ended in and the long gaps (``IDLE_GAP_NS``) before
  it, a wait split by a blip of work (the end of the issuing operator on a CPU rank) counted whole; the rank was
  waiting for it.  Collectives that end while
  compute runs (DDP buckets overlapping backward) do not gate; the rank's work goes on beside them.
- Stream order: a GPU collective whose kernel was launched before the previous collective of its process group (one
  NCCL stream per group) ended on the rank and started within ``QUEUE_TOL_NS`` of that end was queued behind it;
  its predecessor is that collective.
- An instance ends at its last arrival plus each rank's own transfer (``end - last arrival``).
- Send/recv pairs between pipeline stages (``p2p``) are two-rank instances: the recv is released by the later of
  the two arrivals; an eager send (it ended before the recv was posted) by its own arrival alone (``solo``).

The replay recomputes every arrival and end of the step from the per-pair own-work parts (compute, host, idle), in
dependency order, with some of them changed: unchanged it reproduces the measured times exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ...model import RankTrace
from ..perrank import RankDigest, late_split_spans
from .matching import CrossRank, GroupMatch
from .p2p import NO_LINKS, Links
from .spans import covered_before, first_start_after, last_end_before, long_gaps, woken

QUEUE_TOL_NS = 20_000
GATE_FRACTION = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class Parts:
    """Own-work parts, one value per pair (``*_p``) and per rank's step end (``*_e``), in ns."""

    compute_p: np.ndarray
    host_p: np.ndarray
    idle_p: np.ndarray
    compute_e: np.ndarray
    host_e: np.ndarray
    idle_e: np.ndarray


@dataclass(frozen=True, slots=True, kw_only=True)
class StepGraph:
    """One step: pairs (rank, instance), instances, and each rank's step end.  Times aligned (reference clock)."""

    step: int
    pair_rank: np.ndarray
    pair_inst: np.ndarray  # index into the instance arrays
    arrival: np.ndarray
    end: np.ndarray
    pred: np.ndarray  # predecessor pair, -1 = the rank's step start
    transfer: np.ndarray  # end - its release (>= 0): the instance's last arrival, or its own where ``solo``
    solo: np.ndarray  # bool: released by its own arrival (an eager send, ``p2p``), not by the instance's last
    inst_link: np.ndarray  # bool per instance: a send/recv pair between two stages (``p2p``), not a collective
    inst_group: np.ndarray  # index into ``groups``
    inst_op: tuple[str, ...]
    inst_level: np.ndarray
    ranks: np.ndarray  # ranks with a step end, and their:
    start: np.ndarray  # step start
    stop: np.ndarray  # step end (the later of the CPU step end and its last collective's end)
    pred_end: np.ndarray  # predecessor pair of the step end
    parts: Parts
    groups: tuple[str, ...]  # process group names

    @property
    def rank_index(self) -> dict[int, int]:
        return {int(r): i for i, r in enumerate(self.ranks.tolist())}


@dataclass(slots=True)
class _Flat:
    """Every matched pair of the analyzed steps, flattened over groups."""

    rank: np.ndarray
    inst: np.ndarray
    arrival: np.ndarray
    end: np.ndarray
    issue: np.ndarray
    inst_step: np.ndarray
    inst_group: np.ndarray
    inst_last: np.ndarray
    solo: np.ndarray
    inst_link: np.ndarray
    release: np.ndarray  # per pair: its own arrival where ``solo``, else its instance's last arrival
    inst_op: list[str]
    groups: list[str]


def _flatten(groups: Sequence[GroupMatch], solo_of: Sequence[np.ndarray | None], wanted: set[int] | None) -> _Flat:
    """``solo_of``: per group, None (a collective) or per instance whether its first column (a send) was eager."""
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("rank", "inst", "arrival", "end", "issue", "inst_step",
                                                         "inst_group", "inst_last", "solo", "inst_link")}
    ops: list[str] = []
    n_inst = 0
    for gi, (g, so) in enumerate(zip(groups, solo_of, strict=True)):
        keep = (g.steps >= 0) if wanted is None else np.isin(g.steps, list(wanted))  # -1: outside every step
        k = int(keep.sum())
        if k == 0 or g.arrival_ns.size == 0:
            continue
        arr, end, iss = g.arrival_ns[keep], g.end_ns[keep], g.issue_ns[keep]
        nr = len(g.ranks)
        cols["rank"].append(np.tile(np.asarray(g.ranks, dtype=np.int64), k))
        cols["inst"].append(np.repeat(np.arange(n_inst, n_inst + k, dtype=np.int64), nr))
        cols["arrival"].append(arr.ravel())
        cols["end"].append(end.ravel())
        cols["issue"].append(iss.ravel())
        cols["inst_step"].append(g.steps[keep])
        cols["inst_group"].append(np.full(k, gi, dtype=np.int64))
        cols["inst_last"].append(arr.max(axis=1))
        solo = np.zeros((k, nr), dtype=bool)
        if so is not None:
            solo[:, 0] = so[keep]
        cols["solo"].append(solo.ravel())
        cols["inst_link"].append(np.full(k, so is not None))
        ops.extend(op for op, kp in zip(g.ops, keep.tolist(), strict=True) if kp)
        n_inst += k
    flat = {k: (np.concatenate(v) if v else np.zeros(0, dtype=np.int64)) for k, v in cols.items()}
    flat["solo"], flat["inst_link"] = flat["solo"].astype(bool), flat["inst_link"].astype(bool)
    release = np.where(flat["solo"], flat["arrival"], flat["inst_last"][flat["inst"]])
    return _Flat(**flat, release=release, inst_op=ops, groups=[g.process_group for g in groups])


@dataclass(slots=True)
class _PerPair:
    """Per-pair results of the rank-local pass (global pair index), and per (rank, step) step ends."""

    pred: np.ndarray
    compute: np.ndarray
    host: np.ndarray
    idle: np.ndarray
    ends: dict[int, list[tuple[int, int, int, int, int, int, int]]]  # step -> (rank, start, stop, pred, c, h, i)


def _own(comp, gaps, base: np.ndarray, x: np.ndarray, from_start: np.ndarray,
         before_collective: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compute, host and idle parts of own-work windows ``[base, x]``; ``gaps``: the long gaps (``long_gaps``)."""
    w = np.maximum(x - base, 0)
    c = np.minimum(covered_before(comp, x) - covered_before(comp, base), w)
    tail = np.zeros_like(w)
    if before_collective:
        inside, last = last_end_before(comp, x)
        tail = np.where(inside, 0, np.maximum(x - np.maximum(base, last), 0))
    lead = np.where(from_start, np.maximum(np.minimum(first_start_after(comp, base), x) - base, 0), 0)
    lo = base + lead
    hi = np.maximum(x - tail, lo)
    interior = covered_before(gaps, hi) - covered_before(gaps, lo)  # long gaps between its operations
    idle = tail + lead + np.maximum(interior, 0)
    idle = np.where(c == 0, w, np.minimum(idle, w - c))
    return c, w - c - idle, idle


def _rank_pass(rt: RankTrace, idx: np.ndarray, flat: _Flat, shift: int, comp, steps: set[int],
               out: _PerPair) -> None:
    """The rank-local facts of one rank's pairs ``idx`` (global pair indices): gating, predecessors, own parts."""
    comp = (comp[0] + shift, comp[1] + shift)
    gaps = long_gaps(comp)
    st = flat.inst_step[flat.inst[idx]]
    cpu = {s.number: (s.start_ns + shift, s.end_ns + shift) for s in rt.steps}
    if rt.device_kind == "cpu":
        flat.end[idx] = woken(gaps, cpu, st, flat.end[idx], flat.release[idx])
    a, e, iss = flat.arrival[idx], flat.end[idx], flat.issue[idx]
    inside, last = last_end_before(comp, e)
    gap = np.where(inside, 0, e - np.maximum(last, a.min() - 1))  # no compute before it: idle since the start
    rel = np.minimum(flat.release[idx], e)
    # idle during the transfer: the gap it ended in, and long gaps before it (a wait split by a blip of work)
    idle = gap + covered_before(gaps, np.maximum(e - gap, rel)) - covered_before(gaps, rel)
    gating = (gap > 0) & (idle >= GATE_FRACTION * (e - rel))
    for s in sorted(set(st.tolist()) & steps):
        m = np.flatnonzero(st == s)
        m = m[np.argsort(e[m], kind="stable")]
        start = cpu[s][0] if s in cpu else int(a[m].min())
        stop = max(cpu[s][1] if s in cpu else 0, int(e[m].max()))
        gm = m[gating[m]]
        pred = _preds(a, e, iss, flat.inst_group[flat.inst[idx]], m, gm)
        base = np.where(pred >= 0, e[np.maximum(pred, 0)], start)
        c, h, i = _own(comp, gaps, base, a[m], pred < 0, True)
        gidx = idx[m]
        out.pred[gidx] = np.where(pred >= 0, idx[np.maximum(pred, 0)], -1)
        out.compute[gidx], out.host[gidx], out.idle[gidx] = c, h, i
        k = int(np.searchsorted(e[gm], stop, side="right")) - 1
        pe = int(gm[k]) if k >= 0 else -1
        b = np.array([e[pe] if pe >= 0 else start], dtype=np.int64)
        ce, he, ie = _own(comp, gaps, b, np.array([stop], dtype=np.int64), np.array([pe < 0]), False)
        out.ends.setdefault(s, []).append((rt.rank, start, stop, int(idx[pe]) if pe >= 0 else -1,
                                           int(ce[0]), int(he[0]), int(ie[0])))


def _preds(a: np.ndarray, e: np.ndarray, iss: np.ndarray, grp: np.ndarray, m: np.ndarray,
           gm: np.ndarray) -> np.ndarray:
    """Per pair of ``m`` (positions in the rank's arrays, sorted by end): the position of its predecessor, -1 for
    the step start.  ``gm``: the gating ones among ``m``; ``grp``: each one's process group (one NCCL stream each)."""
    am = a[m]
    ge = e[gm]
    k = np.searchsorted(ge, am, side="right") - 1  # the latest gating collective ending at or before the arrival
    if gm.size:
        k = np.where((k >= 0) & (gm[np.maximum(k, 0)] == m), k - 1, k)  # never itself (a zero-length one)
        pred = np.where(k >= 0, gm[np.maximum(k, 0)], -1)
    else:
        pred = np.full(m.size, -1, dtype=np.int64)
    qq = np.full(m.size, -1, dtype=np.int64)  # the latest collective of the same group (stream) ending by then
    for gid in np.unique(grp[m]).tolist():
        sel = np.flatnonzero(grp[m] == gid)
        mg = m[sel]
        q = np.searchsorted(e[mg], am[sel], side="right") - 1
        q = np.where((q >= 0) & (mg[np.maximum(q, 0)] == mg), q - 1, q)
        qq[sel] = np.where(q >= 0, mg[np.maximum(q, 0)], -1)
    eq = e[np.maximum(qq, 0)]
    queued = (qq >= 0) & (am - eq <= QUEUE_TOL_NS) & (iss[m] >= 0) & (iss[m] < eq)
    later = np.where(pred >= 0, eq > e[np.maximum(pred, 0)], True)
    return np.where(queued & later, qq, pred)


def build(ranks: Sequence[RankTrace], cross: CrossRank, wanted: set[int] | None,
          digests: Mapping[int, RankDigest] | None = None, links: Links = NO_LINKS) -> list[StepGraph]:
    """The dependency graph of every analyzed step that has matched collectives or send/recv pairs (``links``)."""
    flat = _flatten(cross.groups + links.groups, [None] * len(cross.groups) + list(links.solo), wanted)
    n = flat.rank.size
    if n == 0:
        return []
    out = _PerPair(np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64),
                   np.zeros(n, dtype=np.int64), {})
    order = np.argsort(flat.rank, kind="stable")
    bounds = np.searchsorted(flat.rank[order], [rt.rank for rt in ranks] + [rt.rank + 1 for rt in ranks])
    steps = set(flat.inst_step.tolist())
    for i, rt in enumerate(ranks):
        idx = order[bounds[i]:bounds[len(ranks) + i]]
        if idx.size == 0:
            continue
        comp = late_split_spans(rt, (digests or {}).get(rt.rank))[0]
        shift = rt.base_time_ns + cross.offsets_ns.get(rt.rank, 0)
        _rank_pass(rt, idx, flat, shift, comp, steps, out)
    return [_step_graph(s, flat, out) for s in sorted(out.ends)]


def _step_graph(s: int, flat: _Flat, pp: _PerPair) -> StepGraph:
    insts = np.flatnonzero(flat.inst_step == s)
    local_inst = np.full(flat.inst_step.size, -1, dtype=np.int64)
    local_inst[insts] = np.arange(insts.size)
    pairs = np.flatnonzero(local_inst[flat.inst] >= 0)
    local_pair = np.full(flat.rank.size, -1, dtype=np.int64)
    local_pair[pairs] = np.arange(pairs.size)
    inst = local_inst[flat.inst[pairs]]
    pred = np.where(pp.pred[pairs] >= 0, local_pair[np.maximum(pp.pred[pairs], 0)], -1)
    ends = sorted(pp.ends[s])
    e = np.array([x[:3] for x in ends], dtype=np.int64).reshape(-1, 3)
    pend = np.array([x[3] for x in ends], dtype=np.int64)
    pend = np.where(pend >= 0, local_pair[np.maximum(pend, 0)], -1)
    parts = Parts(compute_p=pp.compute[pairs], host_p=pp.host[pairs], idle_p=pp.idle[pairs],
                  compute_e=np.array([x[4] for x in ends], dtype=np.int64),
                  host_e=np.array([x[5] for x in ends], dtype=np.int64),
                  idle_e=np.array([x[6] for x in ends], dtype=np.int64))
    transfer = np.maximum(flat.end[pairs] - flat.release[pairs], 0)
    return StepGraph(step=s, pair_rank=flat.rank[pairs], pair_inst=inst, arrival=flat.arrival[pairs],
                     end=flat.end[pairs], pred=pred, transfer=transfer, solo=flat.solo[pairs],
                     inst_link=flat.inst_link[insts],
                     inst_group=flat.inst_group[insts],
                     inst_op=tuple(flat.inst_op[i] for i in insts.tolist()), inst_level=_levels(inst, pred, insts.size),
                     ranks=e[:, 0], start=e[:, 1], stop=e[:, 2], pred_end=pend, parts=parts,
                     groups=tuple(flat.groups))


def _levels(inst: np.ndarray, pred: np.ndarray, n_inst: int) -> np.ndarray:
    """Dependency depth of each instance: 1 + the deepest instance any of its pairs' predecessors belongs to."""
    level = np.zeros(n_inst, dtype=np.int64)
    has = pred >= 0
    for _ in range(n_inst + 1):
        dep = np.where(has, level[inst[np.maximum(pred, 0)]] + 1, 0)
        new = np.zeros(n_inst, dtype=np.int64)
        np.maximum.at(new, inst, dep)
        if np.array_equal(new, level):
            break
        level = new
    return level


def replay(g: StepGraph, parts: Parts | None = None, start: np.ndarray | None = None) -> np.ndarray:
    """Each rank's step end (aligned ns, in ``g.ranks`` order) with the own-work ``parts`` (measured if None) and
    the ranks' step starts ``start`` (measured if None: ``carried_start`` moves them with the step before)."""
    p = parts or g.parts
    st = g.start if start is None else start
    w = p.compute_p + p.host_p + p.idle_p
    ri = g.rank_index
    start_of_pair = st[np.array([ri[int(r)] for r in g.pair_rank.tolist()], dtype=np.int64)] \
        if g.pair_rank.size else np.zeros(0, dtype=np.int64)
    new_end = np.zeros(g.end.size, dtype=np.int64)
    order = np.argsort(g.inst_level[g.pair_inst], kind="stable")
    lv = g.inst_level[g.pair_inst][order]
    cuts = np.flatnonzero(np.diff(lv)) + 1
    for chunk in np.split(order, cuts):
        if chunk.size == 0:
            continue
        pr = g.pred[chunk]
        a = np.where(pr >= 0, new_end[np.maximum(pr, 0)], start_of_pair[chunk]) + w[chunk]
        last = np.full(g.inst_level.size, np.iinfo(np.int64).min)
        np.maximum.at(last, g.pair_inst[chunk], a)
        new_end[chunk] = np.where(g.solo[chunk], a, last[g.pair_inst[chunk]]) + g.transfer[chunk]
    we = p.compute_e + p.host_e + p.idle_e
    return np.where(g.pred_end >= 0, new_end[np.maximum(g.pred_end, 0)], st) + we


def length(g: StepGraph, stops: np.ndarray, start: np.ndarray | None = None) -> int:
    """The step's length: the longest step of any rank (its step end - its step start)."""
    return int((stops - (g.start if start is None else start)).max()) if stops.size else 0


def carried_start(g: StepGraph, prev: StepGraph | None, prev_stops: np.ndarray | None) -> np.ndarray:
    """The ranks' starts of step ``g`` where the step before (``prev``, replayed from its measured starts to
    ``prev_stops``) ended earlier: each rank begins this step as much earlier as its last step's end moved.  A rank
    slow at its step's end (a sleep after the optimizer) makes its peers wait in the next step's first collective:
    replayed one step at a time from the measured starts, its 25 ms cost 3 ms a step in half of the steps.  Only
    where every rank began this step after it ended the last (CPU ranks, or GPU ranks whose host waited): a rank whose
    host ran ahead began where its stream was still busy, which the step's graph does not hold, and an earlier peer
    would shorten its wait by time it did not wait.  Not across pipeline stages (send/recv in the step): there the
    first stage's end of one step is the next step's bubble on every other stage, which the stages' peers (compared
    by their totals, ``peers.stage_factor``) do not share: under jitter alone the first stage read a 13% gain in
    every step.  Measured starts elsewhere, and where ``prev`` is not the step just before."""
    if prev is None or prev_stops is None or not carries(g, prev):
        return g.start
    idx = np.array([prev.rank_index[int(r)] for r in g.ranks.tolist()], dtype=np.int64)  # every rank: ``carries``
    return g.start - np.maximum(prev.stop[idx] - prev_stops[idx], 0)


def carries(g: StepGraph, prev: StepGraph | None) -> bool:
    """Does step ``g`` begin where ``prev`` ended, for every rank (``carried_start``)?"""
    if prev is None or prev.step != g.step - 1 or bool(g.inst_link.any()):
        return False
    pi = prev.rank_index
    idx = [pi.get(int(r)) for r in g.ranks.tolist()]
    return all(j is not None and g.start[i] >= prev.stop[j] - QUEUE_TOL_NS for i, j in enumerate(idx))
