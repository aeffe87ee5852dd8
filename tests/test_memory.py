"""Peak memory per rank from profile_memory=True traces, and the sharding advice near the device's limit."""

from __future__ import annotations

from pathlib import Path

import commprof
from commprof.model import Run
from commprof.reader.kineto import parse_document


def _gpu_trace(peak: int, total: int) -> dict:
    ev = [{"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#1", "pid": 1, "tid": 1, "ts": 0, "dur": 1000,
           "args": {}},
          {"ph": "X", "cat": "kernel", "name": "void gemm", "pid": 0, "tid": 7, "ts": 10, "dur": 500,
           "args": {"stream": 7}}]
    for k, alloc in enumerate((peak // 2, peak, peak // 3)):  # as torch.profiler writes them
        ev.append({"ph": "i", "cat": "cpu_instant_event", "s": "t", "name": "[memory]", "pid": 1, "tid": 1,
                   "ts": 100 + k, "args": {"Total Reserved": peak + 2**28, "Total Allocated": alloc, "Bytes": 1,
                                           "Device Id": 0, "Device Type": 1, "Addr": 1}})
    return {"traceEvents": ev, "distributedInfo": {"rank": 0, "world_size": 1, "backend": "nccl"},
            "deviceProperties": [{"id": 0, "name": "NVIDIA A100-SXM4-80GB", "totalGlobalMem": total}]}


def _report(doc):
    rt = parse_document(Path("rank0.json"), doc)
    return commprof.analyze(Run("built", (rt,), 1, None, (), ()))


def test_peak_memory_and_sharding_advice_near_the_limit():
    total = 80 * 2**30
    rep = _report(_gpu_trace(76 * 2**30, total))
    (m,) = rep.memory
    assert m.device == "cuda:0" and m.peak_allocated == 76 * 2**30 and m.total == total
    assert m.pct > 85
    assert any("ZeRO" in f.text and "FSDP" in f.text for f in rep.findings)


def test_no_sharding_advice_with_room_to_spare():
    rep = _report(_gpu_trace(20 * 2**30, 80 * 2**30))
    assert rep.memory[0].pct < 30
    assert not any("ZeRO" in f.text for f in rep.findings)


def test_cpu_memory_events_of_a_real_profile(tmp_path):
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p:
        x = torch.randn(1000, 1000)
        y = x @ x
        del x, y
    p.export_chrome_trace(str(tmp_path / "rank0.json"))
    rep = commprof.analyze(commprof.load(tmp_path / "rank0.json"))
    (m,) = rep.memory
    assert m.device == "cpu:-1" and m.peak_allocated >= 8_000_000 and m.total is None
