"""The memory family's section: peak memory per rank and what communication costs in it (``peak``)."""

from __future__ import annotations

from .. import findings as say
from ..section import Section
from ..shared import Shared
from .peak import Memory, memory


def section(sh: Shared) -> Section[tuple[Memory, ...]] | None:
    mem = tuple(m for rt in sh.run.ranks for m in memory(rt))
    if not mem:
        return None
    return Section(family="memory", detail=mem, findings=tuple(say.memory_findings(mem)))
