"""The profiler's slowdown of the compute in the step the FSDP2 -> DDP what-if replays (``fsdp2ddp``), with where it
came from and its own uncertainty.

- **The pass replayed** (``replayed_step``): the profiled one nearest the step outside the profiler (a pass's
  share), else nearest the profiled mean.  With profile_memory=True on gloo the profiler lengthened two of three
  profiled steps 2-3x in some runs (the thread ran 333 and 230 ms, else 114-128): the one nearest their mean was one
  of those.
- **The factor** (``choose_scale``): on CPU, where the sidecar has the scheduler's account, the training thread's
  median run time per step outside the profiler over its run time in that pass (``thread_scale``, source
  ``thread``); a ratio under ``MIN_THREAD_SCALE`` means the profiler's work lay outside the operators the replay
  times (threads 2-3.4x longer, the operators 1.35x): the compute is replayed as traced (``unscaled``).  Else the
  step's ratio, the step as it is now over the profiled pass: the step outside the profiler (``step``: waits count
  in it), the step the user gave (``given``), or, on a plain trace, the mean profiled step (``profiled``: no
  slowdown measured, the pass brought to the mean of the steps traced); else 1 (``none``).
- **Its standard error** (``sd_pct``, %): the thread's: that of the median of the n steps outside, each varying as
  their run times do (``cv``, robust): ``cv * sqrt((pi / 2) / n)`` (the profiled step's own variation cancels: the
  factor and the times it scales come from that same step); the step's: the standard error of the step outside
  the profiler (``uncertainty.maths.calibration_pct``; the profiled pass's own variation is the band's noise term
  already); none otherwise.  The band takes ``Z`` of it (``fsdp2ddp.band``).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from ...model import RankTrace
from ..fsdp.advice import nearest_mean
from ..fsdp.units import StepUnits
from ..steptimes import GIVEN, MIN_OUTSIDE, OUTSIDE, PROFILED
from ..uncertainty.maths import Noise, calibration_pct, median_variation_pct, variation_pct

MAX_THREAD_SCALE = 1.05  # a thread ratio above it is not the profiler's slowdown (``thread_scale``)
MIN_THREAD_SCALE = 0.8  # below it the profiler's work on the thread lies outside the operators (docs/memory.md)
THREAD, STEP, UNSCALED, NONE = "thread", "step", "unscaled", "none"  # ``ComputeScale.source``, and:
_STEP_SOURCES = {OUTSIDE: STEP, GIVEN: "given", PROFILED: "profiled"}  # by ``steptimes.step_now_ms``'s basis


@dataclass(frozen=True, slots=True)
class ComputeScale:
    """The factor on the replayed pass's compute-side times, where it came from, and its standard error (%)."""

    factor: float
    source: str  # THREAD, STEP, "given", "profiled", UNSCALED or NONE
    sd_pct: float = 0.0
    thread_ratio: float | None = None  # UNSCALED: the thread's ratio left unapplied (under ``MIN_THREAD_SCALE``)


def _outside_runs(rt: RankTrace, outside: Collection[int]) -> list[int]:
    if rt.sidecar is None:
        return []
    return [s.sched_run_ns for s in rt.sidecar.step_times if s.number in outside and not s.profiled and s.sched_run_ns]


def thread_scale(rt: RankTrace, step: StepUnits, outside: Collection[int]) -> float | None:
    """The profiler's slowdown of a CPU rank's compute in ``step`` (the one replayed): the training thread's median
    run time (the scheduler's account, ``capture.hostload``) over the ``outside`` steps (``steptimes.
    unprofiled_steps``: not the first, nor one right after the profiler or during an export) over its run time in
    that step; None on a GPU, without the account, with fewer than ``MIN_OUTSIDE`` such steps, or above
    ``MAX_THREAD_SCALE`` (the profiler does not speed a thread up).  The step's own ratio puts waits into it: a
    profiled MLP step of 323 ms whose thread ran 125 ms, as in every step, gave 0.77 where the thread gave 0.96."""
    if rt.device_kind != "cpu" or rt.sidecar is None:
        return None
    runs = _outside_runs(rt, outside)
    mid = (step.start_ns + step.end_ns) // 2
    own = next((s.sched_run_ns for s in rt.sidecar.step_times
                if s.profiled and s.sched_run_ns and s.start_ns <= mid <= s.end_ns), None)
    if len(runs) < MIN_OUTSIDE or not own:
        return None
    ratio = float(np.median(runs)) / own  # whole steps on both sides: a step's passes cancel
    return ratio if ratio <= MAX_THREAD_SCALE else None


def thread_sd_pct(rt: RankTrace, outside: Collection[int]) -> float:
    """The thread scale's standard error (%), from the outside steps' run times (see the module's docstring)."""
    runs = _outside_runs(rt, outside)
    cv = median_variation_pct(runs)
    if cv is None:
        cv = variation_pct(runs)
    return (cv or 0.0) * math.sqrt((math.pi / 2.0) / len(runs)) if runs else 0.0


def choose_scale(thread: float | None, step: float | None, thread_sd: float = 0.0, noise: Noise | None = None,
                 basis: str = OUTSIDE) -> ComputeScale:
    """The factor (see the module's docstring): the thread's ratio (``thread_sd``: its standard error), else the
    step's (``basis``: where the step now came from; outside the profiler, its error from ``noise``), else 1."""
    if thread is not None and thread < MIN_THREAD_SCALE:
        return ComputeScale(1.0, UNSCALED, thread_ratio=thread)
    if thread is not None:
        return ComputeScale(thread, THREAD, thread_sd)
    if step:
        sd = calibration_pct(noise) if basis == OUTSIDE and noise is not None else 0.0
        return ComputeScale(step, _STEP_SOURCES.get(basis, basis), sd)
    return ComputeScale(1.0, NONE)


def replayed_step(steps: list[StepUnits], now_ms: float | None) -> StepUnits:
    """The profiled pass the what-if replays: the one nearest the step now (a pass's share; the earlier on a tie),
    else nearest the profiled mean (see the module's docstring)."""
    if not now_ms:
        return nearest_mean(steps)
    return min(steps, key=lambda s: (abs(s.end_ns - s.start_ns - now_ms * 1e6 / s.passes), s.start_ns))
