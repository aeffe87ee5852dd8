"""Gradient accumulation on hand-built ranks (``analysis/ddp/accumulation.py``): the micro-batches of a step from
DDP's forward calls, which of them all-reduced the gradients, and the no_sync() advice with its band."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from builders import collective, lane, parse, rank_trace, run

from commprof.analysis.ddp.accumulation import micro_batches
from commprof.analysis.ddp.nosync import KNOB, assess
from commprof.analysis.uncertainty.maths import Noise
from commprof.model import GradEvents
from commprof.model.alloc import DDP_FORWARD, Mark

MS = 1_000_000
GRADS = 4 << 20


def _rank(rank: int = 0, *, every: bool = True, micro: int = 4, steps: int = 3, comm_ms: float = 5.0,
          backend: str = "nccl"):
    """``steps`` steps of 100 ms, each of ``micro`` micro-batches 20 ms apart: a forward call at its start, compute
    for 14 ms, then (every micro-batch, or the last only) an all-reduce of the gradients for ``comm_ms``, exposed
    (nothing computes beside it); the others all-reduce a 4-byte loss, hidden."""
    marks, comp, colls, grads = [], [], [], []
    for s in range(steps):
        t0 = s * 100 * MS
        for j in range(micro):
            a = t0 + j * 20 * MS
            marks.append(Mark(kind=DDP_FORWARD, detail="", start_ns=a, end_ns=a + 4 * MS))
            comp.append((a, a + 14 * MS))
            grads.append(a + 12 * MS)  # the backward's AccumulateGrad
            last = j == micro - 1
            if every or last:
                colls.append(collective(a + 14 * MS, a + 14 * MS + int(comm_ms * MS), nbytes=GRADS, step=s))
            else:
                colls.append(collective(a + 10 * MS, a + 10 * MS + 50_000, nbytes=4, step=s))
    rt = rank_trace(rank, steps=[(s, s * 100 * MS, (s + 1) * 100 * MS) for s in range(steps)],
                    compute=lane(comp, [c[0] // (100 * MS) for c in comp]), collectives=colls, marks=tuple(marks),
                    grads=_grads(grads))
    return replace(rt, backend=backend)


def _grads(at: list[int]) -> GradEvents:
    t = np.array(at, dtype=np.int64)
    return GradEvents(start_ns=t, end_ns=t + 1000, step=t // (100 * MS), shapes=(None,) * t.size,
                      dtypes=("float",) * t.size)


def test_several_ddp_modules_in_one_forward_pass_are_one_micro_batch():
    """DLRM calls two DDP modules (its bottom and top MLPs) in one forward pass: no backward between the calls, so
    one micro-batch per step, no accumulation (a held-out 8-GPU DLRM trace read so before this rule).  Without the
    backward's AccumulateGrad events the calls cannot be told apart: no claim."""
    rt = _rank()
    two = tuple(Mark(kind=DDP_FORWARD, detail="", start_ns=m.start_ns + MS, end_ns=m.start_ns + 2 * MS)
                for m in rt.marks)  # a second module called 1 ms into each micro-batch
    assert micro_batches(replace(rt, marks=rt.marks + two)).per_step == 4
    one = replace(rt, marks=tuple(m for m in rt.marks + two if m.start_ns % (100 * MS) in (0, MS)))
    assert micro_batches(one) is None
    assert micro_batches(replace(rt, grads=None)) is None


def test_every_micro_batch_that_all_reduces_is_counted_with_its_exposed_time():
    m = micro_batches(_rank())
    assert m is not None and (m.per_step, m.synced, m.steps) == (4, 4, 3) and m.wasted
    assert abs(m.early_exposed_ms - 15.0) < 1e-6  # 3 micro-batches before the last, 5 ms each
    assert abs(m.step_ms - 100.0) < 1e-6 and abs(m.without_exposed_ms - 85.0) < 1e-6


def test_no_sync_on_all_but_the_last_is_one_synchronization_and_a_logged_loss_is_no_sync():
    m = micro_batches(_rank(every=False))
    assert m is not None and (m.per_step, m.synced) == (4, 1) and not m.wasted
    assert m.early_exposed_ms == 0.0
    acc = assess(run(_rank(0, every=False), _rank(1, every=False)), {}, {}, Noise())
    assert acc is not None and acc.advice is None and not acc.wasted
    assert acc.finding is not None and acc.finding.severity == "info"
    said = acc.finding.text
    assert "4 micro-batches per step" in said and "synchronized once per step (model.no_sync() on the others)" in said


def test_one_forward_per_step_is_no_accumulation():
    assert micro_batches(_rank(micro=1)) is None
    assert assess(run(_rank(0, micro=1), _rank(1, micro=1)), {}, {}, Noise()) is None


def test_the_advice_removes_the_early_exposed_time_scaled_to_the_step_outside_the_profiler():
    """NCCL: the prediction is the step less the early exposed communication (85 of 100 ms profiled), scaled to the
    step outside the profiler (90 ms: x 0.9 -> 76.5); its band holds it and lies below the current step."""
    acc = assess(run(_rank(0), _rank(1)), {0: (0, 1, 2), 1: (0, 1, 2)}, {0: 90.0, 1: 90.0}, Noise())
    assert acc is not None and acc.wasted and acc.advice is not None
    a = acc.advice
    assert (a.knob, a.value) == (KNOB, 1)
    assert abs(a.baseline_step_ms - 90.0) < 1e-6 and abs(a.predicted_step_ms - 76.5) < 1e-6
    lo, hi = a.predicted_range_ms
    assert lo <= a.predicted_step_ms <= hi < a.baseline_step_ms
    assert "model.no_sync()" in a.why and "4 times the communication" in a.why
    assert acc.finding is not None and acc.finding.severity == "high"  # 15% of the step


def test_over_gloo_the_prediction_runs_early_micro_batches_at_the_least_contended_speed():
    """Gloo's transfers are CPU work that slows the backward beside them: without synchronizing, each early
    micro-batch runs in the least contended one's compute (14 of its 20 ms: the 1 ms of other work goes too), 82 ms;
    the band reaches up to removing the exposed communication only (85 ms).  Over NCCL that end is the prediction."""
    nccl = assess(run(_rank(0), _rank(1)), {}, {}, Noise()).advice
    gloo = assess(run(_rank(0, backend="gloo"), _rank(1, backend="gloo")), {}, {}, Noise()).advice
    assert abs(nccl.predicted_step_ms - 85.0) < 1e-6 and "Over gloo" not in nccl.why
    assert abs(gloo.predicted_step_ms - 82.0) < 1e-6 and "Over gloo" in gloo.why
    assert gloo.predicted_range_ms[0] <= 82.0 and gloo.predicted_range_ms[1] >= 85.0
    m = micro_batches(_rank(backend="gloo"))
    assert abs(m.uncontended_ms - 82.0) < 1e-6 and abs(m.without_exposed_ms - 85.0) < 1e-6


def test_a_plain_trace_marks_ddp_forward_calls():
    doc = {"traceEvents": [
        {"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#1", "ts": 0, "dur": 1000, "pid": 1, "tid": 1},
        {"ph": "X", "cat": "user_annotation", "name": "DistributedDataParallel.forward", "ts": 10, "dur": 100,
         "pid": 1, "tid": 1},
        {"ph": "X", "cat": "user_annotation", "name": "DistributedDataParallel.forward", "ts": 500, "dur": 100,
         "pid": 1, "tid": 1},
        {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 20, "dur": 80, "pid": 1, "tid": 1}]}
    rt = parse(doc)
    fwd = [m for m in rt.marks if m.kind == DDP_FORWARD]
    assert [(m.start_ns - rt.base_time_ns, m.end_ns - m.start_ns) for m in fwd] == [(10_000, 100_000),
                                                                                   (500_000, 100_000)]


def test_the_reducer_s_work_in_early_micro_batches_is_saved_on_cpu_runs_only():
    """DDP's reducer (copying gradients into buckets and back) runs at each synchronization: 1 ms in each of the 3
    early micro-batches leaves with no_sync() on a CPU run; on a GPU run its CPU time is not the step's."""
    from commprof.model.alloc import DDP_REDUCER

    base = _rank()
    red = tuple(Mark(kind=DDP_REDUCER, detail="", start_ns=m.start_ns + 12 * MS, end_ns=m.start_ns + 13 * MS)
                for m in base.marks)
    cpu = micro_batches(replace(base, device_kind="cpu", marks=base.marks + red))
    gpu = micro_batches(replace(base, marks=base.marks + red))
    assert abs(cpu.without_exposed_ms - 82.0) < 1e-6 and abs(gpu.without_exposed_ms - 85.0) < 1e-6
    assert cpu.early_exposed_ms == gpu.early_exposed_ms


def test_fsdp2_micro_batches_reduce_scatter_and_their_all_gathers_stay():
    """FSDP2: a micro-batch is a root forward call (``FSDP::root_pre_forward``), its synchronization the
    reduce-scatters.  Each micro-batch also all-gathers for 3 ms with nothing beside it: that stays without
    synchronizing, so only the reduce-scatters' 5 ms go (85 ms), and the advice names FSDP2's switch and the memory
    the unsharded gradients take between micro-batches."""
    from commprof.model import FSDPEvent

    base = _rank()
    roots = tuple(FSDPEvent(phase="root_pre_forward", unit="", start_ns=m.start_ns, end_ns=m.start_ns + MS)
                  for m in base.marks)
    rs = [replace(c, op="reduce_scatter_tensor") for c in base.collectives]
    ag = [collective(m.start_ns + 16 * MS + 500_000, m.start_ns + 19 * MS + 500_000, op="all_gather_into_tensor",
                     nbytes=GRADS // 2, step=m.start_ns // (100 * MS)) for m in base.marks]  # 0.5 ms after the RS
    fs = replace(base, marks=(), fsdp=roots, collectives=tuple(rs + ag))
    m = micro_batches(fs)
    assert m is not None and m.kind == "fsdp" and (m.per_step, m.synced) == (4, 4)
    assert abs(m.early_exposed_ms - 3 * 2.5) < 1e-6  # each RS 14-19 ms, 16.5-19 under the all-gather
    adv = assess(run(fs, replace(fs, rank=1)), {}, {}, Noise()).advice
    assert "model.set_requires_gradient_sync(False)" in adv.why and f"{GRADS / 1e6:.1f} MB more per rank" in adv.why
    assert abs(adv.predicted_step_ms - (100.0 - 7.5)) < 1e-6
    # adding each early micro-batch's unsharded gradients to the ones before: 3 passes over 4 MiB at 1 GB/s
    paced = assess(run(fs, replace(fs, rank=1)), {}, {}, Noise(), pass_bps=1e9).advice
    assert abs(paced.predicted_step_ms - (92.5 + 3 * GRADS / 1e6)) < 1e-6


def test_a_step_the_profiler_slowed_bounds_the_gain_by_what_the_profiler_may_have_put_in_the_synchronizations():
    """The prediction scales the traced parts alike (the step outside the profiler / the traced one); the profiler's
    time may all lie in what the advice removes.  Traced 100 ms, 15 ms removed: outside the profiler 90 ms, so 10 ms
    of profiler time, and at least 5 ms go (85 ms, above the uniform scaling's band, 82.6: the sentence says so); at
    50 ms outside it, 50 ms of profiler time may hold all 15 ms: the band reaches the step as it is now and the
    advice is withheld with why, its finding no longer pointing at advice below nor rated high."""
    from commprof.analysis.ddp.advice import Advisor
    from commprof.analysis.ddp.family import _with_accumulation
    from commprof.analysis.ddp.nosync import _Bounds

    steps = {0: (0, 1, 2), 1: (0, 1, 2)}
    mild = assess(run(_rank(0), _rank(1)), steps, {0: 90.0, 1: 90.0}, Noise()).advice
    assert abs(mild.predicted_step_ms - 76.5) < 1e-6 and abs(mild.predicted_range_ms[1] - 85.0) < 1e-6
    assert "slowed the traced steps 1.1x" in mild.why and "may gain as little as 5.0 ms" in mild.why
    # the gain it names is from the job's step (the slowest rank's), not the bounding rank's own
    assert "may gain as little as 5.0 ms" in _Bounds(rank=0, traced_ms=100, now_ms=80, removed_ms=10,
                                                     high_ms=80).sentence(85.0)
    # slower outside the profiler than traced (f > 1), or the step not timed outside it: no such term
    for now, basis in (({0: 120.0, 1: 120.0}, None), ({0: 90.0, 1: 90.0}, {0: "profiled", 1: "profiled"})):
        plain = assess(run(_rank(0), _rank(1)), steps, now, Noise(), basis=basis).advice
        assert "profiler slowed" not in plain.why and plain.predicted_range_ms[1] < now[0]
    slowed = assess(run(_rank(0), _rank(1)), steps, {0: 50.0, 1: 50.0}, Noise())
    a = slowed.advice
    assert abs(a.predicted_step_ms - 42.5) < 1e-6 and abs(a.predicted_range_ms[1] - 50.0) < 1e-6
    assert "The profiler slowed the traced steps 2.0x" in a.why and "the step may gain nothing" in a.why
    none = Advisor(advice=(), findings=(), whatifs=(), baseline_step_ms=None, model_step_ms=None,
                   profiled_step_ms=None, scale={})
    told = _with_accumulation(none, slowed, Noise())
    assert not told.advice
    held = [f.text for f in told.findings if f.text.startswith("Not advised: " + KNOB)]
    assert len(held) == 1 and slowed.band_note in held[0] and "The profiler slowed" in held[0]
    first = told.findings[0]
    assert "see below" in first.text and "advice below" not in first.text and first.severity == "medium"
    assert slowed.finding.severity == "high"  # 15% of the step, were it advised


def test_accumulation_across_steps_is_found_and_within_one_step_is_not_it():
    """One DDP forward per profiler step, the gradients all-reduced in every 4th (model.no_sync() in the others):
    the DDP what-ifs replay the synchronizing step while the step outside the profiler mixes both (a user's run was
    advised "gradient_accumulation = 4" while it already accumulated over 4 steps).  Every step synchronizing, or a
    step without a DDP forward, is not it."""
    from commprof.analysis.ddp.nosync import across_finding, across_steps

    def job(synced: set[int], forwards: int = 1):
        ranks = []
        for r in (0, 1):
            marks = tuple(Mark(kind=DDP_FORWARD, detail="", start_ns=s * 100 * MS + i * 10 * MS,
                               end_ns=s * 100 * MS + i * 10 * MS + 4 * MS) for s in range(4) for i in range(forwards))
            colls = [collective(s * 100 * MS + 60 * MS, s * 100 * MS + 70 * MS, step=s) for s in sorted(synced)]
            ranks.append(rank_trace(r, steps=[(s, s * 100 * MS, (s + 1) * 100 * MS - 1) for s in range(4)],
                                    collectives=colls, marks=marks))
        return run(*ranks)

    kept = {0: (0, 1, 2, 3), 1: (0, 1, 2, 3)}
    assert across_steps(job({3}), kept) == (0, 1, 4)
    assert across_steps(job({0, 1, 2, 3}), kept) is None and across_steps(job(set()), kept) is None
    assert across_steps(job({3}, forwards=2), kept) is None  # micro-batches within a step: the other verdict's
    text = across_finding(0, 1, 4, ()).text
    assert text.startswith("Gradient accumulation across steps: rank 0 synchronized the gradients in 1 of its 4")
    assert "Not advised: the DDP replay's what-ifs" in text


def test_gradient_accumulation_advice_on_steps_that_already_accumulate_counts_their_micro_batches():
    """A traced step of 4 micro-batches synchronizing once: the replay's gradient_accumulation = 4 is 4 such steps,
    16 micro-batches, and its advice says so (it said "once per 4 micro-batches", the count of a step of one)."""
    from commprof.analysis.ddp.advice import Advice, Advisor, WhatIf
    from commprof.analysis.ddp.family import _with_accumulation

    acc = assess(run(_rank(0, every=False), _rank(1, every=False)), {}, {}, Noise())
    assert acc is not None and (acc.per_step, acc.synced) == (4, 1)
    w = WhatIf("gradient_accumulation", 4, step_ms=70.0, exposed_ms=1.5)  # 6.0 ms exposed, paid once per 4 steps
    old = "Synchronizing every 4 steps ... per optimizer step."  # the replay's words, then a calibration's sentence
    adv = Advice(knob="gradient_accumulation", value=4, baseline_step_ms=100.0, predicted_step_ms=70.0,
                 why=old + " Calibrated on the steps outside the profiler.")
    advisor = Advisor(advice=(adv,), findings=(), whatifs=(w,), baseline_step_ms=100.0, model_step_ms=None,
                      profiled_step_ms=None, scale={})
    why = _with_accumulation(advisor, acc, Noise()).advice[0].why
    assert why == ("Synchronizing once every 4 of these steps, 16 micro-batches (model.no_sync() on all but the last), "
                   "pays the 6.0 ms of exposed communication once per 16 micro-batches, where it is paid once per 4 "
                   "now. This changes the optimization: 4x the effective batch per optimizer step. Calibrated on the "
                   "steps outside the profiler.")
    # steps where some micro-batches but not all synchronize: their count said as it is
    from commprof.analysis.findings import accumulation_why

    assert "where it is paid 2 times per 4 now" in accumulation_why(4, 6.0, 4, 2)
    # a step of one micro-batch: the words as ever
    assert accumulation_why(4, 6.0).startswith("Synchronizing every 4 steps (model.no_sync() on the others) pays the "
                                                "6.0 ms of exposed communication once per 4 micro-batches.")
