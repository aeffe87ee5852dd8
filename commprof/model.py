"""Typed model of a traced run.

Everything here is a frozen record.  Times are integer nanoseconds on the rank's own trace clock
(Kineto ``ts`` x 1000); ``RankTrace.base_time_ns`` added to a trace time gives Unix time.
Interval lanes are numpy column arrays, never lists of Python objects, so that a trace with
millions of kernels stays small in memory.
"""

from __future__ import annotations

import shutil
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


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


class SpillDir:
    """A temporary folder of spilled arrays, removed when the last object that reads from it is gone (or at
    exit).  ``load()`` makes one per run it spills."""

    __slots__ = ("path", "_fin", "__weakref__")

    def __init__(self, path: str) -> None:
        self.path = path
        self._fin = weakref.finalize(self, shutil.rmtree, path, True)


class SpilledArray:
    """An int64 array kept in an ``.npy`` file and memory-mapped on each ``get()``: only the pages a caller
    touches are read, and they are released with the array it got.  Pickles by reference to its file (the
    map step hands it to the cross-rank step so), valid on the same machine while its ``SpillDir`` lives."""

    __slots__ = ("path", "shape", "owner")

    def __init__(self, path: str, shape: tuple[int, ...], owner: SpillDir | None = None) -> None:
        self.path = path
        self.shape = shape
        self.owner = owner

    def get(self) -> np.ndarray:
        import numpy as np

        return np.asarray(np.load(self.path, mmap_mode="r"))

    def __reduce__(self):
        return SpilledArray, (self.path, self.shape)


class SpilledLane(Lane):
    """A ``Lane`` whose columns live in a ``SpilledArray`` (4 x n: start, end, step, launch), for runs too large
    to keep every rank's intervals in the cross-rank step's memory.  Reads like a ``Lane``."""

    __slots__ = ("data",)
    data: SpilledArray

    def __init__(self, data: SpilledArray) -> None:
        object.__setattr__(self, "data", data)

    @property  # type: ignore[override]
    def start_ns(self) -> np.ndarray:
        return self.data.get()[0]

    @property  # type: ignore[override]
    def end_ns(self) -> np.ndarray:
        return self.data.get()[1]

    @property  # type: ignore[override]
    def step(self) -> np.ndarray:
        return self.data.get()[2]

    @property  # type: ignore[override]
    def launch_ns(self) -> np.ndarray:
        return self.data.get()[3]

    def __len__(self) -> int:
        return int(self.data.shape[1])

    def __repr__(self) -> str:
        return f"SpilledLane({len(self)} intervals in {self.data.path})"

    def __reduce__(self):
        return SpilledLane, (self.data,)


@dataclass(frozen=True, slots=True)
class Step:
    """One ``ProfilerStep#N`` span on the CPU."""

    number: int
    start_ns: int
    end_ns: int

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


@dataclass(frozen=True, slots=True)
class Collective:
    """One collective or point-to-point call as this rank saw it.

    ``issue_ns`` is when the CPU called it (``record_param_comms`` / ``c10d::*``), ``start_ns`` and
    ``end_ns`` when it ran (the NCCL kernel, or the gloo transfer on its worker thread).  Either side
    may be missing: a world-size-1 NCCL job launches no kernel; a kernel can lack its CPU record.
    ``bytes`` follows DESIGN.md: max(in, out) elements x element size.
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


@dataclass(frozen=True, slots=True)
class BucketLayout:
    """One DDP bucket layout: parameter names and element counts of each bucket, by bucket index."""

    layout_id: int
    buckets: tuple[tuple[tuple[str, int], ...], ...]


@dataclass(frozen=True, slots=True)
class BucketEvent:
    """One gradient bucket in one step, from the sidecar, times on the trace clock."""

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


@dataclass(frozen=True, slots=True)
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
    ddp: dict[str, Any] | None
    layouts: tuple[BucketLayout, ...]
    buckets: tuple[BucketEvent, ...]
    step_times: tuple[StepTime, ...]
    param_ready: dict[int, dict[str, int]] = field(default_factory=dict)  # step -> name -> ns
    warnings: tuple[str, ...] = ()
    module_order: tuple[str, ...] = ()
    module_calls: tuple[ModuleCall, ...] = ()


@dataclass(frozen=True, slots=True)
class DPCall:
    """One call of an ``nn.DataParallel`` autograd function (Broadcast, Scatter, Gather, ReduceAddCoalesced)
    and the GPU work it launched: NCCL kernels and device copies, each ``(device, start, end, kind, bytes)``."""

    name: str
    start_ns: int
    end_ns: int
    step: int  # -1 outside every step
    bytes: int | None  # its tensor arguments (Input Dims x dtype); None without record_shapes
    gpu: tuple[tuple[int, int, int, str, int], ...]


@dataclass(frozen=True, slots=True)
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
    # copies between the GPU and pageable host memory (a staging copy, synchronous for the host), with their
    # bytes and direction, and host-side synchronizing runtime calls (cudaStreamSynchronize, ...)
    pageable: Lane | None = None
    pageable_bytes: np.ndarray | None = None
    pageable_htod: np.ndarray | None = None
    host_syncs: Lane | None = None
    # with profile_memory=True: device ("cuda:0", "cpu:-1") -> (peak allocated, peak reserved) bytes
    memory_peak: dict[str, tuple[int, int]] = field(default_factory=dict)
    device_memory: dict[str, int] = field(default_factory=dict)  # "cuda:N" -> total bytes (deviceProperties)
    # CPU traces: bytes/s of one element-wise pass, the median over the run's large element-wise operators
    # (copy_, add_, mul, ...); the advisor costs compression casts and PowerSGD's matrix work with it
    elementwise_bps: float | None = None
    # nn.DataParallel (one process driving several GPUs): its calls, and per step and device the union of
    # compute-kernel time (device -> ns), for the imbalance DataParallel causes on its first device
    dp_calls: tuple[DPCall, ...] = ()
    device_busy: dict[int, dict[int, int]] = field(default_factory=dict)
    # the per-rank analyses, computed in the map step for the steps it was given (a
    # ``commprof.analysis.digest.RankDigest``); None when ``load()`` kept the lanes in memory
    digest: Any = None

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

    def rank(self, r: int) -> RankTrace:
        for t in self.ranks:
            if t.rank == r:
                return t
        raise KeyError(f"rank {r} is not in this run (ranks: {[t.rank for t in self.ranks]})")
