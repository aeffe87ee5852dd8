"""DDP -> FSDP2 what-if: what ``fully_shard`` per top-level module would hold per rank and how long its step
would take, from a traced DDP run (commprof's sidecar: parameter names, shapes and when each gradient was ready).

Step: FSDP2's schedule replayed (``fsdpreplay.replay``) with this run's own times.  Compute: the forward (step
start to the first gradient ready) and the backward (first to last gradient ready) of the median profiled step,
split over the units in proportion to their parameter bytes; the step's tail after its last collective
(optimizer, zero_grad), the optimizer's own step (``Optimizer.step#...``) divided by the world size (it updates
shards).  Communication: the run's all-reduce fit ``alpha + bytes / beta`` converted to all-gather and
reduce-scatter as the backend runs them (``collective_ns``: a ring moves half an all-reduce's bytes; gloo's
reduce-scatter is a whole all-reduce), plus FSDP2's copies at the probe's measured memory rates.  Compute-side
times are scaled by the DDP advisor's calibration (the factor that makes the replay of the traced DDP settings
give the step measured outside the profiler).

Memory per rank: the state (``memstate``) plus the step's transient memory.  The transient part is read off the
traced step's memory timeline (``profile_memory=True``) per phase, less the gradients DDP had allocated by then
(when each one was ready): what FSDP2 leaves in place (activations, temporaries).  To it each phase adds what FSDP2
holds then: the unsharded parameters of the replayed schedule, plus one unit's all-gather buffer in the forward
(copy-out), the gradient shards of the units already reduced, and in a unit's backward its unsharded gradients
once: at the end of its compute beside its unsharded parameters, then beside the reduce-scatter's flat input
(FSDP2's post-backward reshards the parameters before ``foreach_reduce`` copies the gradients into that input).

The band: the replays' band (``uncertainty.maths.half_width_pct``: the floor on a changed setting, the replay's
error on the traced run from the DDP advisor's model check, the run's noise) and ``STRUCTURE_PCT`` for what no DDP
trace can check (FSDP2's per-unit overheads; the FSDP replay's measured errors on FSDP runs, docs/fsdp.md), in
quadrature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ... import ops
from ...model import RankTrace, Run, Step
from ...model.alloc import OPTIMIZER_STEP
from ..bandwidth import Bandwidth
from ..ddp.rates import OpRates
from ..fsdp.replay import Knobs, ReplayInputs, UnitTimes, replay
from ..replay.core import link_fit
from ..section import Advice, Finding
from ..uncertainty.maths import Noise, around, fmt_band, half_width_pct
from .memstate import StateMemory, Unit, ddp_state, fsdp_state, optimizer, units_of
from .peak import NEAR_LIMIT

STRUCTURE_PCT = 10.0  # what a DDP trace cannot check: FSDP2's per-unit overheads (docs/memory.md)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParallelWhatIf:
    value: str  # "fsdp2" (or "ddp" for the reverse)
    reshard_after_forward: bool | None
    predicted_step_ms: float
    predicted_range_ms: tuple[float, float]
    predicted_peak_bytes: int | None  # state + the step's transient memory; None without a memory timeline
    state: StateMemory
    step_peak_bytes: int | None  # the transient part alone
    # the settings the variant assumes (reshard_after_forward of FSDP2, gradient_as_bucket_view of DDP)
    with_settings: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ParallelAnalysis:
    traced: str  # "ddp" or "fsdp2"
    rank: int
    world: int
    optimizer: str
    optimizer_assumed: bool
    units: tuple[tuple[str, int], ...]  # (unit, unsharded bytes), forward order
    today: StateMemory
    today_peak_bytes: int | None
    today_step_ms: float
    device_total_bytes: int | None
    whatifs: tuple[ParallelWhatIf, ...]
    notes: tuple[str, ...] = ()
    # FSDP2 -> DDP: the factor its replay put on the traced compute (the profiler's slowdown, ``fsdp2ddp``)
    compute_scale: float | None = None
    compute_scale_source: str | None = None  # ``computescale``: thread, step, given, profiled, unscaled or none


def _rank(run: Run) -> RankTrace | None:
    ok = [rt for rt in run.ranks if rt.sidecar is not None and rt.sidecar.ddp is not None and rt.sidecar.param_ready
          and not rt.fsdp and rt.steps]
    return max(ok, key=lambda rt: float(np.median([s.duration_ns for s in rt.steps])), default=None)


def _typical(rt: RankTrace) -> Step | None:
    ready = rt.sidecar.param_ready if rt.sidecar is not None else {}
    steps = sorted((s for s in rt.steps if ready.get(s.number)), key=lambda s: s.duration_ns)
    return steps[(len(steps) - 1) // 2] if steps else None


def _optimizer_ns(rt: RankTrace, st: Step) -> int:
    return sum(m.end_ns - m.start_ns for m in rt.marks
               if m.kind == OPTIMIZER_STEP and st.start_ns <= m.start_ns <= st.end_ns)


def _order(units: list[Unit], ready: dict[str, int]) -> list[Unit]:
    """Forward order: the unit whose gradients are ready last ran first."""
    last = {u.name: max((ready[p.name] for p in u.params if p.name in ready), default=0) for u in units}
    return sorted([u for u in units if u.params], key=lambda u: -last[u.name])


def collective_ns(nbytes: int, alpha_s: float, beta_bps: float, pass_bps: float, fresh_bps: float,
                  gloo: bool) -> tuple[float, float]:
    """(all-gather ns, reduce-scatter ns) of one unit of ``nbytes`` unsharded bytes, from the run's all-reduce fit
    ``alpha + bytes / beta`` and the probe's memory rates.  A ring all-gather or reduce-scatter moves half the bytes
    of a ring all-reduce: ``alpha + bytes / (2 beta)``, plus a pass over the unit for FSDP2's copy-in / copy-out.
    gloo on CPU differs, as its traces show: its reduce-scatter is an all-reduce of the whole input
    (``gloo:all_reduce`` inside ``c10d::_reduce_scatter_base_``) followed by a clone, after FSDP2's ``chunk_cat``
    has copied the gradients into a freshly allocated input: ``alpha + bytes / beta`` plus two fresh writes of the
    unit; its all-gather writes into a freshly allocated output (first touch of new pages: the probe's fresh rate)
    before FSDP2 copies the parameters out of it (a pass)."""
    half = alpha_s * 1e9 + nbytes / (2 * beta_bps) * 1e9
    if not gloo:
        copy = nbytes / pass_bps * 1e9
        return half + copy, half + copy
    ag = half + nbytes / fresh_bps * 1e9 + nbytes / pass_bps * 1e9
    rs = alpha_s * 1e9 + nbytes / beta_bps * 1e9 + 2 * nbytes / fresh_bps * 1e9
    return ag, rs


def _inputs(rt: RankTrace, st: Step, units: list[Unit], bw: Bandwidth, rates: OpRates | None,
            world: int) -> tuple[ReplayInputs, list[str]] | None:
    ready = {n: t for n, t in (rt.sidecar.param_ready.get(st.number, {}) if rt.sidecar else {}).items()}
    fit = link_fit(bw, ops.ALL_REDUCE, world)
    if not ready or fit is None:
        return None
    pass_bps = rates.pass_bps if rates is not None else 4e9
    fresh_bps = rates.fresh_bps if rates is not None else pass_bps
    first, last = min(ready.values()), max(ready.values())
    total = sum(u.unsharded_bytes for u in units) or 1
    fwd, bwd = max(first - st.start_ns, 0), max(last - first, 0)
    out = []
    for u in _order(units, ready):
        share = u.unsharded_bytes / total
        ag, rs = collective_ns(u.unsharded_bytes, fit.alpha_s, fit.beta_bps, pass_bps, fresh_bps,
                               gloo=rt.device_kind == "cpu")
        out.append(UnitTimes(name=u.name, fwd_ns=fwd * share, bwd_ns=bwd * share, ag_ns=ag, bwd_ag_ns=ag,
                             rs_ns=rs, unsharded_bytes=u.unsharded_bytes, reshard=True))
    ends = [c.end_ns for c in rt.collectives if c.end_ns is not None and st.start_ns <= (c.issue_ns or c.end_ns)
            <= st.end_ns]
    done = max([last, *ends])
    opt = _optimizer_ns(rt, st)
    tail = max(st.end_ns - done - opt, 0) + opt / world
    notes = [] if opt else ["no optimizer step in the trace: the step's tail is kept whole"]
    return ReplayInputs(units=tuple(out), head_ns=0.0, fwd_tail_ns=0.0, bwd_tail_ns=tail), notes


def _line(rt: RankTrace) -> np.ndarray | None:
    line = rt.memory_line.get("cpu:-1") if rt.device_kind == "cpu" else next(
        (v for k, v in rt.memory_line.items() if k.startswith("cuda")), None)
    return line if line is not None and line.shape[1] else None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Phases:
    """The traced step's memory less DDP's gradients, per phase: forward, each unit's backward, the tail."""

    fwd: int
    bwd: dict[str, int]
    tail: int
    grads_in_step: bool
    peak: int  # the step's measured peak


def _phases(rt: RankTrace, st: Step, order: list[Unit]) -> _Phases | None:
    line = _line(rt)
    ready = rt.sidecar.param_ready.get(st.number, {}) if rt.sidecar else {}
    if line is None or not ready:
        return None
    m = (line[0] >= st.start_ns) & (line[0] <= st.end_ns)
    if not m.any():
        return None
    t, v = line[0][m], line[1][m]
    sizes = {p.name: p.bytes for u in order for p in u.params}
    # gradients allocated in the step (zero_grad(set_to_none=True), torch's default): the timeline rises by them
    in_step = int(v.max()) - int(v.min()) >= 0.5 * sum(sizes.values())
    ev = sorted((ready[n], sizes.get(n, 0)) for n in ready)
    g_t = np.array([x for x, _ in ev], np.int64)
    g_c = np.cumsum([b for _, b in ev]) if ev else np.zeros(0, np.int64)
    idx = np.searchsorted(g_t, t, side="right")
    grads = np.where(idx > 0, g_c[np.maximum(idx - 1, 0)], 0) if in_step else np.zeros_like(v)
    other = v - grads

    def most(a: int, b: int) -> int:
        w = (t >= a) & (t <= b)
        return int(other[w].max()) if w.any() else 0

    first = int(g_t[0])
    bwd, prev = {}, first
    for u in reversed(order):
        end = max((ready[p.name] for p in u.params if p.name in ready), default=prev)
        bwd[u.name] = most(prev, end)
        prev = end
    return _Phases(fwd=most(st.start_ns, first), bwd=bwd, tail=most(prev, st.end_ns), grads_in_step=in_step,
                   peak=int(v.max()))


def _fsdp_peak(ph: _Phases, order: list[Unit], held: dict[str, int], base: int) -> int:
    """The step's transient memory under FSDP2 (``base``: what the timeline counts of the DDP state)."""
    fwd_held = max((b for k, b in held.items() if not k.startswith("bwd")), default=0)
    biggest = max((u.unsharded_bytes for u in order), default=0)
    grads = ph.grads_in_step
    best = ph.fwd - base + fwd_held + biggest
    done = 0
    for u in reversed(order):
        now = ph.bwd.get(u.name, 0) - base + held.get(f"bwd:{u.name}", 0) + (done if grads else 0)
        # its unsharded gradients beside its parameters; then, the parameters resharded, beside the flat
        # reduce-scatter input they are copied into: either way one unit more than ``held``
        best = max(best, now + u.unsharded_bytes)
        done += u.shard_bytes
    return max(best, ph.tail - base + (done if grads else 0) + held.get("bwd_tail", 0))


def band(pred_ms: float, noise: Noise, model_error_pct: float | None) -> tuple[float, float]:
    """[low, high] around a prediction: the replays' band (``uncertainty.maths``: their floor on a changed setting,
    the model's error on the traced run, the run's noise) with ``STRUCTURE_PCT`` beside them, in quadrature."""
    return around(pred_ms, math.hypot(half_width_pct(noise, model_error_pct, changed=True), STRUCTURE_PCT), noise)


def ddp_to_fsdp(run: Run, bw: Bandwidth, scale: dict[int, float], rates: OpRates | None,
                model_error_pct: float | None, unprofiled_ms: dict[int, float],
                noise: Noise | None = None) -> ParallelAnalysis | None:
    """The what-if on the DDP rank with the longest median step; None without a DDP sidecar."""
    rt = _rank(run)
    st = _typical(rt) if rt is not None else None
    if rt is None or st is None or rt.sidecar is None or rt.sidecar.ddp is None:
        return None
    ddp = rt.sidecar.ddp
    world = rt.world_size or ddp.process_group_size or run.world_size or 1
    units = units_of(ddp.params, world)
    name, factor, assumed = optimizer(rt)
    today = ddp_state(ddp.params, factor, ddp.gradient_as_bucket_view is not True)
    got = _inputs(rt, st, units, bw, rates, world)
    if got is None or world < 2:
        return None
    inp, notes = got
    order = [u for u in units if u.params]
    order = sorted(order, key=lambda u: [x.name for x in inp.units].index(u.name))
    ph = _phases(rt, st, order)
    persistent = today.total - (today.grads_bytes if ph is not None and ph.grads_in_step else 0)
    base = persistent if rt.device_kind != "cpu" else 0  # a CUDA timeline counts the state; the CPU one does not
    k = scale.get(rt.rank, 1.0)
    out = []
    state = fsdp_state(units, factor)
    for raf in (True, False):
        step_ns, _peak, held = replay(inp, Knobs(reshard_after_forward=raf, prefetch=0), k)
        step_peak = _fsdp_peak(ph, order, held, base) if ph is not None else None
        keep = state.total - (state.grads_bytes if ph is not None and ph.grads_in_step else 0)
        out.append(ParallelWhatIf(value="fsdp2", reshard_after_forward=raf, predicted_step_ms=step_ns / 1e6,
                                  predicted_range_ms=band(step_ns / 1e6, noise or Noise(), model_error_pct),
                                  predicted_peak_bytes=keep + step_peak if step_peak is not None else None,
                                  state=state, step_peak_bytes=step_peak,
                                  with_settings=(("reshard_after_forward", raf),)))
    if rt.device_kind != "cpu":
        notes.append("the replay blocks on every FSDP2 collective, as gloo on CPU does; on GPUs they overlap compute "
                     "on their own streams: the predicted step is an upper bound there, not validated")
    if ph is None:
        notes.append("no memory timeline (trace with profile_memory=True): peaks not predicted")
    if assumed:
        notes.append(f"optimizer state assumed for {name}" + (" without momentum (a momentum buffer adds one copy "
                                                              "of the parameters)" if name.endswith("SGD") else ""))
    today_peak = (ph.peak - base + persistent) if ph is not None else None
    return ParallelAnalysis(traced="ddp", rank=rt.rank, world=world, optimizer=name, optimizer_assumed=assumed,
                            units=tuple((u.name, u.unsharded_bytes) for u in order), today=today,
                            today_peak_bytes=today_peak,
                            today_step_ms=unprofiled_ms.get(rt.rank) or st.duration_ns / 1e6,
                            device_total_bytes=next(iter(rt.device_memory.values()), None), whatifs=tuple(out),
                            notes=tuple(notes))


def near_limit(a: ParallelAnalysis) -> bool:
    return bool(a.device_total_bytes and a.today_peak_bytes
                and a.today_peak_bytes >= NEAR_LIMIT * a.device_total_bytes)


def parallel_findings(a: ParallelAnalysis | None, asked: bool) -> tuple[list[Finding], list[Advice]]:
    """A finding with the what-if's numbers where memory is near the device's limit or the user asked for it
    (``--whatif fsdp``); advice when a variant's whole band is faster than today's step, or when memory is near the
    device's limit and a variant's predicted peak fits."""
    if a is None or not a.whatifs:
        return [], []
    gib = 2**30
    parts = []
    for w in a.whatifs:
        mem = f", peak {w.predicted_peak_bytes / gib:.2f} GiB" if w.predicted_peak_bytes is not None else ""
        parts.append(f"reshard_after_forward={w.reshard_after_forward}: "
                     f"{fmt_band(w.predicted_step_ms, w.predicted_range_ms)}{mem}")
    now = f", peak {a.today_peak_bytes / gib:.2f} GiB" if a.today_peak_bytes is not None else ""
    text = (f"DDP -> FSDP2 (fully_shard per top-level module, {len(a.units)} units, {a.world} ranks): rank {a.rank} "
            f"would hold {a.whatifs[0].state.total / gib:.2f} GiB of parameters, gradients and {a.optimizer} state "
            f"({'assumed' if a.optimizer_assumed else 'from the trace'}) instead of {a.today.total / gib:.2f} GiB; "
            f"predicted step " + "; ".join(parts) + f" (today {a.today_step_ms:.1f} ms{now}).")
    findings = [Finding("medium" if near_limit(a) else "info", text)] if asked or near_limit(a) else []
    limit = a.device_total_bytes
    ok = [w for w in a.whatifs if not limit or w.predicted_peak_bytes is None or w.predicted_peak_bytes < 0.9 * limit]
    faster = [w for w in ok if w.predicted_range_ms[1] < a.today_step_ms]
    pick = min(faster, key=lambda w: w.predicted_step_ms) if faster else (
        min(ok, key=lambda w: (w.predicted_peak_bytes or 0, w.predicted_step_ms)) if ok and near_limit(a) else None)
    if pick is None:
        return findings, []
    why = (f"{'Memory is near the device limit. ' if near_limit(a) else ''}{text} The step is FSDP2's schedule "
           "replayed with this run's compute and its link's fit (docs/memory.md).")
    return findings, [Advice(knob="parallelism", value="fsdp2", baseline_step_ms=a.today_step_ms,
                             predicted_step_ms=pick.predicted_step_ms, why=why,
                             with_settings=(("reshard_after_forward", pick.reshard_after_forward),))]
