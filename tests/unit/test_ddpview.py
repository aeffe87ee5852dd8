"""DDP's bucket cap recovered from the bucket sizes a plain trace shows (``analysis.ddpview.infer_cap``)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from commprof.analysis.ddp.view import infer_cap
from commprof.analysis.ddp.whatif import rebucket
from commprof.units import MiB


def test_the_default_cap_is_preferred_where_it_gives_the_layout():
    sizes = [4 * MiB] * 8 + [40_000]
    counts = [len(g) for g in rebucket(np.array(sizes, dtype=float), 25 * MiB, 25 * MiB)]
    cap, first, note = infer_cap(counts, sizes)
    assert cap == 25 * MiB and first is None and "DDP's default" in note


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1_000, 6 * MiB), min_size=2, max_size=30),
       st.sampled_from([0.5, 1, 2, 4, 8, 16, 25, 32]))
def test_the_inferred_cap_reproduces_the_layout(sizes, cap_mb):
    """Whatever cap made the layout, the inferred one makes the same layout with DDP's rule."""
    arr = np.array(sizes, dtype=float)
    groups = rebucket(arr, int(cap_mb * MiB), int(cap_mb * MiB))
    cap, first, _note = infer_cap([len(g) for g in groups], sizes)
    assert rebucket(arr, first or cap, cap) == groups
