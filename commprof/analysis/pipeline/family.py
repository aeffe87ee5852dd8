"""The pipeline family's section: stages and the partition advisor (``stages``).

The partition's band: the replays' band (``uncertainty.maths.half_width_pct``: their floor on a changed setting and
the run's noise) and ``STRUCTURE_PCT`` beside it in quadrature, for what the GPipe simulation leaves out: stages
that share CPU cores slow each other, by how much depends on how busy each stage is, which the split changes.  The
advised split's measured errors on a 2-core host: +1.2 to +6.7% (2026-11-27), +12.1% (a quiet CI run, 2026-12-05),
and a gain of 10% measured where 22% was predicted when traced at 6 : 2 (docs/advisor.md).
"""

from __future__ import annotations

import math
from dataclasses import replace

from .. import findings as say
from ..overlap import kept_steps
from ..section import Section, WhatIf
from ..shared import Shared
from ..uncertainty.maths import Noise, around, half_width_pct
from .stages import PipelineReport, pipeline

STRUCTURE_PCT = 10.0  # the stages' contention for shared cores, which the schedule simulation does not model


def band(pred_ms: float, noise: Noise) -> tuple[float, float]:
    """[low, high] of a split's predicted step."""
    return around(pred_ms, math.hypot(half_width_pct(noise, None, changed=True), STRUCTURE_PCT), noise)


def section(sh: Shared) -> Section[PipelineReport] | None:
    pipe = pipeline(sh.run, sh.step_now_ms, sh.digests, sh.links, kept_steps(sh.overlaps))
    if pipe is None:
        return None
    findings, advice = say.pipeline_findings(pipe)
    advice = [replace(a, predicted_range_ms=band(a.predicted_step_ms, sh.noise)) for a in advice]
    whatifs = () if pipe.best is None else (WhatIf(knob="partition", value=list(pipe.best.split),
                                                    predicted_step_ms=pipe.best.step_ms,
                                                    predicted_range_ms=band(pipe.best.step_ms, sh.noise)),)
    return Section(family="pipeline", detail=pipe, findings=tuple(findings), advice=tuple(advice), whatifs=whatifs)
