"""What commprof's capture recorded beside a Kineto trace (``rank{R}.commprof.json``), as typed records.

The reader (``commprof.reader.sidecar``) parses the file once, through the schema the capture writes
(``commprof.formats.sidecar``); analyses read these records, never the raw JSON.  Times are on the trace's
clock (integer ns).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..units import param_bytes
from .fsdp import FSDPSettings
from .rates import ProbeRates


@dataclass(frozen=True, slots=True)
class ParamInfo:
    """One parameter that requires a gradient, in ``named_parameters()`` order."""

    name: str
    numel: int
    dtype: str  # torch's name: "float32", "bfloat16", ...
    shape: tuple[int, ...] | None  # None: not recorded (older sidecars)

    @property
    def bytes(self) -> int:
        """Bytes of its gradient."""
        return param_bytes(self.numel, self.dtype)


@dataclass(frozen=True, slots=True, kw_only=True)
class DDPSettings:
    """DistributedDataParallel's settings as the traced model had them."""

    bucket_cap_mb: float | None
    bucket_bytes_cap: int | None
    first_bucket_bytes: int | None
    gradient_as_bucket_view: bool | None
    static_graph: bool | None
    find_unused_parameters: bool | None
    broadcast_buffers: bool | None
    hook: str  # the comm hook's name ("allreduce (DDP's built-in hook)" when none was registered)
    hook_matrix_rank: int | None  # PowerSGD's matrix_approximation_rank, when the hook state has one
    hook_registered: bool | None
    recording: str
    process_group_size: int | None
    params: tuple[ParamInfo, ...]
    process_group_ranks: tuple[int, ...] = ()  # its members' global ranks (older sidecars: unknown, empty)

    @property
    def grad_bytes(self) -> int:
        return sum(p.bytes for p in self.params)

    @property
    def compression(self) -> str | None:
        """The traced hook as the DDP replay names compression: torch's fp16/bf16/PowerSGD hooks by name."""
        if "fp16_compress" in self.hook:
            return "fp16"
        if "bf16_compress" in self.hook:
            return "bf16"
        if "powerSGD" in self.hook and self.hook_matrix_rank:
            return f"powersgd:{self.hook_matrix_rank}"
        return None


@dataclass(frozen=True, slots=True)
class BucketLayout:
    """One DDP bucket layout: parameter names and element counts of each bucket, by bucket index."""

    layout_id: int
    buckets: tuple[tuple[tuple[str, int], ...], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class BucketEvent:
    """One gradient bucket in one step, times on the trace clock."""

    step: int
    index: int
    numel: int
    bytes: int
    dtype: str
    is_last: bool
    layout_id: int
    ready_ns: int | None  # last parameter of the bucket got its gradient
    hook_ns: int  # DDP called the comm hook
    launch_ns: int  # the hook returned: the collective was launched
    observed: bool = False  # no hook (DDP's built-in all-reduce): hook/launch are the ready time


@dataclass(frozen=True, slots=True)
class StepTime:
    """Wall time of one training step as seen by ``prof.step()``, profiled or not."""

    number: int
    start_ns: int
    end_ns: int
    profiled: bool
    # over the step: busy time of the CPUs the rank may run on, and the rank's own CPU time (threads and child
    # processes); None where not recorded (``commprof.capture.hostload``)
    host_busy_ns: int | None = None
    cpu_ns: int | None = None
    # over the step: the time the training loop's thread ran, and waited ready to run for a CPU (the scheduler's
    # account; None where not recorded)
    sched_run_ns: int | None = None
    sched_wait_ns: int | None = None
    # the elements of the tensors the model's calls received in the step (its inputs' size; None: not recorded)
    input_elems: int | None = None


@dataclass(frozen=True, slots=True)
class ModuleCall:
    """One call of a recorded module (``trace(modules=...)``), times on the trace clock."""

    step: int
    name: str
    fwd_start_ns: int
    fwd_end_ns: int
    bwd_start_ns: int | None
    bwd_end_ns: int | None
    out_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Sidecar:
    """``rank{R}.commprof.json``: what commprof recorded beside the Kineto trace."""

    path: str
    schema: str
    run_id: str
    rank: int
    world_size: int
    backend: str | None
    versions: dict[str, Any]
    device: str
    ddp: DDPSettings | None
    layouts: tuple[BucketLayout, ...]
    buckets: tuple[BucketEvent, ...]
    step_times: tuple[StepTime, ...]
    param_ready: dict[int, dict[str, int]] = field(default_factory=dict)  # step -> name -> ns
    warnings: tuple[str, ...] = ()
    module_order: tuple[str, ...] = ()
    module_calls: tuple[ModuleCall, ...] = ()
    rates: ProbeRates | None = None  # the capture's rate probe (absent in older sidecars, or with probe=False)
    fsdp: FSDPSettings | None = None  # FSDP2's units and settings (a fully_shard model was traced)
    exports: tuple[tuple[int, int], ...] = ()  # when this rank exported its trace (trace clock): peers waited then
    host: str | None = None  # the host's name
    cpus: tuple[int, ...] | None = None  # the CPUs this rank may run on
    net_ns: str | None = None  # the rank's network stack, "<boot id>/<namespace inode>" (Linux; None: not recorded)
    env: dict[str, str] | None = None  # the variables that change how fast a job runs (None: not recorded)
