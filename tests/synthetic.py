"""A synthetic many-rank data-parallel run, built as model records (no trace files): per rank and step a forward
pass of compute kernels, a backward pass whose gradient all-reduces overlap the remaining kernels, and an
optimizer; one slow rank the others wait for at every all-reduce.  Clocks aligned by construction (collectives
end together on every rank), each rank's trace clock shifted by a few ms as real clocks are.

Used by the browser tests (the overview of many ranks) and benchmarks/bench_timeline.py (1,024 ranks)."""

from __future__ import annotations

import numpy as np

from commprof.model import Collective, Lane, RankTrace, Run, Step


def _lane(s: list[int], e: list[int], st: list[int]) -> Lane:
    a = np.array(s, dtype=np.int64)
    return Lane(a, np.array(e, dtype=np.int64), np.array(st, dtype=np.int64), a.copy())


def big_run(n_ranks: int = 1024, steps: int = 3, kernels: int = 240, buckets: int = 8, slow_rank: int = 3,
            seed: int = 0) -> Run:
    """``kernels`` compute kernels per step (a third forward, two thirds backward), ``buckets`` all-reduces of
    25 MB; rank ``slow_rank`` computes 15% slower."""
    rng = np.random.default_rng(seed)
    base_k = rng.uniform(20_000, 120_000, kernels).astype(np.int64)  # the model's kernel durations, ns
    per_rank: list[dict] = [{"s": [], "e": [], "st": [], "cs": [], "ce": [], "cst": [], "colls": [], "steps": []}
                            for _ in range(n_ranks)]
    t = 1_000_000
    for step in range(steps):
        ends = np.zeros(n_ranks, dtype=np.int64)  # when each rank's backward kernels are done
        arrive = np.zeros((buckets, n_ranks), dtype=np.int64)
        for r in range(n_ranks):
            speed = 1.15 if r == slow_rank else 1.0 + rng.uniform(0, 0.02)
            cur = t + int(rng.uniform(0, 200_000))
            d = per_rank[r]
            d["steps"].append((step, t, None))
            for k in range(kernels):
                dur = int(base_k[k] * speed * rng.uniform(0.95, 1.05))
                d["s"].append(cur)
                d["e"].append(cur + dur)
                d["st"].append(step)
                cur += dur + int(rng.uniform(1_000, 6_000))
                back = k - kernels // 3
                if back >= 0 and (back + 1) % max((kernels - kernels // 3) // buckets, 1) == 0:
                    b = min(back // max((kernels - kernels // 3) // buckets, 1), buckets - 1)
                    arrive[b, r] = max(arrive[b, r], cur)
            ends[r] = cur
        fin = np.zeros(n_ranks, dtype=np.int64)
        prev_end = 0
        for b in range(buckets):
            last = int(arrive[b].max())
            start_all = max(last, prev_end)
            end = start_all + 2_500_000
            prev_end = end
            for r in range(n_ranks):
                d = per_rank[r]
                d["cs"].append(int(arrive[b, r]))
                d["ce"].append(end)
                d["cst"].append(step)
                d["colls"].append(Collective(op="all_reduce", process_group="0", group_size=n_ranks, dtype="float32",
                                             bytes=25 << 20, issue_ns=int(arrive[b, r]) - 5_000,
                                             start_ns=int(arrive[b, r]), end_ns=end, step=step, seq=step * buckets + b,
                                             name="ncclDevKernel_AllReduce_Sum_f32_RING_LL", lane="stream 20",
                                             via="NCCL"))
            fin = np.maximum(fin, end)
        for r in range(n_ranks):
            d = per_rank[r]
            cur = int(max(fin[r], ends[r])) + 10_000
            for _ in range(kernels // 12):  # the optimizer
                d["s"].append(cur)
                d["e"].append(cur + 15_000)
                d["st"].append(step)
                cur += 17_000
            d["steps"][-1] = (step, t, cur + 50_000)
        t = int(max(s[-1][2] for s in (d["steps"] for d in per_rank))) + 100_000
    return Run("synthetic", tuple(_rank(r, per_rank[r], n_ranks, rng) for r in range(n_ranks)), n_ranks, None, (), ())


def _rank(r: int, d: dict, n: int, rng: np.random.Generator) -> RankTrace:
    off = int(rng.integers(-3_000_000, 3_000_000)) if r else 0  # this rank's trace clock, shifted

    def sh(x: list[int]) -> list[int]:
        return [v + off for v in x]

    colls = tuple(Collective(op=c.op, process_group=c.process_group, group_size=c.group_size, dtype=c.dtype,
                             bytes=c.bytes, issue_ns=c.issue_ns + off, start_ns=c.start_ns + off,
                             end_ns=c.end_ns + off, step=c.step, seq=c.seq, name=c.name, lane=c.lane, via=c.via)
                  for c in d["colls"])
    return RankTrace(rank=r, world_size=n, backend="nccl", path=f"rank{r}.json", device_kind="cuda",
                     devices=(f"cuda:{r % 8}",), base_time_ns=1_700_000_000_000_000_000 - off,
                     steps=tuple(Step(s, a + off, b + off) for s, a, b in d["steps"]),
                     compute=_lane(sh(d["s"]), sh(d["e"]), d["st"]), comm=_lane(sh(d["cs"]), sh(d["ce"]), d["cst"]),
                     memcpy=_lane([], [], []), collectives=colls, process_groups=(), sidecar=None, warnings=())
