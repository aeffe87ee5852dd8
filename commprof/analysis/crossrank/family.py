"""The cross-rank family's section: the run as a whole (exposed communication on the worst rank) and the ranks
the others wait for (``matching``)."""

from __future__ import annotations

from .. import findings as say
from ..section import Section
from ..shared import Shared
from .matching import CrossRank


def section(sh: Shared) -> Section[CrossRank]:
    return Section(family="crossrank", detail=sh.cross, findings=tuple(say.overview(sh.overlaps, sh.cross)))
