from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from commprof import intervals as iv


def pts(span):
    s, e = span
    out = set()
    for a, b in zip(s.tolist(), e.tolist(), strict=True):
        out |= set(range(a, b))
    return out


def test_union_merges_overlapping_touching_and_drops_empty():
    s, e = iv.union([5, 0, 2, 10, 20, 7], [8, 3, 4, 12, 20, 9])
    assert s.tolist() == [0, 5, 10]
    assert e.tolist() == [4, 9, 12]


def test_length_intersect_subtract_by_hand():
    a = ([0, 10], [5, 20])
    b = ([3, 12], [11, 15])
    assert iv.length(a) == 15
    inter = iv.intersect(a, b)
    assert list(zip(inter[0].tolist(), inter[1].tolist(), strict=True)) == [(3, 5), (10, 11), (12, 15)]
    diff = iv.subtract(a, b)
    assert list(zip(diff[0].tolist(), diff[1].tolist(), strict=True)) == [(0, 3), (11, 12), (15, 20)]


def test_empty_inputs():
    e = iv.empty()
    assert iv.length(e) == 0
    assert iv.length(iv.intersect(e, ([1], [2]))) == 0
    assert iv.subtract(([1], [4]), e)[0].tolist() == [1]


def test_clip():
    s, e = iv.clip(([0, 10], [5, 20]), 3, 12)
    assert s.tolist() == [3, 10] and e.tolist() == [5, 12]


intervals = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 15)), max_size=12).map(
    lambda xs: (np.array([a for a, _ in xs], dtype=np.int64), np.array([a + d for a, d in xs], dtype=np.int64)))


@settings(max_examples=300, deadline=None)
@given(intervals, intervals)
def test_set_algebra_matches_brute_force(a, b):
    pa, pb = pts(a), pts(b)
    u = iv.union(*a)
    assert pts(u) == pa
    assert np.all(u[1] > u[0]) and np.all(u[0][1:] > u[1][:-1])  # canonical: disjoint, sorted, non-empty
    assert pts(iv.intersect(a, b)) == pa & pb
    assert pts(iv.subtract(a, b)) == pa - pb
    assert iv.length(iv.combine(a, b)) == len(pa | pb)


windows = st.lists(st.tuples(st.integers(-5, 80), st.integers(-5, 30)), max_size=8)


@settings(max_examples=300, deadline=None)
@given(intervals, windows)
def test_lengths_within_equals_clip_then_length(a, ws):
    """The straggler split's window query on a (possibly memory-mapped) canonical set, against the definition;
    windows may be empty or inverted (0)."""
    u = iv.union(*a)
    lo = np.array([w for w, _ in ws], dtype=np.int64)
    hi = np.array([w + d for w, d in ws], dtype=np.int64)
    got = iv.lengths_within(u, lo, hi)
    assert got.tolist() == [iv.length(iv.clip(u, w0, w1)) for w0, w1 in zip(lo.tolist(), hi.tolist(), strict=True)]


@settings(max_examples=300, deadline=None)
@given(intervals, intervals)
def test_intersect_few_equals_intersect(a, b):
    """The waits' query (a step's few wait intervals against a rank's idle set over the whole run) sweeps only the
    part of the long set that meets the few, with the same answer as the full intersection."""
    few, many = iv.union(*a), iv.union(*b)
    got, want = iv.intersect_few(few, many), iv.intersect(few, many)
    assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()
