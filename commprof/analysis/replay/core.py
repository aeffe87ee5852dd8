"""What every what-if replay shares.

- Calibration: a replay walks one step from the traced run's own (profiled) times; the profiler slows the
  compute side, so the replay is calibrated by one factor on compute-side times, found by bisection, that makes
  the replay of the traced settings give the step time measured outside the profiler.
- The calibration's reach (``gain``): the factor inherits the error of the step it was calibrated on, and a
  prediction carries that error amplified by how much more its step rests on compute-side times than the traced
  step does: gain = (T / P) x (dP/ds) / (dT/ds), T the traced settings' replayed step, P the prediction, both
  calibrated, their slopes over ``s`` x (1 +- ``SLOPE_EPS``).  A step that is mostly wire time calibrates compute
  loosely, and a prediction that is mostly compute (PowerSGD, gradient accumulation) inherits that: gains of 3.7-5.1
  were measured on the 500 Mbit/s netns job, about 1 for its bucket and fp16 what-ifs.
- The link model: t = α + bytes/β, the run's own fit (``analysis/bandwidth.py``) for the collective's family and
  the group of the whole world; of several fits (process groups), the one with the most points.  Every replay
  and the advice built on it use this one choice.
- The median step: of an ordered set of steps, the lower middle one (the headline's step: ``overlap``).
- A prediction's error on the traced run, and the thresholds of advice: a change is advised only where it gains
  at least ``MIN_GAIN`` of the step, and at least the model's own error on the traced run; a model that misses
  the traced run by more than ``TOLERANCE_PCT`` gives what-ifs without advice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ... import ops
from ..bandwidth import Bandwidth

MIN_GAIN = 0.05  # the least share of the step a change must gain to be advised
TOLERANCE_PCT = 10.0  # the replay of the traced settings must land this close to the traced run to advise
SCALE_RANGE = (0.05, 4.0)  # the calibration factor is searched in this range
SLOPE_EPS = 0.05  # the calibration factor's relative step for a prediction's slope (``gain``)

T = TypeVar("T")


def calibrate(step_ns_at: Callable[[float], float], target_ns: float | None, *, iterations: int = 60) -> float:
    """The factor ``s`` on compute-side times for which ``step_ns_at(s)`` (the traced settings' replayed step,
    increasing in ``s``) equals ``target_ns``; 1.0 without a target, the range's end where it is out of reach."""
    if not target_ns:
        return 1.0
    lo, hi = SCALE_RANGE
    if step_ns_at(lo) > target_ns:
        return lo
    if step_ns_at(hi) < target_ns:
        return hi
    for _ in range(iterations):
        mid = (lo + hi) / 2
        if step_ns_at(mid) < target_ns:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def slope(step_ns_at: Callable[[float], float]) -> float:
    """How far a calibrated prediction moves when every compute-side time moves by ``SLOPE_EPS`` either way:
    ``step_ns_at(f)`` predicts with the calibrated factor(s) times ``f``."""
    return step_ns_at(1.0 + SLOPE_EPS) - step_ns_at(1.0 - SLOPE_EPS)


def gain(predicted_ns: float, predicted_slope_ns: float, traced_ns: float, traced_slope_ns: float) -> float:
    """How many times the calibration target's relative error a prediction carries (the module's docstring): 1 for
    the traced settings themselves; 0 where the traced step does not move with the factor (nothing calibrated)."""
    if predicted_ns <= 0 or traced_slope_ns <= 0:
        return 0.0
    return max(traced_ns / predicted_ns * predicted_slope_ns / traced_slope_ns, 0.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkFit:
    """The link model a replay uses for one collective family: t = alpha_s + bytes / beta_bps."""

    alpha_s: float
    beta_bps: float
    alpha_assumed: bool  # α was not measured (too few message sizes): a default stands in

    def time_ns(self, nbytes: float) -> float:
        return (self.alpha_s + nbytes / self.beta_bps) * 1e9


def link_fit(bw: Bandwidth, family: str, world: int) -> LinkFit | None:
    """The run's own α-β fit for ``family`` (``ops.ALL_REDUCE``, ...) over groups of ``world`` ranks: the one with
    the most points; None where the run has none."""
    fits = [f for f in bw.fits if ops.family(f.op) == family and f.group_size == world and f.beta_gbps]
    if not fits:
        return None
    f = max(fits, key=lambda f: f.points)
    return LinkFit(alpha_s=(f.alpha_us or 0.0) / 1e6, beta_bps=float(f.beta_gbps or 0.0) * 1e9,
                   alpha_assumed=f.alpha_assumed)


def median_of(items: Sequence[T], key: Callable[[T], float]) -> T:
    """The median item by ``key``: the lower middle one for an even count (the headline's median step)."""
    return sorted(items, key=key)[(len(items) - 1) // 2]


def error_pct(model: float, measured: float) -> float:
    """How far a prediction lands from the measured value, in % of it (0 without a measurement)."""
    return 100.0 * (model - measured) / measured if measured else 0.0


def required_gain(model_error_pct: float) -> float:
    """The least share of the step a change must gain to be advised: ``MIN_GAIN``, and the model's own error."""
    return max(MIN_GAIN, abs(model_error_pct) / 100)
