"""Who holds the job back, at scale: N synthetic ranks in torch's NCCL Kineto layout, one rank 30% slower.

    python benchmarks/bench_critpath.py [--ranks 64,256,1024] [--against DIR] [--keep DIR]

The job (simulated, then written as each rank's trace): tensor-parallel groups of 8 consecutive ranks in lockstep,
each layer's compute (forward, then backward) ending in a TP all-reduce the next layer waits for; data-parallel
all-reduces of gradient buckets over all ranks on their own stream, launched during the backward pass and
overlapping it; the optimizer waits for the last bucket.  Hosts (8 ranks each) have clocks shifted by seconds; one
rank (``SLOW_RANK``) computes 30% slower; every compute kernel jitters by +-2%.  Each rank writes
``rank{R}.pt.trace.json.gz`` as torch.profiler does (ProfilerStep, record_param_comms with its process group and
sequence number, cudaLaunchKernel, kernels with correlation ids, distributedInfo with pg_config).

For each N: ``python -m commprof report DIR --format json`` in its own process, wall time and peak RSS (wait4), the
root cause it names; with ``--against DIR`` also the same report by the commprof checkout in DIR (the code before,
e.g. ``git worktree add /tmp/base main``), and the ratio.  Targets (issue 23): 1,024 ranks within 1.5x of the code
before and 512 MB peak RSS; the named rank is ``SLOW_RANK``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
TP, LAYERS, STEPS, BUCKETS = 8, 8, 3, 4
FWD_US, BWD_US, OPT_US, TP_US, DP_US, LAUNCH_US = 900.0, 1800.0, 300.0, 120.0, 1500.0, 20.0
SLOW_FACTOR = 1.3
HOST_SHIFT_US = 1.7e6  # host h's clock is ((5 h) mod 7) * 1.7 s ahead: seconds apart, never minutes (issue 24)
T0_US = 1e6  # trace clock of host 0 at the job start (Kineto ts, us)


def slow_rank(n: int) -> int:
    return n // 2 + 3  # a rank inside a TP group, not its first


class _Writer:
    """One rank's events."""

    def __init__(self, rank: int, shift: float) -> None:
        self.rank, self.shift, self.ev, self.corr = rank, shift, [], rank * 10_000_000

    def kernel(self, name: str, stream: int, start: float, dur: float, rpc: dict | None = None) -> None:
        start, dur = float(start), float(dur)
        self.corr += 1
        launch = start - LAUNCH_US + self.shift
        if rpc is not None:
            self.ev.append({"ph": "X", "cat": "cpu_op", "name": "record_param_comms", "pid": 1, "tid": 1,
                            "ts": launch - 8, "dur": 20, "args": rpc})
        self.ev.append({"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1,
                        "ts": launch, "dur": 5, "args": {"correlation": self.corr, "External id": self.corr}})
        self.ev.append({"ph": "X", "cat": "kernel", "name": name, "pid": 0, "tid": stream, "ts": start + self.shift,
                        "dur": dur, "args": {"correlation": self.corr, "External id": self.corr, "device": 0,
                                             "stream": stream, "queued": 0}})


def _rpc(pg: str, ranks: list[int], seq: int, nelems: int) -> dict:
    return {"Collective name": "allreduce", "Process Group Name": pg, "Process Group Ranks": str(ranks),
            "Group size": len(ranks), "In msg nelems": nelems, "Out msg nelems": nelems, "dtype": "BFloat16",
            "Seq": seq}


def simulate(n: int, out: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    slow = slow_rank(n)
    speed = np.where(np.arange(n) == slow, SLOW_FACTOR, 1.0)
    w = [_Writer(r, T0_US + ((5 * (r // TP)) % 7) * HOST_SHIFT_US) for r in range(n)]
    t = np.zeros(n)  # each rank's GPU ready time
    seq_tp, seq_dp = 0, 0
    steps: list[list[tuple[float, float]]] = [[] for _ in range(n)]
    for _s in range(STEPS):
        start = t.copy()
        dp_free = t.copy()  # the DP stream
        dp_issue: list[np.ndarray] = []
        for phase, dur in (("fwd", FWD_US), ("bwd", BWD_US)):
            for layer in range(LAYERS):
                c = dur * speed * rng.uniform(0.98, 1.02, n)
                for r in range(n):
                    w[r].kernel(f"ampere_bf16_gemm_{phase}_{layer}", 7, t[r], c[r])
                ready = t + c
                last = ready.reshape(-1, TP).max(axis=1).repeat(TP)
                for r in range(n):
                    g = r // TP
                    w[r].kernel("ncclDevKernel_AllReduce_Sum_bf16_RING_LL(ncclDevComm*, unsigned long, ncclWork*)",
                                24, ready[r], last[r] + TP_US - ready[r],
                                _rpc(f"tp{g}", list(range(g * TP, g * TP + TP)), seq_tp, 4 * 2048 * 4096))
                seq_tp += 1
                t = last + TP_US + 2
                if phase == "bwd" and (layer + 1) % (LAYERS // BUCKETS) == 0:
                    dp_issue.append(t.copy())
        for b, issue in enumerate(dp_issue):
            arr = np.maximum(issue, dp_free)
            end = arr.max() + DP_US
            for r in range(n):
                w[r].kernel("ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevComm*, unsigned long, ncclWork*)",
                            25, arr[r], end - arr[r], _rpc("dp", list(range(n)), seq_dp, 25_000_000 + b))
            seq_dp += 1
            dp_free = np.full(n, end)
        opt = np.maximum(t, dp_free) + 5
        c = OPT_US * speed
        for r in range(n):
            w[r].kernel("multi_tensor_apply_kernel", 7, opt[r], c[r])
            steps[r].append((start[r] - 50, opt[r] + c[r] + 10))
        t = opt + c + 100
    for r in range(n):
        _write(out, w[r], steps[r], n)


def _write(out: Path, w: _Writer, steps: list[tuple[float, float]], n: int) -> None:
    ev = [{"ph": "X", "cat": "user_annotation", "name": f"ProfilerStep#{k + 1}", "pid": 1, "tid": 1,
           "ts": float(a + w.shift), "dur": float(b - a)} for k, (a, b) in enumerate(steps)]
    ev += [{"name": "thread_name", "ph": "M", "ts": T0_US, "pid": 0, "tid": s, "args": {"name": f"stream {s}"}}
           for s in (7, 24, 25)]
    g = w.rank // TP
    pgs = [{"pg_name": "dp", "pg_desc": "", "backend_config": "cuda:nccl", "pg_size": n, "ranks": list(range(n))},
           {"pg_name": f"tp{g}", "pg_desc": "", "backend_config": "cuda:nccl", "pg_size": TP,
            "ranks": list(range(g * TP, g * TP + TP))}]
    doc = {"schemaVersion": 1, "distributedInfo": {"backend": "nccl", "rank": w.rank, "world_size": n,
                                                   "pg_count": 2, "pg_config": pgs},
           "deviceProperties": [{"id": 0, "name": "NVIDIA H100 80GB HBM3", "totalGlobalMem": 85_000_000_000}],
           "traceEvents": ev + w.ev, "traceName": f"rank{w.rank}",
           "baseTimeNanoseconds": 1_700_000_000_000_000_000}
    data = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    (out / f"rank{w.rank}.pt.trace.json.gz").write_bytes(gzip.compress(data, 1))


def measure(root: Path, d: Path) -> tuple[float, float, dict]:
    out = tempfile.mkdtemp(prefix="commprof-crit-")
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "commprof", "report", str(d), "--format", "json", "-o", out, "-q"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=root,
                         env={**os.environ, "PYTHONPATH": str(root)})
    _pid, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(p.stderr.read().decode()[-2000:] if p.stderr else "failed")
    summary = json.loads((Path(out) / "summary.json").read_bytes())
    return dt, ru.ru_maxrss / 1024, summary


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", default="64,256,1024")
    ap.add_argument("--against", type=Path, default=None, help="a commprof checkout to compare with")
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args()
    print(f"{'ranks':>6} {'seconds':>8} {'peak MB':>8} {'before s':>9} {'before MB':>10} {'time x':>7}  root cause")
    for n in [int(x) for x in args.ranks.split(",")]:
        d = (args.keep or Path(tempfile.mkdtemp(prefix="commprof-crit-trace-"))) / f"n{n}"
        d.mkdir(parents=True, exist_ok=True)
        simulate(n, d)
        base = measure(args.against, d) if args.against else None
        sec, mb, s = measure(ROOT, d)
        rc = s.get("root_cause") or {}
        named = f"rank {rc.get('rank')} ({rc.get('what')}; slow rank {slow_rank(n)}), " \
                f"share {rc.get('share_pct')}%, gain {rc.get('predicted_gain_ms')} ms" if rc else "none"
        b = f"{base[0]:>9.1f} {base[1]:>10.0f} {sec / base[0]:>7.2f}" if base else f"{'':>9} {'':>10} {'':>7}"
        print(f"{n:>6} {sec:>8.1f} {mb:>8.0f} {b}  {named}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
