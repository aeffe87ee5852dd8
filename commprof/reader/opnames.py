"""The names of a rank's compute (``OpNames``): each compute kernel's name (GPU traces), or every operator on the
training threads with its span and thread (CPU traces; gloo's worker threads left out, as from the compute lane)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..model import OpNames
from .comm import classify as cl
from .scan import Scan


def gloo_threads(sc: Scan) -> set[Any]:
    """gloo's worker threads: they run collectives (send/recv run on the calling, training thread)."""
    tids = {t for t, n in sc.threads.items() if cl.is_gloo_thread(n)}
    return tids | ({r.tid for r in sc.transfers} - set(sc.cpu_ops))


def _ids(names: list[str], table: dict[str, int]) -> np.ndarray:
    get = table.setdefault
    return np.fromiter((get(n, len(table)) for n in names), dtype=np.int32, count=len(names))


def op_names(sc: Scan, device_kind: str) -> OpNames | None:
    table: dict[str, int] = {}
    if device_kind == "cuda":
        if not sc.comp_n:
            return None
        gpu_ids = _ids(sc.comp_n, table)  # fills the table
        return OpNames(tuple(table), gpu_ids.astype(np.int64).reshape(1, -1))
    skip = gloo_threads(sc)
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    threads: list[np.ndarray] = []
    for k, (tid, (s, e)) in enumerate(sc.cpu_ops.items()):
        names = sc.cpu_names.get(tid, [])
        if tid in skip or len(names) != len(s):
            continue
        starts.append(np.array(s, dtype=np.int64))
        ends.append(np.array(e, dtype=np.int64))
        ids.append(_ids(names, table))
        threads.append(np.full(len(s), k, dtype=np.int32))
    if not starts:
        return None
    cols = np.stack([np.concatenate(ids).astype(np.int64), np.concatenate(starts), np.concatenate(ends),
                     np.concatenate(threads).astype(np.int64)])
    return OpNames(tuple(table), cols)
