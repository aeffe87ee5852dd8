"""A monitored job's diagnosis: the hang verdict (``hang``) and the slow ranks over the whole job
(``slowdown``), from the files ``commprof.monitor`` (and PyTorch's Flight Recorder) wrote."""

from __future__ import annotations

from dataclasses import dataclass

from ...model import MonitorRun
from .hang import Hang, diagnose
from .slowdown import Slowdown, slowdown


@dataclass(frozen=True, slots=True)
class MonitorReport:
    run: MonitorRun
    hang: Hang | None
    slowdown: Slowdown | None


def analyze_monitor(mrun: MonitorRun) -> MonitorReport:
    return MonitorReport(mrun, diagnose(mrun), slowdown(mrun))
