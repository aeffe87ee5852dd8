"""DDP gradient buckets: ready -> launch -> done, and the part of each bucket's communication that
no compute hides.  Needs the sidecar that ``commprof.trace(model=...)`` writes.

- ready: the last parameter of the bucket received its gradient (post-accumulate-grad hook), or,
  without that record, the moment DDP called the comm hook.  With DDP's built-in hook commprof only
  observes: buckets come from DDP's logging data and are matched in order to the step's all-reduces.
- launch: the CPU issued the bucket's collective (its ``c10d::*`` / ``record_param_comms`` record in the
  trace, which lies between entering and leaving the comm hook)
- done: the bucket's collective ended (from the trace)
- exposed: the part of [start, end) of the bucket's collective not covered by compute
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ... import intervals as iv
from ... import ops
from ...model import BucketEvent, Collective, RankTrace

_MATCH_SLACK_NS = 200_000


@dataclass(frozen=True, slots=True, kw_only=True)
class BucketStep:
    """One bucket in one step on one rank; times relative to the step start, in ns."""

    rank: int
    step: int
    index: int
    bytes: int
    params: int
    ready_ns: int
    launch_ns: int
    start_ns: int | None
    end_ns: int | None
    exposed_ns: int | None

    @property
    def comm_ns(self) -> int | None:
        return None if self.start_ns is None or self.end_ns is None else self.end_ns - self.start_ns


@dataclass(frozen=True, slots=True)
class BucketStat:
    """One bucket index, medians over ranks and analyzed steps (in the final layout)."""

    index: int
    bytes: int
    params: int
    ready_ms: float
    launch_ms: float
    comm_ms: float | None
    exposed_ms: float | None
    samples: int
    # of its samples, the share in which its collective ended last of its (rank, step)'s buckets: the tail's
    ends_last: float = 0.0


def _match(events: list[BucketEvent], colls: list[Collective]) -> list[Collective | None]:
    """Each hook call issued one collective between entering and leaving the hook."""
    issued = [c for c in colls if c.issue_ns is not None]
    issued.sort(key=lambda c: c.issue_ns or 0)
    times = np.array([c.issue_ns for c in issued], dtype=np.int64)
    used: set[int] = set()
    out: list[Collective | None] = []
    for b in events:
        lo = np.searchsorted(times, b.hook_ns - _MATCH_SLACK_NS, side="left")
        hit = None
        for j in range(int(lo), len(issued)):
            c = issued[j]
            if c.issue_ns is None or c.issue_ns > b.launch_ns + _MATCH_SLACK_NS:
                break
            if j not in used:
                hit = j
                break
        if hit is None:
            out.append(None)
        else:
            used.add(hit)
            out.append(issued[hit])
    return out


def _match_in_order(events: list[BucketEvent], colls: list[Collective]) -> list[Collective | None]:
    """Observed buckets (DDP's built-in hook): DDP launches buckets in index order, so within a step the
    k-th bucket is the next all-reduce of its size issued after its gradients were ready."""
    out: list[Collective | None] = []
    by_step: dict[int, list[Collective]] = {}
    for c in colls:
        if ops.family(c.op) == ops.ALL_REDUCE and c.issue_ns is not None:
            by_step.setdefault(c.step, []).append(c)
    for lst in by_step.values():
        lst.sort(key=lambda c: c.issue_ns or 0)
    pos: dict[int, int] = {}
    for b in sorted(events, key=lambda b: (b.step, b.index)):
        lst = by_step.get(b.step, [])
        i = pos.get(b.step, 0)
        ready = b.ready_ns if b.ready_ns is not None else b.hook_ns
        while i < len(lst) and (lst[i].bytes != b.bytes or (lst[i].issue_ns or 0) < ready - _MATCH_SLACK_NS):
            i += 1
        if i < len(lst):
            out.append(lst[i])
            pos[b.step] = i + 1
        else:
            out.append(None)
    order = sorted(range(len(events)), key=lambda k: (events[k].step, events[k].index))
    result: list[Collective | None] = [None] * len(events)
    for k, hit in zip(order, out, strict=True):
        result[k] = hit
    return result


def bucket_steps(rt: RankTrace, steps: Iterable[int] | None = None) -> list[BucketStep]:
    sc = rt.sidecar
    if sc is None or not sc.buckets:
        return []
    wanted = set(steps) if steps is not None else None
    step_start = {s.number: s.start_ns for s in rt.steps}
    events = [b for b in sc.buckets if b.step in step_start and (wanted is None or b.step in wanted)]
    events.sort(key=lambda b: b.hook_ns)
    if any(b.observed for b in events):
        matched = _match_in_order(events, list(rt.collectives))
    else:
        matched = _match(events, list(rt.collectives))
    layouts = {lay.layout_id: lay for lay in sc.layouts}
    comp_by_step: dict[int, iv.Span] = {}
    out = []
    for b, c in zip(events, matched, strict=True):
        lay = layouts.get(b.layout_id)
        nparams = len(lay.buckets[b.index]) if lay and b.index < len(lay.buckets) else 0
        t0 = step_start[b.step]
        start = end = exposed = None
        # launch: the CPU issued the collective (its record in the trace), else the hook returned
        launch = c.issue_ns if c is not None and c.issue_ns is not None else b.launch_ns
        if c is not None and c.start_ns is not None and c.end_ns is not None:
            if b.step not in comp_by_step:
                m = rt.compute.step == b.step
                comp_by_step[b.step] = iv.union(rt.compute.start_ns[m], rt.compute.end_ns[m])
            own = (np.array([c.start_ns]), np.array([c.end_ns]))
            exposed = iv.length(iv.subtract(own, comp_by_step[b.step]))
            start, end = c.start_ns - t0, c.end_ns - t0
        ready = b.ready_ns if b.ready_ns is not None else b.hook_ns
        out.append(BucketStep(rank=rt.rank, step=b.step, index=b.index, bytes=b.bytes, params=nparams,
                              ready_ns=ready - t0, launch_ns=launch - t0, start_ns=start, end_ns=end,
                              exposed_ns=exposed))
    return out


def bucket_stats(rows: list[BucketStep]) -> list[BucketStat]:
    """Per bucket index, medians over ranks and steps of the final layout (the last step's)."""
    if not rows:
        return []
    last_step = max(r.step for r in rows)
    n_final = len({r.index for r in rows if r.step == last_step})
    per_step: dict[tuple[int, int], set[int]] = {}
    for r in rows:
        per_step.setdefault((r.rank, r.step), set()).add(r.index)
    by_index: dict[int, list[BucketStep]] = {}
    for r in rows:
        # DDP rebuilds its buckets after the first iteration: count only steps with the final layout
        if len(per_step[(r.rank, r.step)]) == n_final:
            by_index.setdefault(r.index, []).append(r)
    last_end: dict[tuple[int, int], int] = {}  # (rank, step) -> the latest end of its buckets' collectives
    for rs in by_index.values():
        for r in rs:
            if r.end_ns is not None:
                last_end[(r.rank, r.step)] = max(last_end.get((r.rank, r.step), r.end_ns), r.end_ns)
    out = []
    for idx in sorted(by_index):
        rs = by_index[idx]
        comm = [r.comm_ns for r in rs if r.comm_ns is not None]
        exp = [r.exposed_ns for r in rs if r.exposed_ns is not None]
        ended = [r.end_ns == last_end.get((r.rank, r.step)) for r in rs if r.end_ns is not None]
        out.append(BucketStat(idx, int(np.median([r.bytes for r in rs])), rs[-1].params,
                              float(np.median([r.ready_ns for r in rs])) / 1e6,
                              float(np.median([r.launch_ns for r in rs])) / 1e6,
                              float(np.median(comm)) / 1e6 if comm else None,
                              float(np.median(exp)) / 1e6 if exp else None, len(rs),
                              ends_last=float(np.mean(ended)) if ended else 0.0))
    return out
