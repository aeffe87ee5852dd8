"""Typed model of a traced run.

Everything here is a frozen record.  Times are integer nanoseconds on the rank's own trace clock
(Kineto ``ts`` x 1000); ``RankTrace.base_time_ns`` added to a trace time gives Unix time.
Interval lanes are numpy column arrays, never lists of Python objects, so that a trace with
millions of kernels stays small in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from .alloc import AllocCalls, Mark, StepAllocs
from .fsdp import FSDPEvent
from .rates import ThinProduct

if TYPE_CHECKING:
    import numpy as np

    from .sidecar import Sidecar


@dataclass(frozen=True, slots=True)
class Lane:
    """A set of intervals ``[start_ns, end_ns)`` with the step each one is attributed to.

    ``step`` holds the ``ProfilerStep#N`` number the interval belongs to, or -1 when it falls
    outside every step.  GPU work belongs to the step whose CPU side launched it: ``launch_ns`` is
    when the CPU launched (or issued) each interval's work (its own start for CPU work, -1 where the
    trace lacks the launch; such work is attributed by its own start).
    """

    start_ns: np.ndarray  # int64
    end_ns: np.ndarray  # int64
    step: np.ndarray  # int64, -1 = outside every step
    launch_ns: np.ndarray  # int64

    def __len__(self) -> int:
        return int(self.start_ns.shape[0])


@dataclass(frozen=True, slots=True)
class Step:
    """One ``ProfilerStep#N`` span on the CPU."""

    number: int
    start_ns: int
    end_ns: int

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


@dataclass(frozen=True, slots=True, kw_only=True)
class Collective:
    """One collective or point-to-point call as this rank saw it.

    ``issue_ns`` is when the CPU called it (``record_param_comms`` / ``c10d::*``), ``start_ns`` and
    ``end_ns`` when it ran (the NCCL kernel, or the gloo transfer on its worker thread).  Either side
    may be missing: a world-size-1 NCCL job launches no kernel; a kernel can lack its CPU record.
    ``op`` is the torch operation the user called (``commprof.ops``); ``bytes`` is max(in, out) elements x
    element size, 0 with ``size_known`` False where the trace does not say (no record_param_comms sizes and no
    Input Dims).
    """

    op: str
    process_group: str
    group_size: int
    dtype: str
    bytes: int
    issue_ns: int | None
    start_ns: int | None
    end_ns: int | None
    step: int
    seq: int | None = None
    name: str = ""
    lane: str = ""
    algorithm: str | None = None
    protocol: str | None = None
    size_known: bool = True
    via: str = ""  # what carried it out: "NCCL", "gloo", "DeepEP", ... (the rule that matched its kernels)
    peer: int | None = None  # send: its destination, recv: its source (a rank of its process group), where recorded

    @property
    def duration_ns(self) -> int:
        if self.start_ns is None or self.end_ns is None:
            return 0
        return self.end_ns - self.start_ns


@dataclass(frozen=True, slots=True)
class ProcessGroup:
    name: str
    description: str
    ranks: tuple[int, ...]


class DPWork(NamedTuple):
    """GPU work an ``nn.DataParallel`` call launched: an NCCL kernel or a device copy."""

    device: int
    start_ns: int
    end_ns: int
    kind: str  # "nccl" or the copy's kind (HtoD, DtoD, ...)
    bytes: int


@dataclass(frozen=True, slots=True)
class DPCall:
    """One call of an ``nn.DataParallel`` autograd function (Broadcast, Scatter, Gather, ReduceAddCoalesced)
    and the GPU work it launched."""

    name: str
    start_ns: int
    end_ns: int
    step: int  # -1 outside every step
    bytes: int | None  # its tensor arguments (Input Dims x dtype); None without record_shapes
    gpu: tuple[DPWork, ...]


@dataclass(frozen=True, slots=True)
class OpNames:
    """The names of a rank's compute.  ``cols`` (int64): GPU traces, 1 x n, the name id of each compute kernel
    (aligned with ``RankTrace.compute``); CPU traces, 4 x n, every operator on the training threads: name id, start,
    end, thread (numbered in first-seen order; nested operators each, outer ones included: ``commprof.analysis``
    takes each instant's innermost).  ``names[id]``.  ``cols`` may be a ``SpilledArray`` (``commprof.engine.spill``)."""

    names: tuple[str, ...]
    cols: Any  # np.ndarray, or a SpilledArray read with .get()

    def columns(self) -> np.ndarray:
        c = self.cols
        return c.get() if hasattr(c, "get") else c

    @property
    def per_operator(self) -> bool:
        """CPU: each row an operator with its own span (else: one id per compute kernel)."""
        return int(self.cols.shape[0]) == 4


@dataclass(frozen=True, slots=True)
class HostTransfers:
    """GPU traces: copies between the GPU and pageable host memory (a staging copy, synchronous for the host),
    with their bytes and direction, and host-side synchronizing runtime calls (cudaStreamSynchronize, ...)."""

    pageable: Lane
    pageable_bytes: np.ndarray  # int64, one per pageable copy
    pageable_htod: np.ndarray  # bool, host to device
    host_syncs: Lane


@dataclass(frozen=True, slots=True)
class GradEvents:
    """The autograd engine's gradient accumulations (``torch::autograd::AccumulateGrad``), one per parameter and
    backward pass, in time order: when each ran on the CPU, the step it belongs to, and, with ``record_shapes``,
    the gradient's shape and dtype (None / "unknown" without)."""

    start_ns: np.ndarray  # int64
    end_ns: np.ndarray  # int64
    step: np.ndarray  # int64
    shapes: tuple[tuple[int, ...] | None, ...]
    dtypes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.start_ns.shape[0])


# the model parts a trace's names can show (``RankTrace.model_parts``): sharded embedding tables, mixture-of-experts
EMBEDDING_TABLES, EXPERTS = "embedding_tables", "experts"


@dataclass(frozen=True, slots=True, kw_only=True)
class RankTrace:
    """Everything the analysis needs from one rank's trace (and sidecar, when there is one)."""

    rank: int
    world_size: int | None
    backend: str | None
    path: str
    device_kind: str  # "cuda" (GPU kernels present) or "cpu"
    devices: tuple[str, ...]
    base_time_ns: int
    steps: tuple[Step, ...]
    compute: Lane
    comm: Lane
    memcpy: Lane
    collectives: tuple[Collective, ...]
    process_groups: tuple[ProcessGroup, ...]
    sidecar: Sidecar | None
    warnings: tuple[str, ...]
    event_count: int = 0
    transfers: HostTransfers | None = None
    # with profile_memory=True: device ("cuda:0", "cpu:-1") -> (peak allocated, peak reserved) bytes
    memory_peak: dict[str, tuple[int, int]] = field(default_factory=dict)
    device_memory: dict[str, int] = field(default_factory=dict)  # "cuda:N" -> total bytes (deviceProperties)
    # the large element-wise CPU operators (copy_, add_, mul, clone, ...): bytes of one pass over the first input,
    # the operator's duration, and 1 where it wrote a fresh tensor (a 3 x n int64 array); the advisor measures
    # memory-pass rates on them
    elementwise: np.ndarray | None = None
    products: tuple[ThinProduct, ...] = ()  # thin matrix products (PowerSGD's bmm), ns per matrix
    fsdp: tuple[FSDPEvent, ...] = ()  # FSDP2's record functions, in start order
    # with profile_memory=True, on ranks running FSDP2: device -> 2 x n int64 (time, allocated bytes), the largest
    # value per 100 µs (CPU: live tensor bytes, reader/memory/memline.py)
    memory_line: dict[str, np.ndarray] = field(default_factory=dict)
    # nn.DataParallel (one process driving several GPUs): its calls, and per step and device the union of
    # compute-kernel time (device -> ns), for the imbalance DataParallel causes on its first device
    dp_calls: tuple[DPCall, ...] = ()
    device_busy: dict[int, dict[int, int]] = field(default_factory=dict)
    grads: GradEvents | None = None  # None: the trace has no AccumulateGrad events
    host: str | None = None  # the machine that recorded the trace (torch >= 2.5 writes it), None where unknown
    nccl_version: str | None = None  # distributedInfo's, where the trace records it
    stepless: bool = False  # no ProfilerStep in the trace: ``steps`` is one span over the whole trace
    alloc_calls: AllocCalls | None = None  # the device allocator's runtime calls (None: the trace has none)
    step_allocs: tuple[StepAllocs, ...] = ()  # per device and profiled step, its [memory] events (profile_memory)
    marks: tuple[Mark, ...] = ()  # the optimizer's steps, empty_cache calls
    op_names: OpNames | None = None  # what the compute was (kernel / operator names), None where not read
    # what its operator / kernel names show the model holds: EMBEDDING_TABLES, EXPERTS (reader.comm.classify)
    model_parts: frozenset[str] = frozenset()
    # per profiled step, the floating-point operations of its matrix products from their recorded shapes
    # (``reader.matmuls``): the work the rank was given; () where the trace records no shapes
    matrix_flops: tuple[tuple[int, float], ...] = ()

    @property
    def first_ns(self) -> int:
        ends = [int(lane.start_ns.min()) for lane in (self.compute, self.comm) if len(lane)]
        ends += [s.start_ns for s in self.steps]
        return min(ends) if ends else 0


@dataclass(frozen=True, slots=True)
class Run:
    """All ranks of one traced job."""

    path: str
    ranks: tuple[RankTrace, ...]
    world_size: int | None
    run_id: str | None
    missing_ranks: tuple[int, ...]
    warnings: tuple[str, ...]
    # lines the report's header shows: the profiler cycle analyzed, ranks present of the world, ranks skipped
    notes: tuple[str, ...] = ()
    # the ranks cannot have run together (or the user asked for per-rank figures only): no cross-rank claim
    per_rank_only: bool = False

    def rank(self, r: int) -> RankTrace:
        for t in self.ranks:
            if t.rank == r:
                return t
        raise KeyError(f"rank {r} is not in this run (ranks: {[t.rank for t in self.ranks]})")
