"""FSDP2 -> DDP what-if: what DistributedDataParallel would hold per rank and how long its step would take, from a
traced FSDP2 run (commprof's sidecar, or a plain trace: the units and their sizes from FSDP2's record functions and
all-gathers).  Small models are often faster under DDP: one all-reduce per bucket that overlaps the backward,
instead of an all-gather per unit in the forward (and again in the backward) and a reduce-scatter per unit.

Step: DDP's backward replayed (``ddp.whatif.replay``: ``rebucket`` at DDP's defaults, bucket_cap_mb 25 with its
1 MiB first bucket, one all-reduce at a time on the link) with this run's own compute per unit: the forward and
backward windows of each unit in the traced step, without FSDP2's all-gathers, waits and per-unit work
(``fsdp.units``).  A unit's gradients are ready when its backward ends (buckets are filled unit by unit: their
sizes are the units'); the root's own parameters at the end of the backward (the root's reduce-scatter comes last
in FSDP2; where they are a head computed first, this over-states the last bucket).  Without
``gradient_as_bucket_view`` DDP copies each gradient into its bucket as it is ready and back after the
all-reduce: a memory pass each at the run's measured pass rate.  The all-reduce: the run's reduce-scatter and
all-gather fits added (``alpha + bytes / beta``; a ring all-reduce of N bytes is a reduce-scatter of N then an
all-gather of N, 2 (n - 1) / n N on the wire), one of them doubled where the run has only one; on gloo the
reduce-scatter's fit alone (gloo's reduce-scatter is an all-reduce of the whole input).  The step's tail: the
traced tail, with the optimizer's step times the world size (DDP updates whole parameters).  The pass replayed
is the profiled one nearest the step now; its compute-side times are scaled by the profiler's slowdown of them
(``computescale``: the training thread's, else the step's, with its source and standard error).

Memory per rank: the state under DDP (``memstate``: full parameters, gradients and optimizer state, and the
buckets' copy of the gradients unless ``gradient_as_bucket_view=True``) plus the step's transient memory under
DDP (``ddpmem``), the median over the profiled steps.

The band: the replays' band (``uncertainty.maths.half_width_pct``, with the FSDP replay's error on the traced run),
``Z`` times the compute scale's standard error, and ``STRUCTURE_PCT``, in quadrature; the last for what an FSDP2
trace cannot measure of DDP: its optimizer on whole parameters (Adam's step took 3.2 times its time on half-size
shards on a 2-core EPYC, not 2: cache), and gloo's all-reduces taking CPU from the backward they overlap.  25%: the
what-if's errors on quiet runs of four models were -25% to +17% (docs/memory.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ... import ops
from ...model import RankTrace, Run
from ...model.alloc import OPTIMIZER_STEP
from ..bandwidth import Bandwidth
from ..ddp.rates import OpRates
from ..ddp.view import DEFAULT_CAP_BYTES, DEFAULT_FIRST_BUCKET_BYTES
from ..ddp.whatif import Scenario, replay
from ..fsdp import replay as fsdpreplay
from ..fsdp.units import StepUnits, fsdp_report, step_units
from ..replay.core import LinkFit, error_pct, link_fit
from ..section import Advice, Finding
from ..steptimes import OUTSIDE, unprofiled_steps
from ..uncertainty.maths import Noise, Z, around, fmt_band, half_width_pct
from .computescale import ComputeScale, choose_scale, replayed_step, thread_scale, thread_sd_pct
from .ddp2fsdp import ParallelAnalysis, ParallelWhatIf
from .ddpmem import StepMemory, UnitBytes, step_memory
from .memstate import StateMemory, optimizer

REVERSE_PREFIX = "FSDP2 -> DDP"  # how the what-if's finding begins
STRUCTURE_PCT = 25.0  # what an FSDP2 trace cannot measure of DDP (see the module's docstring; docs/memory.md)


def band(pred_ms: float, noise: Noise, model_error_pct: float | None,
         scale_sd_pct: float = 0.0) -> tuple[float, float]:
    """[low, high] around DDP's predicted step: the replays' band, ``Z`` times the compute scale's standard error
    and ``STRUCTURE_PCT``, in quadrature."""
    return around(pred_ms, math.hypot(half_width_pct(noise, model_error_pct, changed=True), Z * scale_sd_pct,
                                      STRUCTURE_PCT), noise)


@dataclass(frozen=True, slots=True, kw_only=True)
class DDPInputs:
    """What DDP's replay needs, from the traced FSDP2 step (ns)."""

    units: tuple[tuple[str, float, float, int], ...]  # (unit, forward, backward, full bytes), forward order, root first
    head_ns: float  # step start to the first unit's forward
    fwd_tail_ns: float  # the last unit's forward to the backward (the loss)
    tail_ns: float  # after the backward: the optimizer over whole parameters, zero_grad
    link: LinkFit  # one all-reduce of N bytes
    pass_bps: float  # a memory pass (DDP's copies into and out of its buckets)
    world: int


def _throughput(bw: Bandwidth, family: str, world: int) -> LinkFit | None:
    """Where the run's sizes and times give no α-β fit (transfers faster than the assumed latency): its throughput,
    every byte at the measured rate and no latency (marked assumed)."""
    xs = [(x, t) for (op, _pg, n), (x, t) in bw.samples.items() if ops.family(op) == family and n == world]
    nbytes, ns = sum(float(x.sum()) for x, _ in xs), sum(float(t.sum()) for _, t in xs)
    return LinkFit(alpha_s=0.0, beta_bps=nbytes / ns * 1e9, alpha_assumed=True) if nbytes > 0 and ns > 0 else None


def allreduce_fit(bw: Bandwidth, world: int, gloo: bool = False) -> LinkFit | None:
    """An all-reduce from the run's own fits: reduce-scatter + all-gather of the same bytes (their throughput where
    they have no fit); the run's all-reduce fit where it has neither.  On gloo the reduce-scatter's fit alone: gloo
    runs ``reduce_scatter_tensor`` as an all-reduce of the whole input (``gloo:all_reduce`` under
    ``c10d::_reduce_scatter_base_``), so its flights already are all-reduces of those bytes."""
    ag = link_fit(bw, ops.ALL_GATHER, world) or _throughput(bw, ops.ALL_GATHER, world)
    rs = link_fit(bw, ops.REDUCE_SCATTER, world) or _throughput(bw, ops.REDUCE_SCATTER, world)
    if gloo and rs is not None:
        return rs
    if ag is not None and rs is not None:
        return LinkFit(alpha_s=ag.alpha_s + rs.alpha_s, beta_bps=1.0 / (1.0 / ag.beta_bps + 1.0 / rs.beta_bps),
                       alpha_assumed=ag.alpha_assumed or rs.alpha_assumed)
    one = ag or rs
    if one is not None:
        return LinkFit(alpha_s=2 * one.alpha_s, beta_bps=one.beta_bps / 2, alpha_assumed=one.alpha_assumed)
    return link_fit(bw, ops.ALL_REDUCE, world)


def ready_order(inp: DDPInputs, view: bool, scale: float = 1.0) -> tuple[list[str], list[float], list[float]]:
    """(units, gradient bytes, ready ns) in the order DDP sees the gradients ready: the units backwards, each when
    its backward ends (plus, without bucket views, the copy into its bucket), the root's parameters last.  The
    copies are divided by ``scale``, the factor the replay puts on these times: they are at the rate measured
    outside the profiler, not traced compute."""
    units = list(inp.units)
    root = units[0] if units and units[0][0] == "" else None
    rest = units[1:] if root is not None else units
    copy = 0.0 if view else 1e9 / inp.pass_bps / scale
    t = inp.head_ns + sum(u[1] for u in units) + inp.fwd_tail_ns + (root[2] if root is not None else 0.0)
    names, sizes, ready = [], [], []
    for name, _f, b, nbytes in reversed(rest):
        t += b + nbytes * copy
        names.append(name)
        sizes.append(float(nbytes))
        ready.append(t)
    if root is not None and root[3] > 0:
        t += root[3] * copy
        names.append("")
        sizes.append(float(root[3]))
        ready.append(t)
    return names, sizes, ready


def ddp_step_ns(inp: DDPInputs, scale: float, view: bool, cap_bytes: int = DEFAULT_CAP_BYTES,
                first_bytes: int = DEFAULT_FIRST_BUCKET_BYTES) -> float:
    """DDP's step replayed (``ddp.whatif.replay``) with compute-side times scaled by ``scale``."""
    names, sizes, ready = ready_order(inp, view, scale)
    # the copy out of the buckets after the all-reduces (at the measured rate: unscaled, as the copies in)
    back = 0.0 if view else sum(sizes) / inp.pass_bps * 1e9 / scale
    sc = Scenario(rank=0, names=tuple(names), sizes=np.array(sizes, np.float64), ready_ns=np.array(ready, np.float64),
                  tail_ns=int(inp.tail_ns + back), profiled_step_ns=0, unprofiled_step_ns=None, cap_bytes=cap_bytes,
                  first_bucket_bytes=first_bytes, alpha_s=inp.link.alpha_s, beta_bps=inp.link.beta_bps,
                  rates=OpRates("cpu", inp.pass_bps, inp.pass_bps), world_size=inp.world)
    return replay(sc, cap_bytes, None, scale).step_ns


def _rank(run: Run) -> RankTrace | None:
    ok = [rt for rt in run.ranks if rt.fsdp and rt.steps]
    return max(ok, key=lambda rt: float(np.median([s.duration_ns for s in rt.steps])), default=None)


def _full_bytes(numel: int, unsharded: int, sharded: int, world: int, cast: bool) -> int:
    """The parameters' bytes in their own dtype: the all-gathered bytes, or under a mixed-precision policy the
    element size the shard shows."""
    if not cast or numel <= 0:
        return unsharded
    elem = min((1, 2, 4, 8), key=lambda s: abs(s - sharded * world / numel))
    return numel * elem


def unit_bytes(rt: RankTrace, names: list[str], gathered: dict[str, int], world: int) -> tuple[list[UnitBytes], bool]:
    """Each unit's sizes (forward order), and whether they come from the sidecar (else from the all-gathers)."""
    settings = rt.sidecar.fsdp if rt.sidecar is not None else None
    if settings is None:
        return [UnitBytes(name=n, unsharded_bytes=gathered.get(n, 0), shard_bytes=math.ceil(gathered.get(n, 0) / world),
                          full_bytes=gathered.get(n, 0)) for n in names], False
    by = {u.name: u for u in settings.units}
    cast = settings.param_dtype is not None
    out = []
    for n in names:
        u = by.get(n)
        out.append(UnitBytes(name=n, unsharded_bytes=u.unsharded_bytes, shard_bytes=u.sharded_bytes,
                             full_bytes=_full_bytes(u.numel, u.unsharded_bytes, u.sharded_bytes, world, cast))
                   if u is not None else UnitBytes(name=n, unsharded_bytes=0, shard_bytes=0, full_bytes=0))
    return out, True


def _optimizer_ns(rt: RankTrace, a: int, b: int) -> int:
    return sum(m.end_ns - m.start_ns for m in rt.marks if m.kind == OPTIMIZER_STEP and a <= m.start_ns <= b)


def _line(rt: RankTrace) -> np.ndarray | None:
    line = rt.memory_line.get("cpu:-1") if rt.device_kind == "cpu" else next(
        (v for k, v in rt.memory_line.items() if k.startswith("cuda")), None)
    return line if line is not None and line.shape[1] else None


def _memory(run: Run, units: list[UnitBytes], world: int) -> StepMemory | None:
    """The step memory of every profiled step of every FSDP2 rank, today and under DDP: the median of each (on
    gloo a step's timeline holds a reduce-scatter's staging copy or not, as the backend's thread freed it)."""
    got = []
    for rt in run.ranks:
        line = _line(rt) if rt.fsdp else None
        if line is None:
            continue
        got += [m for m in (step_memory(line, rt.fsdp, units, (s.start_ns, s.end_ns), rt.marks, world)
                            for s in rt.steps) if m is not None]
    if not got:
        return None

    def med(xs: list[int]) -> int:
        return int(np.median(xs))

    return StepMemory(today_peak=med([m.today_peak for m in got]), ddp_peak=med([m.ddp_peak for m in got]),
                      ddp_peak_view=med([m.ddp_peak_view for m in got]),
                      grads_in_step=sum(m.grads_in_step for m in got) * 2 >= len(got))


def _states(units: list[UnitBytes], factor: int) -> tuple[StateMemory, StateMemory, StateMemory]:
    """(FSDP2 today, DDP, DDP with gradient_as_bucket_view=True)."""
    shard = sum(u.shard_bytes for u in units)
    full = sum(u.full_bytes for u in units)
    today = StateMemory(params_bytes=shard, grads_bytes=shard, optimizer_bytes=factor * shard)
    ddp = StateMemory(params_bytes=full, grads_bytes=full, optimizer_bytes=factor * full, buckets_bytes=full)
    view = StateMemory(params_bytes=full, grads_bytes=full, optimizer_bytes=factor * full)
    return today, ddp, view


@dataclass(frozen=True, slots=True, kw_only=True)
class _Model:
    inp: DDPInputs
    scale: ComputeScale
    error_pct: float | None


def _model(rt: RankTrace, typical: StepUnits, steps: list[StepUnits], units: list[UnitBytes], bw: Bandwidth,
           rates: OpRates, unprofiled_ms: dict[int, float], world: int, outside: set[int],
           noise: Noise | None, basis: str) -> _Model | None:
    fit = allreduce_fit(bw, world, gloo=rt.device_kind == "cpu")
    if fit is None:
        return None
    rep = fsdp_report(rt, steps)
    if rep is None:
        return None
    comp = {u.unit: u for u in typical.units}
    rows = tuple((u.name, float(comp[u.name].fwd_compute_ns), float(comp[u.name].bwd_compute_ns), u.full_bytes)
                 for u in units)
    opt = min(_optimizer_ns(rt, typical.start_ns, typical.end_ns), typical.bwd_tail_ns)
    inp = DDPInputs(units=rows, head_ns=float(typical.head_ns), fwd_tail_ns=float(typical.fwd_tail_ns),
                    tail_ns=float(typical.bwd_tail_ns - opt + opt * world), link=fit, pass_bps=rates.pass_bps,
                    world=world)
    finp = fsdpreplay.inputs(typical, rep, bw, world)
    settings = rt.sidecar.fsdp if rt.sidecar is not None else None
    traced_k = max((len(u.forward_prefetch) for u in settings.units), default=0) if settings else 0
    model_ns = fsdpreplay.replay(finp, fsdpreplay.Knobs(reshard_after_forward=None, prefetch=traced_k))[0]
    # the profiler's slowdown of the compute: the training thread's (CPU), else the step's, outside the profiler
    # over the profiled one (not the FSDP replay's calibration, which puts all of that replay's miss on compute:
    # 0.33-0.96 on quiet runs of one job)
    target = (unprofiled_ms.get(rt.rank) or 0.0) / typical.passes or None  # a pass's share of the step
    measured = typical.end_ns - typical.start_ns
    step = target * 1e6 / measured if target and measured else None
    scale = choose_scale(thread_scale(rt, typical, outside), step, thread_sd_pct(rt, outside), noise, basis)
    return _Model(inp=inp, scale=scale, error_pct=error_pct(model_ns, measured) if measured else None)


def fsdp_to_ddp(run: Run, bw: Bandwidth, unprofiled_ms: dict[int, float], rates: OpRates,
                noise: Noise | None = None, basis: Mapping[int, str] | None = None) -> ParallelAnalysis | None:
    """The what-if on the FSDP2 rank with the longest median step (``unprofiled_ms``: the step as it is now,
    ``basis`` where it came from, ``steptimes.step_now_ms``); None without FSDP2 events or a link fit."""
    rt = _rank(run)
    if rt is None:
        return None
    settings = rt.sidecar.fsdp if rt.sidecar is not None else None
    world = rt.world_size or run.world_size or 1
    steps = step_units(rt, settings)
    if world < 2 or not steps or (settings is not None and settings.hsdp):
        return None
    typical = replayed_step(steps, unprofiled_ms.get(rt.rank))
    names = [u.unit for u in typical.units]
    gathered = {p.unit: p.bytes for s in steps for u in s.units for p in u.phases if p.phase.endswith("all-gather")}
    units, from_sidecar = unit_bytes(rt, names, gathered, world)
    outside = {n for n, _ms in unprofiled_steps(run).get(rt.rank, [])}  # the steps the step now is the median of
    m = _model(rt, typical, steps, units, bw, rates, unprofiled_ms, world, outside=outside, noise=noise,
               basis=(basis or {}).get(rt.rank, OUTSIDE))
    if m is None:
        return None
    name, factor, assumed = optimizer(rt)
    today, ddp, view = _states(units, factor)
    mem = _memory(run, units, world)
    grads = mem is not None and mem.grads_in_step
    fsdp_keep = today.total - (today.grads_bytes if grads else 0)
    base = fsdp_keep if rt.device_kind != "cpu" else 0  # a GPU timeline counts the state; the CPU one does not
    out = []
    for v, st in ((False, ddp), (True, view)):
        step_ms = ddp_step_ns(m.inp, m.scale.factor, v) / 1e6
        keep = st.total - (st.grads_bytes if grads and not v else 0)
        peak = (mem.ddp_peak_view if v else mem.ddp_peak) if mem is not None else None
        out.append(ParallelWhatIf(value="ddp", reshard_after_forward=None, predicted_step_ms=step_ms,
                                  predicted_range_ms=band(step_ms, noise or Noise(), m.error_pct, m.scale.sd_pct),
                                  predicted_peak_bytes=keep + peak - base if peak is not None else None,
                                  state=st, step_peak_bytes=peak - base if peak is not None else None,
                                  with_settings=(("gradient_as_bucket_view", v),)))
    notes = _notes(rt, mem, from_sidecar, name if assumed else None, m.inp.link.alpha_assumed)
    if m.scale.thread_ratio is not None:
        notes.append(f"the profiler lengthened the training thread's work {1 / m.scale.thread_ratio:.1f}x in the "
                     "replayed step, mostly outside the operators it times: their times are replayed as traced, and "
                     "the predicted step may be high")
    return ParallelAnalysis(traced="fsdp2", rank=rt.rank, world=world, optimizer=name, optimizer_assumed=assumed,
                            units=tuple((u.name, u.full_bytes) for u in units), today=today,
                            today_peak_bytes=mem.today_peak - base + fsdp_keep if mem is not None else None,
                            today_step_ms=unprofiled_ms.get(rt.rank) or (typical.end_ns - typical.start_ns) / 1e6,
                            device_total_bytes=next(iter(rt.device_memory.values()), None), whatifs=tuple(out),
                            notes=tuple(notes), compute_scale=m.scale.factor,
                            compute_scale_source=m.scale.source)


def _notes(rt: RankTrace, mem: StepMemory | None, from_sidecar: bool, assumed: str | None,
           alpha_assumed: bool) -> list[str]:
    notes = ["DDP at its defaults (bucket_cap_mb 25, a 1 MiB first bucket), buckets filled unit by unit; the root's "
             "own parameters counted ready at the end of the backward"]
    if not from_sidecar:
        notes.append("unit sizes from FSDP2's all-gathers (padded to the world size, in the all-gather's dtype): "
                     "trace with commprof.trace(model=root) for the parameters' own")
    if mem is None:
        notes.append("no memory timeline (trace with profile_memory=True): peaks not predicted")
    if assumed:
        sgd = " without momentum (a momentum buffer adds one copy of the parameters)" if assumed.endswith("SGD") else ""
        notes.append(f"optimizer state assumed for {assumed}{sgd}")
    if alpha_assumed:
        notes.append("the link's latency assumed: the run's message sizes spread too little to measure it")
    if rt.device_kind != "cpu":
        notes.append("compute per unit read from FSDP2's record functions on the host: on GPUs the kernels run "
                     "later, so the predicted step is not validated there")
    return notes


def _size(nbytes: float) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if abs(nbytes) >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def _label(w: ParallelWhatIf) -> str:
    return ", ".join(f"{k}={v}" for k, v in w.with_settings)


def reverse_findings(a: ParallelAnalysis | None, asked: bool) -> tuple[list[Finding], list[Advice]]:
    """A finding with the what-if's numbers where the user asked for it (``--whatif ddp``) or DDP is predicted
    faster beyond its band; then advice too, stating the memory DDP needs more per rank, unless the device's memory
    is known and DDP's predicted peak does not fit under 90% of it."""
    if a is None or a.traced != "fsdp2" or not a.whatifs:
        return [], []
    parts = []
    for w in a.whatifs:  # each setting with its own state: the buckets' copy of the gradients differs
        mem = f", peak {_size(w.predicted_peak_bytes)}" if w.predicted_peak_bytes is not None else ""
        parts.append(f"{_label(w)}: state {_size(w.state.total)}, step "
                     f"{fmt_band(w.predicted_step_ms, w.predicted_range_ms)}{mem}")
    now = f", peak {_size(a.today_peak_bytes)}" if a.today_peak_bytes is not None else ""
    source = "assumed" if a.optimizer_assumed else "from the trace"
    text = (f"{REVERSE_PREFIX} ({a.world} ranks, {len(a.units)} units): rank {a.rank}'s state (parameters, "
            f"gradients, DDP's buckets and {a.optimizer} state, {source}) and predicted step under DDP: "
            + "; ".join(parts)
            + f" (today state {_size(a.today.total)}, step {a.today_step_ms:.1f} ms{now}).")
    limit = a.device_total_bytes
    fits = [w for w in a.whatifs if not limit or w.predicted_peak_bytes is None or w.predicted_peak_bytes < 0.9 * limit]
    faster = [w for w in fits if w.predicted_range_ms[1] < a.today_step_ms]
    if not faster:
        return ([Finding("info", text)] if asked else []), []
    pick = min(faster, key=lambda w: (w.predicted_peak_bytes or 0, w.predicted_step_ms))
    peaks = pick.predicted_peak_bytes is not None and a.today_peak_bytes is not None
    new, old = ((pick.predicted_peak_bytes or 0, a.today_peak_bytes or 0) if peaks
                else (pick.state.total, a.today.total))
    why = (f"DDP would be faster: {fmt_band(pick.predicted_step_ms, pick.predicted_range_ms)} instead of "
           f"{a.today_step_ms:.1f} ms, and needs {_size(new - old)} more per rank ({'peak' if peaks else 'state'} "
           f"{_size(new)} instead of {_size(old)})."
           + ("" if limit else " The device's memory is not in the trace: check that it fits.")
           + " The step is DDP's backward replayed with this run's compute per unit and its link's fit "
           "(docs/memory.md).")
    adv = Advice(knob="parallelism", value="ddp", baseline_step_ms=a.today_step_ms,
                 predicted_step_ms=pick.predicted_step_ms, why=why, predicted_range_ms=pick.predicted_range_ms,
                 with_settings=pick.with_settings)
    return [Finding("medium", text)], [adv]
