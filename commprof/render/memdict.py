"""summary.json's memory items: allocator churn per rank (``churn``) and the parallelism what-ifs (``whatifs``)."""

from __future__ import annotations

from typing import Any

from ..analysis.churn import Churn
from ..analysis.ddp2fsdp import ParallelAnalysis
from ..analysis.memstate import StateMemory


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


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


def whatif_items(a: ParallelAnalysis | None) -> list[dict[str, Any]]:
    """``whatifs`` items of the parallelism what-if, one per variant."""
    if a is None:
        return []
    return [{"knob": "parallelism", "value": w.value, "reshard_after_forward": w.reshard_after_forward,
             "predicted_step_ms": _r(w.predicted_step_ms),
             "predicted_range_ms": [_r(w.predicted_range_ms[0]), _r(w.predicted_range_ms[1])],
             "predicted_peak_bytes": w.predicted_peak_bytes, "predicted_step_peak_bytes": w.step_peak_bytes,
             "state": _state(w.state), "rank": a.rank} for w in a.whatifs]


def parallel_dict(a: ParallelAnalysis | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {"traced": a.traced, "rank": a.rank, "world_size": a.world, "optimizer": a.optimizer,
            "optimizer_assumed": a.optimizer_assumed, "units": [{"unit": u, "unsharded_bytes": b} for u, b in a.units],
            "today": {**_state(a.today), "peak_bytes": a.today_peak_bytes, "step_ms": _r(a.today_step_ms)},
            "device_total_bytes": a.device_total_bytes, "notes": list(a.notes)}
