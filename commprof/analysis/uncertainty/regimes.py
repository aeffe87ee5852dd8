"""A verdict judged in each regime of a run (``changepoint``): who held the job back before and after a rank became
slow, or while it was.

A rank slow from step 13 on was named over all twelve analyzed steps with the median of 25 ms and 0 ms as its gain
and "compute" for a sleep, or not at all; rank 0 slow in the first half and rank 1 in the second read as jitter (the
job's step never changed, only who set it).  So the series searched for a change are the job's step (the critical
path's length) and the own work on the path of the ranks with the largest shares (``SERIES_RANKS``), tested together
(``changepoint.change_points``), and beside them for an episode too short for such tests that stands out by its size
(``changepoint.size_episode``: a rank slow in steps 8-10 of 12); a change splits the steps into its segment and the
others, each judged alone.  Where the parts' verdicts name other ranks than the whole run's, the verdict of the part
whose named ranks cost the most time (gain x steps) stands, told with its steps, the change and the other part's
verdict; else the whole run's, as where a part's named ranks do not stand (``by_regime``'s ``stands``).  No part has
fewer than ``changepoint.MIN_STEPS`` steps: the change must hold for at least that many steps on each side.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Generic, Protocol, TypeVar

import numpy as np

from ...numlist import number_list, ranks_text
from .changepoint import ChangePoint, change_points, size_episode
from .spread import spread

SERIES_RANKS = 2  # ranks whose own work on the path is searched for a change, largest shares first


class StepLike(Protocol):
    """A step's critical path (``crossrank.critpath.StepPath``): its number, length and each rank's own work."""

    @property
    def step(self) -> int: ...
    @property
    def length_ns(self) -> int: ...
    def own_ns(self) -> Mapping[int, int]: ...


class Told(Protocol):
    """A verdict (``crossrank.rootcause.RootCause``): the ranks it names, their gain, its sentence."""

    @property
    def ranks(self) -> tuple[int, ...]: ...
    @property
    def predicted_gain_ms(self) -> float | None: ...
    @property
    def text(self) -> str: ...


G = TypeVar("G")
P = TypeVar("P", bound=StepLike)
V = TypeVar("V", bound=Told)


@dataclass(frozen=True, slots=True, kw_only=True)
class Regime(Generic[V]):
    """The part whose verdict stands: the verdict, its steps (and their indices), the change, what changed, the
    first and last step that changed, and the sentence that tells it."""

    verdict: V
    steps: tuple[int, ...]
    indices: list[int]
    change: ChangePoint
    what: str
    change_steps: tuple[int, int]
    changed: tuple[int, ...]  # every step that changed: from the change on, or the episode's (in one run or several)
    text: str


def _changes(paths: Sequence[StepLike]) -> list[tuple[ChangePoint, str]]:
    """The changes among the series, tested together (one permutation of the steps for all), and what changed: the
    order tests' change, then an episode too short for them told by its size (``size_episode``), where found."""
    own = [p.own_ns() for p in paths]
    share = {r: float(np.median([d.get(r, 0) for d in own])) for r in {r for d in own for r in d}}
    top = sorted(share, key=lambda r: (-share[r], r))[:SERIES_RANKS]
    names = ["The job's step", *(f"Rank {r}'s own work on the critical path" for r in top)]
    series = [[float(p.length_ns) for p in paths], *([float(d.get(r, 0)) for d in own] for r in top)]
    # searched again without the job's one-off stalls (``spread``'s outliers), each change found mapped back
    # onto every step: one stall slower than the slow regime among six fast steps and six slow read p = 0.2; but the
    # first step of an episode may be such a "stall" too (40 ms beside 32 and 34 ms in steps of 4-15 ms)
    sp = spread(series[0], [str(i) for i in range(len(paths))], [p.step for p in paths])
    drop = {int(o.label) for o in sp.outliers} if sp is not None else set()
    keeps = [list(range(len(paths)))] + ([[i for i in range(len(paths)) if i not in drop]] if drop else [])
    out: list[tuple[ChangePoint, str]] = []
    for keep in keeps:
        kept = [[v[i] for i in keep] for v in series]
        for found in (change_points(kept), size_episode(kept)):
            cp = None if found is None else _onto(found, keep, len(paths))
            if cp is not None and all((c.members, c.series) != (cp.members, cp.series) for c, _ in out):
                out.append((cp, names[cp.series]))
    return out


def _onto(cp: ChangePoint, keep: list[int], n: int) -> ChangePoint:
    """A change found among the steps ``keep`` (indices of all ``n``), as a segment of all of them: a stall inside
    it is in it, one at its edge outside it; a segment from the first kept step starts at the first step."""
    if len(keep) == n:
        return cp
    return replace(cp, start=0 if cp.start == 0 else keep[cp.start], stop=keep[cp.stop - 1] + 1, n=n,
                   segments=tuple((keep[a], keep[b - 1] + 1) for a, b in cp.segments))


def by_regime(graphs: Sequence[G], paths: Sequence[P], verdict: Callable[[list[G], list[P]], V], whole: V,
              stands: Callable[[V], bool] = lambda v: True) -> Regime[V] | None:
    """The part whose verdict stands where a change split the steps, or None: no change, or no part that tells
    otherwise than ``whole``.  ``stands``: whether a part's named ranks may stand for it (a part's verdict resting on
    a count of steps chance gives does not: a quiet run's first 4 steps named a rank in 3 of them, p = 0.62).  The
    changes are each judged (``_changes``) and the regime whose named ranks cost the most time stands, as between a
    change's parts: a job faster in its last five steps split 16 steps where none named a rank, or named rank 1 with
    3.4 ms over steps 2-10, beside rank 1's 25 ms in steps 8-10 that its size told."""
    changes = _changes(paths)
    found = [r for r in (_judged(graphs, paths, verdict, whole, stands, cp, what) for cp, what in changes)
             if r is not None]
    best = max(found, key=lambda r: (r.verdict.predicted_gain_ms or 0.0) * len(r.steps), default=None)
    if best is None:
        return None
    # the other changes, where they changed other steps (the same change found with and without a stall is one)
    mine = set(_changed(best.change))
    also = [told(cp, what, [p.step for p in paths]) for cp, what in changes if not mine & set(_changed(cp))]
    return replace(best, text=best.text + "".join(f" Also, {t[0].lower()}{t[1:]}." for t in also))


def in_steps(graphs: Sequence[G], paths: Sequence[P], verdict: Callable[[list[G], list[P]], V],
             steps: Collection[int], ranks: Collection[int]) -> tuple[V, list[int]] | None:
    """The verdict judged in ``steps`` alone (those a rank's work every k steps delays, ``periodic``) and their
    indices, where it names some of ``ranks`` and no other; None where they are fewer than 2 or every step.  Over
    every step such a rank holds a minority of them (1 in 3, and the next as its peers wait), its median gain a
    coin toss: "no single rank" in 1 of 6 quiet runs of a checkpoint every third step."""
    ix = [i for i, p in enumerate(paths) if p.step in steps]
    if len(ix) < 2 or len(ix) == len(paths):
        return None
    v = verdict([graphs[i] for i in ix], [paths[i] for i in ix])
    return (v, ix) if v.ranks and set(v.ranks) <= set(ranks) else None


def _judged(graphs: Sequence[G], paths: Sequence[P], verdict: Callable[[list[G], list[P]], V], whole: V,
            stands: Callable[[V], bool], cp: ChangePoint, what: str) -> Regime[V] | None:
    everything = list(range(len(paths)))
    inside = list(cp.members)
    parts = [inside, [i for i in everything if i not in inside]]
    verdicts = [verdict([graphs[i] for i in ix], [paths[i] for i in ix]) for ix in parts]
    named = [bool(v.ranks) and stands(v) for v in verdicts]
    if not any(named) or all((v.ranks if n else ()) == whole.ranks for v, n in zip(verdicts, named, strict=True)):
        return None
    # the part whose named ranks cost the most time over the run: a short head that names a rank does not outweigh
    # the steady state
    k = max((0, 1), key=lambda j: (named[j], (verdicts[j].predicted_gain_ms or 0.0) * len(parts[j])))
    a, b, _ms = cp.changed
    return Regime(verdict=verdicts[k], steps=tuple(paths[i].step for i in parts[k]), indices=parts[k], change=cp,
                  what=what, change_steps=(paths[a].step, paths[b - 1].step),
                  changed=tuple(paths[i].step for i in _changed(cp)),
                  text=_text(cp, what, [p.step for p in paths], inside=k == 0, held=len(parts[k]), best=verdicts[k],
                             other=verdicts[1 - k] if named[1 - k] else None))


def _text(cp: ChangePoint, what: str, steps: list[int], *, inside: bool, held: int, best: Told,
          other: Told | None) -> str:
    if cp.lasting:
        later = not inside  # a lasting change's segment is the steps before it
        lead = f"From step {steps[cp.at]} on" if later else f"Until step {steps[cp.at - 1]}"
        where = "before it" if later else "after it"
    else:
        lead = f"In steps {_where(cp, steps)}" if inside else f"Outside steps {_where(cp, steps)}"
        where = "in the other steps" if inside else "in those steps"
    if other is not None:
        then = f"{ranks_text(other.ranks)} held the job back (-{other.predicted_gain_ms or 0:.2f} ms a step)"
    else:
        then = "no single rank held the job back"
    return (f"{lead} ({held} of {len(steps)} analyzed steps), {best.text[0].lower()}{best.text[1:]} "
            f"{told(cp, what, steps)}; {where} {then}.")


def told(cp: ChangePoint, what: str, steps: Sequence[int]) -> str:
    """The change in words: what changed, where, by how much, and how it was told."""
    if cp.p is not None:
        how = f"p = {cp.p:.3f} that the steps' order is chance"
    else:  # by its size: how far its least step is above every other step, and above their median
        sds = f" and {math.floor(cp.sds)} robust deviations or more above their median" if (
            cp.sds is not None and math.isfinite(cp.sds)) else ""
        how = f"told by its size: each of its steps {(cp.gap or 0.0) / 1e6:.2f} ms or more above every other step{sds}"
    if cp.lasting:
        return (f"{what} changed for good at step {steps[cp.at]} (median {cp.inside / 1e6:.2f} ms before, "
                f"{cp.outside / 1e6:.2f} ms from then on; {how})")
    return (f"{what} changed in steps {_where(cp, steps)} (median {cp.inside / 1e6:.2f} ms there, "
            f"{cp.outside / 1e6:.2f} ms in the other steps; {how})")


def _where(cp: ChangePoint, steps: Sequence[int]) -> str:
    """The changed steps of an episode: "8-10", or "4-6, 11-13" for one in several runs."""
    return number_list((steps[i] for i in cp.members), min_run=2)


def _changed(cp: ChangePoint) -> range | tuple[int, ...]:
    """The indices of the steps that changed: from the change on, or the episode's."""
    return range(cp.stop, cp.n) if cp.lasting else cp.members
