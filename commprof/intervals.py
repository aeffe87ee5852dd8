"""Interval maths over integer-nanosecond half-open intervals ``[start, end)``, with numpy.

A *set* of intervals is a pair of int64 arrays.  ``union`` turns any set (unsorted, overlapping,
empty ones included) into its canonical form: sorted, disjoint, non-empty.  The binary operations
take any sets and return canonical ones.
"""

from __future__ import annotations

import numpy as np

Span = tuple[np.ndarray, np.ndarray]

_EMPTY = np.zeros(0, dtype=np.int64)


def empty() -> Span:
    return _EMPTY, _EMPTY


def as_span(starts, ends) -> Span:
    s = np.asarray(starts, dtype=np.int64).ravel()
    e = np.asarray(ends, dtype=np.int64).ravel()
    if s.shape != e.shape:
        raise ValueError("starts and ends differ in length")
    return s, e


def union(starts, ends) -> Span:
    """Sorted, disjoint, non-empty intervals covering the same points as the input."""
    s, e = as_span(starts, ends)
    keep = e > s
    s, e = s[keep], e[keep]
    if s.size == 0:
        return empty()
    order = np.argsort(s, kind="stable")
    s, e = s[order], e[order]
    run_end = np.maximum.accumulate(e)
    # a new merged interval starts where the start lies beyond every earlier end
    new = np.empty(s.size, dtype=bool)
    new[0] = True
    new[1:] = s[1:] > run_end[:-1]
    idx = np.flatnonzero(new)
    out_s = s[idx]
    last = np.append(idx[1:] - 1, s.size - 1)
    out_e = run_end[last]
    return out_s, out_e


def length(span: Span) -> int:
    """Total covered length of a set (any form)."""
    s, e = union(*span)
    return int((e - s).sum())


def _sweep(a: Span, b: Span, keep_a: bool, keep_b: bool, keep_both: bool) -> Span:
    """Boolean combination of two sets by a sweep over their boundaries."""
    a_s, a_e = union(*a)
    b_s, b_e = union(*b)
    pos = np.concatenate([a_s, a_e, b_s, b_e])
    if pos.size == 0:
        return empty()
    da = np.concatenate([np.ones(a_s.size, np.int64), -np.ones(a_e.size, np.int64),
                         np.zeros(b_s.size + b_e.size, np.int64)])
    db = np.concatenate([np.zeros(a_s.size + a_e.size, np.int64),
                         np.ones(b_s.size, np.int64), -np.ones(b_e.size, np.int64)])
    order = np.argsort(pos, kind="stable")
    pos, da, db = pos[order], da[order], db[order]
    # collapse equal positions so that a touching end/start pair does not open a zero gap
    uniq, first = np.unique(pos, return_index=True)
    ca = np.add.reduceat(da, first).cumsum()
    cb = np.add.reduceat(db, first).cumsum()
    in_a, in_b = ca > 0, cb > 0
    inside = (in_a & ~in_b & keep_a) | (~in_a & in_b & keep_b) | (in_a & in_b & keep_both)
    # segment i is [uniq[i], uniq[i+1]) with state after processing position i
    seg = inside[:-1]
    return union(uniq[:-1][seg], uniq[1:][seg])


def intersect(a: Span, b: Span) -> Span:
    return _sweep(a, b, keep_a=False, keep_b=False, keep_both=True)


def intersect_few(few: Span, many: Span) -> Span:
    """``few`` (a handful of intervals) intersected with ``many`` (a long canonical set): the sweep runs over the
    part of ``many`` that meets ``few`` alone (a whole run's set per step was steps x intervals)."""
    if few[0].size == 0 or many[0].size == 0:
        return empty()
    a = int(np.searchsorted(many[1], few[0].min(), side="right"))
    b = int(np.searchsorted(many[0], few[1].max(), side="left"))
    return intersect(few, (many[0][a:b], many[1][a:b]))


def subtract(a: Span, b: Span) -> Span:
    """Points of ``a`` that are not in ``b``."""
    return _sweep(a, b, keep_a=True, keep_b=False, keep_both=False)


def combine(a: Span, b: Span) -> Span:
    return union(np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]]))


def clip(span: Span, lo: int, hi: int) -> Span:
    """The part of a set that lies inside ``[lo, hi)``."""
    s, e = as_span(*span)
    return union(np.maximum(s, lo), np.minimum(e, hi))


def lengths_within(span: Span, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """For a canonical set (``union``'s output) and windows ``[lo[i], hi[i])``: the covered length inside each
    window, ``length(clip(span, lo[i], hi[i]))``.  By binary search: only the intervals inside the windows are
    read, so ``span`` may be a memory-mapped array larger than memory."""
    s, e = span
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    out = np.zeros(lo.shape, dtype=np.int64)
    if s.size == 0 or lo.size == 0:
        return out
    first = np.searchsorted(e, lo, side="right")  # the first interval ending after lo
    stop = np.searchsorted(s, hi, side="left")  # the intervals starting before hi end here
    for i in np.flatnonzero(stop > first).tolist():
        a, b, w0, w1 = int(first[i]), int(stop[i]), int(lo[i]), int(hi[i])
        # whole lengths, less what lies outside the window at both ends
        out[i] = max(int((e[a:b] - s[a:b]).sum()) - max(w0 - int(s[a]), 0) - max(int(e[b - 1]) - w1, 0), 0)
    return out
