"""What-if replay of FSDP2's schedule on CPU (gloo), with a predicted step and a predicted peak memory per setting.

The replay walks one step as FSDP2 runs it, from the traced run's own per-unit times (``fsdp``):
- forward, in unit order: the unit's all-gather unless its parameters are still unsharded, then the all-gathers
  of its explicit forward-prefetch targets, then its pre/post-forward work and its compute; its parameters are
  resharded after its forward when ``reshard_after_forward``;
- backward, in reverse: the all-gather of a resharded unit, then those of its backward-prefetch targets (FSDP2
  prefetches one unit implicitly), its pre/post-backward work and compute, then its reduce-scatter.  A unit that
  stops resharding after its forward also saves the CPU work of its backward unshard (``UnitStep.bwd_unshard_ns``:
  allocation and copy-out, part of its backward work); one that starts resharding pays its forward's.
On CPU every gloo collective of FSDP2 blocks the training thread (its all-gather and reduce-scatter "streams" are
the CPU itself: measured, the all-gather's wait sits inside ``FSDP::all_gather``, prefetched or not, the
reduce-scatter's inside ``FSDP::post_backward_reduce``).  All collectives of
the process group run one at a time, each costing its measured flight in the traced step (from its issue to its
end: what a blocked thread waits, the peers' lateness included), or ``alpha + bytes / beta`` from the run's own fit
where the step has none.  A factor on the compute-side times is calibrated, as for DDP, so
that the replay of the traced settings gives the step measured outside the profiler.  Memory: the peak of the
unsharded parameters held at once in the replayed schedule, on top of what the traced run held otherwise (its
measured peak, with ``profile_memory=True``, minus the replayed traced schedule's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import ops
from ..bandwidth import Bandwidth
from ..replay import core
from .units import AG, BWD_AG, RS, FSDPReport, StepUnits, UnitStep


@dataclass(frozen=True, slots=True, kw_only=True)
class Knobs:
    reshard_after_forward: bool | None  # None: as traced, per unit
    prefetch: int  # explicit forward and backward prefetch of this many units; 0: FSDP2's implicit (backward 1)

    def label(self) -> str:
        raf = "as traced" if self.reshard_after_forward is None else str(self.reshard_after_forward)
        return f"reshard_after_forward={raf}, fsdp_prefetch={self.prefetch or 'implicit'}"


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitTimes:
    """One unit as the replay walks it: its compute-side times and its collectives' flights (ns), forward order."""

    name: str
    fwd_ns: float  # compute + pre/post-forward work outside waits
    bwd_ns: float
    ag_ns: float  # the forward all-gather's flight: from its issue to its end, as the thread waits for it
    bwd_ag_ns: float  # the backward all-gather's (the forward's where the traced run had none)
    rs_ns: float
    unsharded_bytes: int
    reshard: bool
    # the CPU work of the backward's unshard (``UnitStep.bwd_unshard_ns``) where the traced unit resharded; else the
    # forward's, the measured unshard of the same parameters a backward that has to gather them again would repeat
    unshard_ns: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayInputs:
    units: tuple[UnitTimes, ...]  # forward order, the root first
    head_ns: float
    fwd_tail_ns: float
    bwd_tail_ns: float


def _transfer(bw: Bandwidth, family: str, nbytes: int, measured_ns: float, world: int) -> float:
    fit = core.link_fit(bw, family, world)
    if fit is None or nbytes <= 0:
        return measured_ns
    return fit.time_ns(nbytes)


def _flight(recs: list, bw: Bandwidth, family: str, nbytes: int, world: int) -> float:
    """The step's measured flight of a phase (issue to end: what a blocked thread waits, the peers' lateness
    included); the run's alpha-beta fit where the step has none."""
    if recs:
        return float(np.median([p.end_ns - p.issue_ns for p in recs]))
    return _transfer(bw, family, nbytes, 0.0, world)


def inputs(step: StepUnits, rep: FSDPReport, bw: Bandwidth, world: int) -> ReplayInputs:
    """One step's replay inputs."""
    stats = {u.unit: u for u in rep.units}
    units = []
    for u in step.units:
        fwd = [p for p in u.phases if p.phase == AG]
        bwd = [p for p in u.phases if p.phase == BWD_AG]
        rs = [p for p in u.phases if p.phase == RS]
        st = stats.get(u.unit)
        nbytes = st.unsharded_bytes if st else ((fwd or bwd)[0].bytes if fwd or bwd else 0)
        ag_ns = _flight(fwd, bw, ops.ALL_GATHER, nbytes, world)
        units.append(UnitTimes(name=u.unit, fwd_ns=u.fwd_compute_ns + u.fwd_overhead_ns,
                           bwd_ns=u.bwd_compute_ns + u.bwd_overhead_ns, ag_ns=ag_ns,
                           bwd_ag_ns=_flight(bwd, bw, ops.ALL_GATHER, nbytes, world) if bwd else ag_ns,
                           rs_ns=_flight(rs, bw, ops.REDUCE_SCATTER, rs[0].bytes if rs else nbytes, world),
                           unsharded_bytes=nbytes, reshard=st.reshard_after_forward if st else True,
                           unshard_ns=_unshard_ns(u, st.reshard_after_forward if st else True)))
    return ReplayInputs(units=tuple(units), head_ns=step.head_ns, fwd_tail_ns=step.fwd_tail_ns,
                        bwd_tail_ns=step.bwd_tail_ns)


def _unshard_ns(u: UnitStep, resharded: bool) -> float:
    """The CPU work a backward unshard of ``u`` costs (``UnitTimes.unshard_ns``)."""
    return float(u.bwd_unshard_ns if resharded else u.fwd_unshard_ns)


class _Walk:
    """The state of one replayed step: time, when the link is free, the unsharded parameters held and their peaks."""

    def __init__(self, t: float) -> None:
        self.t = t
        self.link = 0.0  # when the process group's link is free
        self.held: dict[str, int] = {}
        self.peak = 0
        self.phase = "head"
        self.by_phase: dict[str, int] = {}

    def enter(self, phase: str) -> None:
        self.phase = phase
        self.note()

    def note(self) -> None:
        now = sum(self.held.values())
        self.peak = max(self.peak, now)
        self.by_phase[self.phase] = max(self.by_phase.get(self.phase, 0), now)

    def gather(self, u: UnitTimes, backward: bool = False) -> None:
        if u.name in self.held:
            return
        start = max(self.t, self.link)
        self.t = self.link = start + (u.bwd_ag_ns if backward else u.ag_ns)  # blocking on CPU
        self.held[u.name] = u.unsharded_bytes
        self.note()

    def reduce(self, ns: float) -> None:
        self.t = self.link = max(self.t, self.link) + ns  # blocking on CPU


def replay(inp: ReplayInputs, knobs: Knobs, scale: float = 1.0) -> tuple[float, int, dict[str, int]]:
    """(step ns, peak unsharded bytes, the most unsharded bytes held in each phase) of one step under ``knobs``;
    phases: ``head``, ``fwd:<unit>``, ``fwd_tail``, ``bwd:<unit>``, ``bwd_tail`` (``phase_windows`` in the trace)."""
    units = list(inp.units)
    root, rest = (units[0], units[1:]) if units and units[0].name == "" else (None, units)
    raf = {u.name: (u.reshard if knobs.reshard_after_forward is None else knobs.reshard_after_forward)
           for u in rest}
    if root is not None:
        raf[root.name] = False  # FSDP2 keeps the root's parameters from its forward to its backward
    w = _Walk(inp.head_ns * scale)
    order = ([root] if root else []) + rest
    for i, u in enumerate(order):
        w.enter("head" if u is root else f"fwd:{u.name}")
        w.gather(u)
        for v in order[i + 1:i + 1 + knobs.prefetch] if knobs.prefetch and u is not root else []:
            w.gather(v)
        w.t += u.fwd_ns * scale
        if raf[u.name]:
            w.held.pop(u.name, None)
    w.enter("fwd_tail")
    w.t += inp.fwd_tail_ns * scale + (root.bwd_ns * scale if root is not None else 0.0)
    back = list(reversed(rest))
    for i, u in enumerate(back):
        w.enter(f"bwd:{u.name}")
        w.gather(u, True)
        for v in back[i + 1:i + 1 + max(knobs.prefetch, 1)]:  # FSDP2 prefetches one unit implicitly
            w.gather(v, True)
        # a unit that stops (starts) resharding after its forward saves (pays) its backward unshard's CPU work
        w.t += (u.bwd_ns + (raf[u.name] - u.reshard) * u.unshard_ns) * scale
        w.reduce(u.rs_ns)
        w.held.pop(u.name, None)
    w.enter("bwd_tail")
    if root is not None:
        w.reduce(root.rs_ns)
    w.t += inp.bwd_tail_ns * scale
    return w.t, w.peak, w.by_phase


def calibrate(inp: ReplayInputs, target_ns: float | None) -> float:
    """The compute-side factor that makes the traced settings' replay give ``target_ns`` (1.0 without it;
    ``replay.core.calibrate``)."""
    traced = Knobs(reshard_after_forward=None, prefetch=0)
    return core.calibrate(lambda s: replay(inp, traced, s)[0], target_ns, iterations=50)


CANDIDATES = tuple(Knobs(reshard_after_forward=raf, prefetch=k) for raf in (None, False, True) for k in (0, 1, 2))
