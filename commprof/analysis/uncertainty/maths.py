"""Uncertainty: the noise of a traced run and the band of a prediction (the spread of a per-step figure:
``spread``).

Definitions (docs/metrics.md, "Uncertainty"):

- **Noise** of a traced run: the step-to-step variation (coefficient of variation, %, sample standard deviation /
  mean) of its profiled steps and of its steps outside the profiler (the sidecar's wall times), and the
  disagreement between ranks of the operation costs the replays use (PowerSGD's products); each series without its
  one-off stalls (``spread``'s outliers) and periodic slow steps (``periodic``), which are named instead
  (``stalls``).  A run whose noise is
  over ``DISTURBED_PCT`` beyond what its count of steps can show by chance (``variation_low_pct``) is *disturbed*:
  the report says so first; its bands widen with the noise whatever the label, which withholds most advice.
- **Band** of a prediction: ``predicted × (1 ± h)`` with
  ``h = sqrt(floor² + model_error² + (Z × noise)² + (Z × calibration × gain)²)`` (all in %):
  ``calibration`` the standard error of the step the replay was calibrated on (the median of the steps outside the
  profiler, ``calibration_pct``: from their variation about the median, ``median_variation_pct``, which a one-off
  slow step the median ignores does not inflate), ``gain`` how many times that error the prediction carries
  (``replay.core.gain``: about 1 where the prediction rests on compute as much as the traced step does, 3.7-5.1
  for a compute-bound prediction calibrated on a step that is mostly wire time); ``floor`` is the replay's own
  error on settings it changes, measured on quiet runs (``MODEL_FLOOR_PCT``); for the traced settings themselves,
  the same job measured again, it is ``Z × √2 × drift`` (``base_floor_pct``: two runs differ by √2 times the
  standard deviation of a run's mean step from run to run, ``RUN_DRIFT_SD_PCT``, the figure compare's verdict
  assumes too; ``Noise.drift_sd_pct``, ``report --drift-pct``), ``model_error`` the replay's error on the traced run,
  and ``Z`` noise deviations.  A prediction resting on the rate probe (PowerSGD's) takes, in place of the
  calibration's term, ``Z × max(sqrt(rates_noise² + (calibration × gain)²), RATES_REPEAT_PCT)``: ``rates_noise``
  the ranks' disagreement on the probed costs, ``RATES_REPEAT_PCT`` the prediction's own variation from run to run,
  which one run cannot see and which was measured with the calibration's variation in it (so the two are not
  added).  On CPU runs one more term, ``other_load``: the share of the ranks' CPUs other work used during the
  steps (``hostload``), steady load that step-to-step variation cannot see.  Where that load disturbed the run
  (over ``OTHER_LOAD_PCT``) and the ranks' **CPU wait** is known (``hostload.cpu_wait``: the share of the time
  the training loop's thread was ready to run that it waited for a CPU), the band's low end takes the larger of the
  two, one-sided: ``low = predicted × (1 - h_rest) × (1 - max(other_load, wait))``, ``h_rest`` the half-width
  without the other load; never above the symmetric low end, the high end unchanged.  A traced run slowed by work
  pinned to one of its cores waits far more than the load averaged over the CPUs reads.  Without other work the
  wait is the ranks' own (their threads on too few cores) and the next run keeps it: it lowers nothing.  The
  benchmarks check how often the measured step falls inside
  (benchmarks/bench_*_netns.py, bench_demo_bands.py, quiet and with a busy process beside the traced run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .episodes import Episode
from .episodes import describe as describe_episodes
from .inputwork import InputFit
from .inputwork import describe as describe_inputs
from .periodic import Periodic, describe_rhythm
from .periodic import describe as describe_periodic
from .spread import robust_sd, spread
from .stalls import Stall
from .stalls import describe as describe_stalls
from .stalls import group as group_stalls

Z = 2.0  # noise deviations a band spans on each side
MODEL_FLOOR_PCT = 8.0  # the replays' error on a changed setting, quiet runs (benchmarks/results/bench_*_netns.txt)
# one run cannot measure how far the same job lands from run to run: the standard deviation of a run's mean step
# around its setting's, assumed.  Measured (benchmarks/results/bench_compare_verdict.txt): 0-9% in six sets of 8-12
# runs of one 2-rank CPU job on a 2-core host; at 5% two runs of one setting were called different in 28 of 330
# pairs by compare (8.5%; 20% at the 1.1% this replaced).  The README demo's traced settings, predicted from one
# traced run and measured in another, missed by -14% to +15% (sd 9% over nine quiet pairs; bench_demo_bands.txt):
# outside a 3% floor in 2 of them.  ``compare --drift-pct`` and ``report --drift-pct`` set it for a platform whose
# drift is known; repeated runs measure it (``repeats``)
RUN_DRIFT_SD_PCT = 5.0
# a compute-bound prediction (PowerSGD's: the hook's work replaces most of the wire time) varies from traced run to
# traced run by more than one run's ranks disagree on the probed costs.  Six quiet traced runs of one job predicted
# its PowerSGD step with a coefficient of variation of 8%, twelve with 6.1%, seven more with 4.4%
# (benchmarks/results/bench_compression_repeat.txt).  Decomposed on those seven: not the probe (its thin products
# add up to 0.7 ms of a 140 ms prediction) but the traced backward (per rank and profiled step 77-104 ms, its
# variation within a run 2-11%, and the prediction takes the slower rank) and the calibration of compute-side times
# against a step that is 85% wire time (its factor 0.86-1.19 between those runs).  One run cannot see that
# variation, whatever its own figures say (the runs with the steadiest backward predicted among the lowest): the
# band spans at least this much of it (docs/advisor.md also names the prediction's bias, 4-15% low that day).  The
# value: the three sets pooled (25 traced runs, their variances weighted by degrees of freedom): 6.2%; a quiet
# PowerSGD band is then about +-15% (it was 8%, from the first six runs alone: +-18%).  Since 2026-12-06 the
# calibration's part is also a term of its own, from the run (``calibration_pct`` x ``replay.core.gain``): it widens
# the band where the steps the replay was calibrated on varied (CI run 48's miss: 3 steps varying by 3.7%); kept,
# as one run's figures do not show the rest (the fresh-memory rate of the probe, 1.3-1.5 GB/s in some runs against
# 1.9-2.0 in most)
RATES_REPEAT_PCT = 6.2
DISTURBED_PCT = 10.0  # step-to-step variation beyond which a traced run is called disturbed
# ... beyond it with this one-sided confidence (the normal quantile of 90%): a variation measured over a few steps is
# itself uncertain (over 6 steps a true 8% reads 5-11%), and the README demo's steps outside the profiler (6-10% in
# most runs) were called disturbed or quiet by that chance alone; the claim is made where the variation's lower
# confidence bound (``variation_low_pct``) is over DISTURBED_PCT
DISTURBED_CONFIDENCE_Z = 1.2816
# other work on the ranks' CPUs beyond which a CPU run is disturbed (a busy process beside two ranks on two
# cores: 30-50%); the share also widens every band by as much: the traced compute was slowed by an unknown part of it
OTHER_LOAD_PCT = 15.0
# the median of the steps outside the profiler (the replays' calibration target) ignores a one-off slow step that the
# steps' variation does not: the netns jobs' traced runs had one, 11-19% slow, in each of 12 runs (step 10, both
# ranks; in one run sampled per thread, gloo's TCP thread ran 100 ms more in it), which put their variation at 4-7%
# where the others varied by 0.5-2% and widened PowerSGD's band to +-25-38% while its prediction moved by 4.7%
# between those runs (benchmarks/results/bench_compression_repeat.txt, 2026-12-06 08:30).  The median's standard
# error takes the variation without the steps over HAMPEL_SDS robust deviations from the median (from
# ROBUST_MIN_STEPS steps: under 5 the median absolute deviation says little)
HAMPEL_SDS = 3.0
ROBUST_MIN_STEPS = 5
def variation_pct(values: Sequence[float]) -> float | None:
    """Coefficient of variation in % (sample standard deviation / mean); None under two values."""
    vals = np.asarray([float(v) for v in values], dtype=np.float64)
    if vals.size < 2 or vals.mean() <= 0:
        return None
    return float(vals.std(ddof=1) / vals.mean() * 100.0)


def variation_low_pct(pct: float, steps: int) -> float:
    """The one-sided lower confidence bound (``DISTURBED_CONFIDENCE_Z``) of a variation ``pct`` measured over
    ``steps`` steps: pct x sqrt(k / chi2(k)), k = steps - 1, chi2 the upper quantile by Wilson and Hilferty's
    approximation (within 2% of the tables from k = 1); ``pct`` itself where the count is unknown (under 2)."""
    k = steps - 1
    if k < 1:
        return pct
    c = 2.0 / (9.0 * k)
    chi2 = k * (1.0 - c + DISTURBED_CONFIDENCE_Z * math.sqrt(c)) ** 3
    return pct * math.sqrt(k / chi2)


@dataclass(frozen=True, slots=True, kw_only=True)
class Noise:
    """How disturbed the traced run was (each figure in %, None where not measured)."""

    profiled_pct: float | None = None  # step-to-step variation of the profiled steps (the most varying rank)
    unprofiled_pct: float | None = None  # the same for the steps outside the profiler (sidecar wall times)
    # ... what their median (the calibration target) varies with: without steps far from it (``median_variation_pct``)
    unprofiled_median_pct: float | None = None
    rates_pct: float | None = None  # ranks' disagreement on the operation costs the replays use
    other_load_pct: float | None = None  # share of the ranks' CPUs other work used during the steps (CPU runs)
    steps_profiled: int = 0
    steps_unprofiled: int = 0
    # one-off stalls left out of the variations above (``spread``'s outliers), one per step with the ranks it
    # showed on: a stall is reported, not averaged into the run's noise
    left_out: tuple[Stall, ...] = ()
    episodes: tuple[Episode, ...] = ()  # slow steps in a row outside the profiler, also left out (``episodes``)
    periodic: tuple[Periodic, ...] = ()  # slow steps that recur every k steps, also left out (``periodic``)
    rhythm: tuple[Periodic, ...] = ()  # ... on every rank alike: the job's rhythm, also left out (``periodic.rhythm``)
    drift_sd_pct: float = RUN_DRIFT_SD_PCT  # a run's mean step from run to run (assumed, not measured: see above)
    cpu_wait_pct: float | None = None  # share of the loop thread's ready time spent waiting for a CPU (CPU runs)
    cpu_wait_rank: int | None = None  # the rank it was measured on (the most waiting)
    # where the steps' input sizes explain their variation (``inputwork``): what they explained and which kinds of
    # steps were moved to one input size (their figures above are then at it; the calibration's stays as they came),
    # and the two variations as the steps came
    inputs: InputFit | None = None
    profiled_raw_pct: float | None = None
    unprofiled_raw_pct: float | None = None

    @property
    def step_pct(self) -> float:
        """The variation a band spans: of the steps outside the profiler (what the predictions are calibrated on
        and what a user measures), else of the profiled steps (which also vary with the profiler's own work)."""
        if self.unprofiled_pct is not None:
            return self.unprofiled_pct
        return self.profiled_pct or 0.0

    @property
    def calibration_variation_pct(self) -> float | None:
        """The variation the calibration's standard error is taken from (``calibration_pct``): about the median
        where there are enough steps for it, else the plain variation of the steps outside the profiler."""
        return self.unprofiled_median_pct if self.unprofiled_median_pct is not None else self.unprofiled_pct

    @property
    def step_count(self) -> int:
        """The steps ``step_pct`` is over (the most kept in one rank's series)."""
        return self.steps_unprofiled if self.unprofiled_pct is not None else self.steps_profiled

    @property
    def disturbed(self) -> bool:
        """Disturbed beyond what its steps can show by chance: their variation's lower confidence bound over
        ``DISTURBED_PCT`` (``variation_low_pct``), operation costs that the ranks measured far apart, or other work
        on the ranks' CPUs over ``OTHER_LOAD_PCT``."""
        return (variation_low_pct(self.step_pct, self.step_count) > DISTURBED_PCT
                or (self.rates_pct or 0.0) > 2 * DISTURBED_PCT or (self.other_load_pct or 0.0) > OTHER_LOAD_PCT)

    def describe(self) -> str:
        parts = []
        fit = self.inputs
        if self.profiled_pct is not None:
            parts.append(f"profiled steps vary by {self.profiled_pct:.1f}%{_one_size(fit, True, self.profiled_raw_pct)}"
                         f" ({self.steps_profiled} steps)")
        if self.unprofiled_pct is not None:
            parts.append(f"steps outside the profiler by {self.unprofiled_pct:.1f}%"
                         f"{_one_size(fit, False, self.unprofiled_raw_pct)} ({self.steps_unprofiled} steps)")
        if fit is not None:
            parts.append(describe_inputs(fit, self.disturbed))
        if self.rates_pct is not None:
            parts.append(f"the ranks' measured operation costs disagree by {self.rates_pct:.0f}%")
        if self.other_load_pct is not None and self.other_load_pct >= 1.0:
            parts.append(f"other work used {self.other_load_pct:.0f}% of the ranks' CPUs")
        if self.cpu_wait_pct is not None and self.cpu_wait_pct >= 1.0:
            who = f"rank {self.cpu_wait_rank}'s" if self.cpu_wait_rank is not None else "a rank's"
            own = (" (other work was light: the job's own threads sharing its cores)"
                   if self.other_load_pct is not None and self.other_load_pct <= OTHER_LOAD_PCT else "")
            parts.append(f"{who} training thread waited for a CPU {self.cpu_wait_pct:.0f}% of the time it was ready "
                         f"to run{own}")
        if self.left_out:
            parts.append("one-off stalls left out: " + describe_stalls(self.left_out))
        if self.episodes:
            parts.append("slow steps outside the profiler left out: " + describe_episodes(self.episodes))
        if self.periodic:
            parts.append("periodic slow steps left out: " + describe_periodic(self.periodic))
        if self.rhythm:
            parts.append("the job's rhythm left out: " + describe_rhythm(self.rhythm))
        return "; ".join(parts) or "no repeated steps to measure its noise"


def _one_size(fit: InputFit | None, profiled: bool, raw_pct: float | None) -> str:
    """' at one input size (23.2% as they came)' where that kind of steps was moved (``inputwork``)."""
    if fit is None or not (fit.profiled if profiled else fit.outside):
        return ""
    return " at one input size" + (f" ({raw_pct:.1f}% as they came)" if raw_pct is not None else "")


def noise(profiled: Sequence[Sequence[float]], unprofiled: Sequence[Sequence[float]],
          rates_pct: float | None = None, other_load_pct: float | None = None, *,
          profiled_ids: Sequence[Sequence[tuple[int, int]]] | None = None,
          unprofiled_ids: Sequence[Sequence[tuple[int, int]]] | None = None,
          drift_sd_pct: float = RUN_DRIFT_SD_PCT, cpu_wait: tuple[int, float] | None = None,
          profiled_alike: Sequence[Sequence[bool]] | None = None) -> Noise:
    """The noise of a run from its ranks' profiled step durations and their steps outside the profiler; ``*_ids``:
    each value's (rank, step number), for the stalls left out (without them: the series' index and position);
    ``drift_sd_pct``: the drift between runs the traced settings' band assumes; ``cpu_wait``: (rank, share) of the
    most waiting rank's CPU wait (``hostload``); ``profiled_alike``: which profiled steps can be stalls
    (``overlap.alike_bytes``, as the headline's)."""
    prof, n_p, left_p = _steady(profiled, profiled_ids, True, profiled_alike)
    unprof, n_u, left_u = _steady(unprofiled, unprofiled_ids, False)
    about_median = [v for v in (median_variation_pct(s) for s in unprofiled) if v is not None]
    return Noise(profiled_pct=max(prof) if prof else None, unprofiled_pct=max(unprof) if unprof else None,
                 unprofiled_median_pct=max(about_median) if about_median else None,
                 rates_pct=rates_pct, other_load_pct=other_load_pct, steps_profiled=n_p, steps_unprofiled=n_u,
                 left_out=group_stalls(left_p + left_u), drift_sd_pct=drift_sd_pct,
                 cpu_wait_pct=cpu_wait[1] if cpu_wait else None, cpu_wait_rank=cpu_wait[0] if cpu_wait else None)


def _steady(series: Sequence[Sequence[float]], ids: Sequence[Sequence[tuple[int, int]]] | None,
            profiled: bool, alike: Sequence[Sequence[bool]] | None = None,
            ) -> tuple[list[float], int, list[tuple[int, int, float, float, bool]]]:
    """Each series' variation with its one-off stalls (``spread``'s outliers, by position) left out, the most steps
    kept in a series, and the stalls: (rank, step, ms, x the median of the series' other steps, profiled)."""
    if ids is not None and [len(x) for x in ids] != [len(x) for x in series]:
        raise ValueError("noise: each step needs its (rank, step) and each (rank, step) its step")
    out: list[float] = []
    kept_most = 0
    found: list[tuple[int, int, float, float, bool]] = []
    for i, vals in enumerate(series):
        sp = spread(vals, [str(j) for j in range(len(vals))], [s for _r, s in ids[i]] if ids is not None else None,
                    alike[i] if alike is not None else None)
        if sp is None:
            continue
        drop = {int(o.label) for o in sp.outliers}
        for j in sorted(drop):
            rank, step = ids[i][j] if ids is not None else (i, j)
            ref = float(np.median([x for k, x in enumerate(vals) if k != j]))
            found.append((rank, step, float(vals[j]), float(vals[j]) / ref if ref > 0 else math.inf, profiled))
        kept = [x for j, x in enumerate(vals) if j not in drop]
        kept_most = max(kept_most, len(kept))
        v = variation_pct(kept)
        if v is not None:
            out.append(v)
    return out, kept_most, found


def disagreement_pct(samples: Sequence[Sequence[float]]) -> float | None:
    """The median, over quantities measured more than once, of each one's variation in %: how far repeated
    measurements of the same operation cost disagree (e.g. two ranks probing the same matrix product)."""
    per = [v for v in (variation_pct(s) for s in samples) if v is not None]
    return float(np.median(per)) if per else None


def half_width_pct(noise_: Noise, model_error_pct: float | None, changed: bool = True,
                   uses_rates: bool = False, gain: float = 0.0) -> float:
    """The band's half-width in % of the prediction (see the module's docstring); ``gain``: how many times the
    calibration target's error the prediction carries (``replay.core.gain``; 0 where the family does not say)."""
    floor = MODEL_FLOOR_PCT if changed else base_floor_pct(noise_.drift_sd_pct)
    calibration = calibration_pct(noise_) * gain
    terms = [floor, model_error_pct or 0.0, Z * noise_.step_pct, noise_.other_load_pct or 0.0]
    if uses_rates:  # RATES_REPEAT_PCT was measured with the calibration's variation in it: not counted twice
        terms.append(Z * max(math.hypot(noise_.rates_pct or 0.0, calibration), RATES_REPEAT_PCT))
    else:
        terms.append(Z * calibration)
    return math.sqrt(sum(t * t for t in terms))


def calibration_pct(noise_: Noise) -> float:
    """The standard error (%) of the step a replay is calibrated on, the median of the steps outside the profiler:
    1.2533 x their variation about the median (``Noise.unprofiled_median_pct``; the plain variation under
    ``ROBUST_MIN_STEPS`` steps) / sqrt(steps); 0 without them (the replay is then not calibrated)."""
    pct = noise_.calibration_variation_pct
    if pct is None or noise_.steps_unprofiled < 2:
        return 0.0
    return 1.2533 * pct / math.sqrt(noise_.steps_unprofiled)


def median_variation_pct(values: Sequence[float]) -> float | None:
    """The variation (%) that the median of ``values`` moves with: their sample variation after leaving out the
    values over ``HAMPEL_SDS`` robust deviations (1.4826 x MAD) from the median, at most a quarter of them
    (Hampel's identifier); None under ``ROBUST_MIN_STEPS`` values (the plain variation stands)."""
    vals = np.asarray([float(v) for v in values], dtype=np.float64)
    if vals.size < ROBUST_MIN_STEPS:
        return None
    med = float(np.median(vals))
    dev = np.abs(vals - med)
    far = np.argsort(dev)[::-1][:vals.size // 4]
    far = far[dev[far] > HAMPEL_SDS * robust_sd(vals, med)]
    return variation_pct(np.delete(vals, far).tolist())


def base_floor_pct(drift_sd_pct: float) -> float:
    """The floor of the traced settings' band: the same job measured in another run lands ``Z`` standard deviations
    of the difference of two runs' means away, each run drifting by ``drift_sd_pct``."""
    return Z * math.sqrt(2.0) * drift_sd_pct


def band(predicted_ms: float, noise_: Noise, model_error_pct: float | None, changed: bool = True,
         uses_rates: bool = False, gain: float = 0.0) -> tuple[float, float]:
    """[low, high] in ms around a predicted step."""
    return around(predicted_ms, half_width_pct(noise_, model_error_pct, changed, uses_rates, gain), noise_)


def around(predicted_ms: float, half_width_pct_: float, noise_: Noise) -> tuple[float, float]:
    """[low, high] of ``predicted_ms × (1 ± h)``, the low end lowered where other work slowed the traced run (the
    module's docstring): the ends of every band built on ``half_width_pct`` (churn's, built otherwise, takes
    ``lower_factor``)."""
    h = half_width_pct_ / 100.0
    low = predicted_ms * max(1.0 - h, 0.0)
    slowed = contention_pct(noise_)
    if slowed is not None:
        load = (noise_.other_load_pct or 0.0) / 100.0
        rest = math.sqrt(max(h * h - load * load, 0.0))
        low = min(low, predicted_ms * max(1.0 - rest, 0.0) * (1.0 - slowed / 100.0))
    return low, predicted_ms * (1.0 + h)


def contention_pct(noise_: Noise | None) -> float | None:
    """How much faster than traced the job may run without the other work beside it (%): the larger of that work's
    share of the CPUs and the loop thread's wait, where the work disturbed the run and the wait is known; else
    None (the wait, if any, is the ranks' own)."""
    if noise_ is None or noise_.cpu_wait_pct is None or (noise_.other_load_pct or 0.0) <= OTHER_LOAD_PCT:
        return None
    return min(max(noise_.cpu_wait_pct, noise_.other_load_pct or 0.0), 100.0)


def lower_factor(noise_: Noise | None) -> float:
    """What a band's low end keeps of ``contention_pct`` (1 where it does not apply), for bands built otherwise."""
    c = contention_pct(noise_)
    return 1.0 if c is None else 1.0 - c / 100.0


def below(range_ms: tuple[float, float] | None, current_ms: float | None) -> bool:
    """Advice stands only when its whole band lies below the step as it is now."""
    return range_ms is None or current_ms is None or range_ms[1] < current_ms


def fmt_band(predicted_ms: float, range_ms: tuple[float, float] | None) -> str:
    """"184 ms (175-195)"; "264 ms (up to 548)" where the band has no low end (0: a half-width of 100% or more, or
    other work's share of the CPUs that large), as no step takes 0 ms."""
    if range_ms is None:
        return f"{predicted_ms:.1f} ms"
    digits = 0 if predicted_ms >= 100 else 1
    return f"{predicted_ms:.{digits}f} ms ({fmt_range(range_ms, digits)})"


def fmt_range(range_ms: tuple[float, float], digits: int = 1) -> str:
    """"175-195", or "up to 548" where the low end is 0 (``fmt_band``)."""
    if range_ms[0] <= 0.0:
        return f"up to {range_ms[1]:.{digits}f}"
    return f"{range_ms[0]:.{digits}f}-{range_ms[1]:.{digits}f}"
