"""FSDP2 per unit and phase, from the trace's ``FSDP::`` record functions (and the sidecar's settings when commprof
traced the run).

Per rank and profiled step, each unit's phases are read off FSDP2's record functions: the forward all-gather
(``FSDP::all_gather (u)`` before the step's first ``pre_backward``), the backward all-gather (after it), the
reduce-scatter and, for HSDP, the all-reduce (issued inside ``FSDP::post_backward_reduce (u)``).  Each phase's
collective is the one issued inside its record function; its exposed time is the part of its transfer that no
compute covers, and what hid the rest is the unit's compute window that covers most of it.  The CPU time of a
phase outside the wait for its transfer (copy-in, copy-out, bookkeeping) is kept for the replay
(``fsdpreplay``).  Figures per unit are medians over the profiled steps of the rank with the longest step.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from ... import intervals as iv
from ... import ops
from ...model import Collective, FSDPEvent, FSDPSettings, RankTrace

AG, BWD_AG, RS, AR = "forward all-gather", "backward all-gather", "reduce-scatter", "all-reduce"


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseRecord:
    """One unit's collective in one step."""

    unit: str
    phase: str  # AG, BWD_AG, RS or AR
    bytes: int
    issue_ns: int
    start_ns: int
    end_ns: int
    exposed_ns: int
    hidden_by: str | None  # "forward of unit 1", ...
    cpu_ns: int  # the phase's record function on the main thread, minus the time it waited for the transfer


@dataclass(frozen=True, slots=True)
class UnitStep:
    """One unit in one step: its compute windows and its phases."""

    unit: str
    fwd_compute_ns: int
    bwd_compute_ns: int
    fwd_overhead_ns: int  # pre_forward + post_forward CPU time outside the all-gather's wait
    bwd_overhead_ns: int  # pre_backward (without the wait) + post_backward (accumulate, reshard, reduce issue)
    copy_out_ns: int
    phases: tuple[PhaseRecord, ...]
    # the CPU work (outside waits) of unsharding: the forward's (pre_forward), the backward's (pre_backward and the
    # backward prefetches run inside this unit's window: allocation, copy-out), part of the overheads above
    fwd_unshard_ns: int = 0
    bwd_unshard_ns: int = 0


@dataclass(frozen=True, slots=True)
class StepUnits:
    step: int
    start_ns: int
    end_ns: int
    head_ns: int  # step start -> the root's pre_forward
    fwd_tail_ns: int  # last unit's post_forward -> first pre_backward (the root's own layers, the loss)
    bwd_tail_ns: int  # the last backward phase -> step end (optimizer, zero_grad)
    units: tuple[UnitStep, ...]  # in forward order, the root first
    peak_unsharded_bytes: int
    micro_batch: int = 0  # which forward/backward pass of its step (gradient accumulation), 0-based
    passes: int = 1  # the step's forward/backward passes


class PhaseStat(NamedTuple):
    """One unit's phase, medians over the profiled steps."""

    bytes: int
    transfer_ms: float
    exposed_ms: float
    hidden_by: str | None  # the compute window that hid most of it


@dataclass(frozen=True, slots=True)
class UnitStat:
    unit: str
    unsharded_bytes: int
    reshard_after_forward: bool
    fwd_compute_ms: float
    bwd_compute_ms: float
    copy_out_ms: float
    phases: dict[str, PhaseStat]  # by phase (AG, BWD_AG, RS, AR)


@dataclass(frozen=True, slots=True, kw_only=True)
class FSDPReport:
    rank: int
    device_kind: str
    settings: FSDPSettings | None  # None: the trace alone (plain torch.profiler)
    steps: tuple[StepUnits, ...]
    units: tuple[UnitStat, ...]
    first_exposed_ms: float  # the first all-gather of the step: nothing to hide it behind
    rs_queued_ms: float  # per step, reduce-scatters waiting for the channel behind all-gathers
    peak_unsharded_bytes: int
    notes: tuple[str, ...] = field(default=())
    passes_per_step: int = 1  # forward/backward passes per step: the figures are per pass where more than 1

    @property
    def gathered(self) -> bool:
        """Whether any all-gather ran in the profiled steps (FSDP2 skips them at world size 1, where each shard is
        the whole parameter: then nothing is unsharded and ``peak_unsharded_bytes`` is 0)."""
        return any(AG in u.phases or BWD_AG in u.phases for u in self.units)


def _by(events: list[FSDPEvent], phase: str, unit: str) -> list[FSDPEvent]:
    return [e for e in events if e.phase == phase and e.unit == unit]


def _issued_in(colls: list[Collective], e: FSDPEvent) -> list[Collective]:
    return [c for c in colls if c.issue_ns is not None and e.start_ns <= c.issue_ns <= e.end_ns]


def _wait_inside(c: Collective, e: FSDPEvent) -> int:
    """How long the main thread, inside ``e``, waited for ``c``'s transfer."""
    if c.end_ns is None or c.issue_ns is None:
        return 0
    return max(0, min(c.end_ns, e.end_ns) - max(c.issue_ns, e.start_ns))


def _nested(ev: list[FSDPEvent], units: list[str], bwd_start: int, root: tuple[int, int, int, int]) -> tuple[int, int]:
    """The time the other units' phases cover inside the root's forward and backward windows."""
    fs, fe, bs, be = [], [], [], []
    for u in units:
        if u == "":
            continue
        pf = [e for e in _by(ev, "pre_forward", u) if e.start_ns < bwd_start]
        po = [e for e in _by(ev, "post_forward", u) if e.start_ns < bwd_start]
        if pf and po:
            fs.append(pf[0].start_ns)
            fe.append(po[0].end_ns)
        pb = _by(ev, "pre_backward", u)
        red = _by(ev, "post_backward_reduce", u) or _by(ev, "post_backward_accumulate", u)
        if pb and red:
            bs.append(pb[0].start_ns)
            be.append(red[-1].end_ns)
    fwd = iv.length(iv.clip(iv.union(np.array(fs, dtype=np.int64), np.array(fe, dtype=np.int64)), root[0], root[1]))
    bwd = iv.length(iv.clip(iv.union(np.array(bs, dtype=np.int64), np.array(be, dtype=np.int64)), root[2], root[3]))
    return fwd, bwd


def _windows(ev: list[FSDPEvent], units: list[str], bwd_start: int) -> dict[str, tuple[int, int]]:
    """Each unit's forward and backward compute windows, by label (the root's last: it contains the others)."""
    out = {}
    for u in sorted(units, key=lambda u: u == ""):
        pf = [e for e in _by(ev, "pre_forward", u) if e.start_ns < bwd_start]
        po = [e for e in _by(ev, "post_forward", u) if e.start_ns < bwd_start]
        if pf and po:
            out[f"forward of {_label(u)}"] = (pf[0].end_ns, po[0].start_ns)
        pb = _by(ev, "pre_backward", u)
        acc = _by(ev, "post_backward_accumulate", u) or _by(ev, "post_backward_reduce", u)
        if pb and acc:
            out[f"backward of {_label(u)}"] = (pb[0].end_ns, acc[0].start_ns)
        red = _by(ev, "post_backward_reduce", u)
        if acc and red and u != "":
            out[f"post-backward of {_label(u)}"] = (acc[0].start_ns, red[-1].end_ns)
    return out


def _label(u: str) -> str:
    return "the root" if u == "" else f"unit {u}"


def _phase(c: Collective, unit: str, phase: str, comp: iv.Span, windows: dict[str, tuple[int, int]],
           e: FSDPEvent) -> PhaseRecord:
    start = c.start_ns if c.start_ns is not None else (c.issue_ns or 0)
    end = c.end_ns if c.end_ns is not None else start
    hidden = iv.length(iv.intersect(iv.as_span([start], [end]), comp))
    best, best_ns = None, 0
    for label, (a, b) in windows.items():  # the root's windows come last and contain the units': they count
        ov = max(0, min(b, end) - max(a, start))  # only where no unit's window overlaps
        if ov > best_ns and not (best is not None and label.endswith("the root")):
            best, best_ns = label, ov
    return PhaseRecord(unit=unit, phase=phase, bytes=c.bytes, issue_ns=c.issue_ns or start, start_ns=start, end_ns=end,
                       exposed_ns=(end - start) - hidden, hidden_by=best if hidden > 0 else None,
                       cpu_ns=(e.end_ns - e.start_ns) - _wait_inside(c, e))


def pass_cuts(start_ns: int, end_ns: int, ev: Sequence[FSDPEvent]) -> list[tuple[int, int]]:
    """A step's forward/backward passes, [start, end) each: cut at every root pre-forward after the first."""
    roots = sorted(e.start_ns for e in ev if e.phase == "root_pre_forward" and start_ns <= e.start_ns <= end_ns)
    return list(itertools.pairwise([start_ns, *roots[1:], end_ns + 1]))


def step_units(rt: RankTrace, settings: FSDPSettings | None) -> list[StepUnits]:
    """Every profiled step's units and phases on one rank.  A step of several forward/backward passes (gradient
    accumulation: FSDP2's root pre-forward more than once) gives a record per pass (``micro_batch``, ``passes``):
    the second pass's forward all-gathers are not the first's backward ones."""
    comp = iv.union(np.asarray(rt.compute.start_ns), np.asarray(rt.compute.end_ns))
    colls = [c for c in rt.collectives if c.issue_ns is not None]
    unsharded = {u.name: u.unsharded_bytes for u in settings.units} if settings else {}
    out = []
    for st in rt.steps:
        ev = [e for e in rt.fsdp if st.start_ns <= e.start_ns <= st.end_ns]
        got = [_pass(st.number, a, min(b, st.end_ns), [e for e in ev if a <= e.start_ns < b], comp, colls,
                     unsharded, settings) for a, b in pass_cuts(st.start_ns, st.end_ns, ev)]
        done = [p for p in got if p is not None]  # a forward without a backward (evaluation) is no pass
        out += [replace(p, micro_batch=k, passes=len(done)) for k, p in enumerate(done)]
    return out


def _pass(number: int, start: int, end: int, ev: list[FSDPEvent], comp: iv.Span, colls: list[Collective],
          unsharded: dict[str, int], settings: FSDPSettings | None) -> StepUnits | None:
    """One forward/backward pass's units and phases (a step's, or one micro-batch's of it); None without both."""
    pbs = [e for e in ev if e.phase == "pre_backward"]
    pfs = [e for e in ev if e.phase == "pre_forward"]
    if not pbs or not pfs:
        return None
    bwd_start = min(e.start_ns for e in pbs)
    units = list(dict.fromkeys(e.unit for e in sorted(pfs, key=lambda e: e.start_ns)))
    windows = _windows(ev, units, bwd_start)
    per_unit: dict[str, list[PhaseRecord]] = {}
    for u in units:
        phases: list[PhaseRecord] = []
        for e in _by(ev, "all_gather", u):
            for c in _issued_in(colls, e):
                if ops.family(c.op) == ops.ALL_GATHER:
                    phases.append(_phase(c, u, AG if e.start_ns < bwd_start else BWD_AG, comp, windows, e))
                    unsharded.setdefault(u, c.bytes)
        for e in _by(ev, "post_backward_reduce", u):
            for c in _issued_in(colls, e):
                fam = ops.family(c.op)
                if fam in (ops.REDUCE_SCATTER, ops.ALL_REDUCE):
                    phases.append(_phase(c, u, RS if fam == ops.REDUCE_SCATTER else AR, comp, windows, e))
        per_unit[u] = phases
    flights = [p for ps in per_unit.values() for p in ps]
    rows = [_unit_step(ev, u, bwd_start, per_unit[u], units, flights) for u in units]
    first_pf = min(e.start_ns for e in pfs)
    last_po = max((e.end_ns for e in ev if e.phase == "post_forward" and e.start_ns < bwd_start), default=bwd_start)
    last_bwd = max((e.end_ns for e in ev if e.start_ns >= bwd_start), default=bwd_start)
    return StepUnits(number, start, end, first_pf - start, max(bwd_start - last_po, 0), max(end - last_bwd, 0),
                     tuple(rows), _peak(ev, units, bwd_start, unsharded, settings))


def _dur(es: list[FSDPEvent]) -> int:
    return sum(e.end_ns - e.start_ns for e in es)


def _waited(events: list[FSDPEvent], gathers: list[PhaseRecord]) -> int:
    """How long the thread waited inside ``events`` for any of the step's collectives (its own all-gather, one it
    prefetched, its reduce-scatter)."""
    if not events or not gathers:
        return 0
    flights = iv.union(np.array([g.issue_ns for g in gathers], np.int64), np.array([g.end_ns for g in gathers],
                                                                                   np.int64))
    inside = iv.union(np.array([e.start_ns for e in events], np.int64), np.array([e.end_ns for e in events], np.int64))
    return iv.length(iv.intersect(flights, inside))


def _inside(ev: list[FSDPEvent], a: int, b: int) -> list[FSDPEvent]:
    """FSDP2's top-level record functions that run inside [a, b] (explicit prefetches, for instance)."""
    inner = [e for e in ev if a <= e.start_ns and e.end_ns <= b and e.phase != "all_gather_copy_out"]
    return [e for e in inner if not any(o is not e and o.start_ns <= e.start_ns and e.end_ns <= o.end_ns
                                        for o in inner)]


def _unit_step(ev: list[FSDPEvent], u: str, bwd_start: int, phases: list[PhaseRecord], units: list[str],
               gathers: list[PhaseRecord]) -> UnitStep:
    """One unit's times in one step.  Its compute windows (pre-forward to post-forward, pre-backward to
    post-backward) lose the FSDP work that runs inside them (an explicit prefetch of the next unit, ...): its CPU
    time, outside waits, counts as this unit's overhead, its waits as the prefetched collective's."""
    fw = [e for e in _by(ev, "pre_forward", u) if e.start_ns < bwd_start]
    po = [e for e in _by(ev, "post_forward", u) if e.start_ns < bwd_start]
    pb = _by(ev, "pre_backward", u)
    post = [e for ph in ("post_backward_accumulate", "post_backward_reshard", "post_backward_reduce",
                         "post_backward_rs_wait") for e in _by(ev, ph, u)]
    acc = _by(ev, "post_backward_accumulate", u) or _by(ev, "post_backward_reduce", u)
    fwd_in = _inside(ev, fw[0].end_ns, po[0].start_ns) if fw and po and u != "" else []
    bwd_in = _inside(ev, pb[0].end_ns, acc[0].start_ns) if pb and acc and u != "" else []
    fwd_c = (po[0].start_ns - fw[0].end_ns - _dur(fwd_in)) if fw and po else 0
    bwd_c = (acc[0].start_ns - pb[0].end_ns - _dur(bwd_in)) if pb and acc else 0
    nested = (0, 0)
    if u == "" and fw and po and pb and acc:  # the root's windows contain the other units': its own compute is the rest
        nested = _nested(ev, units, bwd_start, (fw[0].end_ns, po[0].start_ns, pb[0].end_ns, acc[0].start_ns))
    copy_out = _dur([e for e in _by(ev, "all_gather_copy_out", u)])
    fwd_ovh = _dur(fw) + _dur(po) + _dur(fwd_in) - _waited(fw + fwd_in, gathers)
    bwd_ovh = _dur(pb) + _dur(post) + _dur(bwd_in) - _waited(pb + bwd_in, gathers) - _waited(post, gathers)
    prefetch = [e for e in bwd_in if e.phase == "backward_prefetch"]
    bwd_unshard = _dur(pb) + _dur(prefetch) - _waited(pb + prefetch, gathers)
    return UnitStep(u, max(fwd_c - nested[0], 0), max(bwd_c - nested[1], 0), max(fwd_ovh, 0), max(bwd_ovh, 0),
                    copy_out, tuple(phases), fwd_unshard_ns=max(_dur(fw) - _waited(fw, gathers), 0),
                    bwd_unshard_ns=min(max(bwd_unshard, 0), max(bwd_ovh, 0)))


def _peak(ev: list[FSDPEvent], units: list[str], bwd_start: int, unsharded: dict[str, int],
          settings: FSDPSettings | None) -> int:
    """The most bytes of unsharded parameters held at once: a unit's parameters are unsharded from its
    all-gather until FSDP reshards them (after its forward, or after its backward)."""
    starts, ends, sizes = [], [], []
    for u in units:
        nbytes = unsharded.get(u, 0)
        for e in _by(ev, "all_gather", u):
            if e.start_ns < bwd_start:
                po = [x for x in _by(ev, "post_forward", u) if x.start_ns >= e.start_ns]
                rs = [x for x in _by(ev, "post_backward_reshard", u)]
                fwd_end = po[0].end_ns if po else e.end_ns
                # resharded after forward where a backward all-gather follows, else kept until its backward
                back = [x for x in _by(ev, "all_gather", u) if x.start_ns >= bwd_start]
                end = fwd_end if back else (rs[0].end_ns if rs else fwd_end)
            else:
                rs = [x for x in _by(ev, "post_backward_reshard", u) if x.start_ns >= e.start_ns]
                end = rs[0].end_ns if rs else e.end_ns
            starts.append(e.start_ns)
            ends.append(end)
            sizes.append(nbytes)
    if not starts:
        return 0
    pts = sorted([(s, b) for s, b in zip(starts, sizes, strict=True)] + [(e, -b) for e, b in zip(ends, sizes,
                                                                                             strict=True)],
                 key=lambda x: (x[0], x[1]))
    cur = peak = 0
    for _t, b in pts:
        cur += b
        peak = max(peak, cur)
    return peak


def _median_ms(xs: Sequence[float]) -> float:
    return float(np.median(xs)) / 1e6 if xs else 0.0


def fsdp_report(rt: RankTrace, steps: Sequence[StepUnits]) -> FSDPReport | None:
    """Medians over the rank's steps; None without FSDP2 events."""
    if not steps:
        return None
    settings = rt.sidecar.fsdp if rt.sidecar is not None else None
    per_unit: dict[str, list[UnitStep]] = defaultdict(list)
    for s in steps:
        for u in s.units:
            per_unit[u.unit].append(u)
    raf = {u.name: u.reshard_after_forward for u in settings.units} if settings else {}
    unsharded = {u.name: u.unsharded_bytes for u in settings.units} if settings else {}
    stats = []
    for unit in (u.unit for u in steps[0].units):
        rows = per_unit[unit]
        phases: dict[str, PhaseStat] = {}
        for ph in (AG, BWD_AG, RS, AR):
            recs = [p for r in rows for p in r.phases if p.phase == ph]
            if recs:
                hidden = [p.hidden_by for p in recs if p.hidden_by]
                ms = _median_ms([p.end_ns - p.start_ns for p in recs])
                phases[ph] = PhaseStat(bytes=int(np.median([p.bytes for p in recs])), transfer_ms=ms,
                                       exposed_ms=_median_ms([p.exposed_ns for p in recs]),
                                       hidden_by=max(set(hidden), key=hidden.count) if hidden else None)
        nbytes = unsharded.get(unit) or (phases[AG].bytes if AG in phases else 0)
        fwd_ms, bwd_ms = _median_ms([r.fwd_compute_ns for r in rows]), _median_ms([r.bwd_compute_ns for r in rows])
        stats.append(UnitStat(unit, nbytes, raf.get(unit, BWD_AG in phases), fwd_ms, bwd_ms,
                              _median_ms([r.copy_out_ns for r in rows]), phases))
    firsts = [min((p for u in s.units for p in u.phases if p.phase == AG), key=lambda p: p.issue_ns).exposed_ns
              for s in steps if any(p.phase == AG for u in s.units for p in u.phases)]
    queued = [sum(max(0, p.start_ns - p.issue_ns) for u in s.units for p in u.phases if p.phase in (RS, AR))
              for s in steps]
    notes = () if settings else ("units, sizes and reshard_after_forward read from the trace alone (FSDP2's "
                                 "record functions and collectives); trace with commprof.trace(model=root) for "
                                 "the sidecar's settings",)
    return FSDPReport(rank=rt.rank, device_kind=rt.device_kind, settings=settings, steps=tuple(steps),
                      units=tuple(stats), first_exposed_ms=_median_ms(firsts), rs_queued_ms=_median_ms(queued),
                      peak_unsharded_bytes=int(np.median([s.peak_unsharded_bytes for s in steps])), notes=notes,
                      passes_per_step=int(np.median([s.passes for s in steps])))


def phase_windows(ev: Sequence[FSDPEvent], step_start: int, step_end: int) -> dict[str, tuple[int, int]]:
    """The step's phases as ``fsdpreplay.replay`` names them, on the trace clock: ``head`` (to the first unit's
    pre-forward), ``fwd:<unit>``, ``fwd_tail`` (the root's layers, the loss), ``bwd:<unit>`` (pre-backward to the end
    of its post-backward), ``bwd_tail`` (the root's post-backward, the optimizer)."""
    evs = [e for e in ev if step_start <= e.start_ns <= step_end]
    pbs = [e.start_ns for e in evs if e.phase == "pre_backward"]
    if not pbs:
        return {}
    bwd_start = min(pbs)
    out: dict[str, tuple[int, int]] = {}
    fwd_units = [e.unit for e in sorted(evs, key=lambda e: e.start_ns) if e.phase == "pre_forward" and e.unit]
    for u in fwd_units:
        pf = [e for e in evs if e.phase == "pre_forward" and e.unit == u and e.start_ns < bwd_start]
        po = [e for e in evs if e.phase == "post_forward" and e.unit == u and e.start_ns < bwd_start]
        if pf and po:
            out[f"fwd:{u}"] = (pf[0].start_ns, po[0].end_ns)
        pb = [e for e in evs if e.phase == "pre_backward" and e.unit == u]
        red = [e for e in evs if e.phase in ("post_backward_reduce", "post_backward_reshard") and e.unit == u]
        if pb and red:
            out[f"bwd:{u}"] = (pb[0].start_ns, max(e.end_ns for e in red))
    fwd = [w for k, w in out.items() if k.startswith("fwd:")]
    bwd = [w for k, w in out.items() if k.startswith("bwd:")]
    if fwd:
        out["head"] = (step_start, min(a for a, _ in fwd))
        out["fwd_tail"] = (max(b for _, b in fwd), bwd_start)
    if bwd:
        out["bwd_tail"] = (max(b for _, b in bwd), step_end)
    return out
