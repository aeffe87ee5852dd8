"""One merged Chrome-trace JSON of every rank, clock-aligned, with commprof's own tracks.

Opens in Perfetto (ui.perfetto.dev, "Open trace file") and chrome://tracing.  Each rank is a process
(pid = rank); its threads are the analysis lanes: steps, compute, each collective lane, memcpy, and
commprof's tracks: exposed communication, DDP buckets (ready -> launch -> done), waits for late ranks and the
cross-rank critical path (the rank whose work or transfer the step waited for, at each moment).
Timestamps are microseconds from the earliest event of the run, on the reference rank's clock (offsets
from ``analysis.crossrank``).  Slices on one thread never partially overlap (the JSON importer requires
proper nesting), so overlapping collectives are spread over sub-tracks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from ..analysis.analyze import Report
from ..analysis.spans import lane_span, rank_spans
from ..model import RankTrace
from .safe import WHOLE, plain


def _first_fit(spans: list[tuple[int, int]]) -> list[int]:
    """Sub-track of each span so that spans on one sub-track do not overlap (greedy interval colouring)."""
    order = sorted(range(len(spans)), key=lambda i: spans[i][0])
    ends: list[int] = []
    out = [0] * len(spans)
    for i in order:
        s, e = spans[i]
        for k, last in enumerate(ends):
            if s >= last:
                ends[k] = e
                out[i] = k
                break
        else:
            ends.append(e)
            out[i] = len(ends) - 1
    return out


class _Tracks:
    """Events of the merged trace: per rank (a process) its tracks (threads), numbered in order of first use."""

    def __init__(self, shift: dict[int, int], t0: int) -> None:
        self.shift, self.t0 = shift, t0
        self.events: list[dict[str, Any]] = []
        self.tids: dict[tuple[int, str], int] = {}
        self.count: dict[int, int] = {}  # tracks per rank so far (counting them by a scan was quadratic in ranks)

    def tid(self, r: int, name: str) -> int:
        key = (r, name)
        if key not in self.tids:
            self.count[r] = self.count.get(r, 0) + 1
            self.tids[key] = self.count[r]
            self.events.append({"ph": "M", "name": "thread_name", "pid": r, "tid": self.tids[key],
                                "args": {"name": name}})
            self.events.append({"ph": "M", "name": "thread_sort_index", "pid": r, "tid": self.tids[key],
                                "args": {"sort_index": self.tids[key]}})
        return self.tids[key]

    def slices(self, r: int, track: str, spans: list[tuple[int, int, str, dict[str, Any]]]) -> None:
        sub = _first_fit([(s, e) for s, e, _n, _a in spans])
        for (s, e, name, args), k in zip(spans, sub, strict=True):
            t = self.tid(r, track if k == 0 else f"{track} ({k + 1})")
            self.events.append({"ph": "X", "name": name, "cat": track, "pid": r, "tid": t,
                                "ts": (s + self.shift[r] - self.t0) / 1000.0, "dur": max((e - s) / 1000.0, 0.0),
                                "args": args})


def merged_trace(rep: Report) -> dict[str, Any]:
    run = rep.run
    off = rep.cross.offsets_ns
    shift = {rt.rank: rt.base_time_ns + off.get(rt.rank, 0) for rt in run.ranks}
    tracks = _Tracks(shift, min((rt.first_ns + shift[rt.rank] for rt in run.ranks), default=0))
    for rt in run.ranks:
        _rank_tracks(tracks, rep, rt)
    # waits: on each rank, from its arrival until the last rank arrived
    for g in rep.cross.groups:
        wait = g.wait_ns
        last = [int(g.ranks[k]) for k in np.argmax(g.arrival_ns, axis=1).tolist()] if g.arrival_ns.size else []
        for j, r in enumerate(g.ranks):
            waits = []
            for i in np.flatnonzero(wait[:, j] > 0).tolist():
                a = int(g.arrival_ns[i, j]) - shift[r]
                waits.append((a, a + int(wait[i, j]), f"wait: {plain(g.ops[i])}",
                              {"process_group": plain(g.process_group), "wait_ms": int(wait[i, j]) / 1e6,
                               "last_rank": last[i]}))
            tracks.slices(r, "wait for late ranks", waits)
    _critical_path(tracks, rep, shift)
    return {"traceEvents": tracks.events, "displayTimeUnit": "ms",
            "otherData": {"generator": "commprof", "trace_dir": plain(run.path, 500),
                          "clock_offsets_ms": {str(k): v / 1e6 for k, v in off.items()},
                          **({"root_cause": plain(rc.text, WHOLE)} if (rc := rep.root_cause) is not None else {})}}


def _critical_path(tracks: _Tracks, rep: Report, shift: dict[int, int]) -> None:
    """The cross-rank critical path, when the report has one: a "critical path" track on each rank it crosses."""
    from .timeline.data import path_segments

    by_rank: dict[int, list[tuple[int, int, str, dict[str, Any]]]] = {}
    for k, (r, s, e, what) in enumerate(path_segments(rep)):
        if r in shift:
            by_rank.setdefault(r, []).append((s - shift[r], e - shift[r], f"critical path: {plain(what)}",
                                              {"segment": k}))
    for r, spans in by_rank.items():
        tracks.slices(r, "critical path", spans)


def _rank_tracks(tracks: _Tracks, rep: Report, rt: RankTrace) -> None:
    r = rt.rank
    tracks.events.append({"ph": "M", "name": "process_name", "pid": r, "tid": 0,
                          "args": {"name": f"rank {r} ({plain(rt.device_kind)}, {plain(rt.path.split('/')[-1], 80)})"}})
    tracks.events.append({"ph": "M", "name": "process_sort_index", "pid": r, "tid": 0, "args": {"sort_index": r}})
    tracks.slices(r, "steps", [(s.start_ns, s.end_ns, f"ProfilerStep#{s.number}", {}) for s in rt.steps])
    sp = rank_spans(rt)
    tracks.slices(r, "compute", [(int(a), int(b), "compute", {}) for a, b in zip(*sp.compute, strict=True)])
    colls = [c for c in rt.collectives if c.start_ns is not None and c.end_ns is not None]
    tracks.slices(r, "comm", [(int(c.start_ns or 0), int(c.end_ns or 0), f"{plain(c.op)} {c.bytes:,} B",
                               {"op": plain(c.op), "bytes": c.bytes, "dtype": plain(c.dtype),
                                "process_group": plain(c.process_group), "group_size": c.group_size,
                                "kernel": plain(c.name, 300), "step": c.step}) for c in colls])
    tracks.slices(r, "exposed comm", [(int(a), int(b), "exposed comm", {}) for a, b in zip(*sp.exposed, strict=True)])
    tracks.slices(r, "memcpy", [(int(a), int(b), "memcpy/memset", {})
                                for a, b in zip(*lane_span(rt.memcpy), strict=True)])
    steps = {s.number: s.start_ns for s in rt.steps}
    spans = []
    for b in (b for b in rep.bucket_rows if b.rank == r and b.step in steps):
        s0 = steps[b.step]
        end = b.end_ns if b.end_ns is not None else b.launch_ns
        spans.append((s0 + b.ready_ns, s0 + end, f"bucket {b.index}",
                      {"bytes": b.bytes, "params": b.params, "step": b.step,
                       "launch_ms_after_ready": (b.launch_ns - b.ready_ns) / 1e6,
                       "exposed_ms": None if b.exposed_ns is None else b.exposed_ns / 1e6}))
    tracks.slices(r, "DDP buckets", spans)


def render(rep: Report) -> bytes:
    return orjson.dumps(merged_trace(rep))
