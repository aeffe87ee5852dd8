"""``[memory]`` instants, over every slice of one trace: each device's peaks (allocated, reserved), its timeline
(the largest total per ``MEMORY_BUCKET_NS``) and the blocks (time, address, bytes; ``memline`` pairs the CPU's).
Traces made with ``profile_memory=True`` hold one per allocation and free: the common case (every value a plain
integer) is read in bulk with numpy, anything else event by event."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..decode.events import I64_MIN, MEM_LIST, U64_MAX, as_orjson, bulk, mem_args
from ..decode.events import time_number as _num

MEMORY_BUCKET_NS = 100_000  # the memory timeline keeps the largest total per 100 µs
_TS_LIMIT_US = 9.0e15  # beyond this, ts * 1000 no longer fits in int64 nanoseconds
_Part = tuple[np.ndarray, np.ndarray, "np.ndarray | None"]  # times ns, totals, blocks (3 x n) or None


class MemoryEvents:
    def __init__(self) -> None:
        self.peaks: dict[str, tuple[int, int]] = {}  # device -> peak allocated, reserved
        self.parts: dict[str, list[_Part]] = {}

    def add(self, raws: list[Any], stamps: list[Any]) -> None:
        """One slice's events (their raw args and timestamps)."""
        if not raws:
            return
        got = bulk(raws, MEM_LIST)
        if got is None or not self._add_bulk(got, stamps):
            self._add_each(got if got is not None else [mem_args(raw) for raw in raws], stamps)

    def lines(self) -> dict[str, np.ndarray]:
        return {dev: bucket_max(np.concatenate([p[0] for p in ps]), np.concatenate([p[1] for p in ps]))
                for dev, ps in self.parts.items()}

    def blocks(self) -> dict[str, np.ndarray]:
        """Devices whose every event names its block (Addr) and size (Bytes) as integers (the CPU's live line
        pairs them; every device's per-step allocation counts read them)."""
        return {dev: np.concatenate([p[2] for p in ps], axis=1) for dev, ps in self.parts.items()
                if all(p[2] is not None for p in ps)}

    def _peak(self, dev: str, alloc: int, reserved: int) -> None:
        peak = self.peaks.get(dev)
        self.peaks[dev] = (max(0, alloc), max(0, reserved)) if peak is None else \
            (max(peak[0], alloc), max(peak[1], reserved))

    def _add_bulk(self, items: list[Any], stamps: list[Any]) -> bool:
        """Every field a plain integer (timestamps numbers): in bulk; False, adding nothing, otherwise."""
        allocs, res = [m.alloc for m in items], [m.reserved for m in items]
        keys = [(m.dtype, m.did) for m in items]
        if {type(a) for a in allocs} | {type(r) for r in res} | {type(k[0]) for k in keys} | \
                {type(k[1]) for k in keys} != {int} or not {type(t) for t in stamps} <= {int, float}:
            return False
        try:
            a, r, t = np.array(allocs, np.int64), np.array(res, np.int64), np.array(stamps, np.float64)
        except OverflowError:
            return False
        if not (np.isfinite(t).all() and (t >= 0).all() and (t <= _TS_LIMIT_US).all()):
            return False
        ts = (t * 1000).astype(np.int64)
        codes = {k: i for i, k in enumerate(dict.fromkeys(keys))}
        which = np.array([codes[k] for k in keys]) if len(codes) > 1 else None
        for (dtype, did), i in codes.items():
            dev = _device_name(as_orjson(dtype), as_orjson(did))
            m = slice(None) if which is None else which == i
            self._peak(dev, int(a[m].max()), int(r[m].max()))
            self.parts.setdefault(dev, []).append((ts[m], a[m], self._blocks(dev, items, ts, m)))
        return True

    @staticmethod
    def _blocks(dev: str, items: list[Any], ts: np.ndarray, m: Any) -> np.ndarray | None:
        sel = items if isinstance(m, slice) else [x for x, keep in zip(items, m, strict=True) if keep]
        addr, nb = [x.addr for x in sel], [x.nbytes for x in sel]
        if {type(v) for v in addr} | {type(v) for v in nb} != {int}:
            return None
        try:
            out = np.array([ts[m], addr, nb], np.int64)
        except OverflowError:
            return None
        return out if (out[1] >= 0).all() else None

    def _add_each(self, items: list[Any], stamps: list[Any]) -> None:
        names: dict[Any, str] = {}
        acc: dict[str, tuple[list[int], list[int], list[Any] | None]] = {}
        for m, ts in zip(items, stamps, strict=True):
            if m is None:
                continue
            alloc = m.alloc
            if type(alloc) is not int or not I64_MIN <= alloc <= U64_MAX:
                continue
            key = (m.dtype, m.did, type(m.did))
            try:
                dev = names[key]
            except KeyError:
                dev = names[key] = _device_name(as_orjson(m.dtype), as_orjson(m.did))
            except TypeError:  # an unhashable Device Id
                dev = _device_name(as_orjson(m.dtype), m.did)
            res = m.reserved
            self._peak(dev, alloc, res if type(res) is int and I64_MIN <= res <= U64_MAX else 0)
            t = _num(ts)
            if t is not None and 0 <= t <= _TS_LIMIT_US:
                a = acc.get(dev)
                if a is None:
                    a = acc[dev] = ([], [], [])
                a[0].append(int(t * 1000))
                a[1].append(alloc)
                if a[2] is not None:
                    a[2].append((m.addr, m.nbytes))
        for dev, (ts_l, al_l, bl) in acc.items():
            ts_a = np.array(ts_l, np.int64)
            blocks = None
            if bl is not None and all(type(x) is int and type(y) is int for x, y in bl):
                try:
                    blocks = np.array([ts_l, [x for x, _ in bl], [y for _, y in bl]], np.int64)
                except OverflowError:
                    blocks = None
                if blocks is not None and not (blocks[1] >= 0).all():
                    blocks = None
            self.parts.setdefault(dev, []).append((ts_a, np.array(al_l, np.int64), blocks))


def bucket_max(ts: np.ndarray, alloc: np.ndarray) -> np.ndarray:
    """The largest total in each ``MEMORY_BUCKET_NS`` (a 2 x n array: bucket start, bytes), in time order."""
    order = np.argsort(ts, kind="stable")
    ts, alloc = ts[order], alloc[order]
    b = ts // MEMORY_BUCKET_NS
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    return np.stack([b[starts] * MEMORY_BUCKET_NS, np.maximum.reduceat(alloc, starts)]) if ts.size else \
        np.zeros((2, 0), np.int64)


def _device_name(dtype: Any, did: Any) -> str:
    return f"{'cuda' if dtype == 1 else 'cpu'}:{did}"
