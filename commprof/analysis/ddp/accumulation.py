"""Gradient accumulation as the trace shows it: the micro-batches of a step, which of them synchronized the
gradients, and what the step would take if only the last did (the verdict: ``nosync``).

A step of a data-parallel job may run several forward/backward passes (micro-batches) before its optimizer step.
DDP all-reduces the gradients at the end of every backward pass unless it runs under ``model.no_sync()``; FSDP2
reduce-scatters them unless ``model.set_requires_gradient_sync(False)``.  Synchronizing every micro-batch pays the
gradients' communication k times per step where once gives the same gradients (the reduction of the summed
gradients is the sum of the reduced ones).

From the trace alone (traces made without commprof too): the micro-batches of a step are the wrapper's forward calls
(DDP's record function ``DistributedDataParallel.forward``; FSDP2's ``FSDP::root_pre_forward``) in the step's
``ProfilerStep`` that follow a backward pass (the autograd engine's ``AccumulateGrad`` since the last; the first call
always: several DDP modules called in one forward pass, as DLRM's bottom and top MLPs, are one micro-batch), each from
its start to the next one's (the first from the step's start, the last to the step's end).  A micro-batch
synchronized the gradients when it issued all-reduces (DDP) or reduce-scatters (FSDP2) of at least ``SYNCED_SHARE``
of the bytes the last one issued (the step's own synchronization; a logged loss is a few bytes).

Without synchronizing, per step: the step less what the synchronized micro-batches before the last spent on it,
the time their synchronizing collectives ran with nothing beside them (no compute, no other collective: FSDP2's
all-gathers stay) and the wrapper's work at a synchronization (CPU runs: DDP's ``reducer::`` operators,
which copy gradients into the buckets and back; FSDP2's ``post_backward_reduce``); the median over the steps.  That
is the pessimistic end: the compute keeps the speed it had beside the transfers.  The optimistic end runs each early
micro-batch in the compute of the least contended micro-batch of the traced steps (its wrapper's work left out): over
gloo the transfers are CPU work on the cores the backward pass runs on, and the backward runs faster without them.
Measured on the 2-core test machine (DDP, 4 micro-batches of a 4-layer MLP, 2 ranks): per early micro-batch 8-13 ms
synchronized, 3.5-4 ms under ``no_sync()``, of which the exposed transfer and the reducer's 0.4 ms explain all but
0.5-0.9 ms; with 1024-wide layers its compute measured 15-31 ms beside the transfers, 12-15 ms under ``no_sync()``.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ... import intervals as iv
from ... import ops
from ...model import RankTrace
from ...model.alloc import DDP_FORWARD, DDP_REDUCER

FSDP_ROOT_FORWARD, FSDP_REDUCE = "root_pre_forward", "post_backward_reduce"  # ``FSDPEvent.phase``
SYNCED_SHARE = 0.5  # of the last micro-batch's synchronizing bytes: a micro-batch below it did not synchronize


@dataclass(frozen=True, slots=True, kw_only=True)
class MicroBatches:
    """One rank's micro-batches, medians over the analyzed steps that have the wrapper's forward calls."""

    rank: int
    per_step: int  # micro-batches per step
    synced: int  # of them, the ones whose backward synchronized the gradients
    step_ms: float  # the step (its ProfilerStep)
    early_exposed_ms: float  # their synchronizing collectives' time with nothing beside them, before the last
    without_exposed_ms: float  # the step, those micro-batches less that time and the wrapper's work at it
    uncontended_ms: float  # the step, each of them at most the least contended micro-batch's compute
    others_ms: float  # the other collectives' time in them (FSDP2's all-gathers), which stays without synchronizing
    steps: int  # steps measured
    kind: str = "ddp"  # the data-parallel wrapper: "ddp" or "fsdp" (FSDP2)
    sync_bytes: int = 0  # what one synchronization sends (the last micro-batch's all-reduces / reduce-scatters)

    @property
    def wasted(self) -> bool:
        """Every micro-batch synchronized the gradients: all but the last need not."""
        return self.per_step >= 2 and self.synced == self.per_step


@dataclass(frozen=True, slots=True, kw_only=True)
class _Step:
    """One step's micro-batches: the step (ns), and per micro-batch whether it synchronized, its duration, the time
    a synchronization took with nothing beside it or in the wrapper's work (``saved``: what not synchronizing
    saves at least), the synchronization's exposed part alone, and its compute outside the wrapper's work (ns)."""

    step_ns: int
    synced: np.ndarray
    dur: np.ndarray
    saved: np.ndarray
    exposed: np.ndarray
    core: np.ndarray
    stays: np.ndarray  # the other collectives' time with no compute beside it (FSDP2's all-gathers)
    others: np.ndarray  # the other collectives' time, hidden or not
    sync_bytes: int  # what the last micro-batch's synchronization sent


@dataclass(frozen=True, slots=True)
class _Kind:
    """What marks a micro-batch and its gradient synchronization, per data-parallel wrapper."""

    name: str  # "ddp" or "fsdp"
    forwards: np.ndarray  # the wrapper's forward calls (ns)
    sync_family: str  # the collectives that synchronize the gradients (``ops.family``)
    work: iv.Span  # the wrapper's own work at a synchronization (CPU runs), beside its transfers


def _kind(rt: RankTrace) -> _Kind | None:
    """DDP (its forward's record function; its reducer's operators) or FSDP2 (the root's ``FSDP::root_pre_forward``;
    ``post_backward_reduce``, which issues the reduce-scatters and copies the gradients in and out)."""
    cpu = rt.device_kind == "cpu"
    ddp = [m.start_ns for m in rt.marks if m.kind == DDP_FORWARD]
    if ddp:
        red = [(m.start_ns, m.end_ns) for m in rt.marks if m.kind == DDP_REDUCER] if cpu else []
        return _Kind("ddp", np.sort(np.array(ddp, dtype=np.int64)), ops.ALL_REDUCE, _span(red))
    roots = [e.start_ns for e in rt.fsdp if e.phase == FSDP_ROOT_FORWARD]
    if roots:
        red = [(e.start_ns, e.end_ns) for e in rt.fsdp if e.phase == FSDP_REDUCE] if cpu else []
        return _Kind("fsdp", np.sort(np.array(roots, dtype=np.int64)), ops.REDUCE_SCATTER, _span(red))
    return None


def _span(pairs: list[tuple[int, int]]) -> iv.Span:
    return iv.union(np.array([a for a, _ in pairs], dtype=np.int64), np.array([b for _, b in pairs], dtype=np.int64))


def _exposed_sync(rt: RankTrace, family: str, comp: iv.Span) -> tuple[iv.Span, iv.Span]:
    """When the synchronizing collectives ran with nothing else beside them, neither compute nor other collectives
    (FSDP2's all-gathers stay without synchronizing): the time synchronizing once less would save; and when the
    other collectives ran."""
    ran = [c for c in rt.collectives if c.start_ns is not None and c.end_ns is not None]
    sync = _span([(c.start_ns or 0, c.end_ns or 0) for c in ran if ops.family(c.op) == family])
    other = _span([(c.start_ns or 0, c.end_ns or 0) for c in ran if ops.family(c.op) != family])
    return iv.subtract(iv.subtract(sync, comp), other), other


def _steps(rt: RankTrace, kind: _Kind, wanted: set[int] | None) -> list[_Step]:
    fwd = kind.forwards
    colls = [(c.issue_ns if c.issue_ns is not None else c.start_ns, c.bytes) for c in rt.collectives
             if ops.family(c.op) == kind.sync_family and (c.issue_ns is not None or c.start_ns is not None)]
    at = np.array([t for t, _ in colls], dtype=np.int64)
    nbytes = np.array([b for _, b in colls], dtype=np.int64)
    comp = iv.union(rt.compute.start_ns, rt.compute.end_ns)
    exposed, other = _exposed_sync(rt, kind.sync_family, comp)
    saved = iv.combine(exposed, kind.work)
    core = iv.subtract(comp, kind.work)
    spans = {"saved": saved, "exposed": exposed, "core": core, "stays": iv.subtract(other, comp), "others": other}
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
        part = {k: iv.lengths_within(v, los, his) for k, v in spans.items()}
        out.append(_Step(step_ns=s.end_ns - s.start_ns, synced=synced, dur=his - los, sync_bytes=int(sent[-1]),
                         **part))
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
    """The rank's micro-batches, or None where no step runs more than one (or the trace cannot tell)."""
    kind = _kind(rt)
    if kind is None or kind.forwards.size < 2 or rt.grads is None:  # without the backward's gradients,
        return None  # micro-batches are not told from several modules
    got = _steps(rt, kind, set(steps) if steps is not None else None)
    if not got or max(g.dur.size for g in got) < 2:
        return None
    # the least contended micro-batch's compute (the wrapper's work left out): an early micro-batch without its
    # synchronization runs at most in that, plus the other collectives' exposed time, which stays
    floor = min(float(np.min(g.core)) for g in got)
    rows = []
    for g in got:
        early = np.flatnonzero(g.synced[:-1])
        kept = g.dur[early] - g.saved[early]  # at the speed it had beside the transfers
        best = np.minimum(kept, floor + g.stays[early])
        rows.append((g.dur.size, int(g.synced.sum()), g.step_ns, float(g.exposed[early].sum()),
                     g.step_ns - float(g.saved[early].sum()), g.step_ns - float((g.dur[early] - best).sum()),
                     float(g.others[early].sum())))

    def med(i: int) -> float:
        return float(statistics.median(r[i] for r in rows))
    return MicroBatches(rank=rt.rank, per_step=round(med(0)), synced=round(med(1)), step_ms=med(2) / 1e6,
                        early_exposed_ms=med(3) / 1e6, without_exposed_ms=med(4) / 1e6,
                        uncontended_ms=med(5) / 1e6, others_ms=med(6) / 1e6, steps=len(rows), kind=kind.name,
                        sync_bytes=int(statistics.median(g.sync_bytes for g in got)))
