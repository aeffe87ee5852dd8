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
   PowerSGD (``powerSGD_hook``, rank r) follows torch's hook step by step, per bucket: on the backward side
   (delaying the gradients that follow) error feedback, a copy of the bucket and P = M Q for every matrix
   worth compressing (``(n + m) r * 2 < n m``, torch's ``min_compression_rate``); then on the channel, one
   after another, the all-reduce of the uncompressed tensors, of the Ps, orthogonalisation and Q = Mᵀ P, the
   all-reduce of the Qs, and the decompression M = P Qᵀ with the new error.  The matrix products with a thin
   r-column factor are memory-bound: they are costed as passes over the gradient bytes at the element-wise
   rate, plus a fixed host cost per compressed matrix (its handful of small operators).
   The element-wise rate (bytes/s of one pass such as ``copy_``) is measured on CPU traces from the run's own
   large element-wise operators; GPU traces (no operator shapes on kernels) use a fraction of HBM bandwidth.
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

from .. import ops
from ..model import RankTrace, Sidecar
from ..units import MiB
from .bandwidth import Bandwidth
from .buckets import BucketStep
from .rates import elementwise_bps

DEFAULT_FIRST_BUCKET_BYTES = 1 * MiB
CANDIDATE_CAPS_MB = (0.5, 1, 2, 4, 8, 16, 25, 32, 50, 100, 200)
# bytes/s of one element-wise pass over a bucket when the trace cannot tell (CPU: one core's
# memory bandwidth; GPU: a fraction of HBM's)
CAST_BPS = {"cpu": 4e9, "cuda": 500e9}
# host cost of the ~8 small operators PowerSGD runs per compressed matrix and step (views, bmm, norm, div...)
PER_MATRIX_NS = {"cpu": 60e3, "cuda": 60e3}
POWERSGD_RANKS = (1, 2, 4)
POWERSGD_MIN_COMPRESSION_RATE = 2.0  # PowerSGDState's default


@dataclass(frozen=True, slots=True)
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
    cast_bps: float
    world_size: int
    shapes: tuple[tuple[int, ...] | None, ...] = ()  # per parameter (None: not recorded)
    per_matrix_ns: float = 60e3
    traced_compression: str | None = None  # the traced hook, as ``replay``'s compression argument
    backend: str | None = None


@dataclass(frozen=True, slots=True)
class Prediction:
    cap_mb: float
    compression: str | None
    step_ns: float
    comm_done_ns: float
    backward_done_ns: float
    buckets: int

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


def powersgd_split(sc: Scenario, members: list[int], rank: int) -> tuple[float, float, float, float, int]:
    """torch's powerSGD_hook on one bucket: (uncompressed bytes, P bytes, Q bytes, bytes of the compressed
    matrices, number of compressed matrices)."""
    unc = pb = qb = cb = 0.0
    mats = 0
    for i in members:
        nbytes = float(sc.sizes[i])
        f = powersgd_factors(sc.shapes[i] or (), rank)
        if f is None:
            unc += nbytes
            continue
        numel, p_elems, q_elems = f
        elem = nbytes / numel
        pb += p_elems * elem
        qb += q_elems * elem
        cb += nbytes
        mats += 1
    return unc, pb, qb, cb, mats


def _replay_powersgd(sc: Scenario, cap_bytes: int, rank: int, scale: float) -> Prediction:
    ready = sc.ready_ns * scale
    groups = rebucket(sc.sizes, sc.first_bucket_bytes or cap_bytes, cap_bytes)
    ns_per_byte = 1e9 / sc.cast_bps

    def allreduce(nbytes: float) -> float:
        return (sc.alpha_s + nbytes / sc.beta_bps) * 1e9

    shift = 0.0  # backward delayed by the hook's work on the compute side
    launch = end = 0.0
    for g in groups:
        unc, pb, qb, cb, mats = powersgd_split(sc, g, rank)
        nbytes = float(sc.sizes[g].sum())
        # error feedback (add_), the bucket's copy (clone: a fresh allocation, about two passes), P = M Q
        pre = (3 * nbytes + cb) * ns_per_byte + mats * sc.per_matrix_ns / 2
        launch = max(launch, float(ready[g].max()) + shift) + pre
        shift += pre
        start = max(launch, end)
        mid = cb * ns_per_byte  # orthogonalise P (small), Q = M^T P (reads M)
        # M = P Q^T (writes M), the new error = copy - M (allocates: two passes), unpack the uncompressed
        post = (cb + 2 * nbytes + unc) * ns_per_byte + mats * sc.per_matrix_ns / 2
        end = start + allreduce(unc) + allreduce(pb) + mid + allreduce(qb) + post
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
            before = 1.25 * nbytes / sc.cast_bps * 1e9
            after = 0.75 * nbytes / sc.cast_bps * 1e9
        start = max(launch + before, end)
        end = start + (sc.alpha_s + wire / sc.beta_bps) * 1e9 + after
    bwd = float(ready.max()) if ready.size else 0.0
    step = max(bwd, end) + sc.tail_ns * scale
    return Prediction(cap_bytes / MiB, compression, step, end, bwd, len(groups))


def calibrate(sc: Scenario) -> float:
    """The factor on compute-side times that makes the replay of the traced settings match the
    un-profiled step time (1.0 without that measurement)."""
    target = sc.unprofiled_step_ns
    if not target:
        return 1.0
    lo, hi = 0.05, 4.0
    comp = sc.traced_compression
    if replay(sc, sc.cap_bytes, comp, lo).step_ns > target:
        return lo
    if replay(sc, sc.cap_bytes, comp, hi).step_ns < target:
        return hi
    for _ in range(60):
        mid = (lo + hi) / 2
        if replay(sc, sc.cap_bytes, comp, mid).step_ns < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def scenario(rt: RankTrace, rows: list[BucketStep], bw: Bandwidth, unprofiled_ms: float | None) -> Scenario | None:
    """Collect the replay's inputs for one rank; None when the run lacks them (say why elsewhere)."""
    sc = rt.sidecar
    if sc is None or sc.ddp is None or not sc.param_ready or not rows:
        return None
    ddp = sc.ddp
    params = {p.name: p.bytes for p in ddp.params}
    shapes = {p.name: p.shape for p in ddp.params}
    final_steps = _final_layout_steps(rows, rt.rank)
    ready_by_name: dict[str, list[int]] = {}
    tails, profiled = [], []
    steps = {s.number: s for s in rt.steps}
    for s in final_steps:
        st = steps.get(s)
        pr = sc.param_ready.get(s)
        if st is None or not pr:
            continue
        rel = {n: t - st.start_ns for n, t in pr.items() if n in params}
        for n, t in rel.items():
            ready_by_name.setdefault(n, []).append(t)
        ends = [r.end_ns for r in rows if r.rank == rt.rank and r.step == s and r.end_ns is not None]
        if not ends or not rel:
            continue
        done = max(max(rel.values()), max(ends))
        tails.append(st.duration_ns - done)
        profiled.append(st.duration_ns)
    if not ready_by_name or not tails:
        return None
    names = sorted(ready_by_name, key=lambda n: float(np.median(ready_by_name[n])))
    fit = _allreduce_fit(bw, rt.world_size or 1)
    if fit is None:
        return None
    alpha, beta = fit
    cap = ddp.bucket_bytes_cap or int(25 * MiB)
    first = _first_bucket_limit(sc, rows, rt.rank, names, params, int(cap))
    return Scenario(rt.rank, tuple(names), np.array([params[n] for n in names], dtype=np.float64),
                    np.array([float(np.median(ready_by_name[n])) for n in names]), int(np.median(tails)),
                    int(np.median(profiled)), int(unprofiled_ms * 1e6) if unprofiled_ms else None, int(cap),
                    first, alpha, beta, elementwise_bps(rt) or CAST_BPS.get(rt.device_kind, 4e9),
                    rt.world_size or 1, tuple(shapes.get(n) for n in names), PER_MATRIX_NS.get(rt.device_kind, 60e3),
                    ddp.compression, rt.backend)


def _final_layout_steps(rows: list[BucketStep], rank: int) -> list[int]:
    """The steps of the final bucket layout (DDP rebuilds its buckets after the first iteration)."""
    final_steps = sorted({r.step for r in rows if r.rank == rank})
    n_final = len({r.index for r in rows if r.rank == rank and r.step == final_steps[-1]})
    return [s for s in final_steps if len({r.index for r in rows if r.rank == rank and r.step == s}) == n_final]


def _first_bucket_limit(sc: Sidecar, rows: list[BucketStep], rank: int, names: list[str], params: dict[str, int],
                        cap: int) -> int | None:
    """DDP's rebuilt buckets use a small first bucket in some torch versions and not in others: take the
    rule that reproduces the layout this run recorded."""
    recorded = [r.bytes for r in sorted((r for r in rows if r.rank == rank and r.step == rows[-1].step),
                                        key=lambda r: r.index)]
    first = int((sc.ddp.first_bucket_bytes if sc.ddp is not None else None) or DEFAULT_FIRST_BUCKET_BYTES)
    sizes = np.array([params[n] for n in names], dtype=np.float64)
    if [int(sizes[g].sum()) for g in rebucket(sizes, cap, cap)] == recorded:
        return None
    return first


def _allreduce_fit(bw: Bandwidth, world: int) -> tuple[float, float] | None:
    fits = [f for f in bw.fits if ops.family(f.op) == ops.ALL_REDUCE and f.group_size == world and f.beta_gbps]
    if not fits:
        return None
    f = max(fits, key=lambda f: f.points)
    return (f.alpha_us or 0.0) / 1e6, float(f.beta_gbps or 0.0) * 1e9
