"""The data of report.html's interactive timeline: every rank on the reference rank's clock, compactly.

Format (``timeline_data``; read by ``assets/timeline.js``), version 1:

- ``q_ns``: the time quantum; every time is an integer number of quanta (1 µs) since ``origin_ns`` (the earliest
  event of the run, Unix ns on the reference rank's clock, as a string: it exceeds a double's integers).
- ``names``: the string table; ``kinds``: distinct collectives ``[op, process group, dtype, bytes, lane, via]`` with
  strings as indexes into ``names``.
- ``ranks``: per rank ``r`` (its number), ``st`` steps ``[number, start, end, ...]`` and interval lists, each
  start delta-encoded (the first against 0, then against the previous start): ``cp`` compute ``[ds, dur]``,
  ``ex`` exposed communication ``[ds, dur]``, ``mc`` memcpy ``[ds, dur]``, ``cm`` collectives
  ``[ds, dur, kind, instance, step]``, ``wt`` waits for the last rank ``[ds, dur, instance]``.
  Compute, exposed and memcpy are unions (overlapping kernels of several streams drawn once).
- ``insts``: per matched collective instance (the same call on every rank of its group) ``[kind, last rank]``;
  a collective's ``instance`` indexes it (-1: not matched across ranks).
- ``path``: the cross-rank critical path when the report has one: ``[rank, start, dur, what]`` segments
  (``what`` into ``names``), empty otherwise.
- ``grid``: per-step variation, ``steps`` (numbers), ``ranks``, and per rank the step time and exposed
  communication of each step in µs (null where the rank lacks the step).
- ``dropped``: how many intervals were left out to stay within ``EVENT_BUDGET`` and below which duration.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import intervals as iv
from ...analysis.analyze import Report
from ...analysis.spans import lane_span, rank_spans
from ...model import RankTrace
from ..palette import ACTIVITY
from ..safe import plain

Q_NS = 1000
EVENT_BUDGET = 600_000  # intervals drawn in all (about 10 bytes each in the page); the shortest go first


class _Strings:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.index: dict[str, int] = {}

    def __call__(self, s: object) -> int:
        text = plain(s, 160)
        if text not in self.index:
            self.index[text] = len(self.items)
            self.items.append(text)
        return self.index[text]


def _delta(starts: np.ndarray, *cols: np.ndarray) -> list[int]:
    """Interleaved ``[start - previous start, col, ...]`` rows, flattened."""
    if not starts.size:
        return []
    ds = np.diff(starts, prepend=0)
    return np.column_stack([ds, *cols]).astype(np.int64).ravel().tolist()


def _quant(span: iv.Span, sh: int) -> tuple[np.ndarray, np.ndarray]:
    """A span's intervals as (start, duration) quanta since the origin, ``sh`` already holding the origin."""
    s, e = span
    qs = (s.astype(np.int64) + sh) // Q_NS
    qe = (e.astype(np.int64) + sh + Q_NS - 1) // Q_NS
    return qs, np.maximum(qe - qs, 1)


def _instances(rep: Report, strings: _Strings) -> tuple[dict[tuple[int, int], int], list[list[int]]]:
    """Each matched instance's id by (rank, aligned end ns), and the ``insts`` table ``[op, last rank]``."""
    ids: dict[tuple[int, int], int] = {}
    insts: list[list[int]] = []
    for g in rep.cross.groups:
        for i in range(g.arrival_ns.shape[0]):
            k = len(insts)
            insts.append([strings(g.ops[i]), int(g.ranks[int(np.argmax(g.arrival_ns[i]))])])
            for j, r in enumerate(g.ranks):
                ids[(r, int(g.end_ns[i, j]))] = k
    return ids, insts


def _collectives(rt: RankTrace, shift: int, origin: int, ids: dict[tuple[int, int], int],
                 kinds: dict[tuple, int], strings: _Strings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start quanta, duration quanta, [kind, instance, step] rows) of the rank's collectives that ran."""
    ran = sorted((c for c in rt.collectives if c.start_ns is not None and c.end_ns is not None),
                 key=lambda c: c.start_ns or 0)
    s = np.array([c.start_ns for c in ran], dtype=np.int64)
    e = np.array([c.end_ns for c in ran], dtype=np.int64)
    qs, qd = _quant((s, e), shift - origin)
    extra = np.zeros((len(ran), 3), dtype=np.int64)
    for n, c in enumerate(ran):
        key = (strings(c.op), strings(c.process_group), strings(c.dtype), c.bytes, strings(c.lane or "comm"),
               strings(c.via or "-"))
        k = kinds.setdefault(key, len(kinds))
        extra[n] = (k, ids.get((rt.rank, int(c.end_ns or 0) + shift), -1), c.step)
    return qs, qd, extra


def _waits(rep: Report, origin: int) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per rank: (start quanta, duration quanta, instance) of every wait for the last rank, in start order."""
    rows: dict[int, list[tuple[int, int, int]]] = {}
    k0 = 0
    for g in rep.cross.groups:
        wait = g.wait_ns  # a property computed on each access: once per group
        for j, r in enumerate(g.ranks):
            for i in np.flatnonzero(wait[:, j] > 0).tolist():
                a = int(g.arrival_ns[i, j])
                rows.setdefault(r, []).append((a, a + int(wait[i, j]), k0 + i))
        k0 += g.arrival_ns.shape[0]
    out = {}
    for r, lst in rows.items():
        arr = np.array(sorted(lst), dtype=np.int64)
        qs, qd = _quant((arr[:, 0], arr[:, 1]), -origin)
        out[r] = (qs, qd, arr[:, 2])
    return out


def _merge(qs: np.ndarray, qd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted disjoint intervals that touch once quantized, merged (they would draw as one)."""
    if qs.size < 2:
        return qs, qd
    ends = qs + qd
    first = np.concatenate(([True], qs[1:] > ends[:-1]))
    starts = qs[first]
    last = np.concatenate((np.flatnonzero(first)[1:] - 1, [qs.size - 1]))
    return starts, ends[last] - starts


def _shifts(rep: Report) -> tuple[dict[int, int], int]:
    off = rep.cross.offsets_ns
    shift = {rt.rank: rt.base_time_ns + off.get(rt.rank, 0) for rt in rep.run.ranks}
    origin = min((rt.first_ns + shift[rt.rank] for rt in rep.run.ranks), default=0)
    return shift, origin


def _lanes(rep: Report, shift: dict[int, int], origin: int) -> dict[int, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per rank the union lanes in quanta: compute, exposed, memcpy."""
    out = {}
    for rt in rep.run.ranks:
        sp = rank_spans(rt)
        sh = shift[rt.rank] - origin
        out[rt.rank] = {"cp": _merge(*_quant(sp.compute, sh)), "ex": _merge(*_quant(sp.exposed, sh)),
                        "mc": _merge(*_quant(lane_span(rt.memcpy), sh))}
    return out


def _budget(lanes: dict[int, dict[str, Any]], fixed: int, budget: int) -> tuple[dict[int, dict[str, np.ndarray]], dict]:
    """Masks that keep the longest droppable intervals (compute, exposed, memcpy, waits) so that, with the
    ``fixed`` ones (collectives), at most ``budget`` are drawn; and what was dropped."""
    keys = [(r, k) for r in sorted(lanes) for k in sorted(lanes[r])]
    durs = [lanes[r][k][1] for r, k in keys]
    total = sum(int(d.size) for d in durs)
    keep_n = max(budget - fixed, 0)
    masks = {r: {k: np.ones(lanes[r][k][1].size, dtype=bool) for k in lanes[r]} for r in lanes}
    if total <= keep_n:
        return masks, {"intervals": 0, "below_us": 0, "budget": budget}
    alld = np.concatenate(durs) if durs else np.zeros(0, dtype=np.int64)
    tie = (np.arange(alld.size, dtype=np.uint64) * np.uint64(2654435761)) % np.uint64(1 << 32)  # spread ties
    order = np.lexsort((tie, -alld))
    keep = np.zeros(alld.size, dtype=bool)
    keep[order[:keep_n]] = True
    at = 0
    for (r, k), d in zip(keys, durs, strict=True):
        masks[r][k] = keep[at:at + d.size]
        at += d.size
    below = int(alld[order[keep_n]]) if keep_n < alld.size else 0
    return masks, {"intervals": int(total - keep_n), "below_us": below * Q_NS // 1000, "budget": budget}


def path_segments(rep: Report) -> list[tuple[int, int, int, str]]:
    """The critical path's segments ``(rank, start_ns, end_ns, what)`` when the report has one: records or mappings
    with ``rank``, ``start_ns``, ``end_ns`` (aligned: Unix ns on the reference rank's clock) and ``what``, in
    ``report.critical_path`` (itself or its ``segments`` / ``path``); empty otherwise."""
    cp = getattr(rep, "critical_path", None)
    segs = getattr(cp, "segments", None) or getattr(cp, "path", None) or cp
    out: list[tuple[int, int, int, str]] = []
    if not segs or isinstance(segs, (str, bytes)):
        return out
    for seg in segs:
        def get(name: str, seg: Any = seg) -> Any:
            return seg.get(name) if isinstance(seg, dict) else getattr(seg, name, None)

        rank, s, e = get("rank"), get("start_ns"), get("end_ns")
        if rank is not None and s is not None and e is not None:
            out.append((int(rank), int(s), int(e), str(get("what") or "")))
    return out


def _path(rep: Report, origin: int, strings: _Strings) -> list[int]:
    """``path_segments`` as ``[rank, start, dur, what]`` quanta, flattened."""
    out: list[int] = []
    for rank, s, e, what in path_segments(rep):
        qs = (s - origin) // Q_NS
        out += [rank, qs, max((e - origin + Q_NS - 1) // Q_NS - qs, 1), strings(what)]
    return out


def _grid(rep: Report) -> dict[str, Any]:
    """Per-step variation: each rank's step time and exposed communication per step, µs."""
    steps = sorted({s.step for o in rep.overlaps for s in o.steps})
    col = {n: i for i, n in enumerate(steps)}
    ranks, step_us, exposed_us = [], [], []
    for o in sorted(rep.overlaps, key=lambda o: o.rank):
        st: list[int | None] = [None] * len(steps)
        ex: list[int | None] = [None] * len(steps)
        for s in o.steps:
            st[col[s.step]] = s.step_ns // 1000
            ex[col[s.step]] = s.exposed_ns // 1000
        ranks.append(o.rank)
        step_us.append(st)
        exposed_us.append(ex)
    return {"steps": steps, "ranks": ranks, "step_us": step_us, "exposed_us": exposed_us}


def timeline_data(rep: Report, budget: int = EVENT_BUDGET) -> dict[str, Any]:
    """The embedded timeline (the module's docstring gives the format)."""
    strings = _Strings()
    shift, origin = _shifts(rep)
    ids, insts = _instances(rep, strings)
    kinds: dict[tuple, int] = {}
    colls = {rt.rank: _collectives(rt, shift[rt.rank], origin, ids, kinds, strings) for rt in rep.run.ranks}
    waits = _waits(rep, origin)
    lanes: dict[int, dict[str, Any]] = _lanes(rep, shift, origin)
    for r, w in waits.items():
        if r in lanes:
            lanes[r]["wt"] = w
    masks, dropped = _budget(lanes, sum(c[0].size for c in colls.values()), budget)
    ranks = []
    for rt in sorted(rep.run.ranks, key=lambda rt: rt.rank):
        sh = shift[rt.rank] - origin
        row: dict[str, Any] = {"r": rt.rank, "st": [v for s in rt.steps for v in
                                                    (s.number, (s.start_ns + sh) // Q_NS, (s.end_ns + sh) // Q_NS)]}
        for k, (qs, qd, *more) in lanes[rt.rank].items():
            m = masks[rt.rank][k]
            row[k] = _delta(qs[m], qd[m], *(x[m] for x in more))
        qs, qd, extra = colls[rt.rank]
        row["cm"] = _delta(qs, qd, *extra.T) if qs.size else []
        ranks.append(row)
    return {"v": 1, "q_ns": Q_NS, "origin_ns": str(origin), "names": strings.items,
            "kinds": [list(k) for k in sorted(kinds, key=kinds.__getitem__)], "ranks": ranks, "insts": insts,
            "path": _path(rep, origin, strings), "grid": _grid(rep), "dropped": dropped, "colors": ACTIVITY}
