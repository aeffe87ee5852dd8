"""Collectives: the CPU calls paired with their execution (GPU kernels, or gloo transfers), each described by
op, process group, group size, dtype and bytes (docs/metrics.md: max(in, out) elements x element size)."""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ... import ops
from ...formats import keys as K
from ...model import Collective, ProcessGroup
from ...units import canonical_dtype, dtype_size
from ..dataparallel import Launched, kernel_bytes
from ..scan import CpuRec, Scan, int_or
from ..shapes import first_type, int_arg, numel_from_args
from ..steps import StepOf
from ..threads import ThreadIndex
from . import classify as cl
from .gloo_groups import GROUPS_UNTOLD, call_groups, transfer_groups, untold

# start, end, name, args of a kernel or transfer, and what carried it out: the library whose kernel it is
# (commrules), or "gloo"; its operation where the library's rule says
Exec = tuple[int, int, str, dict[str, Any], str, "str | None"]
GLOO = "gloo"
_NAMED_BY_KERNEL = ("NCCL", "MSCCL (RCCL)")  # libraries whose kernel names say the collective (parse_kernel_name)

MAX_MESSAGE_BYTES = 1 << 48  # 256 TiB: beyond any message a job sends; a claim above it is a broken record

# the families of calls a gloo transfer of one family can carry out
_GLOO_RUNS = {ops.ALL_REDUCE: (ops.ALL_REDUCE, ops.REDUCE_SCATTER)}


@dataclass
class Meta:
    op: str = "unknown"
    pg: str | None = None
    group_size: int | None = None
    dtype: str = "unknown"
    numel: int | None = None
    seq: int | None = None
    pg_ptr: str | None = None
    huge: bool = False  # a size beyond any real message was claimed
    src: int | None = None  # point-to-point: the source and destination rank record_param_comms names
    dst: int | None = None


def meta_from(recs: list[CpuRec]) -> Meta:
    """Collective metadata from the nested CPU records of one call (outermost first).  The operation is the
    outermost record's that names one: the torch call the user made (``c10d::_reduce_scatter_base_``), not what the
    backend runs for it (gloo runs a reduce-scatter as an all-reduce)."""
    m = Meta()
    for r in recs:
        if r.name == K.RPC:
            _from_rpc(m, r.args)
        else:
            if m.op == ops.UNKNOWN:
                m.op = ops.canonical(r.name)
            if m.numel is None or r.name.startswith(("nccl:", "gloo:")):
                n = numel_from_args(r.args)
                if n:
                    m.numel = n
            t = first_type(r.args)
            if t and m.dtype == "unknown":
                m.dtype = canonical_dtype(t)
            if ops.is_p2p(ops.canonical(r.name)) and m.src is None and m.dst is None:
                _p2p_peer(m, ops.canonical(r.name), r.args)
    return m


def _p2p_peer(m: Meta, op: str, a: dict[str, Any]) -> None:
    """``c10d::send(tensors, group, dst, tag)`` / ``c10d::recv_(tensors, group, src, tag)``: the peer (a rank of the
    group) is the third argument's concrete value, where the trace recorded shapes."""
    conc, types = a.get(K.A_CONCRETE), a.get(K.A_INPUT_TYPE)
    if (isinstance(conc, list) and isinstance(types, list) and len(conc) == len(types) == 4
            and types[2] == "Scalar" and isinstance(conc[2], str) and conc[2].isdigit()):
        if op == ops.SEND:
            m.dst = int(conc[2])
        else:
            m.src = int(conc[2])


def _from_rpc(m: Meta, a: dict[str, Any]) -> None:
    """What a ``record_param_comms`` record says, old argument sets included."""
    cn = a.get(K.A_COLL_NAME)
    if isinstance(cn, str) and cn and m.op == ops.UNKNOWN:
        m.op = ops.canonical(cn)
    m.huge = any(_implausible(a.get(k)) for k in (K.A_IN_NELEMS, K.A_OUT_NELEMS))
    nin, nout = int_arg(a, K.A_IN_NELEMS), int_arg(a, K.A_OUT_NELEMS)
    if nin is not None or nout is not None:
        m.numel = max(nin or 0, nout or 0)
    gs = int_arg(a, K.A_GROUP_SIZE)
    if gs:
        m.group_size = gs
    if isinstance(a.get(K.A_DTYPE), str):
        m.dtype = canonical_dtype(a[K.A_DTYPE])
    pg = a.get(K.A_PG_NAME)
    if isinstance(pg, (str, int)) and not isinstance(pg, bool):
        m.pg = str(pg)
    seq = int_arg(a, K.A_SEQ)
    conc = a.get(K.A_CONCRETE)
    types = a.get(K.A_INPUT_TYPE)
    # old record_param_comms(inputs, seq, pg_ptr, rank, name, in_split, out_split, world_size)
    if (isinstance(conc, list) and len(conc) == 8 and isinstance(types, list) and len(types) == 8
            and types[1] == "Scalar" and types[2] == "Scalar"):
        if seq is None and isinstance(conc[1], str) and conc[1].isdigit():
            seq = int(conc[1])
        if isinstance(conc[2], str) and conc[2].isdigit():
            m.pg_ptr = conc[2]
        if m.group_size is None and isinstance(conc[7], str) and conc[7].isdigit():
            m.group_size = int(conc[7]) or None
    if seq is not None:
        m.seq = seq
    m.src, m.dst = int_arg(a, K.A_P2P_SRC), int_arg(a, K.A_P2P_DST)
    if m.numel is None:
        m.numel = numel_from_args(a) or None


def _implausible(v: Any) -> bool:
    """An element count no real message has (more than MAX_MESSAGE_BYTES elements of a byte)."""
    if isinstance(v, str) and v.isdigit():
        v = int(v)
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > MAX_MESSAGE_BYTES


def _primary_calls(sc: Scan) -> tuple[list[CpuRec], list[Meta]]:
    """The CPU record that stands for each call (record_param_comms, else the nccl:* annotation, else the
    c10d::* call), with the metadata of it and the records nested around it."""
    calls = sc.calls
    kind = next((k for k in ("rpc", "annotation", "c10d") if calls.get(k)), None)
    primary = sorted(calls.get(kind, []) if kind else [], key=lambda r: r.start)
    idx_ann = ThreadIndex(calls.get("annotation", []))
    idx_c10d = ThreadIndex(calls.get("c10d", []))
    metas: list[Meta] = []
    for r in primary:
        nest: list[CpuRec] = []
        if kind != "c10d":
            outer = idx_c10d.enclosing(r.tid, r.start)
            if outer is not None:
                nest.append(outer)
        nest.append(r)
        if kind == "rpc":
            inner = idx_ann.within(r.tid, r.start, r.end)
            if inner is not None:
                nest.append(inner)
        metas.append(meta_from(nest))
    return primary, metas


def _executions(sc: Scan, device_kind: str, primary: list[CpuRec], metas: list[Meta]):
    """Each call's execution (kernels launched inside it; or, on gloo, the k-th transfer of an op with the k-th
    call of that op) and the executions no call claims (start, end, name, args, issue time or -1)."""
    exec_of: dict[int, list[Exec]] = defaultdict(list)
    orphans: list[tuple[Exec, int]] = []  # with their launch (issue) time, or -1
    if device_kind == "cuda":
        idx_primary = ThreadIndex(primary)
        pos = {id(r): i for i, r in enumerate(primary)}
        for start, end, name, corr, args, rule in sc.comm_kernels:
            la = sc.launches.get(corr)
            call = idx_primary.enclosing(la[1], la[0]) if la is not None else None
            ex: Exec = (start, end, name, args, rule.library, rule.op)
            if call is None:
                orphans.append((ex, la[0] if la is not None else -1))
            else:
                exec_of[pos[id(call)]].append(ex)
        return exec_of, orphans
    # gloo: a collective's transfer runs on the backend's worker threads, in the order the calls were issued; each
    # transfer belongs to the earliest call still waiting for one whose operation it can carry out (gloo runs a
    # reduce-scatter as an all-reduce), else to the last such call before it (a call run as several transfers:
    # reduce_scatter of a list, all_gather_object)
    waiting: dict[str, deque[int]] = defaultdict(deque)
    for i, m in enumerate(metas):
        waiting[ops.family(m.op)].append(i)
    last: dict[str, int] = {}
    for t in sorted(sc.transfers, key=lambda r: r.start):
        fams = _GLOO_RUNS.get(ops.family(ops.canonical(t.name)), (ops.family(ops.canonical(t.name)),))
        heads = [waiting[f][0] for f in fams if waiting[f] and primary[waiting[f][0]].start <= t.start + 1_000]
        if heads:
            i = min(heads, key=lambda k: primary[k].start)
            waiting[ops.family(metas[i].op)].popleft()
            last[t.name] = i
            exec_of[i].append((t.start, t.end, t.name, t.args, GLOO, None))
        elif t.name in last:
            exec_of[last[t.name]].append((t.start, t.end, t.name, t.args, GLOO, None))
        else:
            orphans.append(((t.start, t.end, t.name, t.args, GLOO, None), t.start))
    return exec_of, orphans


class _Describer:
    """Turns a call's metadata and executions into a ``Collective``, naming process groups consistently."""

    def __init__(self, world: int | None, pgs: tuple[ProcessGroup, ...], attribute: StepOf) -> None:
        self.world, self.attribute = world, attribute
        self.default_pg = pgs[0].name if pgs else "0"
        self.pg_by_name: dict[str, ProcessGroup] = {}
        for p in pgs:
            self.pg_by_name.setdefault(p.name, p)  # the first of a name, as a search in order finds it
        self.ptr_labels: dict[str, str] = {}
        self.huge = 0

    def _group(self, m: Meta) -> str:
        if m.pg is not None:
            return m.pg
        if m.pg_ptr is not None:
            # old traces name a group only by its address, which differs between ranks: label groups by
            # the order of their first use instead (the default group is nearly always used first)
            if m.pg_ptr not in self.ptr_labels:
                self.ptr_labels[m.pg_ptr] = self.default_pg if not self.ptr_labels else f"pg{len(self.ptr_labels)}"
            return self.ptr_labels[m.pg_ptr]
        return self.default_pg

    def collective(self, m: Meta, issue: int | None, execs: list[Exec], issue_for_step: int | None = None):
        pg = self._group(m)
        gsize = m.group_size
        if gsize is None:
            match = self.pg_by_name.get(pg)
            gsize = len(match.ranks) if match and match.ranks else (self.world or 1)
        name = execs[0][2] if execs else ""
        via = execs[0][4] if execs else ""
        algo = proto = None
        if via in _NAMED_BY_KERNEL:
            kop, algo, proto, _dt = cl.parse_kernel_name(name)
            if m.op == ops.UNKNOWN:
                m.op = kop
        elif execs and m.op == ops.UNKNOWN and execs[0][5]:
            m.op = execs[0][5] or ops.UNKNOWN
        nbytes, known = self._bytes(m)
        start = min(e[0] for e in execs) if execs else None
        end = max(e[1] for e in execs) if execs else None
        t_step = issue if issue is not None else (issue_for_step if issue_for_step is not None else start)
        step = self.attribute.one(t_step) if t_step is not None else -1
        lane = ""
        if execs:
            a = execs[0][3]
            lane = f"stream {a[K.A_STREAM]}" if K.A_STREAM in a else "gloo"
        peer = m.dst if m.op == ops.SEND else (m.src if m.op == ops.RECV else None)
        return Collective(op=m.op, process_group=pg, group_size=int(gsize), dtype=m.dtype, bytes=nbytes,
                          issue_ns=issue, start_ns=start, end_ns=end, step=step, seq=m.seq, name=name,
                          lane=lane, algorithm=algo, protocol=proto, size_known=known, via=via, peer=peer)

    def _bytes(self, m: Meta) -> tuple[int, bool]:
        """(bytes, whether they are known): max(in, out) elements x element size; a barrier moves none; sizes
        beyond any real message are left out (and counted, for one warning)."""
        if m.op == ops.BARRIER:
            return 0, True
        size = dtype_size(m.dtype)
        if m.huge or (m.numel is not None and m.numel * size > MAX_MESSAGE_BYTES):
            self.huge += 1
            return 0, False
        if m.numel is None or size == 0:
            return 0, False
        return m.numel * size, True


def _gloo_groups(sc: Scan, pgs: tuple[ProcessGroup, ...], rank: int | None, primary: list[CpuRec],
                 metas: list[Meta], exec_of: dict[int, list[Exec]],
                 warnings: list[str], path: Path) -> dict[tuple[int, int, str], ProcessGroup]:
    """Name the process group of each gloo call the trace leaves unnamed, from the worker threads that ran its
    transfers (gloo_groups); the groups of the transfers, or {} when the threads do not tell them apart (then, where
    the rank belongs to several groups of several ranks, a warning starting ``GROUPS_UNTOLD``)."""
    callers = {r.tid for r in primary if r.tid is not None}
    by_transfer = transfer_groups(sc.transfers, pgs, rank, callers)
    calls = [(m.pg, m.group_size, [(e[0], e[1], e[2]) for e in exec_of.get(i, []) if e[4] == GLOO])
             for i, m in enumerate(metas)]
    found = call_groups(calls, by_transfer) if by_transfer else None
    if found is None:
        if any(m.pg is None for m in metas) and (names := untold(sc.transfers, pgs, rank, callers)):
            warnings.append(f"{path.name}: {GROUPS_UNTOLD} {', '.join(names)} (gloo records no group; its worker "
                            "threads did not show one pool per group): its collectives all read as the default "
                            "group's")
        return {}
    for m, g in zip(metas, found, strict=True):
        if g is not None and m.pg is None:
            m.pg = g.name
            m.group_size = m.group_size or len(g.ranks) or None
    return by_transfer


def collectives(sc: Scan, device_kind: str, attribute: StepOf, world: int | None, pgs: tuple[ProcessGroup, ...],
                warnings: list[str], path: Path, dp_launched: Launched = (), rank: int | None = None):
    """Pair CPU calls with their execution and describe each collective: (collectives in issue order, and the
    start, end and issue time of every execution interval, as arrays)."""
    primary, metas = _primary_calls(sc)
    exec_of, orphans = _executions(sc, device_kind, primary, metas)
    by_transfer = _gloo_groups(sc, pgs, rank, primary, metas, exec_of, warnings, path) \
        if device_kind != "cuda" else {}
    d = _Describer(world, pgs, attribute)
    out: list[Collective] = []
    cs: list[int] = []
    ce: list[int] = []
    ci: list[int] = []
    for i, (r, m) in enumerate(zip(primary, metas, strict=True)):
        execs = exec_of.get(i, [])
        if (m.op == ops.UNKNOWN and not execs) or m.op == "wait":
            continue  # the record_param_comms of a wait(): bookkeeping, not a collective
        if execs:
            ex_meta = meta_from([CpuRec(e[0], e[1], None, e[2], e[3]) for e in execs[:1]])
            if m.numel is None:
                m.numel = ex_meta.numel
            if m.dtype == "unknown":
                m.dtype = ex_meta.dtype
        out.append(d.collective(m, r.start, execs))
        for e in execs:
            cs.append(e[0])
            ce.append(e[1])
            ci.append(r.start)
    dp_bytes = kernel_bytes(dp_launched) if device_kind == "cuda" else {}
    for ex, issue in orphans:
        start, end, name, args, via, rule_op = ex
        m = meta_from([CpuRec(start, end, None, name, args)])
        if via in _NAMED_BY_KERNEL:
            kop, _a, _p, kdt = cl.parse_kernel_name(name)
            m.op = kop
            if m.dtype == "unknown" and kdt:
                m.dtype = kdt
            nb = dp_bytes.get(int_or(args.get(K.A_CORRELATION), -1))
            if nb is not None and m.numel is None:  # launched by nn.DataParallel: its call's tensors say
                m.numel, m.dtype = nb // 4, "float32" if m.dtype == "unknown" else m.dtype
        elif via != GLOO:  # another library's kernel, launched by no collective call: its own group, its rule's op
            m.op, m.pg = rule_op or ops.UNKNOWN, via
        elif (start, end, name) in by_transfer:  # a gloo transfer no call claims: its worker thread's group
            m.pg = by_transfer[(start, end, name)].name
        out.append(d.collective(m, None, [ex], issue_for_step=issue if issue >= 0 else start))
        cs.append(start)
        ce.append(end)
        ci.append(issue)
    if d.huge:
        warnings.append(f"{path.name}: {d.huge} collectives claim sizes beyond {MAX_MESSAGE_BYTES:,} bytes "
                        "(record_param_comms / Input Dims); their sizes were left out")
    nccl_orphans = sum(ex[4] in _NAMED_BY_KERNEL for ex, _ in orphans)
    if nccl_orphans and primary:
        warnings.append(f"{path.name}: {nccl_orphans} communication kernels have no CPU-side record; "
                        "op and dtype taken from the kernel name")
    out.sort(key=lambda c: (c.issue_ns if c.issue_ns is not None else (c.start_ns or 0)))
    return out, np.array(cs, dtype=np.int64), np.array(ce, dtype=np.int64), np.array(ci, dtype=np.int64)
