"""``analyze(run) -> Report``: every analysis of a run, in one immutable value for the renderers.  This module
only orchestrates: each analysis lives in its own module, every sentence in ``findings``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..model import Run
from . import findings as say
from .advice import Advisor, advise
from .bandwidth import Bandwidth, bandwidth
from .buckets import BucketStat, BucketStep, bucket_stats
from .churn import Churn, churn_all, churn_findings
from .crossrank import CrossRank, cross_rank
from .dataparallel import DataParallelStat, dataparallel
from .ddp2fsdp import ParallelAnalysis, ddp_to_fsdp, parallel_findings
from .findings import Advice, Finding
from .fsdpadvice import FSDPAnalysis, fsdp_advisor
from .memory import NEAR_LIMIT, Memory, memory
from .overlap import RankOverlap
from .perrank import RankDigest, results_for, steps_key
from .pipeline import PipelineReport, pipeline
from .production import MonitorReport
from .steptimes import unprofiled_step_ms
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
    monitor: MonitorReport | None = None  # the monitor's files in the same folder (hangs, slow ranks)
    fsdp: FSDPAnalysis | None = None  # FSDP2's units, phases, what-ifs and advice
    churn: tuple[Churn, ...] = ()  # allocator churn per rank (analysis/churn.py)
    parallel: ParallelAnalysis | None = None  # DDP -> FSDP2 what-if (analysis/ddp2fsdp.py)
    whatif_asked: tuple[str, ...] = ()  # what-ifs the user asked to see in the text report ("fsdp")

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


def analyze(run: Run, *, steps: Iterable[int] | None = None, link_gbps: float | None = None,
            digests: Mapping[int, RankDigest] | None = None, step_ms: float | None = None,
            whatif: Iterable[str] = ()) -> Report:
    """Every analysis of ``run``; ``steps`` restricts to those ProfilerStep numbers, ``link_gbps``
    (GB/s per GPU, one direction) sets the peak that achieved bus bandwidth is compared with.  ``digests``: what
    the map step computed per rank (``commprof.load`` passes it on), used where it was computed for these steps.
    ``step_ms``: the step time outside the profiler, for ranks whose files do not record it (plain torch.profiler
    traces): the what-ifs are calibrated on it."""
    wanted = tuple(steps) if steps is not None else None
    digests = digests or {}
    key = steps_key(wanted)
    per_rank = [results_for(rt, wanted, key, digests.get(rt.rank)) for rt in run.ranks]
    overlaps = tuple(r.overlap for r in per_rank)
    rows: list[BucketStep] = [b for r in per_rank for b in r.bucket_rows]
    cross = cross_rank(run.ranks, wanted, digests)
    unprof = unprofiled_step_ms(run)
    if step_ms is not None:
        unprof = {rt.rank: unprof.get(rt.rank, step_ms) for rt in run.ranks}
    devices = [d for rt in run.ranks for d in rt.devices]
    bw = bandwidth(run.ranks, cross, wanted, link_gbps, devices)
    bstats = tuple(bucket_stats(rows))
    advisor = advise(run, rows, bstats, bw, unprof)
    fsdp = fsdp_advisor(run, bw, unprof)
    pipe = pipeline(run, unprof, digests)
    xfers = tuple(r.transfers for r in per_rank if r.transfers is not None)
    dps = tuple(d for d in (dataparallel(rt, unprof.get(rt.rank)) for rt in run.ranks) if d is not None)
    mem = tuple(m for rt in run.ranks for m in memory(rt))
    pfind, padvice = say.pipeline_findings(pipe)
    churns = churn_all(run)
    par = ddp_to_fsdp(run, bw, advisor.scale, advisor.rates, advisor.check.error_pct if advisor.check else None,
                      unprof)
    wfind, wadvice = parallel_findings(par, "fsdp" in tuple(whatif))
    cfind, cadvice = churn_findings(churns, unprof, {m.rank for m in mem if (m.pct or 0.0) >= 100 * NEAR_LIMIT})
    tfind, tadvice = say.transfer_findings(xfers, overlaps, unprof)
    dfind, dadvice = say.dataparallel_findings(dps)
    findings = (tuple(say.overview(overlaps, cross)) + advisor.findings + tuple(pfind) + tuple(tfind)
                + tuple(say.memory_findings(mem)) + tuple(cfind) + tuple(wfind) + tuple(dfind)
                + (fsdp.findings if fsdp else ()))
    advice = (advisor.advice + tuple(padvice) + tuple(tadvice) + tuple(dadvice) + (fsdp.advice if fsdp else ())
              + tuple(cadvice) + tuple(wadvice))
    return Report(run, wanted, overlaps, unprof, tuple(collective_stats(run.ranks, wanted)), tuple(rows), bstats,
                  cross, bw, advisor, pipe, xfers, mem, findings, advice, _warnings(run, cross, wanted, overlaps),
                  dps, fsdp=fsdp, churn=churns, parallel=par, whatif_asked=tuple(whatif))


def _warnings(run: Run, cross: CrossRank, wanted: tuple[int, ...] | None,
              overlaps: tuple[RankOverlap, ...]) -> tuple[str, ...]:
    out = list(run.warnings)
    for rt in run.ranks:
        out.extend(rt.warnings)
        if rt.sidecar is not None:
            out.extend(f"rank {rt.rank}: {w}" for w in rt.sidecar.warnings)
    out.extend(cross.warnings)
    out.extend(say.sizes_unknown(run.ranks))
    if wanted is not None and not any(o.steps for o in overlaps):
        out.append(f"no ProfilerStep in the requested steps {wanted[0]}..{wanted[-1]}")
    return tuple(out)
