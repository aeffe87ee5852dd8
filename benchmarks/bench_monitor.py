"""The monitor's overhead: DDP over gloo, 2 ranks on CPU, the same job without anything and under
``commprof.monitor(every=20)``, runs alternating; the median step of each run (start-up steps left out), then the
median over runs.  Then the cost of one ``mon.step()`` and of one rollup, measured in-process.

    python benchmarks/bench_monitor.py [--reps 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS = 60
MODEL = {"width": 1024, "layers": 6, "batch": 64, "bucket_cap_mb": 4}
SETTINGS = {"no monitor": {"trace": False}, "commprof.monitor(every=20)": {"trace": False, "monitor": True,
                                                                          "monitor_every": 20}}


def one(settings: dict) -> float:
    from commprof.workloads.demo import launch

    d = tempfile.mkdtemp(prefix="commprof-monitor-")
    launch(d, nproc=2, steps=STEPS, times=d, **MODEL, **settings)
    times = [json.loads((Path(d) / f"times{r}.json").read_text()) for r in (0, 1)]
    return max(statistics.median(t[5:]) for t in times) / 1e6


def in_process() -> tuple[float, float]:
    """(µs per step() without a rollup, ms per rollup of 20 steps with 2,000 Flight Recorder entries to read)."""
    import os

    import torch
    import torch.distributed as dist

    from commprof.capture.monitor import MonitorSession

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29391")
    d = tempfile.mkdtemp(prefix="commprof-monitor-")
    with MonitorSession(d, every=10**9) as mon:
        dist.init_process_group("gloo", rank=0, world_size=1)
        t = torch.ones(16)
        for _ in range(2000):
            dist.all_reduce(t)
        n = 20_000
        t0 = time.perf_counter_ns()
        for _ in range(n):
            mon.step()
        per_step_us = (time.perf_counter_ns() - t0) / n / 1e3
        steps = mon._take()[-20:]
        t0 = time.perf_counter_ns()
        mon._rollup(steps)
        rollup_ms = (time.perf_counter_ns() - t0) / 1e6
        dist.destroy_process_group()
    return per_step_us, rollup_ms


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    per: dict[str, list[float]] = {k: [] for k in SETTINGS}
    for _ in range(args.reps):
        for name, s in SETTINGS.items():
            per[name].append(one(s))
    base = statistics.median(per["no monitor"])
    for name, vals in per.items():
        med = statistics.median(vals)
        print(f"{name:<30} median step {med:8.2f} ms  ({', '.join(f'{v:.2f}' for v in vals)})  "
              f"ratio {med / base:.4f}")
    step_us, rollup_ms = in_process()
    print(f"mon.step(): {step_us:.2f} µs; one rollup (20 steps, 2,000 Flight Recorder entries read): "
          f"{rollup_ms:.2f} ms, on the monitor's background thread")
    return 0


if __name__ == "__main__":
    sys.exit(main())
