"""Whether a set of ranks' traces can have run together, decided before any cross-rank figure.

Every cross-rank figure (waits, stragglers, clock offsets, transfer times without waits, root cause, advice built on
them) pairs each rank's collectives with the other ranks'.  Traces of ranks that did not run together pair just as
easily, and the figures come out plausible and false.  What the traces carry decides it, in this order:

- ``distributedInfo``: one job runs one NCCL version, and a process group has the same members in every trace
  that lists it;
- step numbers: the ranks of one profiled window record the same ``ProfilerStep`` numbers; ranks that share none
  recorded different windows (different profiler cycles, or different runs);
- wall-clock time (``baseTimeNanoseconds`` + ``ts``, where the traces carry Unix time): clocks of different
  hosts differ by seconds, which the clock alignment absorbs; ranks of one window recorded a minute or more
  apart did not run together.  Traces that name their host (``host_name``) share one clock on one host: there,
  windows more than ``SAME_HOST_SKEW_NS`` apart did not overlap;
- the matched collectives: the clock offset the matching would need (as above), and the collectives themselves:
  operation, group size, dtype and, for operations whose size every rank shares, bytes must agree instance by
  instance (by sequence number; without one, as multisets: ranks of one job issue them in different orders on
  different streams).  A majority of disagreeing instances is a different job; a few are not (real runs have
  them: a trace that starts inside a collective, a kernel without its CPU record).

Pure: ``coherence(ranks)`` reads ``RankTrace`` values only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import ops
from ..model import Collective, RankTrace
from .cycles import span

SKEW_NS = 60 * 1_000_000_000  # a minute: hosts' clocks differ by seconds, not by this
SAME_HOST_SKEW_NS = 2 * 1_000_000_000  # one host, one clock: one window's traces overlap
UNIX_MIN_NS = 10**18  # September 2001: times below are relative to something else than the Unix epoch
DISAGREE_FRACTION = 0.5  # more than this share of matched instances disagreeing: not one job
_SAME_SIZE_OPS = frozenset({ops.ALL_REDUCE, ops.BROADCAST, ops.REDUCE})  # every rank passes the same tensor size


@dataclass(frozen=True, slots=True, kw_only=True)
class Coherence:
    """``problem``: one line saying why the ranks cannot have run together, naming files (None: they can);
    ``warnings``: smaller disagreements that do not refuse the set."""

    problem: str | None
    warnings: tuple[str, ...] = ()


def coherence(ranks: Sequence[RankTrace], by_collectives: bool = True) -> Coherence:
    """Decide whether ``ranks`` (one trace per rank) can have run together; ``by_collectives=False`` leaves out the
    check of their collectives group by group (where the traces do not tell the groups apart, ranks of one job
    disagree there: their groups' collectives read as one group's)."""
    if len(ranks) < 2:
        return Coherence(problem=None)
    warnings: list[str] = []
    checks = (_versions, _process_groups, _steps, _windows, *((_collectives,) if by_collectives else ()))
    for check in checks:
        problem = check(ranks, warnings)
        if problem:
            return Coherence(problem=problem, warnings=tuple(warnings))
    return Coherence(problem=None, warnings=tuple(warnings))


def _name(rt: RankTrace) -> str:
    return Path(rt.path).name


def _versions(ranks: Sequence[RankTrace], _w: list[str]) -> str | None:
    known = [rt for rt in ranks if rt.nccl_version]
    for rt in known[1:]:
        if rt.nccl_version != known[0].nccl_version:
            a = known[0]
            return (f"rank {a.rank} ({_name(a)}) ran NCCL {a.nccl_version}, rank {rt.rank} ({_name(rt)}) NCCL "
                    f"{rt.nccl_version}: traces of different jobs")
    return None


def _process_groups(ranks: Sequence[RankTrace], _w: list[str]) -> str | None:
    members: dict[str, tuple[tuple[int, ...], RankTrace]] = {}
    for rt in ranks:
        for pg in rt.process_groups:
            if not pg.ranks:
                continue
            first = members.setdefault(pg.name, (pg.ranks, rt))
            if first[0] != pg.ranks:
                return (f"process group {pg.name} has ranks {list(first[0])} in {_name(first[1])} but "
                        f"{list(pg.ranks)} in {_name(rt)}: traces of different jobs")
    return None


def _step_set(rt: RankTrace) -> set[int]:
    return set() if rt.stepless else {s.number for s in rt.steps}


def _steps(ranks: Sequence[RankTrace], warnings: list[str]) -> str | None:
    stepped = [rt for rt in ranks if _step_set(rt)]
    if len(stepped) < 2:
        return None
    ref = stepped[0]
    mine = _step_set(ref)
    for rt in stepped[1:]:
        theirs = _step_set(rt)
        if not mine & theirs:
            return (f"rank {ref.rank} ({_name(ref)}) has steps {span(sorted(mine))}, rank {rt.rank} ({_name(rt)}) "
                    f"steps {span(sorted(theirs))}: different profiler cycles or runs, never one window")
        if mine != theirs:
            warnings.append(f"rank {ref.rank} has steps {span(sorted(mine))}, rank {rt.rank} steps "
                            f"{span(sorted(theirs))}: cross-rank figures pair the steps both recorded")
    return None


def unix_window(rt: RankTrace) -> tuple[int, int] | None:
    """The rank's recorded steps (else its first event) in Unix ns; None where its times are not Unix times."""
    lo = rt.steps[0].start_ns if rt.steps else rt.first_ns
    hi = rt.steps[-1].end_ns if rt.steps else rt.first_ns
    lo, hi = lo + rt.base_time_ns, hi + rt.base_time_ns
    return (lo, hi) if lo >= UNIX_MIN_NS else None


def _tolerance(a: RankTrace, b: RankTrace) -> int:
    return SAME_HOST_SKEW_NS if a.host and a.host == b.host else SKEW_NS


def _where(a: RankTrace, b: RankTrace) -> str:
    return f"one host ({a.host}), one clock" if a.host and a.host == b.host else \
        "clocks of different hosts differ by seconds, not minutes"


def _apart(a: RankTrace, b: RankTrace, gap_ns: int) -> str:
    return (f"rank {b.rank} ({_name(b)}) was recorded {abs(gap_ns) / 1e9:,.1f} s "
            f"{'after' if gap_ns > 0 else 'before'} rank {a.rank} ({_name(a)}) ({_where(a, b)}): they did not run "
            "together")


def _windows(ranks: Sequence[RankTrace], _w: list[str]) -> str | None:
    timed = [(rt, w) for rt in ranks if (w := unix_window(rt)) is not None]
    if len(timed) < 2:
        return None
    ref, (rlo, rhi) = timed[0]
    for rt, (lo, hi) in timed[1:]:
        gap = lo - rhi if lo > rhi else (hi - rlo if hi < rlo else 0)
        if abs(gap) > _tolerance(ref, rt):
            return _apart(ref, rt, gap)
    return None


def _executed(rt: RankTrace, shared: set[int] | None) -> dict[str, list[Collective]]:
    """The rank's collectives that ran, by process group, in issue order (within the steps all ranks share)."""
    by_pg: dict[str, list[Collective]] = {}
    for c in rt.collectives:
        if c.start_ns is None or c.end_ns is None or c.group_size < 2 or ops.is_p2p(c.op):
            continue
        if shared is not None and c.step not in shared:
            continue
        by_pg.setdefault(c.process_group, []).append(c)
    for lst in by_pg.values():
        lst.sort(key=lambda c: c.issue_ns if c.issue_ns is not None else c.start_ns or 0)
    return by_pg


def _pairs(a: list[Collective], b: list[Collective]) -> list[tuple[Collective, Collective]]:
    """Instance by instance: by sequence number where every record has one, else by issue order."""
    if all(c.seq is not None for c in a + b):
        by_seq = {c.seq: c for c in b}
        return [(c, by_seq[c.seq]) for c in a if c.seq in by_seq]
    return list(zip(a, b, strict=False))


Key = tuple[str, int, str | None, int | None]


def _key(c: Collective) -> Key:
    """What every rank of one collective call agrees on: operation, group size, dtype, and the size where every
    rank passes the same one."""
    return (c.op, c.group_size, None if c.dtype == "unknown" else c.dtype,
            c.bytes if c.op in _SAME_SIZE_OPS and c.size_known else None)


def _says(k: Key) -> str:
    return " ".join(str(x) for x in (k[0], k[2], f"{k[3]:,} bytes" if k[3] is not None else None,
                                     f"of {k[1]} ranks") if x)


def _disagreements(a: list[Collective], b: list[Collective], ra: int, rb: int) -> tuple[int, int, str]:
    """(instances compared, instances that disagree, the first disagreement).  With sequence numbers, instance by
    instance; without, as multisets: the issue order of collectives on different streams or threads differs between
    ranks of one job, their calls do not.  Without sequence numbers, the rank with fewer collectives is judged: each
    of its collectives must be among the other's.  Where they all are, the other rank only has more than this trace
    shows of the first (calls the profiler or the reader missed on one rank: PowerSGD's all-reduces issued from
    gloo's completion callbacks), which is no sign of another job; two jobs issue collectives the other lacks."""
    if all(c.seq is not None for c in a + b):
        pairs = _pairs(a, b)
        diffs = [(x, y) for x, y in pairs if _key(x) != _key(y)]
        first = f"#{diffs[0][0].seq}: {_says(_key(diffs[0][0]))} vs {_says(_key(diffs[0][1]))}" if diffs else ""
        return len(pairs), len(diffs), first
    ca, cb = Counter(map(_key, a)), Counter(map(_key, b))
    n = min(len(a), len(b))  # the fewer rank's collectives: each must be among the other's
    odd = sorted((ca - cb) | (cb - ca), key=str)
    first = ""
    if odd:
        k = odd[0]
        first = f"{_says(k)}: {ca[k]} on rank {ra}, {cb[k]} on rank {rb}"
    return n, n - sum((ca & cb).values()), first


def _collectives(ranks: Sequence[RankTrace], _w: list[str]) -> str | None:
    sets = [_step_set(rt) for rt in ranks if _step_set(rt)]
    shared = set.intersection(*sets) if len(sets) == len(ranks) else None
    per = {rt.rank: _executed(rt, shared) for rt in ranks}
    ref = ranks[0]
    for rt in ranks[1:]:
        for pg, mine in per[ref.rank].items():
            theirs = per[rt.rank].get(pg)
            if not theirs:
                continue
            problem = _judge(ref, rt, pg, mine, theirs)
            if problem:
                return problem
    return None


def _judge(a: RankTrace, b: RankTrace, pg: str, mine: list[Collective], theirs: list[Collective]) -> str | None:
    pairs = _pairs(mine, theirs)
    if not pairs:
        return None
    offset = int(np.median([(x.end_ns or 0) + a.base_time_ns - (y.end_ns or 0) - b.base_time_ns for x, y in pairs]))
    timed = unix_window(a) is not None and unix_window(b) is not None
    if timed and abs(offset) > _tolerance(a, b):
        return (f"matching rank {b.rank}'s collectives ({_name(b)}) with rank {a.rank}'s ({_name(a)}) would move its "
                f"clock by {offset / 1e9:+,.1f} s ({_where(a, b)}): they did not run together")
    n, bad, first = _disagreements(mine, theirs, a.rank, b.rank)
    if not bad:
        return None
    if n >= 2 and bad > DISAGREE_FRACTION * n:
        return (f"rank {a.rank} ({_name(a)}) and rank {b.rank} ({_name(b)}) disagree on {bad} of {n} collectives of "
                f"process group {pg} ({first}): traces of different jobs")
    return None  # a few: real runs have them (the cross-rank matching warns where it cannot pair)
