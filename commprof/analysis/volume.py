"""Transfer volume and bandwidth per (op, process group, group size, dtype).

Message bytes as docs/metrics.md defines them.  algbw = bytes / time; busbw = algbw x the nccl-tests factor:
all-reduce 2(n-1)/n; all-gather, reduce-scatter, all-to-all (n-1)/n; broadcast, reduce, send/recv 1.
The time of a collective is its kernel (or gloo transfer) duration, which includes any time it spent
waiting for the other ranks to join: bandwidth measured this way is a lower bound on the link's.  A send or
recv alone lasts while it waits for its peer (on gloo, a send until its ``wait()``): its bandwidth is none here,
the pairs' (``crossrank.p2p.transfer_ns``, the latency-bandwidth model) only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .. import ops
from ..model import Collective, RankTrace
from ..ops import bus_factor

DISAGREE_RATIO = 1.5
SYMMETRIC = frozenset({ops.ALL_REDUCE, ops.ALL_GATHER, ops.REDUCE_SCATTER, ops.BROADCAST})


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectiveStat:
    """One row of the collectives table.  Per-step figures are means over ranks and analyzed steps."""

    op: str
    process_group: str
    group_size: int
    dtype: str
    ranks: int
    count: float  # per step, per rank
    bytes: float  # per step, per rank
    time_ns: float  # per step, per rank (executed collectives only)
    total_count: int  # over all ranks and steps
    total_bytes: int
    executed: int  # how many had an execution interval (kernel / transfer)
    algbw_gbps: float | None
    busbw_gbps: float | None
    via: str = ""  # what carried them out: "NCCL", "gloo", "DeepEP", ... (the rule that matched their kernels)
    unknown_size: int = 0  # how many had no size in the trace
    # the least and most bytes per step a member rank recorded: members of one group move the same bytes in
    # all-reduces, all-gathers, reduce-scatters and broadcasts, so a wide range there says their traces disagree
    rank_bytes: tuple[float, float] = (0.0, 0.0)

    @property
    def ranks_disagree(self) -> bool:
        """Members recorded different bytes for a collective every member moves alike (not all-to-all, send/recv):
        PowerSGD on gloo runs its later all-reduces inside the record of the first, one rank 32.8 kB, one 125.7."""
        lo, hi = self.rank_bytes
        return (self.ranks > 1 and ops.family(self.op) in SYMMETRIC and hi > DISAGREE_RATIO * lo
                and hi - lo >= 1024)


def collective_stats(ranks: Sequence[RankTrace], steps: Iterable[int] | None = None) -> list[CollectiveStat]:
    wanted = set(steps) if steps is not None else None
    acc: dict[tuple[str, str, int, str, str], dict] = {}
    n_steps_by_rank: dict[int, int] = {}
    for rt in ranks:
        chosen = {s.number for s in rt.steps if wanted is None or s.number in wanted}
        n_steps_by_rank[rt.rank] = max(len(chosen), 1)
        for c in rt.collectives:
            if c.step not in chosen:
                continue
            key = (c.op, c.process_group, c.group_size, c.dtype, c.via)
            a = acc.setdefault(key, {"count": 0, "bytes": 0, "time": 0, "exec": 0, "exec_bytes": 0,
                                     "unknown": 0, "per_rank": {}})
            _add(a, c, rt.rank)
    out: list[CollectiveStat] = []
    for (op, pg, n, dt, via), a in acc.items():
        per_rank = a["per_rank"]
        nr = len(per_rank)
        count = sum(v[0] / n_steps_by_rank[r] for r, v in per_rank.items()) / nr
        per_step = [v[1] / n_steps_by_rank[r] for r, v in per_rank.items()]
        nbytes = sum(per_step) / nr
        tns = sum(v[2] / n_steps_by_rank[r] for r, v in per_rank.items()) / nr
        algbw = a["exec_bytes"] / a["time"] if a["time"] > 0 and a["exec_bytes"] > 0 and not ops.is_p2p(op) else None
        f = bus_factor(op, n)
        busbw = algbw * f if algbw is not None and f is not None else None
        out.append(CollectiveStat(op=op, process_group=pg, group_size=n, dtype=dt, ranks=nr, count=count, bytes=nbytes,
                                  time_ns=tns, total_count=a["count"], total_bytes=a["bytes"], executed=a["exec"],
                                  algbw_gbps=algbw, busbw_gbps=busbw, via=via, unknown_size=a["unknown"],
                                  rank_bytes=(min(per_step), max(per_step))))
    out.sort(key=lambda s: (-s.time_ns, -s.bytes))
    return out


def _add(a: dict, c: Collective, rank: int) -> None:
    a["count"] += 1
    a["bytes"] += c.bytes
    a["unknown"] += not c.size_known
    pr = a["per_rank"].setdefault(rank, [0, 0, 0])
    pr[0] += 1
    pr[1] += c.bytes
    if c.start_ns is not None and c.end_ns is not None:
        d = c.end_ns - c.start_ns
        a["time"] += d
        a["exec"] += 1
        a["exec_bytes"] += c.bytes
        pr[2] += d
