"""The profiler's cost on the steps it recorded (``steptimes.profiler_cost``) and the run's noise at one input size
(``runnoise`` with ``inputwork``), on hand-built runs."""

from __future__ import annotations

from builders import rank_trace, run

from commprof.analysis.steptimes import OUTSIDE, PROFILER_SLOWED, profiler_cost
from commprof.analysis.uncertainty.runnoise import run_noise
from commprof.model import Sidecar, StepTime

MS = 1_000_000


def _rank(rank: int, profiled_ms: list[float], outside_ms: list[float], sizes: list[int] | None = None):
    """Profiled steps 0.. then steps outside the profiler, back to back; ``sizes``: each step's input elements."""
    spans, times, t = [], [], 0
    for n, ms in enumerate([*profiled_ms, *outside_ms]):
        end = t + int(ms * MS)
        size = sizes[n] if sizes is not None else None
        times.append(StepTime(n, t, end, n < len(profiled_ms), input_elems=size))
        if n < len(profiled_ms):
            spans.append((n, t, end))
        t = end
    side = Sidecar(path="s", schema="commprof.sidecar/1", run_id="r", rank=rank, world_size=2, backend="gloo",
                   versions={}, device="cpu", ddp=None, layouts=(), buckets=(), step_times=tuple(times), host="h",
                   cpus=(0, 1))
    return rank_trace(rank, steps=spans, device_kind="cpu", sidecar=side)


def _warn(profiled: list[float], outside: list[float]) -> str | None:
    r = run(_rank(0, profiled, outside), _rank(1, profiled, outside))
    now = {0: sorted(outside)[len(outside) // 2], 1: sorted(outside)[len(outside) // 2]}
    return profiler_cost(r, now, {0: OUTSIDE, 1: OUTSIDE}, None)


def test_steps_the_profiler_slowed_and_lengthened_are_told_with_a_shorter_window():
    w = _warn([205, 266, 305, 350, 365, 373, 370, 399], [165, 160, 170, 166, 163, 168])
    assert w is not None and w.startswith(f"{PROFILER_SLOWED} 2.2x (rank ") and "their median 357.5 ms" in w, w
    assert "they lengthened as it recorded (205 ms in the first analyzed step, 399 ms in the last)" in w, w


def test_a_steady_cost_is_told_without_a_trend_and_a_small_one_not_at_all():
    w = _warn([330, 320, 335, 325, 331, 322, 329, 327], [165, 160, 170, 166, 163, 168])
    assert w is not None and "2.0x" in w and "lengthened" not in w, w
    assert _warn([180, 175, 182, 178, 176, 181], [165, 160, 170, 166, 163, 168]) is None  # 1.1x: the usual cost
    # two slow profiled steps among six (a stall, a checkpoint): not the profiler's cost
    assert _warn([165, 400, 168, 390, 166, 170], [165, 160, 170, 166, 163, 168]) is None


def test_noise_at_one_input_size_names_the_inputs_and_keeps_the_stalls_times():
    sizes = [48, 96, 64, 80, 96, 48, 64, 80, 48, 96, 64, 80, 96, 48, 64, 80, 48, 96]
    steps = [20 + s for s in sizes]  # 1 ms per input element, nothing else
    steps[14] *= 4  # a stall outside the profiler, at a usual size
    r = run(*(_rank(k, steps[:6], steps[6:], [s * 1000 for s in sizes]) for k in (0, 1)))
    nz = run_noise(r)
    assert nz.inputs is not None and nz.inputs.ranks == 2 and nz.inputs.explained > 0.99, nz
    assert nz.unprofiled_pct is not None and nz.unprofiled_pct < 1.0 < 20 < (nz.unprofiled_raw_pct or 0), nz
    (stall,) = [s for s in nz.left_out if not s.profiled]
    assert stall.step == 14 and stall.low_ms == stall.high_ms == (20 + 64) * 4, stall  # the time it took
    others = sorted(steps[n] for n in range(7, 18) if n != 14)  # ... and its factor over the others as they came
    assert abs(stall.factor - (20 + 64) * 4 / others[len(others) // 2]) < 1e-9, stall
    assert "the job's data, not a disturbance" in nz.describe(), nz.describe()
    plain = run(*(_rank(k, steps[:6], steps[6:]) for k in (0, 1)))  # no sizes recorded: as before
    assert run_noise(plain).inputs is None and (run_noise(plain).unprofiled_pct or 0) > 20


def test_stalls_and_episodes_found_at_one_input_size_are_told_as_they_came():
    sizes = [48, 96, 64, 80, 96, 48, 64, 80, 48, 96, 64, 80, 96, 48, 64, 80, 48, 96, 64, 80, 48, 96]
    steps = [20.0 + s for s in sizes]
    for n in (12, 13, 14):  # a slow episode outside the profiler: three steps in a row 3x
        steps[n] *= 3
    r = run(*(_rank(k, steps[:6], steps[6:], [s * 1000 for s in sizes]) for k in (0, 1)))
    nz = run_noise(r)
    assert nz.inputs is not None and nz.inputs.outside, nz
    (ep,) = nz.episodes
    assert ep.steps == (12, 13, 14), ep
    assert (ep.low_ms, ep.high_ms) == (min(steps[12:15]), max(steps[12:15])), ep  # the times they took
    others = sorted(steps[n] for n in range(7, 22) if n not in (12, 13, 14))
    assert abs(ep.factor - sorted(steps[12:15])[1] / others[len(others) // 2]) < 1e-9, ep


def test_profiled_steps_of_the_largest_inputs_are_no_headline_outliers():
    """The headline left the longest sequences' steps out as one-off stalls ("step #5 left out: 335.9 ms, 2.4x the
    median of the other steps") while the run's noise called them the job's data."""
    from commprof.analysis.overlap import rank_overlap
    from commprof.analysis.uncertainty.runnoise import heavy_steps

    sizes = [64, 64, 48, 96, 64, 64, 64, 96, 64, 48, 64, 64] + [64] * 6
    # attention-like: the 96-long steps 2.25x the 64-long ones; each step 0-2% apart besides
    steps = [10 * (s / 32) ** 2 * (1 + 0.004 * ((7 * n) % 6)) for n, s in enumerate(sizes)]
    r = run(*(_rank(k, steps[:12], steps[12:], [s * 1000 for s in sizes]) for k in (0, 1)))
    heavy = heavy_steps(r, None, run_noise(r))
    assert heavy == {3, 7}, heavy  # 96 over 1.25x the lower median (64)
    o = rank_overlap(r.ranks[0])
    assert {n for n, _ms, _why in o.outliers} == {3, 7}  # as it was: stalls
    from dataclasses import replace
    assert replace(o, heavy=heavy).outliers == ()
    plain = run(*(_rank(k, steps[:12], steps[12:]) for k in (0, 1)))  # no sizes: as before
    assert heavy_steps(plain, None, run_noise(plain)) == frozenset()
    # a stall at a long input is still one: left out of the noise as a stall, and of the heavy steps
    stalled = list(steps)
    stalled[7] *= 3
    r = run(*(_rank(k, stalled[:12], stalled[12:], [s * 1000 for s in sizes]) for k in (0, 1)))
    nz = run_noise(r)
    assert 7 in {s.step for s in nz.left_out if s.profiled}, nz.left_out
    heavy = heavy_steps(r, None, nz)
    assert heavy == {3}, heavy
    assert 7 in {n for n, _ms, _why in replace(rank_overlap(r.ranks[0]), heavy=heavy).outliers}


def test_the_profilers_cost_is_said_first_in_the_text_and_the_html():
    import commprof
    from commprof.render.html import render
    from commprof.render.text import render as render_text

    slowed = [205, 266, 305, 350, 365, 373, 370, 399]
    rep = commprof.analyze(run(_rank(0, slowed, [165, 160, 170, 166, 163, 168]),
                               _rank(1, slowed, [165, 160, 170, 166, 163, 168])))
    assert len([w for w in rep.warnings if w.startswith(PROFILER_SLOWED)]) == 1, rep.warnings
    page = render(rep, plots={})
    assert page.index("!! " + PROFILER_SLOWED) < page.index("<h2>")  # above every section
    text = render_text(rep)
    assert text.index("!! " + PROFILER_SLOWED) < text.index("Findings")
