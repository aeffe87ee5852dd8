"""A rank's time as canonical interval sets: compute, communication and the exposed part of communication (what
no compute covers) — for the whole trace or one step.  Computed here once for every user (the digest's straggler
split, the Perfetto tracks, the timeline plot)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import intervals as iv
from ..model import Lane, RankTrace


@dataclass(frozen=True, slots=True)
class RankSpans:
    compute: iv.Span
    comm: iv.Span
    exposed: iv.Span  # comm minus compute


def lane_span(lane: Lane, step: int | None = None) -> iv.Span:
    """The union of a lane's intervals, or of those attributed to ``step``."""
    if step is None:
        return iv.union(lane.start_ns, lane.end_ns)
    m = lane.step == step
    return iv.union(lane.start_ns[m], lane.end_ns[m])


def rank_spans(rt: RankTrace, step: int | None = None) -> RankSpans:
    """The rank's spans over the whole trace, or over the work attributed to ``step``."""
    comp = lane_span(rt.compute, step)
    comm = lane_span(rt.comm, step)
    return RankSpans(comp, comm, iv.subtract(comm, comp))
