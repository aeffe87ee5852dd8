"""What the root cause was doing on the critical path: the operators or kernels of its own work there, by time.

The rank's own-work segments of every analyzed step's path (``critpath``), on its own clock, are the windows.  GPU
traces: each compute kernel's time inside them, by kernel name.  CPU traces: each instant inside them belongs to the
innermost operator running on its thread (``aten::mm`` inside ``aten::linear``: its self time), by operator name.
``ms`` is per analyzed step; ``share_pct`` of the named time in the windows (threads or streams running at once
count each).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ... import intervals as iv
from ...model import RankTrace
from .critpath import OWN, StepPath

TOP = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class TopOp:
    name: str
    ms: float  # per analyzed step
    share_pct: float  # of the rank's named work in its own-work windows on the path


def _covered(win: iv.Span, x: np.ndarray) -> np.ndarray:
    """Length of the canonical ``win`` before each time of ``x``."""
    s, e = win
    cum = np.concatenate([[0], np.cumsum(e - s)])
    k = np.searchsorted(s, x, side="right") - 1
    kk = np.maximum(k, 0)
    part = np.clip(np.minimum(x, e[kk]) - s[kk], 0, None)
    return np.where(k >= 0, cum[kk] + part, 0)


def _self_spans(cols: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CPU operators (``OpNames`` columns: id, start, end, thread) overlapping ``[lo, hi)``, as the spans where each
    is the innermost on its thread."""
    ids, start, end, thread = cols[0], cols[1], cols[2], cols[3]
    m = np.flatnonzero((end > lo) & (start < hi))
    out_s: list[int] = []
    out_e: list[int] = []
    out_i: list[int] = []

    def emit(a: int, b: int, i: int) -> None:
        if b > a:
            out_s.append(a)
            out_e.append(b)
            out_i.append(i)

    for t in np.unique(thread[m]).tolist():
        sel = m[thread[m] == t]
        sel = sel[np.lexsort((-end[sel], start[sel]))]  # by start, outer (longer) first
        stack: list[tuple[int, int]] = []  # (end, name id), innermost last
        cur = 0
        for a, b, i in zip(start[sel].tolist(), end[sel].tolist(), ids[sel].tolist(), strict=True):
            while stack and stack[-1][0] <= a:
                te, ti = stack.pop()
                emit(cur, te, ti)
                cur = max(cur, te)
            if stack:
                emit(cur, a, stack[-1][1])
            cur = max(cur, a)
            stack.append((min(b, stack[-1][0]) if stack else b, i))
        while stack:
            te, ti = stack.pop()
            emit(cur, te, ti)
            cur = max(cur, te)
    return (np.array(out_s, dtype=np.int64), np.array(out_e, dtype=np.int64), np.array(out_i, dtype=np.int64))


def top_ops(rt: RankTrace, paths: Sequence[StepPath], shift_ns: int, k: int = TOP) -> tuple[TopOp, ...]:
    """The ``k`` names the rank's own work on the paths spent most time in; () where the trace names none.
    ``shift_ns``: added to the rank's trace clock gives the paths' (aligned) clock."""
    on = rt.op_names
    segs = [(s.start_ns - shift_ns, s.end_ns - shift_ns) for p in paths for s in p.segments
            if s.kind == OWN and s.rank == rt.rank and s.end_ns > s.start_ns]
    if on is None or not segs or not on.names:
        return ()
    win = iv.union(np.array([a for a, _ in segs], dtype=np.int64), np.array([b for _, b in segs], dtype=np.int64))
    cols = on.columns()
    if not on.per_operator:  # GPU: one id per compute kernel
        s, e, ids = np.asarray(rt.compute.start_ns), np.asarray(rt.compute.end_ns), np.asarray(cols[0])
        if s.shape != ids.shape:
            return ()
    else:
        s, e, ids = _self_spans(np.asarray(cols), int(win[0][0]), int(win[1][-1]))
    if s.size == 0:
        return ()
    inside = _covered(win, e) - _covered(win, s)
    tot = np.bincount(ids, weights=inside.astype(np.float64), minlength=len(on.names))
    by: dict[str, float] = {}
    for i in np.flatnonzero(tot > 0).tolist():
        key = short_name(on.names[i])
        by[key] = by.get(key, 0.0) + float(tot[i])
    total = sum(by.values())
    if total <= 0:
        return ()
    n = max(len(paths), 1)
    best = sorted(by, key=lambda x: (-by[x], x))[:k]
    return tuple(TopOp(name=x, ms=by[x] / n / 1e6, share_pct=100 * by[x] / total) for x in best)


def short_name(name: str) -> str:
    """A kernel's or operator's name without its signature: ``void at::native::foo<float, 4>(int, ...)`` ->
    ``at::native::foo``; a generic kernel template (``cutlass::Kernel2<cutlass_80_tensorop_...>``) by its argument."""
    n = name.removeprefix("void ").replace("(anonymous namespace)::", "").strip()
    cut = [i for i in (n.find("<"), n.find("(")) if i > 0]
    base = n[:min(cut)] if cut else n
    if base.rsplit("::", 1)[-1].lower() in ("kernel", "kernel2") and n[len(base):].startswith("<"):
        arg = n[len(base) + 1:]
        ends = [i for i in (arg.find(","), arg.find(">"), arg.find("(")) if i > 0]
        base = arg[:min(ends)] if ends else arg
    return base[:100]
