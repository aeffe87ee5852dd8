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


CUT_FRACTION = 0.1  # a last step shorter than this share of the others' median was cut by the end of the recording


def profiler_steps(sc: Scan, warnings: list[str], path: Path) -> tuple[Step, ...]:
    """The trace's complete steps in time order.  Overlapping ones are dropped with a warning, and so is a last
    step cut by the end of the recording; without any, the whole trace is one step (with a warning)."""
    steps = tuple(Step(n, s, e) for n, (s, e) in sorted(sc.steps.items()) if e > s)
    out: list[Step] = []
    for s in sorted(steps, key=lambda s: s.start_ns):
        if out and s.start_ns < out[-1].end_ns:
            warnings.append(f"{path.name}: ProfilerStep#{s.number} overlaps ProfilerStep#{out[-1].number}; "
                            "ignored")
            continue
        out.append(s)
    if out and _cut_by_the_end(sc, out):
        last = out.pop()
        warnings.append(f"{path.name}: ProfilerStep#{last.number} ({last.duration_ns / 1e3:,.0f} µs) was cut by the "
                        "end of the recording (the profiler stopped during it: a loop that ended inside a schedule "
                        "cycle); left out of every per-step figure")
        if not out:
            return ()
    if not out:
        lo, hi = _extent(sc)
        if hi > lo:
            warnings.append(f"{path.name}: no ProfilerStep#N spans; the whole trace is taken as one step")
            out.append(Step(0, lo, hi))
    return tuple(out)


def _cut_by_the_end(sc: Scan, steps: list[Step]) -> bool:
    """Whether the last step was cut by the end of the recording.  torch.profiler closes the step open when it stops
    (the loop's last ``prof.step()`` opens one more); such a step holds a fraction of a step's work, or none: it is
    shorter than CUT_FRACTION of the other steps' median, or, alone, holds no operator, launch or collective."""
    last = steps[-1]
    if len(steps) >= 2:
        return last.duration_ns < CUT_FRACTION * float(np.median([s.duration_ns for s in steps[:-1]]))
    return not _has_work(sc, last.start_ns, last.end_ns)


def _has_work(sc: Scan, lo: int, hi: int) -> bool:
    """Anything but the step itself recorded in [lo, hi): CPU operators, launches, kernels, collectives."""
    if any(lo <= t < hi for starts, _ in [*sc.cpu_ops.values(), *sc.cpu_excl.values()] for t in starts):
        return True
    if any(lo <= t < hi for t, _tid in sc.launches.values()) or any(lo <= t < hi for t in sc.comp_s):
        return True
    return any(lo <= r.start < hi for r in [*sc.transfers, *(r for v in sc.calls.values() for r in v)])


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
