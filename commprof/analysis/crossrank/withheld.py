"""What a run of ranks that cannot have run together (or a per-rank request) gets instead of the cross-rank
analyses: no matching, no clock alignment, no wait or straggler, and only the families whose figures stand per rank
(no DDP or FSDP2 replay and advice, no pipeline); a finding that says why, first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ...model import RankTrace, Run
from ..memory import family as memory
from ..section import Finding, Section
from .matching import MAX_THRESHOLD_NS, CrossRank

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
