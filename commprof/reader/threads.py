"""CPU records per thread, for 'which record encloses time t on this thread' queries."""

from __future__ import annotations

import bisect
from collections import defaultdict
from typing import Any

from .scan import CpuRec


class ThreadIndex:
    """CPU records of one kind per thread, sorted by start."""

    def __init__(self, recs: list[CpuRec]) -> None:
        self.by_tid: dict[Any, tuple[list[int], list[CpuRec]]] = {}
        tmp: dict[Any, list[CpuRec]] = defaultdict(list)
        for r in recs:
            tmp[r.tid].append(r)
        for tid, lst in tmp.items():
            lst.sort(key=lambda r: r.start)
            self.by_tid[tid] = ([r.start for r in lst], lst)

    def enclosing(self, tid: Any, t: int) -> CpuRec | None:
        entry = self.by_tid.get(tid)
        if entry is None:
            return None
        starts, lst = entry
        i = bisect.bisect_right(starts, t) - 1
        # records of one kind do not nest, but allow a short look back for robustness
        for j in range(i, max(i - 3, -1), -1):
            if lst[j].start <= t <= lst[j].end:
                return lst[j]
        return None

    def within(self, tid: Any, lo: int, hi: int) -> CpuRec | None:
        entry = self.by_tid.get(tid)
        if entry is None:
            return None
        starts, lst = entry
        i = bisect.bisect_left(starts, lo)
        if i < len(lst) and lst[i].start <= hi:
            return lst[i]
        return None
