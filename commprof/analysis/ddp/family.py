"""The DDP family's section: gradient buckets (``buckets``), the advisor's what-ifs and advice (``advice``,
``whatif``), the rules on DDP's settings, and gradient accumulation (``accumulation``: the micro-batches of a step
and the all-reduces ``no_sync()`` would save)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import findings as say
from ..overlap import kept_steps
from ..section import Advice, Check, Section, WhatIf
from ..shared import Shared
from ..uncertainty.bands import NOT_ADVISED, banded_advice
from ..uncertainty.maths import Noise
from .advice import TOLERANCE_PCT, Advisor, advise
from .buckets import BucketStat, BucketStep, bucket_stats
from .nosync import Accumulation, across_finding, across_steps, assess, held_finding, replay_fails, withheld
from .rates import op_rates


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
    advisor = advise(sh.run, rows, stats, sh.bandwidth, sh.step_now_ms, sh.noise, basis=sh.step_now_basis)
    kept = kept_steps(sh.overlaps)
    rates = advisor.rates or op_rates(sh.run)
    acc = assess(sh.run, kept, sh.step_now_ms, sh.noise,
                 advisor.check.error_pct if advisor.check is not None else None, rates.pass_bps, sh.step_now_basis)
    if not (rows or advisor.findings or advisor.advice or advisor.whatifs or acc):
        return None
    advisor = _with_accumulation(advisor, acc, sh.noise)
    if acc is None and (across := across_steps(sh.run, kept)) is not None and (advisor.advice or
                                                                                      advisor.whatifs):
        own = tuple(f for f in advisor.findings if not f.text.startswith(NOT_ADVISED))
        advisor = replace(advisor, advice=(), whatifs=(), findings=(across_finding(*across, advisor.advice),) + own)
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
    replay's what-ifs and advice (one synchronization per step) withheld until it synchronizes once.  Advice whose
    band reaches the step as it is now is withheld too: its finding then says so (``held_finding``), and the
    withheld finding carries what raised the band (``Accumulation.band_note``)."""
    if acc is None or acc.finding is None:
        return advisor
    advisor = _per_micro_batch(advisor, acc)
    why = replay_fails(acc, per_pass=False)
    if why is None or acc.advice is None:
        return replace(advisor, findings=(acc.finding,) + advisor.findings)
    kept, dropped = banded_advice([acc.advice], noise, None)
    dropped = tuple(replace(f, text=f"{f.text} {acc.band_note}") for f in dropped) if acc.band_note else dropped
    told = held_finding(acc, acc.advice) if dropped else acc.finding  # no more "advice below"
    held = (withheld("the DDP replay's what-ifs (bucket_cap_mb, comm_hook, gradient_accumulation)", advisor.advice,
                     why, acc),) if advisor.whatifs or advisor.advice else ()
    own = tuple(f for f in advisor.findings if not f.text.startswith(NOT_ADVISED))  # their bands: the replay's too
    return replace(advisor, advice=kept, whatifs=(), findings=(told,) + own + dropped + held)


def _per_micro_batch(advisor: Advisor, acc: Accumulation) -> Advisor:
    """Where a traced step already runs several micro-batches, the replay's gradient_accumulation = k means k such
    steps: its advice says how many micro-batches that is (what follows its words, a calibration's sentence, kept)."""
    if acc.per_step <= 1:
        return advisor
    exposed = {w.value: w.exposed_ms * w.value for w in advisor.whatifs
               if w.knob == "gradient_accumulation" and isinstance(w.value, int)}  # a what-if's: per k steps

    def words(a: Advice, k: int) -> str:
        end = a.why.find(say.ACCUMULATION_END)
        rest = a.why[end + len(say.ACCUMULATION_END):] if end >= 0 else ""
        return say.accumulation_why(k, exposed[k], acc.per_step, acc.synced) + rest

    return replace(advisor, advice=tuple(
        replace(a, why=words(a, a.value))
        if a.knob == "gradient_accumulation" and isinstance(a.value, int) and a.value in exposed else a
        for a in advisor.advice))
