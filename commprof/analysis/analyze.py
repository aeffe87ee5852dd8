"""``analyze(run) -> Report``: every analysis of a run, in one immutable value for the renderers.  This module
only orchestrates: the analyses common to every family (overlap, collectives, cross-rank matching, bandwidth),
then each family's ``Section`` (``families``), then the arbiter (``arbiter``); every sentence in ``findings``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..model import MonitorRun, Run
from . import findings as say
from .arbiter import arbitrate
from .bandwidth import Bandwidth, bandwidth
from .crossrank.critpath import Segment
from .crossrank.family import CrossRankDetail, no_cross, per_rank_sections
from .crossrank.matching import CrossRank, cross_rank
from .crossrank.p2p import NO_LINKS, links, with_p2p_waits
from .crossrank.rootcause import Critical, RootCause
from .dataparallel import DataParallelStat
from .ddp.advice import Advisor
from .ddp.buckets import BucketStat, BucketStep
from .ddp.family import EMPTY as NO_DDP
from .ddp.family import DDPDetail
from .families import sections as family_sections
from .fsdp.advice import FSDPAnalysis
from .memory.churn import Churn
from .memory.ddp2fsdp import ParallelAnalysis
from .memory.peak import Memory
from .overlap import RankOverlap, kept_steps
from .perrank import RankDigest, results_for, steps_key
from .pipeline.stages import PipelineReport
from .production.diagnosis import MonitorReport
from .section import Advice, Finding, Section
from .shared import Shared
from .steptimes import profiler_cost, step_now_ms, unprofiled_step_ms
from .transfers import Transfers
from .uncertainty.bands import noise_warning, with_bands
from .uncertainty.maths import RUN_DRIFT_SD_PCT, Noise
from .uncertainty.runnoise import heavy_steps, run_noise
from .volume import CollectiveStat, collective_stats


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    run: Run
    steps: tuple[int, ...] | None  # the user's restriction, None = all
    overlaps: tuple[RankOverlap, ...]
    unprofiled_step_ms: dict[int, float]  # rank -> median wall time of steps outside the profiler
    collectives: tuple[CollectiveStat, ...]
    cross: CrossRank
    bandwidth: Bandwidth
    sections: tuple[Section, ...]  # one per analysis family the run has, in the report's order
    findings: tuple[Finding, ...]  # every section's findings that stand (``arbiter``)
    advice: tuple[Advice, ...]
    warnings: tuple[str, ...]
    noise: Noise = Noise()  # how disturbed the traced run was (``uncertainty``)
    # rank -> the step as it is now, what every prediction is calibrated on and advice is measured against, and where
    # it comes from (``steptimes.step_now_ms``: OUTSIDE, GIVEN or PROFILED)
    step_now_ms: dict[int, float] = field(default_factory=dict)
    step_now_basis: dict[int, str] = field(default_factory=dict)

    def section(self, family: str) -> Section | None:
        return next((s for s in self.sections if s.family == family), None)

    def _detail(self, family: str, default: Any = None) -> Any:
        s = self.section(family)
        return default if s is None else s.detail

    # each family's own record, by name (the renderers' and notebooks' shorthand)
    @property
    def ddp(self) -> DDPDetail:
        return self._detail("ddp", NO_DDP)

    @property
    def advisor(self) -> Advisor:
        return self.ddp.advisor

    @property
    def bucket_rows(self) -> tuple[BucketStep, ...]:
        return self.ddp.rows

    @property
    def buckets(self) -> tuple[BucketStat, ...]:
        return self.ddp.buckets

    @property
    def pipeline(self) -> PipelineReport | None:
        return self._detail("pipeline")

    @property
    def transfers(self) -> tuple[Transfers, ...]:
        return self._detail("transfers", ())

    @property
    def memory(self) -> tuple[Memory, ...]:
        d = self._detail("memory")
        return d.peaks if d is not None else ()

    @property
    def churn(self) -> tuple[Churn, ...]:
        d = self._detail("memory")
        return d.churn if d is not None else ()

    @property
    def parallel(self) -> ParallelAnalysis | None:
        d = self._detail("memory")
        return d.parallel if d is not None else None

    @property
    def dataparallel(self) -> tuple[DataParallelStat, ...]:
        return self._detail("dataparallel", ())

    @property
    def fsdp(self) -> FSDPAnalysis | None:
        return self._detail("fsdp")

    @property
    def monitor(self) -> MonitorReport | None:
        return self._detail("production")

    @property
    def critical(self) -> Critical | None:
        d: CrossRankDetail | None = self._detail("crossrank")
        return None if d is None else d.critical

    @property
    def critical_path(self) -> tuple[Segment, ...]:
        """The cross-rank critical path of every analyzed step, in time order: segments with ``rank``,
        ``start_ns``, ``end_ns`` (Unix ns on the reference rank's clock) and ``what`` (the timeline and the
        merged trace draw them)."""
        c = self.critical
        return () if c is None else tuple(s for p in c.paths for s in p.segments if s.end_ns > s.start_ns)

    @property
    def root_cause(self) -> RootCause | None:
        c = self.critical
        return None if c is None else c.cause

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
            monitor: MonitorRun | None = None, per_rank_only: bool = False,
            whatif: Iterable[str] = (), drift_pct: float | None = None) -> Report:
    """Every analysis of ``run``; ``steps`` restricts to those ProfilerStep numbers, ``link_gbps``
    (GB/s per GPU, one direction) sets the peak that achieved bus bandwidth is compared with.  ``digests``: what
    the map step computed per rank (``commprof.load`` passes it on), used where it was computed for these steps.
    ``step_ms``: the step time outside the profiler, for ranks whose files do not record it (plain torch.profiler
    traces): the what-ifs are calibrated on it.  ``monitor``: the files ``commprof.monitor`` wrote for the same
    job (``commprof.reader.monitor.read_monitor``), diagnosed in the report's production section.
    ``per_rank_only`` (or a run ``load`` marked so): per-rank figures only, no cross-rank claim (``withheld``).
    ``whatif``: what-ifs to state in the findings even where the run does not call for them ("fsdp": DDP -> FSDP2,
    "ddp": FSDP2 -> DDP).  ``drift_pct``: the standard deviation of a run's mean step from run to run on this
    platform, % (default ``RUN_DRIFT_SD_PCT``): the band of the traced settings spans it."""
    withheld = per_rank_only or run.per_rank_only
    wanted = tuple(steps) if steps is not None else None
    digests = digests or {}
    key = steps_key(wanted)
    per_rank = tuple(results_for(rt, wanted, key, digests.get(rt.rank)) for rt in run.ranks)
    drift = RUN_DRIFT_SD_PCT if drift_pct is None else float(drift_pct)
    if not 0.0 <= drift <= 100.0:  # NaN fails too
        raise ValueError(f"drift_pct={drift_pct!r}: the drift is a percentage of the step in [0, 100]")
    nz = run_noise(run, wanted, drift)
    if heavy := heavy_steps(run, wanted, nz):  # steps of larger inputs: the job's data, never a headline outlier
        per_rank = tuple(replace(r, overlap=replace(r.overlap, heavy=heavy)) for r in per_rank)
    overlaps = tuple(r.overlap for r in per_rank)
    kept = kept_steps(overlaps)  # each rank's headline steps: its wait over the same
    cross = no_cross(run.ranks) if withheld else cross_rank(run.ranks, wanted, digests, kept)
    lk = NO_LINKS if withheld else links(run.ranks, cross, set(wanted) if wanted is not None else None)
    cross = with_p2p_waits(cross, run.ranks, lk, set(wanted) if wanted is not None else None, kept)
    unprof = unprofiled_step_ms(run)
    if step_ms is not None:
        unprof = {rt.rank: unprof.get(rt.rank, step_ms) for rt in run.ranks}
    devices = [d for rt in run.ranks for d in rt.devices]
    bw = bandwidth(run.ranks, cross, wanted, link_gbps, devices, lk)
    now, basis = step_now_ms(run, {o.rank: r.step_ns / 1e6 for o in overlaps if (r := o.representative) is not None},
                             step_ms, nz.episodes, nz.periodic)
    shared = Shared(run=run, steps=wanted, per_rank=per_rank, overlaps=overlaps, cross=cross, bandwidth=bw,
                    step_now_ms=now, step_now_basis=basis, digests=digests, monitor=monitor, noise=nz,
                    links=lk, whatif=tuple(whatif))
    sections = tuple(with_bands(s, nz) for s in family_sections(shared))
    if withheld:
        sections = per_rank_sections(run, sections)
    findings, advice = arbitrate(sections)
    return Report(run=run, steps=wanted, overlaps=overlaps, unprofiled_step_ms=unprof,
                  collectives=tuple(collective_stats(run.ranks, wanted)), cross=cross, bandwidth=bw,
                  sections=sections, findings=findings, advice=advice,
                  warnings=(*_warnings(run, cross, wanted, overlaps), *noise_warning(nz, sections),
                            *filter(None, [profiler_cost(run, now, basis, wanted, nz.periodic)])), noise=nz,
                  step_now_ms=now, step_now_basis=basis)


def _warnings(run: Run, cross: CrossRank, wanted: tuple[int, ...] | None,
              overlaps: tuple[RankOverlap, ...]) -> tuple[str, ...]:
    out = list(run.warnings)
    for rt in run.ranks:
        out.extend(rt.warnings)
        if rt.sidecar is not None:
            out.extend(w if w.startswith(f"rank {rt.rank}:") else f"rank {rt.rank}: {w}" for w in rt.sidecar.warnings)
    out.extend(cross.warnings)
    out.extend(say.sizes_unknown(run.ranks))
    if wanted is not None and not any(o.steps for o in overlaps):
        out.append(f"no ProfilerStep in the requested steps {wanted[0]}..{wanted[-1]}")
    return tuple(out)
