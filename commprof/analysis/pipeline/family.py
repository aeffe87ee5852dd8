"""The pipeline family's section: stages and the partition advisor (``stages``)."""

from __future__ import annotations

from .. import findings as say
from ..section import Section, WhatIf
from ..shared import Shared
from .stages import PipelineReport, pipeline


def section(sh: Shared) -> Section[PipelineReport] | None:
    pipe = pipeline(sh.run, sh.unprofiled_step_ms, sh.digests)
    if pipe is None:
        return None
    findings, advice = say.pipeline_findings(pipe)
    whatifs = () if pipe.best is None else (WhatIf(knob="partition", value=list(pipe.best.split),
                                                    predicted_step_ms=pipe.best.step_ms),)
    return Section(family="pipeline", detail=pipe, findings=tuple(findings), advice=tuple(advice), whatifs=whatifs)
