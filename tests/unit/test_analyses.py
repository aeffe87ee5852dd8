"""Every analysis on hand-built records (tests/builders.py): numbers worked out by hand."""

from __future__ import annotations

from dataclasses import replace

import pytest
from builders import collective, lane, rank_trace, run

from commprof import intervals as iv
from commprof.analysis.analyze import analyze
from commprof.analysis.crossrank.matching import cross_rank
from commprof.analysis.overlap import rank_overlap
from commprof.analysis.perrank import digest, late_split_spans, results_for, steps_key
from commprof.analysis.spans import rank_spans
from commprof.analysis.steptimes import GIVEN, OUTSIDE, PROFILED, step_now_ms, unprofiled_step_ms
from commprof.analysis.volume import collective_stats
from commprof.model import Sidecar, StepTime

MS = 1_000_000


def _two_steps():
    """Step 1: compute 0-6 ms, comm 4-9 ms (2 ms hidden, 3 exposed); step 2: compute 10-16, comm 16-18."""
    comp = lane([(0, 6 * MS), (10 * MS, 16 * MS)], steps=[1, 2])
    colls = [collective(4 * MS, 9 * MS, step=1, nbytes=100), collective(16 * MS, 18 * MS, step=2, nbytes=300)]
    return rank_trace(0, steps=((1, 0, 10 * MS), (2, 10 * MS, 20 * MS)), compute=comp, collectives=colls)


def test_overlap_per_step_and_window():
    o = rank_overlap(_two_steps())
    s1, s2 = o.steps
    assert (s1.compute_ns, s1.comm_ns, s1.overlapped_ns, s1.exposed_ns, s1.other_ns) == (6 * MS, 5 * MS, 2 * MS,
                                                                                         3 * MS, 1 * MS)
    assert (s2.compute_ns, s2.comm_ns, s2.overlapped_ns, s2.exposed_ns, s2.other_ns) == (6 * MS, 2 * MS, 0,
                                                                                         2 * MS, 2 * MS)
    assert s1.comm_bytes == 100 and s2.comm_bytes == 300
    assert o.window.comm_ns == 7 * MS and o.window.overlapped_ns == 2 * MS
    assert o.window.overlap_pct == pytest.approx(100 * 2 / 7)
    assert o.mean("exposed_ns") == 2.5 * MS and o.median("step_ns") == 10 * MS
    only2 = rank_overlap(_two_steps(), steps=[2])
    assert [s.step for s in only2.steps] == [2] and only2.window.comm_ns == 2 * MS


def test_spans_of_a_step_and_of_the_whole_trace():
    rt = _two_steps()
    sp = rank_spans(rt, 1)
    assert iv.length(sp.exposed) == 3 * MS and sp.exposed[0].tolist() == [6 * MS]
    whole = rank_spans(rt)
    assert iv.length(whole.compute) == 12 * MS and iv.length(whole.exposed) == 5 * MS
    comp, comm = late_split_spans(rt)
    assert iv.length(comp) == 12 * MS and iv.length(comm) == 5 * MS


def test_digest_gives_what_the_analyses_give():
    rt = _two_steps()
    d = digest(rt)
    assert d.results == results_for(rt, None, None)
    assert late_split_spans(rt, d)[1][0].tolist() == late_split_spans(rt)[1][0].tolist()
    assert steps_key([3, 1, 2]) == range(1, 4) and steps_key([1, 5]) == (1, 5)
    # asked for other steps than the digest holds: computed again, not taken from it
    assert results_for(rt, (2,), steps_key((2,)), d).overlap.steps[0].step == 2


def test_collective_volume_per_step_and_bandwidth():
    a = rank_trace(0, steps=((1, 0, 10 * MS), (2, 10 * MS, 20 * MS)),
                   collectives=[collective(0, 1 * MS, step=1, nbytes=2 * 10**6),
                                collective(10 * MS, 11 * MS, step=2, nbytes=2 * 10**6)])
    (row,) = collective_stats([a])
    assert row.count == 1.0 and row.bytes == 2e6 and row.time_ns == 1 * MS
    assert row.algbw_gbps == pytest.approx(2e6 / 1e6)  # bytes per ns = GB/s
    assert row.busbw_gbps == pytest.approx(2.0 * (2 - 1) / 2 * 2.0)


def _pair(late_ms: float, shift_ns: int = 0):
    """Two ranks, three all-reduces; rank 1 arrives ``late_ms`` after rank 0 each time; rank 1's clock is shifted
    by ``shift_ns``.  Both end together."""
    r0, r1 = [], []
    for k in range(3):
        t = k * 10 * MS
        r0.append(collective(t, t + 3 * MS, step=1, seq=k))
        r1.append(collective(t + int(late_ms * MS) + shift_ns, t + 3 * MS + shift_ns, step=1, seq=k))
    a = rank_trace(0, steps=((1, 0, 30 * MS),), collectives=r0)
    b = rank_trace(1, steps=((1, shift_ns, 30 * MS + shift_ns),), collectives=r1)
    return a, b


@pytest.mark.parametrize("shift_ns", [0, 7_000_000_000])
def test_cross_rank_aligns_clocks_and_finds_the_late_rank(shift_ns):
    a, b = _pair(2.0, shift_ns)
    cr = cross_rank([a, b])
    assert cr.offsets_ns == {0: 0, 1: -shift_ns}
    (g,) = cr.groups
    assert g.arrival_ns.shape == (3, 2) and g.wait_ns[:, 0].tolist() == [2 * MS] * 3
    (s,) = cr.stragglers
    assert (s.rank, s.late_count, s.instances) == (1, 3, 3) and s.mean_late_ms == pytest.approx(2.0)
    assert s.idle_ms == pytest.approx(2.0)  # nothing ran on rank 1 while rank 0 waited
    assert cr.wait_ms_per_step == {0: pytest.approx(6.0), 1: 0.0}


def test_arrivals_within_the_threshold_make_no_late_straggler_but_count_the_wait_caused():
    a, b = _pair(0.5)  # below min(1 ms, 5% of the 30 ms step = 1.5 ms)
    (s,) = cross_rank([a, b]).stragglers
    assert (s.rank, s.late_count) == (1, 0)
    assert s.caused_wait_ms == pytest.approx(1.5)  # 0.5 ms ahead of rank 0 at 3 collectives of the one step


def test_a_wait_beside_the_ranks_own_compute_is_no_wait():
    """DDP's pattern: rank 0 launches bucket 0's all-reduce at 2 ms from its backward (compute 0-8 ms) and bucket 1's
    at 8 ms; rank 1, asleep 4 ms, arrives 4 ms later at each.  Rank 0's first 4 ms window lies beside its own
    backward (no cost), the second is idle: a wait of 4 ms, not 8, and rank 1 caused as much."""
    comp = lane([(0, 8 * MS)], steps=[1])
    r0 = [collective(2 * MS, 9 * MS, step=1, seq=0), collective(8 * MS, 13 * MS, step=1, seq=1)]
    r1 = [collective(6 * MS, 9 * MS, step=1, seq=0), collective(12 * MS, 13 * MS, step=1, seq=1)]
    a = rank_trace(0, steps=((1, 0, 14 * MS),), compute=comp, collectives=r0)
    b = rank_trace(1, steps=((1, 0, 14 * MS),), compute=lane([(4 * MS, 12 * MS)], steps=[1]), collectives=r1)
    # the waiter's own clock seconds apart from the aligned one: its compute must be moved onto it to count
    a, b = replace(a, base_time_ns=7_000_000_000), replace(b, base_time_ns=7_000_000_000)
    cr = cross_rank([a, b])
    assert cr.wait_ms_per_step == {0: pytest.approx(4.0), 1: 0.0}
    (s,) = cr.stragglers
    assert s.rank == 1 and s.caused_wait_ms == pytest.approx(4.0)
    # without the backward beside the first window (rank 0 computed nothing): both windows are waiting
    cr2 = cross_rank([replace(a, compute=lane([], steps=[])), b])
    assert cr2.wait_ms_per_step[0] == pytest.approx(8.0) and cr2.stragglers[0].caused_wait_ms == pytest.approx(8.0)


def test_unprofiled_step_time_skips_start_up_and_the_step_after_export():
    times = [StepTime(0, 0, 900, False), StepTime(1, 1000, 1100, False), StepTime(2, 2000, 2500, True),
             StepTime(3, 3000, 3800, False), StepTime(4, 4000, 4120, False), StepTime(5, 5000, 5140, False)]
    side = Sidecar(path="s", schema="commprof.sidecar/1", run_id="r", rank=0, world_size=1, backend="gloo", versions={},
                   device="cpu", ddp=None, layouts=(), buckets=(), step_times=tuple(times))
    got = unprofiled_step_ms(run(rank_trace(0, sidecar=side)))
    assert got == {0: pytest.approx(120 / 1e6)}  # median of 100, 120, 140 ns (steps 1, 4, 5)


def test_the_step_now_is_outside_the_profiler_given_or_the_profiled_mean():
    # one figure per rank that replays calibrate on and advice is measured against (steptimes.step_now_ms)
    def side(*outside_ns: int) -> Sidecar:
        times = [StepTime(0, 0, 900, False)] + [StepTime(i + 1, 1000 * (i + 1), 1000 * (i + 1) + ns, False)
                                                 for i, ns in enumerate(outside_ns)]
        return Sidecar(path="s", schema="commprof.sidecar/1", run_id="r", rank=0, world_size=1, backend="gloo",
                       versions={}, device="cpu", ddp=None, layouts=(), buckets=(), step_times=tuple(times))

    means = {0: 27.0}
    three = run(rank_trace(0, sidecar=side(100, 120, 140)))
    assert step_now_ms(three, means) == ({0: pytest.approx(120 / 1e6)}, {0: OUTSIDE})
    one = run(rank_trace(0, sidecar=side(307)))  # one step outside the profiler: a sample, not the step
    assert step_now_ms(one, means) == ({0: 27.0}, {0: PROFILED})
    assert step_now_ms(one, means, given_ms=30.0) == ({0: 30.0}, {0: GIVEN})
    assert step_now_ms(run(rank_trace(0)), means) == ({0: 27.0}, {0: PROFILED})  # a plain trace


def test_analyze_a_hand_built_run_end_to_end():
    a, b = _pair(2.0)
    rep = analyze(run(a, b))
    assert [o.rank for o in rep.overlaps] == [0, 1]
    assert rep.cross.stragglers[0].rank == 1
    assert rep.findings[0].text.startswith("Rank 1 may hold the job back")  # 2 ranks, few steps: weak, hedged
    assert rep.critical is not None and rep.critical.cause.what == "idle before collectives"
    assert rep.advice == ()  # no sidecar: nothing to replay


def test_with_ranks_missing_the_cause_is_a_lead_among_the_loaded_ranks_not_a_verdict():
    # the same pair as above, loaded as 2 of a 4-rank job: rank 2 or 3 may be the one both loaded ranks wait for
    from commprof.model import Run

    a, b = _pair(2.0)
    rep = analyze(Run("built", (a, b), 4, None, (2, 3), ()))
    assert rep.critical is not None and rep.critical.cause.ranks == () and rep.critical.cause.rank is None
    first = rep.findings[0]
    assert first.text.startswith("Who holds the job back is not told: 2 of 4 ranks are loaded (not loaded: 2, 3)")
    assert "Among the loaded ranks, rank 1 would shorten their critical path most" in first.text
    assert first.severity == "info"


def test_step_windows_tile_the_timeline_and_take_gpu_work_past_the_cpu_step():
    """Step 1's CPU span ends at 10 ms but a kernel it launched runs until 14 ms: step 1's window is 0-14 ms and
    step 2's starts there; within each window the parts add up to the window."""
    comp = lane([(1 * MS, 14 * MS), (15 * MS, 18 * MS)], steps=[1, 2], launches=[1 * MS, 11 * MS])
    comm = lane([(12 * MS, 16 * MS)], steps=[2], launches=[11 * MS])
    rt = rank_trace(0, steps=((1, 0, 10 * MS), (2, 10 * MS, 20 * MS)), compute=comp, comm=comm)
    s1, s2 = rank_overlap(rt).steps
    assert (s1.step_ns, s2.step_ns) == (14 * MS, 6 * MS)
    assert (s1.compute_ns, s1.comm_ns, s1.overlapped_ns) == (13 * MS, 2 * MS, 2 * MS)  # comm of step 2 runs here
    assert (s2.compute_ns, s2.comm_ns, s2.overlapped_ns, s2.exposed_ns) == (3 * MS, 2 * MS, 1 * MS, 1 * MS)
    for s in (s1, s2):
        assert s.compute_only_ns + s.overlapped_ns + s.exposed_ns + s.other_ns == s.step_ns


def test_a_gloo_record_past_its_step_does_not_stretch_a_cpu_step():
    """On a CPU rank the training thread waits for its gloo collectives inside its step: a worker's record that ends
    72 ms after the step (the rank had run its optimizer) made a 39 ms step read 111 ms and an outlier.  On a GPU
    rank a kernel past the CPU step is the step's work (the test above)."""
    comp = lane([(1 * MS, 9 * MS), (11 * MS, 19 * MS)], steps=[1, 2])
    comm = lane([(5 * MS, 30 * MS)], steps=[1])
    cpu = rank_trace(0, steps=((1, 0, 10 * MS), (2, 10 * MS, 20 * MS)), compute=comp, comm=comm, device_kind="cpu")
    s1, s2 = rank_overlap(cpu).steps
    assert (s1.step_ns, s2.step_ns) == (10 * MS, 10 * MS) and s1.comm_ns == 5 * MS
    g1, g2 = rank_overlap(replace(cpu, device_kind="cuda")).steps
    assert (g1.step_ns, g2.step_ns) == (30 * MS, 0)


def test_headline_figures_are_the_mean_of_the_steps_and_add_up():
    """Two steps: the headline is their mean (never the earlier or shorter middle one), and its parts add up."""
    o = rank_overlap(_two_steps())
    rep_step = o.representative
    s1, s2 = o.steps
    assert rep_step is not None and rep_step.step == -2  # a mean over steps, not one of them
    assert rep_step.comm_ns == (s1.comm_ns + s2.comm_ns) // 2 and rep_step.comm_bytes == 200
    assert rep_step.comm_ns == rep_step.overlapped_ns + rep_step.exposed_ns
    assert rep_step.compute_only_ns + rep_step.overlapped_ns + rep_step.exposed_ns + rep_step.other_ns \
        == rep_step.step_ns
    sp = o.spread_ms
    assert sp is not None and sp.n == 2 and sp.outliers == () and o.typical_step in (1, 2)


def test_a_stalled_step_is_left_out_of_the_headline_and_named():
    steps = tuple((i, i * 10 * MS, (i + 1) * 10 * MS) for i in range(1, 5)) + ((5, 50 * MS, 250 * MS),)
    comp = lane([(i * 10 * MS, i * 10 * MS + 6 * MS) for i in range(1, 6)], steps=[1, 2, 3, 4, 5])
    o = rank_overlap(rank_trace(0, steps=steps, compute=comp))
    assert [n for n, _ms, _why in o.outliers] == [5]
    assert o.representative is not None and o.representative.step_ns == 10 * MS
    sp = o.spread_ms
    assert sp is not None and sp.high == 200.0 and sp.median == 10.0 and sp.kept == 4


