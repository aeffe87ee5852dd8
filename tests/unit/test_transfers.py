"""Input transfers from pageable memory and host synchronization.  The GPU trace below is built event for
event like torch.profiler's (a ``cudaMemcpyAsync`` launch and its ``Memcpy HtoD (Pageable -> Device)`` on the
GPU, kernels with their launches, a ``cudaStreamSynchronize``), since this machine has no GPU; the real
V100 trace of HTA's test set covers the pageable device-to-host copies and the syncs."""

from __future__ import annotations

import pytest
from builders import parse

import commprof
from commprof.model import Run
from conftest import real


def _gpu_trace(with_pageable: bool) -> dict:
    ev = []
    corr = 100
    for k, step in enumerate((5, 6, 7)):
        t0 = 1_000_000 + k * 20_000
        ev.append({"ph": "X", "cat": "user_annotation", "name": f"ProfilerStep#{step}", "pid": 1, "tid": 1,
                   "ts": t0, "dur": 19_000, "args": {}})
        t = t0 + 100
        if with_pageable:  # the input batch: 8 MB from pageable memory, 3 ms, nothing else on the GPU meanwhile
            corr += 1
            ev.append({"ph": "X", "cat": "cuda_runtime", "name": "cudaMemcpyAsync", "pid": 1, "tid": 1, "ts": t,
                       "dur": 3_050, "args": {"correlation": corr}})
            ev.append({"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy HtoD (Pageable -> Device)", "pid": 0,
                       "tid": 7, "ts": t + 20, "dur": 3_000, "args": {"correlation": corr, "stream": 7,
                                                                     "bytes": 8_388_608}})
            t += 3_100
        for i in range(10):  # forward/backward kernels
            corr += 1
            ev.append({"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1,
                       "ts": t + i * 10, "dur": 5, "args": {"correlation": corr}})
            ev.append({"ph": "X", "cat": "kernel", "name": "void gemm_kernel<float>", "pid": 0, "tid": 7,
                       "ts": t + 50 + i * 1_200, "dur": 1_100, "args": {"correlation": corr, "stream": 7}})
        ev.append({"ph": "X", "cat": "cuda_runtime", "name": "cudaStreamSynchronize", "pid": 1, "tid": 1,
                   "ts": t + 200, "dur": 12_000, "args": {"correlation": corr + 1}})  # loss.item()
        corr += 1
    return {"traceEvents": ev, "distributedInfo": {"backend": "nccl", "rank": 0, "world_size": 1},
            "deviceProperties": [{"name": "NVIDIA A100-SXM4-80GB"}]}


def _report(doc):
    rt = parse(doc)
    return commprof.analyze(Run("built", (rt,), 1, None, (), ()))


def test_pageable_input_copies_get_pin_memory_advice():
    rep = _report(_gpu_trace(with_pageable=True))
    (t,) = rep.transfers
    assert t.htod_pageable_count == 1 and t.htod_pageable_bytes == 8_388_608
    assert t.htod_pageable_ms == pytest.approx(3.0) and t.htod_exposed_ms == pytest.approx(3.0)
    (adv,) = [a for a in rep.advice if a.knob == "pin_memory"]
    assert adv.value is True and adv.baseline_step_ms - adv.predicted_step_ms == pytest.approx(3.0)
    assert "pin_memory=True" in adv.why and "non_blocking=True" in adv.why
    assert t.sync_count == 1 and t.sync_ms == pytest.approx(12.0)
    assert any("host synchronization" in f.text for f in rep.findings)


def test_pinned_inputs_get_no_advice():
    rep = _report(_gpu_trace(with_pageable=False))
    assert not [a for a in rep.advice if a.knob == "pin_memory"]


def test_real_v100_trace_pageable_copies_and_syncs_are_counted():
    rep = commprof.analyze(commprof.load(real("hta/tests/data/trace_diff/test")))
    (t,) = rep.transfers
    assert t.dtoh_pageable_count > 0 and t.sync_count > 0
    assert t.htod_pageable_count == 0  # its inputs come from pinned memory
    assert not [a for a in rep.advice if a.knob == "pin_memory"]
