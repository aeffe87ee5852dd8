"""Every analysis family, in the order the report speaks of them; and the sections of the families that are one
module each (``transfers``, ``dataparallel``).

Adding a family: a folder ``analysis/<family>/`` with its analyses and a ``family.py`` whose
``section(shared) -> Section | None`` says what the family finds (``analysis/section.py``); one line in
``FAMILIES`` below; and, where it draws something of its own, a view in ``render/views.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from . import findings as say
from .crossrank import family as crossrank
from .dataparallel import DataParallelStat, dataparallel
from .ddp import family as ddp
from .fsdp import family as fsdp
from .memory import family as memory
from .pipeline import family as pipeline
from .production import family as production
from .section import Section
from .shared import Shared
from .transfers import Transfers


def transfers_section(sh: Shared) -> Section[tuple[Transfers, ...]] | None:
    """Input transfers and host synchronization inside the step (``transfers``)."""
    xfers = tuple(r.transfers for r in sh.per_rank if r.transfers is not None)
    if not xfers:
        return None
    findings, advice = say.transfer_findings(xfers, sh.overlaps, sh.step_now_ms)
    return Section(family="transfers", detail=xfers, findings=tuple(findings), advice=tuple(advice))


def dataparallel_section(sh: Shared) -> Section[tuple[DataParallelStat, ...]] | None:
    """``nn.DataParallel``'s data movement through the first device (``dataparallel``)."""
    dps = tuple(d for d in (dataparallel(rt, sh.step_now_ms.get(rt.rank)) for rt in sh.run.ranks)
                if d is not None)
    if not dps:
        return None
    findings, advice = say.dataparallel_findings(dps)
    return Section(family="dataparallel", detail=dps, findings=tuple(findings), advice=tuple(advice))


Family = Callable[[Shared], "Section | None"]

# the report's order: findings and advice are listed family by family in this order
FAMILIES: tuple[tuple[str, Family], ...] = (
    ("crossrank", crossrank.section),
    ("ddp", ddp.section),
    ("pipeline", pipeline.section),
    ("transfers", transfers_section),
    ("memory", memory.section),
    ("dataparallel", dataparallel_section),
    ("fsdp", fsdp.section),
    ("production", production.section),
)


def sections(sh: Shared) -> tuple[Section, ...]:
    """The section of every family the run has; each family sees the sections before it (``Shared.earlier``)."""
    out: list[Section] = []
    for _name, run in FAMILIES:
        s = run(replace(sh, earlier=tuple(out)))
        if s is not None:
            out.append(s)
    return tuple(out)
