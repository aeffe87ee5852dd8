"""Cross-rank analysis: matching collectives, aligning clocks, wait time and stragglers.

- Matching: the same collective on every rank of a process group, by (group, ``Seq``) where every
  rank's trace has sequence numbers, else by order within the group.
- Clock alignment: every rank of a collective leaves it at nearly the same moment, so a rank's clock
  offset is the median, over matched collectives, of (reference rank's end − its end).  Times are
  compared only after adding the offsets; a clock shifted by seconds gives the same answers.
- Arrival: when a rank is ready for the collective.  GPU: its NCCL kernel starts.  gloo: the CPU
  issues the call (``c10d::*``); the transfer's own start on a gloo worker thread also includes
  queueing behind earlier collectives in gloo's small thread pool, which would hide lateness.  Traces
  without the CPU record fall back to the transfer's start.
  A rank's wait at an instance = last arrival − its arrival; per step, the waits are united as
  intervals (collectives that wait at the same time on different threads count once), and averaged over the
  analyzed steps like every per-step figure (in a 2-rank job one rank's wait is the other's caused wait).
- A rank is *late* at an instance when it arrives last and more than a threshold (the smaller of
  1 ms and 5% of the median step) after the first;
  ``late_count`` counts those instances and ``mean_late_ms`` averages its lateness over them.
- The wait a rank *caused* at an instance: when it arrives last, how much later than the next-to-last rank (the
  collective would have started that much earlier had it been as early); ``caused_wait_ms`` unites those intervals
  (next-to-last arrival to its own) per step, so that lateness carried over to the next collectives (DDP's buckets
  of one backward pass) counts once, and averages over the analyzed steps.  The straggler table lists every rank
  that caused wait, most first: a slow rank of a lockstep group is late by little at many collectives, under any
  lateness threshold.  Which rank holds the job back is the root cause's
  answer (``rootcause``), not this table's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ... import intervals as iv
from ... import ops
from ...model import Collective, RankTrace
from ..perrank import RankDigest, late_split_spans

MAX_THRESHOLD_NS = 1_000_000
STEP_FRACTION = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupMatch:
    """The matched instances of one process group: rows = instances, columns = ``ranks``."""

    process_group: str
    ranks: tuple[int, ...]
    ops: tuple[str, ...]
    steps: np.ndarray  # step number of each instance (lowest rank's attribution)
    arrival_ns: np.ndarray  # K x R, aligned to the reference clock (Unix ns)
    end_ns: np.ndarray  # K x R, aligned
    nbytes: np.ndarray  # bytes of each instance (lowest rank's record)
    group_sizes: np.ndarray  # group size of each instance
    issue_ns: np.ndarray  # K x R, when each rank's CPU issued it (aligned; -1 where unknown)
    start_ns: np.ndarray  # K x R, when each rank's kernel / transfer started (aligned)

    @property
    def wait_ns(self) -> np.ndarray:
        if self.arrival_ns.size == 0:
            return np.zeros_like(self.arrival_ns)
        return self.arrival_ns.max(axis=1, keepdims=True) - self.arrival_ns


@dataclass(frozen=True, slots=True)
class Straggler:
    """A rank that arrived last.  The ``*_ms`` split says what it was doing on its own timeline while
    the first rank was already waiting (mean per late instance): running compute, running other
    communication, or neither (idle: data loading, host-side stalls, Python, sleeps)."""

    rank: int
    late_count: int
    mean_late_ms: float
    instances: int  # instances this rank took part in
    compute_ms: float = 0.0
    comm_ms: float = 0.0
    idle_ms: float = 0.0
    caused_wait_ms: float = 0.0  # per analyzed step: where it arrived last, its lead on the next-to-last, united


@dataclass(frozen=True, slots=True)
class CrossRank:
    reference_rank: int | None
    offsets_ns: dict[int, int]  # add to a rank's Unix time to get the reference rank's clock
    groups: tuple[GroupMatch, ...]
    threshold_ns: int
    stragglers: tuple[Straggler, ...]
    wait_ms_per_step: dict[int, float]  # mean over the analyzed steps of the rank's united wait intervals
    warnings: tuple[str, ...]


def _executed(rt: RankTrace, wanted: set[int] | None) -> dict[str, list[Collective]]:
    """The rank's collectives that ran (have start and end), by process group, in issue order."""
    by_pg: dict[str, list[Collective]] = {}
    for c in rt.collectives:
        if c.start_ns is None or c.end_ns is None or c.group_size < 2 or ops.is_p2p(c.op):
            continue  # point-to-point involves two ranks, not the group: not matched as a collective
        if wanted is not None and c.step not in wanted:
            continue
        by_pg.setdefault(c.process_group, []).append(c)
    for lst in by_pg.values():
        lst.sort(key=lambda c: (c.issue_ns if c.issue_ns is not None else c.start_ns or 0))
    return by_pg


def _start(c: Collective) -> int:
    return c.start_ns if c.start_ns is not None else 0


def _arrival(c: Collective, device_kind: str) -> int:
    if device_kind == "cpu" and c.issue_ns is not None:
        return c.issue_ns
    return _start(c)


def _end(c: Collective) -> int:
    return c.end_ns if c.end_ns is not None else 0


def _pair(per_rank: dict[int, list[Collective]], pg: str, warnings: list[str]) -> list[list[Collective]]:
    """Rows of matched collectives, one column per rank (in ``sorted(per_rank)`` order)."""
    ranks = sorted(per_rank)
    if all(c.seq is not None for r in ranks for c in per_rank[r]):
        maps = [{int(c.seq or 0): c for c in per_rank[r]} for r in ranks]
        common = sorted(set.intersection(*(set(m) for m in maps)))
        return [[m[s] for m in maps] for s in common]
    lens = {r: len(v) for r, v in per_rank.items()}
    k = min(lens.values())
    if len(set(lens.values())) > 1:
        warnings.append(f"process group {pg}: ranks recorded different numbers of collectives {lens}; "
                        f"the first {k} are matched by order")
    rows = []
    for i in range(k):
        row = [per_rank[r][i] for r in ranks]
        if len({c.op for c in row}) > 1:
            warnings.append(f"process group {pg}: collective #{i} differs between ranks "
                            f"({sorted({c.op for c in row})}); matching stops there")
            break
        rows.append(row)
    return rows


def cross_rank(ranks: Sequence[RankTrace], steps: Iterable[int] | None = None,
               digests: Mapping[int, RankDigest] | None = None,
               kept: Mapping[int, Iterable[int]] | None = None) -> CrossRank:
    """Match collectives across ranks, align clocks, and find waits and stragglers (``digests``: the map step's
    per-rank results, whose unions the straggler split reads instead of the lanes).  ``kept``: per rank, the steps
    its headline figures are the mean of (outlier steps left out): its wait per step is over the same ones."""
    wanted = set(steps) if steps is not None else None
    warnings: list[str] = []
    paired = _paired_groups(ranks, wanted, warnings)
    base = {rt.rank: rt.base_time_ns for rt in ranks}
    offsets = _clock_offsets(paired, base, [rt.rank for rt in ranks])
    step_ns = [s.duration_ns for rt in ranks for s in rt.steps if wanted is None or s.number in wanted]
    threshold = min(MAX_THRESHOLD_NS, int(STEP_FRACTION * float(np.median(step_ns)))) if step_ns \
        else MAX_THRESHOLD_NS
    shift = {r: base[r] + offsets[r] for r in base}
    kind = {rt.rank: rt.device_kind for rt in ranks}
    groups = tuple(_group_match(pg, rks, rows, shift, kind) for pg, (rks, rows) in paired.items())
    late = _Lateness(threshold)
    for g, (_ranks, rows) in zip(groups, paired.values(), strict=True):
        late.add(g, rows, shift)
    by_rank = {rt.rank: rt for rt in ranks}
    found = []
    n_steps = max(len({int(x) for g in groups for x in g.steps.tolist()}), 1)
    idle = _idle_waits(ranks, late, shift, digests)
    united: dict[tuple[int, int], list[iv.Span]] = {}
    for (r, st, waiter), sp in late.caused.items():  # the lead, where the rank that waited for it had nothing to do
        united.setdefault((r, st), []).append(iv.intersect_few(iv.as_span(*sp), idle.get(waiter, iv.empty())))
    caused: dict[int, int] = {}
    for (r, _st), parts in united.items():  # united per step: lateness carried over by the next ones counts once
        caused[r] = caused.get(r, 0) + iv.length((np.concatenate([p[0] for p in parts]),
                                                  np.concatenate([p[1] for p in parts])))
    for r in sorted(set(late.count) | {r for r, v in caused.items() if v > 0}):
        n = late.count.get(r, 0)
        split = _late_split(by_rank[r], late.windows[r], (digests or {}).get(r)) if n else (0, 0, 0)
        found.append(Straggler(r, n, late.total[r] / n / 1e6 if n else 0.0, late.seen.get(r, 0),
                               split[0] / max(n, 1) / 1e6, split[1] / max(n, 1) / 1e6, split[2] / max(n, 1) / 1e6,
                               caused.get(r, 0) / n_steps / 1e6))
    stragglers = tuple(sorted(found, key=lambda s: (-s.caused_wait_ms, -s.late_count, s.rank)))
    waits: dict[int, float] = {}
    for rt in ranks:
        if rt.rank not in late.seen:
            continue
        free = idle.get(rt.rank, iv.empty())
        vals = [iv.length(iv.intersect_few(iv.as_span(*late.wait_spans[(rt.rank, st)]), free))
                if (rt.rank, st) in late.wait_spans else 0 for st in headline_steps(rt, wanted, kept)]
        if vals:
            waits[rt.rank] = float(np.mean(vals)) / 1e6  # the mean, as every per-step figure and caused_wait_ms
    ref = next(iter(paired.values()))[0][0] if paired else None
    return CrossRank(ref, offsets, groups, threshold, stragglers, waits, tuple(warnings))


def headline_steps(rt: RankTrace, wanted: set[int] | None, kept: Mapping[int, Iterable[int]] | None) -> list[int]:
    """The rank's steps a per-step wait is the mean over: the analyzed ones (``wanted``), less those its headline
    leaves out (``kept``: the steps it is the mean of, where given)."""
    own = set(kept[rt.rank]) if kept is not None and rt.rank in kept else None
    return sorted({s.number for s in rt.steps if (wanted is None or s.number in wanted)
                   and (own is None or s.number in own)})


Paired = dict[str, tuple[list[int], list[list[Collective]]]]


def _paired_groups(ranks: Sequence[RankTrace], wanted: set[int] | None, warnings: list[str]) -> Paired:
    """Per process group with two or more ranks: its ranks, and its matched instances (largest groups first)."""
    pgs: dict[str, dict[int, list[Collective]]] = {}
    for rt in ranks:
        for pg, lst in _executed(rt, wanted).items():
            pgs.setdefault(pg, {})[rt.rank] = lst
    paired: Paired = {}
    for pg, per_rank in sorted(pgs.items(), key=lambda kv: -len(kv[1])):
        if len(per_rank) < 2:
            continue
        rows = _pair(per_rank, pg, warnings)
        if rows:
            paired[pg] = (sorted(per_rank), rows)
    return paired


def _clock_offsets(paired: Paired, base: dict[int, int], all_ranks: list[int]) -> dict[int, int]:
    """Reference = lowest rank of the largest group; other groups chained to it through shared ranks."""
    offsets: dict[int, int] = {}
    for rks, rows in paired.values():
        ends = np.array([[_end(c) + base[r] for c, r in zip(row, rks, strict=True)] for row in rows],
                        dtype=np.int64)
        anchor = next((r for r in rks if r in offsets), None)
        if anchor is None:
            anchor = rks[0]
            offsets[anchor] = 0
        a = rks.index(anchor)
        for j, r in enumerate(rks):
            if r not in offsets:
                offsets[r] = int(np.median(ends[:, a] - ends[:, j])) + offsets[anchor]
    for r in all_ranks:
        offsets.setdefault(r, 0)
    return offsets


def _group_match(pg: str, rks: list[int], rows: list[list[Collective]], shift: dict[int, int],
                 kind: dict[int, str]) -> GroupMatch:
    def grid(f) -> np.ndarray:
        return np.array([[f(c, r) for c, r in zip(row, rks, strict=True)] for row in rows], dtype=np.int64)

    return GroupMatch(process_group=pg, ranks=tuple(rks), ops=tuple(row[0].op for row in rows),
                      steps=np.array([row[0].step for row in rows], dtype=np.int64),
                      arrival_ns=grid(lambda c, r: _arrival(c, kind[r]) + shift[r]),
                      end_ns=grid(lambda c, r: _end(c) + shift[r]),
                      nbytes=np.array([row[0].bytes for row in rows], dtype=np.int64),
                      group_sizes=np.array([row[0].group_size for row in rows], dtype=np.int64),
                      issue_ns=grid(lambda c, r: c.issue_ns + shift[r] if c.issue_ns is not None else -1),
                      start_ns=grid(lambda c, r: _start(c) + shift[r]))


class _Lateness:
    """Per rank: instances seen, late instances and their lateness, the windows it was late in (its own clock),
    and per (rank, step) the intervals it waited."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.count: dict[int, int] = {}
        self.total: dict[int, int] = {}
        self.seen: dict[int, int] = {}
        self.windows: dict[int, tuple[list[int], list[int]]] = {}
        self.wait_spans: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
        # (late rank, step, the rank that waited for it) -> lead spans
        self.caused: dict[tuple[int, int, int], tuple[list[int], list[int]]] = {}

    def add(self, g: GroupMatch, rows: list[list[Collective]], shift: dict[int, int]) -> None:
        arr, wait = g.arrival_ns, g.wait_ns
        spread = arr.max(axis=1) - arr.min(axis=1)
        last = arr.argmax(axis=1)
        if arr.shape[0] and arr.shape[1] > 1:
            second = np.partition(arr, -2, axis=1)[:, -2]
            waiter = np.argsort(arr, axis=1, kind="stable")[:, -2]  # the next-to-last: its wait is the lead
            for i, j in enumerate(last.tolist()):
                if arr[i, j] > second[i]:
                    sp = self.caused.setdefault((g.ranks[j], int(g.steps[i]), g.ranks[int(waiter[i])]), ([], []))
                    sp[0].append(int(second[i]))
                    sp[1].append(int(arr[i, j]))
        for i, row in enumerate(rows):
            for j, r in enumerate(g.ranks):
                self.seen[r] = self.seen.get(r, 0) + 1
                if wait[i, j] > 0:
                    sp = self.wait_spans.setdefault((r, row[j].step), ([], []))
                    sp[0].append(int(arr[i, j]))
                    sp[1].append(int(arr[i, j] + wait[i, j]))
            if spread[i] > self.threshold:
                r = g.ranks[int(last[i])]
                self.count[r] = self.count.get(r, 0) + 1
                self.total[r] = self.total.get(r, 0) + int(spread[i])
                w = self.windows.setdefault(r, ([], []))
                w[0].append(int(arr[i].min()) - shift[r])
                w[1].append(int(arr[i].max()) - shift[r])


def _idle_waits(ranks: Sequence[RankTrace], late: _Lateness, shift: dict[int, int],
                digests: Mapping[int, RankDigest] | None) -> dict[int, iv.Span]:
    """Per rank, on the aligned clock, the parts of its waits in collectives in which it computed nothing: a rank
    that launched a DDP bucket's all-reduce from the backward pass waits for a late peer there while its backward
    runs on, which costs it nothing (a rank asleep 20 ms before each backward read 42 ms of wait per step on its
    peer, one window beside the backward and one after it, where the peer idled 20 ms)."""
    spans: dict[int, tuple[list[int], list[int]]] = {}
    for (r, _st), (a, b) in late.wait_spans.items():
        sp = spans.setdefault(r, ([], []))
        sp[0].extend(a)
        sp[1].extend(b)
    out = {}
    for rt in ranks:
        if rt.rank not in spans:
            continue
        comp, _exposed = late_split_spans(rt, (digests or {}).get(rt.rank))
        out[rt.rank] = iv.subtract(iv.union(*spans[rt.rank]), (comp[0] + shift[rt.rank], comp[1] + shift[rt.rank]))
    return out


def _late_split(rt: RankTrace, windows: tuple[list[int], list[int]],
                d: RankDigest | None) -> tuple[int, int, int]:
    """Of the windows (the rank's own clock), ns spent in compute, in other comm, and idle."""
    ws, we = np.array(windows[0], dtype=np.int64), np.array(windows[1], dtype=np.int64)
    total = int((we - ws).sum())
    comp, comm = late_split_spans(rt, d)
    c = int(iv.lengths_within(comp, ws, we).sum())
    m = int(iv.lengths_within(comm, ws, we).sum())
    return c, m, max(total - c - m, 0)
