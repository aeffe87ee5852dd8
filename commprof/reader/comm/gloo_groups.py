"""Which process group each gloo transfer belongs to, where the trace does not say.

Plain torch.profiler traces of gloo jobs on CPU carry no ``record_param_comms``: a ``c10d::*`` call names no
process group.  But every ``ProcessGroupGloo`` runs its collectives on worker threads of its own (a pool, 2 by
default), created with the group; so the threads' OS ids grow in the order the groups were created, and the
threads of one group form a contiguous range of ids (other threads may be created between two groups, rarely
inside one group's pool).  ``distributedInfo.pg_config`` lists the groups this rank belongs to in creation order.

Thread ids are allocated machine-wide: the ranks of a job started together interleave theirs, so the gaps between
one process's ids say little (a pool's two threads may lie further apart than two groups).  So: the threads that
ran transfers (the training threads left out: gloo's send/recv run there) are cut, in id order, into as many
ranges of equal length as this rank has groups (every pool the same size, every thread seen), and the ranges
are given the groups in creation order.  Only when that holds: the ids divide into that many equal ranges of
``POOL_THREADS`` each (every thread of every pool seen: as one process's ids grow in creation order, the cut is the
pools whatever the gaps the other ranks' ids leave), or of another length with no cut at a narrower gap than one
kept inside a range (pools set to another size, not every thread seen); otherwise nothing is assigned (every call
stays in the default group, as before).  The gaps' test alone refused 1 in 6 runs of a real 4-rank job on a 2 x 2
mesh (tests/e2e/test_mesh_groups.py): its processes' ids interleave.  Groups of one rank (a device mesh's
dimension of size 1) usually run nothing: where the cut over every group gives pools of one thread (gloo's hold 2
unless set otherwise), they are left out of it."""

from __future__ import annotations

from collections.abc import Iterable

from ...model import ProcessGroup
from ..scan import CpuRec

# a transfer, as the pairing of calls with their executions keeps it: start, end, name
TransferKey = tuple[int, int, str]
# a rank's warning where its groups were not told apart: the run is then read per rank (``engine.together``)
GROUPS_UNTOLD = "the collectives' process groups are not told apart among groups"
POOL_THREADS = 2  # a ProcessGroupGloo's worker threads unless its options set another count


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


def tid_ranges(tids: Iterable[int], k: int, whole_pools: bool = True) -> list[list[int]] | None:
    """The distinct ids cut into ``k`` contiguous ranges of equal length (every group's pool has the same number of
    threads, and every thread ran a transfer); None when the ids do not divide into ``k`` equal ranges, or, in
    ranges of other than ``POOL_THREADS`` (or any, unless ``whole_pools``: ranges of 2 are whole pools), a cut lies
    at a narrower gap than one kept inside a range (the ids do not show ``k`` pools)."""
    ids = sorted(set(tids))
    if k < 1 or not ids or len(ids) % k:
        return None
    p = len(ids) // k
    out = [ids[j * p:(j + 1) * p] for j in range(k)]
    if p == POOL_THREADS and whole_pools:
        return out  # every thread of every pool: the pools in creation order, whatever the gaps
    inside = max((r[i + 1] - r[i] for r in out for i in range(p - 1)), default=0)
    if any(ids[j * p] - ids[j * p - 1] < inside for j in range(1, k)):
        return None
    return out


def transfer_groups(transfers: list[CpuRec], pgs: tuple[ProcessGroup, ...], rank: int | None,
                    callers: set[int]) -> dict[TransferKey, ProcessGroup]:
    """Each worker-thread transfer's process group (by start, end, name), or {} when the threads do not tell the
    groups apart unambiguously (one group only: nothing to tell apart)."""
    groups = member_groups(pgs, rank)
    workers = [t for t in transfers if t.tid is not None and t.tid not in callers]
    if len(groups) < 2 or not workers:
        return {}
    tids = [int(t.tid) for t in workers if t.tid is not None]
    ranges = tid_ranges(tids, len(groups))
    if (ranges is None or len(ranges[0]) < 2) and any(len(g.ranks) == 1 for g in groups):
        # a one-rank group (a mesh dimension of size 1) rarely runs a transfer: without its pool the threads seen
        # are the other groups' (gloo's pools have 2 threads unless set otherwise: a cut into 1-thread pools is
        # the sign); HSDP on a (2, 1) mesh put half of its 2-rank all-reduces into its 1-rank groups
        groups = [g for g in groups if len(g.ranks) != 1]
        # the left-out groups' threads, if any ran, are among the ids: the cut must show its pools by their gaps
        ranges = tid_ranges(tids, len(groups), whole_pools=False) if len(groups) >= 2 else None
    if ranges is None or len(ranges[0]) < 2:
        # pools of one thread: gloo's hold 2 unless set otherwise, so 2 threads for 2 groups are more likely one
        # group's pool beside a group that ran nothing on its own (a pipeline's send/recv run on the calling thread):
        # a 2-stage x 2-replica job put half of its replicas' all-reduces into the world group
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
    ran in two groups, or whose own group name or size is another group's, or a group given transfers none of
    which a call of the trace issued (a pool of no listed group: TORCH_DISTRIBUTED_DEBUG=DETAIL's wrappers run
    their checks' all-gathers on gloo pools of their own, which made 4 threads for 2 groups, one of them idle)."""
    issued = {id(g) for _pg, _size, keys in calls for k in keys if (g := by_transfer.get(k)) is not None}
    if any(id(g) not in issued for g in by_transfer.values()):
        return None
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


def untold(transfers: list[CpuRec], pgs: tuple[ProcessGroup, ...], rank: int | None,
           callers: set[int]) -> tuple[str, ...]:
    """Where no group was given to this rank's worker-thread transfers: the groups of several ranks it belongs to,
    if more than one.  Every collective then stays in the default group, and ranks that never met would be compared
    as one group (HSDP on a 2 x 2 mesh: the shard and replicate groups' collectives read as one 4-rank group, the
    root cause named two ranks in a run with nothing slow).  Empty with one such group or no worker transfer."""
    multi = [g for g in member_groups(pgs, rank) if len(g.ranks) != 1]
    if len(multi) < 2 or not any(t.tid is not None and t.tid not in callers for t in transfers):
        return ()
    return tuple(g.name for g in multi)
