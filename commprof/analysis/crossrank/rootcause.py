"""Who holds the job back: the root-cause rank, from the cross-rank critical path and a replay of each step.

Candidates are the ranks with the most own work on the critical paths.  For each, every step is replayed
(``critgraph.replay``) with that rank's own work before each collective replaced by the median of its peers' own
work before the same collective (the other ranks of that instance), and its work before the step's end by the
median of the others': the step it would have had at its peers' median speed.  The gain is the measured step
minus that step.  A rank is named only when

- its median gain is at least ``MIN_GAIN_FRACTION`` of the step and more than the step-to-step noise (the standard
  deviation of the step's length over the analyzed steps),
- it reaches that in a majority of the steps,
- and its gain is at least ``STANDOUT`` times any other candidate's: when ranks take turns being slow (jitter),
  each has a similar gain, and none is named.

Otherwise the verdict is "no single rank holds the job back", with the spread of the ranks' shares of the path.
What the named rank was doing is the part (compute, host / launch, idle before collectives) whose replacement
alone gains most.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ...model import RankTrace
from ..perrank import RankDigest
from .critgraph import Parts, StepGraph, build, length, replay
from .critpath import StepPath, walk
from .matching import CrossRank
from .pgkind import NAMES, SHORT, GroupKind, group_kinds

MIN_GAIN_FRACTION = 0.02
STANDOUT = 2.0
CANDIDATES = 3
COMPUTE, HOST, IDLE = "compute", "launch/host", "idle before collectives"
_PART_FIELDS = {COMPUTE: ("compute_p", "compute_e"), HOST: ("host_p", "host_e"), IDLE: ("idle_p", "idle_e")}


@dataclass(frozen=True, slots=True, kw_only=True)
class RootCause:
    rank: int | None  # None: no single rank
    ranks: tuple[int, ...]
    what: str | None  # COMPUTE, HOST or IDLE
    share_pct: float | None  # the rank's own work, % of the step's critical path (median over steps)
    steps_on_path: int  # steps in which its gain passed the bar
    steps: int
    step_ms: float  # the measured step (median of the steps' lengths)
    noise_ms: float  # step-to-step standard deviation
    predicted_step_ms: float | None
    predicted_gain_ms: float | None
    predicted_range_ms: tuple[float, float] | None  # over the analyzed steps
    ratio: float | None  # its own work / its peers' median own work, for ``what``
    peers: str  # "tensor-parallel", ...
    spread: tuple[tuple[int, float], ...]  # (rank, share % of the path), largest first
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupComm:
    group: str
    kind: str
    source: str
    ranks: int
    on_path_ms: float  # its transfers on the critical path, median over steps
    share_pct: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Critical:
    paths: tuple[StepPath, ...]
    cause: RootCause
    comm: tuple[GroupComm, ...]  # largest first
    kinds: dict[str, GroupKind]


def critical(ranks: Sequence[RankTrace], cross: CrossRank, steps: Sequence[int] | None = None,
             digests: Mapping[int, RankDigest] | None = None) -> Critical | None:
    """The critical paths, the root cause and communication on the path by process group; None without matched
    collectives (one rank, or no collective ran)."""
    graphs = build(ranks, cross, set(steps) if steps is not None else None, digests)
    if not graphs:
        return None
    paths = tuple(walk(g) for g in graphs)
    kinds = group_kinds(ranks, cross.groups)
    cause = _verdict(graphs, paths, kinds)
    return Critical(paths=paths, cause=cause, comm=_comm(paths, kinds), kinds=kinds)


def _comm(paths: Sequence[StepPath], kinds: Mapping[str, GroupKind]) -> tuple[GroupComm, ...]:
    per = [p.comm_ns() for p in paths]
    step = float(np.median([p.length_ns for p in paths])) or 1.0
    out = []
    for name in sorted({k for d in per for k in d}):
        ms = float(np.median([d.get(name, 0) for d in per])) / 1e6
        k = kinds.get(name)
        out.append(GroupComm(group=name, kind=k.kind if k else "data", source=k.source if k else "membership",
                             ranks=len(k.ranks) if k else 0, on_path_ms=ms, share_pct=100 * ms * 1e6 / step))
    return tuple(sorted(out, key=lambda c: -c.on_path_ms))


def _peer_parts(g: StepGraph, rank: int, which: Sequence[str]) -> Parts:
    """``g``'s parts with ``rank``'s own work (the fields of ``which``) replaced by its peers' medians."""
    new = {f: getattr(g.parts, f).copy() for f in ("compute_p", "host_p", "idle_p", "compute_e", "host_e", "idle_e")}
    mine = np.flatnonzero(g.pair_rank == rank)
    order = np.argsort(g.pair_inst, kind="stable")
    bounds = np.searchsorted(g.pair_inst[order], np.arange(g.inst_level.size + 1))
    for p in mine.tolist():
        inst = int(g.pair_inst[p])
        others = order[bounds[inst]:bounds[inst + 1]]
        others = others[others != p]
        if others.size == 0:
            continue
        for w in which:
            f = _PART_FIELDS[w][0]
            new[f][p] = int(np.median(getattr(g.parts, f)[others]))
    i = g.rank_index.get(rank)
    if i is not None and g.ranks.size > 1:
        for w in which:
            f = _PART_FIELDS[w][1]
            col = getattr(g.parts, f)
            new[f][i] = int(np.median(np.delete(col, i)))
    return Parts(**new)


def _gains(graphs: Sequence[StepGraph], rank: int, which: Sequence[str]) -> np.ndarray:
    out = []
    for g in graphs:
        base = length(g, replay(g))
        out.append(base - length(g, replay(g, _peer_parts(g, rank, which))))
    return np.array(out, dtype=np.float64)


def _verdict(graphs: Sequence[StepGraph], paths: Sequence[StepPath], kinds: Mapping[str, GroupKind]) -> RootCause:
    lens = np.array([p.length_ns for p in paths], dtype=np.float64)
    noise = float(np.std(lens, ddof=1)) if lens.size > 1 else 0.0
    bar = np.maximum(MIN_GAIN_FRACTION * lens, noise)
    shares = _shares(paths)
    cands = [r for r, _ in shares[:CANDIDATES]]
    gains = {r: _gains(graphs, r, (COMPUTE, HOST, IDLE)) for r in cands}
    med = {r: float(np.median(v)) for r, v in gains.items()}
    base = RootCause(rank=None, ranks=(), what=None, share_pct=None, steps_on_path=0, steps=len(paths),
                     step_ms=float(np.median(lens)) / 1e6, noise_ms=noise / 1e6, predicted_step_ms=None,
                     predicted_gain_ms=None, predicted_range_ms=None, ratio=None, peers="",
                     spread=tuple(shares[:5]), text="")
    if not cands:
        return replace(base, text=_no_single(base))
    best = max(cands, key=lambda r: med[r])
    others = max((med[r] for r in cands if r != best), default=0.0)
    passed = int((gains[best] >= bar).sum())
    named = (med[best] >= float(np.median(bar)) and med[best] > 0 and 2 * passed > len(paths)
             and med[best] >= STANDOUT * max(others, 0.0))
    if not named:
        return replace(base, text=_no_single(base))
    what = max((COMPUTE, HOST, IDLE), key=lambda w: float(np.median(_gains(graphs, best, (w,)))))
    pred = lens - gains[best]
    ratio, peers = _ratio(graphs, best, what, kinds)
    share = dict(shares).get(best, 0.0)
    cause = replace(base, rank=best, ranks=(best,), what=what, share_pct=share, steps_on_path=passed,
                    predicted_step_ms=float(np.median(pred)) / 1e6, predicted_gain_ms=med[best] / 1e6,
                    predicted_range_ms=(float(pred.min()) / 1e6, float(pred.max()) / 1e6), ratio=ratio, peers=peers)
    return replace(cause, text=_named(cause))


def _shares(paths: Sequence[StepPath]) -> list[tuple[int, float]]:
    """Per rank, the median over steps of its own work's share of the path (%), largest first."""
    per = [p.own_ns() for p in paths]
    ranks = {r for d in per for r in d}
    out = [(r, float(np.median([100 * d.get(r, 0) / max(p.length_ns, 1) for d, p in zip(per, paths, strict=True)])))
           for r in ranks]
    return sorted(out, key=lambda x: (-x[1], x[0]))


def _ratio(graphs: Sequence[StepGraph], rank: int, what: str, kinds: Mapping[str, GroupKind]) -> tuple[float, str]:
    """The rank's own ``what`` over the step / its peers' median of the same, and its peers' kind (the smallest
    group it belongs to)."""
    mine = peer = 0.0
    smallest: tuple[int, str] | None = None
    for g in graphs:
        new = _peer_parts(g, rank, (what,))
        f, fe = _PART_FIELDS[what]
        m = g.pair_rank == rank
        i = g.rank_index.get(rank)
        mine += float(getattr(g.parts, f)[m].sum()) + (float(getattr(g.parts, fe)[i]) if i is not None else 0)
        peer += float(getattr(new, f)[m].sum()) + (float(getattr(new, fe)[i]) if i is not None else 0)
        for inst in set(g.pair_inst[m].tolist()):
            name = g.groups[int(g.inst_group[inst])]
            k = kinds.get(name)
            if k is not None and (smallest is None or len(k.ranks) < smallest[0]):
                smallest = (len(k.ranks), k.kind)
    return (mine / peer if peer > 0 else float("inf")), (NAMES[smallest[1]] if smallest else "")


def _named(c: RootCause) -> str:
    peers = f"its {SHORT[_kind_of(c.peers)]} peers'" if c.peers else "its peers'"
    ratio = "" if c.ratio is None else (f", {c.what} {c.ratio:.1f}x {peers}" if np.isfinite(c.ratio)
                                        else f", {c.what} where its peers had none")
    rng = c.predicted_range_ms
    band = f" ({rng[0]:.2f}-{rng[1]:.2f} over the steps)" if rng and c.steps > 1 else ""
    return (f"Rank {c.rank} holds the job back: {c.share_pct:.0f}% of the step's critical path{ratio}; on the path "
            f"in {c.steps_on_path} of {c.steps} steps. At its peers' median speed the step would take "
            f"{c.predicted_step_ms:.2f} ms instead of {c.step_ms:.2f} ms (-{c.predicted_gain_ms:.2f} ms){band}; "
            f"step-to-step noise {c.noise_ms:.2f} ms.")


def _kind_of(name: str) -> str:
    return next(k for k, v in NAMES.items() if v == name)


def _no_single(c: RootCause) -> str:
    spread = ", ".join(f"rank {r} {s:.0f}%" for r, s in c.spread[:4]) or "none"
    return (f"No single rank holds the job back: no rank's own work, run at its peers' median speed, would shorten "
            f"the {c.step_ms:.2f} ms step by more than the step-to-step noise ({c.noise_ms:.2f} ms) and 2% while "
            f"standing out from the others. Shares of the critical path: {spread}.")
