"""The allocator's runtime calls, each profiled step's ``[memory]`` events, and the named CPU ranges (optimizer
steps, ``empty_cache``), from the scan, as ``model.alloc`` records."""

from __future__ import annotations

import numpy as np

from ...model import AllocCalls, Mark, Step, StepAllocs
from ..comm import classify as cl
from ..steps import StepOf


def alloc_calls(raw: list[tuple[int, int, str]], attribute: StepOf) -> AllocCalls | None:
    if not raw:
        return None
    raw = sorted(raw)
    s = np.array([r[0] for r in raw], np.int64)
    return AllocCalls(start_ns=s, end_ns=np.array([r[1] for r in raw], np.int64),
                      kind=tuple(cl.ALLOC_RUNTIME[r[2]] for r in raw), step=attribute(s))


def marks(raw: list[tuple[int, int, str]]) -> tuple[Mark, ...]:
    out = []
    for start, end, name in sorted(raw):
        m = cl.mark_of(name)
        if m is not None:
            out.append(Mark(kind=m[0], detail=m[1], start_ns=start, end_ns=end))
    return tuple(out)


def step_allocs(blocks: dict[str, np.ndarray], lines: dict[str, np.ndarray],
                steps: tuple[Step, ...]) -> tuple[StepAllocs, ...]:
    """Per device and step: the blocks allocated and freed (``blocks``: 3 x n, time, address, bytes, negative for a
    free), the sizes allocated, and from the device's timeline (``lines``: 2 x n) its peak and its value at the
    step's start."""
    out = []
    for dev, b in sorted(blocks.items()):
        if not b.shape[1]:
            continue
        line = lines.get(dev)
        for st in steps:
            m = (b[0] >= st.start_ns) & (b[0] <= st.end_ns)
            nb = b[2][m]
            got = nb[nb > 0]
            sizes, counts = np.unique(got, return_counts=True)
            peak = start = 0
            if line is not None and line.shape[1]:
                w = (line[0] >= st.start_ns) & (line[0] <= st.end_ns)
                peak = int(line[1][w].max()) if w.any() else 0
                before = np.flatnonzero(line[0] <= st.start_ns)
                start = int(line[1][before[-1]]) if before.size else 0
            out.append(StepAllocs(device=dev, step=st.number, allocs=int(got.size), frees=int((nb < 0).sum()),
                                  alloc_bytes=int(got.sum()), size_counts=tuple(zip(sizes.tolist(), counts.tolist(),
                                                                                   strict=True)),
                                  peak_bytes=peak, start_bytes=start))
    return tuple(out)
