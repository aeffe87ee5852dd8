"""compare's verdict: did the change make the step faster, slower, or nothing the runs can tell apart?

The step-time distributions of both runs: every step the sidecars timed outside the profiler (the same steps as
``unprofiled_step_ms``), on the rank whose median step is the longest (a step lasts as long as its slowest rank);
the profiled steps on both sides where a run has no sidecar or fewer than two such steps (one kind of step on
both sides: the profiler slows the steps it records).  Outlier steps (a one-off stall, ``spread``, judged against
the steps of both runs) are left out and named.  The test is Welch's t on the difference of the means:
delta = mean(after) - mean(before), its 95% confidence interval delta ± h,
h = sqrt((t(0.975, ν) × sqrt(s_a²/n_a + s_b²/n_b))² + (z(0.975) × √2 × d × mean(before))²)
with Welch–Satterthwaite's ν; the second term is the same job's drift between runs, which steps within one run
cannot show: d (``RUN_DRIFT_SD_PCT``, 5%) the standard deviation of a run's mean step from run to run, assumed,
twice over in a difference of two runs.  "faster" when
the whole interval lies below 0, "slower" when above, else "no detectable change" (0 inside the interval).
With repeated runs of either setting the test is on the runs' mean steps instead (``repeats.judge``): their spread
measures the drift between runs that d above only assumes.
With fewer than two steps on a side there is no interval: "no detectable change", and the basis says why.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...model import Run
from ..steptimes import MIN_OUTSIDE, unprofiled_step_values
from .maths import RUN_DRIFT_SD_PCT
from .spread import spread

FASTER, SLOWER, NO_CHANGE = "faster", "slower", "no detectable change"
CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    change: str  # FASTER, SLOWER or NO_CHANGE
    delta_ms: float | None  # mean(after) - mean(before): negative is faster
    ci_ms: tuple[float, float] | None  # 95% interval of delta_ms
    basis: str  # the steps used, the test, the outliers left out
    confidence: float = CONFIDENCE  # of ci_ms
    runs: tuple[int, int] = (1, 1)  # runs of each setting the verdict rests on (before, after)
    drift_sd_pct: float | None = None  # the drift between runs assumed (one run each); None: measured (repeats)


def outside_usable(runs: Sequence[Run]) -> bool:
    """Whether every run's verdict can rest on its steps outside the profiler: each has a rank with at least
    ``MIN_OUTSIDE`` of them (the report's own rule for the step now, ``steptimes.step_now_ms``).  Both sides take the
    same kind of step (the profiled ones are slowed by the profiler), so one run with fewer, or without a sidecar,
    puts every run on its profiled steps."""
    return bool(runs) and all(any(len(v) >= MIN_OUTSIDE for v in unprofiled_step_values(r).values()) for r in runs)


def step_samples(run: Run, wanted: tuple[int, ...] | None = None,
                 outside: bool | None = None) -> tuple[list[float], str]:
    """The run's step times (ms) a verdict rests on, and where they come from: its steps outside the profiler where
    ``outside`` (default: where this run alone has enough, ``outside_usable``), else its profiled steps; on the rank
    whose median step is the longest."""
    timed = unprofiled_step_values(run)
    enough = {r: v for r, v in timed.items() if len(v) >= MIN_OUTSIDE}
    if outside is None:
        outside = bool(enough)
    if outside and enough:
        rank, vals = max(enough.items(), key=lambda kv: float(np.median(kv[1])))
        return list(vals), f"rank {rank}'s {len(vals)} steps outside the profiler (sidecar wall times)"
    per = {rt.rank: [s.duration_ns / 1e6 for s in rt.steps if wanted is None or s.number in wanted]
           for rt in run.ranks}
    per = {r: v for r, v in per.items() if v}
    if not per:
        return [], "no complete step"
    rank, vals = max(per.items(), key=lambda kv: float(np.median(kv[1])))
    why = "" if outside or not timed else " (too few steps outside the profiler on a side)"
    return vals, f"rank {rank}'s {len(vals)} profiled steps{why}"


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom (numerical: the cdf integrated, bisected)."""
    if df <= 0:
        return math.inf
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def cdf(x: float) -> float:  # for x >= 0: 1/2 + the integral of the pdf from 0 to x (Simpson)
        n = 2000
        xs = np.linspace(0.0, x, n + 1)
        ys = c * (1 + xs * xs / df) ** (-(df + 1) / 2)
        h = x / n
        return 0.5 + h / 3 * float(ys[0] + ys[-1] + 4 * ys[1:-1:2].sum() + 2 * ys[2:-1:2].sum())

    lo, hi = 0.0, 1.0
    while cdf(hi) < p and hi < 1e4:
        lo, hi = hi, hi * 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if cdf(mid) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def drift_half_pct(drift_sd_pct: float, confidence: float = CONFIDENCE) -> float:
    """What a drift of ``drift_sd_pct`` per run makes of the difference of two runs at ``confidence``, in % of the
    step: z x sqrt(2) x the drift.  Alone, the smallest change one run per side can tell."""
    return statistics.NormalDist().inv_cdf(1 - (1 - confidence) / 2) * math.sqrt(2.0) * drift_sd_pct


def welch(before: Sequence[float], after: Sequence[float], drift_sd_pct: float = 0.0,
          confidence: float = CONFIDENCE) -> tuple[float, tuple[float, float] | None]:
    """mean(after) - mean(before) and its CONFIDENCE interval (None under two values on a side).  ``drift_sd_pct``
    (of BEFORE's mean) is the standard deviation of a run's mean step around its setting's, from run to run: what
    steps within one run cannot show; two runs differ by it twice over, so z x sqrt(2) of it joins in quadrature."""
    b, a = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    delta = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return delta, None
    va, vb = float(a.var(ddof=1)) / a.size, float(b.var(ddof=1)) / b.size
    se = math.sqrt(va + vb)
    half = 0.0
    if se > 0:
        df = (va + vb) ** 2 / ((va * va / (a.size - 1) if va else 0.0) + (vb * vb / (b.size - 1) if vb else 0.0))
        half = t_quantile(1 - (1 - confidence) / 2, df) * se
    half = math.hypot(half, drift_half_pct(drift_sd_pct, confidence) / 100.0 * float(b.mean()))
    return delta, (delta - half, delta + half)


def _kept(vb: list[float], va: list[float]) -> tuple[list[float], list[float], str]:
    """Both runs' steps less their one-off stalls, judged against the steps of BOTH runs (a step judged against its
    own run alone would drop one run's slow steps while keeping the other's, and make a difference of noise)."""
    (kb,), (ka,), left_out = without_stalls([vb], [va])
    return kb, ka, left_out


def without_stalls(sb: list[list[float]],
                   sa: list[list[float]]) -> tuple[list[list[float]], list[list[float]], str]:
    """Each run's steps (BEFORE's runs ``sb``, AFTER's ``sa``) less the one-off stalls (``spread``), each
    judged against the other steps of its own run, and the sentence naming those left out ("" where none).  Judged
    against both settings' steps together, a change that slows a third of AFTER's steps read as AFTER's stalls
    (HTA's trace_diff pair: 166 ms steps beside BEFORE's 81 ms median, left out, and +60% called no change)."""
    single = len(sb) == len(sa) == 1  # one run each: "before #3"; else "before run 2 #3"

    def label(side: str, i: int, k: int) -> str:
        return f"{side} #{k}" if single else f"{side} run {i + 1} #{k}"

    left: list[tuple[str, float, str]] = []

    def keep(side: str, runs: list[list[float]]) -> list[list[float]]:
        kept = []
        for i, v in enumerate(runs):
            s = spread(v, [label(side, i, k) for k in range(len(v))])
            out = {lab for lab, _v, _why in s.outliers} if s is not None else set()
            left.extend(o for o in (s.outliers if s is not None else ()))
            kept.append([x for k, x in enumerate(v) if label(side, i, k) not in out])
        return kept

    kb, ka = keep("before", sb), keep("after", sa)
    if not left:
        return sb, sa, ""
    named = "; ".join(f"{lab} {v:.1f} ms ({why})" for lab, v, why in left)
    return kb, ka, f" Left out {len(left)} outlier step(s), each against its own run's other steps: {named}."


def verdict(before: Run, after: Run, wanted_before: tuple[int, ...] | None = None,
            wanted_after: tuple[int, ...] | None = None, confidence: float = CONFIDENCE,
            drift_sd_pct: float = RUN_DRIFT_SD_PCT) -> Verdict:
    """One run each (repeated runs of either setting: ``repeats.judge``)."""
    outside = outside_usable([before, after])
    vb, src_b = step_samples(before, wanted_before, outside)
    va, src_a = step_samples(after, wanted_after, outside)
    if not vb or not va:
        return Verdict(change=NO_CHANGE, delta_ms=None, ci_ms=None,
                       basis=f"no step times to compare (before: {src_b}; after: {src_a})", confidence=confidence,
                       drift_sd_pct=drift_sd_pct)
    vb, va, left_out = _kept(vb, va)
    delta, ci = welch(vb, va, drift_sd_pct, confidence)
    basis = (f"Welch's t on the mean step, {confidence * 100:g}% interval, widened by an assumed drift of the same "
             f"job between runs (a standard deviation of {drift_sd_pct:g}% of the step from run to run: one run per "
             "side cannot measure it, docs/compare.md; compare repeated runs of each setting to measure it); "
             f"before: {src_b}, after: {src_a}." + left_out)
    if ci is None:
        return Verdict(change=NO_CHANGE, delta_ms=delta, ci_ms=None, confidence=confidence, drift_sd_pct=drift_sd_pct,
                       basis=basis + " Fewer than two steps on a side: no interval, no verdict.")
    change = FASTER if ci[1] < 0 else SLOWER if ci[0] > 0 else NO_CHANGE
    return Verdict(change=change, delta_ms=delta, ci_ms=ci, basis=basis, confidence=confidence,
                   drift_sd_pct=drift_sd_pct)
