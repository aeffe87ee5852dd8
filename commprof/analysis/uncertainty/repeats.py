"""compare's verdict on repeated runs of each setting: the drift between runs measured, not assumed.

One run per side cannot tell a change from the same job landing differently from run to run (its threads placed
otherwise, its memory laid out otherwise: on a 2-core host the mean step of one small CPU job moved by 4-9% between
runs, while its steps within a run agreed within 2-3%, docs/compare.md).  With several runs of a setting, each
run's mean step is one observation of it, and their spread holds both the steps' own noise and that drift.

The test: each run's steps (``verdict.step_samples``), less the one-off stalls judged against its own other steps
(``verdict.without_stalls``, as for one run each); each run's mean; delta = mean of AFTER's run means - mean of
BEFORE's; its interval delta ± t(confidence, ν) × s × sqrt(1/n_b + 1/n_a), s² the pooled variance of the run means
around their side's mean, ν = n_b + n_a - 2 (a side with one run adds no degree of freedom: the other side's spread
stands for both).
Under three runs in all there is no spread to measure: "no detectable change", the basis says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ...model import Run
from .maths import RUN_DRIFT_SD_PCT
from .verdict import (
    CONFIDENCE,
    FASTER,
    NO_CHANGE,
    SLOWER,
    Verdict,
    outside_usable,
    step_samples,
    t_quantile,
    verdict,
    without_stalls,
)


def judge(before: Sequence[Run], after: Sequence[Run], wanted_before: tuple[int, ...] | None = None,
          wanted_after: tuple[int, ...] | None = None, confidence: float = CONFIDENCE,
          drift_sd_pct: float = RUN_DRIFT_SD_PCT) -> Verdict:
    """compare's verdict: ``verdict.verdict`` on one run each (``drift_sd_pct`` assumed), ``run_level`` where either
    setting was repeated (the drift measured)."""
    if len(before) == 1 and len(after) == 1:
        return verdict(before[0], after[0], wanted_before, wanted_after, confidence, drift_sd_pct)
    return run_level(before, after, wanted_before, wanted_after, confidence)


def run_level(before: Sequence[Run], after: Sequence[Run], wanted_before: tuple[int, ...] | None,
              wanted_after: tuple[int, ...] | None, confidence: float) -> Verdict:
    outside = outside_usable([*before, *after])
    sb = [step_samples(r, wanted_before, outside)[0] for r in before]
    sa = [step_samples(r, wanted_after, outside)[0] for r in after]
    sb, sa = [v for v in sb if v], [v for v in sa if v]
    runs = (len(sb), len(sa))
    if not sb or not sa:
        return Verdict(change=NO_CHANGE, delta_ms=None, ci_ms=None, confidence=confidence, runs=runs,
                       basis=f"no step times to compare ({runs[0]} runs before, {runs[1]} after with steps)")
    mb, ma, left_out = _run_means(sb, sa)
    delta = float(np.mean(ma) - np.mean(mb))
    df = len(mb) + len(ma) - 2
    steps = ("each run's steps outside the profiler (sidecar wall times)." if outside else
             "each run's profiled steps (a run without two steps outside the profiler puts all on them).")
    basis = (f"t on the runs' mean steps ({len(mb)} runs before, {len(ma)} after: their spread measures the drift "
             f"between runs), {confidence * 100:g}% interval; {steps}{left_out}")
    if df < 1 or (len(mb) < 2 and len(ma) < 2):
        return Verdict(change=NO_CHANGE, delta_ms=delta, ci_ms=None, confidence=confidence, runs=runs,
                       basis=basis + " Fewer than three runs in all: no spread between runs, no verdict.")
    ss = float(np.sum((np.asarray(mb) - np.mean(mb)) ** 2) + np.sum((np.asarray(ma) - np.mean(ma)) ** 2))
    s = math.sqrt(ss / df)
    half = t_quantile(1 - (1 - confidence) / 2, df) * s * math.sqrt(1 / len(mb) + 1 / len(ma))
    ci = (delta - half, delta + half)
    change = FASTER if ci[1] < 0 else SLOWER if ci[0] > 0 else NO_CHANGE
    return Verdict(change=change, delta_ms=delta, ci_ms=ci, basis=basis, confidence=confidence, runs=runs)


def _run_means(sb: list[list[float]], sa: list[list[float]]) -> tuple[list[float], list[float], str]:
    """Each run's mean step less its one-off stalls (``verdict.without_stalls``), and the sentence naming those left
    out (a run whose every step was left out keeps them all)."""
    kb, ka, left_out = without_stalls(sb, sa)
    return ([float(np.mean(k or v)) for k, v in zip(kb, sb, strict=True)],
            [float(np.mean(k or v)) for k, v in zip(ka, sa, strict=True)], left_out)
