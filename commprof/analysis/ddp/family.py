"""The DDP family's section: gradient buckets (``buckets``), the advisor's what-ifs and advice (``advice``,
``whatif``), the rules on DDP's settings, and gradient accumulation (``accumulation``: the micro-batches of a step
and the all-reduces ``no_sync()`` would save)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..section import Check, Finding, Section, WhatIf
from ..shared import Shared
from ..uncertainty.bands import NOT_ADVISED, banded_advice
from ..uncertainty.maths import Noise
from .accumulation import Accumulation, assess
from .advice import TOLERANCE_PCT, Advisor, advise
from .buckets import BucketStat, BucketStep, bucket_stats


@dataclass(frozen=True, slots=True, kw_only=True)
class DDPDetail:
    rows: tuple[BucketStep, ...]  # per rank and step: each bucket's ready, launch, done
    buckets: tuple[BucketStat, ...]  # per bucket, the median over ranks and steps
    advisor: Advisor
    accumulation: Accumulation | None = None


EMPTY = DDPDetail(rows=(), buckets=(), advisor=Advisor(advice=(), findings=(), whatifs=(), baseline_step_ms=None,
                                                       model_step_ms=None, profiled_step_ms=None, scale={}))


def section(sh: Shared) -> Section[DDPDetail] | None:
    rows = tuple(b for r in sh.per_rank for b in r.bucket_rows)
    stats = tuple(bucket_stats(list(rows)))
    advisor = advise(sh.run, rows, stats, sh.bandwidth, sh.unprofiled_step_ms, sh.noise)
    kept = {o.rank: tuple(s.step for s in o.kept) for o in sh.overlaps}
    acc = assess(sh.run, kept, sh.unprofiled_step_ms, sh.noise,
                 advisor.check.error_pct if advisor.check is not None else None)
    if not (rows or advisor.findings or advisor.advice or advisor.whatifs or acc):
        return None
    advisor = _with_accumulation(advisor, acc, sh.noise)
    c = advisor.check
    check = None if c is None else Check(rank=c.rank, model_step_ms=c.step_model_ms,
                                         measured_step_ms=c.step_measured_ms, tolerance_pct=TOLERANCE_PCT)
    whatifs = tuple(WhatIf(knob=w.knob, value=w.value, predicted_step_ms=w.step_ms, predicted_exposed_ms=w.exposed_ms,
                           assumed=w.assumed, predicted_range_ms=w.range_ms, with_settings=w.with_settings)
                    for w in advisor.whatifs)
    return Section(family="ddp", detail=DDPDetail(rows=rows, buckets=stats, advisor=advisor, accumulation=acc),
                   findings=advisor.findings, advice=advisor.advice, whatifs=whatifs, check=check)


def _with_accumulation(advisor: Advisor, acc: Accumulation | None, noise: Noise) -> Advisor:
    """The accumulation's finding and advice first; where every micro-batch synchronizes the gradients, the
    replay's own advice (one synchronization per step) withheld until ``no_sync()`` is in place."""
    if acc is None or acc.finding is None:
        return advisor
    if not acc.wasted or acc.advice is None:
        return replace(advisor, findings=(acc.finding,) + advisor.findings)
    held = tuple(Finding("info", f"{NOT_ADVISED}{a.setting()} (predicted {a.predicted_step_ms:.1f} ms): the replay "
                                 f"models one gradient synchronization per step where this run has {acc.per_step}; "
                                 "trace again with no_sync() in place.") for a in advisor.advice)
    kept, withheld = banded_advice([acc.advice], noise, None)
    return replace(advisor, advice=kept, findings=(acc.finding,) + advisor.findings + withheld + held)
