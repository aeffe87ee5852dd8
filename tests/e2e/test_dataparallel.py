"""nn.DataParallel: recognised in a trace, its transfers counted per phase, and DDP advised with an estimate.

The 4-GPU trace is built event for event (tests/dp_trace.py says how and why); the CPU side of its shape is
checked here against what the real profiler records for autograd functions of the same names."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import commprof
from conftest import ROOT

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import dp_trace


@pytest.fixture(scope="module")
def dp_report(tmp_path_factory):
    d = tmp_path_factory.mktemp("dp")
    dp_trace.write(d / "rank0.pt.trace.json")
    return d, commprof.analyze(commprof.load(d))


def test_dataparallel_phases_bytes_and_time(dp_report):
    _, rep = dp_report
    (dp,) = rep.dataparallel
    assert dp.devices == (0, 1, 2, 3) and dp.steps == 3
    ph = {p.name: p for p in dp.phases}
    assert list(ph) == ["Scatter", "Broadcast", "Gather", "ReduceAddCoalesced"]
    # the forward scatter of the batch and the backward scatter of the output gradient
    assert ph["Scatter"].calls_per_step == 2
    assert ph["Scatter"].bytes_per_step == dp_trace.BATCH * 2048 * 4 + dp_trace.BATCH * 1000 * 4
    assert ph["Scatter"].copied_bytes_per_step == 3 * (dp_trace.BATCH // 4) * (2048 + 1000) * 4
    # replicate broadcasts every parameter, every step; the reduction sums 4 replicas' gradients
    assert ph["Broadcast"].bytes_per_step == dp_trace.PARAM_BYTES
    assert ph["ReduceAddCoalesced"].bytes_per_step == 4 * dp_trace.PARAM_BYTES
    assert dp.grad_bytes == dp_trace.PARAM_BYTES
    assert ph["Broadcast"].gpu_ms == pytest.approx(2.7 + 0.003, abs=0.01)  # the NCCL kernels on 4 devices
    assert ph["ReduceAddCoalesced"].gpu_ms == pytest.approx(4.0 + 0.003, abs=0.01)
    assert ph["Gather"].copied_bytes_per_step == 3 * (dp_trace.BATCH // 4) * 1000 * 4
    # device 0 also runs the loss and the optimizer
    assert dp.device_busy_ms[0] == pytest.approx(8.0 + 0.4 + 15.5 + 3.0, abs=0.01)
    assert dp.device_busy_ms[1] == pytest.approx(8.0 + 15.5, abs=0.01)
    # DDP estimate: the step minus every DataParallel transfer, plus the exposed part of an all-reduce
    assert dp.ddp_allreduce_ms == pytest.approx(2 * ph["ReduceAddCoalesced"].gpu_ms)
    share = 25 * 1024 * 1024 / dp_trace.PARAM_BYTES
    assert dp.ddp_exposed_ms == pytest.approx(dp.ddp_allreduce_ms * share)
    assert dp.ddp_step_ms == pytest.approx(dp.step_ms - dp.overhead_ms + dp.ddp_exposed_ms)
    assert dp.ddp_step_ms < dp.step_ms
    # the NCCL kernels count as communication in the usual breakdown too, with their bytes (per device) from
    # the DataParallel call that launched them
    assert rep.overlaps[0].median("comm_ns") > 0
    by_op = {c.op: c for c in rep.collectives}
    assert by_op["broadcast"].bytes == by_op["reduce"].bytes == 4 * dp_trace.PARAM_BYTES
    assert not any("carry no size" in w for w in rep.warnings)


def test_dataparallel_in_findings_advice_and_outputs(dp_report, tmp_path):
    d, rep = dp_report
    adv = [a for a in rep.advice if a.knob == "parallelism"]
    assert len(adv) == 1 and adv[0].value == "DistributedDataParallel"
    assert adv[0].predicted_step_ms < adv[0].baseline_step_ms and "estimate" in adv[0].why
    assert any("nn.DataParallel over 4 devices" in f.text and "Device 0 computes" in f.text for f in rep.findings)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "commprof", "report", str(d), "-o", str(out), "--format", "json,html"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    (dps,) = s["dataparallel"]
    assert [p["name"] for p in dps["phases"]] == ["Scatter", "Broadcast", "Gather", "ReduceAddCoalesced"]
    assert s["advice"][0]["knob"] == "parallelism" or any(a["knob"] == "parallelism" for a in s["advice"])
    html = (out / "report.html").read_text()
    assert "nn.DataParallel (rank 0, devices 0, 1, 2, 3)" in html and "ReduceAddCoalesced" in html


def test_the_real_profiler_records_dataparallel_functions_as_the_built_trace_does(tmp_path):
    """The CPU side of the built trace, checked against torch.profiler: autograd functions with DataParallel's
    class names (their real forward needs CUDA) are recorded under those names with their tensors' shapes,
    and the reader finds them with their bytes; backward nodes are named like the built trace's."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    class Broadcast(torch.autograd.Function):
        @staticmethod
        def forward(ctx, target, *params):
            return tuple(p.clone() for p in params)

        @staticmethod
        def backward(ctx, *grads):
            return (None,) + ReduceAddCoalesced.apply(0, 1, *grads)

    class ReduceAddCoalesced(torch.autograd.Function):
        @staticmethod
        def forward(ctx, destination, num_inputs, *grads):
            return tuple(g * 1 for g in grads)

        @staticmethod
        def backward(ctx, *grads):
            return (None, None) + grads

    w = torch.randn(64, 32, requires_grad=True)
    bias = torch.randn(64, requires_grad=True)
    with (profile(activities=[ProfilerActivity.CPU], record_shapes=True) as p,
          torch.profiler.record_function("ProfilerStep#1")):
        outs = Broadcast.apply([0, 1], w, bias)
        sum(o.sum() for o in outs).backward()
    p.export_chrome_trace(str(tmp_path / "rank0.pt.trace.json"))
    events = json.loads((tmp_path / "rank0.pt.trace.json").read_text())["traceEvents"]
    names = {e["name"] for e in events if e.get("cat") == "cpu_op"}
    assert {"Broadcast", "ReduceAddCoalesced", "BroadcastBackward",
            "autograd::engine::evaluate_function: BroadcastBackward"} <= names
    bc = next(e for e in events if e["name"] == "Broadcast")
    assert bc["args"]["Input Dims"][1:] == [[64, 32], [64]] and bc["args"]["Input type"][1:] == ["float", "float"]
    run = commprof.load(tmp_path)
    calls = {c.name: c for c in run.ranks[0].dp_calls}
    assert calls["Broadcast"].bytes == 4 * (64 * 32 + 64)
    assert calls["ReduceAddCoalesced"].bytes == 4 * (64 * 32 + 64)


def test_no_dataparallel_section_for_ddp_runs():
    from conftest import real
    rep = commprof.analyze(commprof.load(real("h100-world1")))
    assert rep.dataparallel == ()
    assert not any(a.knob == "parallelism" for a in rep.advice)
