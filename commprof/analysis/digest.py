"""The map step's per-rank results, and spilling a rank's intervals out of memory.

A large run is analyzed as a map step (one task per rank: parse, then every analysis that needs only that rank)
and a reduce step (matching collectives across ranks, clocks, stragglers, bandwidth, the advisor).  The map
step hands the reduce step a ``RankTrace`` whose ``digest`` holds its per-rank results — overlap, DDP bucket
rows, input transfers, pipeline busy time — and whose interval lanes (by far its largest part: one entry per
kernel or operator) are spilled to ``.npy`` files and memory-mapped only where something reads them: the
straggler split reads each late rank's intervals inside its late windows, the timeline plot one step of at most
16 ranks, ``analyze(run, steps=...)`` with other steps recomputes the per-rank results from them.  So the
reduce step holds what crosses ranks (steps, collectives, sidecars) and the per-step results, not the events.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..model import RankTrace, SpillDir, SpilledArray, SpilledLane
from . import intervals as iv
from .buckets import BucketStep, bucket_steps
from .overlap import RankOverlap, rank_overlap
from .transfers import Transfers, transfers

SPILL_MIN_INTERVALS = 4096  # smaller lanes stay in memory (a file and a mapping cost more than they save)
_LANES = ("compute", "comm", "memcpy", "pageable", "host_syncs")


StepsKey = tuple[int, ...] | range | None


def steps_key(steps: Iterable[int] | None) -> StepsKey:
    """A compact, canonical form of a step selection (the analyses use only its set of numbers): consecutive
    numbers become a ``range``, so ``--steps 3:`` (a million numbers) travels to each worker in a few bytes."""
    if steps is None:
        return None
    if isinstance(steps, range) and steps.step == 1:
        return steps
    nums = sorted(set(steps))
    if nums and nums[-1] - nums[0] == len(nums) - 1:
        return range(nums[0], nums[-1] + 1)
    return tuple(nums)


@dataclass(frozen=True, slots=True)
class RankDigest:
    steps: StepsKey  # ``steps_key`` of the steps these were computed for (None: all)
    overlap: RankOverlap
    bucket_rows: tuple[BucketStep, ...]
    transfers: Transfers | None
    compute_busy_ns: dict[int, int]  # step -> length of the compute union (steps with recorded module calls)
    # for the straggler split: the union of compute, then the communication outside it (both canonical), as
    # one 2 x (n_compute + m) array of starts and ends
    unions: np.ndarray | SpilledArray
    n_compute: int

    def spans(self) -> tuple[iv.Span, iv.Span]:
        u = self.unions.get() if isinstance(self.unions, SpilledArray) else self.unions
        k = self.n_compute
        return (u[0, :k], u[1, :k]), (u[0, k:], u[1, k:])


def digest(rt: RankTrace, steps: Iterable[int] | None = None) -> RankDigest:
    key = steps_key(steps)
    wanted = tuple(key) if key is not None else None
    recorded = {c.step for c in rt.sidecar.module_calls} if rt.sidecar is not None else set()
    busy = {s.number: compute_busy(rt, s.number) for s in rt.steps if s.number in recorded}
    comp, comm = late_split_spans(rt)
    unions = np.stack([np.concatenate([comp[0], comm[0]]), np.concatenate([comp[1], comm[1]])])
    return RankDigest(key, rank_overlap(rt, wanted), tuple(bucket_steps(rt, wanted)), transfers(rt, wanted),
                      busy, unions, int(comp[0].size))


def compute_busy(rt: RankTrace, step: int) -> int:
    """ns of compute in one step (the union of the compute intervals attributed to it)."""
    d = rt.digest
    if d is not None and step in d.compute_busy_ns:
        return int(d.compute_busy_ns[step])
    lane = rt.compute
    m = lane.step == step
    return iv.length((lane.start_ns[m], lane.end_ns[m]))


def late_split_spans(rt: RankTrace) -> tuple[iv.Span, iv.Span]:
    """The rank's compute union and the communication outside it, over the whole trace."""
    if rt.digest is not None:
        return rt.digest.spans()
    comp = iv.union(rt.compute.start_ns, rt.compute.end_ns)
    return comp, iv.subtract(iv.union(rt.comm.start_ns, rt.comm.end_ns), comp)


def for_steps(rt: RankTrace, key: StepsKey) -> RankDigest | None:
    """The rank's digest when it was computed for these steps (``steps_key`` of them)."""
    d = rt.digest
    return d if d is not None and d.steps == key else None


def map_rank(trace: Any, sidecars: Any, max_bytes: int, steps: StepsKey, folder: str | None,
             token: str) -> RankTrace:
    """The map step for one rank: parse, digest, spill its lanes to ``folder`` (None: keep them in memory, for
    a worker on another machine; the reduce step spills them then)."""
    from ..reader import load_rank

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


def adopt(rt: RankTrace, owner: SpillDir) -> None:
    """Tie the rank's spilled arrays to the folder's lifetime (the folder goes when the last of them does)."""
    arrays = [getattr(rt, n).data for n in _LANES if isinstance(getattr(rt, n), SpilledLane)]
    if rt.digest is not None and isinstance(rt.digest.unions, SpilledArray):
        arrays.append(rt.digest.unions)
    for a in arrays:
        a.owner = owner


def is_spilled(rt: RankTrace) -> bool:
    return any(isinstance(getattr(rt, n), SpilledLane) for n in _LANES) or (
        rt.digest is not None and isinstance(rt.digest.unions, SpilledArray))


__all__ = ["RankDigest", "steps_key", "digest", "map_rank", "spill", "adopt", "for_steps", "compute_busy",
           "late_split_spans"]
