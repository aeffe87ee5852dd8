"""nn.DataParallel's calls (Broadcast, Scatter, Gather, ReduceAddCoalesced) and the GPU work each launched."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from .. import intervals as iv
from ..model import DPCall, DPWork
from .scan import CpuRec, Scan
from .shapes import tensor_bytes
from .steps import StepOf
from .threads import ThreadIndex

GpuWork = tuple[int, int, int, int, str, int]  # start, end, correlation, device, kind, bytes
Launched = Sequence[tuple[CpuRec, list[GpuWork]]]


def launched(sc: Scan) -> list[tuple[CpuRec, list[GpuWork]]]:
    """Each nn.DataParallel call with the GPU work it launched (``sc.dp_gpu`` entries, matched by correlation
    to a launch inside the call on the same thread), in time order."""
    idx = ThreadIndex(sc.dp_ops)
    gpu: dict[int, list[GpuWork]] = defaultdict(list)
    for g in sc.dp_gpu:
        la = sc.launches.get(g[2])
        call = idx.enclosing(la[1], la[0]) if la is not None else None
        if call is not None:
            gpu[id(call)].append(g)
    return [(r, gpu.get(id(r), [])) for r in sorted(sc.dp_ops, key=lambda r: r.start)]


def kernel_bytes(calls: Launched) -> dict[int, int]:
    """Bytes per device of the NCCL kernels nn.DataParallel launched (correlation -> bytes): a Broadcast sends
    its tensors to every device; a ReduceAddCoalesced takes one replica's share from each."""
    out: dict[int, int] = {}
    for call, work in calls:
        corrs = [g[2] for g in work if g[4] == "nccl"]
        total = tensor_bytes(call.args)
        if not corrs or not total:
            continue
        each = total // len(corrs) if call.name == "ReduceAddCoalesced" else total
        for c in corrs:
            out[c] = each
    return out


def dp_calls(calls: Launched, attribute: StepOf) -> tuple[DPCall, ...]:
    """nn.DataParallel's calls with the GPU work launched inside each."""
    if not calls:
        return ()
    steps = attribute(np.array([r.start for r, _ in calls], dtype=np.int64))
    return tuple(DPCall(r.name, r.start, r.end, int(st), tensor_bytes(r.args),
                        tuple(DPWork(dev, start, end, kind, nb) for start, end, _c, dev, kind, nb in work))
                 for (r, work), st in zip(calls, steps, strict=True))


def device_busy(sc: Scan, kernel_steps: np.ndarray) -> dict[int, dict[int, int]]:
    """Per step and device: the union of compute-kernel time (``kernel_steps``: each kernel's step)."""
    if not sc.comp_s:
        return {}
    cs = np.array(sc.comp_s, dtype=np.int64)
    ce = np.array(sc.comp_e, dtype=np.int64)
    dev = np.array(sc.comp_dev, dtype=np.int64)
    out: dict[int, dict[int, int]] = defaultdict(dict)
    for s_ in np.unique(kernel_steps[kernel_steps >= 0]).tolist():
        for d in np.unique(dev).tolist():
            m = (kernel_steps == s_) & (dev == d)
            if m.any():
                out[int(s_)][int(d)] = int(iv.length(iv.union(cs[m], ce[m])))
    return dict(out)
