"""Input transfers and host synchronization in the report: ``transfers`` in summary.json."""

from __future__ import annotations

from typing import Any

from ...analysis.analyze import Report


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def as_json(rep: Report) -> dict[str, Any]:
    return {"transfers": [{"rank": t.rank, "htod_pageable_per_step": _r(t.htod_pageable_count, 1),
                           "htod_pageable_bytes_per_step": int(t.htod_pageable_bytes),
                           "htod_pageable_ms": _r(t.htod_pageable_ms), "htod_exposed_ms": _r(t.htod_exposed_ms),
                           "dtoh_pageable_per_step": _r(t.dtoh_pageable_count, 1),
                           "host_syncs_per_step": _r(t.sync_count, 1), "host_sync_ms": _r(t.sync_ms)}
                          for t in rep.transfers]}
