"""Memory in the report: the memory table (HTML), allocator churn and the DDP -> FSDP2 what-if (terminal and HTML),
and ``memory``, ``churn`` and ``parallelism`` in summary.json."""

from __future__ import annotations

from typing import Any

from ...analysis.analyze import Report
from ...analysis.memory.churn import Churn
from ...analysis.memory.ddp2fsdp import ParallelAnalysis
from ...analysis.memory.memstate import StateMemory
from ...analysis.memory.peak import Memory
from ...analysis.uncertainty.maths import fmt_range
from ..fmt import size as _fmt_bytes
from ..safe import WHOLE
from ..safe import html_text as h
from ..tables import HTML_END, html_head, html_row


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def as_json(rep: Report) -> dict[str, Any]:
    return {"memory": [_memory(m) for m in rep.memory], "churn": [churn_dict(c) for c in rep.churn],
            "parallelism": parallel_dict(rep.parallel)}


def _memory(m: Memory) -> dict[str, Any]:
    return {"rank": m.rank, "device": m.device, "peak_allocated_bytes": m.peak_allocated,
            "peak_reserved_bytes": m.peak_reserved, "device_total_bytes": m.total, "pct_of_device": _r(m.pct, 1),
            "ddp_bucket_bytes": m.bucket_bytes, "ddp_buckets_are_a_copy": m.bucket_copy,
            "compression_persistent_bytes": m.compression_persistent,
            "compression_transient_bytes": m.compression_transient}


def churn_dict(c: Churn) -> dict[str, Any]:
    return {"rank": c.rank, "device": c.device, "patterns": list(c.patterns),
            "recurring_allocs_per_step": c.recurring_allocs, "recurring_bytes_per_step": c.recurring_bytes,
            "steps": [{"step": s.step, "step_ms": _r(s.step_ms), "calls": dict(sorted(s.calls.items())),
                       "calls_ms": _r(s.calls_ms), "in_backward": s.in_backward,
                       "in_backward_ms": _r(s.in_backward_ms), "empty_cache": s.empty_cache,
                       "allocs": s.allocs if s.allocs >= 0 else None, "alloc_bytes": s.alloc_bytes}
                      for s in c.steps]}


def _state(m: StateMemory) -> dict[str, int]:
    return {"params_bytes": m.params_bytes, "grads_bytes": m.grads_bytes, "optimizer_bytes": m.optimizer_bytes,
            "buckets_bytes": m.buckets_bytes, "total_bytes": m.total}


def parallel_dict(a: ParallelAnalysis | None) -> dict[str, Any] | None:
    """The parallelism what-if's own figures (its predictions are in ``whatifs``, knob ``parallelism``)."""
    if a is None:
        return None
    return {"traced": a.traced, "rank": a.rank, "world_size": a.world, "optimizer": a.optimizer,
            "optimizer_assumed": a.optimizer_assumed, "units": [{"unit": u, "unsharded_bytes": b} for u, b in a.units],
            "today": {**_state(a.today), "peak_bytes": a.today_peak_bytes, "step_ms": _r(a.today_step_ms)},
            "variants": [{"value": w.value, "reshard_after_forward": w.reshard_after_forward, **dict(w.with_settings),
                          "state": _state(w.state),
                          "predicted_step_peak_bytes": w.step_peak_bytes} for w in a.whatifs],
            "device_total_bytes": a.device_total_bytes, "compute_scale": _r(a.compute_scale, 3),
            "compute_scale_source": a.compute_scale_source, "notes": list(a.notes)}


def _variant_rows(a: ParallelAnalysis) -> list[tuple[str, str, str, str, str]]:
    today = (a.traced.upper() + " (traced)", f"{a.today_step_ms:.1f}", "", _fmt_bytes(a.today.total),
             _fmt_bytes(a.today_peak_bytes) if a.today_peak_bytes is not None else "–")
    return [today] + [(f"{w.value} " + " ".join(f"{_short(k)}={v}" for k, v in w.with_settings),
                       f"{w.predicted_step_ms:.1f}",
                       fmt_range(w.predicted_range_ms), _fmt_bytes(w.state.total),
                       _fmt_bytes(w.predicted_peak_bytes) if w.predicted_peak_bytes is not None else "–")
                      for w in a.whatifs]


def _short(knob: str) -> str:
    return {"reshard_after_forward": "raf", "gradient_as_bucket_view": "bucket_view"}.get(knob, knob)


_COLS = ("setting", "step ms", "band ms", "state (params+grads+optim)", "peak")


def _parallel_title(a: ParallelAnalysis) -> str:
    other = "FSDP2" if a.traced == "ddp" else "DDP"
    return (f"{a.traced.upper()} -> {other} what-if (rank {a.rank}, {a.world} ranks, {len(a.units)} units, "
            f"{a.optimizer}{' assumed' if a.optimizer_assumed else ''})")


def _churn_rows(rep: Report) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for c in rep.churn:
        calls = sum(sum(s.calls.values()) for s in c.steps) / max(len(c.steps), 1)
        allocs = [s.allocs for s in c.steps if s.allocs >= 0]
        out.append((str(c.rank), c.device or "–", f"{calls:.0f}", f"{c.median('calls_ms'):.2f}",
                    f"{c.median('in_backward'):.0f}", f"{sum(allocs) / len(allocs):.0f}" if allocs else "–",
                    _fmt_bytes(c.recurring_bytes), ", ".join(c.patterns) or "–"))
    return out


_CHURN_COLS = ("rank", "device", "allocator calls", "calls ms", "in backward", "allocs", "reusable", "pattern")


def text(con: Any, rep: Report, s: dict[str, Any]) -> None:
    from ..tables import table

    a = rep.parallel
    sec = rep.section("memory")
    if a is not None and sec is not None and sec.detail.parallel_shown:
        t = table(_parallel_title(a), _COLS, left=("setting",))
        for row in _variant_rows(a):
            t.add_row(*row)
        con.print(t)
        con.print()
    if any(c.patterns for c in rep.churn):
        t = table("Allocator churn (per profiled step)", _CHURN_COLS, left=("device", "pattern"))
        for crow in _churn_rows(rep):
            t.add_row(*crow)
        con.print(t)
        con.print()


def html(rep: Report, s: dict[str, Any], plots: dict[str, bytes]) -> list[str]:
    parts: list[str] = []
    if s.get("memory"):
        parts += _peaks_html(s)
    if rep.parallel is not None:
        a = rep.parallel
        parts.append(f"<h2>{h(_parallel_title(a))}</h2>" + html_head(_COLS, name="parallelism"))
        parts += [html_row(h(v) for v in row) for row in _variant_rows(a)]
        parts.append(HTML_END)
        parts += [f"<p class='sub'>{h(n, WHOLE)}</p>" for n in a.notes]
    if any(c.steps for c in rep.churn):
        parts.append("<h2>Allocator churn</h2>" + html_head(_CHURN_COLS, name="churn"))
        parts += [html_row(h(v) for v in row) for row in _churn_rows(rep)]
        parts.append(HTML_END)
    return parts


def _peaks_html(s: dict[str, Any]) -> list[str]:
    parts = ["<h2>Memory (profile_memory=True)</h2>" + html_head(
        ("rank", "device", "peak allocated", "peak reserved", "% of device", "DDP buckets",
         "comm hook buffers (kept / in flight)"))]
    for m in s["memory"]:
        buckets = _fmt_bytes(m["ddp_bucket_bytes"]) + (" (a copy)" if m["ddp_buckets_are_a_copy"] else "")
        hook = (f"{_fmt_bytes(m['compression_persistent_bytes'])} / {_fmt_bytes(m['compression_transient_bytes'])}"
                if m["compression_persistent_bytes"] or m["compression_transient_bytes"] else "–")
        parts.append(html_row(h(str(v)) for v in (
            m["rank"], m["device"], _fmt_bytes(m["peak_allocated_bytes"]), _fmt_bytes(m["peak_reserved_bytes"]),
            "–" if m["pct_of_device"] is None else m["pct_of_device"], buckets, hook)))
    parts.append(HTML_END)
    return parts
