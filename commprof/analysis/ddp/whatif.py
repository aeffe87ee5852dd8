"""What-if replay of DDP's backward pass under other bucket sizes, compression and accumulation.

Inputs (from one traced run): when each parameter's gradient became ready (sidecar, post-accumulate-grad
hooks), the parameter sizes, the time from the end of backward and communication to the end of the step
(optimizer etc.), the step time outside the profiler, and the run's own all-reduce cost model
``t = alpha + bytes / beta`` (fitted on transfer times, waits removed; see ``bandwidth``).

Replay, per rank:
1. Re-bucket the parameters as DDP does after its first iteration: in the order their gradients became
   ready, closing a bucket once it reaches its limit (the first bucket's limit is DDP's first-bucket size,
   1 MiB by default, the others ``bucket_cap_mb``).
2. A bucket is ready when its last gradient is; DDP launches buckets in index order.
3. One collective at a time on the communication channel: start = max(launch, previous end);
   duration = alpha + wire bytes / beta, plus the casts of a compression hook (fp16/bf16 halve the bytes).
   PowerSGD (``powerSGD_hook``, rank r) follows torch's hook operator by operator, per bucket: on the backward
   side (delaying the gradients that follow) the error feedback (an in-place pass), a fresh copy of the bucket,
   the orthogonalisation of the Qs and P = M Q for every matrix worth compressing (``(n + m) r * 2 < n m``,
   torch's ``min_compression_rate``); then on the channel, one after another, the all-reduce of the
   uncompressed tensors, of the Ps, orthogonalisation and Q = Mᵀ P, the all-reduce of the Qs, M = P Qᵀ and the
   new error (a fresh bucket-sized tensor).
   Every operation's cost is measured on the run (``rates``): element-wise passes, in place and into fresh
   memory, and the thin products per matrix shape and rank.  Their speed depends on the machine far beyond
   bytes and flops (Q = Mᵀ P took 4x P = M Q on an AMD EPYC, the same on an Intel Xeon), so a PowerSGD what-if
   whose products were not measured (no probe, no PowerSGD in the trace) is marked as resting on an assumption.
4. Step = max(last gradient ready, last collective done) + the tail after it.
The profiler slows compute; a single factor on the compute-side times is calibrated so that the replay of
the run as traced gives the un-profiled step time, and candidates are predicted with the same factor.

What the model ignores (measured in benchmarks/bench_advisor_netns.py): compute slowed by concurrent
communication (CPU cores or GPU SMs shared with the collective), contention between overlapping
collectives, and per-bucket host overhead beyond what alpha absorbs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ... import ops
from ...model import RankTrace, Run
from ...model.alloc import OPTIMIZER_STEP
from ...units import MiB
from ..bandwidth import DEFAULT_ALPHA_S, Bandwidth
from ..replay import core
from .buckets import BucketStep
from .rates import OpRates
from .view import DDPView

CANDIDATE_CAPS_MB = (0.5, 1, 2, 4, 8, 16, 25, 32, 50, 100, 200)
POWERSGD_RANKS = (1, 2, 4)
POWERSGD_MIN_COMPRESSION_RATE = 2.0  # PowerSGDState's default


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """What the replay needs from one rank of the traced run.  Times in ns from the step start."""

    rank: int
    names: tuple[str, ...]  # parameters in gradient-ready order
    sizes: np.ndarray  # gradient bytes of each
    ready_ns: np.ndarray  # when each gradient was ready (median over steps)
    tail_ns: int  # from max(backward done, comm done) to the end of the step (median)
    profiled_step_ns: int  # median profiled step
    unprofiled_step_ns: int | None  # median step outside the profiler
    cap_bytes: int
    first_bucket_bytes: int | None  # None: the rebuilt layout has no small first bucket
    alpha_s: float
    beta_bps: float
    rates: OpRates  # per-operation costs measured on the run
    world_size: int
    shapes: tuple[tuple[int, ...] | None, ...] = ()  # per parameter (None: not recorded)
    traced_compression: str | None = None  # the traced hook, as ``replay``'s compression argument
    backend: str | None = None
    measured_exposed_ns: int = 0  # median over steps: from the last gradient ready to the last bucket done
    source: str = "sidecar"  # where the replay's inputs came from: "sidecar" or "trace"
    notes: tuple[str, ...] = ()  # what was inferred rather than read
    # each traced step of the final layout: its ready times (aligned with names), tail, duration, measured exposed
    traced_steps: tuple[tuple[np.ndarray, int, int, int], ...] = ()
    optimizer_ns: int = 0  # of the tail, the optimizer's step (median; 0 where the trace does not mark it)
    # the host whose network stack every rank shares (one host, one network namespace): no link between the ranks
    one_stack_host: str | None = None


@dataclass(frozen=True, slots=True)
class Prediction:
    cap_mb: float
    compression: str | None
    step_ns: float
    comm_done_ns: float
    backward_done_ns: float
    buckets: int
    slope_ns: float = 0.0  # the step's move as every compute-side time moves +-SLOPE_EPS (``replay.core.slope``)

    @property
    def exposed_ns(self) -> float:
        return max(self.comm_done_ns - self.backward_done_ns, 0.0)


def rebucket(sizes: np.ndarray, first_bytes: int, cap_bytes: int) -> list[list[int]]:
    """DDP's ``compute_bucket_assignment_by_size``: fill in order, close a bucket once it reaches its limit."""
    out: list[list[int]] = []
    cur: list[int] = []
    acc = 0
    limit = first_bytes
    for i, b in enumerate(sizes.tolist()):
        cur.append(i)
        acc += int(b)
        if acc >= limit:
            out.append(cur)
            cur, acc, limit = [], 0, cap_bytes
    if cur:
        out.append(cur)
    return out


def powersgd_applies(sc: Scenario) -> bool:
    """Shapes recorded for every gradient (sidecars of older commprof versions lack them)."""
    return bool(sc.shapes) and len(sc.shapes) == len(sc.names) and all(s is not None for s in sc.shapes)


def powersgd_factors(shape: Sequence[int], rank: int) -> tuple[int, int, int] | None:
    """torch's rule for one gradient: (elements, elements of P, elements of Q) when ``powerSGD_hook`` at
    ``rank`` compresses a gradient of this shape (viewed as ``shape[0]`` x the rest), else None."""
    if len(shape) < 2:
        return None
    numel = 1
    for d in shape:
        numel *= int(d)
    if numel == 0:
        return None
    n = int(shape[0])
    m = numel // n
    r = min(n, m, rank)
    return (numel, n * r, m * r) if (n + m) * r * POWERSGD_MIN_COMPRESSION_RATE < n * m else None


@dataclass(frozen=True, slots=True)
class PowerSGDBucket:
    """What torch's powerSGD_hook does with one bucket: bytes it sends uncompressed, of the Ps and of the Qs,
    and the (n, m, r) of each matrix it compresses."""

    unc_bytes: float
    p_bytes: float
    q_bytes: float
    matrices: tuple[tuple[int, int, int], ...]
    compressed_bytes: float
    elem_bytes: int


def powersgd_split(sc: Scenario, members: list[int], rank: int) -> PowerSGDBucket:
    """torch's powerSGD_hook on one bucket (the parameters ``members``)."""
    unc = pb = qb = cb = 0.0
    mats = []
    elem = 4
    for i in members:
        nbytes = float(sc.sizes[i])
        shape = sc.shapes[i] or ()
        f = powersgd_factors(shape, rank)
        if f is None:
            unc += nbytes
            continue
        numel, p_elems, q_elems = f
        elem = max(int(round(nbytes / numel)), 1)
        pb += p_elems * elem
        qb += q_elems * elem
        cb += nbytes
        n = int(shape[0])
        mats.append((n, numel // n, min(n, numel // n, rank)))
    return PowerSGDBucket(unc, pb, qb, tuple(mats), cb, elem)


def powersgd_measured(sc: Scenario, rank: int) -> list[str]:
    """What a PowerSGD what-if at ``rank`` would rest on without a measurement: [] when every cost it uses was
    measured on the run (the matrix products of each compressed shape, fresh-memory and in-place passes)."""
    missing = []
    rt = sc.rates
    if not rt.measured("pass"):
        missing.append("in-place element-wise passes")
    if not rt.measured("fresh"):
        missing.append("element-wise operators writing fresh memory (clone)")
    kinds = {"mq": "P = M Q", "mtp": "Q = Mᵀ P", "pqt": "M = P Qᵀ"}
    part = powersgd_split(sc, list(range(len(sc.names))), rank)
    for kind, label in kinds.items():
        if any(not rt.product_ns(kind, n, m, r, part.elem_bytes)[1] for n, m, r in part.matrices):
            missing.append(f"the products {label}")
    return missing


def _powersgd_costs(sc: Scenario, part: PowerSGDBucket, nbytes: float) -> tuple[float, float]:
    """(work on the backward side before the first all-reduce, work between the all-reduces), ns."""
    rt = sc.rates

    def prod(kind: str) -> float:
        return sum(rt.product_ns(kind, n, m, r, part.elem_bytes)[0] for n, m, r in part.matrices)

    orth_q = sum(rt.orthogonalize_ns(m, r) for _n, m, r in part.matrices)
    orth_p = sum(rt.orthogonalize_ns(n, r) for n, _m, r in part.matrices)
    # error feedback (add_), the bucket's copy (clone), the uncompressed tensors concatenated, Qs orthogonalised,
    # P = M Q
    pre = (nbytes / rt.pass_bps + (nbytes + part.unc_bytes) / rt.fresh_bps) * 1e9 + orth_q + prod("mq")
    # unpack the uncompressed tensors (div_, copy_), orthogonalise the Ps, Q = Mᵀ P, M = P Qᵀ, the new error
    # (copy - M: a fresh bucket-sized tensor)
    mid = (2 * part.unc_bytes / rt.pass_bps + nbytes / rt.fresh_bps) * 1e9 + orth_p + prod("mtp") + prod("pqt")
    return pre, mid


def _replay_powersgd(sc: Scenario, cap_bytes: int, rank: int, scale: float) -> Prediction:
    ready = sc.ready_ns * scale
    groups = rebucket(sc.sizes, sc.first_bucket_bytes or cap_bytes, cap_bytes)

    def allreduce(nbytes: float) -> float:
        return (sc.alpha_s + nbytes / sc.beta_bps) * 1e9

    shift = 0.0  # backward delayed by the hook's work on the compute side
    launch = end = 0.0
    for g in groups:
        part = powersgd_split(sc, g, rank)
        pre, mid = _powersgd_costs(sc, part, float(sc.sizes[g].sum()))
        launch = max(launch, float(ready[g].max()) + shift) + pre
        shift += pre
        start = max(launch, end)
        end = start + allreduce(part.unc_bytes) + allreduce(part.p_bytes) + allreduce(part.q_bytes) + mid
    bwd = float(ready.max()) + shift if ready.size else 0.0
    step = max(bwd, end) + sc.tail_ns * scale
    return Prediction(cap_bytes / MiB, f"powersgd:{rank}", step, end, bwd, len(groups))


def replay(sc: Scenario, cap_bytes: int, compression: str | None = None, scale: float = 1.0) -> Prediction:
    """Predict one rank's step; ``compression``: None, "fp16", "bf16" or "powersgd:R" (R = matrix rank)."""
    if compression and compression.startswith("powersgd:"):
        return _replay_powersgd(sc, cap_bytes, int(compression.split(":", 1)[1]), scale)
    ready = sc.ready_ns * scale
    groups = rebucket(sc.sizes, sc.first_bucket_bytes or cap_bytes, cap_bytes)
    launch = 0.0
    end = 0.0
    for g in groups:
        nbytes = float(sc.sizes[g].sum())
        launch = max(launch, float(ready[g].max()))
        wire = nbytes / 2 if compression in ("fp16", "bf16") else nbytes
        before = after = 0.0
        if compression in ("fp16", "bf16"):
            # in passes of a 4-byte copy_ (8 bytes moved per element): the down-cast (6 bytes) and the
            # scaling in fp16 (4) before the all-reduce, the copy back into the fp32 bucket (6) after it
            before = 1.25 * nbytes / sc.rates.pass_bps * 1e9
            after = 0.75 * nbytes / sc.rates.pass_bps * 1e9
        start = max(launch + before, end)
        end = start + (sc.alpha_s + wire / sc.beta_bps) * 1e9 + after
    bwd = float(ready.max()) if ready.size else 0.0
    step = max(bwd, end) + sc.tail_ns * scale
    return Prediction(cap_bytes / MiB, compression, step, end, bwd, len(groups))


def one_stack_host(run: Run) -> str | None:
    """The host whose network stack every rank of the job shares (one host name, one boot, one network namespace,
    every rank loaded), else None: its ranks reach each other through the kernel's loopback, never over a link.
    Plain traces (no sidecar) record no namespace: one host name on every rank stands for it ("vm, by the traces'
    host name"), as ranks in containers of their own have host names of their own; ranks in network namespaces of
    one host (the netns proofs) are then taken for one stack, and fp16 goes unpredicted rather than mispredicted."""
    sides = [rt.sidecar for rt in run.ranks]
    if not sides or len(sides) < (run.world_size or 1):
        return None
    if all(s is None for s in sides):  # plain traces: the host name torch >= 2.5 writes, the only sign there
        hosts = {rt.host for rt in run.ranks}
        one = hosts.pop() if len(hosts) == 1 else None
        return f"{one}, by the traces' host name" if one else None
    if any(s is None for s in sides):
        return None
    keys = {(s.host, s.net_ns) for s in sides if s is not None}
    host, ns = next(iter(keys))
    return host if len(keys) == 1 and host and ns is not None else None


def cpu_bound_transfers(scs: Sequence[Scenario]) -> str | None:
    """Where the gradients' all-reduces are the CPU's work, not a link's: gloo between ranks of one network stack
    (their bytes cross memory, not a wire), on the cores the backward pass runs on.  A compression hook halves
    their bytes, not the elements gloo reduces on the CPU, and its casts and gloo's half-precision sums take cores
    from the backward pass; the host's name, else None."""
    sc = scs[0] if scs else None
    if sc is None or (sc.backend or "").lower() != "gloo":
        return None
    return sc.one_stack_host


def _calibration_note(target_ms: float | None, on_profiled: bool) -> tuple[str, ...]:
    if not target_ms:
        return ("No step time outside the profiler in these files: predictions are profiled times (pass "
                "--step-ms, or analyze(step_ms=...), with the step time from your training log to calibrate them)",)
    if on_profiled:
        return ("These files time fewer than two steps outside the profiler (plain torch.profiler traces time none): "
                "predictions are calibrated on the "
                "mean profiled step, the profiler's own cost in it (pass --step-ms, or analyze(step_ms=...), with the "
                "step time from your training log, or let the run take more steps after the profiled ones)",)
    return ()


def calibrate(sc: Scenario) -> float:
    """The factor on compute-side times that makes the replay of the traced settings match the
    un-profiled step time (1.0 without that measurement; ``replay.core.calibrate``)."""
    comp = sc.traced_compression
    return core.calibrate(lambda s: replay(sc, sc.cap_bytes, comp, s).step_ns, sc.unprofiled_step_ns)


def scenario(rt: RankTrace, v: DDPView, bw: Bandwidth, unprofiled_ms: float | None,
             rates: OpRates, *, calibrated_on_profiled: bool = False) -> Scenario | None:
    """Collect the replay's inputs for one rank from its DDP view; None when the run lacks them."""
    rows = [r for r in v.rows if r.rank == rt.rank]
    if not rows:
        return None
    ready_by_name: dict[str, list[int]] = {}
    tails, profiled, exposed, optimizer = [], [], [], []
    per_step: list[tuple[dict[str, int], int, int, int]] = []
    steps = {s.number: s for s in rt.steps}
    for s in _final_layout_steps(rows, rt.rank):
        st = steps.get(s)
        pr = v.ready.get(s)
        if st is None or not pr:
            continue
        rel = {n: t - st.start_ns for n, t in pr.items() if n in v.params}
        for n, t in rel.items():
            ready_by_name.setdefault(n, []).append(t)
        ends = [r.end_ns for r in rows if r.step == s and r.end_ns is not None]
        if not ends or not rel:
            continue
        done = max(max(rel.values()), max(ends))
        tails.append(st.duration_ns - done)
        optimizer.append(_optimizer_ns(rt, st.start_ns + done, st.end_ns))
        profiled.append(st.duration_ns)
        exposed.append(max(max(ends) - max(rel.values()), 0))
        per_step.append((rel, tails[-1], st.duration_ns, exposed[-1]))
    if not ready_by_name or not tails:
        return None
    names = sorted(ready_by_name, key=lambda n: float(np.median(ready_by_name[n])))
    median_ready = {n: float(np.median(ready_by_name[n])) for n in names}
    traced = tuple((np.array([rel.get(n, median_ready[n]) for n in names], dtype=np.float64), tail, dur, ex)
                   for rel, tail, dur, ex in per_step)
    fit = core.link_fit(bw, ops.ALL_REDUCE, rt.world_size or 1)
    if fit is None:
        return None
    alpha, beta, assumed = fit.alpha_s, fit.beta_bps, fit.alpha_assumed
    sizes = np.array([v.params[n] for n in names], dtype=np.float64)
    first = _first_bucket_limit(rows, sizes, v.cap_bytes, v.first_bucket_bytes)
    notes = v.notes + _calibration_note(unprofiled_ms, calibrated_on_profiled)
    if assumed:
        typical = alpha >= DEFAULT_ALPHA_S.get(rt.device_kind, DEFAULT_ALPHA_S["cuda"]) * 0.999
        cost = (f"a typical start-up cost of {rt.backend or 'this backend'}" if typical else
                f"half the run's shortest all-reduce, below {rt.backend or 'this backend'}'s typical start-up cost")
        notes += (f"α assumed ({alpha * 1e6:.0f} µs, {cost}): "
                  "the run's all-reduce sizes spread too little to separate latency from bandwidth (two sizes need a "
                  "factor of 16 between them, three or more a factor of 4)",)
    if (v.compression or "").startswith("powersgd") and (rt.backend or "").lower() == "gloo":
        notes += ("On gloo, PowerSGD's later all-reduces and matrix work run in future callbacks on gloo's worker "
                  "threads, inside the record of the bucket's first all-reduce: this run's all-reduce times are not "
                  "transfer times, and its latency-bandwidth model is unreliable",)
    return Scenario(rank=rt.rank, names=tuple(names), sizes=sizes,
                    ready_ns=np.array([float(np.median(ready_by_name[n])) for n in names]),
                    tail_ns=int(np.median(tails)), profiled_step_ns=int(np.median(profiled)),
                    optimizer_ns=min(int(np.median(optimizer)), int(np.median(tails))),
                    unprofiled_step_ns=int(unprofiled_ms * 1e6) if unprofiled_ms else None, cap_bytes=v.cap_bytes,
                    first_bucket_bytes=first, alpha_s=alpha, beta_bps=beta, rates=rates, world_size=rt.world_size or 1,
                    shapes=tuple(v.shapes.get(n) for n in names), traced_compression=v.compression, backend=rt.backend,
                    measured_exposed_ns=int(np.median(exposed)), source=v.source, notes=notes, traced_steps=traced)


def _optimizer_ns(rt: RankTrace, start_ns: int, end_ns: int) -> int:
    """The optimizer's steps (``Optimizer.step#...`` records) that began in [start_ns, end_ns)."""
    return sum(m.end_ns - m.start_ns for m in rt.marks if m.kind == OPTIMIZER_STEP and start_ns <= m.start_ns < end_ns)


def _final_layout_steps(rows: list[BucketStep], rank: int) -> list[int]:
    """The steps of the final bucket layout (DDP rebuilds its buckets after the first iteration)."""
    final_steps = sorted({r.step for r in rows if r.rank == rank})
    n_final = len({r.index for r in rows if r.rank == rank and r.step == final_steps[-1]})
    return [s for s in final_steps if len({r.index for r in rows if r.rank == rank and r.step == s}) == n_final]


def _first_bucket_limit(rows: list[BucketStep], sizes: np.ndarray, cap: int, first: int | None) -> int | None:
    """DDP's rebuilt buckets use a small first bucket in some torch versions and not in others: take the
    rule that reproduces the layout this run recorded."""
    last = max(r.step for r in rows)
    recorded = [r.bytes for r in sorted((r for r in rows if r.step == last), key=lambda r: r.index)]
    if first is None or [int(sizes[g].sum()) for g in rebucket(sizes, cap, cap)] == recorded:
        return None
    return first
