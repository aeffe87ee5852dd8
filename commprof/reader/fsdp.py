"""FSDP2's record functions: ``FSDP::<phase> (<unit>)``, ``FSDP::<phase>`` (the root), ``FSDP::backward_prefetch
for <unit>``; the unit is the module's name relative to the root, as FSDP2 prints it."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from .. import intervals as iv
from ..model import FSDPEvent
from .comm.classify import FSDP_PREFIX

_WITH_UNIT = re.compile(r"^(\w+) \((.*)\)$")
_FOR_UNIT = re.compile(r"^(\w+) for (.*)$")


def parse_name(name: str) -> tuple[str, str] | None:
    """(phase, unit) of one record function's name; None when it is not FSDP2's."""
    if not name.startswith(FSDP_PREFIX):
        return None
    rest = name[len(FSDP_PREFIX):].strip()
    m = _WITH_UNIT.match(rest) or _FOR_UNIT.match(rest)
    if m:
        return m.group(1), m.group(2).strip()
    return (rest, "") if re.fullmatch(r"\w+", rest) else None


# the phases in which FSDP2's main thread blocks on a collective (on CPU the all-gather's wait is inside its record
# function, the reduce-scatter's inside post_backward_reduce, or rs_wait when it ran asynchronously): time in them
# that no operator of their own covers is waiting
WAITING_PHASES = ("all_gather", "post_backward_reduce", "post_backward_rs_wait")


def waits(raw: list[tuple[int, int, str, Any]], ops: dict[Any, tuple[list[int], list[int]]]) -> dict[Any, iv.Span]:
    """Per thread, the time FSDP2 waited for a collective: its waiting phases minus the operators that started
    inside them (the operators that contain them, such as the autograd node running FSDP's hook, are not work
    there)."""
    out: dict[Any, tuple[list[int], list[int]]] = {}
    by_start: dict[Any, tuple[np.ndarray, np.ndarray]] = {}  # each thread's operators, sorted by start, once
    for start, end, name, tid in raw:
        p = parse_name(name)
        if p is None or p[0] not in WAITING_PHASES or end <= start:
            continue
        if tid not in by_start:
            s0, e0 = (np.array(x, np.int64) for x in ops.get(tid, ([], [])))
            order = np.argsort(s0, kind="stable")
            by_start[tid] = (s0[order], e0[order])
        s, e = by_start[tid]
        i, j = np.searchsorted(s, start, "left"), np.searchsorted(s, end, "left")  # started inside [start, end)
        busy = iv.union(s[i:j], e[i:j])
        idle = iv.subtract(iv.as_span([start], [end]), busy)
        acc = out.setdefault(tid, ([], []))
        acc[0].extend(idle[0].tolist())
        acc[1].extend(idle[1].tolist())
    return {t: (np.array(a, np.int64), np.array(b, np.int64)) for t, (a, b) in out.items()}


def events(raw: list[tuple[int, int, str, Any]]) -> tuple[FSDPEvent, ...]:
    out = []
    for start, end, name, _tid in raw:
        p = parse_name(name)
        if p is not None:
            out.append(FSDPEvent(p[0], p[1], start, end))
    out.sort(key=lambda e: (e.start_ns, -e.end_ns))
    return tuple(out)
