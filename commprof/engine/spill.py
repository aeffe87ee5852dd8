"""Spilling a rank's interval lanes out of memory: the map step's other half (see ``commprof.analysis.perrank``).

The lanes (one entry per kernel or operator: by far the largest part of a parsed rank) and the digest's unions are
written to ``.npy`` files in a temporary folder and read back as ``SpilledLane`` / ``SpilledArray``,
memory-mapped on each read.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import numpy as np

from ..analysis.perrank import RankDigest, StepsKey, digest
from ..model import Lane, RankTrace, SpillDir, SpilledArray, SpilledLane
from ..reader import load_rank
from ..reader.comm.commrules import CommRules

SPILL_MIN_INTERVALS = 4096  # smaller lanes stay in memory (a file and a mapping cost more than they save)
_LANES = ("compute", "comm", "memcpy")
_TRANSFER_LANES = ("pageable", "host_syncs")

Mapped = tuple[RankTrace, RankDigest | None]


def map_rank(trace: Any, sidecars: Any, max_bytes: int, rules: CommRules | None = None, steps: StepsKey | None = None,
             folder: str | None = None, token: str = "", digested: bool = False) -> Mapped:
    """The map step for one rank: parse; with ``digested``, also run the per-rank analyses for ``steps`` and, given
    a ``folder``, spill the lanes there (None: keep them in memory, for a worker on another machine; the reduce
    step spills them then)."""
    rt = load_rank(trace, sidecars, max_bytes, rules)
    if not digested:
        return rt, None
    d = digest(rt, steps)
    return spill(rt, d, folder, token) if folder is not None else (rt, d)


def _spilled_lane(lane: Lane | None, folder: str, stem: str) -> SpilledLane | None:
    if lane is None or isinstance(lane, SpilledLane) or len(lane) < SPILL_MIN_INTERVALS:
        return None
    cols = np.stack([lane.start_ns, lane.end_ns, lane.step, lane.launch_ns]).astype(np.int64, copy=False)
    return SpilledLane(_save(cols, folder, stem))


def spill(rt: RankTrace, d: RankDigest | None, folder: str, token: str) -> Mapped:
    """The rank with its large lanes and its digest's unions written to ``folder`` and read back lazily.  A
    folder that cannot be written leaves the rank in memory, with a warning."""
    changes: dict[str, Any] = {}
    try:
        for name in _LANES:
            lane = _spilled_lane(getattr(rt, name), folder, f"{token}-{name}")
            if lane is not None:
                changes[name] = lane
        if rt.transfers is not None:
            moved: dict[str, Any] = {}
            for n in _TRANSFER_LANES:
                lane = _spilled_lane(getattr(rt.transfers, n), folder, f"{token}-{n}")
                if lane is not None:
                    moved[n] = lane
            if moved:
                changes["transfers"] = replace(rt.transfers, **moved)
        on = rt.op_names
        if on is not None and not isinstance(on.cols, SpilledArray) and on.cols.shape[1] >= SPILL_MIN_INTERVALS:
            changes["op_names"] = replace(on, cols=_save(on.cols, folder, f"{token}-opnames"))
        if d is not None and not isinstance(d.unions, SpilledArray) and d.unions.shape[1] >= SPILL_MIN_INTERVALS:
            d = replace(d, unions=_save(d.unions, folder, f"{token}-unions"))
    except OSError as e:
        return replace(rt, warnings=(*rt.warnings, f"could not spill its intervals to {folder} ({e}); "
                                                   "kept in memory")), d
    return (replace(rt, **changes) if changes else rt), d


def _save(arr: np.ndarray, folder: str, stem: str) -> SpilledArray:
    path = os.path.join(folder, stem + ".npy")
    np.save(path, np.ascontiguousarray(arr, dtype=np.int64))
    return SpilledArray(path, tuple(int(x) for x in arr.shape))


def spilled_arrays(rt: RankTrace, d: RankDigest | None) -> list[SpilledArray]:
    lanes = [getattr(rt, n) for n in _LANES]
    if rt.transfers is not None:
        lanes += [getattr(rt.transfers, n) for n in _TRANSFER_LANES]
    arrays = [lane.data for lane in lanes if isinstance(lane, SpilledLane)]
    if rt.op_names is not None and isinstance(rt.op_names.cols, SpilledArray):
        arrays.append(rt.op_names.cols)
    if d is not None and isinstance(d.unions, SpilledArray):
        arrays.append(d.unions)
    return arrays


def adopt(rt: RankTrace, d: RankDigest | None, owner: SpillDir) -> None:
    """Tie the rank's spilled arrays to the folder's lifetime (the folder goes when the last of them does)."""
    for a in spilled_arrays(rt, d):
        a.owner = owner


def is_spilled(rt: RankTrace, d: RankDigest | None = None) -> bool:
    return bool(spilled_arrays(rt, d))
