"""The bytes of CPU tensors live over time, from the profiler's ``[memory]`` events paired block by block.

torch's CPU allocator reports to the profiler per thread: it counts an allocation only while memory profiling is
on in the allocating thread, and subtracts a free only when it saw that block allocated and the freeing thread is
profiled too.  So its "Total Allocated" leaves out every block allocated before the profiler started, and it never
subtracts a block that a backend's own thread frees: gloo's copy of a reduce-scatter's input, freed by its worker
when the transfer ends, stays in the total for good (measured on FSDP2 over gloo: the total climbs 4-12 MiB per
step, so a run's "peak" depends on how long it was profiled).  On the GPU the caching allocator reports its own
device-wide counter, which needs none of this.

Here each allocation is paired with its free by address: a free of a block allocated before the profiler started
subtracts nothing; a new block at an address still live means the earlier one was freed unseen (just before); a
block never freed in the trace that was allocated during a collective's call, before its transfer began, is the
backend's staging copy and is freed when the collective ends.  Anything else never freed stays live to the end
(it is: the trace ended first).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...model.trace import Collective
from .memevents import bucket_max


def live_line(blocks: np.ndarray, colls: Sequence[Collective]) -> np.ndarray:
    """``blocks``: 3 x n (time ns, address, bytes: negative for a free); the live bytes as a timeline (2 x n,
    the largest value per bucket, ``bucket_max``)."""
    order = np.argsort(blocks[0], kind="stable")
    ts, addr, nbytes = (blocks[k][order].tolist() for k in range(3))
    delta = [0] * len(ts)
    live: dict[int, tuple[int, int]] = {}  # address -> (index of its allocation, bytes)
    for i, (a, b) in enumerate(zip(addr, nbytes, strict=True)):
        prev = live.pop(a, None)
        if prev is not None:
            delta[i] -= prev[1]  # its free (or, for a new block here, an unseen free just before)
        if b > 0:
            live[a] = (i, b)
            delta[i] += b
    extra_t, extra_d = _staging_frees([(ts[i], b) for i, b in live.values()], colls)
    t_all = np.array(ts + extra_t, np.int64)
    d_all = np.array(delta + extra_d, np.int64)
    order = np.argsort(t_all, kind="stable")
    return bucket_max(t_all[order], np.cumsum(d_all[order]))


def _staging_frees(unfreed: list[tuple[int, int]], colls: Sequence[Collective]) -> tuple[list[int], list[int]]:
    """Frees the trace does not show: a block allocated inside a collective's call before its transfer began
    is freed when the collective ends (by the backend's thread)."""
    windows = sorted((c.issue_ns, c.start_ns, c.end_ns) for c in colls
                     if c.issue_ns is not None and c.start_ns is not None and c.end_ns is not None
                     and c.issue_ns < c.start_ns <= c.end_ns)
    if not windows or not unfreed:
        return [], []
    issues = np.array([w[0] for w in windows], np.int64)
    out_t, out_d = [], []
    for t, b in unfreed:
        k = int(np.searchsorted(issues, t, side="right")) - 1  # the latest call issued at or before t
        if k >= 0 and t <= windows[k][1]:
            out_t.append(windows[k][2])
            out_d.append(-b)
    return out_t, out_d
