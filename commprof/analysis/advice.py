"""The advisor: concrete changes with predicted step times (from ``whatif``), and the rules on DDP's settings.

Advice is only given where the replay predicts at least ``MIN_GAIN`` of the step; when communication is
already hidden the advisor says that there is nothing to gain instead of inventing a change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..model import Run
from ..units import MiB
from . import findings as say
from .bandwidth import Bandwidth
from .buckets import BucketStat, BucketStep
from .findings import Advice, Finding
from .whatif import (
    CANDIDATE_CAPS_MB,
    POWERSGD_RANKS,
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


Predict = Callable[[int, "str | None"], Prediction]


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
    findings.extend(say.ddp_rules(run, buckets, bw))
    if not scs:
        if any(rt.sidecar is not None and rt.sidecar.ddp for rt in run.ranks) and (run.world_size or 1) > 1:
            findings.append(say.NO_WHATIF)
        return Advisor((), tuple(findings), (), None, None, None, {})
    scale = {sc.rank: calibrate(sc) for sc in scs}

    def predict(cap_bytes: int, comp: str | None) -> Prediction:
        return _worst([replay(sc, cap_bytes, comp, scale[sc.rank]) for sc in scs])

    cur_cap = scs[0].cap_bytes
    base = predict(cur_cap, scs[0].traced_compression)  # candidates keep the traced hook; only the knob varies
    model_check = _worst([replay(sc, sc.cap_bytes, sc.traced_compression, 1.0) for sc in scs])
    whatifs = [WhatIf("bucket_cap_mb", round(cur_cap / MiB, 3), base.step_ns / 1e6, base.exposed_ns / 1e6)]
    best_mb, best = _caps(scs, predict, whatifs)
    advice: list[Advice] = []
    if (base.exposed_ns / base.step_ns if base.step_ns else 0.0) < HIDDEN_SHARE:
        findings.append(say.already_hidden(base.exposed_ns / 1e6, base.step_ns / 1e6))
    else:
        ref, ref_mb = base, cur_cap / MiB
        if best.step_ns < base.step_ns * (1 - MIN_GAIN) and abs(best_mb * MiB - cur_cap) > 1:
            advice.append(Advice("bucket_cap_mb", best_mb, base.step_ns / 1e6, best.step_ns / 1e6,
                                 say.bucket_cap_why(cur_cap / MiB, base.exposed_ns / 1e6, base.buckets, best_mb,
                                                    best.buckets, best.exposed_ns / 1e6, scs[0].alpha_s * 1e6,
                                                    scs[0].beta_bps / 1e9)))
            ref, ref_mb = best, best_mb
        _compression(run, scs, predict, base, ref, ref_mb, whatifs, advice, findings)
        _accumulation(scs, scale, base, ref, whatifs, advice)
    profiled = max(sc.profiled_step_ns for sc in scs) / 1e6
    return Advisor(tuple(advice), tuple(findings), tuple(whatifs), base.step_ns / 1e6, model_check.step_ns / 1e6,
                   profiled, scale)


def _caps(scs: Sequence[Scenario], predict: Predict, whatifs: list[WhatIf]) -> tuple[float, Prediction]:
    """Every candidate bucket cap (keeping the traced hook); the best (ties: the larger bucket)."""
    caps = {}
    for mb in CANDIDATE_CAPS_MB:
        p = predict(int(mb * MiB), scs[0].traced_compression)
        caps[mb] = p
        whatifs.append(WhatIf("bucket_cap_mb", mb, p.step_ns / 1e6, p.exposed_ns / 1e6))
    best_mb = min(caps, key=lambda k: (round(caps[k].step_ns / 1e4), -k))
    return best_mb, caps[best_mb]


def _compression(run: Run, scs: Sequence[Scenario], predict: Predict, base: Prediction, ref: Prediction,
                 ref_mb: float, whatifs: list[WhatIf], advice: list[Advice], findings: list[Finding]) -> None:
    """fp16 compression and PowerSGD, unless the traced hook already compresses."""
    side = run.rank(scs[0].rank).sidecar
    hook = side.ddp.hook if side is not None and side.ddp is not None else ""
    baseline_ms = base.step_ns / 1e6
    comp: Prediction | None = None
    if "compress" not in hook and "powerSGD" not in hook:
        comp = predict(int(ref_mb * MiB), "fp16")
        whatifs.append(WhatIf("comm_hook", "fp16_compress_hook", comp.step_ns / 1e6, comp.exposed_ns / 1e6))
        if comp.step_ns < ref.step_ns * (1 - MIN_GAIN):
            advice.append(Advice("comm_hook", "fp16_compress_hook", baseline_ms, comp.step_ns / 1e6, say.fp16_why(
                ref.exposed_ns / 1e6, comp.exposed_ns / 1e6, ref_mb if advice else None)))
    if "powerSGD" not in hook:
        lossless = comp if comp is not None and comp.step_ns < ref.step_ns else ref
        _powersgd(scs, predict, ref_mb, lossless, baseline_ms, whatifs, advice, findings)


def _accumulation(scs: Sequence[Scenario], scale: dict[int, float], base: Prediction, ref: Prediction,
                  whatifs: list[WhatIf], advice: list[Advice]) -> None:
    """Gradient accumulation over k micro-batches: the communication paid once per k."""
    no_comm = max(sc.ready_ns.max() * scale[sc.rank] + sc.tail_ns * scale[sc.rank] for sc in scs)
    exposed_share = base.exposed_ns / base.step_ns if base.step_ns else 0.0
    for k in (2, 4):
        per_step = ((k - 1) * no_comm + ref.step_ns) / k
        whatifs.append(WhatIf("gradient_accumulation", k, float(per_step) / 1e6, ref.exposed_ns / k / 1e6))
        if k == 4 and per_step < ref.step_ns * (1 - 2 * MIN_GAIN) and exposed_share > 0.2:
            advice.append(Advice("gradient_accumulation", k, base.step_ns / 1e6, per_step / 1e6,
                                 say.accumulation_why(k, ref.exposed_ns / 1e6)))


def _powersgd(scs: Sequence[Scenario], predict: Predict, ref_mb: float, lossless: Prediction, baseline_ms: float,
              whatifs: list[WhatIf], advice: list[Advice], findings: list[Finding]) -> None:
    """PowerSGD at ranks 1, 2, 4: what-ifs, and advice where it beats the lossless options by MIN_GAIN."""
    if not all(powersgd_applies(sc) for sc in scs):
        findings.append(say.NO_POWERSGD_SHAPES)
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
        whatifs.append(WhatIf("comm_hook", say.powersgd_name(r), preds[r].step_ns / 1e6, preds[r].exposed_ns / 1e6))
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
    advice.append(Advice("comm_hook", say.powersgd_name(r), baseline_ms, p.step_ns / 1e6, say.powersgd_why(
        r, share, total / 1e6, wire / 1e6, lossless.exposed_ns / 1e6, p.exposed_ns / 1e6,
        cap_mb if gloo else None)))
