"""Send/recv pairs between pipeline stages: each recv matched to the send that released it, as two-rank instances
of the cross-rank graph (``critgraph``), so that the critical path crosses from a waiting stage to the stage that
sent late.

- The peer of a send (its destination) or a recv (its source) is the trace's (``Collective.peer``:
  ``record_param_comms``' Dst / Src Rank, a rank of the call's process group, turned into a global rank with the
  group's members where the trace lists them); where the trace lacks it, the other member of a two-rank group.
- The k-th send from rank A to rank B in a step is matched to B's k-th recv from A in that step (both in issue
  order): point-to-point calls have no sequence number shared by the two sides.
- Times are aligned like the collectives' (``CrossRank.offsets_ns``); arrival as for collectives (gloo: the CPU
  call; GPU: the kernel's start).
- A recv cannot finish before its send was issued: it is released by the later of the two arrivals.  A send that
  ended before its recv was posted did not wait for it (an eager send): it is released by its own arrival
  (``Links.solo``); a send that ended later is taken as released by both, like a rendezvous.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ... import ops
from ...model import Collective, RankTrace
from .matching import CrossRank, GroupMatch


@dataclass(frozen=True, slots=True, kw_only=True)
class Links:
    """One ``GroupMatch`` per directed link (sender, receiver), columns (sender, receiver); per instance whether
    the send was eager (``solo``: released by its own arrival)."""

    groups: tuple[GroupMatch, ...]
    solo: tuple[np.ndarray, ...]  # per group: bool per instance


NO_LINKS = Links(groups=(), solo=())


def _members(rt: RankTrace) -> dict[str, tuple[int, ...]]:
    return {pg.name: pg.ranks for pg in rt.process_groups if pg.ranks}


def peer_of(c: Collective, rank: int, members: dict[str, tuple[int, ...]], world: int | None) -> int | None:
    """The global rank on the other side of a send / recv, or None where the trace does not say."""
    m = members.get(c.process_group, ())
    if c.peer is not None:
        if m and len(m) == c.group_size and 0 <= c.peer < len(m):
            return m[c.peer]  # a rank of the group, as torch's calls take it
        return c.peer
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


def links(ranks: Sequence[RankTrace], cross: CrossRank, wanted: set[int] | None) -> Links:
    """Every matched send/recv pair of the analyzed steps, by directed link."""
    sends: dict[tuple[int, int, int], list[Collective]] = {}
    recvs: dict[tuple[int, int, int], list[Collective]] = {}
    shift = {rt.rank: rt.base_time_ns + cross.offsets_ns.get(rt.rank, 0) for rt in ranks}
    kind = {rt.rank: rt.device_kind for rt in ranks}
    for rt in ranks:
        for key, lst in _calls(rt, wanted).items():
            (sends if key[0] == rt.rank else recvs)[key] = lst
    rows: dict[tuple[int, int], list[tuple[Collective, Collective, int]]] = {}
    for key in sorted(set(sends) & set(recvs)):
        for s, r in zip(sends[key], recvs[key], strict=False):
            rows.setdefault(key[:2], []).append((s, r, key[2]))
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
    return Links(groups=tuple(groups), solo=tuple(solo))
