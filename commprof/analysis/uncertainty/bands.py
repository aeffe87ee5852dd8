"""Every prediction with its band (``uncertainty.band``), and advice only where the whole band lies below the step
as it is now.  Applied to the DDP advisor, the FSDP advisor and the other advice (pipeline split, DataParallel,
input transfers) after they have predicted; a withdrawn advice item becomes a finding that says why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ...numlist import number_list
from ..section import Advice, Finding, Section
from .episodes import describe as describe_episodes
from .maths import DISTURBED_PCT, Noise, Z, band, below, calibration_pct, fmt_band
from .periodic import describe as describe_periodic
from .periodic import describe_rhythm
from .stalls import describe as describe_stalls

POWERSGD = "powerSGD"
NOT_ADVISED = "Not advised: "
DISTURBED = "the traced run was disturbed"  # how the warning begins (the text report repeats it first)


def uses_rates(knob: str, value: object) -> bool:
    return knob == "comm_hook" and str(value).startswith(POWERSGD)


def banded_advice(advice: Sequence[Advice], noise: Noise, model_error_pct: float | None,
                  now_ms: float | None = None) -> tuple[tuple[Advice, ...], tuple[Finding, ...]]:
    """Each advice item with its band; those whose band reaches the current step become findings.  The current
    step: the advice's baseline (the replay of the traced settings, calibrated to the step outside the profiler
    where the run records it) less the model's over-prediction of the traced run (a replay that over-predicts the
    traced settings must not make room for a gain the run never showed), or ``now_ms`` where that is shorter: the
    step as it is now where the caller knows it apart from the baseline (a replay that cannot reach it).  Not the
    check's measured step, a profiled one on its own scale: where the profiled steps' inputs were smaller than the
    steps outside the profiler (batches of varying length), it put a 111.5 ms step beside predictions calibrated on
    154.3 ms and withheld a 139 ms prediction as reaching it."""
    kept: list[Advice] = []
    dropped: list[Finding] = []
    for a in advice:
        rng = a.predicted_range_ms or band(a.predicted_step_ms, noise, model_error_pct,
                                           uses_rates=uses_rates(a.knob, a.value), gain=a.calibration_gain)
        a = replace(a, predicted_range_ms=rng)
        current = a.baseline_step_ms / (1.0 + max(model_error_pct or 0.0, 0.0) / 100.0)
        if now_ms:
            current = min(current, now_ms)
        if below(rng, current):
            kept.append(a)
        else:
            dropped.append(withheld(a, noise, model_error_pct, current))
    return tuple(kept), tuple(dropped)


AMPLIFIED_GAIN = 1.5  # a prediction resting on the calibrated compute this many times as much as the traced step
NAMED_TERM_PCT = 5.0  # the calibration's part of a band that its text names


def calibration_sentence(gain: float, noise: Noise) -> str:
    """Why a prediction's band is wide where it carries the calibration's error amplified (``replay.core.gain``),
    else ""."""
    term = Z * calibration_pct(noise) * gain
    if gain < AMPLIFIED_GAIN or term < NAMED_TERM_PCT:
        return ""
    return (f" Its band carries ±{term:.0f}% from the calibration: the compute-side times are calibrated on "
            f"the median of {noise.steps_unprofiled} steps outside the profiler that vary about it by "
            f"{noise.calibration_variation_pct or 0.0:.1f}%, and "
            f"this prediction rests on them {gain:.1f} times as much as the traced step does (more steps outside the "
            "profiler narrow it).")


def _which(a: Advice, current_ms: float, model_error_pct: float | None) -> str:
    """Where the current step is not the advice's own baseline, why (a user read "the current step (682.7 ms)"
    beside advice from 686.4 ms and a table's 686.26)."""
    if abs(current_ms - a.baseline_step_ms) < 0.05:
        return ""
    over = max(model_error_pct or 0.0, 0.0)
    if over > 0 and abs(current_ms - a.baseline_step_ms / (1.0 + over / 100.0)) < 0.05:
        return f", the replay's {a.baseline_step_ms:.1f} ms less its over-prediction of the traced run, {over:+.1f}%"
    return f", the step as it is now, under the replay's {a.baseline_step_ms:.1f} ms"


def withheld(a: Advice, noise: Noise, model_error_pct: float | None, current_ms: float) -> Finding:
    err = f"the model's error on the traced run {model_error_pct:+.1f}%; " if model_error_pct is not None else ""
    which = _which(a, current_ms, model_error_pct)
    return Finding("info", f"{NOT_ADVISED}{a.knob} = {a.value} is predicted at "
                           f"{fmt_band(a.predicted_step_ms, a.predicted_range_ms)}, a band that reaches the "
                           f"current step ({current_ms:.1f} ms{which}): the gain is not beyond this "
                           f"run's uncertainty ({err}{noise.describe()})."
                           + calibration_sentence(a.calibration_gain, noise))


def with_bands(s: Section, noise: Noise) -> Section:
    """A family's section with a band on every what-if and advice item that its family did not band itself (the
    model's error from the section's check where it has one); advice whose band reaches the current step
    withheld, with the reason, as a finding."""
    err = s.check.error_pct if s.check is not None else None
    whatifs = tuple(w if w.predicted_range_ms is not None else replace(
        w, predicted_range_ms=band(w.predicted_step_ms, noise, err, uses_rates=uses_rates(w.knob, w.value)))
        for w in s.whatifs)
    # advice its family banded was checked there against its own current step (DDP's accumulation: the step as it is
    # now, no replay; judged again here with the replay's error, a kept item read "Not advised" beside its finding)
    own = tuple(a for a in s.advice if a.predicted_range_ms is not None)
    advice, withheld_ = banded_advice(tuple(a for a in s.advice if a.predicted_range_ms is None), noise, err)
    return replace(s, whatifs=whatifs, advice=own + advice, findings=s.findings + withheld_)


def noise_warning(noise: Noise, sections: Sequence[Section]) -> tuple[str, ...]:
    """The traced run's disturbance, where it matters (where the report predicts anything), else its one-off stalls."""
    predicts = any(s.whatifs or s.advice or any(f.text.startswith(NOT_ADVISED) for f in s.findings)
                   for s in sections)
    change, episode = _change(sections)
    if episode:  # the episode's slow steps are the change, not one-off stalls
        noise = replace(noise, left_out=tuple(s for s in noise.left_out if not (s.profiled and s.step in episode)))
    w = disturbed_warning(noise, change) if predicts else None
    disturbed = w is not None
    outside = [s for s in noise.left_out if not s.profiled]  # profiled ones: named in each rank's step spread
    if w is None and (outside or noise.episodes or noise.periodic or noise.rhythm):  # named (as when disturbed)
        w = "; ".join([*(["one-off stalls outside the profiler, left out of the run's noise: "
                          + describe_stalls(outside)] if outside else []),
                       *([f"slow steps outside the profiler, left out of the run's noise: "
                          f"{describe_episodes(noise.episodes)}"] if noise.episodes else []),
                       *([f"periodic slow steps, left out of the run's noise: {describe_periodic(noise.periodic)}"]
                         if noise.periodic else []),
                       *([f"the job's rhythm, left out of the run's noise: {describe_rhythm(noise.rhythm)}"]
                         if noise.rhythm else [])])
    # a plain trace: a disturbance its profiled steps do not show cannot be told (periodic steps in them or not)
    plain = not disturbed and predicts and noise.other_load_pct is None and noise.steps_unprofiled == 0
    return tuple(x for x in (w, UNMEASURED if plain else None) if x)


UNMEASURED = ("the steps outside the profiler and, on CPU runs, the host's other load are not in these files "
              "(commprof's sidecar records them): a disturbance the profiled steps do not show cannot be told, and "
              "the bands rest on those steps alone (trace with commprof.trace, or pass --step-ms from your training "
              "log)")


def _change(sections: Sequence[Section]) -> tuple[str | None, tuple[int, ...] | None]:
    """The change mid-run the root cause was judged by (``regimes``), said where the run's noise is (a rank slow
    from step 12 on read "profiled steps vary by 49.7%" as if the run were noisy), and an episode's steps (its
    slow steps had read as "one-off stalls" beside it)."""
    crit = next((getattr(s.detail, "critical", None) for s in sections if s.family == "crossrank"), None)
    c = getattr(crit, "cause", None)
    if c is None or c.change is None or c.change_steps is None or c.change_of is None:
        return None, None
    first, last = c.change_steps
    changed = c.changed_steps or tuple(range(first, last + 1))
    when = f"for good at step {first}" if c.change.lasting else f"in steps {number_list(changed, min_run=2)}"
    return (f"{c.change_of[0].lower()}{c.change_of[1:]} changed {when} (see who holds the job back)",
            None if c.change.lasting else changed)


def disturbed_warning(noise: Noise, change: str | None = None) -> str | None:
    """The report's first lines and summary.json's warnings, when the traced run was disturbed; ``change``: a
    change mid-run that the steps' variation holds."""
    if not noise.disturbed:
        return None
    varied = max(noise.profiled_pct or 0.0, noise.unprofiled_pct or 0.0) > DISTURBED_PCT  # not the host's load alone
    why = f"; {change}: part of the steps' variation is that change, not noise" if change and varied else ""
    return (f"{DISTURBED}: {noise.describe()}{why}; predictions carry wide bands and advice inside "
            "them is withheld (trace again on a quieter machine for tighter ones)")
