"""summary.json's memory items: allocator churn per rank (``churn``) and the parallelism what-ifs (``whatifs``)."""

from __future__ import annotations

from typing import Any

from ..analysis.churn import Churn


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
