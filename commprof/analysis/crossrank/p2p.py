"""Send/recv pairs between pipeline stages: each recv matched to the send that released it, as two-rank instances
of the cross-rank graph (``critgraph``), so that the critical path crosses from a waiting stage to the stage that
sent late.

- The peer of a send (its destination) or a recv (its source) is the trace's (``Collective.peer``:
  ``record_param_comms``' Dst / Src Rank or ``c10d::send`` / ``recv_``'s argument: a rank of the call's process
  group, turned into a global rank with the group's members where the trace lists them; a subgroup's without its
  members is not paired); where the trace lacks it, the other member of a two-rank group.
- The k-th send from rank A to rank B in a step is matched to B's k-th recv from A in that step (both in issue
  order): point-to-point calls have no sequence number shared by the two sides.
- Times are aligned like the collectives' (``CrossRank.offsets_ns``); arrival as for collectives (gloo: the CPU
  call; GPU: the kernel's start).
- A recv cannot finish before its send was issued: it is released by the later of the two arrivals.  A send that
  ended before its recv was posted did not wait for it (an eager send): it is released by its own arrival
  (``Links.solo``); a send that ended later is taken as released by both, like a rendezvous.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ... import intervals as iv
from ... import ops
from ...model import Collective, RankTrace
from .matching import CrossRank, GroupMatch, headline_steps


@dataclass(frozen=True, slots=True, kw_only=True)
class Links:
    """One ``GroupMatch`` per directed link (sender, receiver), columns (sender, receiver); per instance whether
    the send was eager (``solo``: released by its own arrival)."""

    groups: tuple[GroupMatch, ...]
    solo: tuple[np.ndarray, ...]  # per group: bool per instance
    offsets_ns: dict[int, int] = field(default_factory=dict)  # the collectives' clock offsets, with ``_align``'s
    unpaired: int = 0  # sends and recvs of the analyzed steps left out: no peer recorded, or no counterpart


NO_LINKS = Links(groups=(), solo=())


def _members(rt: RankTrace) -> dict[str, tuple[int, ...]]:
    return {pg.name: pg.ranks for pg in rt.process_groups if pg.ranks}


def peer_of(c: Collective, rank: int, members: dict[str, tuple[int, ...]], world: int | None) -> int | None:
    """The global rank on the other side of a send / recv, or None where the trace does not say."""
    m = members.get(c.process_group, ())
    if c.peer is not None:
        if m and len(m) == c.group_size and 0 <= c.peer < len(m):
            return m[c.peer]  # a rank of the group, as torch's calls take it
        return c.peer if world is not None and c.group_size == world else None  # a subgroup's, members unknown
    if len(m) == 2 and rank in m:
        return m[1] if m[0] == rank else m[0]
    if c.group_size == 2 and world == 2 and not m and rank in (0, 1):
        return 1 - rank
    return None


def _calls(rt: RankTrace, wanted: set[int] | None) -> dict[tuple[int, int, int], list[Collective]]:
    """(sender, receiver, step) -> this rank's executed sends or recvs of that link, in issue order."""
    members = _members(rt)
    out: dict[tuple[int, int, int], list[Collective]] = {}
    for c in rt.collectives:
        if not ops.is_p2p(c.op) or c.start_ns is None or c.end_ns is None or c.step < 0:
            continue
        if wanted is not None and c.step not in wanted:
            continue
        peer = peer_of(c, rt.rank, members, rt.world_size)
        if peer is None or peer == rt.rank:
            out.setdefault((-1, -1, -1), []).append(c)  # no peer: counted as unpaired
            continue
        key = (rt.rank, peer, c.step) if c.op == ops.SEND else (peer, rt.rank, c.step)
        out.setdefault(key, []).append(c)
    for lst in out.values():
        lst.sort(key=lambda c: c.issue_ns if c.issue_ns is not None else c.start_ns or 0)
    return out


def _arrival(c: Collective, kind: str) -> int:
    if kind == "cpu" and c.issue_ns is not None:
        return c.issue_ns
    return c.start_ns or 0


def _pairs(ranks: Sequence[RankTrace], wanted: set[int] | None) -> tuple[Rows, int]:
    """The matched (send, recv, step) of each directed link in ``wanted`` (None: every step), and the calls left
    unpaired."""
    sends: dict[tuple[int, int, int], list[Collective]] = {}
    recvs: dict[tuple[int, int, int], list[Collective]] = {}
    unpaired = 0
    for rt in ranks:
        for key, lst in _calls(rt, wanted).items():
            if key[0] < 0:
                unpaired += len(lst)
            else:
                (sends if key[0] == rt.rank else recvs)[key] = lst
    unpaired += sum(len(v) for k, v in sends.items() if k not in recvs) + sum(
        len(v) for k, v in recvs.items() if k not in sends)
    unpaired += sum(abs(len(sends[k]) - len(recvs[k])) for k in set(sends) & set(recvs))
    rows: Rows = {}
    for key in sorted(set(sends) & set(recvs)):
        for s, r in zip(sends[key], recvs[key], strict=False):
            rows.setdefault(key[:2], []).append((s, r, key[2]))
    return rows, unpaired


Rows = dict[tuple[int, int], list[tuple[Collective, Collective, int]]]


def links(ranks: Sequence[RankTrace], cross: CrossRank, wanted: set[int] | None) -> Links:
    """Every matched send/recv pair of the analyzed steps, by directed link.  The clocks are aligned on every step's
    pairs (a property of the run, not of the steps analyzed: one step's few pairs put rank 1 10.8 ms off where the
    whole run's put it 0.5 ms)."""
    kind = {rt.rank: rt.device_kind for rt in ranks}
    rows, unpaired = _pairs(ranks, wanted)
    offsets = _align(_pairs(ranks, None)[0] if wanted is not None else rows, ranks, cross, kind)
    shift = {rt.rank: rt.base_time_ns + offsets.get(rt.rank, 0) for rt in ranks}
    groups, solo = [], []
    for (a, b), rws in sorted(rows.items()):
        arr = np.array([[_arrival(s, kind[a]) + shift[a], _arrival(r, kind[b]) + shift[b]] for s, r, _ in rws],
                       dtype=np.int64)
        end = np.array([[(s.end_ns or 0) + shift[a], (r.end_ns or 0) + shift[b]] for s, r, _ in rws], dtype=np.int64)
        iss = np.array([[s.issue_ns + shift[a] if s.issue_ns is not None else -1,
                         r.issue_ns + shift[b] if r.issue_ns is not None else -1] for s, r, _ in rws], dtype=np.int64)
        start = np.array([[(s.start_ns or 0) + shift[a], (r.start_ns or 0) + shift[b]] for s, r, _ in rws],
                         dtype=np.int64)
        groups.append(GroupMatch(process_group=f"send/recv {a}->{b}", ranks=(a, b), ops=(ops.SEND,) * len(rws),
                                 steps=np.array([st for _s, _r, st in rws], dtype=np.int64), arrival_ns=arr,
                                 end_ns=end, nbytes=np.array([max(s.bytes, r.bytes) for s, r, _ in rws],
                                                             dtype=np.int64),
                                 group_sizes=np.full(len(rws), 2, dtype=np.int64), issue_ns=iss, start_ns=start))
        solo.append(end[:, 0] < arr[:, 1])
    return Links(groups=tuple(groups), solo=tuple(solo), offsets_ns=offsets, unpaired=unpaired)


def _components(ranks: Sequence[RankTrace], cross: CrossRank) -> dict[int, int]:
    """Each rank's component of ranks whose clocks the matched collectives aligned together (its lowest rank)."""
    parent = {rt.rank: rt.rank for rt in ranks}

    def find(r: int) -> int:
        while parent[r] != r:
            parent[r] = parent[parent[r]]
            r = parent[r]
        return r

    for g in cross.groups:
        for r in g.ranks[1:]:
            if r in parent and g.ranks[0] in parent:
                a, b = find(r), find(g.ranks[0])
                parent[max(a, b)] = min(a, b)
    return {r: find(r) for r in parent}


def _align(rows: dict[tuple[int, int], list[tuple[Collective, Collective, int]]], ranks: Sequence[RankTrace],
           cross: CrossRank, kind: dict[int, str]) -> dict[int, int]:
    """Clock offsets for ranks no collective aligned with the reference (a pipeline's stages joined only by send/recv,
    on other hosts): a recv cannot end before its send was issued.  Per link, the least (recv end - send issue) each
    way, on Unix clocks: with both ways, the offset that makes the two equal (as NTP: the same least latency each
    way); one way only, the least shift that makes every recv end after its send.  Components already aligned move
    together, from the reference's outwards."""
    offsets = dict(cross.offsets_ns)
    comp = _components(ranks, cross)
    base = {rt.rank: rt.base_time_ns for rt in ranks}
    raw = {(a, b): min((r.end_ns or 0) + base[b] - _arrival(s, kind[a]) - base[a] for s, r, _ in rws)
           for (a, b), rws in rows.items()}  # the least recv end - send issue, Unix clocks

    def least(x: int, y: int) -> int | None:  # with the offsets so far
        d = raw.get((x, y))
        return None if d is None else d + offsets.get(y, 0) - offsets.get(x, 0)

    ref = cross.reference_rank if cross.reference_rank is not None else min(comp, default=0)
    done = {comp.get(ref, ref)}
    while True:
        step = next(((x, y) for a, b in sorted(raw) for x, y in ((a, b), (b, a))
                     if comp[x] in done and comp[y] not in done), None)
        if step is None:
            break
        x, y = step
        fwd, back = least(x, y), least(y, x)  # moving y's clock by delta: fwd + delta, back - delta
        if fwd is not None and back is not None:
            delta = (back - fwd) // 2
        elif fwd is not None:
            delta = max(-fwd, 0)
        else:
            delta = min(back or 0, 0)
        for r, c in comp.items():
            if c == comp[y]:
                offsets[r] = offsets.get(r, 0) + delta
        done.add(comp[y])
    return offsets


def transfer_ns(g: GroupMatch) -> np.ndarray:
    """Per instance of a link: the data's move (waits removed, as for collectives), from when both sides were at it
    to the recv's end: the recv from its record's start (on gloo, when its worker thread takes it up, after the
    call), the send from its record's start (gloo runs a rank's sends one after another on one thread).  0 (no
    measurable time: left out of every bandwidth) where the send's record starts at or after the recv's end: the
    record began late, or the two clocks, aligned by the pairs themselves where no collective aligns them, differ
    by that much; the call's time would put the clocks' error into the transfer."""
    if g.arrival_ns.size == 0:
        return np.zeros(0, dtype=np.int64)
    end = g.end_ns[:, 1]
    return np.where(g.start_ns[:, 0] < end, np.maximum(end - np.maximum(g.start_ns[:, 0], g.start_ns[:, 1]), 0), 0)


def wait_spans(lk: Links) -> dict[tuple[int, int], tuple[list[int], list[int]]]:
    """(rank, step) -> the intervals (aligned clock) the rank waited in a send or recv for its peer to arrive: a recv
    from its arrival to the send's, a send from its arrival to the recv's unless it was eager (``solo``); never
    past the call's own end."""
    out: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
    for g, solo in zip(lk.groups, lk.solo, strict=True):
        both = g.arrival_ns.max(axis=1) if g.arrival_ns.size else np.zeros(0, dtype=np.int64)
        for i in range(both.size):
            for j in (0, 1):
                if j == 0 and bool(solo[i]):
                    continue
                lo, hi = int(g.arrival_ns[i, j]), min(int(both[i]), int(g.end_ns[i, j]))
                if hi > lo:
                    sp = out.setdefault((g.ranks[j], int(g.steps[i])), ([], []))
                    sp[0].append(lo)
                    sp[1].append(hi)
    return out


def _idle_in_calls(rt: RankTrace, shift: int) -> iv.Span:
    """On the aligned clock, where the rank was inside its own sends or recvs and not computing."""
    calls = [c for c in rt.collectives if ops.is_p2p(c.op) and c.start_ns is not None and c.end_ns is not None]
    inside = iv.union(np.array([(c.start_ns or 0) + shift for c in calls], dtype=np.int64),
                      np.array([(c.end_ns or 0) + shift for c in calls], dtype=np.int64))
    busy = iv.union(np.asarray(rt.compute.start_ns, dtype=np.int64) + shift,
                    np.asarray(rt.compute.end_ns, dtype=np.int64) + shift)
    return iv.subtract(inside, busy)


def with_p2p_waits(cross: CrossRank, ranks: Sequence[RankTrace], lk: Links, wanted: set[int] | None,
                   kept: Mapping[int, Iterable[int]] | None = None) -> CrossRank:
    """``cross`` with each rank's waits in sends and recvs added to its waits in collectives (the mean per analyzed
    step): a pipeline stage idle in a recv while the stage before it computes waits for a peer, as a rank in an
    all-reduce waits for the last one to join.  Its intervals are united, kept within its own send and recv records
    and outside its compute (an irecv posted early runs beside the stage's own work: that is not waiting), so a
    rank's wait never exceeds its exposed communication's share of it."""
    spans = wait_spans(lk)
    if not spans:
        return cross
    waits = dict(cross.wait_ms_per_step)
    for rt in ranks:
        steps = headline_steps(rt, wanted, kept)
        idle = _idle_in_calls(rt, rt.base_time_ns + lk.offsets_ns.get(rt.rank, 0))
        vals = [iv.length(iv.intersect(iv.as_span(*spans[(rt.rank, st)]), idle)) if (rt.rank, st) in spans else 0
                for st in steps]
        if vals and any(vals):
            waits[rt.rank] = waits.get(rt.rank, 0.0) + float(np.mean(vals)) / 1e6
    return replace(cross, wait_ms_per_step=waits)
