"""Compute/communication overlap per rank and per step (definitions in DESIGN.md).

- comm = union of the rank's communication intervals (NCCL kernels on all streams, or gloo transfers)
- compute = union of its compute intervals (other GPU kernels, or CPU operators on training threads)
- overlapped = |comm ∩ compute|; overlap % = overlapped / |comm| (HTA's and TensorBoard's definition)
- exposed comm = |comm| − overlapped: communication nothing else hides
- other = step time − |compute ∪ comm|: idle, data loading, host overhead, memcpy
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .. import intervals as iv
from ..model import Lane, RankTrace


@dataclass(frozen=True, slots=True)
class Overlap:
    """Overlap figures of one step (``step`` >= 0) or of the whole window (``step`` = -1)."""

    step: int
    step_ns: int
    compute_ns: int
    comm_ns: int
    overlapped_ns: int
    comm_bytes: int

    @property
    def exposed_ns(self) -> int:
        return self.comm_ns - self.overlapped_ns

    @property
    def busy_ns(self) -> int:
        return self.compute_ns + self.comm_ns - self.overlapped_ns

    @property
    def other_ns(self) -> int:
        return max(self.step_ns - self.busy_ns, 0)

    @property
    def overlap_pct(self) -> float:
        return 100.0 * self.overlapped_ns / self.comm_ns if self.comm_ns else 0.0


@dataclass(frozen=True, slots=True)
class RankOverlap:
    rank: int
    steps: tuple[Overlap, ...]
    window: Overlap
    hta_window: Overlap

    def median(self, attr: str) -> float:
        vals = [getattr(s, attr) for s in self.steps]
        return float(np.median(vals)) if vals else 0.0

    def mean(self, attr: str) -> float | None:
        """Mean over the analyzed steps (means add up: the mean step is the sum of the mean parts)."""
        vals = [getattr(s, attr) for s in self.steps]
        return float(np.mean(vals)) if vals else None


def _select(lane: Lane, steps: set[int] | None) -> iv.Span:
    if steps is None:
        return lane.start_ns, lane.end_ns
    mask = np.isin(lane.step, np.fromiter(steps, dtype=np.int64, count=len(steps)))
    return lane.start_ns[mask], lane.end_ns[mask]


def _by_step(lane: Lane) -> dict[int, iv.Span]:
    if len(lane) == 0:
        return {}
    order = np.argsort(lane.step, kind="stable")
    st = lane.step[order]
    s, e = lane.start_ns[order], lane.end_ns[order]
    cuts = np.flatnonzero(np.diff(st)) + 1
    out: dict[int, iv.Span] = {}
    for a, b in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [st.size]]), strict=True):
        out[int(st[a])] = (s[a:b], e[a:b])
    return out


def _figures(step: int, step_ns: int, comp: iv.Span, comm: iv.Span, nbytes: int) -> Overlap:
    c = iv.union(*comp)
    m = iv.union(*comm)
    c_len, m_len = int((c[1] - c[0]).sum()), int((m[1] - m[0]).sum())
    both = iv.length(iv.combine(c, m))
    return Overlap(step, step_ns, c_len, m_len, c_len + m_len - both, nbytes)


def hta_window_overlap(rt: RankTrace) -> Overlap:
    """Overlap over HTA's window: with two or more steps, only work launched before the last
    ``ProfilerStep`` began (HTA drops the last, often incomplete, step, and GPU work whose launch is
    not in the trace); else the whole trace.  Used to cross-check against HTA's
    ``get_comm_comp_overlap``; commprof's own figure is the whole window."""
    if len(rt.steps) < 2:
        comp, comm = (rt.compute.start_ns, rt.compute.end_ns), (rt.comm.start_ns, rt.comm.end_ns)
        span = rt.steps[-1].duration_ns if rt.steps else 0
    else:
        cut = rt.steps[-1].start_ns
        mc = (rt.compute.launch_ns >= 0) & (rt.compute.launch_ns < cut)
        mm = (rt.comm.launch_ns >= 0) & (rt.comm.launch_ns < cut)
        comp = (rt.compute.start_ns[mc], rt.compute.end_ns[mc])
        comm = (rt.comm.start_ns[mm], rt.comm.end_ns[mm])
        span = cut - rt.steps[0].start_ns
    # HTA also rounds each start up and each end down to whole microseconds
    return _figures(-1, span, _us_inward(comp), _us_inward(comm), 0)


def _us_inward(span: iv.Span) -> iv.Span:
    s = -((-span[0]) // 1000) * 1000
    e = (span[1] // 1000) * 1000
    return s, np.maximum(e, s)


def rank_overlap(rt: RankTrace, steps: Iterable[int] | None = None) -> RankOverlap:
    """Per-step and whole-window overlap of one rank, restricted to ``steps`` when given."""
    wanted = set(steps) if steps is not None else None
    chosen = [s for s in rt.steps if wanted is None or s.number in wanted]
    comp_by, comm_by = _by_step(rt.compute), _by_step(rt.comm)
    bytes_by: dict[int, int] = {}
    for c in rt.collectives:
        bytes_by[c.step] = bytes_by.get(c.step, 0) + c.bytes
    empty = iv.empty()
    per = tuple(_figures(s.number, s.duration_ns, comp_by.get(s.number, empty), comm_by.get(s.number, empty),
                         bytes_by.get(s.number, 0)) for s in chosen)
    if wanted is None:
        comp, comm = _select(rt.compute, None), _select(rt.comm, None)
        total_bytes = sum(bytes_by.values())
    else:
        comp, comm = _select(rt.compute, wanted), _select(rt.comm, wanted)
        total_bytes = sum(v for k, v in bytes_by.items() if k in wanted)
    span_ns = (chosen[-1].end_ns - chosen[0].start_ns) if chosen else 0
    window = _figures(-1, span_ns, comp, comm, total_bytes)
    return RankOverlap(rt.rank, per, window, hta_window_overlap(rt))
