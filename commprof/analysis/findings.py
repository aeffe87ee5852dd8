"""Every sentence the report says: findings (measured facts worth a user's attention, with the numbers that back
them) and the words of each piece of advice.  The analyses decide; this module phrases."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import ops
from ..model import RankTrace, Run
from ..numlist import ranks_text
from ..units import ms_text
from .bandwidth import Bandwidth
from .crossrank.matching import CrossRank
from .dataparallel import DataParallelStat
from .ddp.buckets import BucketStat
from .memory.peak import NEAR_LIMIT, Memory
from .overlap import RankOverlap, most_exposed
from .pipeline.stages import Layer, PipelineReport
from .section import EXPOSED, NOTHING_TO_GAIN, Advice, Finding
from .transfers import Transfers

# ---- the run as a whole ---------------------------------------------------------------------------


def _over_steps(overlaps: Sequence[RankOverlap], rank: int) -> str:
    """"the mean of its 3 analyzed steps (median 57.1 ms, 49.0-60.5)", with the outlier steps left out named."""
    o = next(o for o in overlaps if o.rank == rank)
    sp = o.spread_ms
    if sp is None:
        return "no step"
    text = (f"the mean of its {sp.kept} analyzed step{'s' if sp.kept != 1 else ''}"
            + (f", median {ms_text(sp.median)} ms, range {ms_text(sp.low)}-{ms_text(sp.high)} ms" if sp.n > 1 else ""))
    for n, ms, why in o.outliers:
        text += f"; step #{n} left out: {ms:.1f} ms, {why}"
    return text


def overview(overlaps: Sequence[RankOverlap], cross: CrossRank) -> list[Finding]:
    """Exposed communication on the worst rank."""
    out: list[Finding] = []
    reps = [(o.rank, o.representative) for o in overlaps if o.representative is not None]
    if not reps:
        return out
    by_rank = dict(reps)
    rank = most_exposed({r: rep.exposed_ns for r, rep in by_rank.items()})
    assert rank is not None
    worst = by_rank[rank]
    step_ms = worst.step_ns / 1e6
    exp_ms = worst.exposed_ns / 1e6
    comm_ms = worst.comm_ns / 1e6
    if comm_ms == 0:
        called = worst.comm_bytes / 1e6
        why = (f": the collectives called, {called:.1f} MB per step (bytes/step), moved nothing (a world size of 1, "
               "or no collective kernels or transfers in the trace)." if called else
               " (world size 1, or no collective kernels/transfers in the trace).")
        out.append(Finding("info", f"No communication ran inside the analyzed steps{why}"))
        return out
    share = 100 * exp_ms / step_ms if step_ms else 0.0
    wait = cross.wait_ms_per_step.get(rank)
    # its severity by the exposed time that is transfer: waiting for a late rank is the root cause's to tell (Megatron
    # TP8: 495 ms exposed of a 633 ms step, 445 ms of it waiting, 50 ms of transfers on the critical path)
    moving = 100 * max(exp_ms - (wait or 0.0), 0.0) / step_ms if step_ms else 0.0
    sev = "high" if moving >= 20 else "medium" if moving >= 5 else "info"
    later = (": most of what is exposed waits for ranks that arrive later (a slow rank or uneven work: see who holds "
             "the job back), not for the network." if wait and wait >= 0.5 * exp_ms else ".")
    waited = (f" Of its communication, {ms_text(wait)} ms per step is waiting for other ranks to join, not "
              f"transfer{later}" if wait else "")
    out.append(Finding(sev, f"Exposed communication: {ms_text(exp_ms)} ms of a {ms_text(step_ms)} ms step "
                            f"({share:.0f}%) on rank {rank} ({_over_steps(overlaps, rank)}); "
                            f"{worst.overlap_pct:.0f}% of its {ms_text(comm_ms)} ms of communication is hidden behind "
                            f"compute.{waited}", EXPOSED))
    # which rank the others wait for is the root cause's answer (crossrank/rootcause), not the last arriver's
    return out


# ---- DDP settings ---------------------------------------------------------------------------------


LAST_BUCKET = "The last DDP bucket"  # how the exposed last bucket's finding begins (``ddp.advice`` qualifies it)


def ddp_rules(run: Run, buckets: Sequence[BucketStat], bw: Bandwidth) -> list[Finding]:
    """What the traced DDP settings cost, from the first rank whose sidecar has them."""
    out: list[Finding] = []
    rt: RankTrace | None = next((r for r in run.ranks if r.sidecar is not None and r.sidecar.ddp), None)
    if rt is None or rt.sidecar is None or rt.sidecar.ddp is None:
        return out
    ddp = rt.sidecar.ddp
    if buckets:
        out.extend(_bucket_rules(buckets, bw))
    names = {p.name for p in ddp.params}
    every_step = all(names <= set(v) for v in rt.sidecar.param_ready.values())
    if ddp.find_unused_parameters and rt.sidecar.param_ready and every_step:
        out.append(Finding("medium", "find_unused_parameters=True, yet every parameter received a gradient in "
                                     "every profiled step: set it to False to skip DDP's graph traversal after "
                                     "each forward pass."))
    if ddp.gradient_as_bucket_view is False and ddp.grad_bytes:
        mb = ddp.grad_bytes / 1e6
        out.append(Finding("info", f"gradient_as_bucket_view=False keeps a second copy of every gradient in DDP's "
                                   f"buckets: gradient_as_bucket_view=True would save {mb:.1f} MB per rank "
                                   "(and a copy per bucket per step)."))
    if ddp.static_graph is False and 1 <= len(rt.sidecar.layouts) <= 2 and rt.sidecar.param_ready and every_step:
        out.append(Finding("info", "The same parameters received gradients in every profiled step and the "
                                   "bucket layout settled: this model is eligible for static_graph=True, which "
                                   "lets DDP skip per-iteration bookkeeping."))
    bcast = [c for c in rt.collectives if c.op == ops.BROADCAST and c.step >= 0]
    if ddp.broadcast_buffers and bcast:
        n_steps = max(len({c.step for c in bcast}), 1)
        ms = sum(c.duration_ns for c in bcast) / n_steps / 1e6
        nbytes = sum(c.bytes for c in bcast) / n_steps
        out.append(Finding("info", f"broadcast_buffers=True broadcasts the module's buffers before every forward "
                                   f"pass: {nbytes / 1e3:.1f} kB and {ms:.2f} ms per step. If the buffers need no "
                                   "synchronization (no BatchNorm running stats), set broadcast_buffers=False."))
    return out


def _bucket_rules(buckets: Sequence[BucketStat], bw: Bandwidth) -> list[Finding]:
    out = []
    last = buckets[-1]
    # the last bucket forms the tail only where its collective ends last (on gloo the buckets' all-reduces can run at
    # once on worker threads, and a larger earlier one end after it: a smaller last bucket would then shorten nothing)
    if (last.comm_ms and last.exposed_ms is not None and last.exposed_ms > 0.5 * last.comm_ms
            and last.ends_last >= 0.5):
        share = 100 * last.exposed_ms / last.comm_ms
        out.append(Finding("medium", f"{LAST_BUCKET} ({last.bytes / 1e6:.1f} MB) is "
                                     f"{share:.0f}% exposed: its gradients are ready "
                                     "only at the end of the backward pass, so nothing can hide its all-reduce. "
                                     "A smaller last bucket (DDP fills buckets in gradient-ready order) shortens "
                                     "the tail."))
    fits = [f for f in bw.fits if ops.family(f.op) == ops.ALL_REDUCE and f.alpha_us and f.beta_gbps]
    if fits and len(buckets) >= 4:
        f = fits[0]
        a_s, b_bps = (f.alpha_us or 0.0) * 1e-6, (f.beta_gbps or 1.0) * 1e9
        tiny = [b for b in buckets if a_s > b.bytes / b_bps]
        if len(tiny) >= len(buckets) / 2:
            out.append(Finding("medium", f"{len(tiny)} of {len(buckets)} buckets are latency-bound: the fixed "
                                         f"cost of a collective ({f.alpha_us:.0f} µs) exceeds their transfer time. "
                                         "Larger buckets amortize it."))
    return out


_SIZED_BY_CALLS = ("", "NCCL", "MSCCL (RCCL)", "gloo")  # their sizes come from the CPU calls' records


def sizes_unknown(ranks: Sequence[RankTrace]) -> list[str]:
    """Said once per run: which collectives have no size, and what would give them one."""
    out = []
    calls = [(rt.rank, c) for rt in ranks for c in rt.collectives if not c.size_known and c.via in _SIZED_BY_CALLS]
    if calls:
        on = ranks_text({r for r, _ in calls}, limit=8)
        out.append(f"The bytes of {len(calls)} collectives ({on}) are unknown: the traces carry neither "
                   "record_param_comms sizes nor the calls' Input Dims, so their bytes count as 0 and their "
                   "bandwidth is not shown. Trace with torch.profiler.profile(record_shapes=True), or with "
                   "commprof.trace(), which records shapes.")
    other = [(rt.rank, c.via) for rt in ranks for c in rt.collectives
             if not c.size_known and c.via not in _SIZED_BY_CALLS]
    for via in sorted({v for _, v in other}):
        n = sum(v == via for _, v in other)
        out.append(f"{n} communication kernels of {via} ({ranks_text({r for r, v in other if v == via}, limit=8)}) "
                   "were launched by no collective call the trace records, and kernels carry no sizes: their time "
                   "counts as communication, their bytes are unknown.")
    return out


# ---- the advisor's words ----------------------------------------------------------------------------

def no_whatif(why_not: dict[int, str]) -> Finding:
    """No replay for any rank: why, for the first rank that said."""
    if not why_not:
        return Finding("info", "No what-if prediction: the run lacks per-parameter gradient times or matched bucket "
                               "collectives in its profiled steps.")
    rank, why = min(why_not.items())
    return Finding("info", f"No what-if prediction: {why} (rank {rank}).")
NO_POWERSGD_SHAPES = Finding("info", "No PowerSGD prediction: the run lacks the gradients' shapes (trace with "
                                     "record_shapes=True, or with commprof.trace, which records them).")


def powersgd_unmeasured(name: str, step_ms: float, missing: Sequence[str]) -> Finding:
    """PowerSGD predicted faster, but on costs nothing in the run measured."""
    return Finding("info", f"{name} is predicted at {step_ms:.1f} ms per step, but not advised: the cost of "
                           f"{', '.join(missing)} was not measured on this machine, and it varies between CPUs and "
                           "GPUs far beyond bytes and flops. Trace with commprof.trace(model=ddp_model), whose "
                           "probe measures it, to have it checked.")


def model_misses(error_pct: float, tolerance_pct: float) -> Finding:
    return Finding("medium", f"The replay of the traced settings misses this run's own profiled step by "
                             f"{error_pct:+.0f}% (tolerance ±{tolerance_pct:.0f}%): its what-ifs are shown without "
                             "advice.")


def already_hidden(exposed_ms: float, step_ms: float) -> Finding:
    return Finding("info", f"Communication is already hidden: the replay puts {exposed_ms:.2f} ms of a {step_ms:.1f} "
                           "ms step after the backward pass. Other bucket sizes or compression have nothing to gain.",
                   NOTHING_TO_GAIN)


def bucket_cap_why(cur_mb: float, exposed_ms: float, buckets: int, best_mb: float, best_buckets: int,
                   best_exposed_ms: float, alpha_us: float, beta_gbps: float) -> str:
    return (f"With bucket_cap_mb={cur_mb:g}, {exposed_ms:.1f} ms of communication runs after the backward pass "
            f"({buckets} buckets); with {best_mb:g} MB ({best_buckets} buckets) the replay starts it earlier and "
            f"leaves {best_exposed_ms:.1f} ms exposed. Cost model from this run: all-reduce = {alpha_us:.0f} µs + "
            f"bytes / {beta_gbps:.2f} GB/s.")


def fp16_why(exposed_ms: float, fp16_exposed_ms: float, with_cap_mb: float | None) -> str:
    return (f"Sending fp16 gradients halves the bytes on the wire: exposed communication {exposed_ms:.1f} -> "
            f"{fp16_exposed_ms:.1f} ms per step"
            + (f" (with bucket_cap_mb={with_cap_mb:g})" if with_cap_mb is not None else "")
            + ". Register it with ddp_model.register_comm_hook(None, default_hooks.fp16_compress_hook) "
              "(bf16_compress_hook on Ampere or newer); gradients lose precision in transit.")


def fp16_cpu_bound(host: str) -> Finding:
    """fp16 compression where the all-reduces are the CPU's work (gloo between ranks of one network stack)."""
    return Finding("info", "comm_hook = fp16_compress_hook is not predicted: every rank shares one network stack "
                           f"({host}), so gloo's all-reduces move bytes through memory and sum them on the cores the "
                           "backward pass runs on. The hook halves the bytes, not that work: gloo sums half precision "
                           "element by element, and the casts and sums take cores from the backward pass, which the "
                           "trace of a run without the hook cannot show (on the README's demo the hook made the step "
                           "slower). Time a few steps with the hook registered to know.")


def powersgd_name(rank: int) -> str:
    return f"powerSGD_hook(matrix_approximation_rank={rank})"


def powersgd_why(rank: int, share: float, total_mb: float, wire_mb: float, exposed_ms: float, psgd_exposed_ms: float,
                 gloo_cap_mb: float | None) -> str:
    return (f"PowerSGD sends rank-{rank} factors of the {100 * share:.0f}% of gradient bytes that are matrices worth "
            f"compressing: {total_mb:.1f} -> {wire_mb:.2f} MB on the wire per step (three all-reduces per "
            f"bucket), exposed communication {exposed_ms:.1f} -> {psgd_exposed_ms:.1f} ms (the "
            "matrix products and error feedback included"
            + (f"; predicted with bucket_cap_mb={gloo_cap_mb:g}, one bucket: on gloo, powerSGD_hook's chained "
               "all-reduces can be issued in different orders on different ranks when there are several buckets, "
               "which aborts or hangs the job, and even with one bucket it is fragile on gloo (one of about 45 of our "
               "runs aborted); it is meant for NCCL" if gloo_cap_mb is not None else "")
            + f"). It is lossy: keep plain all-reduce for the first steps and check convergence. state = "
            f"powerSGD_hook.PowerSGDState(process_group=None, matrix_approximation_rank={rank}, "
            "start_powerSGD_iter=1000); ddp_model.register_comm_hook(state, powerSGD_hook.powerSGD_hook) "
            "(from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook). The prediction is for the steps "
            "after start_powerSGD_iter: before it the hook runs plain all-reduces.")


ACCUMULATION_END = "per optimizer step."  # how ``accumulation_why``'s words end (a calibration's sentence may follow)


def accumulation_why(k: int, exposed_ms: float, micro: int = 1, synced: int = 1) -> str:
    """``micro``: the micro-batches of a traced step; ``synced``: how many of them synchronize now."""
    if micro > 1:
        n = k * micro
        now = "once" if synced <= 1 else f"{synced} times"
        return (f"Synchronizing once every {k} of these steps, {n} micro-batches (model.no_sync() on all but the "
                f"last), pays the {exposed_ms:.1f} ms of exposed communication once per {n} micro-batches, where it is "
                f"paid {now} per {micro} now. This changes the optimization: {k}x the effective batch "
                f"{ACCUMULATION_END}")
    return (f"Synchronizing every {k} steps (model.no_sync() on the others) pays the {exposed_ms:.1f} ms of exposed "
            f"communication once per {k} micro-batches. This changes the optimization: {k}x the effective batch "
            f"{ACCUMULATION_END}")


# ---- pipelines, DataParallel, memory, input transfers -------------------------------------------------


def pipeline_findings(pipe: PipelineReport | None) -> tuple[list[Finding], list[Advice]]:
    if pipe is None or pipe.best is None or pipe.current is None:
        return [], []
    cur, best = pipe.current, pipe.best
    if best.split != cur.split and best.step_ms < cur.step_ms * 0.95:
        return [], [Advice(
            knob="partition", value=list(best.split), baseline_step_ms=cur.step_ms, predicted_step_ms=best.step_ms,
            why=f"Layers per stage {list(cur.split)}: the slowest stage takes {cur.slowest_stage_ms:.2f} ms per "
            f"micro-batch (forward + backward + sending its activation), and the others wait for it in the "
            f"pipeline. Split {list(best.split)} brings the slowest stage to {best.slowest_stage_ms:.2f} ms.")]
    if best.split == cur.split or best.slowest_stage_ms >= cur.slowest_stage_ms or best.step_ms >= cur.step_ms:
        return [Finding("info", f"The pipeline split {list(cur.split)} is balanced: no contiguous split of the "
                                "recorded layers gives a faster slowest stage and a shorter step.")], []
    stage, heavy = _heaviest(pipe.layers, best.split)
    heavy_ms = heavy.fwd_ms + heavy.bwd_ms
    bound = (f"; the slowest stage is held by layer {heavy.name!r} of stage {stage} ({heavy_ms:.2f} ms per "
             "micro-batch of it), which no split divides: make that layer cheaper or split it into recorded modules"
             if heavy_ms >= 0.5 * best.slowest_stage_ms else "")
    return [Finding("info", f"The pipeline split {list(cur.split)} is close to the best the recorded layers allow: "
                            f"split {list(best.split)} would bring the slowest stage from {cur.slowest_stage_ms:.2f} "
                            f"to {best.slowest_stage_ms:.2f} ms per micro-batch and the step from {cur.step_ms:.1f} "
                            f"to {best.step_ms:.1f} ms (less than 5%: not advised){bound}.")], []


def _heaviest(layers: Sequence[Layer], split: Sequence[int]) -> tuple[int, Layer]:
    """The slowest stage of ``split`` (by its layers' compute; stages are numbered from 0, as the ranks hold them)
    and its heaviest layer, named with the stage of the traced split that recorded it."""
    bounds = np.cumsum([0, *split])
    stages = [list(layers[bounds[j]:bounds[j + 1]]) for j in range(len(split))]
    slow = max(stages, key=lambda st: sum(x.fwd_ms + x.bwd_ms for x in st))
    heavy = max(slow, key=lambda x: x.fwd_ms + x.bwd_ms)
    return heavy.stage, heavy


def dataparallel_findings(dps: Sequence[DataParallelStat]) -> tuple[list[Finding], list[Advice]]:
    findings: list[Finding] = []
    advice: list[Advice] = []
    for d in dps:
        parts = ", ".join(f"{p.name} {p.busy_ms:.2f} ms ({p.bytes_per_step / 1e6:.1f} MB)" for p in d.phases)
        text = (f"nn.DataParallel over {len(d.devices)} devices: every step moves data through device "
                f"{d.devices[0] if d.devices else 0} — {parts}; {d.overhead_ms:.2f} ms of a {d.step_ms:.2f} ms step "
                f"({100 * d.overhead_ms / d.step_ms if d.step_ms else 0:.0f}%).")
        if len(d.device_busy_ms) > 1:
            first = d.devices[0]
            others = [v for k, v in d.device_busy_ms.items() if k != first]
            if others and d.device_busy_ms[first] > 1.1 * float(np.mean(others)):
                text += (f" Device {first} computes {d.device_busy_ms[first]:.2f} ms per step against "
                         f"{float(np.mean(others)):.2f} ms on the others (loss, gathered outputs and the "
                         "optimizer run there alone).")
        findings.append(Finding("medium" if d.overhead_ms > 0.05 * d.step_ms else "info", text))
        if d.ddp_step_ms is not None and d.ddp_step_ms < 0.95 * d.step_ms:
            advice.append(Advice(
                knob="parallelism", value="DistributedDataParallel", baseline_step_ms=d.step_ms,
                predicted_step_ms=d.ddp_step_ms,
                why=f"nn.DataParallel spends {d.overhead_ms:.2f} ms of each {d.step_ms:.2f} ms step moving data "
                f"through device {d.devices[0] if d.devices else 0}. DistributedDataParallel (one process per GPU) "
                "drops the scatter, broadcast and gather and "
                f"replaces the reduction by an all-reduce overlapped with backward: estimated {d.ddp_step_ms:.2f} ms "
                f"per step (all-reduce {d.ddp_allreduce_ms or 0:.2f} ms, twice the measured reduce, of which "
                f"{d.ddp_exposed_ms or 0:.2f} ms — its last 25 MB bucket — stays exposed). An estimate from this "
                "trace: it ignores Python-thread (GIL) contention among the replicas, which DDP also removes."))
    return findings, advice


def memory_findings(mem: Sequence[Memory]) -> list[Finding]:
    out: list[Finding] = []
    full = [m for m in mem if m.pct is not None and m.pct >= 100 * NEAR_LIMIT]
    if full:
        m = max(full, key=lambda m: m.pct or 0.0)
        text = (f"Rank {m.rank} reserves {m.peak_reserved / 2**30:.1f} GiB of {m.device}'s "
                f"{(m.total or 0) / 2**30:.1f} GiB ({m.pct:.0f}%). Sharding gradients and optimizer state "
                "(ZeRO: FSDP, or ZeroRedundancyOptimizer) divides them by the number of ranks; compact dtypes "
                "(bf16 mixed precision) halve activations and gradients.")
        if m.bucket_copy and m.bucket_bytes:
            text += (f" DDP's buckets hold a second copy of the gradients ({m.bucket_bytes / 2**30:.2f} GiB): "
                     "gradient_as_bucket_view=True removes it.")
        if m.compression_persistent or m.compression_transient:
            text += f" The comm hook's own buffers: {_hook_buffers(m)}."
        out.append(Finding("high", text))
    hooked = [m for m in mem if m.compression_persistent or m.compression_transient]
    if hooked and not full:
        m = max(hooked, key=lambda m: m.compression_persistent + m.compression_transient)
        out.append(Finding("info", f"Rank {m.rank}'s comm hook ({m.hook}) costs memory: {_hook_buffers(m)} "
                                   f"(peak reserved on {m.device}: {m.peak_reserved / 2**30:.2f} GiB)."))
    return out


def _hook_buffers(m: Memory) -> str:
    parts = []
    if m.compression_persistent:
        parts.append(f"{m.compression_persistent / 2**20:.1f} MiB kept across steps (PowerSGD's error feedback and "
                     "factors)")
    if m.compression_transient:
        parts.append(f"up to {m.compression_transient / 2**20:.1f} MiB while buckets are in flight")
    return ", ".join(parts)


TRIVIAL_SHARE = 0.005  # of the step: pageable copies below it are not worth a line


def transfer_findings(xfers: Sequence[Transfers], overlaps: Sequence[RankOverlap],
                      unprof: dict[int, float]) -> tuple[list[Finding], list[Advice]]:
    findings: list[Finding] = []
    advice: list[Advice] = []
    step = {o.rank: unprof.get(o.rank, o.representative.step_ns / 1e6 if o.representative else 0.0)
            for o in overlaps}
    worst = max(xfers, key=lambda t: t.htod_exposed_ms, default=None)
    # said where the copies take at least TRIVIAL_SHARE of the step (DLRM's 0.0 MB in 0.01 ms was a finding)
    if (worst is not None and worst.htod_pageable_count and step.get(worst.rank)
            and worst.htod_pageable_ms >= TRIVIAL_SHARE * step[worst.rank]):
        base = step[worst.rank]
        gain = worst.htod_exposed_ms
        text = (f"Rank {worst.rank} copies {worst.htod_pageable_bytes / 1e6:.1f} MB per step to the GPU from pageable "
                f"host memory ({worst.htod_pageable_count:.0f} copies, {worst.htod_pageable_ms:.2f} ms, "
                f"{gain:.2f} ms of it with no compute running): each goes through a staging buffer and blocks "
                "the host.")
        findings.append(Finding("medium" if gain > 0.02 * base else "info", text))
        if gain > 0.01 * base:
            advice.append(Advice(knob="pin_memory", value=True, baseline_step_ms=base, predicted_step_ms=base - gain,
                                 why=text + " Use DataLoader(pin_memory=True) and tensor.to(device, non_blocking=True) "
                                            "so the copies overlap compute."))
    syncs = max(xfers, key=lambda t: t.sync_ms, default=None)
    if syncs is not None and syncs.sync_count and step.get(syncs.rank) and syncs.sync_ms > 0.01 * step[syncs.rank]:
        findings.append(Finding("medium", f"Rank {syncs.rank} blocks in host synchronization "
                                          f"(cudaStreamSynchronize / cudaDeviceSynchronize / cudaMemcpy) "
                                          f"{syncs.sync_count:.0f} times per step, {syncs.sync_ms:.2f} ms: .item(), "
                                          ".cpu() or printing a CUDA tensor inside the step stalls the CPU until the "
                                          "GPU catches up, so it cannot queue the next kernels."))
    return findings, advice
