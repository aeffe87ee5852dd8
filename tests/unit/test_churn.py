"""Allocator churn.  No GPU here: the GPU traces below are built event for event like torch.profiler's (Kineto's
``cuda_runtime`` events with ``cbid`` and ``correlation`` as in HTA's V100 trace, ``[memory]`` instants with Device
Type 1, kernels with their launches, AccumulateGrad operators in the backward pass)."""

from __future__ import annotations

import pytest
from builders import parse

import commprof
from commprof.model import Run

CBID = {"cudaMalloc": 20, "cudaFree": 22, "cudaHostAlloc": 27, "cudaFreeHost": 26, "cudaDeviceSynchronize": 165,
        "cudaLaunchKernel": 211}


def _gpu_trace(per_step, steps=(5, 6, 7), empty_cache_event=False) -> dict:
    """Each step: 10 forward kernels, a backward of 4 AccumulateGrads, then ``per_step(k)`` -> [(name, at_us,
    dur_us)] allocator calls (at_us from the step start), and [memory] events of three blocks per step."""
    ev: list[dict] = []
    corr = 100
    for k, step in enumerate(steps):
        t0 = 1_000_000 + k * 20_000
        ev.append({"ph": "X", "cat": "user_annotation", "name": f"ProfilerStep#{step}", "pid": 1, "tid": 1,
                   "ts": t0, "dur": 19_000, "args": {}})
        for i in range(10):
            corr += 1
            ev.append({"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1,
                       "ts": t0 + 100 + i * 10, "dur": 5,
                       "args": {"External id": corr, "cbid": 211, "correlation": corr}})
            ev.append({"ph": "X", "cat": "kernel", "name": "void gemm_kernel<float>", "pid": 0, "tid": 7,
                       "ts": t0 + 150 + i * 1_200, "dur": 1_100, "args": {"correlation": corr, "stream": 7}})
        for g in range(4):  # the backward pass: t0 + 8000 .. t0 + 12000
            ev.append({"ph": "X", "cat": "cpu_op", "name": "torch::autograd::AccumulateGrad", "pid": 1, "tid": 2,
                       "ts": t0 + 8_000 + g * 1_000, "dur": 50, "args": {}})
        for name, at, dur in per_step(k):
            corr += 1
            ev.append({"ph": "X", "cat": "cuda_runtime", "name": name, "pid": 1, "tid": 1, "ts": t0 + at, "dur": dur,
                       "args": {"External id": corr, "cbid": CBID[name], "correlation": corr}})
        if empty_cache_event:
            ev.append({"ph": "X", "cat": "python_function", "name": "torch/cuda/memory.py(222): empty_cache",
                       "pid": 1, "tid": 1, "ts": t0 + 9_000, "dur": 900, "args": {}})
        total = 1 << 30
        for j, (nb, addr) in enumerate(((4 << 20, 0x7F00), (1 << 20, 0x8F00), (4 << 20, 0x9F00))):
            total += nb
            ev.append({"ph": "i", "cat": "cpu_instant_event", "s": "t", "name": "[memory]", "pid": 1, "tid": 1,
                       "ts": t0 + 200 + j, "args": {"Device Type": 1, "Device Id": 0, "Addr": addr + k,
                                                    "Bytes": nb, "Total Allocated": total,
                                                    "Total Reserved": 2 << 30}})
    return {"traceEvents": ev, "distributedInfo": {"backend": "nccl", "rank": 0, "world_size": 1},
            "deviceProperties": [{"id": 0, "name": "NVIDIA H100", "totalGlobalMem": 80 << 30}]}


def _report(doc):
    return commprof.analyze(Run("built", (parse(doc),), 1, None, (), ()))


def test_empty_cache_every_step_is_found_inside_the_backward_pass_with_its_cost_and_remedy():
    # empty_cache in the backward pass: a device sync, then the cached segments freed; refilled by cudaMalloc
    doc = _gpu_trace(lambda k: [("cudaDeviceSynchronize", 9_000, 300), ("cudaFree", 9_400, 200),
                                ("cudaFree", 9_650, 200), ("cudaMalloc", 13_000, 100)], empty_cache_event=True)
    rep = _report(doc)
    (c,) = rep.churn
    assert c.patterns == ("empty_cache",) and c.device == "cuda:0"
    assert all(s.calls == {"device_sync": 1, "free": 2, "malloc": 1} for s in c.steps)
    assert c.median("calls_ms") == pytest.approx(0.8) and c.median("in_backward_ms") == pytest.approx(0.7)
    assert all(s.in_backward == 3 and s.empty_cache == 1 for s in c.steps)
    (adv,) = [a for a in rep.advice if a.knob == "empty_cache"]
    assert adv.baseline_step_ms - adv.predicted_step_ms == pytest.approx(0.8)
    assert "torch.cuda.empty_cache() is called in every step" in adv.why
    assert any("inside the backward pass" in f.text for f in rep.findings)


def test_malloc_every_step_advises_expandable_segments_and_warmup_does_not():
    rep = _report(_gpu_trace(lambda k: [("cudaMalloc", 3_000, 400)]))
    (adv,) = [a for a in rep.advice if a.knob == "PYTORCH_CUDA_ALLOC_CONF"]
    assert adv.value == "expandable_segments:True"
    assert adv.baseline_step_ms - adv.predicted_step_ms == pytest.approx(0.4)
    warm = _report(_gpu_trace(lambda k: [("cudaMalloc", 3_000, 400)] if k == 0 else []))
    (c,) = warm.churn
    assert c.patterns == () and not [a for a in warm.advice if a.knob == "PYTORCH_CUDA_ALLOC_CONF"]
    assert any("warming up" in f.text for f in warm.findings)


def test_free_and_malloc_every_step_without_the_call_recorded_names_both_causes():
    rep = _report(_gpu_trace(lambda k: [("cudaFree", 2_000, 300), ("cudaMalloc", 2_400, 300)]))
    (c,) = rep.churn
    assert c.patterns == ("refill",) and all(s.in_backward == 0 for s in c.steps)  # outside the backward pass
    (adv,) = [a for a in rep.advice if a.knob == "empty_cache"]
    assert "Look for torch.cuda.empty_cache()" in adv.why


def test_pinned_buffers_reallocated_every_step():
    rep = _report(_gpu_trace(lambda k: [("cudaHostAlloc", 500, 300), ("cudaFreeHost", 14_000, 200)]))
    (c,) = rep.churn
    assert c.patterns == ("pinned",)
    (adv,) = [a for a in rep.advice if a.knob == "pinned_buffers"]
    assert adv.value == "reuse" and adv.baseline_step_ms - adv.predicted_step_ms == pytest.approx(0.5)


def test_cheap_calls_are_reported_without_advice():
    rep = _report(_gpu_trace(lambda k: [("cudaMalloc", 3_000, 20)]))  # 0.02 ms of a 19 ms step
    assert rep.churn[0].patterns == ("growth",)
    assert not [a for a in rep.advice if a.knob == "PYTORCH_CUDA_ALLOC_CONF"]


def test_memory_events_per_step_and_the_bytes_reuse_would_spare():
    rep = _report(_gpu_trace(lambda k: []))
    (c,) = rep.churn
    assert [s.allocs for s in c.steps] == [3, 3, 3] and c.steps[0].alloc_bytes == 9 << 20
    assert c.recurring_allocs == 3 and c.recurring_bytes == 9 << 20
    assert not any("reused would spare" in f.text for f in rep.findings)  # CUDA's cache reuses blocks itself
    from commprof.render.summary import summary
    s = summary(rep)["churn"][0]
    assert s["recurring_bytes_per_step"] == 9 << 20 and s["steps"][0]["allocs"] == 3


def test_cpu_memory_events_name_the_bytes_reuse_would_spare():
    doc = _gpu_trace(lambda k: [])
    ev = [e for e in doc["traceEvents"] if e["cat"] not in ("kernel", "cuda_runtime")]
    for e in ev:
        if e["name"] == "[memory]":
            e["args"]["Device Type"], e["args"]["Device Id"] = 0, -1
    rep = _report({"traceEvents": ev, "distributedInfo": doc["distributedInfo"]})
    (c,) = rep.churn
    assert c.device == "cpu:-1" and c.recurring_bytes == 9 << 20
    assert any("reused would spare up to 9.0 MiB" in f.text for f in rep.findings)


def test_cpu_blocks_recurring_only_where_the_size_recurs_in_every_step():
    from commprof.analysis.memory.churn import _recurring

    steps = [((1024, 2), (4096, 1)), ((1024, 3), (8192, 1)), ((1024, 2), (4096, 5))]
    assert _recurring(steps) == (2, 2048)
    assert _recurring(steps[:1]) == (0, 0)  # one step: nothing recurs
