"""Slow ranks over a job from hand-built monitor rollups (commprof/analysis/production/slowdown.py): which bursts
are kept."""

from __future__ import annotations

from commprof.analysis.production.slowdown import slowdown
from commprof.model import MonitorRun
from commprof.model.monitor import Issue, MonitorRank, RollupCollective

STEP_NS = 20_000_000  # 20 ms steps


def _run(late_ms: dict[int, dict[int, float]], steps: int = 200, ranks: int = 3) -> MonitorRun:
    """Every rank issues one all-reduce 5 ms into each step, ``late_ms[rank][step]`` later where given; each step
    ends together on every rank (the collective's end)."""
    out = []
    for r in range(ranks):
        spans = tuple((s, s * STEP_NS, (s + 1) * STEP_NS) for s in range(steps))
        issues = tuple(Issue(s, s, 5000.0 + 1000.0 * late_ms.get(r, {}).get(s, 0.0)) for s in range(steps))
        out.append(MonitorRank(r, f"rank{r}.monitor.jsonl", ranks, "gloo", spans,
                               (RollupCollective("all_reduce", "0", steps, 4096, issues),), 0))
    return MonitorRun("built", tuple(out), (), (), ())


def test_a_sustained_slow_rank_is_one_range():
    sd = slowdown(_run({1: {s: 30.0 for s in range(80, 160)}}))
    assert sd is not None
    assert [(r.rank, r.first_step, r.last_step) for r in sd.ranges] == [(1, 80, 159)]
    assert abs(sd.ranges[0].mean_late_ms - 30.0) < 0.5


def test_a_short_burst_is_noise():
    sd = slowdown(_run({2: {s: 3.7 for s in range(161, 165)}}))  # 4 steps: what a busy neighbour causes
    assert sd is not None and sd.ranges == ()


def test_a_long_burst_that_cost_less_than_a_step_is_noise():
    # 6 steps 2.5 ms late: 15 ms in all, less than one 20 ms step
    sd = slowdown(_run({2: {s: 2.5 for s in range(100, 106)}}))
    assert sd is not None and sd.ranges == ()
    # the same burst 5 ms late: 30 ms, more than a step
    sd = slowdown(_run({2: {s: 5.0 for s in range(100, 106)}}))
    assert sd is not None and [(r.rank, r.first_step, r.last_step) for r in sd.ranges] == [(2, 100, 105)]


def test_a_stall_is_its_own_range_and_the_noise_around_it_is_judged_without_it():
    """Rank 1 stalls 5 s at step 40 and is 3 ms late in 4 steps around it: the stall alone, a step of its own (merged
    with the noise it read "steps 38-46, 1 s late on average"); 6 such steps around a stall are a range of their own,
    their mean their own."""
    noise = {38: 3.0, 41: 3.0, 43: 3.0, 46: 3.0}
    sd = slowdown(_run({1: {**noise, 40: 5000.0}}))
    assert sd is not None
    assert [(r.rank, r.first_step, r.last_step, r.stall, r.slow_steps) for r in sd.ranges] == [(1, 40, 40, True, 1)]
    assert sd.ranges[0].mean_late_ms == 5000.0
    more = {s: 6.0 for s in (36, 38, 41, 43, 45, 47)}
    sd = slowdown(_run({1: {**more, 40: 5000.0}}))
    assert sd is not None
    got = [(r.first_step, r.last_step, r.stall, r.slow_steps, round(r.mean_late_ms, 1)) for r in sd.ranges]
    assert got == [(36, 47, False, 6, 6.0), (40, 40, True, 1, 5000.0)]


def test_a_stall_over_consecutive_steps_is_one_range():
    sd = slowdown(_run({1: {40: 5000.0, 41: 4000.0}}))
    assert sd is not None
    assert [(r.first_step, r.last_step, r.stall, r.slow_steps, r.mean_late_ms) for r in sd.ranges] == [
        (40, 41, True, 2, 4500.0)]
