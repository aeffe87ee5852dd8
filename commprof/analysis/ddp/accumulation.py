"""Gradient accumulation as the trace shows it, and the all-reduces it wastes.

A step of a DDP job may run several forward/backward passes (micro-batches) before its optimizer step.  DDP
all-reduces the gradients at the end of every backward pass unless it runs under ``model.no_sync()``: accumulating
without it pays the gradients' communication once per micro-batch where once per step gives the same gradients
(the all-reduce of the summed gradients is the sum of the all-reduced ones).

From the trace alone (traces made without commprof too): the micro-batches of a step are the calls of DDP's forward
(its record function ``DistributedDataParallel.forward``) in the step's ``ProfilerStep`` that follow a backward pass
(the autograd engine's ``AccumulateGrad`` since the last; the first call always: several DDP modules called in one
forward pass are one micro-batch), each from its start to the next one's (the first from the step's start, the last
to the step's end).  A micro-batch synchronized the gradients
when it issued all-reduces of at least ``SYNCED_SHARE`` of the bytes the last one issued (the step's own
synchronization; a logged loss is a few bytes).

The prediction with ``no_sync()`` on every micro-batch but the last, per step: the step less what the synchronized
micro-batches before the last spent on it, their exposed communication and their reducer's work (CPU traces: DDP's
``reducer::`` operators, which copy gradients into the buckets and back); the median over the steps, scaled to the
step outside the profiler like every replay.  That is the pessimistic end: the compute keeps the speed it had beside
the transfers.  Over gloo the transfers are CPU work on the cores the backward pass runs on, so the backward runs
faster without them: the optimistic end runs each early micro-batch in the compute of the least contended micro-batch
of the traced steps (its reducer's work left out), and the prediction is the middle of the two ends, the band
reaching both.  Measured on the 2-core test machine (4 micro-batches of a 4-layer MLP, 2
ranks): per early micro-batch 8-13 ms synchronized, 3.5-4 ms under ``no_sync()``, of which the exposed transfer
and the reducer's 0.4 ms explain all but 0.5-0.9 ms (the compute beside gloo's threads).  The other DDP predictions
replay one synchronization per step: where a run has several, their advice is withheld until ``no_sync()`` is in
place.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ... import intervals as iv
from ... import ops
from ...model import RankTrace, Run
from ...model.alloc import DDP_FORWARD, DDP_REDUCER
from ..section import Advice, Finding
from ..uncertainty.maths import Noise, band

SYNCED_SHARE = 0.5  # of the last micro-batch's all-reduce bytes: a micro-batch below it did not sync the gradients
KNOB = "gradient_syncs_per_step"  # the advice's knob: what ``commprof compare`` reads back from AFTER


@dataclass(frozen=True, slots=True, kw_only=True)
class MicroBatches:
    """One rank's micro-batches, medians over the analyzed steps that have DDP forward calls."""

    rank: int
    per_step: int  # DDP forward calls per step
    synced: int  # of them, the ones whose backward all-reduced the gradients
    step_ms: float  # the step (its ProfilerStep)
    early_exposed_ms: float  # communication left exposed in the synchronized micro-batches before the last
    without_exposed_ms: float  # the step, those micro-batches less their exposed communication and reducer work
    uncontended_ms: float  # the step, each of them at most the least contended micro-batch's compute
    steps: int  # steps measured

    @property
    def wasted(self) -> bool:
        """Every micro-batch synchronized the gradients: all but the last could run under ``no_sync()``."""
        return self.per_step >= 2 and self.synced == self.per_step


@dataclass(frozen=True, slots=True)
class _Step:
    """One step's micro-batches: the step (ns), and per micro-batch whether it synchronized, its duration, exposed
    communication, reducer work and compute (ns)."""

    step_ns: int
    synced: np.ndarray
    dur: np.ndarray
    exposed: np.ndarray
    reducer: np.ndarray
    compute: np.ndarray


def _steps(rt: RankTrace, fwd: np.ndarray, wanted: set[int] | None) -> list[_Step]:
    colls = [(c.issue_ns if c.issue_ns is not None else c.start_ns, c.bytes) for c in rt.collectives
             if c.op == ops.ALL_REDUCE and (c.issue_ns is not None or c.start_ns is not None)]
    at = np.array([t for t, _ in colls], dtype=np.int64)
    nbytes = np.array([b for _, b in colls], dtype=np.int64)
    comp = iv.union(rt.compute.start_ns, rt.compute.end_ns)
    exposed = iv.subtract(iv.union(rt.comm.start_ns, rt.comm.end_ns), comp)
    reducer = _reducer(rt)
    out = []
    grads = np.sort(rt.grads.start_ns) if rt.grads is not None else np.zeros(0, dtype=np.int64)
    for s in rt.steps:
        starts = _after_backward(fwd[(fwd >= s.start_ns) & (fwd < s.end_ns)], grads)
        if starts.size == 0 or (wanted is not None and s.number not in wanted):
            continue
        los = np.concatenate(([s.start_ns], starts[1:]))
        his = np.concatenate((starts[1:], [s.end_ns]))
        sent = np.array([int(nbytes[(at >= a) & (at < b)].sum()) for a, b in zip(los, his, strict=True)])
        synced = sent >= SYNCED_SHARE * sent[-1] if sent[-1] > 0 else np.zeros(sent.size, dtype=bool)
        out.append(_Step(s.end_ns - s.start_ns, synced, his - los, iv.lengths_within(exposed, los, his),
                         iv.lengths_within(reducer, los, his), iv.lengths_within(comp, los, his)))
    return out


def _after_backward(fwd: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """The forward calls that begin a micro-batch: the first, and each one after a backward pass (a gradient
    accumulated since the last one kept).  Several DDP modules called in one forward pass (DLRM's bottom and top
    MLPs) are one micro-batch."""
    if fwd.size == 0:
        return fwd
    kept = [int(fwd[0])]
    for t in fwd[1:].tolist():
        if np.searchsorted(grads, t) > np.searchsorted(grads, kept[-1]):
            kept.append(t)
    return np.array(kept, dtype=np.int64)


def micro_batches(rt: RankTrace, steps: Iterable[int] | None = None) -> MicroBatches | None:
    """The rank's micro-batches, or None where its steps call DDP's forward at most once."""
    fwd = np.sort(np.array([m.start_ns for m in rt.marks if m.kind == DDP_FORWARD], dtype=np.int64))
    if fwd.size < 2 or rt.grads is None:  # without the backward's gradients, micro-batches are not told from modules
        return None
    got = _steps(rt, fwd, set(steps) if steps is not None else None)
    if not got or max(g.dur.size for g in got) < 2:
        return None
    # the least contended micro-batch's compute, its reducer's work left out: what one runs in without transfers
    floor = min(float(np.min(g.compute - g.reducer)) for g in got)
    rows = []
    for g in got:
        early = np.flatnonzero(g.synced[:-1])
        kept = g.dur[early] - g.exposed[early] - g.reducer[early]  # at the speed it had beside the transfers
        rows.append((g.dur.size, int(g.synced.sum()), g.step_ns, float(g.exposed[early].sum()),
                     g.step_ns - float((g.dur[early] - kept).sum()),
                     g.step_ns - float((g.dur[early] - np.minimum(kept, floor)).sum())))

    def med(i: int) -> float:
        return float(statistics.median(r[i] for r in rows))
    return MicroBatches(rank=rt.rank, per_step=round(med(0)), synced=round(med(1)), step_ms=med(2) / 1e6,
                        early_exposed_ms=med(3) / 1e6, without_exposed_ms=med(4) / 1e6,
                        uncontended_ms=med(5) / 1e6, steps=len(rows))


def _reducer(rt: RankTrace) -> iv.Span:
    """When DDP's reducer worked on the training thread (CPU runs: there it is the step's own time), else nothing."""
    if rt.device_kind != "cpu":
        return iv.empty()
    red = [m for m in rt.marks if m.kind == DDP_REDUCER]
    return iv.union(np.array([m.start_ns for m in red], dtype=np.int64),
                    np.array([m.end_ns for m in red], dtype=np.int64))


@dataclass(frozen=True, slots=True, kw_only=True)
class Accumulation:
    ranks: tuple[MicroBatches, ...]
    advice: Advice | None  # gradient syncs per step: 1 (``no_sync()``), where every micro-batch synchronized
    finding: Finding | None

    @property
    def per_step(self) -> int:
        return max((m.per_step for m in self.ranks), default=1)

    @property
    def synced(self) -> int:
        return max((m.synced for m in self.ranks), default=0)

    @property
    def wasted(self) -> bool:
        return bool(self.ranks) and all(m.wasted for m in self.ranks)


def assess(run: Run, steps: dict[int, tuple[int, ...]], unprofiled_ms: dict[int, float], noise: Noise,
           model_error_pct: float | None = None) -> Accumulation | None:
    """The job's micro-batches (``steps``: each rank's analyzed steps) and, where every rank synchronized the
    gradients in every micro-batch, the advice to do so once per step; None where no rank accumulates."""
    found = tuple(m for rt in run.ranks if (m := micro_batches(rt, steps.get(rt.rank))) is not None)
    if not found:
        return None
    acc = Accumulation(ranks=found, advice=None, finding=None)
    if not acc.wasted:
        k = acc.per_step
        return Accumulation(ranks=found, advice=None, finding=Finding("info", (
            f"Gradient accumulation: {k} micro-batches per step (DDP forward calls), the gradients all-reduced once "
            f"per step (no_sync() on the others). The DDP what-ifs replay the last micro-batch's backward and its "
            f"all-reduces; gradient_accumulation = n there means n of these steps ({k} x n micro-batches) per "
            "optimizer step.") if acc.synced <= 1 else (
            f"Gradient accumulation: {k} micro-batches per step, of which {acc.synced} all-reduced the gradients "
            "(no_sync() on some, not all, of the others): each all-reduce before the last is paid again at the "
            "step's end.")))
    cpu = any((rt.backend or "").lower() == "gloo" for rt in run.ranks)
    current, pessimistic, optimistic = [], [], []
    for m in found:
        f = unprofiled_ms[m.rank] / m.step_ms if m.rank in unprofiled_ms and m.step_ms > 0 else 1.0
        current.append(m.step_ms * f)
        pessimistic.append(m.without_exposed_ms * f)
        optimistic.append((m.uncontended_ms if cpu else m.without_exposed_ms) * f)
    # the slowest rank sets the step; over gloo the middle of the two ends (how much of its uncontended speed the
    # backward gets back is between none and all of it), the band reaching both
    now, worst_ms, best_ms = max(current), max(pessimistic), max(optimistic)
    pred = (worst_ms + best_ms) / 2.0
    lo, hi = band(pred, noise, model_error_pct)
    worst = max(found, key=lambda m: m.early_exposed_ms)
    k = worst.per_step
    why = (f"Each step runs {k} forward/backward passes (gradient accumulation) and DDP all-reduces the gradients "
           f"after every one: {k} times the communication the optimizer step needs, {worst.early_exposed_ms:.1f} ms "
           f"of it exposed before the last micro-batch (rank {worst.rank}, median of {worst.steps} steps). Run the "
           f"first {k - 1} backward passes under model.no_sync(): the gradients accumulate locally and the last "
           "backward all-reduces their sum, the same gradients as now (up to rounding) with 1 all-reduce round per "
           f"step instead of {k}: for micro-batch i of n, `with model.no_sync() if i < n - 1 else "
           "contextlib.nullcontext(): loss_fn(model(x), y).backward()`. "
           + ("Over gloo the transfers also take the cores the backward pass runs on, so the backward speeds up "
              "too: the prediction takes each early micro-batch halfway to the least contended one's compute, the band "
              "none to all of the way." if cpu else ""))
    advice = Advice(knob=KNOB, value=1, baseline_step_ms=now, predicted_step_ms=pred, why=why,
                    predicted_range_ms=(min(lo, best_ms), max(hi, worst_ms)))
    finding = Finding("high" if now - pred >= 0.1 * now else "medium", (
        f"Every micro-batch all-reduces the gradients: {k} DDP forward/backward passes per step, each followed by "
        f"its all-reduces ({worst.early_exposed_ms:.1f} ms exposed per step before the last micro-batch). "
        "model.no_sync() on all but the last gives the same gradients with one round (advice below). The other "
        "DDP predictions replay one synchronization per step: they hold once no_sync() is in place."))
    return Accumulation(ranks=found, advice=advice, finding=finding)
