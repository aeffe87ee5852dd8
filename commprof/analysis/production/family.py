"""The production monitor's section: the hang verdict and the slow ranks over the whole job (``diagnosis``), from
the files ``commprof.monitor`` wrote beside the traces."""

from __future__ import annotations

from ..section import Section
from ..shared import Shared
from .diagnosis import MonitorReport, analyze_monitor


def section(sh: Shared) -> Section[MonitorReport] | None:
    if sh.monitor is None:
        return None
    return Section(family="production", detail=analyze_monitor(sh.monitor))
