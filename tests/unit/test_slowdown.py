"""Slow ranks over a job from hand-built monitor rollups (commprof/analysis/production/slowdown.py): which bursts
are kept."""

from __future__ import annotations

from dataclasses import replace

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


def test_late_steps_at_a_period_are_one_range_with_it():
    """Rank 1 is 600 ms late every 25 steps (a checkpoint): each alone a single step under a stall's 1 s, so no
    range kept them (nothing was said of 4.2 s lost); now one range with its period, shaded step by step.  At 5 s
    each they were one stall per checkpoint; now one range, its stalls said.  A stray late step off the period, and
    3 ms of noise, stay apart."""
    sd = slowdown(_run({1: {s: 600.0 for s in range(25, 200, 25)}}))
    assert sd is not None
    (r,) = sd.ranges
    assert (r.rank, r.period, r.steps, r.slow_steps, r.stall) == (1, 25, (25, 50, 75, 100, 125, 150, 175), 7, False)
    assert r.mean_late_ms == 600.0 and r.spans()[0] == (24.5, 25.5) and len(r.spans()) == 7
    sd = slowdown(_run({1: {**{s: 5000.0 for s in range(40, 200, 40)}, 63: 5000.0, 90: 3.0}}))
    assert sd is not None
    got = [(r.first_step, r.last_step, r.period, r.stall, r.slow_steps) for r in sd.ranges]
    assert got == [(40, 160, 40, True, 4), (63, 63, None, True, 1)]


def test_late_steps_not_at_every_step_of_a_period_stay_apart():
    """Late at 25, 50 and 100 but on time at 75: no period; single steps under a stall, they are noise."""
    sd = slowdown(_run({1: {25: 600.0, 50: 600.0, 100: 600.0, 125: 600.0}}))
    assert sd is not None and sd.ranges == ()


def test_late_steps_at_its_own_monitors_rollups_are_not_the_jobs_work():
    """On a 2-core host with 3 ranks, a rank's monitor rolled up every 20 steps on its background thread and made it
    7 ms late in each step that ran beside the rollup (140, 160, ..., 220): commprof's own work, not a period of the
    job's; the same lateness at other steps is."""
    late = {2: {s: 7.0 for s in range(140, 240, 20)}}
    base = _run(late)
    rolled = replace(base, ranks=tuple(replace(r, rollups=tuple(range(20, 201, 20))) for r in base.ranks))
    sd = slowdown(rolled)
    assert sd is not None and sd.ranges == ()
    sd = slowdown(base)  # no rollups recorded there (hand-built): a period of the job's
    assert sd is not None and [(r.rank, r.period, r.first_step, r.last_step) for r in sd.ranges] == [(2, 20, 140, 180)]


def test_a_checkpoint_at_the_monitors_rollup_steps_is_still_told():
    """Rollups every 20 steps: a 250 ms pause at every 20th step (a save at step % 20 == 0) is told, and with 7 ms
    of rollup lag at those steps beside a pause at every 20th step + 10, the period is the pause's, not 10."""
    def rolled(late: dict[int, dict[int, float]]):
        base = _run(late)
        return replace(base, ranks=tuple(replace(r, rollups=tuple(range(20, 201, 20))) for r in base.ranks))

    sd = slowdown(rolled({1: {s: 250.0 for s in range(20, 200, 20)}}))
    assert sd is not None and [(r.rank, r.period, r.first_step) for r in sd.ranges] == [(1, 20, 20)]
    mixed = {1: {**{s: 7.0 for s in range(20, 200, 20)}, **{s: 250.0 for s in range(10, 200, 20)}}}
    sd = slowdown(rolled(mixed))
    assert sd is not None and [(r.rank, r.period, r.first_step, r.slow_steps) for r in sd.ranges] == [(1, 20, 10, 10)]
