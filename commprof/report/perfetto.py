"""One merged Chrome-trace JSON of every rank, clock-aligned, with commprof's own tracks.

Opens in Perfetto (ui.perfetto.dev, "Open trace file") and chrome://tracing.  Each rank is a process
(pid = rank); its threads are the analysis lanes: steps, compute, each collective lane, memcpy, and
commprof's tracks: exposed communication, DDP buckets (ready -> launch -> done) and waits for late ranks.
Timestamps are microseconds from the earliest event of the run, on the reference rank's clock (offsets
from ``analysis.ranks``).  Slices on one thread never partially overlap (the JSON importer requires
proper nesting), so overlapping collectives are spread over sub-tracks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from ..analysis import intervals as iv
from ..analysis.report import Report
from .safe import plain

TRACKS = ("steps", "compute", "comm", "exposed comm", "memcpy", "DDP buckets", "wait for late ranks")


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


def merged_trace(rep: Report) -> dict[str, Any]:
    run = rep.run
    off = rep.cross.offsets_ns
    shift = {rt.rank: rt.base_time_ns + off.get(rt.rank, 0) for rt in run.ranks}
    t0 = min((rt.first_ns + shift[rt.rank] for rt in run.ranks), default=0)
    events: list[dict[str, Any]] = []

    def us(t: int, r: int) -> float:
        return (t + shift[r] - t0) / 1000.0

    tids: dict[tuple[int, str], int] = {}

    def tid(r: int, name: str) -> int:
        key = (r, name)
        if key not in tids:
            tids[key] = len([k for k in tids if k[0] == r]) + 1
            events.append({"ph": "M", "name": "thread_name", "pid": r, "tid": tids[key], "args": {"name": name}})
            events.append({"ph": "M", "name": "thread_sort_index", "pid": r, "tid": tids[key],
                           "args": {"sort_index": tids[key]}})
        return tids[key]

    def slices(r: int, track: str, spans: list[tuple[int, int, str, dict[str, Any]]]) -> None:
        sub = _first_fit([(s, e) for s, e, _n, _a in spans])
        for (s, e, name, args), k in zip(spans, sub, strict=True):
            t = tid(r, track if k == 0 else f"{track} ({k + 1})")
            events.append({"ph": "X", "name": name, "cat": track, "pid": r, "tid": t, "ts": us(s, r),
                           "dur": max((e - s) / 1000.0, 0.0), "args": args})

    for rt in run.ranks:
        r = rt.rank
        events.append({"ph": "M", "name": "process_name", "pid": r, "tid": 0,
                       "args": {"name": f"rank {r} ({plain(rt.device_kind)}, {plain(rt.path.split('/')[-1], 80)})"}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": r, "tid": 0, "args": {"sort_index": r}})
        slices(r, "steps", [(s.start_ns, s.end_ns, f"ProfilerStep#{s.number}", {}) for s in rt.steps])
        comp = iv.union(rt.compute.start_ns, rt.compute.end_ns)
        slices(r, "compute", [(int(a), int(b), "compute", {}) for a, b in zip(comp[0], comp[1], strict=True)])
        colls = [c for c in rt.collectives if c.start_ns is not None and c.end_ns is not None]
        slices(r, "comm", [(int(c.start_ns or 0), int(c.end_ns or 0), f"{plain(c.op)} {c.bytes:,} B",
                            {"op": plain(c.op), "bytes": c.bytes, "dtype": plain(c.dtype),
                             "process_group": plain(c.process_group), "group_size": c.group_size,
                             "kernel": plain(c.name, 300), "step": c.step}) for c in colls])
        comm = iv.union(rt.comm.start_ns, rt.comm.end_ns)
        expo = iv.subtract(comm, comp)
        slices(r, "exposed comm", [(int(a), int(b), "exposed comm", {}) for a, b in zip(*expo, strict=True)])
        mem = iv.union(rt.memcpy.start_ns, rt.memcpy.end_ns)
        slices(r, "memcpy", [(int(a), int(b), "memcpy/memset", {}) for a, b in zip(*mem, strict=True)])
        steps = {s.number: s.start_ns for s in rt.steps}
        bks = [b for b in rep.bucket_rows if b.rank == r and b.step in steps]
        spans = []
        for b in bks:
            s0 = steps[b.step]
            end = b.end_ns if b.end_ns is not None else b.launch_ns
            spans.append((s0 + b.ready_ns, s0 + end, f"bucket {b.index}",
                          {"bytes": b.bytes, "params": b.params, "step": b.step,
                           "launch_ms_after_ready": (b.launch_ns - b.ready_ns) / 1e6,
                           "exposed_ms": None if b.exposed_ns is None else b.exposed_ns / 1e6}))
        slices(r, "DDP buckets", spans)
    # waits: on each rank, from its arrival until the last rank arrived
    for g in rep.cross.groups:
        for j, r in enumerate(g.ranks):
            waits = []
            for i in np.flatnonzero(g.wait_ns[:, j] > 0).tolist():
                a = int(g.arrival_ns[i, j]) - shift[r]
                waits.append((a, a + int(g.wait_ns[i, j]), f"wait: {plain(g.ops[i])}",
                              {"process_group": plain(g.process_group), "wait_ms": int(g.wait_ns[i, j]) / 1e6,
                               "last_rank": int(g.ranks[int(np.argmax(g.arrival_ns[i]))])}))
            slices(r, "wait for late ranks", waits)
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"generator": "commprof", "trace_dir": plain(run.path, 500),
                          "clock_offsets_ms": {str(k): v / 1e6 for k, v in off.items()}}}


def render(rep: Report) -> bytes:
    return orjson.dumps(merged_trace(rep))
