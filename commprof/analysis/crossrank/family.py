"""The cross-rank family's section: who holds the job back (the root cause over the cross-rank critical path,
``rootcause``: the report's first finding), the run as a whole (exposed communication on the worst rank),
communication on the path by parallelism dimension (``critfindings``), and the ranks the others wait for
(``matching``).  A run of ranks that cannot have run together (or a per-rank request) gets instead no matching, no
clock alignment, no wait or straggler, and only the families whose figures stand per rank (no DDP or FSDP2 replay and
advice, no pipeline); a finding that says why, first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ...model import RankTrace, Run
from ...model.alloc import DDP_FORWARD
from ...numlist import number_list
from .. import findings as say
from ..memory import family as memory
from ..section import Finding, Section
from ..shared import Shared
from ..uncertainty.hostload import wait_by_rank
from .critfindings import comm_findings, data_how, root_cause_finding, unpaired_finding
from .matching import MAX_THRESHOLD_NS, CrossRank
from .p2p import links
from .rootcause import Critical, RootCause, critical
from .work import WorkGap, most_work, peers_of, work_by_rank, work_gap


@dataclass(frozen=True, slots=True, kw_only=True)
class CrossRankDetail:
    cross: CrossRank  # collectives matched across ranks, clocks, waits, stragglers
    critical: Critical | None  # the critical path and the root cause; None without matched collectives


def section(sh: Shared) -> Section[CrossRankDetail]:
    crit = critical(sh.run.ranks, sh.cross, sh.steps, sh.digests, sh.noise.periodic)
    if crit is not None:
        floor = max((o.representative.compute_ns / 1e6 for o in sh.overlaps if o.representative is not None),
                    default=0.0)
        cause = without_missing(crit.cause, sh.run)
        crit = replace(crit, cause=replace(cause, work=_work(crit, cause, sh)), compute_floor_ms=floor)
    gpu = any(rt.device_kind != "cpu" for rt in sh.run.ranks)
    envs = {rt.rank: rt.sidecar.env for rt in sh.run.ranks if rt.sidecar is not None and rt.sidecar.env is not None}
    first = (root_cause_finding(crit, wait_by_rank(sh.run), gpu, envs, sh.noise.periodic),) if crit is not None else ()
    wanted = set(sh.steps) if sh.steps is not None else None
    unpaired = crit.unpaired_p2p if crit is not None else links(sh.run.ranks, sh.cross, wanted).unpaired
    rest = (tuple(comm_findings(crit, _how(sh.run))) if crit is not None else ()) + tuple(unpaired_finding(unpaired))
    return Section(family="crossrank", detail=CrossRankDetail(cross=sh.cross, critical=crit),
                   findings=first + tuple(say.overview(sh.overlaps, sh.cross)) + rest)


def _work(crit: Critical, c: RootCause, sh: Shared) -> WorkGap | None:
    """The named ranks' matrix work against their peers' over the steps the verdict holds in; with no rank named,
    the rank given the most more work than its peers, a lead (``work.most_work``); nothing where ranks are missing
    (the verdict then names a lead among the loaded ranks)."""
    steps = c.regime if c.regime is not None else sh.steps
    works = work_by_rank(sh.run.ranks, set(steps) if steps is not None else None)
    if c.ranks:
        return work_gap(c.ranks, works, *peers_of(c.ranks, crit.kinds))
    if sh.run.missing_ranks:
        return None
    return most_work(works, crit.kinds)


def _how(run: Run) -> str:
    """The data-parallel remedy for the wrapper the run shows (``critfindings.data_how``)."""
    fsdp = any(rt.fsdp for rt in run.ranks)
    ddp = any(m.kind == DDP_FORWARD for rt in run.ranks for m in rt.marks) or any(
        rt.sidecar is not None and rt.sidecar.ddp is not None for rt in run.ranks)
    return data_how(fsdp, ddp, all((rt.backend or "").lower() == "gloo" for rt in run.ranks))


# families whose figures are each rank's own: the cross-rank section says only the worst rank's exposed
# communication once its matching is withheld; the monitor's files are their own evidence
PER_RANK_FAMILIES = frozenset({"crossrank", "transfers", "memory", "dataparallel", "production"})


def no_cross(ranks: Sequence[RankTrace]) -> CrossRank:
    """A cross-rank result that claims nothing: no reference clock, no matched collective."""
    return CrossRank(None, {rt.rank: 0 for rt in ranks}, (), MAX_THRESHOLD_NS, (), {}, ())


def withheld_finding(run: Run) -> Finding:
    why = next((n for n in run.notes if n.startswith("per-rank figures only")), "per-rank figures only")
    return Finding("high", f"{why[:1].upper()}{why[1:]}. Each rank's figures stand alone; waits, stragglers, "
                           "transfer times without waits and advice need ranks that ran together.")


def per_rank_sections(run: Run, sections: Sequence[Section]) -> tuple[Section, ...]:
    """The sections that stand per rank, the cross-rank one led by the finding that says why nothing is
    compared across ranks."""
    kept = [s for s in sections if s.family in PER_RANK_FAMILIES]
    out = []
    for s in kept:
        if s.family == "crossrank":
            s = replace(s, findings=(withheld_finding(run), *s.findings))
        elif s.family == "memory":
            s = memory.per_rank(s)
        out.append(s)
    return tuple(out)


def without_missing(c: RootCause, run: Run) -> RootCause:
    """The root cause where some ranks' traces are missing: a rank not loaded may be the one every loaded rank waits
    for (its late arrival reads as the loaded ranks' wait, or their idle time), so no job-level verdict stands.  A
    named rank becomes a lead among the loaded ranks (``rank`` None in summary.json, the text says which and why);
    a "no single rank" verdict is scoped the same way."""
    if not run.missing_ranks:
        return c
    loaded, world = len(run.ranks), run.world_size or len(run.ranks) + len(run.missing_ranks)
    missing = number_list(run.missing_ranks, limit=8)
    scope = (f"Who holds the job back is not told: {loaded} of {world} ranks are loaded (not loaded: {missing}), and "
             "a rank not loaded may be the one every loaded rank waits for. Load every rank's trace to name the "
             "cause.")
    if not c.ranks:
        return replace(c, text=f"{scope} Among the loaded ranks, {c.text[0].lower()}{c.text[1:]}")
    who = " and ".join(f"rank {r}" for r in c.ranks)
    gain = (f", {c.predicted_gain_ms:.2f} ms per step at its peers' median speed"
            if c.predicted_gain_ms is not None else "")
    lead = (f" Among the loaded ranks, {who} would shorten their critical path most ({c.share_pct or 0:.0f}% of "
            f"it{gain}): a lead to check, not a verdict.")
    return replace(c, rank=None, ranks=(), text=scope + lead, predicted_step_ms=None, predicted_gain_ms=None,
                   predicted_range_ms=None)
