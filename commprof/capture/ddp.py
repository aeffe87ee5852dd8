"""Recording DDP buckets.

Without a user hook commprof only observes: DDP keeps its built-in all-reduce; while the profiler records,
post-accumulate-grad hooks time each parameter's gradient and, at the end of each step, DDP's logging data
gives the bucket layout (launch and done times come from the trace).  DDP accepts one comm hook, so when the
user has their own (``comm_hook=``) commprof registers a thin wrapper that calls it and records, per step and
bucket: index, elements, dtype, is_last, the parameters (names and sizes), when DDP called the hook and when
the hook returned.  Outside the active window the wrapper only forwards.  Recording never raises into
training: a failure disables recording with a warning.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from ..formats import sidecar as F
from ..units import MiB, param_bytes
from ..warn import warn
from .groups import group_ranks, group_size

_now = time.time_ns  # the Kineto trace's clock is Unix time (checked in tests)


def _recording_hook(rec, bucket):  # no annotations: DDP checks that they are GradBucket / Future
    if not rec.active:
        return rec.inner(rec.inner_state, bucket)
    t_hook = _now()
    fut = rec.inner(rec.inner_state, bucket)
    t_launch = _now()
    try:
        rec.record(bucket, t_hook, t_launch)
    except Exception as e:  # never break training because of recording
        rec.fail(e)
    return fut


class DDPRecorder:
    def __init__(self, ddp: Any, comm_hook: Callable | None = None, comm_state: Any = None) -> None:
        self.model = ddp
        self.active = False
        self.step = 0
        self.failed = False
        self.process_group = getattr(ddp, "process_group", None)
        # Without a user hook commprof only observes: DDP keeps its built-in C++ all-reduce (no extra pass
        # over the buckets, nothing changed outside the profiled window); the bucket layout comes from DDP's
        # own logging data and the launch times from the trace.  With a user hook commprof must register
        # (DDP takes one hook) and wraps it, recording each bucket as DDP hands it over.
        self.observe_only = comm_hook is None
        self.inner: Callable | None = comm_hook
        self.inner_state: Any = comm_state
        self.hook_name = ("allreduce (DDP's built-in hook)" if comm_hook is None
                          else getattr(comm_hook, "__qualname__", repr(comm_hook)))
        module = getattr(ddp, "module", ddp)
        self.names: dict[int, str] = {id(p): n for n, p in module.named_parameters()}
        # [name, elements, dtype, shape]: the shape tells the advisor which gradients PowerSGD compresses
        self.params = [(n, p.numel(), str(p.dtype).replace("torch.", ""), list(p.shape))
                       for n, p in module.named_parameters() if p.requires_grad]
        self.events: list[dict[str, Any]] = []
        self.layouts: dict[tuple, int] = {}
        self._step_buckets: dict[int, tuple[tuple[str, int], ...]] = {}
        self._step_events: list[dict[str, Any]] = []
        self.param_ready: dict[int, dict[str, int]] = {}
        self._grad_handles: list[Any] = []
        self.installed = False

    # -- installation ---------------------------------------------------------------------------
    def install(self) -> str | None:
        """Register the hook (user hooks only); returns a warning text instead of raising when it cannot."""
        if getattr(self.model, "_use_python_reducer", False):  # torch._dynamo.config.optimize_ddp = "python_reducer"
            if self.inner is not None:  # the user's hook, as without commprof (that reducer calls it per gradient)
                self.model.register_comm_hook(self.inner_state, self.inner)
            return ("DDP runs under compiled autograd's Python reducer, which skips DDP's buckets: bucket layouts "
                    "are not recorded (the trace alone is analyzed)" + (
                        "; your comm_hook is registered on the model as it is without commprof"
                        if self.inner is not None else ""))
        if self.observe_only:
            if not hasattr(self.model, "_get_ddp_logging_data"):
                return "this torch's DDP has no logging data: bucket layouts are not recorded"
            self.installed = True
            return None
        check = getattr(self.model, "_check_comm_hook", None)
        if self.inner is not None and check is not None:
            # torch's own refusal of the user's hook (bf16_compress_hook without NCCL 2.10+): raised as it would be
            # without commprof, whose recording hook DDP checks instead (a job it cannot run must not run traced)
            check(self.inner)
        try:
            self.model.register_comm_hook(self, _recording_hook)
        except Exception as e:
            return (f"commprof could not register its DDP comm hook ({e}); buckets are not recorded. "
                    "If the model already has a hook, pass it as commprof.trace(..., comm_hook=hook) instead")
        self.installed = True
        return None

    def set_grad_hooks(self, on: bool) -> None:
        """Post-accumulate-grad hooks (gradient ready times) only while recording."""
        if not on:
            for h in self._grad_handles:
                h.remove()
            self._grad_handles.clear()
            return
        if self._grad_handles or not self.installed:
            return
        module = getattr(self.model, "module", self.model)
        for name, p in module.named_parameters():
            if p.requires_grad and hasattr(p, "register_post_accumulate_grad_hook"):
                self._grad_handles.append(p.register_post_accumulate_grad_hook(self._make_ready_hook(name)))

    def _make_ready_hook(self, name: str) -> Callable[[torch.Tensor], None]:
        def hook(_p: torch.Tensor) -> None:
            if self.active:
                self.param_ready.setdefault(self.step, {})[name] = _now()
        return hook

    # -- recording ------------------------------------------------------------------------------
    def record(self, bucket: Any, t_hook: int, t_launch: int) -> None:
        idx = int(bucket.index())
        buf = bucket.buffer()
        params = bucket.parameters()
        self._step_buckets[idx] = tuple((self.names.get(id(p), f"<unnamed {i}>"), int(p.numel()))
                                        for i, p in enumerate(params))
        self._step_events.append({
            F.B_STEP: self.step, F.B_INDEX: idx, F.B_NUMEL: int(buf.numel()),
            F.B_BYTES: int(buf.numel() * buf.element_size()), F.B_DTYPE: str(buf.dtype).replace("torch.", ""),
            F.B_IS_LAST: bool(bucket.is_last()), F.B_HOOK: t_hook, F.B_LAUNCH: t_launch,
        })

    def fail(self, e: Exception) -> None:
        if not self.failed:
            warn(f"commprof: bucket recording stopped ({type(e).__name__}: {e})", stacklevel=2)
        self.failed = True
        self.active = False

    def _observe_step(self) -> None:
        """Observe-only mode: the step's buckets from DDP's logging data and the gradients' ready times."""
        ready = self.param_ready.get(self.step)
        if not ready:
            return
        try:
            data = self.model._get_ddp_logging_data()
        except Exception as e:  # a private API: never fail training over it
            self.fail(e)
            return
        groups = self._groups(data)
        if groups is None:
            return
        for i, group in enumerate(groups):
            members = [self.params[j] for j in group if j < len(self.params)]
            self._step_buckets[i] = tuple((n, numel) for n, numel, *_ in members)
            numel = sum(m[1] for m in members)
            dt = members[0][2] if members else "float32"
            times = [ready[m[0]] for m in members if m[0] in ready]
            t = max(times) if times else 0
            self._step_events.append({F.B_STEP: self.step, F.B_INDEX: i, F.B_NUMEL: numel,
                                      F.B_BYTES: param_bytes(numel, dt), F.B_DTYPE: dt, F.B_IS_LAST: False,
                                      F.B_HOOK: t, F.B_LAUNCH: t, F.B_OBSERVED: True})
        if self._step_events:
            self._step_events[-1][F.B_IS_LAST] = True

    def _groups(self, data: dict[str, Any]) -> list[list[int]] | None:
        """Each bucket's parameter indices: DDP's rebuilt layout; with find_unused_parameters=True, which never
        rebuilds, its initial layout from the buckets' sizes; None while the layout is provisional (DDP rebuilds
        its buckets after the first iteration) or where the sizes do not tile the parameters."""
        idx = data.get("rebuilt_per_bucket_param_indices")
        if isinstance(idx, str) and idx.strip():
            return [[int(j) for j in g.split()] for g in idx.split(",")]
        if data.get("has_rebuilt_buckets") or not data.get("find_unused_parameters"):
            return None
        sizes = data.get("bucket_sizes")
        return initial_groups(sizes, self.params) if isinstance(sizes, str) else None

    def end_step(self) -> None:
        """Close the current step: settle its bucket layout and the buckets' ready times.  Never raises:
        a failure disables recording with a warning."""
        try:
            self._end_step()
        except Exception as e:
            self.fail(e)
            self._step_events = []

    def _end_step(self) -> None:
        if self.observe_only and self.active and not self.failed:
            self._observe_step()
        if self._step_events:
            layout = tuple(self._step_buckets[i] for i in sorted(self._step_buckets))
            lid = self.layouts.setdefault(layout, len(self.layouts))
            ready = self.param_ready.get(self.step, {})
            for ev in self._step_events:
                ev[F.B_LAYOUT] = lid
                names = [n for n, _ in self._step_buckets.get(ev[F.B_INDEX], ())]
                times = [ready[n] for n in names if n in ready]
                if names and len(times) == len(names):
                    # the grad hook of the bucket's last parameter may run just after DDP's own hook
                    ev[F.B_READY] = min(max(times), ev[F.B_HOOK])
            self.events.extend(self._step_events)
        self._step_events = []
        self._step_buckets = {}
        self.step += 1

    def settings(self) -> dict[str, Any]:
        m = self.model
        cap = getattr(m, "bucket_bytes_cap", None)
        first = getattr(dist, "_DEFAULT_FIRST_BUCKET_BYTES", None)
        return {
            F.BUCKET_CAP_MB: cap / MiB if isinstance(cap, (int, float)) else None,
            F.BUCKET_BYTES_CAP: cap,
            F.FIRST_BUCKET_BYTES: first,
            F.GRADIENT_AS_BUCKET_VIEW: getattr(m, "gradient_as_bucket_view", None),
            F.STATIC_GRAPH: getattr(m, "static_graph", None),
            F.FIND_UNUSED_PARAMETERS: getattr(m, "find_unused_parameters", None),
            F.BROADCAST_BUFFERS: getattr(m, "broadcast_buffers", None),
            F.HOOK: self.hook_name,
            # PowerSGD's rank, when the hook state has one (the advisor replays the traced hook)
            F.HOOK_MATRIX_RANK: getattr(self.inner_state, "matrix_approximation_rank", None),
            F.HOOK_REGISTERED: self.installed and not self.observe_only,
            F.RECORDING: "observed (DDP logging data + gradient hooks)" if self.observe_only else "comm hook",
            F.PROCESS_GROUP_SIZE: group_size(self.process_group),
            F.PROCESS_GROUP_RANKS: group_ranks(self.process_group),
            F.PARAMS: [list(p) for p in self.params],
        }

    def layouts_json(self) -> list[dict[str, Any]]:
        return [{F.LAYOUT_ID: lid, F.LAYOUT_BUCKETS: [[list(p) for p in b] for b in layout]}
                for layout, lid in self.layouts.items()]


def initial_groups(sizes: str, params: list[tuple[str, int, str, list[int]]]) -> list[list[int]] | None:
    """DDP's initial bucket layout from its logging data's ``bucket_sizes`` ("1024, 526336, ..." bytes, bucket 0
    first): DDP fills its buckets with the parameters in reverse order (the gradients' usual ready order), so the
    sizes cut that order into consecutive runs.  None where they do not (several dtypes or devices interleaved)."""
    try:
        want = [int(x) for x in sizes.split(",") if x.strip()]
    except ValueError:
        return None
    order = list(range(len(params)))[::-1]
    out: list[list[int]] = []
    k = 0
    for size in want:
        group, got = [], 0
        while k < len(order) and got < size:
            _name, numel, dt, _shape = params[order[k]]
            got += param_bytes(numel, dt)
            group.append(order[k])
            k += 1
        if got != size:
            return None
        out.append(group)
    return out if k == len(order) and out else None
