"""The advisor: concrete changes with predicted step times (from ``whatif``) and rule-based findings.

Advice is only given where the replay predicts at least ``MIN_GAIN`` of the step; when communication is
already hidden the advisor says that there is nothing to gain instead of inventing a change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..model import RankTrace, Run
from .bandwidth import Bandwidth
from .buckets import BucketStat, BucketStep
from .whatif import (
    CANDIDATE_CAPS_MB,
    POWERSGD_RANKS,
    MiB,
    Prediction,
    Scenario,
    calibrate,
    powersgd_applies,
    powersgd_split,
    rebucket,
    replay,
    scenario,
)

MIN_GAIN = 0.05
HIDDEN_SHARE = 0.03


@dataclass(frozen=True, slots=True)
class Advice:
    """A concrete change with its predicted effect."""

    knob: str
    value: object
    baseline_step_ms: float
    predicted_step_ms: float
    why: str


@dataclass(frozen=True, slots=True)
class Finding:
    """A measured fact worth a user's attention, with the numbers that back it."""

    severity: str  # "high", "medium", "info"
    text: str


@dataclass(frozen=True, slots=True)
class WhatIf:
    """Predicted step (ms, slowest rank) per candidate setting."""

    knob: str
    value: object
    step_ms: float
    exposed_ms: float


@dataclass(frozen=True, slots=True)
class Advisor:
    advice: tuple[Advice, ...]
    findings: tuple[Finding, ...]
    whatifs: tuple[WhatIf, ...]
    baseline_step_ms: float | None
    model_step_ms: float | None  # replay of the traced settings, profiled time (a check of the model)
    profiled_step_ms: float | None
    scale: dict[int, float]


def _worst(preds: Sequence[Prediction]) -> Prediction:
    return max(preds, key=lambda p: p.step_ns)


def advise(run: Run, rows: Sequence[BucketStep], buckets: Sequence[BucketStat], bw: Bandwidth,
           unprofiled_ms: dict[int, float]) -> Advisor:
    findings: list[Finding] = []
    scs: list[Scenario] = []
    for rt in run.ranks:
        sc = scenario(rt, [r for r in rows if r.rank == rt.rank], bw, unprofiled_ms.get(rt.rank))
        if sc is not None:
            scs.append(sc)
    findings.extend(_rules(run, buckets, bw))
    if not scs:
        if any(rt.sidecar is not None and rt.sidecar.ddp for rt in run.ranks) and (run.world_size or 1) > 1:
            findings.append(Finding("info", "No what-if prediction: the run lacks per-parameter gradient times or "
                                            "matched bucket collectives in its profiled steps."))
        return Advisor((), tuple(findings), (), None, None, None, {})
    scale = {sc.rank: calibrate(sc) for sc in scs}

    def predict(cap_bytes: int, comp: str | None) -> Prediction:
        return _worst([replay(sc, cap_bytes, comp, scale[sc.rank]) for sc in scs])

    cur_cap = scs[0].cap_bytes
    cur_comp = scs[0].traced_compression  # candidates keep the traced hook; only the knob varies
    base = predict(cur_cap, cur_comp)
    model_check = _worst([replay(sc, sc.cap_bytes, sc.traced_compression, 1.0) for sc in scs])
    baseline_ms = base.step_ns / 1e6
    whatifs = [WhatIf("bucket_cap_mb", round(cur_cap / MiB, 3), baseline_ms, base.exposed_ns / 1e6)]
    caps = {}
    for mb in CANDIDATE_CAPS_MB:
        p = predict(int(mb * MiB), cur_comp)
        caps[mb] = p
        whatifs.append(WhatIf("bucket_cap_mb", mb, p.step_ns / 1e6, p.exposed_ns / 1e6))
    best_mb = min(caps, key=lambda k: (round(caps[k].step_ns / 1e4), -k))  # ties: the larger bucket
    best = caps[best_mb]
    advice: list[Advice] = []
    exposed_share = base.exposed_ns / base.step_ns if base.step_ns else 0.0
    side = run.rank(scs[0].rank).sidecar
    hook = str(((side.ddp if side is not None else None) or {}).get("hook", ""))
    if exposed_share < HIDDEN_SHARE:
        findings.append(Finding("info", f"Communication is already hidden: the replay puts {base.exposed_ns / 1e6:.2f} "
                                        f"ms of a {baseline_ms:.1f} ms step after the backward pass. Other bucket "
                                        "sizes or compression have nothing to gain."))
    else:
        if best.step_ns < base.step_ns * (1 - MIN_GAIN) and abs(best_mb * MiB - cur_cap) > 1:
            advice.append(Advice(
                "bucket_cap_mb", best_mb, baseline_ms, best.step_ns / 1e6,
                f"With bucket_cap_mb={cur_cap / MiB:g}, {base.exposed_ns / 1e6:.1f} ms of communication runs after "
                f"the backward pass ({base.buckets} buckets); with {best_mb:g} MB ({best.buckets} buckets) the replay "
                f"starts it earlier and leaves {best.exposed_ns / 1e6:.1f} ms exposed. Cost model from this run: "
                f"all-reduce = {scs[0].alpha_s * 1e6:.0f} µs + bytes / {scs[0].beta_bps / 1e9:.2f} GB/s."))
        ref = best if advice else base
        ref_mb = best_mb if advice else cur_cap / MiB
        comp: Prediction | None = None
        if "compress" not in hook and "powerSGD" not in hook:
            comp = predict(int(ref_mb * MiB), "fp16")
            whatifs.append(WhatIf("comm_hook", "fp16_compress_hook", comp.step_ns / 1e6, comp.exposed_ns / 1e6))
            if comp.step_ns < ref.step_ns * (1 - MIN_GAIN):
                advice.append(Advice(
                    "comm_hook", "fp16_compress_hook", baseline_ms, comp.step_ns / 1e6,
                    f"Sending fp16 gradients halves the bytes on the wire: exposed communication "
                    f"{ref.exposed_ns / 1e6:.1f} -> {comp.exposed_ns / 1e6:.1f} ms per step"
                    + (f" (with bucket_cap_mb={ref_mb:g})" if advice else "")
                    + ". Register it with ddp_model.register_comm_hook(None, default_hooks.fp16_compress_hook) "
                      "(bf16_compress_hook on Ampere or newer); gradients lose precision in transit."))
        if "powerSGD" not in hook:
            lossless = comp if comp is not None and comp.step_ns < ref.step_ns else ref
            _powersgd(scs, predict, ref_mb, lossless, baseline_ms, whatifs, advice, findings)
        no_comm = max(sc.ready_ns.max() * scale[sc.rank] + sc.tail_ns * scale[sc.rank] for sc in scs)
        for k in (2, 4):
            per_step = ((k - 1) * no_comm + ref.step_ns) / k
            whatifs.append(WhatIf("gradient_accumulation", k, float(per_step) / 1e6, ref.exposed_ns / k / 1e6))
            if k == 4 and per_step < ref.step_ns * (1 - 2 * MIN_GAIN) and exposed_share > 0.2:
                advice.append(Advice(
                    "gradient_accumulation", k, baseline_ms, per_step / 1e6,
                    f"Synchronizing every {k} steps (model.no_sync() on the others) pays the "
                    f"{ref.exposed_ns / 1e6:.1f} ms of exposed communication once per {k} micro-batches. This "
                    f"changes the optimization: {k}x the effective batch per optimizer step."))
    profiled = max(sc.profiled_step_ns for sc in scs) / 1e6
    return Advisor(tuple(advice), tuple(findings), tuple(whatifs), baseline_ms, model_check.step_ns / 1e6,
                   profiled, scale)


def powersgd_name(rank: int) -> str:
    return f"powerSGD_hook(matrix_approximation_rank={rank})"


def _powersgd(scs: Sequence[Scenario], predict, ref_mb: float, lossless: Prediction, baseline_ms: float,
              whatifs: list[WhatIf], advice: list[Advice], findings: list[Finding]) -> None:
    """PowerSGD at ranks 1, 2, 4: what-ifs, and advice where it beats the lossless options by MIN_GAIN."""
    if not all(powersgd_applies(sc) for sc in scs):
        findings.append(Finding("info", "No PowerSGD prediction: this run's sidecar lacks parameter shapes "
                                        "(an older commprof recorded it; trace again to get one)."))
        return
    total = float(scs[0].sizes.sum())
    # torch's powerSGD_hook issues its second and third all-reduce from future callbacks; on gloo these run on
    # the process group's worker threads, so with two or more buckets the ranks can issue them in different
    # orders (measured: "collective mismatch" aborts and hangs, torch 2.13).  On gloo: one bucket.
    gloo = any((sc.backend or "").lower() == "gloo" for sc in scs)
    cap_mb = float(max(int(-(-total // MiB)) + 1, ref_mb)) if gloo else ref_mb
    preds = {}
    for r in POWERSGD_RANKS:
        preds[r] = predict(int(cap_mb * MiB), f"powersgd:{r}")
        whatifs.append(WhatIf("comm_hook", powersgd_name(r), preds[r].step_ns / 1e6, preds[r].exposed_ns / 1e6))
    fastest = min(p.step_ns for p in preds.values())
    # the largest rank (the better approximation) that is about as fast as the fastest
    r = max(k for k, p in preds.items() if p.step_ns <= fastest * (1 + MIN_GAIN))
    p = preds[r]
    if p.step_ns >= lossless.step_ns * (1 - MIN_GAIN):
        return
    sc = scs[0]
    groups = rebucket(sc.sizes, sc.first_bucket_bytes or int(cap_mb * MiB), int(cap_mb * MiB))
    parts = [powersgd_split(sc, g, r) for g in groups]
    wire = sum(u + pb + qb for u, pb, qb, _, _ in parts)
    share = sum(x[3] for x in parts) / max(total, 1.0)
    advice.append(Advice(
        "comm_hook", powersgd_name(r), baseline_ms, p.step_ns / 1e6,
        f"PowerSGD sends rank-{r} factors of the {100 * share:.0f}% of gradient bytes that are matrices worth "
        f"compressing: {total / 1e6:.1f} -> {wire / 1e6:.2f} MB on the wire per step (three all-reduces per "
        f"bucket), exposed communication {lossless.exposed_ns / 1e6:.1f} -> {p.exposed_ns / 1e6:.1f} ms (the "
        "matrix products and error feedback included"
        + (f"; predicted with bucket_cap_mb={cap_mb:g}, one bucket: on gloo, powerSGD_hook's chained all-reduces "
           "can be issued in different orders on different ranks when there are several buckets, which aborts or "
           "hangs the job, and even with one bucket it is fragile on gloo (one of about 45 of our runs aborted); "
           "it is meant for NCCL" if gloo else "")
        + f"). It is lossy: keep plain all-reduce for the first steps and check convergence. state = "
        f"powerSGD_hook.PowerSGDState(process_group=None, matrix_approximation_rank={r}, "
        "start_powerSGD_iter=1000); ddp_model.register_comm_hook(state, powerSGD_hook.powerSGD_hook) "
        "(from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook)."))


def _rules(run: Run, buckets: Sequence[BucketStat], bw: Bandwidth) -> list[Finding]:
    out: list[Finding] = []
    rt: RankTrace | None = next((r for r in run.ranks if r.sidecar is not None and r.sidecar.ddp), None)
    if rt is None or rt.sidecar is None or rt.sidecar.ddp is None:
        return out
    ddp = rt.sidecar.ddp
    params = [p for p in ddp.get("params") or [] if isinstance(p, list) and len(p) >= 3]
    grad_bytes = sum(int(p[1]) * {"float16": 2, "bfloat16": 2, "float64": 8}.get(str(p[2]), 4) for p in params)
    if buckets:
        last = buckets[-1]
        if last.comm_ms and last.exposed_ms is not None and last.exposed_ms > 0.5 * last.comm_ms:
            share = 100 * last.exposed_ms / last.comm_ms
            out.append(Finding("medium", f"The last DDP bucket ({last.bytes / 1e6:.1f} MB) is "
                                         f"{share:.0f}% exposed: its gradients are ready "
                                         "only at the end of the backward pass, so nothing can hide its all-reduce. "
                                         "A smaller last bucket (DDP fills buckets in gradient-ready order) shortens "
                                         "the tail."))
        fits = [f for f in bw.fits if f.op == "allreduce" and f.alpha_us and f.beta_gbps]
        if fits and len(buckets) >= 4:
            f = fits[0]
            a_s, b_bps = (f.alpha_us or 0.0) * 1e-6, (f.beta_gbps or 1.0) * 1e9
            tiny = [b for b in buckets if a_s > b.bytes / b_bps]
            if len(tiny) >= len(buckets) / 2:
                out.append(Finding("medium", f"{len(tiny)} of {len(buckets)} buckets are latency-bound: the fixed "
                                             f"cost of a collective ({f.alpha_us:.0f} µs) exceeds their transfer time. "
                                             "Larger buckets amortize it."))
    if ddp.get("find_unused_parameters") and rt.sidecar.param_ready:
        names = {str(p[0]) for p in params}
        if all(names <= set(v) for v in rt.sidecar.param_ready.values()):
            out.append(Finding("medium", "find_unused_parameters=True, yet every parameter received a gradient in "
                                         "every profiled step: set it to False to skip DDP's graph traversal after "
                                         "each forward pass."))
    if ddp.get("gradient_as_bucket_view") is False and grad_bytes:
        mb = grad_bytes / 1e6
        out.append(Finding("info", f"gradient_as_bucket_view=False keeps a second copy of every gradient in DDP's "
                                   f"buckets: gradient_as_bucket_view=True would save {mb:.1f} MB per rank "
                                   "(and a copy per bucket per step)."))
    if ddp.get("static_graph") is False and len(rt.sidecar.layouts) <= 2 and rt.sidecar.param_ready:
        names = {str(p[0]) for p in params}
        if all(names <= set(v) for v in rt.sidecar.param_ready.values()):
            out.append(Finding("info", "The same parameters received gradients in every profiled step and the "
                                       "bucket layout settled: this model is eligible for static_graph=True, which "
                                       "lets DDP skip per-iteration bookkeeping."))
    bcast = [c for c in rt.collectives if c.op == "broadcast" and c.step >= 0]
    if ddp.get("broadcast_buffers") and bcast:
        n_steps = max(len({c.step for c in bcast}), 1)
        ms = sum(c.duration_ns for c in bcast) / n_steps / 1e6
        nbytes = sum(c.bytes for c in bcast) / n_steps
        out.append(Finding("info", f"broadcast_buffers=True broadcasts the module's buffers before every forward "
                                   f"pass: {nbytes / 1e3:.1f} kB and {ms:.2f} ms per step. If the buffers need no "
                                   "synchronization (no BatchNorm running stats), set broadcast_buffers=False."))
    return out
