"""Capture overhead: DDP over gloo (or FSDP2: ``--fsdp``), 2 ranks on CPU.  Step time with no profiler, with
commprof.trace() before its active window, after it (the steps outside the profiler that predictions are calibrated
on), inside it, and torch.profiler alone with the same settings inside its window.
Runs alternate between the settings; medians of the per-step times of the steps that matter.  Then the cost of
``prof.step()`` outside the window, measured in-process (finer than the noise of whole runs).

    python benchmarks/bench_overhead.py [--reps 3] [--fsdp]
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

STEPS = 14
MODEL = {"width": 1024, "layers": 6, "batch": 64, "bucket_cap_mb": 4}
FSDP_MODEL = {"width": 1024, "layers": 4, "batch": 32, "micro_batches": 4}  # the no_sync proof's FSDP2 job
# name -> (worker settings, steps whose times count)
SETTINGS = {
    "no profiler": ({"trace": False}, range(4, STEPS)),
    "commprof, outside window": ({"trace": True, "wait": 100, "warmup": 1, "active": 1}, range(4, STEPS)),
    # the cycle written at the end of step 4: the steps after it (what "the step outside the profiler" reads)
    "commprof, after its window": ({"trace": True, "wait": 1, "warmup": 1, "active": 3}, range(7, STEPS)),
    "commprof, inside window": ({"trace": True, "wait": 2, "warmup": 2, "active": 8}, range(5, 12)),
    "torch.profiler alone, inside": ({"trace": False, "plain_profiler": True, "wait": 2, "warmup": 2, "active": 8},
                                     range(5, 12)),
}


def one(settings: dict, keep: range, fsdp: bool = False) -> float:
    from commprof.workloads import demo, fsdpdemo

    d = tempfile.mkdtemp(prefix="commprof-overhead-")
    (fsdpdemo.launch if fsdp else demo.launch)(d, nproc=2, steps=STEPS, times=d, **(FSDP_MODEL if fsdp else MODEL),
                                               **settings)
    times = [json.loads((Path(d) / f"times{r}.json").read_text()) for r in (0, 1)]
    return max(statistics.median([t[i] for i in keep]) for t in times) / 1e6


def step_cost_ns(calls: int = 2000, reps: int = 5) -> float:
    """What ``prof.step()`` costs outside the active window, measured in this process against an empty call
    (outside the window nothing else of commprof runs: DDP keeps its built-in all-reduce, no hooks are set)."""
    import commprof

    def per_call(fn) -> float:
        t = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        return (time.perf_counter_ns() - t) / calls

    with commprof.trace(tempfile.mkdtemp(prefix="commprof-overhead-"), wait=10**6, warmup=1, active=1) as prof:
        empty, step = [], []
        for _ in range(reps):
            empty.append(per_call(lambda: None))
            step.append(per_call(prof.step))
    return statistics.median(step) - statistics.median(empty)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--fsdp", action="store_true", help="FSDP2 (fully_shard over gloo, 4 micro-batches) instead of DDP")
    args = ap.parse_args()
    got: dict[str, list[float]] = {k: [] for k in SETTINGS}
    for _ in range(args.reps):
        for name, (settings, keep) in SETTINGS.items():
            got[name].append(one(settings, keep, args.fsdp))
    med = {k: statistics.median(v) for k, v in got.items()}
    base, prof = med["no profiler"], med["torch.profiler alone, inside"]
    print(f"{'setting':<32} {'step ms':>8} {'vs none':>8} {'vs torch.profiler':>18}")
    for k, v in med.items():
        print(f"{k:<32} {v:>8.2f} {100 * (v / base - 1):>+7.1f}% {100 * (v / prof - 1):>+17.1f}%")
    ns = step_cost_ns()
    print(f"prof.step() outside the window, measured in-process: {ns / 1e3:.1f} us per step = "
          f"{100 * ns / 1e6 / base:.3f}% of the step without profiler (the run-to-run noise above is larger)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
