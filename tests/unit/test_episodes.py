"""Slow episodes among the steps outside the profiler (``uncertainty.episodes``): told and left out of the run's
noise, never found in noise alone, never across the profiled steps."""

from __future__ import annotations

import numpy as np

from commprof.analysis.uncertainty.bands import noise_warning
from commprof.analysis.uncertainty.episodes import Episode, find
from commprof.analysis.uncertainty.maths import Noise, noise, variation_pct


def _ranks(steps: list[int], job: list[float], jitter: float = 0.3,
           seed: int = 0) -> dict[int, list[tuple[int, float]]]:
    """Two ranks of a synchronous job: each rank's wall time is the job's step, give or take a little."""
    rng = np.random.default_rng(seed)
    return {r: [(n, ms + float(rng.uniform(0, jitter))) for n, ms in zip(steps, job, strict=True)] for r in (0, 1)}


def test_three_slow_steps_after_the_profiler_are_an_episode_not_noise():
    """Steps 6-17 outside the profiler, 20 ms each give or take 5%, and steps 10-12 at 45 ms (a checkpoint): the
    episode is named and left out of every rank's series; what remains varies as the other steps do."""
    rng = np.random.default_rng(1)
    steps = list(range(6, 18))
    job = [20.0 * float(rng.uniform(0.95, 1.05)) for _ in steps]
    for n in (10, 11, 12):
        job[steps.index(n)] = 45.0 + n
    kept, (ep,) = find(_ranks(steps, job))
    assert ep.steps == (10, 11, 12) and 55 <= ep.low_ms <= ep.high_ms <= 58 and 2.5 < ep.factor < 3.0
    assert all([n for n, _ in v] == [6, 7, 8, 9, 13, 14, 15, 16, 17] for v in kept.values())
    with_it = variation_pct([ms for _n, ms in _ranks(steps, job)[0]])
    left = noise([[20.0] * 6], [[ms for _n, ms in v] for v in kept.values()])
    assert with_it is not None and with_it > 40 and left.unprofiled_pct is not None and left.unprofiled_pct < 5


def test_no_episode_in_noise_alone():
    """Lognormal steps (sd 15%) with a Pareto tail now and then, 12 steps, 300 seeded runs: at most 1 is called an
    episode (``changepoint.size_episode``'s own false-positive rate: at most 1 in 400 at 12 steps)."""
    found = 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        job = (20.0 * rng.lognormal(0.0, 0.15, 12) * np.where(rng.random(12) < 0.1, 1 + rng.pareto(3.0, 12), 1.0))
        found += bool(find(_ranks(list(range(4, 16)), job.tolist(), seed=seed))[1])
    assert found <= 1, found


def test_no_episode_across_the_profiled_steps():
    """Steps 6-9 ran before the profiler and 15-22 after it (10-14 profiled or just after): slow steps 8, 9 and 15
    follow each other in the series but are no run of steps, so no episode; 16-18 are one."""
    steps = [6, 7, 8, 9, 15, 16, 17, 18, 19, 20, 21, 22]
    job = [20.0] * len(steps)
    for n in (8, 9, 15):
        job[steps.index(n)] = 50.0
    assert find(_ranks(steps, job))[1] == ()
    job = [20.0] * len(steps)
    for n in (16, 17, 18):
        job[steps.index(n)] = 50.0
    assert [e.steps for e in find(_ranks(steps, job))[1]] == [(16, 17, 18)]


def test_a_rank_without_those_steps_keeps_its_own():
    """Episodes are searched at the steps every rank timed; a rank's other steps stay."""
    out = _ranks(list(range(6, 18)), [20.0] * 3 + [60.0] * 3 + [20.0] * 6)
    out[1] = out[1] + [(18, 21.0)]
    kept, (ep,) = find(out)
    assert ep.steps == (9, 10, 11) and (18, 21.0) in kept[1]


def test_the_warning_names_the_episode_and_what_the_trace_cannot_say():
    """Quiet otherwise: the warning is the episode's, with the step numbers, and says the trace did not record
    them; a disturbed run's warning carries it too."""
    ep = Episode(steps=(20, 21, 22), low_ms=40.0, high_ms=47.0, factor=2.0)
    (w,) = noise_warning(Noise(unprofiled_pct=3.0, steps_unprofiled=9, episodes=(ep,)), [])
    assert w.startswith("slow steps outside the profiler, left out of the run's noise: steps 20-22 (40-47 ms, 2.0x")
    assert "which the trace did not record" in w and "which rank" in w
    loud = Noise(unprofiled_pct=30.0, steps_unprofiled=9, episodes=(ep,), other_load_pct=40.0)
    assert "steps 20-22" in loud.describe()
    assert noise_warning(Noise(unprofiled_pct=3.0, steps_unprofiled=9), []) == ()


def test_an_episode_as_long_as_half_the_other_steps_is_the_runs_noise():
    """7 steps outside the profiler, 3 of them slow (a shared host's run, an outside tester's folder): what would be
    left, 4 steps, would understate the run's noise; nothing is left out.  With 9 others, the 3 are an episode."""
    assert find(_ranks(list(range(6, 13)), [10.0, 11.0, 16.0, 21.0, 27.0, 12.0, 10.5]))[1] == ()
    job = [10.0, 11.0, 10.5, 10.2, 16.0, 21.0, 27.0, 11.5, 10.8, 10.1, 11.2, 10.4]
    assert [e.steps for e in find(_ranks(list(range(6, 18)), job))[1]] == [(10, 11, 12)]
