"""What a run of ranks that cannot have run together (or a per-rank request) gets instead of the cross-rank
analyses: no matching, no clock alignment, no wait or straggler, and only the families whose figures stand per rank
(no DDP or FSDP2 replay and advice, no pipeline); a finding that says why, first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ...model import RankTrace, Run
from ...numlist import number_list
from ..memory import family as memory
from ..section import Finding, Section
from .matching import MAX_THRESHOLD_NS, CrossRank
from .rootcause import RootCause

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
