"""What the DDP replay needs from one rank, from the sidecar where commprof traced the run, else from the trace.

- parameters: name, gradient bytes and shape, in the order their gradients became ready;
- when each gradient was ready, per step (sidecar: post-accumulate-grad hooks; trace: the end of the autograd
  engine's ``AccumulateGrad``, or, on GPU traces, the end of the last kernel launched by then, since the gradient is
  ready on the device when the kernels that computed it have run);
- the bucket collectives of each step (sidecar: matched to DDP's buckets; trace: the all-reduces issued during the
  backward pass, in launch order), and DDP's settings: the bucket cap (trace: inferred from the bucket sizes with
  DDP's own rule), the first bucket's limit, the traced comm hook's compression.

From a plain trace this needs ``record_shapes=True`` (the gradients' shapes and the all-reduces' sizes); what
cannot be recovered is said in ``notes`` and no view is made.  Both sources give the same replay where both exist
(tests/e2e/test_advisor.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import intervals as iv
from ... import ops
from ...model import RankTrace
from ...units import MiB, param_bytes
from .buckets import BucketStep

DEFAULT_CAP_BYTES = 25 * MiB
DEFAULT_FIRST_BUCKET_BYTES = 1 * MiB
_ROUND_CAPS_MB = (0.25, 0.5, 1, 2, 4, 8, 16, 32, 50, 64, 100, 128, 200, 256, 512, 1024)


@dataclass(frozen=True, slots=True, kw_only=True)
class DDPView:
    rank: int
    source: str  # "sidecar" or "trace"
    params: dict[str, int]  # gradient bytes by parameter name
    shapes: dict[str, tuple[int, ...] | None]
    ready: dict[int, dict[str, int]]  # step -> parameter -> when its gradient was ready (trace clock, ns)
    rows: tuple[BucketStep, ...]  # the bucket collectives of each step
    cap_bytes: int
    first_bucket_bytes: int | None  # DDP's first-bucket limit (None: the rebuilt layout has no small first bucket)
    compression: str | None  # the traced hook, as the replay names compression
    notes: tuple[str, ...] = ()  # what was inferred rather than read


def from_sidecar(rt: RankTrace, rows: list[BucketStep]) -> DDPView | None:
    sc = rt.sidecar
    if sc is None or sc.ddp is None or not sc.param_ready or not rows:
        return None
    ddp = sc.ddp
    return DDPView(rank=rt.rank, source="sidecar", params={p.name: p.bytes for p in ddp.params},
                   shapes={p.name: p.shape for p in ddp.params}, ready=sc.param_ready, rows=tuple(rows),
                   cap_bytes=int(ddp.bucket_bytes_cap or DEFAULT_CAP_BYTES),
                   first_bucket_bytes=int(ddp.first_bucket_bytes or DEFAULT_FIRST_BUCKET_BYTES),
                   compression=ddp.compression)


def view(rt: RankTrace, rows: list[BucketStep]) -> tuple[DDPView | None, str | None]:
    """The rank's view from its sidecar, else from its trace; else None and why not."""
    v = from_sidecar(rt, rows)
    if v is not None:
        return v, None
    return from_trace(rt)


def from_trace(rt: RankTrace) -> tuple[DDPView | None, str | None]:
    """The view a plain torch.profiler trace gives, or None and the reason."""
    g = rt.grads
    if g is None or not len(g):
        return None, "no gradient accumulations (AccumulateGrad) in the trace"
    if any(s is None for s in g.shapes):
        return None, "the gradients' shapes are not recorded (trace with record_shapes=True)"
    steps = {s.number: s for s in rt.steps}
    ready: dict[int, dict[str, int]] = {}
    names_by_step: dict[int, list[str]] = {}
    device_end = _device_ready(rt) if rt.device_kind == "cuda" else None
    for i in range(len(g)):
        n = int(g.step[i])
        if n not in steps:
            continue
        lst = names_by_step.setdefault(n, [])
        name = f"grad {len(lst)}"  # the k-th gradient of every step is the same parameter (ready order is stable)
        lst.append(name)
        t = int(g.end_ns[i])
        ready.setdefault(n, {})[name] = max(t, device_end(t)) if device_end is not None else t
    if not ready:
        return None, "no gradient accumulation inside a profiled step"
    k = max(len(v) for v in names_by_step.values())
    full = [n for n, v in names_by_step.items() if len(v) == k]
    first = next(i for i in range(len(g)) if int(g.step[i]) == full[0])
    shapes = {f"grad {j}": g.shapes[first + j] for j in range(k)}
    params = {name: param_bytes(int(np.prod(shape)) if shape else 0, g.dtypes[first + j])
              for j, (name, shape) in enumerate(shapes.items())}
    rows = _bucket_rows(rt, {n: ready[n] for n in full})
    if not rows:
        return None, "no all-reduce issued during the backward pass (DDP's buckets) in the profiled steps"
    layout = _layout(rows, [params[f"grad {j}"] for j in range(k)])
    if layout is None:
        last = max(r.step for r in rows)
        sent = [r.bytes for r in rows if r.step == last]
        total = sum(params.values())
        if abs(sum(sent) - total) <= 0.001 * total:  # the same bytes, another grouping
            return None, (f"the backward pass's {len(sent)} all-reduces carry its {k} gradients' {total / 1e6:.2f} MB, "
                          "but not grouped in the order the gradients became ready: DDP may keep an older order "
                          "(its buckets are rebuilt once, after the first iteration), or several DDP modules "
                          "bucket their own parameters")
        return None, (f"the backward pass's {len(sent)} all-reduces ({sum(sent) / 1e6:.2f} MB) are not its {k} "
                      f"gradients ({total / 1e6:.2f} MB) grouped in the order they became ready: DDP may cover "
                      "only some parameters, keep an older order, or run a comm hook that changes what is sent")
    cap, first_limit, note = infer_cap(layout, [params[f"grad {j}"] for j in range(k)])
    comp = _compression(rt, rows, g.dtypes[first])
    return DDPView(rank=rt.rank, source="trace", params=params, shapes=shapes, ready={n: ready[n] for n in full},
                   rows=tuple(rows), cap_bytes=cap, first_bucket_bytes=first_limit, compression=comp,
                   notes=(note,)), None


def _device_ready(rt: RankTrace):
    """GPU traces: when the gradient accumulated at CPU time t is ready on the device: the end of the last compute
    kernel launched by then (stream order: it is computed by kernels launched before)."""
    lane = rt.compute
    launch = np.asarray(lane.launch_ns)
    ok = launch >= 0
    order = np.argsort(launch[ok], kind="stable")
    la = launch[ok][order]
    ends = np.maximum.accumulate(np.asarray(lane.end_ns)[ok][order]) if la.size else la

    def at(t: int) -> int:
        i = int(np.searchsorted(la, t, side="right")) - 1
        return int(ends[i]) if i >= 0 else t
    return at


def _bucket_rows(rt: RankTrace, ready: dict[int, dict[str, int]]) -> list[BucketStep]:
    """Per step, the all-reduces issued from the first gradient's readiness to the step's end, in launch order."""
    steps = {s.number: s for s in rt.steps}
    out: list[BucketStep] = []
    for n, rd in sorted(ready.items()):
        st = steps[n]
        first = min(rd.values())
        colls = sorted((c for c in rt.collectives if c.step == n and ops.family(c.op) == ops.ALL_REDUCE
                        and c.issue_ns is not None and c.issue_ns >= first - 1_000_000 and c.size_known),
                       key=lambda c: c.issue_ns or 0)
        m = rt.compute.step == n
        comp = iv.union(rt.compute.start_ns[m], rt.compute.end_ns[m])
        for i, c in enumerate(colls):
            start = end = exposed = None
            if c.start_ns is not None and c.end_ns is not None:
                exposed = iv.length(iv.subtract((np.array([c.start_ns]), np.array([c.end_ns])), comp))
                start, end = c.start_ns - st.start_ns, c.end_ns - st.start_ns
            issue = (c.issue_ns or 0) - st.start_ns
            out.append(BucketStep(rank=rt.rank, step=n, index=i, bytes=c.bytes, params=0, ready_ns=issue,
                                  launch_ns=issue, start_ns=start, end_ns=end, exposed_ns=exposed))
    return out


def _layout(rows: list[BucketStep], sizes: list[int]) -> list[int] | None:
    """How many consecutive gradients (in ready order) each bucket of the last step holds, if its all-reduces add
    up to them (DDP's buckets hold the gradients in the order they became ready after its first iteration)."""
    last = max(r.step for r in rows)
    buckets = [r.bytes for r in rows if r.step == last]
    counts, i = [], 0
    for b in buckets:
        acc, j = 0, i
        while j < len(sizes) and acc < b:
            acc += sizes[j]
            j += 1
        if acc != b or j == i:
            return None
        counts.append(j - i)
        i = j
    return counts if i == len(sizes) else None


def _sizes(n: int) -> str:
    return "the one bucket's size" if n == 1 else f"the {n} bucket sizes"


def infer_cap(counts: list[int], sizes: list[int]) -> tuple[int, int | None, str]:
    """The bucket cap (and first-bucket limit) with which DDP's rule — fill buckets in ready order, close one once
    it reaches its limit — gives this layout: DDP's default where it does, else the largest round value that does.
    A bucket closed on its last gradient: its limit lies in (its bytes without that gradient, its bytes]; the last
    bucket only did not close before its last gradient."""
    spans, i = [], 0
    for c in counts:
        b = sizes[i:i + c]
        spans.append((sum(b) - b[-1], sum(b)))
        i += c
    last = len(spans) - 1
    # the rebuilt layout with no small first bucket (cap for every bucket), then with DDP's 1 MiB first bucket
    for first in (None, DEFAULT_FIRST_BUCKET_BYTES):
        ruled = spans if first is None else spans[1:]
        if first is not None:
            lo0, hi0 = spans[0]
            if not (lo0 < first and (first <= hi0 or last == 0)):
                continue
        lo = max((a for a, _ in ruled), default=0)
        hi = min((b for k, (_, b) in enumerate(ruled) if k + (first is not None) < last), default=1 << 62)
        for mb in (25, *sorted(_ROUND_CAPS_MB, reverse=True)):  # DDP's default, else the largest round value
            cap = int(mb * MiB)
            if lo < cap <= hi:
                how = "DDP's default" if mb == 25 else "the largest round value that does"
                caps = (f"any cap in ({lo / MiB:.3g}, {hi / MiB:.3g}] MB" if hi < 1 << 50 else
                        f"any cap above {lo / MiB:.3g} MB")
                return cap, first, (f"bucket_cap_mb={mb:g} inferred from {_sizes(len(counts))} ({how}; {caps} "
                                    "gives this layout)")
        if lo < hi:
            return hi, first, f"bucket cap inferred from {_sizes(len(counts))}: {hi / MiB:.3g} MB"
    return DEFAULT_CAP_BYTES, None, "no bucket cap gives this layout with DDP's rule; DDP's default 25 MB assumed"


def _compression(rt: RankTrace, rows: list[BucketStep], grad_dtype: str) -> str | None:
    """fp16/bf16 compression when the buckets' all-reduces carry a narrower type than the gradients."""
    dts = {c.dtype for c in rt.collectives if ops.family(c.op) == ops.ALL_REDUCE and c.step in {r.step for r in rows}}
    if grad_dtype == "float32" and dts == {"float16"}:
        return "fp16"
    if grad_dtype == "float32" and dts == {"bfloat16"}:
        return "bf16"
    return None
