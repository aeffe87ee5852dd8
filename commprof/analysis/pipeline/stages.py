"""Pipeline (model-parallel) stages and the partition advisor.

Stages are the ranks, in rank order, each holding the layers it recorded with ``trace(modules=...)``.
Per layer: forward and backward time per micro-batch and the bytes of its output (the activation a stage
boundary after it sends, and whose gradient comes back).  Per stage: compute per step, activation bytes and
transfer time per micro-batch, and the bubble (the part of the step the stage does not compute).

Partition advisor: the contiguous split of the layers into k stages that minimises the slowest stage, a
stage costing the sum of its layers' forward + backward time plus, except for the last, sending its output
activation and receiving its gradient (dynamic programming, O(n^2 k)).  The step time of a split is a
simulation of the GPipe schedule (all forwards, then all backwards, one micro-batch at a time per stage)
with the layer times scaled by (step outside the profiler / profiled step); what the simulation misses
(optimizer, host overhead) is the difference between the measured step of the traced split outside the
profiler and its simulation, carried over to the advised split.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ... import ops
from ...model import RankTrace, Run
from ..crossrank.p2p import NO_LINKS, Links, transfer_ns
from ..perrank import RankDigest, compute_busy


@dataclass(frozen=True, slots=True)
class Layer:
    name: str
    stage: int
    fwd_ms: float  # per micro-batch
    bwd_ms: float
    out_bytes: int


@dataclass(frozen=True, slots=True)
class Stage:
    rank: int
    layers: int
    compute_ms: float  # per step, the mean over the recorded steps
    bubble_ms: float  # step - compute (means)
    microbatches: int
    sent_bytes: int  # activations and gradients sent per micro-batch
    transfer_ms: float  # per micro-batch: its sends' and recvs' transfer time (matched pairs, waits removed)


@dataclass(frozen=True, slots=True)
class Partition:
    split: tuple[int, ...]
    slowest_stage_ms: float
    step_ms: float


@dataclass(frozen=True, slots=True)
class PipelineReport:
    layers: tuple[Layer, ...]
    stages: tuple[Stage, ...]
    current: Partition | None
    best: Partition | None
    link_bps: float | None


def _layers(rt: RankTrace) -> tuple[list[Layer], int]:
    sc = rt.sidecar
    if sc is None or not sc.module_calls:
        return [], 0
    by_name: dict[str, list] = {}
    per_step: dict[int, int] = {}
    for c in sc.module_calls:
        by_name.setdefault(c.name, []).append(c)
    order = list(sc.module_order) or sorted(by_name)
    out = []
    for name in order:
        calls = by_name.get(name, [])
        if not calls:
            continue
        fwd = [c.fwd_end_ns - c.fwd_start_ns for c in calls]
        bwd = [c.bwd_end_ns - c.bwd_start_ns for c in calls if c.bwd_end_ns is not None and c.bwd_start_ns is not None]
        out.append(Layer(name, rt.rank, float(np.median(fwd)) / 1e6, float(np.median(bwd)) / 1e6 if bwd else 0.0,
                         int(np.median([c.out_bytes for c in calls]))))
    first = by_name.get(order[0], []) if order else []
    for c in first:
        per_step[c.step] = per_step.get(c.step, 0) + 1
    m = int(np.median(list(per_step.values()))) if per_step else 0
    return out, m


def _link_bps(lk: Links) -> float | None:
    """Point-to-point bandwidth: the median over the matched send/recv pairs of bytes / transfer time
    (``p2p.transfer_ns``: a send or recv alone lasts while it waits for its peer, on gloo a send until its wait())."""
    rates = [float(b) / (t / 1e9) for g in lk.groups for b, t in zip(g.nbytes, transfer_ns(g), strict=True)
             if b > 0 and t > 0]
    return float(np.median(rates)) if rates else None


def _transfer_ms(lk: Links, rank: int, steps: set[int]) -> float:
    """The transfer time of the pairs this rank sent or received in ``steps``, added up (ms)."""
    return sum(float(transfer_ns(g)[np.isin(g.steps, list(steps))].sum()) for g in lk.groups if rank in g.ranks) / 1e6


def stage_costs(layers: Sequence[Layer], link_bps: float | None) -> tuple[np.ndarray, np.ndarray]:
    comp = np.array([lay.fwd_ms + lay.bwd_ms for lay in layers])
    xfer = np.array([2 * lay.out_bytes / link_bps * 1e3 if link_bps else 0.0 for lay in layers])
    return comp, xfer


def best_split(comp: np.ndarray, xfer: np.ndarray, k: int) -> tuple[tuple[int, ...], float]:
    """Contiguous split of len(comp) layers into k non-empty stages minimising the slowest stage."""
    n = comp.size
    if k <= 0 or n < k:
        raise ValueError(f"cannot split {n} layers into {k} stages")
    pre = np.concatenate([[0.0], np.cumsum(comp)])
    inf = float("inf")
    # cost[j][i]: best slowest stage for the first i layers in j stages; arg[j][i]: start of the last stage
    cost = np.full((k + 1, n + 1), inf)
    arg = np.zeros((k + 1, n + 1), dtype=int)
    cost[0][0] = 0.0
    for j in range(1, k + 1):
        for i in range(j, n + 1):
            for s in range(j - 1, i):
                stage = pre[i] - pre[s] + (xfer[i - 1] if i < n else 0.0)
                c = max(cost[j - 1][s], stage)
                if c < cost[j][i]:
                    cost[j][i], arg[j][i] = c, s
    split = []
    i = n
    for j in range(k, 0, -1):
        s = arg[j][i]
        split.append(i - s)
        i = s
    return tuple(int(x) for x in reversed(split)), float(cost[k][n])


def slowest(comp: np.ndarray, xfer: np.ndarray, split: Sequence[int]) -> float:
    out, lo = 0.0, 0
    for j, size in enumerate(split):
        hi = lo + size
        out = max(out, float(comp[lo:hi].sum()) + (float(xfer[hi - 1]) if j < len(split) - 1 else 0.0))
        lo = hi
    return out


def simulate_gpipe(layers: Sequence[Layer], split: Sequence[int], m: int, link_bps: float | None) -> float:
    """Makespan (ms) of one GPipe step: every micro-batch forward through the stages, then every backward in
    reverse, each stage busy with one micro-batch at a time, activations and gradients sent between stages."""
    k = len(split)
    bounds = np.cumsum([0, *split])
    fwd = [sum(lay.fwd_ms for lay in layers[bounds[j]:bounds[j + 1]]) for j in range(k)]
    bwd = [sum(lay.bwd_ms for lay in layers[bounds[j]:bounds[j + 1]]) for j in range(k)]
    send = [2 * layers[bounds[j + 1] - 1].out_bytes / 2 / link_bps * 1e3 if link_bps and j < k - 1 else 0.0
            for j in range(k)]  # one direction per pass
    free = [0.0] * k
    done = np.zeros((k, m))
    for i in range(m):
        for j in range(k):
            ready = done[j - 1, i] + send[j - 1] if j > 0 else 0.0
            start = max(free[j], ready)
            free[j] = done[j, i] = start + fwd[j]
    back = np.zeros((k, m))
    for i in reversed(range(m)):
        for j in reversed(range(k)):
            ready = back[j + 1, i] + send[j] if j < k - 1 else done[j, m - 1] if i == m - 1 else 0.0
            start = max(free[j], ready)
            free[j] = back[j, i] = start + bwd[j]
    return float(max(free))


def pipeline(run: Run, unprofiled_ms: dict[int, float], digests: Mapping[int, RankDigest] | None = None,
             lk: Links = NO_LINKS, kept: Mapping[int, Iterable[int]] | None = None) -> PipelineReport | None:
    """``kept``: per rank, the steps its headline figures are the mean of (the analyzed steps, outliers left out):
    the stages' figures are over the same ones."""
    per_rank = [(rt, *_layers(rt)) for rt in run.ranks]
    per_rank = [(rt, lays, m) for rt, lays, m in per_rank if lays]
    if not per_rank:
        return None
    layers = [lay for _rt, lays, _m in per_rank for lay in lays]
    link = _link_bps(lk)
    stages = []
    for rt, lays, m in per_rank:
        recorded = {c.step for c in (rt.sidecar.module_calls if rt.sidecar else ())}
        if kept is not None and rt.rank in kept:
            recorded &= set(kept[rt.rank])
        steps = [s for s in rt.steps if s.number in recorded]
        numbers = {s.number for s in steps}
        busy = [compute_busy(rt, s.number, (digests or {}).get(rt.rank)) for s in steps]
        # the mean over the steps, as the per-rank table's (its medians read 553.99 beside the table's 530.67)
        step_ms = float(np.mean([s.duration_ns for s in steps])) / 1e6 if steps else 0.0
        comp_ms = float(np.mean(busy)) / 1e6 if busy else 0.0
        sends = [c for c in rt.collectives if c.op == ops.SEND and c.step in numbers]
        n_steps = max(len(steps), 1)
        per_mb = max(m, 1) * n_steps
        stages.append(Stage(rt.rank, len(lays), comp_ms, max(step_ms - comp_ms, 0.0), m,
                            int(sum(c.bytes for c in sends) / per_mb), _transfer_ms(lk, rt.rank, numbers) / per_mb))
    k = len(per_rank)
    m = max(per_rank[0][2], 1)
    comp, xfer = stage_costs(layers, link)
    cur_split = tuple(len(lays) for _rt, lays, _m in per_rank)
    cur_slow = slowest(comp, xfer, cur_split)
    measured = [unprofiled_ms[rt.rank] for rt, _l, _m in per_rank if rt.rank in unprofiled_ms]
    if not measured:
        measured = [s.compute_ms + s.bubble_ms for s in stages]
    step_cur = max(measured)
    # layer times come from profiled steps: scale them by how much the profiler slowed the step down
    profiled = [float(np.median([s.duration_ns for s in rt.steps])) / 1e6 for rt, _l, _m in per_rank if rt.steps]
    ratio = min(step_cur / max(profiled), 1.0) if profiled and max(profiled) > 0 else 1.0
    layers = [Layer(lay.name, lay.stage, lay.fwd_ms * ratio, lay.bwd_ms * ratio, lay.out_bytes) for lay in layers]
    comp, xfer = stage_costs(layers, link)
    cur_slow = slowest(comp, xfer, cur_split)
    # the simulated schedule misses the optimizer and host overhead: carried over as a constant
    extra = step_cur - simulate_gpipe(layers, cur_split, m, link)
    current = Partition(cur_split, cur_slow, step_cur)
    best = None
    if k >= 2 and len(layers) >= k:
        split, slow = best_split(comp, xfer, k)
        best = Partition(split, slow, simulate_gpipe(layers, split, m, link) + extra)
    return PipelineReport(tuple(layers), tuple(stages), current, best, link)
