"""The verdict on a step's micro-batches (``accumulation``): where every micro-batch of every rank synchronized the
gradients, the advice to synchronize once per step (DDP: ``model.no_sync()`` on all but the last; FSDP2:
``model.set_requires_gradient_sync(False)``), with its prediction and band; where the run already does, what the
other what-ifs then mean; and which replays cannot stand on a run of several micro-batches (``replay_fails``).

The two ends are ``accumulation``'s: the pessimistic removes the early micro-batches' exposed synchronization and
the wrapper's work at it, the optimistic (over gloo, whose transfers take the backward's cores) also runs them in
the least contended micro-batch's compute.  The prediction is the optimistic end where, without synchronizing, the
early micro-batches issue no collective at all (DDP: measured within -4% to +1% of the step in four pairs of runs on
the 2-core test machine, the middle of the two ends 6-17% above it), else the pessimistic (FSDP2's all-gathers stay
and keep the cores busy: its optimistic end landed 18% under the measured step in one of two runs); the band
reaches both.  FSDP2 then adds each early micro-batch's unsharded gradients to the ones before (a pass at the run's
own rate) and keeps them between micro-batches: the advice says how much memory that costs.  The band: the replays'
half-width (the run's noise, the model's error) and the distance between the two ends (in % of the prediction: how
much the model cannot tell), in quadrature, reaching both ends at least; and, where the profiler slowed the traced
step, up to the step with all of the profiler's time in the removed synchronizations (``_distorted``), said in the
advice (FSDP2 over gloo on the 2-core test machine: traced steps 1.2-1.6x those outside the profiler; where the
band then reaches the step as it is now, the advice is withheld with why).  Five such FSDP2 pairs (4 micro-batches,
2 ranks) measured the step from 10% below to 15% above the prediction, the gain 17-29%."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ... import ops
from ...model import Run
from ...model.alloc import DDP_FORWARD
from ..section import Advice, Finding
from ..steptimes import OUTSIDE
from ..uncertainty.bands import NOT_ADVISED
from ..uncertainty.maths import Noise, around, half_width_pct
from .accumulation import MicroBatches, micro_batches

KNOB = "gradient_syncs_per_step"  # the advice's knob: what ``commprof compare`` reads back from AFTER


@dataclass(frozen=True, slots=True, kw_only=True)
class Accumulation:
    ranks: tuple[MicroBatches, ...]
    advice: Advice | None  # gradient syncs per step: 1 (``no_sync()``), where every micro-batch synchronized
    finding: Finding | None
    band_note: str = ""  # why the advice's band reaches as high as it does (``_high_end``), where a term raised it

    @property
    def per_step(self) -> int:
        return max((m.per_step for m in self.ranks), default=1)

    @property
    def synced(self) -> int:
        return max((m.synced for m in self.ranks), default=0)

    @property
    def wasted(self) -> bool:
        return bool(self.ranks) and all(m.wasted for m in self.ranks)


@dataclass(frozen=True, slots=True)
class _Words:
    """How a wrapper's accumulation is said."""

    calls: str  # what marks a micro-batch
    sync: str  # its synchronizing collectives
    skip: str  # how the early micro-batches skip synchronizing
    example: str


_DDP = _Words("DDP forward calls", "all-reduces", "model.no_sync()",
              "`with model.no_sync() if i < n - 1 else contextlib.nullcontext(): loss_fn(model(x), y).backward()`")
_FSDP = _Words("FSDP2 root forward calls", "reduce-scatters", "model.set_requires_gradient_sync(False)",
               "`model.set_requires_gradient_sync(i == n - 1); loss_fn(model(x), y).backward()`")


def _told(acc: Accumulation) -> Finding:
    """What an accumulation that does not synchronize every micro-batch is told."""
    w, k = (_FSDP if acc.ranks[0].kind == "fsdp" else _DDP), acc.per_step
    if acc.synced <= 1:
        then = (f" DDP's what-ifs replay the last micro-batch's backward and its {w.sync}; gradient_accumulation = n "
                f"there means n of these steps ({k} x n micro-batches) per optimizer step." if w is _DDP else "")
        return Finding("info", f"Gradient accumulation: {k} micro-batches per step ({w.calls}), the gradients "
                               f"synchronized once per step ({w.skip} on the others).{then}")
    return Finding("info", f"Gradient accumulation: {k} micro-batches per step, of which {acc.synced} synchronized the "
                           f"gradients ({w.skip} on some, not all, of the others): each synchronization before the "
                           "last is paid again at the step's end.")


def assess(run: Run, steps: dict[int, tuple[int, ...]], unprofiled_ms: dict[int, float], noise: Noise,
           model_error_pct: float | None = None, pass_bps: float | None = None,
           basis: Mapping[int, str] | None = None) -> Accumulation | None:
    """The job's micro-batches (``steps``: each rank's analyzed steps) and, where every rank synchronized the
    gradients in every micro-batch, the advice to do so once per step; None where no rank accumulates.
    ``unprofiled_ms``: each rank's step as it is now, ``basis`` where it comes from (``steptimes``; None: all from
    the steps outside the profiler).  ``pass_bps``: the run's in-place element-wise pass rate (``rates``), what
    FSDP2's accumulation of unsharded gradients costs per early micro-batch."""
    found = tuple(m for rt in run.ranks if (m := micro_batches(rt, steps.get(rt.rank))) is not None)
    if not found:
        return None
    acc = Accumulation(ranks=found, advice=None, finding=None)
    if not acc.wasted:
        return Accumulation(ranks=found, advice=None, finding=_told(acc))
    cpu = any((rt.backend or "").lower() == "gloo" for rt in run.ranks)
    current, pessimistic, optimistic, bounds = [], [], [], []
    for m in found:
        f = unprofiled_ms[m.rank] / m.step_ms if m.rank in unprofiled_ms and m.step_ms > 0 else 1.0
        # FSDP2 without synchronizing adds each early micro-batch's unsharded gradients to the ones before
        add = (m.per_step - 1) * m.sync_bytes / pass_bps * 1e3 if m.kind == "fsdp" and pass_bps else 0.0
        current.append(m.step_ms * f)
        pessimistic.append(m.without_exposed_ms * f + add)
        optimistic.append((m.uncontended_ms if cpu else m.without_exposed_ms) * f + add)
        if f < 1.0 and (basis is None or basis.get(m.rank) == OUTSIDE):  # timed outside the profiler, and faster
            bounds.append(_distorted(m, f, add))
    # the slowest rank sets the step; over gloo the transfers' cores come back to the backward where the early
    # micro-batches then issue no collective at all: the prediction runs them at the least contended one's speed,
    # the band reaching up to their traced speed; where other collectives stay (FSDP2's all-gathers), the reverse
    now, worst_ms, best_ms = max(current), max(pessimistic), max(optimistic)
    pred = worst_ms if _busy_after(found) else best_ms
    # the band: the replays' (noise, the model's error) and the two ends' distance, a structure term, in quadrature
    structure_pct = 100.0 * (worst_ms - best_ms) / pred if pred > 0 else 0.0
    lo, hi = around(pred, math.hypot(half_width_pct(noise, model_error_pct), structure_pct), noise)
    hi, note = _high_end(bounds, max(hi, worst_ms), now)
    advice = Advice(knob=KNOB, value=1, baseline_step_ms=now, predicted_step_ms=pred,
                    why=_why(found, cpu) + (" " + note if note else ""), predicted_range_ms=(min(lo, best_ms), hi))
    return Accumulation(ranks=found, advice=advice, finding=_wasted(found, now, pred), band_note=note)


def _high_end(bounds: list[_Bounds], hi: float, now: float) -> tuple[float, str]:
    """The band's high end with the profiler's time in the removed synchronizations (``_distorted``), and the
    sentence that says so where it raised it."""
    if not bounds:
        return hi, ""
    slowest = max(bounds, key=lambda b: b.high_ms)  # the step is the slowest rank's
    if slowest.high_ms <= hi:
        return hi, ""
    return slowest.high_ms, slowest.sentence(now)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Bounds:
    """One rank's step without synchronizing, with all of the profiler's own time in what the advice removes."""

    rank: int
    traced_ms: float  # its traced step
    now_ms: float  # its step outside the profiler, shorter
    removed_ms: float  # what the pessimistic end removes, as traced
    high_ms: float  # what goes is that less the profiler's time (traced - outside), at least nothing

    def sentence(self, job_now_ms: float) -> str:
        """Why the band reaches ``high_ms``; ``job_now_ms``: the job's step as it is now (the slowest rank's)."""
        gain = job_now_ms - self.high_ms
        then = f"the step may gain as little as {_ms(gain)} ms" if gain >= 0.05 else "the step may gain nothing"
        return (f"The profiler slowed the traced steps {self.traced_ms / self.now_ms:.1f}x (rank {self.rank}: "
                f"{_ms(self.traced_ms)} ms against {_ms(self.now_ms)} ms outside it), and the trace cannot tell how "
                f"much of that fell on the {_ms(self.removed_ms)} ms of synchronization this removes; if all of it "
                f"did, {then}: the band reaches up to {_ms(self.high_ms)} ms.")


def _ms(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 10 else f"{x:.1f}"


def _distorted(m: MicroBatches, f: float, add: float) -> _Bounds:
    """The prediction scales the traced step's parts alike to the step outside the profiler (``f`` < 1: the profiler
    slowed the step); the profiler may have slowed what the advice removes more than the rest (FSDP2 over gloo, a
    traced step 2.7x the one outside, 1224 ms, of which the early reduce-scatters' exposed time took 367): this
    rank's step with all of the profiler's time in it.  The low end stays the uniform scaling's optimistic end (none
    of the profiler's time in what is removed would take that run's band down to a sixth of the step)."""
    now = m.step_ms * f
    removed = m.step_ms - m.without_exposed_ms
    return _Bounds(rank=m.rank, traced_ms=m.step_ms, now_ms=now, removed_ms=removed,
                   high_ms=now - max(removed - (m.step_ms - now), 0.0) + add)


STAYING_SHARE = 0.01  # of the step: other collectives in the early micro-batches beyond it keep the cores busy


def _busy_after(found: tuple[MicroBatches, ...]) -> bool:
    """Whether the early micro-batches would still issue collectives without synchronizing (FSDP2's all-gathers):
    then their backward stays as contended as traced."""
    return any(m.others_ms > STAYING_SHARE * m.step_ms for m in found)


def _why(found: tuple[MicroBatches, ...], cpu: bool) -> str:
    worst = max(found, key=lambda m: m.early_exposed_ms)
    k, fsdp = worst.per_step, worst.kind == "fsdp"
    w = _FSDP if fsdp else _DDP
    memory = (f" FSDP2 then keeps each unit's unsharded gradients from one micro-batch to the next: up to "
              f"{worst.sync_bytes / 1e6:.1f} MB more per rank (the gradients one synchronization reduce-scatters), "
              "against the sharded ones it keeps now; weigh that against the memory you have." if fsdp else "")
    return (f"Each step runs {k} forward/backward passes (gradient accumulation) and the gradients are synchronized "
            f"({w.sync}) after every one: {k} times the communication the optimizer step needs, "
            f"{worst.early_exposed_ms:.1f} ms of it exposed before the last micro-batch (rank {worst.rank}, median of "
            f"{worst.steps} steps). With {w.skip} for the first {k - 1}, the gradients accumulate locally and the "
            f"last backward synchronizes their sum: the same gradients as now (up to rounding), one round per step "
            f"instead of {k}. For micro-batch i of n: {w.example}.{memory}"
            + _gloo(found, cpu))


def _gloo(found: tuple[MicroBatches, ...], cpu: bool) -> str:
    if not cpu:
        return ""
    if _busy_after(found):
        return (" Over gloo the transfers take the cores the backward pass runs on, and the other collectives (the "
                "all-gathers) stay in every micro-batch: the prediction keeps the early micro-batches' traced speed, "
                "the band reaching down to the least contended one's.")
    return (" Over gloo the transfers also take the cores the backward pass runs on, so the backward speeds up too: "
            "the prediction runs each early micro-batch at the least contended one's speed, the band reaching up to "
            "the speed it had beside the transfers.")


def _wasted(found: tuple[MicroBatches, ...], now: float, pred: float, held: bool = False) -> Finding:
    """The finding; ``held``: the advice's band reaches the step as it is now (it is withheld: medium at most)."""
    worst = max(found, key=lambda m: m.early_exposed_ms)
    w = _FSDP if worst.kind == "fsdp" else _DDP
    below = "its gain is not beyond the band's uncertainty: see below" if held else "advice below"
    return Finding("high" if now - pred >= 0.1 * now and not held else "medium", (
        f"Every micro-batch synchronizes the gradients: {worst.per_step} forward/backward passes per step "
        f"({w.calls}), each followed by its {w.sync} ({worst.early_exposed_ms:.1f} ms exposed per step before the "
        f"last micro-batch). {w.skip} on all but the last gives the same gradients with one round ({below}). "
        "The other predictions replay one synchronization per step: they hold once it is in place."))


def held_finding(acc: Accumulation, advice: Advice) -> Finding:
    """The accumulation's finding where its ``advice`` is withheld (``bands.banded_advice``)."""
    return _wasted(acc.ranks, advice.baseline_step_ms, advice.predicted_step_ms, held=True)


def replay_fails(acc: Accumulation | None, per_pass: bool) -> str | None:
    """Why a replay's predictions do not stand on this run, else None.  ``per_pass``: the replay models one
    forward/backward pass per step (FSDP2's schedule replay, the DDP <-> FSDP2 what-ifs), so any step of several
    micro-batches defeats it; else (DDP's replay, which replays the last micro-batch's backward and takes the
    earlier ones as compute) only a step whose every micro-batch synchronizes the gradients."""
    if acc is None:
        return None
    if per_pass and acc.per_step > 1:
        return f"models one forward/backward pass per step where this run has {acc.per_step}"
    if not per_pass and acc.wasted:
        return f"models one gradient synchronization per step where this run has {acc.per_step}"
    return None


def withheld(what: str, advice: tuple[Advice, ...] | list[Advice], why: str, acc: Accumulation) -> Finding:
    """The finding that replaces a replay's what-ifs and advice where ``replay_fails``."""
    skip = (_FSDP if acc.ranks[0].kind == "fsdp" else _DDP).skip
    named = "; ".join(a.setting() for a in advice)
    return Finding("info", f"{NOT_ADVISED}{what}: its replay {why}, so its predictions are not shown"
                           + (f" ({named} withheld)" if named else "")
                           + (f"; trace again with {skip} in place." if acc.wasted else "."))


def across_steps(run: Run, kept: dict[int, tuple[int, ...]]) -> tuple[int, int, int] | None:
    """(rank, steps that synchronized, analyzed steps with one DDP forward) where a rank's gradients were
    synchronized (an all-reduce) in some of its steps and not in others (``model.no_sync()`` across steps:
    accumulation over optimizer steps, one micro-batch per profiler step); None otherwise."""
    synced = {(rt.rank, c.step) for rt in run.ranks for c in rt.collectives if ops.family(c.op) == ops.ALL_REDUCE}
    for rt in run.ranks:
        fwd = [m.start_ns for m in rt.marks if m.kind == DDP_FORWARD]
        steps = [s for s in rt.steps if s.number in kept.get(rt.rank, ())]
        once = [s.number for s in steps if sum(s.start_ns <= t <= s.end_ns for t in fwd) == 1]
        k = sum((rt.rank, n) in synced for n in once)
        if once and len(once) == len(steps) and 0 < k < len(once):
            return rt.rank, k, len(once)
    return None


def across_finding(rank: int, k: int, n: int, advice: Sequence[Advice]) -> Finding:
    named = "; ".join(a.setting() for a in advice)
    text = (f"Gradient accumulation across steps: rank {rank} synchronized the gradients in {k} of its {n} analyzed "
            f"steps (model.no_sync() in the others). {NOT_ADVISED}the DDP replay's what-ifs (bucket_cap_mb, "
            "comm_hook, gradient_accumulation): they replay a synchronizing step, while the step as it is now mixes "
            "both kinds, so their predictions are not shown" + (f" ({named} withheld)" if named else "")
            + ". Compare runs with commprof compare, whose verdict reads every step.")
    return Finding("info", text)
