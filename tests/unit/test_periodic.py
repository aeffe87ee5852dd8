"""Periodic slow steps (``uncertainty.periodic``): a rank's work every k steps, told with the rank whose slow steps
come first, left out of the run's noise and named; never found in noise alone, nor where a step at the period is
not slow."""

from __future__ import annotations

import numpy as np

from commprof.analysis.crossrank.critfindings import recurring
from commprof.analysis.section import Advice, Section
from commprof.analysis.uncertainty.bands import UNMEASURED, noise_warning
from commprof.analysis.uncertainty.maths import Noise, noise, variation_pct
from commprof.analysis.uncertainty.periodic import find, rank_period, rhythm, without
from commprof.analysis.uncertainty.runnoise import _another_kind

# the timed steps of a 14-step run profiled in steps 2-7: the first step and the one after the profiler untimed
STEPS = [2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13]


def _checkpointing(every: int = 3, phase: int = 0, seed: int = 0) -> dict[int, list[tuple[int, float]]]:
    """Rank 0 saves a checkpoint (+70 ms) at the end of every ``every``-th step; rank 1 waits for it in the next
    step's first collective: its next step is as long.  Steps ~60 ms, give or take 5%."""
    rng = np.random.default_rng(seed)
    out: dict[int, list[tuple[int, float]]] = {0: [], 1: []}
    for n in STEPS:
        for r in (0, 1):
            late = (n - r) % every == phase and n - r >= 0
            out[r].append((n, 60.0 * float(rng.uniform(0.95, 1.05)) + (70.0 if late else 0.0)))
    return out


def test_a_checkpoint_every_third_step_on_rank_0_is_told_with_rank_0_first():
    (p,) = find(_checkpointing())
    assert p.period == 3 and p.ranks == (0,) and p.steps == (3, 6, 9, 12) and p.followers == ((1, 1),)
    assert 120 < p.low_ms <= p.high_ms < 140 and 2.0 < p.factor < 2.4
    assert set(p.left_out) == {(0, 3), (0, 6), (0, 9), (0, 12), (1, 4), (1, 7), (1, 10), (1, 13)}
    # left out, the rest varies as the steps do (5%), not as the checkpoint makes them (~40%)
    series = _checkpointing()
    kept = without(series, (p,))
    before = variation_pct([v for _n, v in series[0]])
    after = noise([], [[v for _n, v in vals] for vals in kept.values()])
    assert before is not None and before > 35 and after.unprofiled_pct is not None and after.unprofiled_pct < 5


def test_the_report_names_them_and_what_recurs():
    (p,) = find(_checkpointing())
    (w,) = noise_warning(Noise(periodic=(p,), unprofiled_pct=3.0, steps_unprofiled=6), ())
    assert "periodic slow steps, left out of the run's noise: every 3 steps on rank 0 (steps 3, 6, 9, 12: " in w
    assert w.endswith("then on rank 1 a step later")
    said = recurring(p, (0,))
    assert said.startswith("Its slow steps recur: every 3 steps on rank 0") and "checkpoint" in said
    assert recurring(p, (1,)).startswith("The run's slow steps recur")  # another rank named: the run's, not its own


def test_ranks_slow_in_the_same_steps_or_taking_turns_are_not_told():
    """Every rank slow in the same steps (accumulation traced per micro-batch, an evaluation on every rank): the
    job's rhythm, no rank first; two ranks a step apart at period 2: each could be waiting for the other."""
    both = {r: [(n, 60.0 + (70.0 if n % 3 == 0 else 0.0) + r) for n in STEPS] for r in (0, 1)}
    assert rank_period(both[0]) == (3, 0, (3, 6, 9, 12)) and find(both) == ()
    turns = {r: [(n, 60.0 + (70.0 if (n + r) % 2 == 0 else 0.0)) for n in STEPS] for r in (0, 1)}
    assert find(turns) == () and rhythm(turns) == ()
    # every rank slow in the same steps is the job's rhythm: named as such, left out of the noise
    (r,) = rhythm(both)
    assert (r.period, r.ranks, r.steps, r.followers) == (3, (0, 1), (3, 6, 9, 12), ())
    (w,) = noise_warning(Noise(rhythm=(r,), unprofiled_pct=1.0, steps_unprofiled=6), ())
    assert w.startswith("the job's rhythm, left out of the run's noise: every 3 steps on ranks 0, 1 (steps 3, 6, 9, 12")
    assert "every rank alike" in w and "gradient accumulation" in w
    # one rank alone is no "every rank"; one rank pausing 140 ms where its 7 peers waited 40 ms is its work, not a
    # rhythm of the job (step times cannot pin it on a step)
    assert rhythm({0: both[0]}) == ()
    apart = {r: [(n, 60.0 + ((140.0 if r == 0 else 40.0) if n % 3 == 0 else 0.0)) for n in STEPS] for r in range(8)}
    assert rhythm(apart) == ()
    # the job's rhythm is told where its profiled steps moved more bytes than the others (never by noise alone)
    other = {rn: False for rn in r.left_out} | {(0, 2): True}
    assert _another_kind(r, other) and not _another_kind(r, {rn: True for rn in r.left_out})
    assert not _another_kind(r, {})  # none of its steps profiled


def test_a_one_off_stall_beside_them_is_allowed_a_missed_period_is_not():
    series = _checkpointing()[0]
    stall = [(n, v + (300.0 if n == 4 else 0.0)) for n, v in series]
    assert rank_period(stall) == (3, 0, (3, 6, 9, 12))
    missed = [(n, v - (70.0 if n == 9 else 0.0)) for n, v in series]  # step 9 ran as fast as the others
    assert rank_period(missed) is None
    assert rank_period([(n, v) for n, v in series if n <= 6]) is None  # 5 steps: too few to tell a period


def test_no_period_in_noise_alone():
    """Lognormal steps (sd 15%) with a Pareto tail one step in ten, 11 timed steps, 500 seeded runs of 2 ranks and
    of 4: a pattern with one rank first and the others after it is found in at most 1% of the runs (measured: none;
    at sd 30%, none of 1,000 either, though 4% of ranks then have a phase apart alone)."""
    found = 0
    for seed in range(500):
        rng = np.random.default_rng(seed)
        for ranks in (2, 4):
            vals = 60.0 * rng.lognormal(0.0, 0.15, (ranks, len(STEPS))) * np.where(
                rng.random((ranks, len(STEPS))) < 0.1, 1.0 + rng.pareto(2.0, (ranks, len(STEPS))), 1.0)
            found += bool(find({r: list(zip(STEPS, vals[r].tolist(), strict=True)) for r in range(ranks)}))
    assert found <= 10, found


def test_on_a_plain_trace_the_unmeasured_noise_is_still_said():
    """Periodic steps found among a plain trace's profiled steps are named, and the report still says that the steps
    outside the profiler and the host's load are not in the files (the one warning had taken the other's place)."""
    (p,) = find(_checkpointing())
    predicts = (Section(family="ddp", detail=None, advice=(Advice(knob="bucket_cap_mb", value=4, baseline_step_ms=60.0,
                                                                       predicted_step_ms=50.0, why="why"),)),)
    warned = noise_warning(Noise(periodic=(p,), profiled_pct=3.0, steps_profiled=11), predicts)
    assert len(warned) == 2 and warned[0].startswith("periodic slow steps") and warned[1] == UNMEASURED
