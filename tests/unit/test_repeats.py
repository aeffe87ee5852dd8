"""compare's verdict on repeated runs of each setting (analysis/uncertainty/repeats.py), on hand-built runs whose
profiled steps are the samples (no sidecar)."""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import pytest
from builders import rank_trace, run

from commprof.analysis.uncertainty.repeats import judge
from commprof.analysis.uncertainty.verdict import FASTER, NO_CHANGE, t_quantile, verdict
from commprof.model import Sidecar, StepTime
from commprof.render.compare import verdict_line

MS = 1_000_000


def _run(steps_ms: list[float]):
    t, steps = 0, []
    for i, ms in enumerate(steps_ms):
        steps.append((i, t, t + int(ms * MS)))
        t += int(ms * MS)
    return run(rank_trace(0, steps=steps, device_kind="cpu"))


def _around(mean: float) -> list[float]:
    return [mean - 1.0, mean + 1.0, mean - 0.5, mean + 0.5, mean]  # a quiet run: steps within ±1 ms


def test_drift_between_runs_is_measured_not_called_a_change():
    # one setting, runs landing 8% apart (as one small CPU job did on a 2-core host); steps within a run agree
    a1, a2, b1, b2 = _run(_around(100.0)), _run(_around(108.0)), _run(_around(101.0)), _run(_around(107.0))
    # one run per side at an assumed drift of 1%: the 7% between these two is taken for a change ...
    one = verdict(a1, b2, drift_sd_pct=1.0)
    assert one.change != NO_CHANGE and one.runs == (1, 1) and one.drift_sd_pct == 1.0
    # ... at the default drift (5% per run: ~14% between two runs) it is not
    dflt = verdict(a1, b2)
    assert dflt.change == NO_CHANGE and dflt.drift_sd_pct == 5.0 and dflt.ci_ms[0] < 0 < dflt.ci_ms[1]
    two = judge([a1, a2], [b1, b2])  # the repeats show the drift: no change can be told
    assert two.change == NO_CHANGE and two.runs == (2, 2)
    lo, hi = two.ci_ms
    assert lo < 0 < hi and two.delta_ms == pytest.approx(0.0)
    # pooled variance of the run means around their side's mean: (16 + 16 + 9 + 9) / 2 = 25, df 2
    half = t_quantile(0.975, 2) * math.sqrt(25.0) * math.sqrt(1 / 2 + 1 / 2)
    assert (lo, hi) == pytest.approx((-half, half))
    assert "runs' mean steps" in two.basis and "2 runs before, 2 after" in two.basis


def test_a_real_change_beyond_the_drift_is_faster():
    before = [_run(_around(m)) for m in (100.0, 102.0, 101.0)]
    after = [_run(_around(m)) for m in (80.0, 82.0, 81.0)]
    v = judge(before, after)
    assert v.change == FASTER and v.ci_ms[1] < 0 and v.delta_ms == pytest.approx(-20.0)
    # the same runs at 99.9%: a wider interval, still faster
    w = judge(before, after, confidence=0.999)
    assert w.ci_ms[0] < v.ci_ms[0] and w.ci_ms[1] > v.ci_ms[1] and w.change == FASTER and w.confidence == 0.999


def test_one_side_repeated_and_a_stall_left_out():
    # one run after, three before: the before side's spread stands for both (df = 2)
    before = [_run(_around(m)) for m in (100.0, 103.0, 97.0)]
    stalled = _around(100.0) + [400.0]  # a one-off stall in the run after: named and left out of its mean
    v = judge(before, [_run(stalled)])
    assert v.runs == (3, 1) and v.change == NO_CHANGE and v.delta_ms == pytest.approx(0.0)
    assert "after run 1 #5 400.0 ms" in v.basis
    # one run each: the single-run test, its drift assumed and said
    one = judge([_run(_around(100.0))], [_run(_around(80.0))])
    assert one.runs == (1, 1) and "assumed drift" in one.basis and one.change == FASTER
    assert "standard deviation of 5% of the step" in one.basis
    # a run with no step cannot count: one run each is left, which the repeats' test cannot judge
    empty = run(rank_trace(0, steps=(), device_kind="cpu"))
    v2 = judge([_run(_around(100.0)), empty], [_run(_around(90.0))])
    assert v2.runs == (1, 1) and v2.ci_ms is None and v2.change == NO_CHANGE and "no verdict" in v2.basis


def test_a_small_change_on_one_run_per_side_says_to_repeat():
    # one run per side cannot tell a change inside what runs of one job drift: the line says so, and how to tell it
    from commprof.analysis.compare import Comparison, Side
    from commprof.render.compare import verdict_line

    side = Side(path="x", world_size=2, ranks=(0,), step_ms=100.0, untraced_step_ms=None, exposed_comm_ms=None,
                compute_ms=None)

    def line(before: list[list[float]], after: list[list[float]], drift: float = 5.0) -> str:
        v = judge([_run(b) for b in before], [_run(a) for a in after], drift_sd_pct=drift)
        c = Comparison(before=side, after=side, ranks=(), collectives=(), buckets=(), stragglers=(),
                       settings_changed=(), advice_check=(), verdict=v)
        return verdict_line(c) or ""

    small = line([_around(100.0)], [_around(94.0)])  # 6% faster: inside an assumed drift of 5% per run
    assert small.startswith("Verdict: no detectable change") and "beyond ~14% of the step" in small
    assert "repeat each setting (--also-before / --also-after)" in small
    known = line([_around(100.0)], [_around(94.0)], drift=1.0)  # a platform whose drift is known to be 1%
    assert known.startswith("Verdict: faster") and "repeat each setting" not in known
    big = line([_around(100.0)], [_around(70.0)])  # 30% faster: beyond what runs of one job drift
    assert big.startswith("Verdict: faster") and "repeat each setting" not in big
    reps = line([_around(100.0), _around(101.0)], [_around(94.0), _around(94.5)])
    assert "2 runs before and 2 after" in reps and "repeat each setting" not in reps


def _with_outside(profiled_ms: list[float], outside_ms: list[float]):
    """A run whose sidecar timed ``outside_ms`` outside the profiler (after a start-up step) beside its profiled
    steps."""
    r = _run(profiled_ms).ranks[0]
    t, times = 0, [StepTime(0, 0, 10 * MS, False)]
    for i, ms in enumerate(outside_ms, start=1):
        t += 20 * MS
        times.append(StepTime(100 + i, t, t + int(ms * MS), False))
    side = Sidecar(path="s", schema="commprof.sidecar/1", run_id="r", rank=0, world_size=1, backend="gloo",
                   versions={}, device="cpu", ddp=None, layouts=(), buckets=(), step_times=tuple(times))
    return run(replace(r, sidecar=side))


def test_a_side_with_one_step_outside_the_profiler_puts_both_on_their_profiled_steps():
    # before: 10 profiled steps at ~30 ms and a single step outside the profiler; after: ~17 ms either way.  One
    # step gives no interval; the profiled steps of both sides do (never one side's outside beside the other's
    # profiled: the profiler slows the steps it records)
    before = _with_outside([30.0, 31.0, 29.0, 30.5, 29.5, 30.0, 31.0, 29.0, 30.5, 29.5], [30.7])
    after = _with_outside([17.0, 17.5, 16.5, 17.2, 16.8, 17.0, 17.5, 16.5, 17.2, 16.8], [17.1, 16.9, 17.0])
    v = verdict(before, after)
    assert v.change == FASTER and v.ci_ms is not None and v.delta_ms == pytest.approx(-13.0, abs=0.1)
    assert "10 profiled steps (too few steps outside the profiler on a side)" in v.basis
    # both with two or more outside the profiler: those, on both sides
    both = verdict(_with_outside([30.0] * 3, [30.7, 30.2, 30.4]), after)
    assert "3 steps outside the profiler" in both.basis and both.change == FASTER
    # one step a side and nothing else: no interval, and the line says so instead of "no detectable change"
    lone = verdict(_run([30.0]), _run([17.0]))
    assert lone.ci_ms is None and lone.change == NO_CHANGE
    line = verdict_line(SimpleNamespace(verdict=lone, no_effect=()))
    assert line.startswith("Verdict: none: the mean step moved -13.0 ms after - before, with no interval")


def test_the_step_line_takes_one_basis_on_both_sides():
    from commprof.analysis.compare import Side, step_pair

    def side(untraced: float | None, n: int | None) -> Side:
        return Side(path="x", world_size=2, ranks=(0,), step_ms=27.0, untraced_step_ms=untraced, exposed_comm_ms=None,
                    compute_ms=None, untraced_steps=n)

    assert step_pair(side(30.7, 1), side(17.0, 3)) == ("profiled", 27.0, 27.0)  # one step outside: not a basis
    assert step_pair(side(None, 0), side(17.0, 3)) == ("profiled", 27.0, 27.0)  # never one beside the other
    assert step_pair(side(30.7, 4), side(17.0, 3)) == ("outside the profiler", 30.7, 17.0)
    assert step_pair(side(30.7, None), side(17.0, None)) == ("outside the profiler", 30.7, 17.0)  # --step-ms


def test_outlier_steps_are_judged_within_their_own_run_not_against_the_other_side():
    """HTA's trace_diff pair, its step times: BEFORE 75-81 ms, AFTER 82-166 ms.  Judged against both runs' steps,
    AFTER's two 166 ms steps were "2.1x the median" (BEFORE's) and left out: +60% read "no detectable change"."""
    before = _run([75.5, 78.0, 81.1, 77.0, 76.2, 79.9])
    after = _run([100.3, 122.2, 166.4, 82.0, 107.2, 166.4])
    v = verdict(before, after)
    assert v.change == "slower" and "Left out" not in v.basis
    assert v.delta_ms == pytest.approx(124.08 - 77.95, abs=0.05)  # every step of both runs in the means
    # a one-off stall within a run is still left out, named against its own run's steps
    stalled = verdict(before, _run([80.0, 81.0, 79.5, 240.0, 80.5, 80.2, 79.8, 80.1]))
    assert "after #3 240.0 ms" in stalled.basis and "its own run's other steps" in stalled.basis
