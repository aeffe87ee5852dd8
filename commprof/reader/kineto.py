"""One Kineto chrome trace -> ``RankTrace``: the scan's lists assembled into lanes, collectives, steps.

GPU kernels split into compute and communication, memcpy/memset, launches (for step attribution and for linking
a kernel to the CPU call that issued it), ``ProfilerStep#N`` spans, the CPU records of collectives and, for
CPU-only traces, the operators that count as compute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson

from .. import intervals as iv
from ..errors import InputError
from ..formats import keys as K
from ..model import GradEvents, HostTransfers, Lane, ProcessGroup, RankTrace
from ..units import canonical_dtype
from . import dataparallel as dp
from . import matmuls
from .comm import classify as cl
from .comm.collectives import collectives
from .comm.commrules import CommRules
from .decode.document import Document
from .fsdp import events as fsdp_events
from .fsdp import waits as fsdp_waits
from .memory import allocs as al
from .memory.memline import live_line
from .opnames import gloo_threads, op_names
from .scan import Scan, scan
from .shapes import first_type
from .steps import StepOf, profiler_steps


def parse_document(path: Path, doc: Document, rank_hint: int | None = None,
                   rules: CommRules | None = None) -> RankTrace:
    """Turn a read chrome-trace document into a ``RankTrace``; ``rules``: which kernels are communication (the
    built-in table when None).  The events are scanned first: a streamed document's keys after the event list are
    known only then."""
    warnings: list[str] = []
    sc = scan(doc.events, rules)
    di = doc.info
    rank = di.get(K.DI_RANK) if isinstance(di.get(K.DI_RANK), int) else rank_hint
    if rank is None:
        rank = 0
        warnings.append(f"{path.name}: no rank in distributedInfo or the file name; taken as rank 0")
    world = di.get(K.DI_WORLD) if isinstance(di.get(K.DI_WORLD), int) else None
    backend = di.get(K.DI_BACKEND) if isinstance(di.get(K.DI_BACKEND), str) else None
    base = doc.base_time_ns
    base_ns = base if isinstance(base, int) and not isinstance(base, bool) and 0 <= base < 2**63 else 0
    pgs = _process_groups(di)
    devices, device_memory = _devices(doc.device_properties)
    warnings.extend(doc.warnings)
    for why, n in sorted(sc.skipped.items()):
        warnings.append(f"{path.name}: skipped {n:,} events ({why})")
    usable = sc.n_events - sum(sc.skipped.values())
    if usable <= 0 and not sc.steps:
        why = ", ".join(f"{n:,} {k}" for k, n in sorted(sc.skipped.items())) or "the event list is empty"
        raise InputError(path, f"no usable trace events ({why})")

    if not _pytorch_events(sc) and not di and doc.device_properties is None and doc.base_time_ns is None:
        raise InputError(path, "a Chrome trace without PyTorch events (no ProfilerStep, no cpu_op, no GPU kernel, no "
                               "distributedInfo): not a torch.profiler trace")
    steps = profiler_steps(sc, warnings, path)
    device_kind = "cuda" if (sc.comp_s or sc.comm_kernels) else "cpu"
    attribute = StepOf(steps)
    lanes = _Lanes(sc, attribute)
    compute = lanes.gpu(sc.comp_s, sc.comp_e, sc.comp_corr) if device_kind == "cuda" \
        else _cpu_compute_lane(sc, attribute)
    memcpy = lanes.gpu(sc.mem_s, sc.mem_e, sc.mem_corr)
    launched = dp.launched(sc) if sc.dp_ops else []
    colls, comm_s, comm_e, comm_issue = collectives(sc, device_kind, attribute, world, pgs, warnings, path,
                                                    launched, rank=rank)
    comm = Lane(comm_s, comm_e, lanes.step_of(comm_issue, comm_s), comm_issue)
    memory_line, memory_peak, per_step = _memory(sc, colls, steps)
    return RankTrace(rank=rank, world_size=world, backend=backend, path=str(path), device_kind=device_kind,
                     devices=devices, base_time_ns=base_ns, steps=steps, compute=compute, comm=comm,
                     memcpy=memcpy, collectives=tuple(colls), process_groups=pgs, sidecar=None,
                     warnings=tuple(warnings), event_count=sc.n_events, transfers=_host_transfers(sc, lanes),
                     memory_peak=memory_peak, device_memory=device_memory,
                     elementwise=np.array([sc.ew_bytes, sc.ew_ns, sc.ew_fresh], dtype=np.int64).reshape(3, -1),
                     products=tuple(sc.products), fsdp=fsdp_events(sc.fsdp), memory_line=memory_line,
                     dp_calls=dp.dp_calls(launched, attribute),
                     device_busy=dp.device_busy(sc, compute.step) if sc.dp_ops else {},
                     grads=_grads(sc, attribute), alloc_calls=al.alloc_calls(sc.allocs, attribute),
                     step_allocs=per_step, marks=al.marks(sc.marks),
                     host=doc.host_name if isinstance(doc.host_name, str) else None,
                     nccl_version=nccl if isinstance(nccl := di.get(K.DI_NCCL_VERSION), str) else None,
                     stepless=not sc.steps, op_names=op_names(sc, device_kind),
                     model_parts=cl.model_parts(sc.op_ids), matrix_flops=matmuls.per_step(sc.matmuls, attribute.one))


def _memory(sc: Scan, colls: list, steps: tuple) -> tuple[dict, dict, tuple]:
    """Each device's memory timeline and peaks (the CPU's from its live blocks, ``memline``) and the [memory]
    events of each profiled step (``allocs``)."""
    memory_line, memory_peak = dict(sc.memory_line), dict(sc.memory)
    for dev, blocks in sc.memory_blocks.items():
        if dev.startswith("cpu") and blocks.shape[1]:  # the CPU allocator's totals drift (memline); CUDA's do not
            memory_line[dev] = line = live_line(blocks, colls)
            memory_peak[dev] = (max(0, int(line[1].max())), memory_peak.get(dev, (0, 0))[1])
    per_step = al.step_allocs(sc.memory_blocks, memory_line, steps)
    if not sc.fsdp and not sc.grads:
        memory_line = {}  # only the training what-ifs read the timeline: not carried (nor handed over) without them
    return memory_line, memory_peak, per_step


def _pytorch_events(sc: Scan) -> bool:
    """Whether the scan met anything torch.profiler records: steps, operators, GPU work, collectives."""
    return bool(sc.steps or sc.cpu_ops or sc.cpu_excl or sc.comp_s or sc.comm_kernels or sc.mem_s or sc.launches
                or sc.transfers or any(sc.calls.values()) or sc.fsdp or sc.dp_ops)


class _Lanes:
    """GPU work attributed to the step whose CPU side launched it."""

    def __init__(self, sc: Scan, attribute: StepOf) -> None:
        self.launches, self.attribute = sc.launches, attribute

    def launch_time(self, corrs: list[int]) -> np.ndarray:
        """When the CPU launched each GPU event; -1 where the trace lacks the launch."""
        la = self.launches
        missing = (-1, None)
        return np.array([la.get(c, missing)[0] for c in corrs], dtype=np.int64)

    def step_of(self, launch: np.ndarray, start: np.ndarray) -> np.ndarray:
        return self.attribute(np.where(launch >= 0, launch, start))

    def gpu(self, starts: list[int], ends: list[int], corrs: list[int]) -> Lane:
        s = np.array(starts, dtype=np.int64)
        launch = self.launch_time(corrs)
        return Lane(s, np.array(ends, dtype=np.int64), self.step_of(launch, s), launch)


def _host_transfers(sc: Scan, lanes: _Lanes) -> HostTransfers:
    pg_s = np.array([p[0] for p in sc.pageable], dtype=np.int64)
    pg_e = np.array([p[1] for p in sc.pageable], dtype=np.int64)
    pg_l = lanes.launch_time([p[2] for p in sc.pageable])
    sy_s = np.array([p[0] for p in sc.syncs], dtype=np.int64)
    syncs = Lane(sy_s, np.array([p[1] for p in sc.syncs], dtype=np.int64), lanes.attribute(sy_s), sy_s)
    return HostTransfers(Lane(pg_s, pg_e, lanes.step_of(pg_l, pg_s), pg_l),
                         np.array([p[3] for p in sc.pageable], dtype=np.int64),
                         np.array([p[4] for p in sc.pageable], dtype=bool), syncs)


def _grads(sc: Scan, attribute: StepOf) -> GradEvents | None:
    """AccumulateGrad events in time order, with the gradients' shapes and dtypes where recorded."""
    if not sc.grads:
        return None
    order = sorted(range(len(sc.grads)), key=lambda i: sc.grads[i][0])
    starts = np.array([sc.grads[i][0] for i in order], dtype=np.int64)
    shapes: list[tuple[int, ...] | None] = []
    dtypes: list[str] = []
    for i in order:
        a = sc.grad_shapes[i] if i < len(sc.grad_shapes) else {}
        dims = a.get(K.A_INPUT_DIMS)
        first = dims[0] if isinstance(dims, list) and dims else None
        if isinstance(first, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in first):
            shapes.append(tuple(first))
        else:
            shapes.append(None)
        dtypes.append(canonical_dtype(first_type(a)))
    return GradEvents(starts, np.array([sc.grads[i][1] for i in order], dtype=np.int64), attribute(starts),
                      tuple(shapes), tuple(dtypes))


def _devices(props: Any) -> tuple[tuple[str, ...], dict[str, int]]:
    """GPU names and total memory (``cuda:N`` -> bytes) from ``deviceProperties``."""
    ds = [d for d in props or [] if isinstance(d, dict)] if isinstance(props, list) else []
    names = tuple(str(d.get(K.DP_NAME)) for d in ds if d.get(K.DP_NAME))
    total = {f"cuda:{d.get(K.DP_ID)}": int(d[K.DP_TOTAL_MEM]) for d in ds
             if isinstance(d.get(K.DP_TOTAL_MEM), int) and not isinstance(d.get(K.DP_TOTAL_MEM), bool)}
    return names, total


def _process_groups(di: dict[str, Any]) -> tuple[ProcessGroup, ...]:
    out = []
    cfg = di.get(K.DI_PG_CONFIG)
    if isinstance(cfg, list):
        for pg in cfg:
            if not isinstance(pg, dict):
                continue
            ranks = pg.get(K.PG_RANKS)
            if isinstance(ranks, str):
                try:
                    ranks = orjson.loads(ranks)
                except orjson.JSONDecodeError:
                    ranks = []
            ranks_t = tuple(r for r in ranks if isinstance(r, int)) if isinstance(ranks, list) else ()
            out.append(ProcessGroup(str(pg.get(K.PG_NAME, "?")), str(pg.get(K.PG_DESC, "")), ranks_t))
    return tuple(out)


def _cpu_compute_lane(sc: Scan, attribute: StepOf) -> Lane:
    """Per training thread: union(cpu ops) minus union(bookkeeping and waits, FSDP2's waits for its collectives
    included); then all threads."""
    gloo_tids = gloo_threads(sc)
    parts_s, parts_e = [], []
    waiting = fsdp_waits(sc.fsdp, sc.cpu_ops) if sc.fsdp else {}
    for tid, (s, e) in sc.cpu_ops.items():
        if tid in gloo_tids:
            continue
        span = iv.union(s, e)
        excl = sc.cpu_excl.get(tid)
        if excl:
            span = iv.subtract(span, (np.array(excl[0], np.int64), np.array(excl[1], np.int64)))
        if tid in waiting:
            span = iv.subtract(span, waiting[tid])
        parts_s.append(span[0])
        parts_e.append(span[1])
    if parts_s:
        s_arr = np.concatenate(parts_s)
        e_arr = np.concatenate(parts_e)
    else:
        s_arr = e_arr = np.zeros(0, np.int64)
    return Lane(s_arr, e_arr, attribute(s_arr), s_arr)
