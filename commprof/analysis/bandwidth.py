"""Bandwidth per (collective, group size, message-size bin) and a latency-bandwidth model.

For every collective instance matched across ranks, the *transfer* time is measured from the moment
every rank's side had started to the end (the wait for late ranks removed), and where transfers overlap
in time each gets its share of the overlap (``shared_time``); collectives that could not be matched
(one rank's trace only) use their whole duration.  Per (op, process group, group size) commprof fits
``t = alpha + bytes / beta`` to the run's own collectives (least squares on relative error, so small
and large messages both count; alpha, 1/beta >= 0) and compares the achieved bus bandwidth with a peak:
the user's ``link_gbps`` or, for a known GPU, its NVLink bandwidth from ``LINK_PEAKS``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .. import ops
from ..model import RankTrace
from ..ops import bus_factor
from .crossrank.matching import CrossRank
from .crossrank.p2p import NO_LINKS, Links, transfer_ns

# Peak unidirectional bandwidth per GPU, GB/s, for the links of common GPUs (vendor data sheets).
# nccl-tests' busbw reaches about 75-90% of these on a full node; cross-node jobs are limited by the
# network instead (InfiniBand HDR 25 GB/s, NDR 50 GB/s per port), which the trace cannot tell: pass
# --link-gbps for them.
LINK_PEAKS: tuple[tuple[str, float, str], ...] = (
    ("H200", 450.0, "NVLink 4 (H200 SXM)"),
    ("H100 80GB HBM3", 450.0, "NVLink 4 (H100 SXM)"),
    ("H100 SXM", 450.0, "NVLink 4 (H100 SXM)"),
    ("H100 PCIe", 64.0, "PCIe 5.0 x16 (H100 PCIe)"),
    ("A100-SXM", 300.0, "NVLink 3 (A100 SXM)"),
    ("A100-PG509", 300.0, "NVLink 3 (A100 SXM)"),
    ("A100-PCIE", 32.0, "PCIe 4.0 x16 (A100 PCIe)"),
    ("V100-SXM2", 150.0, "NVLink 2 (V100 SXM2)"),
    ("V100-PCIE", 16.0, "PCIe 3.0 x16 (V100 PCIe)"),
    ("MI250", 200.0, "Infinity Fabric (MI250)"),
    ("MI300X", 448.0, "Infinity Fabric (MI300X)"),
)


def link_peak(devices: Iterable[str]) -> tuple[float, str] | None:
    for d in devices:
        for key, gbps, what in LINK_PEAKS:
            if key.lower() in d.lower():
                return gbps, what
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class BinStat:
    op: str
    process_group: str
    group_size: int
    lo_bytes: int  # bin [lo, hi)
    hi_bytes: int
    count: int
    bytes: int
    time_ns: int
    algbw_gbps: float  # over its timed transfers (``untimed`` ones moved bytes in no measurable time)
    busbw_gbps: float | None
    untimed: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Fit:
    op: str
    process_group: str
    group_size: int
    points: int
    alpha_us: float | None
    beta_gbps: float | None  # algorithm bandwidth of the fitted line
    busbw_gbps: float | None  # achieved: total bytes x factor / total transfer time
    peak_gbps: float | None
    peak_source: str | None
    pct_of_peak: float | None
    alpha_assumed: bool = False  # the run's message sizes could not separate latency from bandwidth
    untimed: int = 0  # transfers that took no measurable time: left out of the fit and of busbw


@dataclass(frozen=True, slots=True)
class Bandwidth:
    bins: tuple[BinStat, ...]
    fits: tuple[Fit, ...]
    samples: dict[tuple[str, str, int], tuple[np.ndarray, np.ndarray]]  # bytes, transfer ns

    def volume_by_size(self) -> dict[tuple[str, int], tuple[int, int]]:
        """(op, log2 of the size) -> (transfers, bytes), over every transfer: unlike ``bins``, timing-free (a bin
        whose transfers all took no measurable time is no bin)."""
        out: dict[tuple[str, int], tuple[int, int]] = {}
        for (op, _pg, _n), (nbytes, _ns) in self.samples.items():
            e = np.floor(np.log2(np.maximum(nbytes, 1))).astype(np.int64)
            for k in np.unique(e):
                c, b = out.get((op, int(k)), (0, 0))
                out[(op, int(k))] = (c + int((e == k).sum()), b + int(nbytes[e == k].sum()))
        return out


def shared_time(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Each interval's share of the channel: the integral over it of 1 / (intervals active then).

    Collectives that overlap in time (gloo runs two at once; NCCL on several streams) split the link;
    their shares add up to the time the channel was busy, so a fit on them sees the link's bandwidth.
    """
    if starts.size == 0:
        return np.zeros(0)
    # a sweep over the sorted boundaries: how many intervals are active on each segment between two of them,
    # each segment's time split among those, and each interval's sum over its segments by prefix sums
    b = np.unique(np.concatenate([starts, ends]))
    i_s = np.searchsorted(b, starts)
    i_e = np.searchsorted(b, ends)
    delta = np.zeros(b.size, dtype=np.int64)
    np.add.at(delta, i_s, 1)
    np.add.at(delta, i_e, -1)
    n = np.cumsum(delta)[:-1]
    seg = np.diff(b).astype(float)
    share = np.where(n > 0, seg / np.maximum(n, 1), 0.0)
    prefix = np.concatenate([[0.0], np.cumsum(share)])
    return np.where(i_e > i_s, prefix[i_e] - prefix[i_s], 0.0)


def _samples(ranks: Sequence[RankTrace], cross: CrossRank, wanted: set[int] | None, links: Links = NO_LINKS):
    out: dict[tuple[str, str, int], tuple[list[int], list[int]]] = {}
    matched = set()
    for lg in links.groups:
        xs, ys = out.setdefault((ops.SEND, lg.process_group, 2), ([], []))
        keep = lg.nbytes > 0
        xs.extend(int(b) for b in lg.nbytes[keep])
        ys.extend(int(t) for t in transfer_ns(lg)[keep])
    for g in cross.groups:
        matched.add(g.process_group)
        both = g.start_ns.max(axis=1, keepdims=True) if g.start_ns.size else g.start_ns
        tr = np.zeros(g.end_ns.shape, dtype=np.int64)
        n_ranks = int(g.end_ns.shape[1]) if g.end_ns.ndim == 2 else 0
        for j in range(n_ranks):
            s_j = np.minimum(both[:, 0], g.end_ns[:, j])
            tr[:, j] = np.round(shared_time(s_j, g.end_ns[:, j])).astype(np.int64)
        for i, op in enumerate(g.ops):
            if g.nbytes[i] <= 0 or (wanted is not None and int(g.steps[i]) not in wanted):
                continue
            key = (op, g.process_group, int(g.group_sizes[i]))
            xs, ys = out.setdefault(key, ([], []))
            for j in range(n_ranks):
                xs.append(int(g.nbytes[i]))
                ys.append(int(tr[i, j]))
    for rt in ranks:
        for c in rt.collectives:
            if (c.process_group in matched or (links.groups and ops.is_p2p(c.op)) or c.start_ns is None
                    or c.end_ns is None or c.bytes <= 0
                    or c.group_size < 2 or (wanted is not None and c.step not in wanted)):
                continue
            xs, ys = out.setdefault((c.op, c.process_group, c.group_size), ([], []))
            xs.append(c.bytes)
            ys.append(c.end_ns - c.start_ns)
    return {k: (np.array(v[0], dtype=np.int64), np.array(v[1], dtype=np.int64)) for k, v in out.items()}


# Latency assumed when the run's own sizes cannot separate latency from bandwidth (see fit_alpha_beta):
# typical per-collective start-up cost of NCCL inside a node and of gloo over TCP.
DEFAULT_ALPHA_S = {"cuda": 25e-6, "cpu": 500e-6}


def separable(x: np.ndarray) -> bool:
    """Whether these message sizes spread enough to tell latency from bandwidth."""
    sizes = np.unique(x[x > 0]) if x.size else x
    spread = sizes.max() / sizes.min() if sizes.size else 1.0
    return bool((sizes.size >= 3 and spread >= 4) or (sizes.size == 2 and spread >= 16))


def fit_alpha_beta(x: np.ndarray, t: np.ndarray,
                   default_alpha_s: float | None = None) -> tuple[float | None, float | None]:
    """(alpha seconds, beta bytes/s) of t = alpha + x / beta; None where the data cannot tell.

    Unless the sizes spread enough (three distinct sizes over a factor of 4, or two over a factor of 16),
    latency and bandwidth cannot be told apart: alpha is then ``default_alpha_s`` (None if not given), at most half
    the shortest transfer (gloo's typical 500 µs beside 64 kB sends of 0.1 ms left beta to the few slow ones), and
    beta the throughput left.
    """
    ok = t > 0
    x, t = x[ok].astype(float), t[ok].astype(float) / 1e9
    if x.size == 0:
        return None, None
    if not separable(x):
        a0 = min(default_alpha_s, 0.5 * float(t.min())) if default_alpha_s is not None else 0.0
        rest = float(np.sum(t)) - a0 * x.size
        if rest <= 0:
            return default_alpha_s, None
        return (a0 if default_alpha_s is not None else None), float(np.sum(x) / rest)
    w = 1.0 / t
    design = np.stack([w, x * w], axis=1)
    sol = np.linalg.lstsq(design, np.ones_like(t), rcond=None)[0]
    alpha, slope = float(sol[0]), float(sol[1])
    if slope <= 0:
        return float(np.median(t)), None
    if alpha < 0:
        slope = float(np.sum(x * w) / np.sum((x * w) ** 2))  # through the origin, same weights
        alpha = 0.0
    return float(alpha), 1.0 / float(slope)


def bandwidth(ranks: Sequence[RankTrace], cross: CrossRank, steps: Iterable[int] | None = None,
              link_gbps: float | None = None, devices: Iterable[str] = (), links: Links = NO_LINKS) -> Bandwidth:
    """``links``: the send/recv pairs matched across ranks; each pair is one transfer, its time from the later
    arrival to the recv's end (a send or recv alone lasts while it waits for its peer, or, on gloo, until wait())."""
    wanted = set(steps) if steps is not None else None
    samples = _samples(ranks, cross, wanted, links)
    kind: dict[str, str] = {}
    for rt in ranks:
        for c in rt.collectives:
            kind.setdefault(c.process_group, rt.device_kind)
        for lg in links.groups:
            if lg.ranks[0] == rt.rank:
                kind.setdefault(lg.process_group, rt.device_kind)
    peak = (link_gbps, "given with --link-gbps") if link_gbps else link_peak(devices)
    bins: list[BinStat] = []
    fits: list[Fit] = []
    for (op, pg, n), (x_all, t_all) in sorted(samples.items()):
        f = bus_factor(op, n)
        # a transfer that took no measurable time (it ended with the last arrival) moved its bytes in no known time:
        # in a bin's bytes it raised busbw above what the fitted beta allows (HTA's trace_filter: half the bytes)
        timed = t_all > 0
        x, t = x_all[timed], t_all[timed]
        e = np.floor(np.log2(np.maximum(x_all, 1))).astype(np.int64)
        for k in np.unique(e):
            m = e == k
            tt = int(t_all[m].sum())
            if tt <= 0:
                continue
            alg = int(x_all[m & timed].sum()) / tt  # count and bytes: every transfer; bandwidth: the timed ones
            bins.append(BinStat(op=op, process_group=pg, group_size=n, lo_bytes=int(2 ** k), hi_bytes=int(2 ** (k + 1)),
                                count=int(m.sum()), bytes=int(x_all[m].sum()), time_ns=tt, algbw_gbps=alg,
                                busbw_gbps=alg * f if f is not None else None, untimed=int((m & ~timed).sum())))
        alpha, beta = fit_alpha_beta(x, t, DEFAULT_ALPHA_S.get(kind.get(pg, "cuda")))
        total_t = int(t.sum())
        bus = (float(x.sum()) / total_t * f) if total_t > 0 and f is not None else None
        pk, src = (peak if peak else (None, None))
        pct = 100.0 * bus / pk if bus is not None and pk else None
        fits.append(Fit(op=op, process_group=pg, group_size=n, points=int(x.size), untimed=int((~timed).sum()),
                        alpha_us=alpha * 1e6 if alpha is not None else None,
                        beta_gbps=beta / 1e9 if beta is not None and math.isfinite(beta) else None, busbw_gbps=bus,
                        peak_gbps=pk, peak_source=src, pct_of_peak=pct, alpha_assumed=not separable(x[t > 0])))
    return Bandwidth(tuple(bins), tuple(fits), samples)
