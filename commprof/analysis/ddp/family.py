"""The DDP family's section: gradient buckets (``buckets``), the advisor's what-ifs and advice (``advice``,
``whatif``) and the rules on DDP's settings."""

from __future__ import annotations

from dataclasses import dataclass

from ..section import Check, Section, WhatIf
from ..shared import Shared
from .advice import TOLERANCE_PCT, Advisor, advise
from .buckets import BucketStat, BucketStep, bucket_stats


@dataclass(frozen=True, slots=True, kw_only=True)
class DDPDetail:
    rows: tuple[BucketStep, ...]  # per rank and step: each bucket's ready, launch, done
    buckets: tuple[BucketStat, ...]  # per bucket, the median over ranks and steps
    advisor: Advisor


EMPTY = DDPDetail(rows=(), buckets=(), advisor=Advisor(advice=(), findings=(), whatifs=(), baseline_step_ms=None,
                                                       model_step_ms=None, profiled_step_ms=None, scale={}))


def section(sh: Shared) -> Section[DDPDetail] | None:
    rows = tuple(b for r in sh.per_rank for b in r.bucket_rows)
    stats = tuple(bucket_stats(list(rows)))
    advisor = advise(sh.run, rows, stats, sh.bandwidth, sh.unprofiled_step_ms, sh.noise)
    if not (rows or advisor.findings or advisor.advice or advisor.whatifs):
        return None
    c = advisor.check
    check = None if c is None else Check(rank=c.rank, model_step_ms=c.step_model_ms,
                                         measured_step_ms=c.step_measured_ms, tolerance_pct=TOLERANCE_PCT)
    whatifs = tuple(WhatIf(knob=w.knob, value=w.value, predicted_step_ms=w.step_ms, predicted_exposed_ms=w.exposed_ms,
                           assumed=w.assumed, predicted_range_ms=w.range_ms, with_settings=w.with_settings)
                    for w in advisor.whatifs)
    return Section(family="ddp", detail=DDPDetail(rows=rows, buckets=stats, advisor=advisor),
                   findings=advisor.findings, advice=advisor.advice, whatifs=whatifs, check=check)
