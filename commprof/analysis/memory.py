"""Memory per rank (traces made with ``profile_memory=True``) and what communication costs in it.

Peak allocated and reserved bytes per device come from the profiler's ``[memory]`` events; the device's total
from ``deviceProperties``.  DDP's bucket buffers hold a copy of every gradient unless
``gradient_as_bucket_view=True`` (then the gradients are views into the buckets).  Compression hooks add
buffers of their own (from torch's hooks, per rank):

- ``fp16_compress_hook`` / ``bf16_compress_hook``: a half-size copy of each bucket while its all-reduce is in
  flight (transient; at most half the gradient bytes when every bucket is in flight at once);
- ``powerSGD_hook``: the error-feedback tensor of every bucket (as large as the gradients, kept across steps),
  the P and Q factors (kept with warm start), and a copy of each bucket while it is compressed (transient).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model import RankTrace
from .whatif import powersgd_factors

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
    compression_persistent: int = 0  # compression hook state kept across steps (PowerSGD's error feedback, P, Q)
    compression_transient: int = 0  # upper bound of the hook's buffers while buckets are in flight
    hook: str = ""

    @property
    def pct(self) -> float | None:
        return 100.0 * self.peak_reserved / self.total if self.total else None


def _params(ddp: dict | None) -> list[list]:
    return [p for p in (ddp or {}).get("params") or [] if isinstance(p, list) and len(p) >= 3]


def _grad_bytes(params: list[list]) -> int:
    return sum(int(p[1]) * _SIZE.get(str(p[2]), 4) for p in params)


def compression_buffers(ddp: dict | None) -> tuple[int, int, str]:
    """(persistent, transient upper bound, hook name) bytes of the traced comm hook's own buffers."""
    if not ddp:
        return 0, 0, ""
    hook = str(ddp.get("hook") or "")
    params = _params(ddp)
    grads = _grad_bytes(params)
    if "fp16_compress" in hook or "bf16_compress" in hook:
        return 0, grads // 2, hook
    if "powerSGD" in hook:
        rank = ddp.get("hook_matrix_rank")
        r = rank if isinstance(rank, int) and not isinstance(rank, bool) and rank > 0 else 1
        pq = 0
        for p in params:
            shape = p[3] if len(p) >= 4 and isinstance(p[3], list) else None
            if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
                continue
            f = powersgd_factors(shape, r)
            if f is not None:
                pq += (f[1] + f[2]) * _SIZE.get(str(p[2]), 4)
        return grads + pq, grads, hook
    return 0, 0, hook


def memory(rt: RankTrace) -> list[Memory]:
    out = []
    ddp = rt.sidecar.ddp if rt.sidecar is not None else None
    grads = _grad_bytes(_params(ddp))
    copy = bool(ddp) and ddp.get("gradient_as_bucket_view") is False if ddp else False
    persistent, transient, hook = compression_buffers(ddp)
    for dev, (alloc, res) in sorted(rt.memory_peak.items()):
        out.append(Memory(rt.rank, dev, alloc, max(res, alloc), rt.device_memory.get(dev), grads, copy,
                          persistent, transient, hook))
    return out
