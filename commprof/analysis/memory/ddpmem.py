"""The step memory a traced FSDP2 step would hold under DDP, read off its own memory timeline (``profile_memory``).

The timeline (``RankTrace.memory_line``: on CPU the live tensor bytes of ``reader/memory/memline.py``, which leave
out what was allocated before profiling, i.e. the sharded state; on GPUs the allocator's total) is what FSDP2 held.
DDP at each instant = the timeline, less what only FSDP2 holds then, plus what only DDP holds then.  From the
step's ``FSDP::`` record functions, per unit:

- FSDP2 only: the all-gather's flat output (``all_gather`` to the end of its ``all_gather_copy_out``); the
  unsharded parameters (from the copy-out until FSDP2 reshards them: after the unit's forward where a backward
  all-gather follows, else after its backward); the reduce-scatter's flat input (from ``post_backward_reduce``
  until the next unit's ``post_backward_rs_wait``, or the root's post-backward callback, waits for it); and,
  where the gradients are allocated in the step (``zero_grad(set_to_none=True)``, torch's default), the gradient
  shard from the unit's reduce-scatter to the step's end;
- DDP only: the unit's full gradients from the end of its backward to the step's end (FSDP2 frees them after its
  reduce-scatter; DDP keeps them for the optimizer).  Where DDP's gradients are state (``gradient_as_bucket_view=
  True``: they are its buckets; or gradients kept across steps), they count nowhere in the step, and FSDP2's
  unsharded gradients (from the unit's backward to its reduce-scatter) are taken off too.
- The optimizer's temporaries: inside ``Optimizer.step`` the timeline's rise over its level at the step's start
  is the optimizer's work on shards; DDP's runs on the full parameters, ``world`` times as large, on top of DDP's
  level then (the timeline's level plus what only DDP holds, minus what only FSDP2 holds, at that instant).

The activations, the loss and everything else in the timeline stay as they are: DDP computes the same.  Gradients
count as step memory when the timeline, after the last reduce-scatter, stands at least half the gradient shards
above its start; else they are state (kept across steps), and both sides leave them out here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...model import FSDPEvent, Mark
from ...model.alloc import OPTIMIZER_STEP

LINE_BUCKET_NS = 100_000  # the timeline keeps the largest value per 100 µs (``RankTrace.memory_line``)


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitBytes:
    name: str
    unsharded_bytes: int  # as FSDP2 all-gathers it (its parameter dtype): unsharded parameters, reduce-scatter input
    shard_bytes: int  # one rank's shard of the parameters (and of their gradients)
    full_bytes: int  # the parameters (and their gradients) whole, in their own dtype: what DDP holds per rank


@dataclass(frozen=True, slots=True, kw_only=True)
class StepMemory:
    today_peak: int  # the traced step's highest value of the timeline
    ddp_peak: int  # the step's highest value under DDP (same basis: on CPU without the state)
    ddp_peak_view: int  # the same with gradient_as_bucket_view=True
    grads_in_step: bool


def _after(ev: Sequence[FSDPEvent], phase: str, unit: str, t: int) -> FSDPEvent | None:
    return next((e for e in ev if e.phase == phase and e.unit == unit and e.start_ns >= t), None)


def _held(ev: Sequence[FSDPEvent], u: UnitBytes, bwd_start: int, end: int) -> list[tuple[int, int, int]]:
    """(from, to, bytes) FSDP2 alone holds for unit ``u``'s parameters: the all-gathers' flat outputs and the
    unsharded parameters."""
    out = []
    gathers = [e for e in ev if e.phase == "all_gather" and e.unit == u.name]
    back = any(e.start_ns >= bwd_start for e in gathers)
    for e in gathers:
        co = _after(ev, "all_gather_copy_out", u.name, e.start_ns)
        if e.start_ns < bwd_start and back:
            rel = _after(ev, "post_forward", u.name, e.start_ns)
        else:
            rel = _after(ev, "post_backward_reshard", u.name, e.start_ns)
        release = rel.end_ns if rel is not None else end
        if co is not None and co.start_ns > release:
            co = None
        out.append((e.start_ns, co.end_ns if co is not None else e.end_ns, u.unsharded_bytes))
        out.append((co.start_ns if co is not None else e.end_ns, release, u.unsharded_bytes))
    return out


def _rs_freed(ev: Sequence[FSDPEvent], red: FSDPEvent) -> int:
    """When FSDP2 frees a reduce-scatter's input: it keeps it until the next unit's post-backward waits for the
    reduce-scatter (``post_backward_rs_wait``), the last one until the root's post-backward callback."""
    waits = [e.end_ns for e in ev if e.phase in ("post_backward_rs_wait", "root_post_backward_callback")
             and e.start_ns >= red.end_ns]
    return min(waits, default=red.end_ns)


def _deltas(ev: Sequence[FSDPEvent], units: Sequence[UnitBytes], bwd_start: int, end: int, grads_in_step: bool,
            view: bool) -> list[tuple[int, int, int]]:
    """(from, to, DDP's bytes minus FSDP2's) over the step."""
    out = []
    by_unit: dict[str, list[FSDPEvent]] = {}
    for e in ev:  # in start order
        by_unit.setdefault(e.unit, []).append(e)
    waits = [e for e in ev if e.phase in ("post_backward_rs_wait", "root_post_backward_callback")]
    for u in units:
        mine = by_unit.get(u.name, [])
        out += [(a, b, -n) for a, b, n in _held(mine, u, bwd_start, end)]
        red = _after(mine, "post_backward_reduce", u.name, bwd_start)
        if red is None:
            continue
        out.append((red.start_ns, _rs_freed(waits, red), -u.unsharded_bytes))  # the reduce-scatter's flat input
        if grads_in_step:  # the gradient shard goes; DDP keeps the full gradients (unless they are its buckets)
            out.append((red.end_ns, end, (0 if view else u.full_bytes) - u.shard_bytes))
        if view or not grads_in_step:  # DDP's gradients are state: FSDP2's unsharded ones are not step memory there
            pre = _after(mine, "pre_backward", u.name, bwd_start)
            out.append((pre.end_ns if pre is not None else red.start_ns, red.end_ns, -u.unsharded_bytes))
    return out


def _at(t: np.ndarray, deltas: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """The deltas at each of the timeline's points: a point is the largest value of the ``LINE_BUCKET_NS`` from it,
    so a block held at any time in that span counts (the largest value most likely saw it)."""
    diff = np.zeros(t.size + 1, np.int64)  # t is in time order: each delta adds to one run of points
    for a, b, n in deltas:
        lo, hi = np.searchsorted(t, a - LINE_BUCKET_NS, side="right"), np.searchsorted(t, b, side="left")
        if hi > lo:
            diff[lo] += n
            diff[hi] -= n
    return np.cumsum(diff[:-1])


def grads_in_step(t: np.ndarray, v: np.ndarray, ev: Sequence[FSDPEvent], units: Sequence[UnitBytes],
                  end: int) -> bool:
    """Gradients allocated in the step: after the last reduce-scatter the timeline stands at least half the
    gradient shards above the step's start."""
    reds = [e.end_ns for e in ev if e.phase == "post_backward_reduce"]
    shards = sum(u.shard_bytes for u in units)
    if not reds or not v.size or shards <= 0:
        return False
    after = (t >= max(reds)) & (t <= end)
    return bool(after.any() and int(v[after].max()) - int(v[0]) >= 0.5 * shards)


def _optimizer(t: np.ndarray, v: np.ndarray, ddp: np.ndarray, marks: Sequence[Mark], world: int,
               deltas: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """Inside each optimizer step: DDP's level at its start plus ``world`` times the timeline's rise over its
    level then (the lowest of the point before it and those inside it: the optimizer's temporaries come on top)."""
    out = ddp.copy()
    for m in marks:
        if m.kind != OPTIMIZER_STEP:
            continue
        w = (t >= m.start_ns) & (t <= m.end_ns)
        if not w.any():
            continue
        before = np.nonzero(t < m.start_ns)[0]
        ref = int(v[w].min()) if not before.size else min(int(v[before[-1]]), int(v[w].min()))
        level = ref + sum(n for a, b, n in deltas if a <= m.start_ns < b)
        out[w] = level + np.maximum(v[w] - ref, 0) * world
    return out


def step_memory(line: np.ndarray, ev: Sequence[FSDPEvent], units: Sequence[UnitBytes], window: tuple[int, int],
                marks: Sequence[Mark], world: int) -> StepMemory | None:
    """The traced step's peak and DDP's, on the timeline's basis; None without a timeline or backward in the step."""
    start, end = window
    m = (line[0] >= start) & (line[0] <= end)
    evs = [e for e in ev if start <= e.start_ns <= end]
    pbs = [e.start_ns for e in evs if e.phase == "pre_backward"]
    if not m.any() or not pbs:
        return None
    t, v = line[0][m], line[1][m]
    bwd_start = min(pbs)
    grads = grads_in_step(t, v, evs, units, end)
    opts = [k for k in marks if start <= k.start_ns <= end]
    peaks = []
    for view in (False, True):
        deltas = _deltas(evs, units, bwd_start, end, grads, view)
        peaks.append(int(_optimizer(t, v, v + _at(t, deltas), opts, world, deltas).max()))
    return StepMemory(today_peak=int(v.max()), ddp_peak=peaks[0], ddp_peak_view=peaks[1], grads_in_step=grads)
