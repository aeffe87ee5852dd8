"""The scan: one pass over a trace's events that keeps what the analysis needs, in plain lists.

``_scan_batch`` is the hot loop, and long on purpose: it is the only code that touches every event (millions in a
large trace), so the common cases are inlined — the classification looked up once per distinct name, times
converted without a call, and the args of the bulk categories (runtime calls, compute kernels, ``[memory]``
events, element-wise operators) collected raw and decoded after the loop in one call per slice.  Everything
else it does is one append per event.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..formats import keys as K
from ..model import ThinProduct
from ..units import float_size, us_to_ns
from .comm import classify as cl
from .comm.commrules import CommRule, CommRules
from .decode.document import Batches
from .decode.events import I64_MIN, IDS_LIST, U64_MAX, Ev, args_of, as_event, bulk, ids_of, product_shapes_of
from .decode.events import shapes_of as _shapes_of
from .decode.events import time_number as _num
from .matmuls import counted
from .memory.memevents import MemoryEvents
from .products import thin_products
from .shapes import first_type, numel_of_dims

_TS_LIMIT_US = 9.0e15  # beyond this, (ts + dur) * 1000 no longer fits in int64 nanoseconds
MIN_ELEMENTWISE_BYTES = 1 << 20  # smaller operators measure per-operator overhead, not memory


@dataclass
class CpuRec:
    """A CPU-side event that takes part in a collective (or in nn.DataParallel)."""

    start: int
    end: int
    tid: Any
    name: str
    args: dict[str, Any]


@dataclass(kw_only=True)
class Scan:
    threads: dict[Any, str] = field(default_factory=dict)
    steps: dict[int, tuple[int, int]] = field(default_factory=dict)
    comp_s: list[int] = field(default_factory=list)
    comp_e: list[int] = field(default_factory=list)
    comp_corr: list[int] = field(default_factory=list)
    comp_dev: list[int] = field(default_factory=list)  # device of each compute kernel
    mem_s: list[int] = field(default_factory=list)
    mem_e: list[int] = field(default_factory=list)
    mem_corr: list[int] = field(default_factory=list)
    # communication kernels: start, end, name, correlation, args, the rule that matched (commrules)
    comm_kernels: list[tuple[int, int, str, int, dict[str, Any], CommRule]] = field(default_factory=list)
    launches: dict[int, tuple[int, Any]] = field(default_factory=dict)  # correlation -> (time, thread)
    calls: dict[str, list[CpuRec]] = field(default_factory=lambda: defaultdict(list))  # rpc / annotation / c10d
    transfers: list[CpuRec] = field(default_factory=list)  # gloo:*
    cpu_ops: dict[Any, tuple[list[int], list[int]]] = field(default_factory=dict)  # thread -> starts, ends
    cpu_excl: dict[Any, tuple[list[int], list[int]]] = field(default_factory=dict)
    op_ids: dict[str, int] = field(default_factory=dict)  # operator / kernel name -> its id (first-seen order)
    cpu_names: dict[Any, list[int]] = field(default_factory=dict)  # thread -> each cpu_ops entry's name id
    comp_n: list[int] = field(default_factory=list)  # each compute kernel's name id
    pageable: list[tuple[int, int, int, int, bool]] = field(default_factory=list)  # start, end, corr, bytes, HtoD
    syncs: list[tuple[int, int]] = field(default_factory=list)  # host-side synchronizing runtime calls
    mem_events: MemoryEvents = field(default_factory=MemoryEvents)  # [memory] over the slices
    memory: dict[str, tuple[int, int]] = field(default_factory=dict)  # device -> peak allocated, reserved
    memory_line: dict[str, np.ndarray] = field(default_factory=dict)  # device -> 2 x n: time, allocated (bucket max)
    memory_blocks: dict[str, np.ndarray] = field(default_factory=dict)  # CPU device -> 3 x n: time, Addr, Bytes
    ew_bytes: list[int] = field(default_factory=list)  # large element-wise CPU operators: bytes of one pass
    ew_ns: list[int] = field(default_factory=list)  # and their durations
    ew_fresh: list[int] = field(default_factory=list)  # and whether each wrote a fresh tensor (1) or in place (0)
    products: list[ThinProduct] = field(default_factory=list)  # thin matrix products (PowerSGD's)
    # every matrix product whose shapes were recorded (``matmuls``): start, end, thread, floating-point operations
    matmuls: list[tuple[int, int, Any, float]] = field(default_factory=list)
    # FSDP2's record functions: start, end, name, thread
    fsdp: list[tuple[int, int, str, Any]] = field(default_factory=list)
    grads: list[tuple[int, int, Any]] = field(default_factory=list)  # AccumulateGrad: start, end, thread
    grad_shapes: list[dict[str, Any]] = field(default_factory=list)  # and its Input Dims / Input type
    allocs: list[tuple[int, int, str]] = field(default_factory=list)  # the allocator's runtime calls: start, end, name
    marks: list[tuple[int, int, str]] = field(default_factory=list)  # optimizer steps, empty_cache: start, end, name
    dp_ops: list[CpuRec] = field(default_factory=list)  # nn.DataParallel's autograd functions
    # GPU transfers DataParallel may launch: start, end, correlation, device, kind, bytes
    dp_gpu: list[tuple[int, int, int, int, str, int]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    n_events: int = 0


def scan(events: list[Any] | Batches, rules: CommRules | None = None) -> Scan:
    sc = Scan()
    kinds: dict[str, int] = {}  # operator names repeat: classify each once
    rules = rules if rules is not None else CommRules()
    for batch in (events.it if isinstance(events, Batches) else (events,)):
        _scan_batch(sc, batch, kinds, rules)
        del batch  # before the next slice is decoded: one slice's events alive at a time
    me = sc.mem_events
    sc.memory, sc.memory_line, sc.memory_blocks = me.peaks, me.lines(), me.blocks()
    return sc


def _scan_batch(sc: Scan, events: list[Any], kinds: dict[str, int], rules: CommRules) -> None:
    skipped = sc.skipped
    comm_rule = rules.match
    cpu_ops, cpu_excl = sc.cpu_ops, sc.cpu_excl
    comp_s, comp_e, comp_n, cpu_names, op_ids = sc.comp_s, sc.comp_e, sc.comp_n, sc.cpu_names, sc.op_ids
    # events whose args are read in bulk after the loop (one decode call for all of them, see events.bulk)
    rt_args: list[Any] = []
    rt_launch: list[tuple[int, Any]] = []
    kn_args: list[Any] = []
    kn_pid: list[Any] = []
    mem_raw: list[Any] = []
    mem_ts: list[Any] = []
    ew_args: list[Any] = []
    ew_ns: list[int] = []
    ew_names: list[str] = []
    pr_args: list[Any] = []
    pr_ns: list[int] = []
    gr_args: list[Any] = []
    mm_args: list[Any] = []
    mm_recs: list[tuple[int, int, Any, str]] = []
    n_complete = 0
    for ev in events:
        if type(ev) is not Ev:
            if not isinstance(ev, dict):
                skipped["not an object"] += 1
                continue
            ev = as_event(ev)  # a document decoded by orjson (or built by hand)
        ph = ev.ph
        if ph != K.PH_COMPLETE:
            if ph == K.PH_META:
                if ev.name == K.META_THREAD_NAME:
                    a = args_of(ev.args)
                    if isinstance(a.get(K.A_NAME), str):
                        # a thread may be named twice ("python", then "pt_gloo_runloop"): keep both
                        prev = sc.threads.get(ev.tid, "")
                        sc.threads[ev.tid] = (prev + " " + a[K.A_NAME]).strip()
            elif ph == K.PH_INSTANT and ev.name == K.MEMORY_EVENT:
                mem_raw.append(ev.args)
                mem_ts.append(ev.ts)
            continue
        n_complete += 1
        name = ev.name
        if type(name) is not str:
            skipped["no name"] += 1
            continue
        ts, dur = ev.ts, ev.dur
        tt, td = type(ts), type(dur)
        # the common case inline (plain numbers in range; NaN and infinities fail the comparisons)
        if (tt is int or tt is float) and (td is int or td is float) and ts >= 0 and dur >= 0 \
                and ts + dur <= _TS_LIMIT_US:  # the end too fits in int64 ns
            start = ts * 1000 if tt is int else us_to_ns(ts)
            end = start + (dur * 1000 if td is int else us_to_ns(dur))
        else:
            ts, dur = _num(ts), _num(dur)
            if ts is None or dur is None:
                skipped["no valid ts/dur"] += 1
            else:
                skipped["negative or out-of-range ts/dur"] += 1
            continue
        cat = ev.cat
        if cat == K.CAT_CPU_OP:
            kind = kinds.get(name)
            if kind is None:
                kind = kinds[name] = cl.cpu_kind(name)
            if kind >= cl.EXCLUDED:
                if kind == cl.EXCLUDED:
                    _add_cpu(cpu_excl, ev.tid, start, end)
                else:
                    _add_cpu(cpu_ops, ev.tid, start, end)
                    _add_name(cpu_names, ev.tid, op_ids.setdefault(name, len(op_ids)))
                if kind == cl.ELEMENTWISE:
                    if end > start:
                        ew_args.append(ev.args)
                        ew_ns.append(end - start)
                        ew_names.append(name)
                elif kind == cl.MATMUL:
                    mm_args.append(ev.args)
                    mm_recs.append((start, end, ev.tid, name))
                elif kind == cl.PRODUCT:
                    pr_args.append(ev.args)
                    pr_ns.append(end - start)
                    mm_args.append(ev.args)
                    mm_recs.append((start, end, ev.tid, name))
                elif kind == cl.DATAPARALLEL:
                    sc.dp_ops.append(CpuRec(start, end, ev.tid, name, args_of(ev.args)))
                elif kind == cl.ACCUMULATE_GRAD:
                    sc.grads.append((start, end, ev.tid))
                    gr_args.append(ev.args)
                continue
        elif cat == K.CAT_RUNTIME or cat == K.CAT_DRIVER:
            rt_args.append(ev.args)
            rt_launch.append((start, ev.tid))
            if name in cl.SYNC_RUNTIME:
                sc.syncs.append((start, end))
            if name in cl.ALLOC_RUNTIME:
                sc.allocs.append((start, end, name))
            continue
        elif cat == K.CAT_KERNEL:
            rule = comm_rule(name)
            if rule is not None:
                args = args_of(ev.args)
                corr = args.get(K.A_CORRELATION)
                corr = corr if isinstance(corr, int) else -1
                sc.comm_kernels.append((start, end, name, corr, args, rule))
                sc.dp_gpu.append((start, end, corr, int_or(args.get(K.A_DEVICE), int_or(ev.pid, -1)), "nccl", 0))
            else:
                kn_args.append(ev.args)
                kn_pid.append(ev.pid)
                comp_s.append(start)
                comp_e.append(end)
                comp_n.append(op_ids.setdefault(name, len(op_ids)))
            continue
        elif cat == K.CAT_MEMCPY or cat == K.CAT_MEMSET:
            _memcpy_event(sc, ev, cat, name, start, end)
            continue
        elif cat == K.CAT_GPU_USER_ANNOTATION:
            continue
        else:
            kind = kinds.get(name)
            if kind is None:
                kind = kinds[name] = cl.cpu_kind(name)
            if kind >= cl.EXCLUDED:
                continue  # operators count only as cpu_op events
        # a step, or a collective's CPU-side record, of any CPU category
        if kind == cl.STEP:
            try:
                num = int(name[len(K.STEP_PREFIX):])
            except ValueError:
                skipped["unreadable ProfilerStep number"] += 1
                continue
            sc.steps.setdefault(num, (start, end))
        elif kind == cl.GLOO:
            sc.transfers.append(CpuRec(start, end, ev.tid, name, args_of(ev.args)))
        elif kind == cl.FSDP:
            sc.fsdp.append((start, end, name, ev.tid))
        elif kind == cl.MARK:
            sc.marks.append((start, end, name))
            if cat == K.CAT_CPU_OP:
                _add_cpu(cpu_ops, ev.tid, start, end)  # an operator all the same
                _add_name(cpu_names, ev.tid, op_ids.setdefault(name, len(op_ids)))
        elif kind == cl.RPC:
            sc.calls["rpc"].append(CpuRec(start, end, ev.tid, name, args_of(ev.args)))
        elif kind == cl.NCCL:
            sc.calls["annotation"].append(CpuRec(start, end, ev.tid, name, args_of(ev.args)))
        else:  # cl.C10D
            sc.calls["c10d"].append(CpuRec(start, end, ev.tid, name, args_of(ev.args)))
            _add_cpu(cpu_excl, ev.tid, start, end)
    sc.n_events += n_complete
    _launches(sc, rt_args, rt_launch)
    _kernel_ids(sc, kn_args, kn_pid)
    sc.mem_events.add(mem_raw, mem_ts)
    _elementwise(sc, ew_args, ew_ns, ew_names)
    if pr_args:
        sc.products.extend(thin_products(pr_args, pr_ns))
    if gr_args:
        sc.grad_shapes.extend(_shapes_of(gr_args))
    if mm_args:
        sc.matmuls.extend(counted(mm_recs, product_shapes_of(mm_args)))


def int_or(v: Any, default: int) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else default


def _add_cpu(table: dict[Any, tuple[list[int], list[int]]], tid: Any, s: int, e: int) -> None:
    lst = table.get(tid)
    if lst is None:
        lst = table[tid] = ([], [])
    lst[0].append(s)
    lst[1].append(e)


def _add_name(table: dict[Any, list[int]], tid: Any, name_id: int) -> None:
    lst = table.get(tid)
    if lst is None:
        lst = table[tid] = []
    lst.append(name_id)


def _launches(sc: Scan, raws: list[Any], launch: list[tuple[int, Any]]) -> None:
    """Runtime calls by correlation id: when and on which thread the CPU launched GPU work."""
    if not raws:
        return
    got = bulk(raws, IDS_LIST)
    corrs = [ids_of(a)[0] for a in raws] if got is None else [i.correlation for i in got]
    launches = sc.launches
    for c, la in zip(corrs, launch, strict=True):
        if type(c) is int and I64_MIN <= c <= U64_MAX:  # beyond 64 bits orjson gives a float: not an id
            launches[c] = la


def _kernel_ids(sc: Scan, raws: list[Any], pids: list[Any]) -> None:
    """Correlation id (-1 without) and device (else the event's pid, else -1) of each compute kernel."""
    if not raws:
        return
    got = bulk(raws, IDS_LIST)
    ids = [ids_of(a) for a in raws] if got is None else [(i.correlation, i.device) for i in got]
    corr_out, dev_out = sc.comp_corr, sc.comp_dev
    for (c, d), pid in zip(ids, pids, strict=True):
        if type(c) is int:
            if not I64_MIN <= c <= U64_MAX:
                c = -1
        elif type(c) is not bool:
            c = -1
        corr_out.append(c)
        dev_out.append(d if type(d) is int and I64_MIN <= d <= U64_MAX else (pid if type(pid) is int else -1))


def _elementwise(sc: Scan, raws: list[Any], durations: list[int], names: list[str]) -> None:
    """The large element-wise operators: bytes of one memory pass over their first input, their durations, and
    whether they wrote a fresh tensor."""
    if not raws:
        return
    for a, ns, name in zip(_shapes_of(raws), durations, names, strict=True):
        nb = elementwise_bytes(a)
        if nb:
            sc.ew_bytes.append(nb)
            sc.ew_ns.append(ns)
            dims = a.get(K.A_INPUT_DIMS)
            sc.ew_fresh.append(int(cl.writes_fresh(name, len(dims) if isinstance(dims, list) else 0)))


def elementwise_bytes(args: dict[str, Any]) -> int | None:
    dims = args.get(K.A_INPUT_DIMS)
    if not isinstance(dims, list) or not dims:
        return None
    numel = numel_of_dims(dims[0])
    size = float_size(first_type(args))
    if numel is None or size is None or numel * size < MIN_ELEMENTWISE_BYTES:
        return None
    return numel * size


def _memcpy_event(sc: Scan, ev: Ev, cat: str, name: str, start: int, end: int) -> None:
    args = args_of(ev.args)
    corr = args.get(K.A_CORRELATION)
    corr = corr if isinstance(corr, int) else -1
    sc.mem_s.append(start)
    sc.mem_e.append(end)
    sc.mem_corr.append(corr)
    if cat == K.CAT_MEMCPY and (name.startswith("Memcpy PtoP") or name.startswith("Memcpy DtoD")
                                or name.startswith("Memcpy HtoD")):
        nb = args.get(K.A_BYTES)
        mdev = int_or(args.get(K.A_DEVICE, args.get(K.A_IN_DEVICE)), -1)
        sc.dp_gpu.append((start, end, corr, mdev, name.split(" ")[1],
                          nb if isinstance(nb, int) and nb >= 0 else 0))
    if cat == K.CAT_MEMCPY and "Pageable" in name:
        nb = args.get(K.A_BYTES)
        sc.pageable.append((start, end, corr, nb if isinstance(nb, int) and nb >= 0 else 0, "HtoD" in name))
