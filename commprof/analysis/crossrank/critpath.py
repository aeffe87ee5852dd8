"""The cross-rank critical path of each analyzed step.

Walk back from the step's end (the rank whose step lasted longest) through that rank's own work to its
predecessor: the collective it had to wait for (``critgraph``).  That collective's transfer (its last arrival to
the rank's end of it) is on the path; before it, the path goes to the rank whose arrival released it (the last to
arrive, on aligned clocks; for a recv, the later of it and its send: a stage waiting for a late send crosses to the
sending stage) and on through that rank's own work, and so on back to a step start.  Every nanosecond
of the path is one rank's own work (compute, host, idle: ``critgraph``) or a collective's transfer, by process
group.  Waiting is never on the path: a rank that waits is not the one the step waits for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .critgraph import StepGraph

OWN, COMM = "own", "comm"


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """A stretch of the path: a rank's own work (``kind`` "own", split into compute / host / idle) or a
    collective's transfer (``kind`` "comm", with its process group and op), aligned ns."""

    rank: int
    kind: str
    start_ns: int
    end_ns: int
    compute_ns: int = 0
    host_ns: int = 0
    idle_ns: int = 0
    group: str = ""
    op: str = ""

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    @property
    def what(self) -> str:
        """In words: a transfer's op and process group; own work by its largest part."""
        if self.kind == COMM:
            return f"{self.op} transfer ({self.group})"
        parts = ((self.compute_ns, "compute"), (self.host_ns, "launch/host"), (self.idle_ns, "idle"))
        ms = self.duration_ns / 1e6
        return f"rank {self.rank} own work, {ms:.3f} ms: mostly {max(parts)[1]}" if ms else f"rank {self.rank} own work"


@dataclass(frozen=True, slots=True, kw_only=True)
class StepPath:
    step: int
    length_ns: int  # the step's length (the longest rank step: its start to its end)
    segments: tuple[Segment, ...]  # in time order

    def own_ns(self) -> dict[int, int]:
        """Per rank, its own work on the path."""
        out: dict[int, int] = {}
        for s in self.segments:
            if s.kind == OWN:
                out[s.rank] = out.get(s.rank, 0) + s.duration_ns
        return out

    def comm_ns(self) -> dict[str, int]:
        """Per process group, its transfers on the path."""
        out: dict[str, int] = {}
        for s in self.segments:
            if s.kind == COMM:
                out[s.group] = out.get(s.group, 0) + s.duration_ns
        return out

    def parts_ns(self, rank: int) -> tuple[int, int, int]:
        """A rank's own work on the path: compute, host, idle."""
        segs = [s for s in self.segments if s.kind == OWN and s.rank == rank]
        return (sum(s.compute_ns for s in segs), sum(s.host_ns for s in segs), sum(s.idle_ns for s in segs))


def walk(g: StepGraph) -> StepPath:
    """The critical path of one step, on the measured times."""
    p = g.parts
    out: list[Segment] = []
    i = int(np.argmax(g.stop - g.start))
    rank, x, pred = int(g.ranks[i]), int(g.stop[i]), int(g.pred_end[i])
    parts = (int(p.compute_e[i]), int(p.host_e[i]), int(p.idle_e[i]))
    start_of = dict(zip(g.ranks.tolist(), g.start.tolist(), strict=True))
    last = _last_arrivers(g)
    for _ in range(g.end.size + 1):
        base = int(g.end[pred]) if pred >= 0 else int(start_of.get(rank, x))
        out.append(Segment(rank=rank, kind=OWN, start_ns=min(base, x), end_ns=x, compute_ns=parts[0],
                           host_ns=parts[1], idle_ns=parts[2]))
        if pred < 0:
            break
        inst = int(g.pair_inst[pred])
        q = pred if bool(g.solo[pred]) else int(last[inst])  # an eager send: its own arrival released it
        out.append(Segment(rank=rank, kind=COMM, start_ns=min(int(g.arrival[q]), base), end_ns=base,
                           group=g.groups[int(g.inst_group[inst])], op=g.inst_op[inst]))
        rank, x, pred = int(g.pair_rank[q]), int(g.arrival[q]), int(g.pred[q])
        parts = (int(p.compute_p[q]), int(p.host_p[q]), int(p.idle_p[q]))
    out.reverse()
    return StepPath(step=g.step, length_ns=int((g.stop - g.start).max()), segments=tuple(out))


def _last_arrivers(g: StepGraph) -> np.ndarray:
    """Per instance, the pair that arrived last."""
    n = int(g.inst_level.size)
    order = np.lexsort((g.arrival, g.pair_inst))  # by instance, then arrival
    last = np.full(n, -1, dtype=np.int64)
    last[g.pair_inst[order]] = order  # the last write per instance is its latest arrival
    return last
