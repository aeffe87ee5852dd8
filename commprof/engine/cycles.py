"""Profiler cycles: a folder holding several recorded windows per rank -> the traces of one window.

torch.profiler's repeating schedule writes one trace per cycle and rank (``tensorboard_trace_handler``:
``host_pid.<ms>.pt.trace.json``), torchtitan one folder per profiled step (``iteration_N/rankR_trace.json``).
Each trace is one window of steps.  Traces whose step numbers overlap belong to one cycle; cycles are numbered
from 1 in step order.  The report analyzes one cycle: the last complete one (every rank, every step) unless the
user picks another (``--cycle N``, or a ``--steps`` range inside one cycle).  Pure: no file is read here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..model import RankTrace
from ..numlist import number_list


@dataclass(frozen=True, slots=True, kw_only=True)
class Cycle:
    """One recorded window: its step numbers and the traces (indices into the list given) that hold it."""

    number: int  # 1-based, in step order
    steps: tuple[int, ...]
    members: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Choice:
    members: tuple[int, ...]  # the traces to analyze (indices into the list given)
    note: str | None  # the header's line saying which cycle and what was left out; None: one cycle only


def span(steps: Sequence[int]) -> str:
    """Steps: ``[2, 3]`` -> ``"2-3"``; ``[2, 4]`` -> ``"2, 4"``; ``[]`` -> ``"none"`` (``numlist``, at most 8 items)."""
    return number_list(steps, limit=8, min_run=2)


def cycles(traces: Sequence[RankTrace]) -> list[Cycle]:
    """Traces grouped into cycles by overlapping step ranges (traces without ProfilerStep form none)."""
    spans = sorted((min(s.number for s in t.steps), max(s.number for s in t.steps), i)
                   for i, t in enumerate(traces) if t.steps and not t.stepless)
    groups: list[tuple[int, list[int]]] = []  # (highest step so far, members)
    for lo, hi, i in spans:
        if groups and lo <= groups[-1][0]:
            groups[-1] = (max(groups[-1][0], hi), [*groups[-1][1], i])
        else:
            groups.append((hi, [i]))
    out = []
    for k, (_hi, members) in enumerate(groups, start=1):
        steps = sorted({s.number for i in members for s in traces[i].steps})
        out.append(Cycle(number=k, steps=tuple(steps), members=tuple(members)))
    return out


def choose(path: Path, traces: Sequence[RankTrace], cycle: int | None = None,
           steps: Sequence[int] | None = None) -> Choice:
    """The traces of the cycle to analyze, or one ``InputError`` (a rank twice in one cycle: two runs mixed; a
    cycle or steps that are not there).  A trace that recorded nothing, of a rank with another trace that did, is
    left out and named: torch.profiler writes one at exit where the loop ended a repeating schedule's cycle before it
    recorded (metadata and at most a cut step)."""
    empty = [i for i, t in enumerate(traces) if _recorded_nothing(t) and any(
        u.rank == t.rank and u.steps and not u.stepless for u in traces)]
    if not empty:
        return _choose(path, traces, cycle, steps)
    kept = [i for i in range(len(traces)) if i not in empty]
    inner = _choose(path, [traces[i] for i in kept], cycle, steps)
    names = ", ".join(Path(traces[i].path).name for i in empty[:4]) + (f" and {len(empty) - 4} more"
                                                                        if len(empty) > 4 else "")
    left = (f"{names}: recorded nothing (a profiler cycle the loop ended before it recorded, which torch.profiler "
            "writes at exit): left out")
    return Choice(members=tuple(kept[i] for i in inner.members),
                  note=f"{inner.note}; {left}" if inner.note else left)


def _recorded_nothing(t: RankTrace) -> bool:
    """No complete step, no compute, no communication: a trace of metadata."""
    return (t.stepless or not t.steps) and not len(t.compute) and not len(t.comm) and not t.collectives


def _choose(path: Path, traces: Sequence[RankTrace], cycle: int | None,
            steps: Sequence[int] | None) -> Choice:
    found = cycles(traces)
    several = any(sum(1 for t in traces if t.rank == r) > 1 for r in {t.rank for t in traces})
    if not several and cycle in (None, 1) and (steps is None or len(found) <= 1):
        return Choice(members=tuple(range(len(traces))), note=None)
    _no_steps_twice(traces)
    for c in found:
        _one_trace_per_rank(traces, c)
    chosen = _pick(path, found, traces, cycle, steps)
    outside = tuple(i for i, t in enumerate(traces) if not t.steps or t.stepless)  # in no cycle: kept
    if len(found) == 1:
        return Choice(members=chosen.members + outside, note=None)
    others = ", ".join(f"{c.number} (steps {span(c.steps)})" for c in found if c is not chosen)
    how = "picked" if cycle is not None or steps is not None else "the last complete one"
    return Choice(members=chosen.members + outside,
                  note=f"profiler cycle {chosen.number} of {len(found)} (steps {span(chosen.steps)}, {how}) analyzed; "
                       f"cycle{'s' if len(found) > 2 else ''} {others} left out (--cycle N picks another)")


def _pick(path: Path, found: list[Cycle], traces: Sequence[RankTrace], cycle: int | None,
          steps: Sequence[int] | None) -> Cycle:
    held = "; ".join(f"cycle {c.number}: steps {span(c.steps)}" for c in found)
    if cycle is not None:
        if not 1 <= cycle <= len(found):
            raise InputError(path, f"cycle={cycle}: the traces hold {len(found)} profiler cycle(s) ({held})")
        return found[cycle - 1]
    if steps is not None:
        wanted = set(steps)
        hit = [c for c in found if wanted & set(c.steps)]
        if not hit:
            raise InputError(path, f"the requested steps {span(steps)} select nothing: the traces hold {held}")
        if len(hit) > 1:
            raise InputError(path, f"the requested steps span profiler cycles {', '.join(str(c.number) for c in hit)} "
                                   f"({held}): pick one with cycle=N")
        return hit[0]
    width = max(len({traces[i].rank for i in c.members}) for c in found)
    length = max(len(traces[i].steps) for c in found for i in c.members)
    complete = [c for c in found if len({traces[i].rank for i in c.members}) == width
                and all(len(traces[i].steps) == length for i in c.members)]
    return (complete or found)[-1]


def _one_trace_per_rank(traces: Sequence[RankTrace], c: Cycle) -> None:
    seen: dict[int, RankTrace] = {}
    for i in c.members:
        t = traces[i]
        if t.rank in seen:
            a = seen[t.rank]
            raise InputError(t.path, f"claims rank {t.rank}, as does {a.path}, for the same steps "
                                     f"({span([s.number for s in a.steps])} and {span([s.number for s in t.steps])}): "
                                     "traces of different runs are mixed in one folder; keep one run per folder")
        seen[t.rank] = t


def _no_steps_twice(traces: Sequence[RankTrace]) -> None:
    """A rank with several traces, one of them without ProfilerStep: nothing tells which belong together."""
    by_rank: dict[int, RankTrace] = {}
    for t in traces:
        if t.rank in by_rank and (t.stepless or not t.steps or by_rank[t.rank].stepless or not by_rank[t.rank].steps):
            raise InputError(t.path, f"claims rank {t.rank}, as does {by_rank[t.rank].path}, and one of them has no "
                                     "ProfilerStep to tell their windows apart; keep one trace per rank in the folder")
        by_rank[t.rank] = t
