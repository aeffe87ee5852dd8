"""The memory family's section: peak memory per rank and what communication costs in it (``peak``), allocator
churn (``churn``), the DDP -> FSDP2 what-if (``ddp2fsdp``) and, on an FSDP2 run, the reverse FSDP2 -> DDP
(``fsdp2ddp``): their variants as ``WhatIf`` records."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import findings as say
from ..ddp.nosync import replay_fails, withheld
from ..ddp.rates import op_rates
from ..section import Finding, Section, WhatIf
from ..shared import Shared
from ..steptimes import PROFILED
from .churn import Churn, churn_all, churn_findings
from .ddp2fsdp import ParallelAnalysis, ddp_to_fsdp, near_limit, parallel_findings
from .fsdp2ddp import REVERSE_PREFIX, fsdp_to_ddp, reverse_findings
from .peak import NEAR_LIMIT, Memory, memory


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryDetail:
    peaks: tuple[Memory, ...]  # per rank and device (traces made with profile_memory=True)
    churn: tuple[Churn, ...]  # allocator calls and [memory] allocations per rank and profiled step
    # DDP -> FSDP2: memory and step under fully_shard (a DDP run with a sidecar); on an FSDP2 run, FSDP2 -> DDP
    parallel: ParallelAnalysis | None
    # the text report shows it: memory near the device's limit, or asked (--whatif fsdp); the reverse where DDP is
    # advised or asked (--whatif ddp)
    parallel_shown: bool = False


def _parallel(sh: Shared) -> ParallelAnalysis | None:
    """The what-if on the DDP advisor's calibration and its model's error on the traced run, where it has them."""
    ddp = sh.section("ddp")
    advisor = ddp.detail.advisor if ddp is not None else None
    scale = advisor.scale if advisor is not None else {}
    rates = advisor.rates if advisor is not None else None
    err = ddp.check.error_pct if ddp is not None and ddp.check is not None else None
    fwd = ddp_to_fsdp(sh.run, sh.bandwidth, scale, rates, err, sh.step_now_ms, sh.noise)
    if fwd is not None:
        return fwd
    return fsdp_to_ddp(sh.run, sh.bandwidth, sh.step_now_ms, rates or op_rates(sh.run), sh.noise, sh.step_now_basis)


def whatifs_of(par: ParallelAnalysis | None) -> tuple[WhatIf, ...]:
    """The DDP -> FSDP2 variants as the report's what-ifs (knob ``parallelism``)."""
    if par is None:
        return ()
    return tuple(WhatIf(knob="parallelism", value=w.value, predicted_step_ms=w.predicted_step_ms,
                        predicted_range_ms=w.predicted_range_ms, predicted_peak_bytes=w.predicted_peak_bytes,
                        with_settings=w.with_settings,
                        assumed=(f"optimizer state of {par.optimizer}",) if par.optimizer_assumed else ())
                 for w in par.whatifs)


def _not_made(sh: Shared, par: ParallelAnalysis | None) -> tuple[Finding, ...]:
    """The DDP <-> FSDP2 what-if replays one forward/backward pass per step: where a step runs several
    micro-batches (``ddp.accumulation``), it is not made, and a finding says why."""
    ddp = sh.section("ddp")
    acc = ddp.detail.accumulation if ddp is not None else None
    why = replay_fails(acc, per_pass=True)
    if par is None or why is None or acc is None:
        return ()
    advice = [a for a in reverse_findings(par, False)[1]] if par.traced == "fsdp2" else []
    what = "the FSDP2 -> DDP what-if" if par.traced == "fsdp2" else "the DDP -> FSDP2 what-if"
    return (withheld(what, advice, why, acc),)


WHATIF_PREFIX = "DDP -> FSDP2"  # how the what-if's finding begins (``ddp2fsdp.parallel_findings``)


def per_rank(sec: Section[MemoryDetail]) -> Section[MemoryDetail]:
    """The section where figures stand per rank only: peaks and churn; no DDP -> FSDP2 what-if (a replay on the
    run's cross-rank link fit and the DDP advisor's calibration)."""
    return replace(sec, detail=replace(sec.detail, parallel=None, parallel_shown=False), whatifs=(),
                   findings=tuple(f for f in sec.findings if not f.text.startswith((WHATIF_PREFIX, REVERSE_PREFIX))),
                   advice=tuple(a for a in sec.advice if a.knob != "parallelism"))


def section(sh: Shared) -> Section[MemoryDetail] | None:
    mem = tuple(m for rt in sh.run.ranks for m in memory(rt))
    churns = churn_all(sh.run)
    par = _parallel(sh)
    held = _not_made(sh, par)
    if held:
        par = None
    if not (mem or churns or par is not None or held):
        return None
    near = {m.rank for m in mem if (m.pct or 0.0) >= 100 * NEAR_LIMIT}
    cfind, cadvice = churn_findings(churns, sh.step_now_ms, near, sh.noise,
                                    frozenset(r for r, b in sh.step_now_basis.items() if b == PROFILED))
    if par is not None and par.traced == "fsdp2":
        pfind, padvice = reverse_findings(par, "ddp" in sh.whatif)
        shown = "ddp" in sh.whatif or bool(padvice)
    else:
        pfind, padvice = parallel_findings(par, "fsdp" in sh.whatif)
        shown = par is not None and ("fsdp" in sh.whatif or near_limit(par))
    return Section(family="memory", detail=MemoryDetail(peaks=mem, churn=churns, parallel=par, parallel_shown=shown),
                   findings=tuple(say.memory_findings(mem)) + tuple(cfind) + tuple(pfind) + held,
                   advice=tuple(cadvice) + tuple(padvice), whatifs=whatifs_of(par))
