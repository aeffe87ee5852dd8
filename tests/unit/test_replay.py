"""The replay core (``analysis/replay/core.py``) and the DDP and FSDP2 replays on hand-built inputs, against
numbers worked out by hand in each test's docstring (times in ms)."""

from __future__ import annotations

import pytest
from builders import ddp_scenario, fsdp_inputs

from commprof.analysis.ddp.whatif import calibrate as ddp_calibrate
from commprof.analysis.ddp.whatif import replay as ddp_replay
from commprof.analysis.fsdp.replay import Knobs
from commprof.analysis.fsdp.replay import calibrate as fsdp_calibrate
from commprof.analysis.fsdp.replay import replay as fsdp_replay
from commprof.analysis.replay import core

MB = 1_000_000


def test_calibrate_bisects_to_the_target_and_stops_at_the_range():
    """step(s) = 3.5 s + 3: 10 -> s = 2; out of reach below / above -> the range's ends; no target -> 1."""
    def step(s: float) -> float:
        return 3.5 * s + 3.0

    assert core.calibrate(step, 10.0) == pytest.approx(2.0, rel=1e-9)
    assert core.calibrate(step, 1.0) == core.SCALE_RANGE[0]
    assert core.calibrate(step, 100.0) == core.SCALE_RANGE[1]
    assert core.calibrate(step, None) == 1.0


def test_median_error_and_the_gain_advice_needs():
    assert core.median_of([4, 1, 3, 2], key=float) == 2  # the lower middle of an even count
    assert core.median_of([5, 1, 3], key=float) == 3
    assert core.error_pct(68.0, 100.0) == pytest.approx(-32.0) and core.error_pct(1.0, 0.0) == 0.0
    assert core.required_gain(2.0) == core.MIN_GAIN and core.required_gain(-12.0) == pytest.approx(0.12)


def test_ddp_replay_one_bucket_and_one_per_gradient():
    """Three 1 MB gradients ready at 1, 2, 3 ms, 0.5 ms after the backward pass, a link of 1 GB/s (1 ms per MB).
    One bucket: launched at 3, done at 3 + 3 = 6, step 6.5.  One bucket per gradient: done at 2, 3, 4: step 4.5.
    With α = 0.1 ms: 2.1, 3.2, 4.3: step 4.8; one bucket 3 + 0.1 + 3 + 0.5 = 6.6."""
    sc = ddp_scenario([MB, MB, MB], [1, 2, 3], tail_ms=0.5, cap_bytes=10 * MB)
    one = ddp_replay(sc, 10 * MB)
    assert (one.buckets, one.step_ns / 1e6, one.comm_done_ns / 1e6) == (1, pytest.approx(6.5), pytest.approx(6.0))
    per = ddp_replay(sc, MB)
    assert (per.buckets, per.step_ns / 1e6) == (3, pytest.approx(4.5))
    sc = ddp_scenario([MB, MB, MB], [1, 2, 3], tail_ms=0.5, cap_bytes=10 * MB, alpha_s=1e-4)
    assert ddp_replay(sc, MB).step_ns / 1e6 == pytest.approx(4.8)
    assert ddp_replay(sc, 10 * MB).step_ns / 1e6 == pytest.approx(6.6)


def test_ddp_replay_fp16_halves_the_wire_and_pays_its_casts():
    """One 3 MB bucket, passes at 10 GB/s: the casts before 1.25 x 3 MB / 10 GB/s = 0.375 ms, after 0.225 ms;
    1.5 MB on the wire = 1.5 ms: done at 3 + 0.375 + 1.5 + 0.225 = 5.1, step 5.6."""
    sc = ddp_scenario([MB, MB, MB], [1, 2, 3], tail_ms=0.5, cap_bytes=10 * MB)
    assert ddp_replay(sc, 10 * MB, "fp16").step_ns / 1e6 == pytest.approx(5.6)


def test_ddp_calibration_scales_the_compute_side_to_the_unprofiled_step():
    """One bucket: step(s) = 3 s + 3 + 0.5 s; the step outside the profiler 10 ms -> s = 2."""
    sc = ddp_scenario([MB, MB, MB], [1, 2, 3], tail_ms=0.5, cap_bytes=10 * MB, unprofiled_step_ms=10.0)
    s = ddp_calibrate(sc)
    assert s == pytest.approx(2.0, rel=1e-6)
    assert ddp_replay(sc, 10 * MB, None, s).step_ns / 1e6 == pytest.approx(10.0, rel=1e-6)


UNITS = [("a", 2, 4, 1, 1, 1, 100, True), ("b", 2, 4, 1, 1, 1, 200, True)]


def test_fsdp_replay_resharding_after_forward():
    """head 1; a: gather 1-2, forward to 4, freed; b: gather 4-5, forward to 7, freed; forward tail to 8.
    Backward: gather b 8-9 and prefetch a 9-10 (300 bytes held), b's backward to 14, its reduce-scatter to 15;
    a's backward to 19, reduce-scatter to 20; backward tail: 21 ms, peak 300 bytes."""
    inp = fsdp_inputs(UNITS, head_ms=1, fwd_tail_ms=1, bwd_tail_ms=1)
    step_ns, peak, _phases = fsdp_replay(inp, Knobs(reshard_after_forward=None, prefetch=0))
    assert (step_ns / 1e6, peak) == (pytest.approx(21.0), 300)


def test_fsdp_replay_keeping_parameters_after_forward():
    """reshard_after_forward=False: no gathers in the backward: forward as above to 8, b's backward 8-12 and
    reduce-scatter to 13, a's 13-17 and to 18, tail: 19 ms; both units held from b's forward on: 300 bytes."""
    inp = fsdp_inputs(UNITS, head_ms=1, fwd_tail_ms=1, bwd_tail_ms=1)
    step_ns, peak, phases = fsdp_replay(inp, Knobs(reshard_after_forward=False, prefetch=0))
    assert (step_ns / 1e6, peak) == (pytest.approx(19.0), 300)
    assert phases["fwd:a"] == 100 and phases["fwd_tail"] == 300


def test_fsdp_replay_saves_or_pays_the_unshards_cpu_work():
    """A unit that stops resharding after its forward saves its backward unshard's CPU work (allocation and copy-out,
    measured in pre_backward: 0.5 ms each here) besides its all-gather: 19 - 2 x 0.5 = 18 ms; traced without
    resharding, a unit made to reshard pays its forward's measured unshard (0.7 ms each) in its backward besides the
    all-gathers: 21 + 2 x 0.7 ms.  As traced, nothing changes.  (CI run 58's FSDP2 run: 35-45 ms of unshard work per
    step that the replay kept, reshard_after_forward=False predicted at 616 ms, measured 481; now 578.)"""
    from dataclasses import replace

    inp = fsdp_inputs(UNITS, head_ms=1, fwd_tail_ms=1, bwd_tail_ms=1)
    inp = replace(inp, units=tuple(replace(u, unshard_ns=0.5e6) for u in inp.units))
    assert fsdp_replay(inp, Knobs(reshard_after_forward=False, prefetch=0))[0] / 1e6 == pytest.approx(18.0)
    assert fsdp_replay(inp, Knobs(reshard_after_forward=None, prefetch=0))[0] / 1e6 == pytest.approx(21.0)
    kept = fsdp_inputs([(n, f, b, ag, bag, rs, nb, False) for n, f, b, ag, bag, rs, nb, _ in UNITS],
                       head_ms=1, fwd_tail_ms=1, bwd_tail_ms=1)
    kept = replace(kept, units=tuple(replace(u, unshard_ns=0.7e6) for u in kept.units))
    assert fsdp_replay(kept, Knobs(reshard_after_forward=None, prefetch=0))[0] / 1e6 == pytest.approx(19.0)
    assert fsdp_replay(kept, Knobs(reshard_after_forward=True, prefetch=0))[0] / 1e6 == pytest.approx(22.4)


def test_fsdp_calibration_hits_the_target():
    """The traced settings' replay is 21 ms at scale 1; a target of 21 ms gives 1, a larger one more than 1."""
    inp = fsdp_inputs(UNITS, head_ms=1, fwd_tail_ms=1, bwd_tail_ms=1)
    assert fsdp_calibrate(inp, 21e6) == pytest.approx(1.0, rel=1e-6)
    s = fsdp_calibrate(inp, 30e6)
    traced = Knobs(reshard_after_forward=None, prefetch=0)
    assert s > 1.0 and fsdp_replay(inp, traced, s)[0] == pytest.approx(30e6, rel=1e-6)


def test_gain_is_how_far_a_prediction_rests_on_the_calibrated_compute():
    """Traced: one bucket, step(s) = 3.5 s + 3 (6.5 ms at s = 1, slope 3.5 ms per unit of s).  One bucket per
    gradient (4.5 ms at s = 1): at s = 0.95 its buckets queue on the link (3.95 + 0.475 = 4.425 ms), at 1.05 each
    waits for its gradient (3.15 + 1 + 0.525 = 4.675): slope 2.5; gain = (6.5 / 4.5) x (2.5 / 3.5).  The traced
    settings themselves: gain 1.  A step that does not move with the factor calibrates nothing: gain 0."""
    sc = ddp_scenario([MB, MB, MB], [1, 2, 3], tail_ms=0.5, cap_bytes=10 * MB)
    traced = core.slope(lambda f: ddp_replay(sc, 10 * MB, None, f).step_ns)
    per = core.slope(lambda f: ddp_replay(sc, MB, None, f).step_ns)
    assert traced == pytest.approx(3.5 * 2 * core.SLOPE_EPS * 1e6)
    assert per == pytest.approx(2.5 * 2 * core.SLOPE_EPS * 1e6)
    assert core.gain(4.5e6, per, 6.5e6, traced) == pytest.approx(6.5 / 4.5 * 2.5 / 3.5)
    assert core.gain(6.5e6, traced, 6.5e6, traced) == pytest.approx(1.0)
    assert core.gain(4.5e6, per, 6.5e6, 0.0) == 0.0
