"""Compute/communication overlap per rank and per step (definitions in docs/metrics.md).

- comm = union of the rank's communication intervals (NCCL kernels on all streams, or gloo transfers)
- compute = union of its compute intervals (other GPU kernels, or CPU operators on training threads)
- overlapped = |comm ∩ compute|; overlap % = overlapped / |comm| (HTA's and TensorBoard's definition)
- exposed comm = |comm| − overlapped: communication nothing else hides
- other = step − |compute ∪ comm|: idle, data loading, host overhead, memcpy

Per step, the figures partition the step's window of time, so that they add up: step = compute only + overlapped
+ exposed + other.  A step's window runs from where the previous one ended (the first: its ProfilerStep's start) to
where its own work ended: the end of its ProfilerStep, or later where GPU work it launched ran past it.  The
windows tile the timeline, so no time is counted twice or lost (GPU work that runs behind the CPU is counted in the
window it runs in).  A rank's headline figures are the mean over its analyzed steps, outlier steps left out and
named (``representative``), with the median and the range beside them (``spread_ms``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .. import intervals as iv
from ..model import Lane, RankTrace, Step
from .uncertainty.spread import Spread, spread

MEAN_STEP = -2  # ``Overlap.step`` of a mean over steps (-1: the whole window)


@dataclass(frozen=True, slots=True, kw_only=True)
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
    def compute_only_ns(self) -> int:
        return self.compute_ns - self.overlapped_ns

    @property
    def busy_ns(self) -> int:
        return self.compute_ns + self.comm_ns - self.overlapped_ns

    @property
    def other_ns(self) -> int:
        return max(self.step_ns - self.busy_ns, 0)

    @property
    def overlap_pct(self) -> float:
        return 100.0 * self.overlapped_ns / self.comm_ns if self.comm_ns else 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RankOverlap:
    rank: int
    steps: tuple[Overlap, ...]
    window: Overlap
    hta_window: Overlap
    # steps of larger inputs that the job's input sizes explain (``inputwork.heavy_steps``): of another kind, never an
    # outlier (the run's noise calls their time the job's data)
    heavy: frozenset[int] = frozenset()

    @property
    def kept(self) -> tuple[Overlap, ...]:
        """The analyzed steps less the outlier steps (``outliers``)."""
        out = {n for n, _ms, _why in self.outliers}
        return tuple(s for s in self.steps if s.step not in out) or self.steps

    @property
    def outliers(self) -> tuple[tuple[int, float, str], ...]:
        """Steps left out of the headline: (step number, its ms, why) — a one-off stall or export, not averaged in."""
        sp = self.spread_ms
        if sp is None:
            return ()
        return tuple((int(label), v, why) for label, v, why in sp.outliers)

    @property
    def spread_ms(self) -> Spread | None:
        """The step time over the analyzed steps (ms): mean without outliers, median, range."""
        return _step_spread(self.steps, self.heavy)

    @property
    def representative(self) -> Overlap | None:
        """The rank's headline figures: the mean over its analyzed steps, outlier steps left out (``step`` = -2).
        Means add up (the mean step is the sum of its mean parts) and are unbiased for any count of steps, where
        the median of an even count would be one of its middle steps."""
        kept = self.kept
        if not kept:
            return None

        def m(attr: str) -> int:
            return int(round(float(np.mean([getattr(s, attr) for s in kept]))))

        return Overlap(step=MEAN_STEP, step_ns=m("step_ns"), compute_ns=m("compute_ns"), comm_ns=m("comm_ns"),
                       overlapped_ns=m("overlapped_ns"), comm_bytes=m("comm_bytes"))

    @property
    def typical_step(self) -> int | None:
        """The analyzed step nearest the mean (a real step, for what needs one: its CPU span, a plot's marker)."""
        rep = self.representative
        if rep is None:
            return None
        return min(self.kept, key=lambda s: (abs(s.step_ns - rep.step_ns), s.step)).step

    def median(self, attr: str) -> float:
        vals = [getattr(s, attr) for s in self.steps]
        return float(np.median(vals)) if vals else 0.0

    def mean(self, attr: str) -> float | None:
        """Mean over the analyzed steps (means add up: the mean step is the sum of the mean parts)."""
        vals = [getattr(s, attr) for s in self.steps]
        return float(np.mean(vals)) if vals else None


ALIKE_BYTES = 0.25  # a step that moved more than this share over the lower median of the bytes: of another kind


@lru_cache(maxsize=16_384)
def _step_spread(steps: tuple[Overlap, ...], heavy: frozenset[int] = frozenset()) -> Spread | None:
    """The step time's spread over ``steps`` (ms), computed once per rank: a report asks for it (its outliers, the
    steps kept, the mean) tens of times per rank, which at 1,024 ranks cost seconds.  Steps of the usual kind
    (``alike_bytes``, not ``heavy``) are judged among themselves."""
    alike = [a and s.step not in heavy for a, s in zip(alike_bytes([s.comm_bytes for s in steps]), steps, strict=True)]
    return spread([s.step_ns / 1e6 for s in steps], [str(s.step) for s in steps], [s.step for s in steps], alike)


def alike_bytes(nbytes: Sequence[int]) -> list[bool]:
    """Which steps are of the usual kind, the only ones that can be outliers (a stall): all but those that moved
    more than ``ALIKE_BYTES`` over the lower median of the steps' bytes.  Traced per micro-batch with gradient
    accumulation, the one step in four that all-reduces was left out of the headline as a stall (and the
    accumulation's count read 1 of 7 steps); a step that moved less (an evaluation, a collective the profiler's
    window cut) can still be one, and bytes that vary a little (experts' all-to-alls) keep every step eligible."""
    return usual_kind(nbytes, ALIKE_BYTES)


def usual_kind(values: Sequence[float], share: float) -> list[bool]:
    """Which values are at most ``share`` over the lower median of ``values`` (a step's bytes, its input size): the
    others are of another kind."""
    usual = float(np.percentile(values, 50, method="lower")) if len(values) else 0.0
    return [v <= (1.0 + share) * usual for v in values]


def _select(lane: Lane, steps: set[int] | None) -> iv.Span:
    if steps is None:
        return lane.start_ns, lane.end_ns
    mask = np.isin(lane.step, np.fromiter(steps, dtype=np.int64, count=len(steps)))
    return lane.start_ns[mask], lane.end_ns[mask]


def _figures(step: int, step_ns: int, comp: iv.Span, comm: iv.Span, nbytes: int) -> Overlap:
    c = iv.union(*comp)
    m = iv.union(*comm)
    c_len, m_len = int((c[1] - c[0]).sum()), int((m[1] - m[0]).sum())
    both = iv.length(iv.combine(c, m))
    return Overlap(step=step, step_ns=step_ns, compute_ns=c_len, comm_ns=m_len, overlapped_ns=c_len + m_len - both,
                   comm_bytes=nbytes)


def step_windows(rt: RankTrace) -> list[tuple[Step, int, int]]:
    """Each step with its window ``[lo, hi)``: from where the previous step's window ended (the first: its own
    start) to the later of its ProfilerStep's end and the end of the work attributed to it.  On CPU ranks the
    communication does not stretch it: the training thread blocks in (or waits for) its gloo collectives inside
    its step, and a gloo worker's record can end long after the thread went on (a last all-reduce recorded to
    end 72 ms past its step, whose rank had run its optimizer, made a 39 ms step read 111 ms, an outlier)."""
    ends = {s.number: s.end_ns for s in rt.steps}
    for lane in (rt.compute,) if rt.device_kind == "cpu" else (rt.compute, rt.comm):
        st, en = lane.step, lane.end_ns
        for n in ends:
            m = st == n
            if m.any():
                ends[n] = max(ends[n], int(en[m].max()))
    out = []
    lo = rt.steps[0].start_ns if rt.steps else 0
    for s in rt.steps:
        hi = max(ends[s.number], lo)
        out.append((s, lo, hi))
        lo = hi
    return out


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


def _per_step(rt: RankTrace, windows: list[tuple[Step, int, int]], bytes_by: dict[int, int]) -> tuple[Overlap, ...]:
    """The time partition of each window: compute, communication and both, whichever step launched them."""
    if not windows:
        return ()
    comp = iv.union(rt.compute.start_ns, rt.compute.end_ns)
    comm = iv.union(rt.comm.start_ns, rt.comm.end_ns)
    both = iv.intersect(comp, comm)
    lo = np.array([w[1] for w in windows], dtype=np.int64)
    hi = np.array([w[2] for w in windows], dtype=np.int64)
    c, m, b = iv.lengths_within(comp, lo, hi), iv.lengths_within(comm, lo, hi), iv.lengths_within(both, lo, hi)
    return tuple(Overlap(step=s.number, step_ns=int(h - lo_), compute_ns=int(ci), comm_ns=int(mi),
                         overlapped_ns=int(bi), comm_bytes=bytes_by.get(s.number, 0))
                 for (s, lo_, h), ci, mi, bi in zip(windows, c, m, b, strict=True))


def rank_overlap(rt: RankTrace, steps: Iterable[int] | None = None) -> RankOverlap:
    """Per-step and whole-window overlap of one rank, restricted to ``steps`` when given."""
    wanted = set(steps) if steps is not None else None
    windows = [w for w in step_windows(rt) if wanted is None or w[0].number in wanted]
    bytes_by: dict[int, int] = {}
    for c in rt.collectives:
        bytes_by[c.step] = bytes_by.get(c.step, 0) + c.bytes
    per = _per_step(rt, windows, bytes_by)
    if wanted is None:
        comp, comm = _select(rt.compute, None), _select(rt.comm, None)
        total_bytes = sum(bytes_by.values())
    else:
        comp, comm = _select(rt.compute, wanted), _select(rt.comm, wanted)
        total_bytes = sum(v for k, v in bytes_by.items() if k in wanted)
    chosen = [w[0] for w in windows]
    span_ns = (chosen[-1].end_ns - chosen[0].start_ns) if chosen else 0
    window = _figures(-1, span_ns, comp, comm, total_bytes)
    return RankOverlap(rank=rt.rank, steps=per, window=window, hta_window=hta_window_overlap(rt))


def kept_steps(overlaps: Sequence[RankOverlap]) -> dict[int, tuple[int, ...]]:
    """Per rank, the steps its headline figures are the mean of (``RankOverlap.kept``): the steps every per-rank
    figure beside them (waits, stages, micro-batches) is taken over."""
    return {o.rank: tuple(s.step for s in o.kept) for o in overlaps}


def most_exposed(exposed_by_rank: Mapping[int, float]) -> int | None:
    """The headline's rank: the one whose mean step is most exposed, the lowest rank on a tie (None without ranks);
    one choice for the text's finding, the HTML's cards and compare."""
    return min(exposed_by_rank, key=lambda r: (-exposed_by_rank[r], r), default=None)
