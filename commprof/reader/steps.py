"""``ProfilerStep#N`` spans and the step each time belongs to."""

from __future__ import annotations

import bisect
from pathlib import Path

import numpy as np

from ..model import Step
from .scan import Scan


class StepOf:
    """The ProfilerStep number a time falls in (-1 outside every step): ``(times)`` for an array, ``.one(t)``."""

    def __init__(self, steps: tuple[Step, ...]) -> None:
        self.starts = np.array([s.start_ns for s in steps], dtype=np.int64)
        self.ends = np.array([s.end_ns for s in steps], dtype=np.int64)
        self.nums = np.array([s.number for s in steps], dtype=np.int64)
        self._lists = (self.starts.tolist(), self.ends.tolist(), self.nums.tolist())

    def __call__(self, times: np.ndarray) -> np.ndarray:
        if self.starts.size == 0:
            return np.full(times.shape, -1, dtype=np.int64)
        idx = np.searchsorted(self.starts, times, side="right") - 1
        ok = (idx >= 0) & (times < self.ends[np.clip(idx, 0, None)])
        return np.where(ok, self.nums[np.clip(idx, 0, None)], -1)

    def one(self, t: int) -> int:
        starts, ends, nums = self._lists
        i = bisect.bisect_right(starts, t) - 1
        return nums[i] if i >= 0 and t < ends[i] else -1


def profiler_steps(sc: Scan, warnings: list[str], path: Path) -> tuple[Step, ...]:
    """The trace's steps in time order; overlapping ones dropped with a warning; without any, the whole trace
    as one step (with a warning)."""
    steps = tuple(Step(n, s, e) for n, (s, e) in sorted(sc.steps.items()) if e > s)
    out: list[Step] = []
    for s in sorted(steps, key=lambda s: s.start_ns):
        if out and s.start_ns < out[-1].end_ns:
            warnings.append(f"{path.name}: ProfilerStep#{s.number} overlaps ProfilerStep#{out[-1].number}; "
                            "ignored")
            continue
        out.append(s)
    if not out:
        lo, hi = _extent(sc)
        if hi > lo:
            warnings.append(f"{path.name}: no ProfilerStep#N spans; the whole trace is taken as one step")
            out.append(Step(0, lo, hi))
    return tuple(out)


def _extent(sc: Scan) -> tuple[int, int]:
    lo, hi = 2**63 - 1, 0
    for s_list, e_list in [(sc.comp_s, sc.comp_e), (sc.mem_s, sc.mem_e)] + list(sc.cpu_ops.values()):
        if s_list:
            lo, hi = min(lo, min(s_list)), max(hi, max(e_list))
    for k in sc.comm_kernels:
        lo, hi = min(lo, k[0]), max(hi, k[1])
    for r in sc.transfers + [r for v in sc.calls.values() for r in v]:
        lo, hi = min(lo, r.start), max(hi, r.end)
    return (lo, hi) if hi > lo else (0, 0)
