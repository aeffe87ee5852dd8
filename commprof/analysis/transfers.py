"""Input transfers and host synchronization inside the step.

- Copies between the GPU and *pageable* host memory (``Memcpy HtoD (Pageable -> Device)``) go through a
  staging buffer and block the host; from pinned memory with ``non_blocking=True`` they overlap compute.
  The time at stake is the part of those copies that no compute covers.
- Host-side synchronizing calls (``cudaStreamSynchronize``, ``cudaDeviceSynchronize``, synchronous
  ``cudaMemcpy``) stall the CPU until the GPU catches up: ``.item()``, ``.cpu()``, printing a CUDA tensor.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .. import intervals as iv
from ..model import RankTrace


@dataclass(frozen=True, slots=True)
class Transfers:
    rank: int
    htod_pageable_count: float  # per step (median)
    htod_pageable_bytes: float
    htod_pageable_ms: float
    htod_exposed_ms: float  # the part of pageable HtoD copies no compute covers
    dtoh_pageable_count: float
    sync_count: float
    sync_ms: float


def transfers(rt: RankTrace, steps: Iterable[int] | None = None) -> Transfers | None:
    x = rt.transfers
    if rt.device_kind != "cuda" or x is None:
        return None
    wanted = set(steps) if steps is not None else None
    chosen = [s.number for s in rt.steps if wanted is None or s.number in wanted]
    if not chosen:
        return None
    rows = []
    for n in chosen:
        m = x.pageable.step == n
        h = m & x.pageable_htod
        d = m & ~x.pageable_htod
        span = iv.union(x.pageable.start_ns[h], x.pageable.end_ns[h])
        cm = rt.compute.step == n
        exposed = iv.length(iv.subtract(span, (rt.compute.start_ns[cm], rt.compute.end_ns[cm])))
        sm = x.host_syncs.step == n
        rows.append((int(h.sum()), int(x.pageable_bytes[h].sum()), iv.length(span), exposed, int(d.sum()),
                     int(sm.sum()), iv.length((x.host_syncs.start_ns[sm], x.host_syncs.end_ns[sm]))))
    med = np.median(np.array(rows, dtype=float), axis=0)
    return Transfers(rt.rank, float(med[0]), float(med[1]), float(med[2]) / 1e6, float(med[3]) / 1e6,
                     float(med[4]), float(med[5]), float(med[6]) / 1e6)
