"""The steps after commprof's profiler cycle against an untraced run, A/B in alternating pairs: the no_sync proof's
FSDP2 job (fully_shard over gloo, 2 ranks, 4 micro-batches, 14 steps), untraced and under commprof.trace (wait 1,
warm-up 1, active 3: written at the end of step 4); per run the median of steps 6-13 (the slower rank per step); per
pair commprof / untraced.  ROOT: the checkout whose commprof runs (another commit's clone for a before/after).

    python benchmarks/bench_after_window.py [ROOT] [PAIRS]
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

# the checkout whose commprof runs (spawned workers re-run this with the parent's sys.argv and sys.path)
ROOT = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("AB_ROOT", str(Path(__file__).resolve().parents[1]))
os.environ["AB_ROOT"] = ROOT
sys.path.insert(0, ROOT)


def main() -> int:
    from commprof.workloads import fsdpdemo

    cfg = {"micro_batches": 4, "steps": 14, "layers": 4, "width": 1024, "batch": 32, "sync_last_only": False}
    got = {"untraced": [], "commprof": []}
    for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 6):
        for mode in got:
            d = tempfile.mkdtemp(prefix="ab-")
            fsdpdemo.launch(d, nproc=2, trace=mode == "commprof", times=d, **cfg)
            ts = [json.loads((Path(d) / f"times{r}.json").read_text()) for r in (0, 1)]
            per = [max(a, b) / 1e6 for a, b in zip(*ts, strict=True)]
            got[mode].append(statistics.median(per[6:]))
    u, c = got["untraced"], got["commprof"]
    print(ROOT, "untraced", [round(x) for x in u], "commprof", [round(x) for x in c])
    ratios = [b / a for a, b in zip(u, c, strict=True)]
    print(f"commprof / untraced per pair: median {statistics.median(ratios):.3f}, mean {statistics.mean(ratios):.3f}, "
          f"range {min(ratios):.3f}-{max(ratios):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
