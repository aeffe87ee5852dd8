"""The FSDP2 family's section: units and phases (``units``), the schedule replay's what-ifs (``replay``) and the
advice (``advice``)."""

from __future__ import annotations

from ..section import Check, Section, WhatIf
from ..shared import Shared
from .advice import TOLERANCE_PCT, FSDPAnalysis, fsdp_advisor


def section(sh: Shared) -> Section[FSDPAnalysis] | None:
    a = fsdp_advisor(sh.run, sh.bandwidth, sh.unprofiled_step_ms, sh.noise)
    if a is None:
        return None
    check = None if a.step_model_ms is None or not a.step_measured_ms else Check(
        rank=a.report.rank, model_step_ms=a.step_model_ms, measured_step_ms=a.step_measured_ms,
        tolerance_pct=TOLERANCE_PCT)
    whatifs = tuple(WhatIf(knob=w.knob, value=w.value, predicted_step_ms=w.step_ms,
                           predicted_peak_bytes=w.peak_memory_bytes, predicted_range_ms=w.range_ms) for w in a.whatifs)
    return Section(family="fsdp", detail=a, findings=a.findings, advice=a.advice, whatifs=whatifs, check=check)
