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


def op_names(sc: Scan, device_kind: str) -> OpNames | None:
    names = tuple(sc.op_ids)  # ids in first-seen order
    if device_kind == "cuda":
        if not sc.comp_n:
            return None
        return OpNames(names, np.array(sc.comp_n, dtype=np.int64).reshape(1, -1))
    skip = gloo_threads(sc)
    parts: list[np.ndarray] = []
    for k, (tid, (s, e)) in enumerate(sc.cpu_ops.items()):
        ids = sc.cpu_names.get(tid, [])
        if tid in skip or len(ids) != len(s):
            continue
        parts.append(np.array([ids, s, e, [k] * len(s)], dtype=np.int64).reshape(4, -1))
    if not parts:
        return None
    return OpNames(names, np.concatenate(parts, axis=1))
