"""The critical path and the root cause as summary.json writes them (``root_cause``, ``critical_path``,
``critical_comm``), and the Perfetto track that marks the path."""

from __future__ import annotations

from typing import Any

from ..analysis.analyze import Report
from ..analysis.critpath import OWN


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def root_cause(rep: Report) -> dict[str, Any] | None:
    crit = rep.critical
    if crit is None:
        return None
    c = crit.cause
    return {"rank": c.rank, "ranks": list(c.ranks), "what": c.what, "share_pct": _r(c.share_pct, 1),
            "steps_on_path": c.steps_on_path, "steps": c.steps, "step_ms": _r(c.step_ms), "noise_ms": _r(c.noise_ms),
            "predicted_step_ms": _r(c.predicted_step_ms), "predicted_gain_ms": _r(c.predicted_gain_ms),
            "predicted_range_ms": None if c.predicted_range_ms is None else [_r(v) for v in c.predicted_range_ms],
            "ratio_to_peers": None if c.ratio is None or c.ratio == float("inf") else _r(c.ratio, 3),
            "peers": c.peers or None, "spread": [{"rank": r, "share_pct": _r(s, 1)} for r, s in c.spread],
            "text": c.text}


def critical_path(rep: Report) -> list[dict[str, Any]]:
    """Per analyzed step: its length and its segments (times in ms from the path's start, on the reference
    clock); own-work segments carry their compute / host / idle split, transfers their process group and op."""
    crit = rep.critical
    if crit is None:
        return []
    out = []
    for p in crit.paths:
        t0 = p.segments[0].start_ns if p.segments else 0
        segs = []
        for s in p.segments:
            d: dict[str, Any] = {"rank": s.rank, "kind": s.kind, "start_ms": _r((s.start_ns - t0) / 1e6),
                                 "ms": _r(s.duration_ns / 1e6)}
            if s.kind == OWN:
                d.update(compute_ms=_r(s.compute_ns / 1e6), host_ms=_r(s.host_ns / 1e6), idle_ms=_r(s.idle_ns / 1e6))
            else:
                d.update(process_group=s.group, op=s.op)
            segs.append(d)
        out.append({"step": p.step, "length_ms": _r(p.length_ns / 1e6), "segments": segs})
    return out


def critical_comm(rep: Report) -> list[dict[str, Any]]:
    crit = rep.critical
    if crit is None:
        return []
    return [{"process_group": g.group, "kind": g.kind, "kind_from": g.source, "ranks": g.ranks,
             "on_path_ms": _r(g.on_path_ms), "share_pct": _r(g.share_pct, 1), "overlap_saves_at_most_ms":
             _r(g.on_path_ms)} for g in crit.comm]


def perfetto_slices(rep: Report) -> dict[int, list[tuple[int, int, str, dict[str, Any]]]]:
    """Per rank, the path's segments on it (aligned ns), for the merged trace's "critical path" track."""
    crit = rep.critical
    out: dict[int, list[tuple[int, int, str, dict[str, Any]]]] = {}
    if crit is None:
        return out
    for p in crit.paths:
        for s in p.segments:
            if s.end_ns <= s.start_ns:
                continue
            if s.kind == OWN:
                name = f"critical path: own work (step {p.step})"
                args: dict[str, Any] = {"compute_ms": s.compute_ns / 1e6, "host_ms": s.host_ns / 1e6,
                                        "idle_ms": s.idle_ns / 1e6}
            else:
                name = f"critical path: {s.op} transfer (step {p.step})"
                args = {"process_group": s.group}
            out.setdefault(s.rank, []).append((s.start_ns, s.end_ns, name, args))
    return out
