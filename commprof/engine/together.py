"""The reduce step's judgement of a set of traces: which profiler cycle to analyze, whether the requested steps are
there, and whether the ranks can have run together (``coherence``), before any cross-rank figure is made.  What it
decides goes into the run's header lines (``Run.notes``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from ..analysis.perrank import StepsKey
from ..errors import InputError
from ..formats import sidecar as F
from ..model import RankTrace, Run
from ..numlist import number_list, ranks_text
from ..reader.comm.gloo_groups import GROUPS_UNTOLD
from .coherence import coherence
from .cycles import choose, span

R = TypeVar("R", bound=Run)
T = TypeVar("T", bound=tuple)


@dataclass(frozen=True, slots=True, kw_only=True)
class Together:
    """What the user asked for: a cycle (1-based), steps, per-rank figures only; and the files skipped (unreadable)."""

    cycle: int | None = None
    steps: StepsKey = None
    per_rank: bool = False
    skipped: tuple[str, ...] = ()
    ranks: tuple[int, ...] | None = None  # --ranks: the others are left out, not missing


def select(path: Path, results: Sequence[T], ask: Together) -> tuple[list[T], str | None]:
    """The results (``(RankTrace, digest)`` pairs) of the cycle to analyze, and the line saying which it is."""
    traces: list[RankTrace] = [r[0] for r in results]
    choice = choose(path, traces, ask.cycle, ask.steps)
    return [results[i] for i in sorted(choice.members)], choice.note


def judge(run: R, ask: Together, cycle_note: str | None) -> R:
    """The run with its header lines, or one ``InputError``: steps that select nothing, ranks that cannot have run
    together (unless per-rank figures only were asked for)."""
    path = Path(run.path)
    if ask.steps is not None:
        held = sorted({s.number for rt in run.ranks if not rt.stepless for s in rt.steps})
        wanted = ask.steps
        if not any(n in wanted for n in held):
            has = f"steps {span(held)}" if held else "no ProfilerStep"
            raise InputError(path, f"the requested steps {span(wanted)} select nothing: the traces hold {has}")
    notes: list[str] = [cycle_note] if cycle_note else []
    world = run.world_size
    if run.missing_ranks and world is not None:
        left = [r for r in run.missing_ranks if ask.ranks is not None and r not in ask.ranks]
        lost = [r for r in run.missing_ranks if r not in left]
        why = ", ".join(w for w in (f"missing: {number_list(lost, limit=16)}" if lost else "",
                                    f"left out with --ranks: {number_list(left, limit=16)}" if left else "") if w)
        notes.append(f"{len(run.ranks)} of {world} ranks ({why}): cross-rank figures cover the ranks loaded only")
    if ask.skipped:
        notes.append("skipped, not read as traces: " + "; ".join(ask.skipped[:4])
                     + (f"; and {len(ask.skipped) - 4} more" if len(ask.skipped) > 4 else ""))
    untold = [rt.rank for rt in run.ranks if any(GROUPS_UNTOLD in w for w in rt.warnings)]
    verdict = coherence(run.ranks, by_collectives=not untold)
    per_rank = ask.per_rank
    if untold and len(run.ranks) > 1 and not verdict.problem:
        # not the inputs' fault: read per rank, never refused; collectives of groups that never met are not matched
        per_rank = True
        notes.append(f"per-rank figures only, no cross-rank figure: on {ranks_text(untold)} the gloo trace does "
                     "not tell which of the rank's process groups ran each collective (gloo records none; commprof "
                     "tells them by their worker threads, which did not show one pool per group), and ranks that "
                     "never met would be compared as one group (trace with NCCL, or with one process group per "
                     "rank, for waits and the root cause)")
    if verdict.problem:
        if not ask.per_rank:
            raise InputError(path, f"{verdict.problem}{_kept_earlier(run)} (per_rank=True gives per-rank figures only)")
        notes.append(f"per-rank figures only, no cross-rank figure: {verdict.problem}")
    elif ask.per_rank and len(run.ranks) > 1:
        notes.append("per-rank figures only (--per-rank): no wait, straggler or advice across ranks")
    return replace(run, notes=tuple(notes), per_rank_only=per_rank,
                   warnings=(*run.warnings, *verdict.warnings))


def _kept_earlier(run: Run) -> str:
    """Why ranks' traces may hold other steps: their sidecars say a cycle's device collection stopped early and they
    kept an earlier cycle's trace (``capture.cycle``)."""
    kept = [rt.rank for rt in run.ranks if rt.sidecar is not None and any(F.KEPT_EARLIER_CYCLE in w for w in
                                                                          rt.sidecar.warnings)]
    return (f"; {ranks_text(kept)} kept an earlier profiler cycle's trace, their device collection having stopped "
            "early in the last one (their sidecars' warnings)") if kept else ""
