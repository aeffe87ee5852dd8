"""FSDP2's findings and advice: per-unit facts in words a user acts on, the what-ifs of ``fsdpreplay`` with their
predicted step and peak memory, the model's error on the traced run, and advice only where it pays more than that
error and stays within a known memory limit."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ...model import RankTrace, Run
from ...units import MiB
from ..bandwidth import Bandwidth
from ..findings import Advice, Finding
from ..replay import core
from ..replay.core import MIN_GAIN, TOLERANCE_PCT, error_pct, required_gain
from ..uncertainty.bands import banded_advice, calibration_sentence
from ..uncertainty.maths import Noise, band
from .replay import CANDIDATES, Knobs, ReplayInputs, calibrate, inputs, replay
from .units import AG, BWD_AG, FSDPReport, StepUnits, fsdp_report, pass_cuts, phase_windows, step_units


@dataclass(frozen=True, slots=True, kw_only=True)
class FSDPWhatIf:
    knob: str
    value: object
    step_ms: float
    peak_unsharded_bytes: int
    peak_memory_bytes: int | None
    range_ms: tuple[float, float] | None = None  # [low, high] of step_ms (``uncertainty.band``)
    # [low, high] of the peak over the traced passes it is the median of (``_peak``)
    peak_memory_range_bytes: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FSDPAnalysis:
    report: FSDPReport
    whatifs: tuple[FSDPWhatIf, ...]
    advice: tuple[Advice, ...]
    findings: tuple[Finding, ...]
    step_model_ms: float | None  # the traced settings replayed on the profiled step nearest the mean (uncalibrated)
    step_measured_ms: float | None
    baseline_step_ms: float | None  # calibrated on the step now (steptimes.step_now_ms)
    # the most allocated in a profiled step (profile_memory): the median over every rank's steps, and the largest
    measured_peak_bytes: int | None
    measured_max_bytes: int | None = None
    baseline_range_ms: tuple[float, float] | None = None  # the traced settings' band
    step_now_ms: float | None = None  # the step as it is now: outside the profiler where the run records it

    @property
    def error_pct(self) -> float | None:
        if self.step_model_ms is None or not self.step_measured_ms:
            return None
        return error_pct(self.step_model_ms, self.step_measured_ms)


def _knob(k: Knobs, traced: Knobs) -> tuple[str, object]:
    raf_changed = k.reshard_after_forward is not None
    pf_changed = k.prefetch != traced.prefetch
    if raf_changed and pf_changed:
        return "fsdp", {"reshard_after_forward": k.reshard_after_forward, "fsdp_prefetch": k.prefetch}
    if raf_changed:
        return "reshard_after_forward", k.reshard_after_forward
    return "fsdp_prefetch", k.prefetch


def _rank(run: Run) -> RankTrace | None:
    ranks = [rt for rt in run.ranks if rt.fsdp and rt.steps]
    return max(ranks, key=lambda rt: float(np.median([s.duration_ns for s in rt.steps])), default=None)


# glibc's settings that, once set, stop it raising its mmap threshold (mallopt(3)): then every block above 128 KiB
# is mapped afresh when allocated and unmapped when freed
MISSES = "The FSDP replay misses this run's own step by "  # how that finding begins (``family`` drops it)
GLIBC_FIXED = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_MMAP_MAX_")


def _allocator(rt: RankTrace) -> Finding | None:
    """FSDP2 on CPU allocates and frees its unshard buffers every step: where the sidecar's environment shows glibc's
    thresholds fixed, say so, with what it cost where measured."""
    env = rt.sidecar.env if rt.sidecar is not None and rt.device_kind == "cpu" else None  # GPU: CUDA's allocator
    set_ = [f"{k}={env[k]}" for k in GLIBC_FIXED if env and k in env]
    if not set_:
        return None
    return Finding("medium", f"glibc's allocator is tuned in this run's environment ({', '.join(set_)}): glibc then "
                             "stops raising its mmap threshold, so each of FSDP2's unshard buffers is mapped afresh "
                             "and its pages faulted in again, every step. Measured on a 2-rank FSDP2 MLP on CPU "
                             "(docs/fsdp.md): steps 1.3-1.4x longer with MALLOC_TRIM_THRESHOLD_=65536 than without, "
                             "and reshard_after_forward=False saving more than predicted. Dask's LocalCluster sets "
                             "it in the process that starts it; unless it was set for a reason, try the job without "
                             "it.")


def _facts(rep: FSDPReport, world_size: int | None) -> list[Finding]:
    out = []
    ag = sum(u.phases[p].exposed_ms for u in rep.units for p in (AG, BWD_AG) if p in u.phases)
    bwd = sum(u.phases[BWD_AG].exposed_ms for u in rep.units if BWD_AG in u.phases)
    durs = sorted(s.end_ns - s.start_ns for s in rep.steps)
    step = float(np.mean(durs)) / 1e6  # the mean step (as the headline's; never the shorter middle one)
    n = rep.passes_per_step  # gradient accumulation: the figures are a forward/backward pass's
    per = "step" if n == 1 else "micro-batch"
    if ag > 0.05 * step:
        out.append(Finding("high" if ag > 0.2 * step else "medium",
                           f"FSDP's all-gathers leave {ag:.1f} ms of a {step:.1f} ms {per}"
                           f"{'' if n == 1 else f' ({n} per step)'} exposed on rank {rep.rank} "
                           f"({bwd:.1f} ms of it re-gathering parameters in the backward pass, which "
                           "reshard_after_forward=False avoids at the cost of keeping them unsharded)."))
    if rep.first_exposed_ms > 0.5:
        out.append(Finding("info", f"The step's first all-gather ({rep.units[0].unit or 'root'}) has nothing to hide "
                                   f"behind: {rep.first_exposed_ms:.2f} ms exposed per {per}."))
    if rep.rs_queued_ms > 0.05 * step:
        out.append(Finding("medium", f"Reduce-scatters waited {rep.rs_queued_ms:.1f} ms per {per} for the process "
                                     "group's link, queued behind all-gathers."))
    if rep.gathered:
        out.append(Finding("info", f"FSDP holds at most {rep.peak_unsharded_bytes / MiB:.1f} MiB of unsharded "
                                   f"parameters at once ({len(rep.units)} units)."))
    elif world_size == 1:
        whole = sum(u.unsharded_bytes for u in rep.units) / MiB
        size = f", {whole:.1f} MiB," if whole > 0 else ""
        out.append(Finding("info", f"No FSDP all-gather ran in the profiled steps (FSDP2 skips them at world size 1, "
                                   f"where each shard is the whole parameter): the {len(rep.units)} units' "
                                   f"parameters{size} stay whole on rank {rep.rank} throughout."))
    else:
        out.append(Finding("info", f"No FSDP all-gather of rank {rep.rank} was matched to its units in the profiled "
                                   "steps: the peak of unsharded parameters is not measured."))
    return out


def fsdp_advisor(run: Run, bw: Bandwidth, unprofiled_ms: dict[int, float],
                 noise: Noise | None = None) -> FSDPAnalysis | None:
    rt = _rank(run)
    if rt is None:
        return None
    settings = rt.sidecar.fsdp if rt.sidecar is not None else None
    steps = step_units(rt, settings)
    rep = fsdp_report(rt, steps)
    if rep is None:
        return None
    findings = _facts(rep, rt.world_size) + [f for f in (_allocator(rt),) if f is not None]
    # the what-ifs' steps and the model check use one step, the profiled step nearest the mean; their peak memory
    # and the measured peak are medians over the profiled passes (``_peak``, ``_step_peaks``)
    typical = nearest_mean(steps)
    peaks = _step_peaks(run)
    measured_peak = int(np.median(peaks)) if peaks else None
    if rt.device_kind != "cpu":
        findings.append(Finding("info", "No FSDP what-if: the replay models FSDP2 on CPU (gloo), where all-gathers "
                                        "block the training thread; on GPUs they overlap on their own stream, "
                                        "which it does not model yet."))
        return FSDPAnalysis(report=rep, whatifs=(), advice=(), findings=tuple(findings), step_model_ms=None,
                            step_measured_ms=None, baseline_step_ms=None, measured_peak_bytes=measured_peak,
                            measured_max_bytes=max(peaks, default=None))
    world = rt.world_size or 2
    traced_k = max((len(u.forward_prefetch) for u in settings.units), default=0) if settings else 0
    traced = Knobs(reshard_after_forward=None, prefetch=traced_k)
    rafs = {u.reshard_after_forward for u in rep.units if u.unit != ""}
    uniform = rafs.pop() if len(rafs) == 1 else None
    inp = inputs(typical, rep, bw, world)
    model_ns, _p, _h = replay(inp, traced)
    target = (unprofiled_ms.get(rt.rank) or 0.0) / rep.passes_per_step or None  # a pass's share of the step
    scale = calibrate(inp, target * 1e6 if target else None)
    base_ns, base_peak, base_held = replay(inp, traced, scale)
    base_slope = _slope(inp, traced, scale)
    others = _others(run, typical, rt, base_held)
    whatifs, preds, gains = [], {}, {}
    for k in CANDIDATES:
        if k.prefetch == traced.prefetch and k.reshard_after_forward in (None, uniform):
            continue  # the traced settings themselves
        step_ns, peak, held = replay(inp, k, scale)
        total, total_range = _peak(others, held)
        knob, value = _knob(k if k.reshard_after_forward != uniform else Knobs(
            reshard_after_forward=None, prefetch=k.prefetch), traced)
        if (knob, str(value)) in preds:
            continue
        whatifs.append(FSDPWhatIf(knob=knob, value=value, step_ms=step_ns / 1e6, peak_unsharded_bytes=peak,
                                  peak_memory_bytes=total, peak_memory_range_bytes=total_range))
        preds[(knob, str(value))] = (k, step_ns, peak, total)
        gains[(knob, str(value))] = core.gain(step_ns, _slope(inp, k, scale), base_ns, base_slope)
    analysis = FSDPAnalysis(report=rep, whatifs=tuple(whatifs), advice=(),
                            findings=tuple(findings) + unreached(base_ns / 1e6, target, rep.passes_per_step),
                            step_model_ms=model_ns / 1e6, step_measured_ms=(typical.end_ns - typical.start_ns) / 1e6,
                            baseline_step_ms=base_ns / 1e6, measured_peak_bytes=measured_peak,
                            measured_max_bytes=max(peaks, default=None), step_now_ms=unprofiled_ms.get(rt.rank))
    nz = noise or Noise()
    err = analysis.error_pct
    banded = tuple(replace(w, range_ms=band(w.step_ms, nz, err, gain=gains[(w.knob, str(w.value))])) for w in whatifs)
    analysis = replace(analysis, whatifs=banded, baseline_range_ms=band(
        base_ns / 1e6, nz, err, changed=False, gain=core.gain(base_ns, base_slope, base_ns, base_slope)))
    return _advise(analysis, rt, base_ns, base_peak, nz, gains)


def nearest_mean(steps: list[StepUnits]) -> StepUnits:
    """The step nearest the mean, a real one (the earlier on a tie)."""
    mean_ns = float(np.mean([s.end_ns - s.start_ns for s in steps]))
    return min(steps, key=lambda s: (abs(s.end_ns - s.start_ns - mean_ns), s.start_ns))


def unreached(base_ms: float, target_ms: float | None, passes: int = 1) -> tuple[Finding, ...]:
    """Where the calibrated replay of the traced settings stays above the step outside the profiler, a finding
    (a step of one forward/backward pass: with several, the what-ifs are not shown)."""
    if not target_ms or passes > 1 or base_ms <= target_ms * (1 + TOLERANCE_PCT / 100):
        return ()
    text = (f"The replay of the traced settings gives {base_ms:.1f} ms per step, above the step as it is now "
            f"({target_ms:.1f} ms, the one every prediction is calibrated on): calibrating the compute cannot bring it "
            "lower, as the traced collectives take more than that step allows (the profiler, or other work, slowed "
            f"them). The what-ifs compare with the replay's {base_ms:.1f} ms; advice must come out below "
            f"{target_ms:.1f} ms.")
    return (Finding("info", text),)


def _slope(inp: ReplayInputs, k: Knobs, scale: float) -> float:
    """The replayed step's move as the calibrated compute-side times move (``replay.core.slope``)."""
    return core.slope(lambda f: replay(inp, k, scale * f)[0])


def _step_peaks(run: Run) -> list[int]:
    """The most memory allocated in each profiled step of every FSDP rank.  On gloo they differ by up to two
    reduce-scatter staging copies from step to step (how fast the backend's thread drains them), so the
    measurement compared with a prediction is their median; the largest is reported beside it."""
    out = []
    for r in run.ranks:
        line = _memory_line(r) if r.fsdp else None
        if line is None:
            continue
        for st in r.steps:  # the timeline is in time order: each step's slice found by bisection, not a mask
            i = int(np.searchsorted(line[0], st.start_ns, side="left"))
            j = int(np.searchsorted(line[0], st.end_ns, side="right"))
            if j > i:
                out.append(int(line[1][i:j].max()))
    return out


def _memory_line(rt: RankTrace) -> np.ndarray | None:
    """The memory timeline of the rank's device (CPU: live tensor bytes, ``reader/memory/memline.py``); None if
    none."""
    line = rt.memory_line.get("cpu:-1") if rt.device_kind == "cpu" else next(
        (v for k, v in rt.memory_line.items() if k.startswith("cuda")), None)
    return line if line is not None and line.shape[1] else None


def _others(run: Run, typical: StepUnits, rt: RankTrace, traced_held: dict[str, int]) -> list[dict[str, int]]:
    """For each profiled pass of every FSDP rank (the first 16 with a memory timeline) with the typical pass's
    phases (the replay's units: a rank of other units, a pipeline stage, is left out), per phase, the most memory
    allocated then (profile_memory's timeline) minus the unsharded parameters the traced schedule held: what any FSDP
    setting leaves in place (activations, gradients, the sharded parameters and optimizer state).  Empty without a
    memory timeline."""
    phases = set(phase_windows(rt.fsdp, typical.start_ns, typical.end_ns))
    out: list[dict[str, int]] = []
    ranks = [(r, line) for r in run.ranks if r.fsdp for line in (_memory_line(r),) if line is not None][:16]
    for r, line in ranks:
        for a, b in ((a, min(b, st.end_ns)) for st in r.steps for a, b in pass_cuts(st.start_ns, st.end_ns, r.fsdp)):
            windows = phase_windows(r.fsdp, a, b)
            if set(windows) != phases:
                continue
            got = {}
            for ph, (lo, hi) in windows.items():
                i = int(np.searchsorted(line[0], lo - 100_000, side="left"))  # the timeline is in time order
                j = int(np.searchsorted(line[0], hi, side="right"))
                if j > i:
                    got[ph] = int(line[1][i:j].max()) - traced_held.get(ph, 0)
            if got:
                out.append(got)
    return out


def _peak(others: list[dict[str, int]], held: dict[str, int]) -> tuple[int | None, tuple[int, int] | None]:
    """A setting's predicted peak memory: each traced pass's other memory plus what the setting holds, phase by
    phase; the median over the passes and their range.  On gloo a pass holds up to two reduce-scatter staging
    copies more or fewer than the next (how fast the backend's thread drains them): one pass is no prediction, and
    the measured peak it is compared with is a median too (``_step_peaks``)."""
    totals = [max(o + held.get(ph, 0) for ph, o in other.items()) for other in others]
    if not totals:
        return None, None
    return int(np.median(totals)), (min(totals), max(totals))


def _advise(a: FSDPAnalysis, rt: RankTrace, base_ns: float, base_peak: int, noise: Noise,
            gains: dict[tuple[str, str], float]) -> FSDPAnalysis:
    """The best FSDP setting as advice, where it gains beyond the model's error and its band lies below the step
    (``gains``: each what-if's ``replay.core.gain``, for the band's text)."""
    findings = list(a.findings)
    err = a.error_pct or 0.0
    if abs(err) > TOLERANCE_PCT:
        findings.append(Finding("medium", f"{MISSES}{err:+.0f}% (tolerance "
                                          f"±{TOLERANCE_PCT:.0f}%): its what-ifs are shown without advice."))
        return replace(a, findings=tuple(findings))
    limit = next((v for k, v in rt.device_memory.items()), None)
    ok = [w for w in a.whatifs if limit is None or (high := _high(w)) is None or high <= 0.9 * limit]
    if not ok:
        return replace(a, findings=tuple(findings))
    best = min(ok, key=lambda w: (round(w.step_ms, 1), w.peak_unsharded_bytes))
    gain = 1 - best.step_ms * 1e6 / base_ns if base_ns else 0.0
    if gain < required_gain(err):
        need = max(MIN_GAIN * 100, abs(err))
        findings.append(Finding("info", f"No FSDP setting is predicted to gain more than {need:.0f}% "
                                        f"(best: {best.knob} = {best.value}, {gain * 100:+.1f}%)."))
        return replace(a, findings=tuple(findings))
    more = (best.peak_unsharded_bytes - base_peak) / MiB
    mem = f"; predicted peak memory {_peak_text(best)}" if best.peak_memory_bytes else ""
    why = (f"The replay of FSDP2's schedule (model error on the traced run {err:+.1f}%) puts the step at "
           f"{best.step_ms:.1f} ms instead of {base_ns / 1e6:.1f} ms. It holds {more:+.1f} MiB more of unsharded "
           f"parameters at its peak ({best.peak_unsharded_bytes / MiB:.1f} MiB{mem})"
           + (": reshard_after_forward=False keeps each unit's parameters from its forward to its backward"
              if "reshard_after_forward" in str(best.value) or best.knob == "reshard_after_forward" else "")
           + ". Set it with fully_shard(unit, reshard_after_forward=...) and unit.set_modules_to_forward_prefetch / "
             "set_modules_to_backward_prefetch.")
    g = gains.get((best.knob, str(best.value)), 0.0)
    adv = Advice(knob=best.knob, value=best.value, baseline_step_ms=base_ns / 1e6, predicted_step_ms=best.step_ms,
                 why=why + calibration_sentence(g, noise), predicted_range_ms=best.range_ms, calibration_gain=g)
    # the step as it is now (a replay that cannot reach it), never the measured profiled step: its scale is its own
    kept, withheld = banded_advice((adv,), noise, err, a.step_now_ms)
    return replace(a, advice=kept, findings=tuple(findings) + withheld)


def _high(w: FSDPWhatIf) -> int | None:
    """The most a setting is predicted to allocate: the top of its range (a memory limit holds at every step)."""
    return w.peak_memory_range_bytes[1] if w.peak_memory_range_bytes else w.peak_memory_bytes


def _peak_text(w: FSDPWhatIf) -> str:
    lo, hi = w.peak_memory_range_bytes or (w.peak_memory_bytes or 0, w.peak_memory_bytes or 0)
    spread = f" ({lo / MiB:.0f}-{hi / MiB:.0f} MiB over the traced passes)" if round(hi / MiB) > round(lo / MiB) else ""
    return f"{(w.peak_memory_bytes or 0) / MiB:.0f} MiB{spread}"
