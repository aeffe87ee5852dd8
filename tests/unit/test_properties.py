"""Property-based tests: generated event streams, hostile ones included, through the loader and the
analysis.  Invariants: no crash other than a clear InputError; intervals well formed; overlap <= comm and
<= compute; per-step figures consistent with the whole window."""

from __future__ import annotations

import numpy as np
from builders import parse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commprof import intervals as iv
from commprof.analysis.analyze import analyze
from commprof.analysis.overlap import rank_overlap, step_windows
from commprof.errors import InputError
from commprof.model import Run

NAMES = ["aten::mm", "gloo:all_reduce", "c10d::allreduce_", "record_param_comms", "nccl:all_reduce",
         "ncclKernel_AllReduce_RING_LL_Sum_float(x)", "ncclDevKernel_AllGather_RING_LL(x)", "void gemm<1>",
         "Memcpy HtoD (Pageable -> Device)", "ProfilerStep#1", "ProfilerStep#2", "cudaLaunchKernel",
         "<script>x</script>", "\x1b[2J", ""]
CATS = ["cpu_op", "user_annotation", "kernel", "gpu_memcpy", "gpu_memset", "cuda_runtime", "python_function", None, 7]
numbers = st.one_of(st.integers(-10, 10**7), st.floats(allow_nan=True, allow_infinity=True), st.none(),
                    st.text(max_size=3), st.integers(2**62, 2**64))
args = st.one_of(st.none(), st.text(max_size=3), st.fixed_dictionaries({}, optional={
    "correlation": st.one_of(st.integers(0, 5), st.text(max_size=2)),
    "stream": st.integers(0, 3),
    "Input Dims": st.one_of(st.lists(st.lists(st.integers(-2, 100), max_size=3), max_size=3), st.text(max_size=2)),
    "Input type": st.lists(st.sampled_from(["float", "c10::Half", "TensorList", "", "weird"]), max_size=2),
    "In msg nelems": numbers, "Out msg nelems": numbers,
    "Collective name": st.sampled_from(["allreduce", "broadcast", "wait", "", "x"]),
    "Group size": numbers, "dtype": st.sampled_from(["Float", "Half", "", "??"]),
    "Process Group Name": st.one_of(st.text(max_size=3), st.integers(0, 3)),
}))
event = st.one_of(
    st.fixed_dictionaries({"ph": st.sampled_from(["X", "X", "X", "M", "i", "s", None]), "name": st.sampled_from(NAMES),
                           "cat": st.sampled_from(CATS), "ts": numbers, "dur": numbers, "tid": st.integers(0, 3),
                           "pid": st.integers(0, 1), "args": args}),
    st.integers(), st.text(max_size=3), st.none(), st.lists(st.integers(), max_size=2))
# realistic, well-formed events to make sure the invariants are exercised on real intervals too
good_event = st.builds(
    lambda name, cat, ts, dur, tid, corr: {"ph": "X", "name": name, "cat": cat, "ts": float(ts), "dur": float(dur),
                                           "tid": tid, "pid": 1, "args": {"correlation": corr, "stream": tid,
                                                                          "Input Dims": [[64]],
                                                                          "Input type": ["float"]}},
    st.sampled_from(NAMES), st.sampled_from(CATS[:6]), st.integers(0, 5000), st.integers(0, 800), st.integers(0, 3),
    st.integers(0, 5))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(event, good_event, good_event), max_size=60),
       st.one_of(st.none(), st.fixed_dictionaries({"rank": st.one_of(st.integers(0, 3), st.text(max_size=2)),
                                                   "world_size": st.one_of(st.integers(1, 4), st.none())})))
def test_loader_and_analysis_invariants(events, dist_info):
    doc = {"traceEvents": events}
    if dist_info is not None:
        doc["distributedInfo"] = dist_info
    try:
        rt = parse(doc, "gen.json")
    except InputError as e:
        assert "gen.json" in str(e)
        return
    for lane in (rt.compute, rt.comm, rt.memcpy):
        assert lane.start_ns.shape == lane.end_ns.shape == lane.step.shape == lane.launch_ns.shape
        assert np.all(lane.end_ns >= lane.start_ns)
    for c in rt.collectives:
        assert c.bytes >= 0 and c.group_size >= 1
        assert (c.start_ns is None) == (c.end_ns is None)
        assert c.start_ns is None or c.end_ns >= c.start_ns
    ov = rank_overlap(rt)
    for o in (*ov.steps, ov.window):
        assert 0 <= o.overlapped_ns <= min(o.comm_ns, o.compute_ns)
        assert o.exposed_ns >= 0 and 0 <= o.overlap_pct <= 100
    # per-step figures add up: the step windows tile the timeline (docs/metrics.md), so the steps' figures are
    # exactly the union of the lane's work inside the windows (whichever step launched it), each within its window
    windows = step_windows(rt)
    for lane, attr in ((rt.compute, "compute_ns"), (rt.comm, "comm_ns")):
        if windows:
            inside = iv.clip(iv.union(lane.start_ns, lane.end_ns), windows[0][1], windows[-1][2])
            assert sum(getattr(o, attr) for o in ov.steps) == iv.length(inside)
        for o in ov.steps:
            assert 0 <= getattr(o, attr) <= o.step_ns
    rep = analyze(Run("gen", (rt,), rt.world_size, None, (), ()))
    for s in rep.overlaps[0].steps:
        assert s.step_ns >= 0
