"""``nn.DataParallel``: one process drives every GPU, and each step moves data through the first one.

What a step of DataParallel does (torch/nn/parallel/data_parallel.py, _functions.py, torch/cuda/comm.py), and
how it shows in a trace (each autograd function is recorded under its class name, with its tensors' shapes):

- ``Scatter``: the input batch is split and copied to every device (``Memcpy PtoP`` from device 0, or
  ``Memcpy HtoD`` from the host);
- ``Broadcast`` (replicate): every parameter and buffer is copied from device 0 to the others, every step
  (NCCL ``Broadcast`` kernels on each device, or peer copies without NCCL);
- the replicas run forward in Python threads;
- ``Gather``: the outputs are copied to device 0 (``Memcpy PtoP``), where the loss is computed;
- backward: ``GatherBackward`` scatters the output gradients again, and ``BroadcastBackward`` calls
  ``ReduceAddCoalesced``, which sums every replica's gradients onto device 0 (NCCL ``Reduce`` kernels) after
  the replicas' backward passes — nothing overlaps it;
- the optimizer then runs on device 0 alone.

commprof counts those transfers as communication (bytes from the calls' tensor arguments; time = the GPU work
each call launched, and the host time of the call), per phase and step, and estimates what
DistributedDataParallel would take instead: no scatter, broadcast or gather (each process loads its own batch
and keeps its replica), and the gradient reduction replaced by an all-reduce that overlaps backward except for
its last bucket.  The all-reduce is costed at twice the measured reduce (a ring all-reduce moves twice a ring
reduce's bytes per GPU).  This is an estimate, and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import intervals as iv
from ..model import DPCall, RankTrace

PHASES = ("Scatter", "Broadcast", "Gather", "ReduceAddCoalesced")
DDP_BUCKET_BYTES = 25 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class DPPhase:
    name: str
    calls_per_step: float
    bytes_per_step: int  # the calls' tensor arguments
    copied_bytes_per_step: int  # bytes of the device copies they launched
    host_ms: float  # the calls' own time on the host
    gpu_ms: float  # union of the GPU work they launched
    busy_ms: float  # union of host and GPU time


@dataclass(frozen=True, slots=True, kw_only=True)
class DataParallelStat:
    rank: int
    devices: tuple[int, ...]
    steps: int
    step_ms: float
    phases: tuple[DPPhase, ...]
    overhead_ms: float  # union of every DataParallel transfer (host and GPU) per step
    device_busy_ms: dict[int, float]  # median compute per device and step
    grad_bytes: int  # what ReduceAddCoalesced reduced per step (all replicas' gradients / replicas)
    ddp_step_ms: float | None
    ddp_allreduce_ms: float | None
    ddp_exposed_ms: float | None


def _spans(cs: list[DPCall]) -> tuple[iv.Span, iv.Span]:
    """The calls' own host time, and the GPU work they launched, as unions of intervals."""
    host = iv.union([c.start_ns for c in cs], [c.end_ns for c in cs])
    gpu = iv.union([g.start_ns for c in cs for g in c.gpu], [g.end_ns for c in cs for g in c.gpu])
    return host, gpu


def dataparallel(rt: RankTrace, step_ms: float | None = None) -> DataParallelStat | None:
    """None when the trace holds no DataParallel call."""
    calls = [c for c in rt.dp_calls if c.step >= 0]
    if not calls:
        return None
    steps = sorted({s.number for s in rt.steps} & {c.step for c in calls})
    if not steps:
        return None
    devices = sorted({g.device for c in calls for g in c.gpu if g.device >= 0} | set(
        d for per in rt.device_busy.values() for d in per))
    durations = {s.number: s.duration_ns for s in rt.steps}
    step = step_ms if step_ms else float(np.median([durations[s] for s in steps])) / 1e6
    phases = []
    for name in PHASES:
        mine = [c for c in calls if c.name == name]
        if not mine:
            continue
        per_host, per_gpu, per_busy, per_bytes, per_copied = [], [], [], [], []
        for s in steps:
            cs = [c for c in mine if c.step == s]
            host, gpu = _spans(cs)
            per_host.append(iv.length(host))
            per_gpu.append(iv.length(gpu))
            per_busy.append(iv.length(iv.combine(host, gpu)))
            per_bytes.append(sum(c.bytes or 0 for c in cs))
            per_copied.append(sum(g.bytes for c in cs for g in c.gpu))
        phases.append(DPPhase(name, len(mine) / len(steps), int(np.median(per_bytes)), int(np.median(per_copied)),
                              float(np.median(per_host)) / 1e6, float(np.median(per_gpu)) / 1e6,
                              float(np.median(per_busy)) / 1e6))
    overhead = [iv.length(iv.combine(*_spans([c for c in calls if c.step == s]))) for s in steps]
    overhead_ms = float(np.median(overhead)) / 1e6
    busy = {d: float(np.median([rt.device_busy.get(s, {}).get(d, 0) for s in steps])) / 1e6 for d in devices}
    n = max(len(devices), 1)
    red = next((p for p in phases if p.name == "ReduceAddCoalesced"), None)
    grad_bytes = red.bytes_per_step // n if red is not None and red.bytes_per_step else 0
    ddp_step = allreduce = exposed = None
    if red is not None and red.gpu_ms > 0 and n > 1:
        allreduce = 2.0 * red.gpu_ms
        last_share = min(1.0, DDP_BUCKET_BYTES / grad_bytes) if grad_bytes else 1.0
        exposed = allreduce * last_share
        ddp_step = max(step - overhead_ms + exposed, 0.0)
    return DataParallelStat(rank=rt.rank, devices=tuple(devices), steps=len(steps), step_ms=step, phases=tuple(phases),
                            overhead_ms=overhead_ms, device_busy_ms=busy, grad_bytes=grad_bytes, ddp_step_ms=ddp_step,
                            ddp_allreduce_ms=allreduce, ddp_exposed_ms=exposed)
