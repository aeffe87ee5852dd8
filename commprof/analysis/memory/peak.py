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

from ...model import DDPSettings, RankTrace
from ...units import param_bytes
from ..ddp.whatif import powersgd_factors

NEAR_LIMIT = 0.85


@dataclass(frozen=True, slots=True, kw_only=True)
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


def compression_buffers(ddp: DDPSettings | None) -> tuple[int, int, str]:
    """(persistent, transient upper bound, hook name) bytes of the traced comm hook's own buffers."""
    if ddp is None:
        return 0, 0, ""
    hook = ddp.hook
    grads = ddp.grad_bytes
    if "fp16_compress" in hook or "bf16_compress" in hook:
        return 0, grads // 2, hook
    if "powerSGD" in hook:
        r = ddp.hook_matrix_rank or 1
        pq = 0
        for p in ddp.params:
            f = powersgd_factors(p.shape, r) if p.shape is not None else None
            if f is not None:
                pq += param_bytes(f[1] + f[2], p.dtype)
        return grads + pq, grads, hook
    return 0, 0, hook


def memory(rt: RankTrace) -> list[Memory]:
    out = []
    ddp = rt.sidecar.ddp if rt.sidecar is not None else None
    grads = ddp.grad_bytes if ddp is not None else 0
    copy = ddp is not None and ddp.gradient_as_bucket_view is False
    persistent, transient, hook = compression_buffers(ddp)
    for dev, (alloc, res) in sorted(rt.memory_peak.items()):
        out.append(Memory(rank=rt.rank, device=dev, peak_allocated=alloc, peak_reserved=max(res, alloc),
                          total=rt.device_memory.get(dev), bucket_bytes=grads, bucket_copy=copy,
                          compression_persistent=persistent, compression_transient=transient, hook=hook))
    return out
