"""A slow link as the cause: a rank whose collectives' transfers take longer than the same collectives of other
process groups, waits removed.

A collective ends at nearly the same moment on every member (clocks are aligned on that, ``matching``): a rank with a
slow link slows the whole collective for every member, and its own end says nothing alone.  What shows is its
groups: an instance's transfer (the median over its members of end - last arrival, ``critgraph``: waiting removed)
against the *same collective* of the sibling groups: the k-th collective of that op in the step, in the other
process groups of the same size (tensor-parallel groups each running layer k's all-reduce).  Per group, over those
comparisons:

- a group is slow when its transfer is longer than the median of its siblings' more often than chance (a one-sided
  sign test at ``ALPHA`` over the groups) and by ``SLOW_RATIO`` or more at the median;
- the rank is the one member every slow group shares (a tensor-parallel group and a data-parallel group crossing at
  one rank); a slow group whose ranks no other slow group narrows down names no single rank;
- and cutting its slow groups' transfers to their siblings' median (a replay) shortens the step by more than
  ``STANDOUT`` times what the other groups' excess over their siblings' gives (90th percentile over groups and
  steps), in most steps, and by ``MIN_GAIN_FRACTION`` of the step.

A rank that arrives late makes the others wait: its collectives' transfers are no longer, never a slow link.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .critgraph import StepGraph, length
from .critgraph import replay as run_replay

SLOW_RATIO = 1.2
STANDOUT = 2.0
MIN_GAIN_FRACTION = 0.02
ALPHA = 0.05
JITTER_QUANTILE = 0.9


@dataclass(frozen=True, slots=True, kw_only=True)
class SlowLink:
    rank: int
    ratio: float  # its slow groups' transfers / their siblings' median, median over the comparisons
    ops: tuple[str, ...]  # the operations compared
    groups: tuple[str, ...]  # its slow process groups
    gains: np.ndarray  # ns per analyzed step: the step shorter by this at its siblings' transfer speed
    jitter: float  # ns: the bar's base (the other groups' excess, 90th percentile)
    held: int  # steps in which its gain stood out


@dataclass(slots=True)
class _Cmp:
    """Per analyzed step: each instance's transfer and the median of the same collective in its sibling groups."""

    tr: list[np.ndarray]
    sib: list[np.ndarray]  # NaN: no sibling


def _compare(graphs: Sequence[StepGraph]) -> _Cmp:
    out = _Cmp([], [])
    for g in graphs:
        n_inst = int(g.inst_level.size)
        size = np.bincount(g.pair_inst, minlength=n_inst)
        tr = _inst_median(g.pair_inst, g.transfer, n_inst)
        keys: dict[tuple[str, int, int], dict[int, int]] = {}
        seen: dict[tuple[int, str], int] = {}
        for i in range(n_inst):
            if g.inst_link[i]:
                continue
            gi, op = int(g.inst_group[i]), g.inst_op[i]
            k = seen.get((gi, op), 0)
            seen[(gi, op)] = k + 1
            keys.setdefault((op, int(size[i]), k), {})[gi] = i
        sib = np.full(n_inst, np.nan)
        for members in keys.values():
            if len(members) < 2:
                continue
            for gi, i in members.items():
                sib[i] = float(np.median([tr[j] for h, j in members.items() if h != gi]))
        out.tr.append(tr)
        out.sib.append(sib)
    return out


def _inst_median(inst: np.ndarray, x: np.ndarray, n_inst: int) -> np.ndarray:
    """The median of ``x`` per instance (0 for an instance without pairs)."""
    if x.size == 0:
        return np.zeros(n_inst)
    order = np.lexsort((x, inst))
    xs = x[order].astype(np.float64)
    counts = np.bincount(inst, minlength=n_inst)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    lo = np.minimum(starts + (counts - 1) // 2, xs.size - 1)
    hi = np.minimum(starts + counts // 2, xs.size - 1)
    return np.where(counts > 0, (xs[lo] + xs[hi]) / 2, 0.0)


def _sign_p(longer: int, shorter: int) -> float:
    n = longer + shorter
    return sum(math.comb(n, k) for k in range(longer, n + 1)) / 2 ** n if n else 1.0


def _slow_groups(graphs: Sequence[StepGraph], cmp: _Cmp) -> tuple[dict[int, float], dict[int, np.ndarray]]:
    """The slow groups (index -> median ratio) and every compared group's excess over its siblings per step."""
    rows: dict[int, list[tuple[float, float]]] = {}
    excess: dict[int, np.ndarray] = {}
    for si, (g, tr, sib) in enumerate(zip(graphs, cmp.tr, cmp.sib, strict=True)):
        for i in np.flatnonzero(~np.isnan(sib)).tolist():
            gi = int(g.inst_group[i])
            rows.setdefault(gi, []).append((tr[i], sib[i]))
            excess.setdefault(gi, np.zeros(len(graphs)))[si] += max(tr[i] - sib[i], 0.0)
    alpha = ALPHA / max(len(rows), 1)
    slow = {}
    for gi, r in rows.items():
        a = np.array(r)
        ratio = float(np.median(a[:, 0] / np.maximum(a[:, 1], 1.0)))
        if ratio >= SLOW_RATIO and _sign_p(int((a[:, 0] > a[:, 1]).sum()), int((a[:, 0] < a[:, 1]).sum())) <= alpha:
            slow[gi] = ratio
    return slow, excess


def _cut(g: StepGraph, tr: np.ndarray, sib: np.ndarray, groups: set[int]) -> StepGraph:
    """``g`` with the transfers of ``groups``' instances scaled down to their siblings' median."""
    cut = np.isin(g.inst_group, list(groups)) & ~np.isnan(sib) & (tr > 0)
    factor = np.where(cut, np.minimum(np.nan_to_num(sib, nan=0.0) / np.maximum(tr, 1.0), 1.0), 1.0)
    return replace(g, transfer=(g.transfer * factor[g.pair_inst]).astype(np.int64))


def slow_link(graphs: Sequence[StepGraph], lens: np.ndarray) -> SlowLink | None:
    """The rank with a slow link, or None (definitions in the module's docstring)."""
    if not graphs:
        return None
    cmp = _compare(graphs)
    slow, excess = _slow_groups(graphs, cmp)
    if not slow:
        return None
    members: dict[int, set[int]] = {}
    for g in graphs:
        for gi in slow:
            members.setdefault(gi, set()).update(g.pair_rank[np.isin(g.pair_inst, np.flatnonzero(g.inst_group == gi))]
                                                 .tolist())
    common = set.intersection(*members.values())
    if len(common) != 1:  # one slow group alone, or slow groups that share no rank: no single rank to name
        return None
    rank = next(iter(common))
    gains = np.array([max(length(g, run_replay(g)) - length(g, run_replay(_cut(g, tr, sib, set(slow)))), 0)
                      for g, tr, sib in zip(graphs, cmp.tr, cmp.sib, strict=True)], dtype=np.float64)
    rest = [v for gi, v in excess.items() if gi not in slow]
    jitter = float(np.quantile(np.concatenate(rest), JITTER_QUANTILE)) if rest else 0.0
    best_other = np.max(np.vstack(rest), axis=0) if rest else np.zeros(len(graphs))
    held = int((gains > STANDOUT * best_other).sum())
    med = float(np.median(gains))
    if med <= STANDOUT * jitter or 2 * held <= len(graphs) or med < MIN_GAIN_FRACTION * float(np.median(lens)):
        return None
    names = graphs[0].groups
    ops = sorted({g.inst_op[i] for g in graphs for i in np.flatnonzero(np.isin(g.inst_group, list(slow))).tolist()})
    return SlowLink(rank=rank, ratio=float(np.median(list(slow.values()))), ops=tuple(ops),
                    groups=tuple(names[gi] for gi in sorted(slow)), gains=gains, jitter=jitter, held=held)
