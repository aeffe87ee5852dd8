"""Step time outside the profiler, from the wall times ``prof.step()`` recorded for every step (sidecar)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..model import Run
from .uncertainty.episodes import Episode
from .uncertainty.episodes import find as find_episodes
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
