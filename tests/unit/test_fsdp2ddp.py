"""The FSDP2 -> DDP what-if on hand-built inputs: the all-reduce from the run's own fits, DDP's step replayed from
the FSDP2 step's compute, the step memory DDP would hold read off an FSDP2 step's timeline, and when it advises."""

from __future__ import annotations

import numpy as np
import pytest

from commprof.analysis.bandwidth import Bandwidth, Fit
from commprof.analysis.memory.ddp2fsdp import ParallelAnalysis, ParallelWhatIf
from commprof.analysis.memory.ddpmem import UnitBytes, step_memory
from commprof.analysis.memory.fsdp2ddp import (
    DDPInputs,
    _full_bytes,
    _states,
    allreduce_fit,
    ddp_step_ns,
    ready_order,
    reverse_findings,
)
from commprof.analysis.memory.memstate import StateMemory
from commprof.analysis.replay.core import LinkFit
from commprof.model import FSDPEvent, Mark

MiB = 2**20
MS = 1_000_000


def _fit(op: str, alpha_us: float, beta_gbps: float) -> Fit:
    return Fit(op=op, process_group="0", group_size=2, points=12, alpha_us=alpha_us, beta_gbps=beta_gbps,
               busbw_gbps=None, peak_gbps=None, peak_source=None, pct_of_peak=None)


def test_an_all_reduce_is_a_reduce_scatter_then_an_all_gather_of_the_same_bytes():
    bw = Bandwidth(bins=(), fits=(_fit("all_gather_into_tensor", 100, 1.0), _fit("reduce_scatter_tensor", 200, 2.0)),
                   samples={})
    ar = allreduce_fit(bw, 2)
    assert ar is not None
    assert ar.time_ns(8 * MiB) == pytest.approx((100e-6 + 8 * MiB / 1e9 + 200e-6 + 8 * MiB / 2e9) * 1e9)
    only_ag = allreduce_fit(Bandwidth(bins=(), fits=(_fit("all_gather_into_tensor", 100, 1.0),), samples={}), 2)
    assert only_ag is not None and only_ag.time_ns(MiB) == pytest.approx(2 * (100e-6 + MiB / 1e9) * 1e9)
    assert allreduce_fit(Bandwidth(bins=(), fits=(), samples={}), 2) is None
    # gloo runs reduce_scatter_tensor as an all-reduce of the whole input: its fit is the all-reduce's
    gloo = allreduce_fit(bw, 2, gloo=True)
    assert gloo is not None and gloo.time_ns(8 * MiB) == pytest.approx((200e-6 + 8 * MiB / 2e9) * 1e9)


def _inputs(pass_bps: float = 1e18) -> DDPInputs:
    # the root (no parameters of its own) and three 4 MiB units: 10 ms forward and 20 ms backward each
    units = (("", 0.0, 0.0, 0),) + tuple((str(i), 10.0 * MS, 20.0 * MS, 4 * MiB) for i in range(3))
    return DDPInputs(units=units, head_ns=1.0 * MS, fwd_tail_ns=2.0 * MS, tail_ns=5.0 * MS,
                     link=LinkFit(alpha_s=0.0, beta_bps=1e9, alpha_assumed=False), pass_bps=pass_bps, world=2)


def test_gradients_are_ready_unit_by_unit_backwards_and_ddp_buckets_them():
    names, sizes, ready = ready_order(_inputs(), view=True)
    assert names == ["2", "1", "0"] and sizes == [4 * MiB] * 3
    assert ready == pytest.approx([53 * MS, 73 * MS, 93 * MS])  # 1 + 30 + 2, then 20 ms per unit
    # buckets: the first (1 MiB limit) holds unit 2, all-reduced at 53 ms; the second (25 MiB) units 1 and 0, at 93
    ar = 4 * MiB / 1e9 * 1e9
    assert ddp_step_ns(_inputs(), 1.0, view=True) == pytest.approx(93 * MS + 2 * ar + 5 * MS)
    # compute-side times scale with the calibration, the link's do not
    assert ddp_step_ns(_inputs(), 2.0, view=True) == pytest.approx(186 * MS + 2 * ar + 10 * MS)


def test_without_bucket_views_ddp_copies_each_gradient_into_its_bucket_and_back():
    slow = _inputs(pass_bps=1e9)
    _n, _s, ready = ready_order(slow, view=False)
    copy = 4 * MiB / 1e9 * 1e9
    assert ready == pytest.approx([53 * MS + copy, 73 * MS + 2 * copy, 93 * MS + 3 * copy])
    # the last bucket's all-reduce after the last copy in, then all the gradients copied back, then the tail
    assert ddp_step_ns(slow, 1.0, view=False) == pytest.approx(93 * MS + 3 * copy + 2 * copy + 3 * copy + 5 * MS)
    assert ddp_step_ns(slow, 1.0, view=False) > ddp_step_ns(slow, 1.0, view=True)
    # the copies run at the rate measured outside the profiler: the compute scale does not shrink them
    assert ddp_step_ns(slow, 0.5, view=False) == pytest.approx(46.5 * MS + 3 * copy + 2 * copy + 3 * copy + 2.5 * MS)


def test_full_bytes_under_a_mixed_precision_policy_come_from_the_shards_element_size():
    assert _full_bytes(1000, 4000, 2000, 2, cast=False) == 4000
    assert _full_bytes(1000, 2000, 2000, 2, cast=True) == 4000  # all-gathered in bf16, kept in fp32
    today, ddp, view = _states([UnitBytes(name="0", unsharded_bytes=4 * MiB, shard_bytes=2 * MiB,
                                          full_bytes=4 * MiB)], factor=2)
    assert (today.params_bytes, today.grads_bytes, today.optimizer_bytes, today.buckets_bytes) == (
        2 * MiB, 2 * MiB, 4 * MiB, 0)
    assert (ddp.params_bytes, ddp.grads_bytes, ddp.optimizer_bytes, ddp.buckets_bytes) == (
        4 * MiB, 4 * MiB, 8 * MiB, 4 * MiB)
    assert view.total == ddp.total - 4 * MiB  # the gradients are the buckets


def _ev(phase: str, unit: str, a: float, b: float) -> FSDPEvent:
    return FSDPEvent(phase=phase, unit=unit, start_ns=int(a * MS), end_ns=int(b * MS))


# one FSDP2 step of two 4 MiB units (2 MiB shards), reshard_after_forward=True, ms
EVENTS = sorted([
    _ev("all_gather", "0", 1, 2), _ev("all_gather_copy_out", "0", 2, 3), _ev("post_forward", "0", 9, 10),
    _ev("all_gather", "1", 10, 11), _ev("all_gather_copy_out", "1", 11, 12), _ev("post_forward", "1", 19, 20),
    _ev("pre_backward", "1", 30, 31), _ev("all_gather", "1", 30, 31), _ev("all_gather_copy_out", "1", 31, 32),
    _ev("post_backward_reshard", "1", 40, 41), _ev("post_backward_reduce", "1", 41, 45),
    _ev("pre_backward", "0", 45, 46), _ev("all_gather", "0", 45, 46), _ev("all_gather_copy_out", "0", 46, 47),
    _ev("post_backward_reshard", "0", 55, 56), _ev("post_backward_reduce", "0", 56, 60),
], key=lambda e: e.start_ns)
UNITS = [UnitBytes(name=n, unsharded_bytes=4 * MiB, shard_bytes=2 * MiB, full_bytes=4 * MiB) for n in ("0", "1")]


def _fsdp_line() -> np.ndarray:
    """What FSDP2 held (no state: a CPU timeline): activations (1 MiB per unit's forward, freed in its backward),
    the all-gathers' flat outputs, the unsharded parameters, the unsharded gradients, the reduce-scatter inputs, the
    gradient shards (freed by zero_grad at 90 ms), and 1 MiB of optimizer temporaries."""
    spans = [(9, 41, 1), (19, 56, 1), (1, 3, 4), (2, 10, 4), (10, 12, 4), (11, 20, 4), (30, 32, 4), (31, 41, 4),
             (35, 45, 4), (41, 45, 4), (45, 90, 2), (45, 47, 4), (46, 56, 4), (50, 60, 4), (56, 60, 4), (60, 90, 2),
             (72, 78, 1)]
    t = np.arange(100) + 0.5
    v = sum(np.where((t >= a) & (t < b), n * MiB, 0) for a, b, n in spans)
    return np.vstack([(t * MS).astype(np.int64), np.asarray(v, np.int64)])


def test_ddp_step_memory_from_an_fsdp2_timeline():
    opt = (Mark(kind="optimizer_step", detail="SGD", start_ns=70 * MS, end_ns=80 * MS),)
    m = step_memory(_fsdp_line(), EVENTS, UNITS, (0, 100 * MS), opt, world=2)
    assert m is not None and m.grads_in_step and m.today_peak == 11 * MiB
    # DDP: both units' full gradients kept to the optimizer (8 MiB) plus its temporaries on whole parameters (2 x 1)
    assert m.ddp_peak == 10 * MiB
    # with gradient_as_bucket_view the gradients are the buckets (state): the activations (2 MiB) and temporaries
    assert m.ddp_peak_view == 2 * MiB
    assert step_memory(_fsdp_line(), [e for e in EVENTS if e.phase != "pre_backward"], UNITS, (0, 100 * MS), opt,
                       2) is None


def _analysis(today_ms: float, pred_ms: float, band: tuple[float, float], peak: int | None,
              device: int | None) -> ParallelAnalysis:
    st = StateMemory(params_bytes=4 * MiB, grads_bytes=4 * MiB, optimizer_bytes=0, buckets_bytes=4 * MiB)
    w = ParallelWhatIf(value="ddp", reshard_after_forward=None, predicted_step_ms=pred_ms, predicted_range_ms=band,
                       predicted_peak_bytes=peak, state=st, step_peak_bytes=None,
                       with_settings=(("gradient_as_bucket_view", False),))
    return ParallelAnalysis(traced="fsdp2", rank=0, world=2, optimizer="SGD", optimizer_assumed=True,
                            units=(("0", 4 * MiB),), today=StateMemory(params_bytes=2 * MiB, grads_bytes=2 * MiB,
                                                                         optimizer_bytes=0),
                            today_peak_bytes=10 * MiB, today_step_ms=today_ms, device_total_bytes=device,
                            whatifs=(w,))


def test_ddp_is_advised_only_when_its_whole_band_is_faster_and_its_memory_fits():
    f, adv = reverse_findings(_analysis(100.0, 60.0, (50.0, 70.0), 20 * MiB, None), asked=False)
    assert len(f) == 1 and f[0].text.startswith("FSDP2 -> DDP") and len(adv) == 1
    # each setting with its own state (the buckets' copy differs between them), today's beside: one number each
    assert "gradient_as_bucket_view=False: state " in f[0].text and "(today state 4.0 MiB, step 100.0 ms" in f[0].text
    a = adv[0]
    assert (a.knob, a.value, a.with_settings) == ("parallelism", "ddp", (("gradient_as_bucket_view", False),))
    assert a.why.startswith("DDP would be faster: 60.0 ms") and "needs 10.0 MiB more per rank (peak 20.0 MiB" in a.why
    assert "not in the trace" in a.why and a.predicted_range_ms == (50.0, 70.0)
    # the band reaches today's step: no advice, and no finding unless asked
    assert reverse_findings(_analysis(100.0, 80.0, (60.0, 105.0), 20 * MiB, None), asked=False) == ([], [])
    f, adv = reverse_findings(_analysis(100.0, 80.0, (60.0, 105.0), 20 * MiB, None), asked=True)
    assert len(f) == 1 and f[0].severity == "info" and adv == []
    # faster, but the device's memory is known and DDP's peak does not fit under 90% of it
    assert reverse_findings(_analysis(100.0, 60.0, (50.0, 70.0), 20 * MiB, 21 * MiB), asked=False)[1] == []
    assert len(reverse_findings(_analysis(100.0, 60.0, (50.0, 70.0), 20 * MiB, 40 * MiB), asked=False)[1]) == 1


def test_fsdp2_keeps_a_reduce_scatters_input_until_the_next_unit_waits_for_it():
    """FSDP2 waits for unit 1's reduce-scatter in unit 0's post-backward (``post_backward_rs_wait``): its flat input
    stays allocated until then, and DDP has no such buffer."""
    events = sorted([*EVENTS, _ev("post_backward_rs_wait", "0", 55.5, 56)], key=lambda e: e.start_ns)
    line = _fsdp_line()
    t = line[0] / MS
    line[1] += np.where((t >= 45) & (t < 56), 4 * MiB, 0).astype(np.int64)  # unit 1's input, kept to the wait
    opt = (Mark(kind="optimizer_step", detail="SGD", start_ns=70 * MS, end_ns=80 * MS),)
    m = step_memory(line, events, UNITS, (0, 100 * MS), opt, world=2)
    assert m is not None and m.today_peak == 15 * MiB and m.ddp_peak == 10 * MiB and m.ddp_peak_view == 2 * MiB


def test_the_band_adds_what_an_fsdp2_trace_cannot_measure_of_ddp():
    from commprof.analysis.memory.fsdp2ddp import STRUCTURE_PCT, band
    from commprof.analysis.uncertainty.maths import Noise

    h = (8.0**2 + 5.0**2 + STRUCTURE_PCT**2) ** 0.5  # the replays' floor, the model's error, the structure
    assert band(100.0, Noise(), 5.0) == pytest.approx((100 - h, 100 + h))
    lo, hi = band(100.0, Noise(unprofiled_pct=6.0, steps_unprofiled=10), 5.0)
    assert hi - 100 == pytest.approx((8.0**2 + 5.0**2 + 12.0**2 + STRUCTURE_PCT**2) ** 0.5) and lo < 100 - h
    # the compute scale's standard error, Z = 2 of it
    assert band(100.0, Noise(), 5.0, 4.0)[1] - 100 == pytest.approx((h**2 + 8.0**2) ** 0.5)


def test_the_compute_scale_is_the_training_threads_own_slowdown_in_the_replayed_step():
    """A CPU rank whose profiled step waited longer (323 ms against 249 outside) while its thread ran as long as in
    every step (126 ms against 120): the profiler slowed its compute by 5%, not 23%; without the scheduler's
    account, on a GPU, or with one step outside the profiler, no thread scale (the step's ratio is used)."""
    from builders import rank_trace

    from commprof.analysis.fsdp.units import StepUnits
    from commprof.analysis.memory.computescale import replayed_step, thread_scale, thread_sd_pct
    from commprof.model import Sidecar
    from commprof.model.sidecar import StepTime

    rows = [(True, 254, 125 * MS), (True, 323, 126 * MS), (True, 631, 231 * MS),
            (False, 235, 121 * MS), (False, 262, 120 * MS), (False, 274, 118 * MS)]

    def rank(rows, kind="cpu"):
        times, t = [], 0
        for i, (p, wall, run) in enumerate(rows):
            times.append(StepTime(number=i, start_ns=t, end_ns=t + wall * MS, profiled=p, sched_run_ns=run))
            t += wall * MS
        side = Sidecar(path="s", schema="commprof.sidecar/1", run_id="r", rank=0, world_size=2, backend="gloo",
                       versions={}, device=kind, ddp=None, layouts=(), buckets=(), step_times=tuple(times))
        return rank_trace(0, sidecar=side, device_kind=kind), times

    def units(st: StepTime) -> StepUnits:
        return StepUnits(step=st.number, start_ns=st.start_ns, end_ns=st.end_ns, head_ns=0, fwd_tail_ns=0,
                         bwd_tail_ns=0, units=(), peak_unsharded_bytes=0)

    rt, times = rank(rows)
    outside = {3, 4, 5}
    assert thread_scale(rt, units(times[1]), outside) == pytest.approx(120 / 126)
    assert thread_scale(rt, units(times[2]), outside) == pytest.approx(120 / 231)
    # only the steps the step now is the median of (a start-up step of 300 ms left out by the caller stays out)
    slow_start = rows + [(False, 400, 300 * MS)]
    assert thread_scale(rank(slow_start)[0], units(times[1]), outside) == pytest.approx(120 / 126)
    assert thread_scale(rank(rows, kind="cuda")[0], units(times[1]), outside) is None
    assert thread_scale(rank([(p, w, None) for p, w, _r in rows])[0], units(times[1]), outside) is None
    assert thread_scale(rt, units(times[1]), {3}) is None  # fewer than MIN_OUTSIDE steps outside
    # a thread that ran longer outside than profiled: not the profiler's slowdown, no thread scale
    assert thread_scale(rank(rows[:3] + [(False, 235, 200 * MS)] * 3)[0], units(times[1]), outside) is None
    # the pass replayed: nearest the step now (outside the profiler), not the profiled mean a slow step pulls up
    profiled = [units(t) for t in times[:3]]
    assert replayed_step(profiled, 249.0) is profiled[0]
    assert replayed_step(profiled, None) is profiled[1]  # mean 403: nearest 323
    # the scale's standard error: the median's of 3 steps outside (the profiled step's own variation cancels)
    runs = [121.0, 120.0, 118.0]
    cv = float(np.std(runs, ddof=1) / np.mean(runs) * 100)
    assert thread_sd_pct(rt, outside) == pytest.approx(cv * (np.pi / 2 / 3) ** 0.5)
    assert thread_sd_pct(rt, set()) == 0.0


def test_a_thread_the_profiler_lengthened_far_beyond_its_operators_leaves_the_compute_unscaled():
    """Where the thread ran far longer in the replayed step than outside (a ratio under MIN_THREAD_SCALE: with
    profile_memory=True on gloo, 2-3.4x where the backward's operators took 1.35x), the profiler's work lay outside
    the operators the replay times: scaled by it DDP read 41-48% under; the compute is replayed as traced (the
    caller notes that the prediction may be high)."""
    from commprof.analysis.memory.computescale import NONE, STEP, THREAD, UNSCALED, ComputeScale, choose_scale
    from commprof.analysis.steptimes import GIVEN, PROFILED
    from commprof.analysis.uncertainty.maths import Noise, calibration_pct

    # the thread's own slowdown before the step's, with the thread's standard error
    assert choose_scale(0.95, 0.77, 2.5) == ComputeScale(0.95, THREAD, 2.5)
    # too low to be the operators': unscaled, its ratio kept for the note, no error (nothing scaled)
    assert choose_scale(0.40, 0.49, 2.5) == ComputeScale(1.0, UNSCALED, 0.0, 0.40)
    # no scheduler account: the step's ratio, its error the step now's (the calibration's)
    nz = Noise(unprofiled_pct=6.0, unprofiled_median_pct=6.0, steps_unprofiled=9)
    assert calibration_pct(nz) > 0
    assert choose_scale(None, 0.77, 0.0, nz) == ComputeScale(0.77, STEP, calibration_pct(nz))
    # a step the user gave, or a plain trace's mean profiled step: named so, no slowdown measured, no error of it
    assert choose_scale(None, 0.9, 0.0, nz, GIVEN) == ComputeScale(0.9, "given")
    assert choose_scale(None, 0.87, 0.0, nz, PROFILED) == ComputeScale(0.87, "profiled")
    assert choose_scale(None, None) == ComputeScale(1.0, NONE)  # a plain trace: nothing outside the profiler
