"""Peak memory per rank from profile_memory=True traces, and the sharding advice near the device's limit."""

from __future__ import annotations

from builders import parse

import commprof
from commprof.model import Run


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
    rt = parse(doc)
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


def test_powersgd_buffers_in_memory_of_a_real_gloo_run(tmp_path):
    """A real 2-rank gloo DDP run with powerSGD_hook and profile_memory=True: commprof names the hook's own
    buffers (error feedback, P and Q), and the measured peak is above the same run's without a hook by at
    least what it names as kept across steps."""
    from commprof.analysis.memory.peak import compression_buffers
    from commprof.reader.sidecar import ddp_settings
    from commprof.workloads.demo import launch
    from conftest import launch_powersgd

    cfg = dict(steps=6, width=512, layers=4, batch=16, bucket_cap_mb=100, profile_memory=True)
    launch(tmp_path / "plain", nproc=2, **cfg)
    launch_powersgd(tmp_path / "psgd", nproc=2, hook="powersgd:2", **cfg)
    plain = commprof.analyze(commprof.load(tmp_path / "plain"))
    psgd = commprof.analyze(commprof.load(tmp_path / "psgd"))
    grads = 4 * (4 * (512 * 512 + 512) + 512 * 10 + 10)
    # P and Q at rank 2: four 512 x 512 weights and the 10 x 512 head ((10 + 512) * 2 * 2 < 5120: compressed)
    pq = 4 * (4 * (512 + 512) * 2 + (10 + 512) * 2)
    for m in psgd.memory:
        assert m.device == "cpu:-1" and "powerSGD_hook" in m.hook
        assert m.compression_persistent == grads + pq and m.compression_transient == grads
    assert all(m.compression_persistent == 0 == m.compression_transient for m in plain.memory)
    for a, b in zip(plain.memory, psgd.memory, strict=True):
        assert b.peak_allocated - a.peak_allocated >= 0.9 * b.compression_persistent
    assert any("comm hook" in f.text and "error feedback" in f.text for f in psgd.findings)
    # fp16 hook: transient half-size copies only
    side = ddp_settings({"hook": "fp16_compress_hook", "params": [["w", 1000, "float32", [10, 100]]]})
    assert compression_buffers(side) == (0, 2000, "fp16_compress_hook")
