"""Which process group each gloo transfer belongs to, where the trace does not say.

Plain torch.profiler traces of gloo jobs on CPU carry no ``record_param_comms``: a ``c10d::*`` call names no
process group.  But every ``ProcessGroupGloo`` runs its collectives on worker threads of its own (a pool, 2 by
default), created with the group; so the threads' OS ids grow in the order the groups were created, and the
threads of one group form a contiguous range of ids (other threads may be created between two groups, rarely
inside one group's pool).  ``distributedInfo.pg_config`` lists the groups this rank belongs to in creation order.

So: the threads that ran transfers (the training threads left out: gloo's send/recv run there) are cut into as
many ranges as this rank has groups, at the widest gaps between consecutive ids, and the ranges are given the
groups in creation order.  Only when that is unambiguous: as many groups as ranges (a group with no transfer in
the trace leaves the count short), each cut strictly wider than every gap kept inside a range; otherwise nothing
is assigned (every call stays in the default group, as before)."""

from __future__ import annotations

from collections.abc import Iterable

from ...model import ProcessGroup
from ..scan import CpuRec

# a transfer, as the pairing of calls with their executions keeps it: start, end, name
TransferKey = tuple[int, int, str]


def member_groups(pgs: tuple[ProcessGroup, ...], rank: int | None) -> list[ProcessGroup]:
    """The groups this rank belongs to, in creation order (first of each name; a group whose ranks are not
    listed is kept)."""
    out: list[ProcessGroup] = []
    seen: set[str] = set()
    for p in pgs:
        if p.name in seen or (rank is not None and p.ranks and rank not in p.ranks):
            continue
        seen.add(p.name)
        out.append(p)
    return out


def tid_ranges(tids: Iterable[int], k: int) -> list[list[int]] | None:
    """The distinct ids cut into ``k`` contiguous ranges at the ``k - 1`` widest gaps; None when there are fewer
    ids than ranges or a cut is no wider than a gap it keeps (ties: the ranges are not told apart)."""
    ids = sorted(set(tids))
    if k < 1 or len(ids) < k:
        return None
    gaps = sorted(((ids[i + 1] - ids[i], i) for i in range(len(ids) - 1)), reverse=True)
    if 1 < k <= len(gaps) and gaps[k - 2][0] == gaps[k - 1][0]:
        return None
    cuts = sorted(i for _g, i in gaps[:k - 1])
    out: list[list[int]] = []
    lo = 0
    for i in cuts:
        out.append(ids[lo:i + 1])
        lo = i + 1
    out.append(ids[lo:])
    return out


def transfer_groups(transfers: list[CpuRec], pgs: tuple[ProcessGroup, ...], rank: int | None,
                    callers: set[int]) -> dict[TransferKey, ProcessGroup]:
    """Each worker-thread transfer's process group (by start, end, name), or {} when the threads do not tell the
    groups apart unambiguously (one group only: nothing to tell apart)."""
    groups = member_groups(pgs, rank)
    workers = [t for t in transfers if t.tid is not None and t.tid not in callers]
    if len(groups) < 2 or not workers:
        return {}
    ranges = tid_ranges((int(t.tid) for t in workers if t.tid is not None), len(groups))
    if ranges is None:
        return {}
    group_of_tid = {tid: g for g, rng in zip(groups, ranges, strict=True) for tid in rng}
    out: dict[TransferKey, ProcessGroup] = {}
    for t in workers:
        key = (t.start, t.end, t.name)
        g = group_of_tid[int(t.tid or 0)]
        if out.setdefault(key, g) is not g:
            return {}  # two threads' transfers at the same instant, in different groups: not told apart
    return out


def call_groups(calls: list[tuple[str | None, int | None, list[TransferKey]]],
                by_transfer: dict[TransferKey, ProcessGroup]) -> list[ProcessGroup | None] | None:
    """Each call's group from its transfers' (calls given as the group and size the trace says, or None, and
    their transfers); None, assigning nothing, when the trace contradicts the threads: a call whose transfers
    ran in two groups, or whose own group name or size is another group's."""
    out: list[ProcessGroup | None] = []
    for pg, size, keys in calls:
        found = {id(g): g for g in (by_transfer.get(k) for k in keys) if g is not None}
        if len(found) > 1:
            return None
        g = next(iter(found.values()), None)
        if g is not None and ((pg is not None and pg != g.name)
                              or (size is not None and g.ranks and size != len(g.ranks))):
            return None
        out.append(g)
    return out
