"""Step time outside the profiler, from the wall times ``prof.step()`` recorded for every step (sidecar)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..model import Run
from .uncertainty.episodes import Episode
from .uncertainty.episodes import find as find_episodes
from .uncertainty.inputwork import rank_z
from .uncertainty.periodic import Periodic


def unprofiled_step_values(run: Run) -> dict[int, list[float]]:
    """Per rank: the wall times (ms) of its steps outside the profiler (``unprofiled_steps`` without the step
    numbers)."""
    return {r: [ms for _n, ms in v] for r, v in unprofiled_steps(run).items()}


def unprofiled_steps(run: Run) -> dict[int, list[tuple[int, float]]]:
    """Per rank: its steps outside the profiler, (step number, wall time in ms); ranks without a sidecar are absent.

    Skipped: the first step (start-up: allocator warm-up, lazy init), the step right after a profiled one, and any
    step during which some rank was exporting its trace (its peers wait in their collectives meanwhile: with
    profile_memory, exports last several steps) — unless nothing else is left."""
    out: dict[int, list[tuple[int, float]]] = {}
    # every rank's exports, in Unix time (each sidecar's times are on its own rank's trace clock)
    exports = [(rt.base_time_ns + a, rt.base_time_ns + b) for rt in run.ranks if rt.sidecar is not None
               for a, b in rt.sidecar.exports]
    for rt in run.ranks:
        if rt.sidecar is None:
            continue
        times = sorted(rt.sidecar.step_times, key=lambda s: s.number)
        base = rt.base_time_ns
        vals = [(s.number, s.end_ns - s.start_ns) for i, s in enumerate(times)
                if not s.profiled and i > 0 and not times[i - 1].profiled
                and not any(a < base + s.end_ns and base + s.start_ns < b for a, b in exports)]
        if not vals:
            vals = [(s.number, s.end_ns - s.start_ns) for s in times if not s.profiled]
        if vals:
            out[rt.rank] = [(n, v / 1e6) for n, v in vals]
    return out


def unprofiled_step_ms(run: Run) -> dict[int, float]:
    """Per rank: the median wall time of its steps outside the profiler, in ms (``unprofiled_step_values``)."""
    return {r: float(np.median(v)) for r, v in unprofiled_step_values(run).items()}


MIN_OUTSIDE = 2  # steps outside the profiler a rank needs for their median to stand for its step


OUTSIDE, GIVEN, PROFILED = "outside the profiler", "given", "the mean profiled step"


def step_now_ms(run: Run, profiled_mean_ms: Mapping[int, float], given_ms: float | None = None,
                episodes: tuple[Episode, ...] | None = None,
                periodic: tuple[Periodic, ...] = ()) -> tuple[dict[int, float], dict[int, str]]:
    """Per rank: the step as it is now, the one figure every family calibrates its replays on and measures its advice
    against (each prediction's baseline, "the current step"), and where it comes from: the median of its steps
    outside the profiler where its sidecar timed ``MIN_OUTSIDE`` or more (``OUTSIDE``: the profiler slows the steps
    it records), else ``given_ms`` (``GIVEN``: the user's ``step_ms``, from a training log), else the mean of its
    analyzed profiled steps (``PROFILED``: the headline figure, outlier steps left out), so that no report names two
    current steps.  A single step outside the profiler (a run of 12 steps profiled 2-11) is one sample of the noise,
    not the step.  ``episodes``: the slow episodes the run's noise left out, where the caller has them (else found
    here); ``periodic``: its periodic slow steps, left out as well (named on their own, ``uncertainty.periodic``)
    where ``MIN_OUTSIDE`` steps are left."""
    timed = unprofiled_steps(run)
    if episodes is None:  # a slow episode's steps are no more the step now than they are the run's noise
        episodes = find_episodes(timed)[1]
    gone = {n for e in episodes for n in e.steps}
    recur = {rn for p in periodic for rn in p.left_out}
    outside = {r: [ms for n, ms in v if n not in gone and (r, n) not in recur] for r, v in timed.items()}
    outside = {r: v if len(v) >= MIN_OUTSIDE else [ms for n, ms in timed[r] if n not in gone]  # too few left: all
               for r, v in outside.items()}
    out: dict[int, float] = {}
    basis: dict[int, str] = {}
    for rt in run.ranks:
        vals = outside.get(rt.rank, [])
        if len(vals) >= MIN_OUTSIDE:
            out[rt.rank], basis[rt.rank] = float(np.median(vals)), OUTSIDE
        elif given_ms is not None:
            out[rt.rank], basis[rt.rank] = float(given_ms), GIVEN
        elif rt.rank in profiled_mean_ms:
            out[rt.rank], basis[rt.rank] = float(profiled_mean_ms[rt.rank]), PROFILED
    return out, basis


PROFILER_SLOWED = "the profiler slowed the traced steps"  # how the warning begins (the text report repeats it first)
SLOWED_FACTOR = 1.25  # the profiled steps' median over the step now beyond which the profiler slowed them
SLOWED_MOST = 1.10  # ... and their lower quartile over it by this much (most profiled steps, not a few)
LENGTHENED = 1.25  # the last third of the profiled steps over the first third: they lengthened as it recorded
TREND_STEPS = 6  # profiled steps a trend needs
TREND_Z = 2.326  # ... beyond chance (Kendall's test of the steps' order, one-sided 1%)


def profiler_cost(run: Run, now: Mapping[int, float], basis: Mapping[int, str], wanted: tuple[int, ...] | None,
                  periodic: tuple[Periodic, ...] = ()) -> str | None:
    """Where the profiler slowed the steps it recorded well beyond the job's own (the median of each rank's analyzed
    profiled steps, its periodic ones aside, ``SLOWED_FACTOR`` over its step outside the profiler, their lower
    quartile ``SLOWED_MOST`` over it; the median rank told), a warning: the trace's times are the slowed steps',
    and what rests on the steps outside the profiler.  Where those steps lengthened as it recorded (Kendall's test
    of their order, their last third ``LENGTHENED`` over their first), a shorter window holds less of the cost.
    Measured: a 2-rank gloo DDP transformer with record_shapes (commprof's default) ran 205 ms in its first
    profiled step and 399 ms in its eighth, 165 ms outside the profiler, and nothing said so."""
    recur = {rn for p in periodic for rn in p.left_out}
    rows = []
    for rt in run.ranks:
        durs = [s.duration_ns / 1e6 for s in rt.steps
                if (wanted is None or s.number in wanted) and (rt.rank, s.number) not in recur]
        if basis.get(rt.rank) != OUTSIDE or not durs or now.get(rt.rank, 0.0) <= 0:
            continue
        factor, low = float(np.median(durs)) / now[rt.rank], float(np.quantile(durs, 0.25)) / now[rt.rank]
        if factor >= SLOWED_FACTOR and low >= SLOWED_MOST:
            rows.append((factor, rt.rank, durs))
    if not rows or 2 * len(rows) <= len([r for r in basis.values() if r == OUTSIDE]):
        return None  # not on more than half the ranks timed outside the profiler
    factor, rank, durs = sorted(rows)[len(rows) // 2]
    text = (f"{PROFILER_SLOWED} {factor:.1f}x (rank {rank}: their median {float(np.median(durs)):.1f} ms, "
            f"{now[rank]:.1f} ms outside the profiler): the trace's compute and communication times are the slowed "
            f"steps', longer than the job's; the step as it is now and the predictions rest on the steps outside it")
    third = max(len(durs) // 3, 1)
    first, last = float(np.median(durs[:third])), float(np.median(durs[-third:]))
    if len(durs) >= TREND_STEPS and last >= LENGTHENED * first and \
            rank_z(np.arange(len(durs), dtype=float), np.asarray(durs)) >= TREND_Z:
        text += (f"; they lengthened as it recorded ({durs[0]:.0f} ms in the first analyzed step, {durs[-1]:.0f} ms "
                 f"in the last): a shorter window (a smaller active=) holds less of that cost")
    return text

