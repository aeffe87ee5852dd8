"""Rates measured on the run itself, for the what-if replays."""

from __future__ import annotations

import numpy as np

from ..model import RankTrace

MIN_SAMPLES = 3


def elementwise_bps(rt: RankTrace) -> float | None:
    """Bytes per second of one element-wise memory pass (``copy_``, ``add_``, ``mul``, ...): the median over the
    run's large element-wise CPU operators.  Only CPU traces measure it: on GPU traces a CPU operator's duration
    is its launch, not the work."""
    ew = rt.elementwise
    if rt.device_kind != "cpu" or ew is None or ew.shape[1] < MIN_SAMPLES:
        return None
    rates = [nb / ns * 1e9 for nb, ns in zip(ew[0].tolist(), ew[1].tolist(), strict=True)]
    return float(np.median(rates))
