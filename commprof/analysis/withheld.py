"""What a run of ranks that cannot have run together (or a per-rank request) gets instead of the cross-rank
analyses: no matching, no clock alignment, no wait, straggler, pipeline or advice; a finding that says why."""

from __future__ import annotations

from collections.abc import Sequence

from ..model import RankTrace, Run
from .advice import Advisor
from .crossrank import MAX_THRESHOLD_NS, CrossRank
from .findings import Finding

NO_ADVICE = Advisor((), (), (), None, None, None, {})


def no_cross(ranks: Sequence[RankTrace]) -> CrossRank:
    """A cross-rank result that claims nothing: no reference clock, no matched collective."""
    return CrossRank(None, {rt.rank: 0 for rt in ranks}, (), MAX_THRESHOLD_NS, (), {}, ())


def withheld_finding(run: Run) -> Finding:
    why = next((n for n in run.notes if n.startswith("per-rank figures only")), "per-rank figures only")
    return Finding("warning", f"{why[:1].upper()}{why[1:]}. Each rank's figures stand alone; waits, stragglers, "
                              "transfer times without waits and advice need ranks that ran together.")
