"""Spilling a rank's interval lanes out of memory: the map step's other half (see ``commprof.analysis.digest``).

The lanes (one entry per kernel or operator: by far the largest part of a parsed rank) and the digest's unions are
written to ``.npy`` files in a temporary folder and read back as ``SpilledLane`` / ``SpilledArray``,
memory-mapped on each read.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import numpy as np

from ..analysis.digest import StepsKey, digest
from ..model import RankTrace, SpillDir, SpilledArray, SpilledLane

SPILL_MIN_INTERVALS = 4096  # smaller lanes stay in memory (a file and a mapping cost more than they save)
_LANES = ("compute", "comm", "memcpy", "pageable", "host_syncs")


def map_rank(trace: Any, sidecars: Any, max_bytes: int, steps: StepsKey, folder: str | None,
             token: str) -> RankTrace:
    """The map step for one rank: parse, digest, spill its lanes to ``folder`` (None: keep them in memory, for
    a worker on another machine; the reduce step spills them then)."""
    from . import load_rank

    rt = load_rank(trace, sidecars, max_bytes)
    rt = replace(rt, digest=digest(rt, steps))
    return spill(rt, folder, token) if folder is not None else rt


def spill(rt: RankTrace, folder: str, token: str) -> RankTrace:
    """The rank with its large lanes and its digest's unions written to ``folder`` and read back lazily.  A
    folder that cannot be written leaves the rank in memory, with a warning."""
    changes: dict[str, Any] = {}
    try:
        for name in _LANES:
            lane = getattr(rt, name)
            if lane is None or isinstance(lane, SpilledLane) or len(lane) < SPILL_MIN_INTERVALS:
                continue
            cols = np.stack([lane.start_ns, lane.end_ns, lane.step, lane.launch_ns]).astype(np.int64, copy=False)
            changes[name] = SpilledLane(_save(cols, folder, f"{token}-{name}"))
        d = rt.digest
        if d is not None and not isinstance(d.unions, SpilledArray) and d.unions.shape[1] >= SPILL_MIN_INTERVALS:
            changes["digest"] = replace(d, unions=_save(d.unions, folder, f"{token}-unions"))
    except OSError as e:
        return replace(rt, warnings=(*rt.warnings, f"could not spill its intervals to {folder} ({e}); "
                                                   "kept in memory"))
    return replace(rt, **changes) if changes else rt


def _save(arr: np.ndarray, folder: str, stem: str) -> SpilledArray:
    path = os.path.join(folder, stem + ".npy")
    np.save(path, np.ascontiguousarray(arr, dtype=np.int64))
    return SpilledArray(path, tuple(int(x) for x in arr.shape))


def _spilled(rt: RankTrace) -> list[SpilledArray]:
    arrays = [lane.data for lane in (getattr(rt, n) for n in _LANES) if isinstance(lane, SpilledLane)]
    if rt.digest is not None and isinstance(rt.digest.unions, SpilledArray):
        arrays.append(rt.digest.unions)
    return arrays


def adopt(rt: RankTrace, owner: SpillDir) -> None:
    """Tie the rank's spilled arrays to the folder's lifetime (the folder goes when the last of them does)."""
    for a in _spilled(rt):
        a.owner = owner


def is_spilled(rt: RankTrace) -> bool:
    return bool(_spilled(rt))
