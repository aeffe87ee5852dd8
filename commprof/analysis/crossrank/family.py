"""The cross-rank family's section: who holds the job back (the root cause over the cross-rank critical path,
``rootcause``: the report's first finding), the run as a whole (exposed communication on the worst rank),
communication on the path by parallelism dimension (``critfindings``), and the ranks the others wait for
(``matching``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ...model import Run
from ...model.alloc import DDP_FORWARD
from .. import findings as say
from ..section import Section
from ..shared import Shared
from ..uncertainty.hostload import wait_by_rank
from .critfindings import comm_findings, data_how, root_cause_finding, unpaired_finding
from .matching import CrossRank
from .p2p import links
from .rootcause import Critical, critical
from .withheld import without_missing


@dataclass(frozen=True, slots=True, kw_only=True)
class CrossRankDetail:
    cross: CrossRank  # collectives matched across ranks, clocks, waits, stragglers
    critical: Critical | None  # the critical path and the root cause; None without matched collectives


def section(sh: Shared) -> Section[CrossRankDetail]:
    crit = critical(sh.run.ranks, sh.cross, sh.steps, sh.digests)
    if crit is not None:
        floor = max((o.representative.compute_ns / 1e6 for o in sh.overlaps if o.representative is not None),
                    default=0.0)
        crit = replace(crit, cause=without_missing(crit.cause, sh.run), compute_floor_ms=floor)
    gpu = any(rt.device_kind != "cpu" for rt in sh.run.ranks)
    envs = {rt.rank: rt.sidecar.env for rt in sh.run.ranks if rt.sidecar is not None and rt.sidecar.env is not None}
    first = (root_cause_finding(crit, wait_by_rank(sh.run), gpu, envs),) if crit is not None else ()
    wanted = set(sh.steps) if sh.steps is not None else None
    unpaired = crit.unpaired_p2p if crit is not None else links(sh.run.ranks, sh.cross, wanted).unpaired
    rest = (tuple(comm_findings(crit, _how(sh.run))) if crit is not None else ()) + tuple(unpaired_finding(unpaired))
    return Section(family="crossrank", detail=CrossRankDetail(cross=sh.cross, critical=crit),
                   findings=first + tuple(say.overview(sh.overlaps, sh.cross)) + rest)


def _how(run: Run) -> str:
    """The data-parallel remedy for the wrapper the run shows (``critfindings.data_how``)."""
    fsdp = any(rt.fsdp for rt in run.ranks)
    ddp = any(m.kind == DDP_FORWARD for rt in run.ranks for m in rt.marks) or any(
        rt.sidecar is not None and rt.sidecar.ddp is not None for rt in run.ranks)
    return data_how(fsdp, ddp, all((rt.backend or "").lower() == "gloo" for rt in run.ranks))
