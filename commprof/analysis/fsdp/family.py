"""The FSDP2 family's section: units and phases (``units``), the schedule replay's what-ifs (``replay``) and the
advice (``advice``), withheld where a step runs several micro-batches (the replay models one forward/backward pass;
the micro-batches are the DDP family's, ``ddp.accumulation``, which covers FSDP2's too)."""

from __future__ import annotations

from dataclasses import replace

from ..ddp.nosync import replay_fails, withheld
from ..section import Check, Section, WhatIf
from ..shared import Shared
from ..uncertainty.bands import NOT_ADVISED
from .advice import MISSES, TOLERANCE_PCT, FSDPAnalysis, fsdp_advisor


def section(sh: Shared) -> Section[FSDPAnalysis] | None:
    a = fsdp_advisor(sh.run, sh.bandwidth, sh.step_now_ms, sh.noise)
    if a is None:
        return None
    check = None if a.step_model_ms is None or not a.step_measured_ms else Check(
        rank=a.report.rank, model_step_ms=a.step_model_ms, measured_step_ms=a.step_measured_ms,
        tolerance_pct=TOLERANCE_PCT)
    ddp = sh.section("ddp")  # the micro-batches of a step (``ddp.nosync``): the schedule replay models one pass
    acc = ddp.detail.accumulation if ddp is not None else None
    why = replay_fails(acc, per_pass=True)
    if why is not None and acc is not None:
        own = tuple(f for f in a.findings if not f.text.startswith((NOT_ADVISED, MISSES)))  # the replay's own words
        a = replace(a, advice=(), whatifs=(), findings=own + (
            withheld("FSDP2's schedule replay (reshard_after_forward, prefetch)", a.advice, why, acc),))
    whatifs = tuple(WhatIf(knob=w.knob, value=w.value, predicted_step_ms=w.step_ms,
                           predicted_peak_bytes=w.peak_memory_bytes, predicted_range_ms=w.range_ms) for w in a.whatifs)
    return Section(family="fsdp", detail=a, findings=a.findings, advice=a.advice, whatifs=whatifs, check=check)
