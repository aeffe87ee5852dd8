"""The advisor: concrete changes with predicted step times (from ``whatif``), and the rules on DDP's settings.

Advice is only given where the replay predicts at least ``MIN_GAIN`` of the step; when communication is
already hidden the advisor says that there is nothing to gain instead of inventing a change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from ...model import Run
from ...units import MiB
from .. import findings as say
from ..bandwidth import Bandwidth
from ..findings import Advice, Finding
from ..replay import core
from ..replay.core import MIN_GAIN, TOLERANCE_PCT, error_pct, median_of, required_gain
from ..replay.cpufloor import FULL_SHARE, cpu_floor_ms, floor_text
from ..steptimes import PROFILED
from ..uncertainty.bands import banded_advice, calibration_sentence, uses_rates
from ..uncertainty.maths import Noise, band
from .buckets import BucketStat, BucketStep
from .contention import alone_ready_ns
from .rates import OpRates, op_rates
from .view import view as ddp_view
from .whatif import (
    CANDIDATE_CAPS_MB,
    POWERSGD_RANKS,
    Prediction,
    Scenario,
    calibrate,
    cpu_bound_transfers,
    one_stack_host,
    powersgd_applies,
    powersgd_measured,
    powersgd_split,
    rebucket,
    replay,
    scenario,
)

HIDDEN_SHARE = 0.03


@dataclass(frozen=True, slots=True)
class WhatIf:
    """Predicted step (ms, slowest rank) per candidate setting."""

    knob: str
    value: object
    step_ms: float
    exposed_ms: float
    assumed: tuple[str, ...] = ()  # costs the prediction uses that nothing in the run measured
    range_ms: tuple[float, float] | None = None  # [low, high] of step_ms (``uncertainty.band``)
    alt_ms: float | None = None  # the step under the other outcome the run cannot rule out: the band spans both
    with_settings: tuple[tuple[str, object], ...] = ()  # the bucket cap the prediction assumes, where not the traced
    slope_ms: float = 0.0  # step_ms's move as the calibrated compute-side times move (``replay.core.slope``)


@dataclass(frozen=True, slots=True)
class ModelCheck:
    """The replay of the traced settings against the traced run itself (profiled times, no calibration), on the
    rank whose replayed step is the longest: the step, and the communication left after the backward pass."""

    rank: int
    step_model_ms: float
    step_measured_ms: float
    exposed_model_ms: float
    exposed_measured_ms: float
    source: str  # "sidecar" or "trace"
    notes: tuple[str, ...] = ()

    @property
    def error_pct(self) -> float:
        return error_pct(self.step_model_ms, self.step_measured_ms)

    @property
    def ok(self) -> bool:
        return abs(self.error_pct) <= TOLERANCE_PCT


@dataclass(frozen=True, slots=True, kw_only=True)
class Advisor:
    advice: tuple[Advice, ...]
    findings: tuple[Finding, ...]
    whatifs: tuple[WhatIf, ...]
    baseline_step_ms: float | None
    model_step_ms: float | None  # replay of the traced settings, profiled time (a check of the model)
    profiled_step_ms: float | None
    scale: dict[int, float]
    check: ModelCheck | None = None
    rates: OpRates | None = None  # the operation costs the replays used, with their sources


Predict = Callable[[int, "str | None"], Prediction]


def _worst(preds: Sequence[Prediction]) -> Prediction:
    return max(preds, key=lambda p: p.step_ns)


def _without_replay(run: Run, why_not: dict[int, str], findings: list[Finding]) -> Advisor:
    fsdp = any(rt.fsdp for rt in run.ranks)  # FSDP2 has its own replay (fsdpadvice)
    if (run.world_size or 1) > 1 and not fsdp and (why_not or any(rt.sidecar is not None and rt.sidecar.ddp
                                                                  for rt in run.ranks)):
        findings.append(say.no_whatif(why_not))
    return Advisor(advice=(), findings=tuple(findings), whatifs=(), baseline_step_ms=None, model_step_ms=None,
                   profiled_step_ms=None, scale={})


def advise(run: Run, rows: Sequence[BucketStep], buckets: Sequence[BucketStat], bw: Bandwidth,
           unprofiled_ms: dict[int, float], noise: Noise | None = None, basis: Mapping[int, str] | None = None
           ) -> Advisor:
    """``unprofiled_ms``: each rank's step now (``steptimes.step_now_ms``), ``basis`` where it comes from."""
    findings: list[Finding] = []
    rates = op_rates(run)
    scs, why_not = _scenarios(run, rows, bw, unprofiled_ms, rates, basis or {})
    findings.extend(say.ddp_rules(run, buckets, bw))
    if not scs:
        return _without_replay(run, why_not, findings)
    scale = {sc.rank: calibrate(sc) for sc in scs}

    predict, floor_ms, floored = _predictor(run, scs, scale)

    cur_cap = scs[0].cap_bytes
    base = predict(cur_cap, scs[0].traced_compression)  # candidates keep the traced hook; only the knob varies
    model_check = _worst([replay(sc, sc.cap_bytes, sc.traced_compression, 1.0) for sc in scs])
    check = _check(scs)
    if not check.ok:
        findings.append(say.model_misses(check.error_pct, TOLERANCE_PCT))
    whatifs = [WhatIf("bucket_cap_mb", round(cur_cap / MiB, 3), base.step_ns / 1e6, base.exposed_ns / 1e6,
                      slope_ms=base.slope_ns / 1e6)]
    best_mb, best = _caps(scs, predict, whatifs, cur_cap)
    advice: list[Advice] = []
    if (base.exposed_ns / base.step_ns if base.step_ns else 0.0) < HIDDEN_SHARE:
        findings.append(say.already_hidden(base.exposed_ns / 1e6, base.step_ns / 1e6))
    else:
        ref, ref_mb = base, cur_cap / MiB
        if best.step_ns < base.step_ns * (1 - MIN_GAIN) and abs(best_mb * MiB - cur_cap) > 1:
            advice.append(Advice(knob="bucket_cap_mb", value=best_mb, baseline_step_ms=base.step_ns / 1e6,
                                 predicted_step_ms=best.step_ns / 1e6,
                                 why=say.bucket_cap_why(cur_cap / MiB, base.exposed_ns / 1e6, base.buckets, best_mb,
                                                        best.buckets, best.exposed_ns / 1e6, scs[0].alpha_s * 1e6,
                                                        scs[0].beta_bps / 1e9)))
            ref, ref_mb = best, best_mb
        margin = required_gain(check.error_pct)  # a lossy change must gain more than the model's error
        _compression(scs, predict, base, ref, ref_mb, whatifs, advice, findings, margin=margin)
        _accumulation(scs, scale, base, ref, ref_mb, whatifs, advice, margin)
    whatifs = _cpu_work(scs, whatifs, base.step_ns / 1e6, floor_ms, floored, findings)
    profiled = max(sc.profiled_step_ns for sc in scs) / 1e6
    if not check.ok:
        advice = []  # the what-ifs stay, shown without advice
    nz = noise or Noise()
    gains = [_gain(w, whatifs[0]) for w in whatifs]
    whatifs = [replace(w, range_ms=_band(w, nz, check.error_pct, i > 0, gains[i])) for i, w in enumerate(whatifs)]
    spans = {(w.knob, w.value): (w, g) for w, g in zip(whatifs, gains, strict=True)}  # an advice band: its what-if's
    advice = [replace(a, predicted_range_ms=wg[0].range_ms, calibration_gain=wg[1],
                      why=a.why + calibration_sentence(wg[1], nz))
              if (wg := spans.get((a.knob, a.value))) is not None else a for a in advice]
    now = max((unprofiled_ms[sc.rank] for sc in scs if sc.rank in unprofiled_ms), default=None)  # the job's step now
    kept, withheld = banded_advice(advice, nz, check.error_pct, now)
    return Advisor(advice=kept, findings=tuple(findings) + withheld, whatifs=tuple(whatifs),
                   baseline_step_ms=base.step_ns / 1e6, model_step_ms=model_check.step_ns / 1e6,
                   profiled_step_ms=profiled, scale=scale, check=check, rates=rates)


def _predictor(run: Run, scs: Sequence[Scenario], scale: dict[int, float]
               ) -> tuple[Predict, float | None, dict[tuple[int, str | None], float]]:
    """The prediction of a bucket cap and hook over every rank (the slowest rank sets the step and its slope),
    held at the ranks' CPU floor (``replay.cpufloor``: every setting keeps the backward's compute; a hook changes
    the transfers' part of the work only, which compression makes smaller and PowerSGD's products make larger: the
    floor then holds approximately, and without it a hook was compared with a bucket row the floor had held up);
    the floor, and per (cap, hook) held up, the step the replay gave."""
    floor_ms = cpu_floor_ms(run)
    floored: dict[tuple[int, str | None], float] = {}

    def predict(cap_bytes: int, comp: str | None) -> Prediction:
        preds = [replay(sc, cap_bytes, comp, scale[sc.rank]) for sc in scs]
        i = max(range(len(preds)), key=lambda k: preds[k].step_ns)
        sc = scs[i]
        p = replace(preds[i], slope_ns=core.slope(lambda f: replay(sc, cap_bytes, comp, scale[sc.rank] * f).step_ns))
        lift = (floor_ms * 1e6 - p.step_ns) if floor_ms is not None else 0.0
        if lift <= 0:
            return p
        floored[(cap_bytes, comp)] = p.step_ns / 1e6
        return replace(p, step_ns=p.step_ns + lift, comm_done_ns=p.comm_done_ns + lift,
                       backward_done_ns=p.backward_done_ns + lift)
    return predict, floor_ms, floored


def _cpu_work(scs: Sequence[Scenario], whatifs: list[WhatIf], now_ms: float, floor_ms: float | None,
              floored: dict[tuple[int, str | None], float], findings: list[Finding]) -> list[WhatIf]:
    """Where the ranks' CPU work fills their cores (``replay.cpufloor.FULL_SHARE``) and gloo's transfers are CPU
    work on them (one network stack): each other bucket cap may gain or lose nothing, whatever the replay says (it
    takes overlap as free and the traced transfers' speed, measured beside the backward, for their speed alone), so
    its band reaches the step as it is now (``alt_ms``); the finding says so, and where the floor held what-ifs up."""
    full = floor_ms is not None and cpu_bound_transfers(scs) is not None and floor_ms >= FULL_SHARE * now_ms
    held = {k: v for k, v in floored.items() if k != (scs[0].cap_bytes, scs[0].traced_compression)}  # not as traced
    if floor_ms is not None and (held or full):
        findings.append(Finding("info", floor_text(floor_ms, min(held.values(), default=None), len(held),
                                                   now_ms if full else None)))
    if not full:
        return whatifs
    findings[:] = [replace(f, text=f.text + FULL_TAIL) if f.text.startswith(say.LAST_BUCKET) else f for f in findings]
    return [replace(w, alt_ms=now_ms) if i > 0 and w.knob == "bucket_cap_mb" and w.alt_ms is None else w
            for i, w in enumerate(whatifs)]


FULL_TAIL = (" Here the ranks' CPU work fills the cores (below): a shorter tail moves the transfer's work into the "
             "backward pass, which then runs as much longer, so the step may not shorten.")


def _band(w: WhatIf, nz: Noise, error_pct: float, changed: bool, g: float = 0.0) -> tuple[float, float]:
    """A what-if's band, with the calibration's error as far as the prediction carries it (``g``: its
    ``replay.core.gain`` against the traced settings' row); where the run cannot tell between two outcomes
    (``alt_ms``: the backward's speed without the transfers beside it), from the lower of their bands' low ends to
    the higher of their high ends."""
    low, high = band(w.step_ms, nz, error_pct, changed=changed, uses_rates=uses_rates(w.knob, w.value), gain=g)
    if w.alt_ms is not None:
        alt = band(w.alt_ms, nz, error_pct, changed=changed, gain=g)
        low, high = min(low, alt[0]), max(high, alt[1])
    return low, high


def _gain(w: WhatIf, traced: WhatIf) -> float:
    return core.gain(w.step_ms, w.slope_ms, traced.step_ms, traced.slope_ms)


def _scenarios(run: Run, rows: Sequence[BucketStep], bw: Bandwidth, unprofiled_ms: dict[int, float],
               rates: OpRates, basis: Mapping[int, str]) -> tuple[list[Scenario], dict[int, str]]:
    """Each rank's replay scenario, and why the ranks without one have none."""
    scs: list[Scenario] = []
    why_not: dict[int, str] = {}
    for rt in run.ranks:
        v, why = ddp_view(rt, [r for r in rows if r.rank == rt.rank])
        sc = scenario(rt, v, bw, unprofiled_ms.get(rt.rank), rates,
                      calibrated_on_profiled=basis.get(rt.rank) == PROFILED) if v is not None else None
        if sc is not None:
            scs.append(sc)
        elif why:
            why_not[rt.rank] = why
    host = one_stack_host(run)
    return [replace(sc, one_stack_host=host) for sc in scs], why_not


def _check(scs: Sequence[Scenario]) -> ModelCheck:
    """The model against the traced run: each traced step replayed from its own gradient-ready times and tail
    (profiled times, no calibration), against its measured duration and its communication after the backward pass;
    the step whose error is the median, on the rank whose replayed step is the longest."""
    rows = []
    for sc in scs:
        per = []
        for ready, tail, dur, exposed in sc.traced_steps or ((sc.ready_ns, sc.tail_ns, sc.profiled_step_ns,
                                                               sc.measured_exposed_ns),):
            p = replay(replace(sc, ready_ns=ready, tail_ns=tail), sc.cap_bytes, sc.traced_compression, 1.0)
            per.append(((p.step_ns - dur) / dur if dur else 0.0, p, dur, exposed))
        _err, p, dur, exposed = median_of(per, key=lambda x: x[0])
        rows.append((p, dur, exposed, sc))
    p, dur, exposed, sc = max(rows, key=lambda x: x[0].step_ns)
    return ModelCheck(sc.rank, p.step_ns / 1e6, dur / 1e6, p.exposed_ns / 1e6, exposed / 1e6, sc.source, sc.notes)


def _caps(scs: Sequence[Scenario], predict: Predict, whatifs: list[WhatIf], cur_cap: int) -> tuple[float, Prediction]:
    """Every candidate bucket cap (keeping the traced hook); the best (ties: the larger bucket).  The traced cap
    is the what-ifs' first row; a candidate equal to it is not listed twice."""
    caps = {}
    for mb in CANDIDATE_CAPS_MB:
        p = predict(int(mb * MiB), scs[0].traced_compression)
        caps[mb] = p
        if abs(mb * MiB - cur_cap) > 1:
            whatifs.append(WhatIf("bucket_cap_mb", mb, p.step_ns / 1e6, p.exposed_ns / 1e6, slope_ms=p.slope_ns / 1e6))
    best_mb = min(caps, key=lambda k: (round(caps[k].step_ns / 1e4), -k))
    return best_mb, caps[best_mb]


def _compression(scs: Sequence[Scenario], predict: Predict, base: Prediction, ref: Prediction, ref_mb: float,
                 whatifs: list[WhatIf], advice: list[Advice], findings: list[Finding], *, margin: float) -> None:
    """fp16 compression and PowerSGD, unless the traced hook already compresses."""
    traced = scs[0].traced_compression or ""
    baseline_ms = base.step_ns / 1e6
    comp: Prediction | None = None
    host = cpu_bound_transfers(scs)
    if not traced and host:  # the hook's cost is CPU work the trace cannot see: no prediction, and a finding
        # says why, wherever communication is exposed (not only where the link model would gain beyond MIN_GAIN:
        # a point estimate near that line came and went between two runs of the README's demo)
        findings.append(say.fp16_cpu_bound(host))
    elif not traced:
        comp = predict(int(ref_mb * MiB), "fp16")
        whatifs.append(WhatIf("comm_hook", "fp16_compress_hook", comp.step_ns / 1e6, comp.exposed_ns / 1e6,
                              with_settings=_cap(scs, ref_mb), slope_ms=comp.slope_ns / 1e6))
        if comp.step_ns < ref.step_ns * (1 - MIN_GAIN):
            advice.append(Advice(
                knob="comm_hook", value="fp16_compress_hook", baseline_step_ms=baseline_ms,
                predicted_step_ms=comp.step_ns / 1e6,
                why=say.fp16_why(ref.exposed_ns / 1e6, comp.exposed_ns / 1e6, ref_mb if advice else None),
                with_settings=_cap(scs, ref_mb)))
    if not traced.startswith("powersgd"):
        lossless = comp if comp is not None and comp.step_ns < ref.step_ns else ref
        _powersgd(scs, predict, ref_mb, lossless, baseline_ms, whatifs, advice, findings, margin=margin)


def _cap(scs: Sequence[Scenario], cap_mb: float) -> tuple[tuple[str, object], ...]:
    """The bucket cap a prediction assumes, where it is not the traced one."""
    return () if abs(cap_mb * MiB - scs[0].cap_bytes) <= 1 else (("bucket_cap_mb", cap_mb),)


def _accumulation(scs: Sequence[Scenario], scale: dict[int, float], base: Prediction, ref: Prediction,
                  ref_mb: float, whatifs: list[WhatIf], advice: list[Advice], margin: float) -> None:
    """Gradient accumulation over k micro-batches: the communication paid once per k; advised (it changes the
    optimization) only where it gains more than ``margin`` over the best setting without it.  Where gloo's transfers
    share the ranks' cores (``contention``), the micro-batches without them may run faster than the traced backward
    shows: the band reaches down to that estimate (``alt_ms``)."""
    # a micro-batch under no_sync(): its forward and backward, and the tail less the optimizer's step (once per k);
    # the calibration only ever shortens it: a factor above 1 holds the wait for late peers (a rank's replay does
    # not see them), and without a collective no rank waits
    own = {sc.rank: min(scale[sc.rank], 1.0) for sc in scs}

    def no_comm_at(f: float) -> float:
        return max((sc.ready_ns.max() + sc.tail_ns - sc.optimizer_ns) * min(scale[sc.rank] * f, 1.0) for sc in scs)
    no_comm, no_comm_slope = no_comm_at(1.0), core.slope(no_comm_at)
    shared_cores = cpu_bound_transfers(scs) is not None
    alone = [alone_ready_ns(sc) if shared_cores else None for sc in scs]
    alone_comm = max(((a if a is not None else sc.ready_ns.max()) + sc.tail_ns - sc.optimizer_ns) * own[sc.rank]
                     for a, sc in zip(alone, scs, strict=True)) if any(a is not None for a in alone) else None
    if alone_comm is not None and alone_comm >= no_comm:  # the rank that sets the step had no shorter estimate
        alone_comm = None
    exposed_share = base.exposed_ns / base.step_ns if base.step_ns else 0.0
    for k in (2, 4):
        per_step = ((k - 1) * no_comm + ref.step_ns) / k
        alt = None if alone_comm is None else float((k - 1) * alone_comm + ref.step_ns) / k / 1e6
        whatifs.append(WhatIf("gradient_accumulation", k, float(per_step) / 1e6, ref.exposed_ns / k / 1e6, alt_ms=alt,
                              with_settings=_cap(scs, ref_mb),
                              slope_ms=((k - 1) * no_comm_slope + ref.slope_ns) / k / 1e6))
        if k == 4 and per_step < ref.step_ns * (1 - max(2 * MIN_GAIN, margin)) and exposed_share > 0.2:
            advice.append(Advice(knob="gradient_accumulation", value=k, baseline_step_ms=base.step_ns / 1e6,
                                 predicted_step_ms=per_step / 1e6, why=say.accumulation_why(k, ref.exposed_ns / 1e6),
                                 with_settings=_cap(scs, ref_mb)))


def _powersgd(scs: Sequence[Scenario], predict: Predict, ref_mb: float, lossless: Prediction, baseline_ms: float,
              whatifs: list[WhatIf], advice: list[Advice], findings: list[Finding], *, margin: float) -> None:
    """PowerSGD at ranks 1, 2, 4: what-ifs, and advice where it beats the best lossless option by ``margin``
    (at least MIN_GAIN, at least the model's error on the traced run) and every cost it rests on was measured."""
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
        whatifs.append(WhatIf("comm_hook", say.powersgd_name(r), preds[r].step_ns / 1e6, preds[r].exposed_ns / 1e6,
                              tuple(powersgd_measured(scs[0], r)), with_settings=_cap(scs, cap_mb),
                              slope_ms=preds[r].slope_ns / 1e6))
    fastest = min(p.step_ns for p in preds.values())
    # the largest rank (the better approximation) that is about as fast as the fastest
    r = max(k for k, p in preds.items() if p.step_ns <= fastest * (1 + MIN_GAIN))
    p = preds[r]
    if p.step_ns >= lossless.step_ns * (1 - margin):
        return
    missing = powersgd_measured(scs[0], r)
    if missing:
        findings.append(say.powersgd_unmeasured(say.powersgd_name(r), p.step_ns / 1e6, missing))
        return
    sc = scs[0]
    groups = rebucket(sc.sizes, sc.first_bucket_bytes or int(cap_mb * MiB), int(cap_mb * MiB))
    parts = [powersgd_split(sc, g, r) for g in groups]
    wire = sum(x.unc_bytes + x.p_bytes + x.q_bytes for x in parts)
    share = sum(x.compressed_bytes for x in parts) / max(total, 1.0)
    advice.append(Advice(
        knob="comm_hook", value=say.powersgd_name(r), baseline_step_ms=baseline_ms, predicted_step_ms=p.step_ns / 1e6,
        why=say.powersgd_why(r, share, total / 1e6, wire / 1e6, lossless.exposed_ns / 1e6, p.exposed_ns / 1e6,
                             cap_mb if gloo else None),
        with_settings=_cap(scs, cap_mb)))
