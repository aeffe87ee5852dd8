"""Allocator churn: per rank and profiled step, the device allocator's runtime calls (``cudaMalloc``, ``cudaFree``,
pinned host ``cudaHostAlloc`` / ``cudaFreeHost``), device-wide synchronisations and ``empty_cache`` calls, their
time, which of them fell inside the backward pass (where they stall the host while gradients are communicated:
``cudaFree`` and ``cudaDeviceSynchronize`` wait for the whole device), and the ``[memory]`` events of each step.

Rules (a pattern is named only when it holds in every profiled step of the rank, two steps at least: a call in
one step is the allocator warming up, not churn):
- ``cudaFree`` and ``cudaMalloc`` in every step: the cache is emptied and refilled each step
  (``torch.cuda.empty_cache()`` in the loop, named when the trace records the call; or the allocator releasing
  its cache to retry a failed allocation when memory is near the device's limit);
- ``cudaMalloc`` in every step without frees: steady-state growth of the cache (fragmentation):
  ``PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True`` lets it grow segments instead of allocating new ones;
- pinned host memory allocated in every step: allocate the pinned buffer once and copy into it.
Advice needs the calls to cost at least ``MIN_COST`` of the step; its prediction is the step without them.
On every device, allocations per step from ``[memory]`` events; on CPU (whose allocator is the C library's, no
cache of its own) the sizes allocated again in every step: buffers allocated once and reused would spare up to
that many bytes of allocation per step.  Device syncs alone are the host-synchronisation finding's (transfers).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

import numpy as np

from ...model import RankTrace, Run
from ...model.alloc import DEVICE_SYNC, EMPTY_CACHE, FREE, HOST_ALLOC, HOST_FREE, MALLOC
from ...units import MiB
from ..section import Advice, Finding
from ..uncertainty.maths import Noise, Z, lower_factor

MIN_COST = 0.01  # advice only where the calls take at least 1% of the step
MIN_STEPS = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class ChurnStep:
    step: int
    step_ms: float
    calls: dict[str, int]  # MALLOC, FREE, HOST_ALLOC, HOST_FREE, DEVICE_SYNC -> count
    calls_ms: float  # time in those calls (the host waits for each)
    in_backward: int  # frees and device syncs inside the backward pass
    in_backward_ms: float
    empty_cache: int  # recorded calls of torch.cuda.empty_cache
    allocs: int  # [memory] allocations on the rank's device (-1: no [memory] events)
    alloc_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Churn:
    rank: int
    device: str  # the device of the [memory] events ("cuda:0", "cpu:-1"), "" without them
    steps: tuple[ChurnStep, ...]
    recurring_allocs: int  # blocks allocated at the same size in every profiled step (per step)
    recurring_bytes: int  # and their bytes: what buffers allocated once and reused would spare per step
    patterns: tuple[str, ...]  # "empty_cache", "refill", "growth", "pinned" (see the module's rules)

    def median(self, what: str) -> float:
        vals = [getattr(s, what) for s in self.steps]
        return float(np.median(vals)) if vals else 0.0


def _backward(rt: RankTrace, a: int, b: int) -> tuple[int, int] | None:
    """The backward pass of the step [a, b]: first to last gradient accumulation (FSDP2: pre_backward to the last
    post_backward), None where the trace does not say."""
    if rt.grads is not None and len(rt.grads):
        m = (rt.grads.start_ns >= a) & (rt.grads.start_ns <= b)
        if m.any():
            return int(rt.grads.start_ns[m].min()), int(rt.grads.end_ns[m].max())
    bw = [e for e in rt.fsdp if a <= e.start_ns <= b and (e.phase.startswith("pre_backward")
                                                          or e.phase.startswith("post_backward"))]
    return (min(e.start_ns for e in bw), max(e.end_ns for e in bw)) if bw else None


def _device(rt: RankTrace) -> str:
    devs = sorted({s.device for s in rt.step_allocs})
    cuda = [d for d in devs if d.startswith("cuda")]
    return (cuda or devs or [""])[0]


def churn(rt: RankTrace) -> Churn | None:
    """One rank's churn; None where the trace has neither allocator calls nor [memory] events in its steps."""
    calls = rt.alloc_calls
    dev = _device(rt)
    mem = {s.step: s for s in rt.step_allocs if s.device == dev}
    if (calls is None or not len(calls)) and not mem:
        return None
    marks = [m for m in rt.marks if m.kind == EMPTY_CACHE]
    rows = []
    for st in rt.steps:
        counts: dict[str, int] = defaultdict(int)
        ms = bwd_ms = 0.0
        in_bwd = 0
        if calls is not None:
            idx = np.flatnonzero((calls.start_ns >= st.start_ns) & (calls.start_ns <= st.end_ns))
            win = _backward(rt, st.start_ns, st.end_ns)
            for i in idx.tolist():
                k = calls.kind[i]
                counts[k] += 1
                dur = float(calls.end_ns[i] - calls.start_ns[i]) / 1e6
                ms += dur
                if k in (FREE, DEVICE_SYNC) and win is not None and win[0] <= calls.start_ns[i] <= win[1]:
                    in_bwd += 1
                    bwd_ms += dur
        m = mem.get(st.number)
        rows.append(ChurnStep(step=st.number, step_ms=st.duration_ns / 1e6, calls=dict(counts), calls_ms=ms,
                              in_backward=in_bwd, in_backward_ms=bwd_ms,
                              empty_cache=sum(1 for c in marks if st.start_ns <= c.start_ns <= st.end_ns),
                              allocs=m.allocs if m else -1, alloc_bytes=m.alloc_bytes if m else 0))
    rec_n, rec_b = _recurring([mem[s.number].size_counts for s in rt.steps if s.number in mem])
    return Churn(rank=rt.rank, device=dev, steps=tuple(rows), recurring_allocs=rec_n, recurring_bytes=rec_b,
                 patterns=_patterns(rows))


def _recurring(per_step: list[tuple[tuple[int, int], ...]]) -> tuple[int, int]:
    """Blocks allocated at the same size in every step (the fewest of each size over the steps) and their bytes."""
    if len(per_step) < MIN_STEPS:
        return 0, 0
    common: dict[int, int] | None = None
    for sc in per_step:
        d = dict(sc)
        common = d if common is None else {k: min(v, d[k]) for k, v in common.items() if k in d}
    common = common or {}
    return sum(common.values()), sum(k * v for k, v in common.items())


def _patterns(rows: list[ChurnStep]) -> tuple[str, ...]:
    if len(rows) < MIN_STEPS:
        return ()

    def every(kind: str) -> bool:
        return all(r.calls.get(kind, 0) > 0 for r in rows)

    out = []
    if all(r.empty_cache > 0 for r in rows):
        out.append("empty_cache")
    elif every(FREE) and every(MALLOC):
        out.append("refill")
    elif every(MALLOC):
        out.append("growth")
    if every(HOST_ALLOC) or every(HOST_FREE):
        out.append("pinned")
    return tuple(out)


def churn_all(run: Run) -> tuple[Churn, ...]:
    return tuple(c for c in (churn(rt) for rt in run.ranks) if c is not None)


def _calls_text(c: Churn) -> str:
    per = defaultdict(list)
    for s in c.steps:
        for k in (MALLOC, FREE, HOST_ALLOC, HOST_FREE, DEVICE_SYNC):
            per[k].append(s.calls.get(k, 0))
    names = {MALLOC: "cudaMalloc", FREE: "cudaFree", HOST_ALLOC: "cudaHostAlloc", HOST_FREE: "cudaFreeHost",
             DEVICE_SYNC: "cudaDeviceSynchronize"}
    return ", ".join(f"{float(np.median(v)):.0f} {names[k]}" for k, v in per.items() if any(v))


def churn_findings(churns: tuple[Churn, ...], unprofiled_ms: dict[int, float], near_limit: set[int],
                   noise: Noise | None = None, profiled: frozenset[int] = frozenset()) -> tuple[list[Finding],
                                                                                              list[Advice]]:
    """Findings for every rank with allocator calls or [memory] events; advice for the worst rank's pattern when
    its calls cost at least ``MIN_COST`` of the step, with its band (``band``).  ``unprofiled_ms``: each rank's step
    as it is now (``steptimes.step_now_ms``), ``profiled`` the ranks where that is the mean profiled step (the calls'
    cost is then not scaled to it); ``near_limit``: ranks whose memory is near the device's; ``noise``: the traced
    run's."""
    findings: list[Finding] = []
    advice: list[Advice] = []
    for c in churns:
        n = len(c.steps)
        cost, step = c.median("calls_ms"), c.median("step_ms")
        if any(set(s.calls) - {DEVICE_SYNC} or s.in_backward for s in c.steps):
            text = (f"Rank {c.rank}: per profiled step (median of {n}) {_calls_text(c)}, {cost:.2f} ms of a "
                    f"{step:.1f} ms step in the allocator's calls")
            bwd = c.median("in_backward_ms")
            if any(s.in_backward for s in c.steps):
                text += (f"; {c.median('in_backward'):.0f} cudaFree / cudaDeviceSynchronize inside the backward pass "
                         f"({bwd:.2f} ms): each waits for the whole device, so the host stops launching work while "
                         "gradients are communicated")
            if not c.patterns:
                text += ("; not in every profiled step: the allocator warming up, not churn" if n >= MIN_STEPS
                         else "; one profiled step: too few to tell churn from warm-up")
            findings.append(Finding("medium" if c.patterns and cost >= MIN_COST * step else "info", text + "."))
        if c.recurring_bytes and c.device.startswith("cpu"):  # CUDA's caching allocator reuses its blocks itself
            findings.append(Finding("info", (
                f"Rank {c.rank} allocates {c.median('allocs'):.0f} blocks ({c.median('alloc_bytes') / MiB:.1f} MiB) "
                f"per step on {c.device}; {c.recurring_allocs} of them ({c.recurring_bytes / MiB:.1f} MiB) at the "
                f"same sizes in each of the {n} profiled steps: buffers allocated once and reused would spare "
                f"up to {c.recurring_bytes / MiB:.1f} MiB of allocation per step (the peak stays the same).")))
    ranked = sorted((c for c in churns if c.patterns), key=lambda c: -c.median("calls_ms"))
    if ranked:
        c = ranked[0]
        step = unprofiled_ms.get(c.rank) or c.median("step_ms")
        k = step / c.median("step_ms") if c.median("step_ms") and c.rank not in profiled else 1.0
        cost = c.median("calls_ms") * k
        adv = _advice(c, step, cost, c.rank in near_limit)
        if adv is not None and cost >= MIN_COST * step:
            advice.append(replace(adv, predicted_range_ms=band(c, step, cost, k, noise)))
    return findings, advice


def band(c: Churn, step_ms: float, cost_ms: float, scale: float, noise: Noise | None) -> tuple[float, float]:
    """[low, high] of the step without the calls: no model replays anything (the calls' own measured time comes
    off the step), so the band is the step's noise (``Z`` deviations of its step-to-step variation) and the calls'
    spread over the profiled steps (half their range, scaled to the step outside the profiler like their median)."""
    costs = [s.calls_ms * scale for s in c.steps]
    h = Z * (noise.step_pct if noise is not None else 0.0) / 100 * step_ms + (max(costs) - min(costs)) / 2
    pred = step_ms - cost_ms
    return max(pred - h, 0.0) * lower_factor(noise), pred + h


def _advice(c: Churn, step_ms: float, cost_ms: float, near: bool) -> Advice | None:
    evidence = (f"on rank {c.rank}, in each of its {len(c.steps)} profiled steps: {_calls_text(c)} "
                f"({c.median('calls_ms'):.2f} ms per profiled step)")
    if "empty_cache" in c.patterns or "refill" in c.patterns:
        called = "empty_cache" in c.patterns
        why = (("torch.cuda.empty_cache() is called in every step" if called else
                "The allocator gives its cached memory back and takes it again every step")
               + f" ({evidence}). Each cudaFree waits for the whole device. "
               + ("Remove torch.cuda.empty_cache() from the training loop." if called else
                  "Look for torch.cuda.empty_cache() in the loop and remove it"
                  + ("; memory is near the device's limit, so the allocator may be freeing its cache to retry "
                     "failed allocations: lower the peak (smaller batch, activation checkpointing, sharding)."
                     if near else "."))
               + " Predicted: the step without these calls.")
        return Advice(knob="empty_cache", value="remove from the loop", baseline_step_ms=step_ms,
                      predicted_step_ms=step_ms - cost_ms, why=why)
    if "growth" in c.patterns:
        why = (f"The caching allocator requests new device memory in every step ({evidence}): its cache "
               "fragments and grows instead of reusing segments. PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True "
               "lets it grow existing segments. Predicted: the step without these calls.")
        return Advice(knob="PYTORCH_CUDA_ALLOC_CONF", value="expandable_segments:True", baseline_step_ms=step_ms,
                      predicted_step_ms=step_ms - cost_ms, why=why)
    if "pinned" in c.patterns:
        why = (f"Pinned host memory is allocated (or freed) in every step ({evidence}). Allocate the pinned "
               "buffer once and copy into it (buf.copy_(x); x_gpu.copy_(buf, non_blocking=True)). Predicted: the "
               "step without these calls.")
        return Advice(knob="pinned_buffers", value="reuse", baseline_step_ms=step_ms,
                      predicted_step_ms=step_ms - cost_ms, why=why)
    return None
