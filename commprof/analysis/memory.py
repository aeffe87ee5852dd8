"""Memory per rank (traces made with ``profile_memory=True``) and what communication costs in it.

Peak allocated and reserved bytes per device come from the profiler's ``[memory]`` events; the device's total
from ``deviceProperties``.  DDP's bucket buffers hold a copy of every gradient unless
``gradient_as_bucket_view=True`` (then the gradients are views into the buckets); compression hooks add a
half-size buffer per bucket while it is in flight.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model import RankTrace

NEAR_LIMIT = 0.85
_SIZE = {"float16": 2, "bfloat16": 2, "float64": 8}


@dataclass(frozen=True, slots=True)
class Memory:
    rank: int
    device: str
    peak_allocated: int
    peak_reserved: int
    total: int | None  # device capacity, when the trace says
    bucket_bytes: int  # DDP bucket buffers (a copy of the gradients unless gradient_as_bucket_view)
    bucket_copy: bool  # True when those buffers are a second copy

    @property
    def pct(self) -> float | None:
        return 100.0 * self.peak_reserved / self.total if self.total else None


def memory(rt: RankTrace) -> list[Memory]:
    out = []
    ddp = rt.sidecar.ddp if rt.sidecar is not None else None
    grads = sum(int(p[1]) * _SIZE.get(str(p[2]), 4) for p in (ddp or {}).get("params") or []
                if isinstance(p, list) and len(p) >= 3)
    copy = bool(ddp) and ddp.get("gradient_as_bucket_view") is False if ddp else False
    for dev, (alloc, res) in sorted(rt.memory_peak.items()):
        out.append(Memory(rt.rank, dev, alloc, max(res, alloc), rt.device_memory.get(dev), grads, copy))
    return out
