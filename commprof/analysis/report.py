"""``analyze(run) -> Report``: every analysis of a run, in one immutable value for the renderers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..model import Run
from .advice import Advice, Advisor, Finding, advise
from .bandwidth import Bandwidth, bandwidth
from .buckets import BucketStat, BucketStep, bucket_stats
from .dataparallel import DataParallelStat, dataparallel
from .digest import results_for, steps_key
from .memory import NEAR_LIMIT, Memory, memory
from .overlap import RankOverlap
from .pipeline import PipelineReport, pipeline
from .ranks import CrossRank, cross_rank
from .transfers import Transfers
from .volume import CollectiveStat, collective_stats


@dataclass(frozen=True, slots=True)
class Report:
    run: Run
    steps: tuple[int, ...] | None  # the user's restriction, None = all
    overlaps: tuple[RankOverlap, ...]
    unprofiled_step_ms: dict[int, float]  # rank -> median wall time of steps outside the profiler
    collectives: tuple[CollectiveStat, ...]
    bucket_rows: tuple[BucketStep, ...]
    buckets: tuple[BucketStat, ...]
    cross: CrossRank
    bandwidth: Bandwidth
    advisor: Advisor
    pipeline: PipelineReport | None
    transfers: tuple[Transfers, ...]
    memory: tuple[Memory, ...]
    findings: tuple[Finding, ...]
    advice: tuple[Advice, ...]
    warnings: tuple[str, ...]
    dataparallel: tuple[DataParallelStat, ...] = ()

    @property
    def backend(self) -> str:
        vals = {rt.backend for rt in self.run.ranks if rt.backend}
        return ",".join(sorted(vals)) if vals else "unknown"

    @property
    def devices(self) -> tuple[str, ...]:
        out: list[str] = []
        for rt in self.run.ranks:
            for d in rt.devices or (("CPU",) if rt.device_kind == "cpu" else ()):
                if d not in out:
                    out.append(d)
        return tuple(out)

    def to_dataframe(self, table: str = "ranks"):
        """A table of the report as a pandas DataFrame (see ``commprof.report.frames``)."""
        from ..report.frames import to_dataframe

        return to_dataframe(self, table)

    def plots(self) -> dict[str, bytes]:
        """The report's PNG plots by name (breakdown, timeline, buckets, bandwidth, stragglers)."""
        from ..report.plots import all_plots

        return all_plots(self)


def parse_steps(spec: str | None) -> tuple[int, ...] | None:
    """``"3:6"`` -> (3, 4, 5); ``"4"`` -> (4,); ``None`` -> all steps."""
    if not spec:
        return None
    if ":" in spec:
        a, b = spec.split(":", 1)
        lo = int(a) if a.strip() else 0
        hi = int(b) if b.strip() else 1 << 31
        if hi <= lo:
            raise ValueError(f"empty step range {spec!r}")
        return tuple(range(lo, min(hi, lo + 1_000_000)))
    return (int(spec),)


def analyze(run: Run, *, steps: Iterable[int] | None = None, link_gbps: float | None = None) -> Report:
    """Every analysis of ``run``; ``steps`` restricts to those ProfilerStep numbers, ``link_gbps``
    (GB/s per GPU, one direction) sets the peak that achieved bus bandwidth is compared with."""
    wanted = tuple(steps) if steps is not None else None
    # per-rank results: from the map step where it computed them for these steps (commprof.analysis.digest)
    key = steps_key(wanted)
    per_rank = [results_for(rt, wanted, key) for rt in run.ranks]
    overlaps = tuple(r.overlap for r in per_rank)
    colls = tuple(collective_stats(run.ranks, wanted))
    rows: list[BucketStep] = [b for r in per_rank for b in r.bucket_rows]
    cross = cross_rank(run.ranks, wanted)
    unprof: dict[int, float] = {}
    for rt in run.ranks:
        if rt.sidecar is not None:
            times = sorted(rt.sidecar.step_times, key=lambda s: s.number)
            # skip the first step (start-up: allocator warm-up, lazy init) and the step right after a
            # profiled one (the peers' trace export blocks it in their collectives)
            vals = [s.end_ns - s.start_ns for i, s in enumerate(times)
                    if not s.profiled and i > 0 and not times[i - 1].profiled]
            if not vals:
                vals = [s.end_ns - s.start_ns for s in times if not s.profiled]
            if vals:
                unprof[rt.rank] = float(np.median(vals)) / 1e6
    warnings = list(run.warnings)
    for rt in run.ranks:
        warnings.extend(rt.warnings)
        if rt.sidecar is not None:
            warnings.extend(f"rank {rt.rank}: {w}" for w in rt.sidecar.warnings)
    warnings.extend(cross.warnings)
    if wanted is not None and not any(o.steps for o in overlaps):
        warnings.append(f"no ProfilerStep in the requested steps {wanted[0]}..{wanted[-1]}")
    devices = [d for rt in run.ranks for d in rt.devices]
    bw = bandwidth(run.ranks, cross, wanted, link_gbps, devices)
    bstats = tuple(bucket_stats(rows))
    advisor = advise(run, rows, bstats, bw, unprof)
    pipe = pipeline(run, unprof)
    advice = list(advisor.advice)
    pfind: list[Finding] = []
    if pipe is not None and pipe.best is not None and pipe.current is not None:
        cur, best = pipe.current, pipe.best
        if best.split != cur.split and best.step_ms < cur.step_ms * 0.95:
            advice.append(Advice(
                "partition", list(best.split), cur.step_ms, best.step_ms,
                f"Layers per stage {list(cur.split)}: the slowest stage takes {cur.slowest_stage_ms:.2f} ms per "
                f"micro-batch (forward + backward + sending its activation), and the others wait for it in the "
                f"pipeline. Split {list(best.split)} brings the slowest stage to {best.slowest_stage_ms:.2f} ms."))
        else:
            pfind.append(Finding("info", f"The pipeline split {list(cur.split)} is balanced: no contiguous split "
                                         "of the recorded layers has a faster slowest stage."))
    xfers = tuple(r.transfers for r in per_rank if r.transfers is not None)
    tfind, tadvice = _transfer_findings(xfers, overlaps, unprof)
    advice.extend(tadvice)
    dps = tuple(d for d in (dataparallel(rt, unprof.get(rt.rank)) for rt in run.ranks) if d is not None)
    dfind, dadvice = _dp_findings(dps)
    advice.extend(dadvice)
    mem = tuple(m for rt in run.ranks for m in memory(rt))
    findings = (tuple(_findings(run, overlaps, cross)) + advisor.findings + tuple(pfind) + tuple(tfind)
                + tuple(_memory_findings(mem)) + tuple(dfind))
    return Report(run, wanted, overlaps, unprof, colls, tuple(rows), bstats, cross, bw, advisor, pipe, xfers,
                  mem, findings, tuple(advice), tuple(warnings), dps)


def _dp_findings(dps: tuple[DataParallelStat, ...]) -> tuple[list[Finding], list[Advice]]:
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
                "parallelism", "DistributedDataParallel", d.step_ms, d.ddp_step_ms,
                f"nn.DataParallel spends {d.overhead_ms:.2f} ms of each {d.step_ms:.2f} ms step moving data through "
                f"device {d.devices[0] if d.devices else 0}. DistributedDataParallel (one process per GPU) drops the "
                "scatter, broadcast and gather and "
                f"replaces the reduction by an all-reduce overlapped with backward: estimated {d.ddp_step_ms:.2f} ms "
                f"per step (all-reduce {d.ddp_allreduce_ms or 0:.2f} ms, twice the measured reduce, of which "
                f"{d.ddp_exposed_ms or 0:.2f} ms — its last 25 MB bucket — stays exposed). An estimate from this "
                "trace: it ignores Python-thread (GIL) contention among the replicas, which DDP also removes."))
    return findings, advice


def _memory_findings(mem: tuple[Memory, ...]) -> list[Finding]:
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


def _transfer_findings(xfers: tuple[Transfers, ...], overlaps: tuple[RankOverlap, ...],
                       unprof: dict[int, float]) -> tuple[list[Finding], list[Advice]]:
    findings: list[Finding] = []
    advice: list[Advice] = []
    step = {o.rank: unprof.get(o.rank, o.median("step_ns") / 1e6) for o in overlaps}
    worst = max(xfers, key=lambda t: t.htod_exposed_ms, default=None)
    if worst is not None and worst.htod_pageable_count and step.get(worst.rank):
        base = step[worst.rank]
        gain = worst.htod_exposed_ms
        text = (f"Rank {worst.rank} copies {worst.htod_pageable_bytes / 1e6:.1f} MB per step to the GPU from pageable "
                f"host memory ({worst.htod_pageable_count:.0f} copies, {worst.htod_pageable_ms:.2f} ms, "
                f"{gain:.2f} ms of it with no compute running): each goes through a staging buffer and blocks "
                "the host.")
        findings.append(Finding("medium" if gain > 0.02 * base else "info", text))
        if gain > 0.01 * base:
            advice.append(Advice("pin_memory", True, base, base - gain,
                                 text + " Use DataLoader(pin_memory=True) and tensor.to(device, non_blocking=True) "
                                        "so the copies overlap compute."))
    syncs = max(xfers, key=lambda t: t.sync_ms, default=None)
    if syncs is not None and syncs.sync_count and step.get(syncs.rank) and syncs.sync_ms > 0.01 * step[syncs.rank]:
        findings.append(Finding("medium", f"Rank {syncs.rank} blocks in host synchronization "
                                          f"(cudaStreamSynchronize / cudaDeviceSynchronize / cudaMemcpy) "
                                          f"{syncs.sync_count:.0f} times per step, {syncs.sync_ms:.2f} ms: .item(), "
                                          ".cpu() or printing a CUDA tensor inside the step stalls the CPU until the "
                                          "GPU catches up, so it cannot queue the next kernels."))
    return findings, advice


def _findings(run: Run, overlaps: tuple[RankOverlap, ...], cross: CrossRank) -> list[Finding]:
    out: list[Finding] = []
    with_steps = [o for o in overlaps if o.steps]
    if not with_steps:
        return out
    worst = max(with_steps, key=lambda o: o.median("exposed_ns"))
    step_ms = worst.median("step_ns") / 1e6
    exp_ms = worst.median("exposed_ns") / 1e6
    comm_ms = worst.median("comm_ns") / 1e6
    if comm_ms == 0:
        out.append(Finding("info", "No communication ran inside the analyzed steps "
                                   "(world size 1, or no collective kernels/transfers in the trace)."))
        return out
    share = 100 * exp_ms / step_ms if step_ms else 0.0
    sev = "high" if share >= 20 else "medium" if share >= 5 else "info"
    wait = cross.wait_ms_per_step.get(worst.rank)
    waited = (f" Of its communication, {wait:.2f} ms per step is waiting for other ranks to join, "
              f"not transfer." if wait else "")
    out.append(Finding(sev, f"Exposed communication: {exp_ms:.2f} ms of a {step_ms:.2f} ms step "
                            f"({share:.0f}%) on rank {worst.rank}; {worst.median('overlap_pct'):.0f}% of its "
                            f"{comm_ms:.2f} ms of communication is hidden behind compute.{waited}"))
    if cross.stragglers:
        s = cross.stragglers[0]
        parts = sorted([(s.compute_ms, "computing"), (s.idle_ms, "idle (no operator or kernel: data loading, "
                        "host-side stalls)"), (s.comm_ms, "in other communication")], reverse=True)
        out.append(Finding("high" if s.late_count >= 3 else "medium",
                           f"Rank {s.rank} arrives last at {s.late_count} of {s.instances} collectives, "
                           f"{s.mean_late_ms:.2f} ms after the first rank on average: the others wait for it. "
                           f"Meanwhile it was mostly {parts[0][1]} ({parts[0][0]:.2f} ms)."
                           + (" Idle time before collectives on one rank points to its input pipeline: check its "
                              "DataLoader (num_workers, pin_memory) and that DistributedSampler gives every rank "
                              "equal shards." if parts[0][1].startswith("idle") else "")))
    return out
