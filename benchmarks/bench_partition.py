"""Proof of the partition advisor: a 2-stage GPipe pipeline over gloo in 2 CPU processes, 8 equal layers
(Linear(1024, 1024) + ReLU), 4 micro-batches, deliberately unbalanced.  Trace the unbalanced split with
``commprof.trace(modules=...)``, take the advised split, then measure both without the profiler
(alternating runs, medians) and compare with the prediction.

    python benchmarks/bench_partition.py [--reps 2] [--split 7,1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(split: list[int], reps: int, steps: int = 10, pooled: list[float] | None = None) -> list[float]:
    """Per run, the median step of its slowest stage (ms); every step of the last stage added to ``pooled``."""
    from commprof.workloads.pipedemo import launch

    out = []
    for _ in range(reps):
        d = tempfile.mkdtemp(prefix="commprof-pipe-")
        launch(d, split=split, steps=steps, times=d)
        times = [json.loads((Path(d) / f"times{r}.json").read_text()) for r in range(len(split))]
        out.append(max(statistics.median(t[3:]) for t in times) / 1e6)
        if pooled is not None:
            pooled.extend(t / 1e6 for t in times[-1][3:])
    return out


def proof(split: list[int], reps: int) -> dict:
    import commprof
    from commprof.workloads.pipedemo import launch

    d = tempfile.mkdtemp(prefix="commprof-pipe-")
    launch(d, split=split, steps=12, trace=True)
    rep = commprof.analyze(commprof.load(d))
    adv = next((a for a in rep.advice if a.knob == "partition"), None)
    from commprof.analysis.uncertainty.maths import band

    res = {"traced": split, "advice": adv, "report": rep}
    if adv is None:
        return res
    # the traced split's own step is measured, not predicted: its band is the run-to-run drift and the noise
    res["baseline_range_ms"] = band(adv.baseline_step_ms, rep.noise, None, changed=False)
    from commprof.analysis.uncertainty.maths import variation_pct

    base: list[float] = []
    new: list[float] = []
    pooled: tuple[list[float], list[float]] = ([], [])
    for _ in range(reps):  # alternate the two splits
        base += measure(split, 1, pooled=pooled[0])
        new += measure(list(adv.value), 1, pooled=pooled[1])
    res.update(measured_base=statistics.median(base), measured_new=statistics.median(new),
               spread_base=variation_pct(pooled[0]), spread_new=variation_pct(pooled[1]))
    return res


def table(res: dict) -> str:
    adv = res["advice"]
    rows = [(f"{res['traced']} (traced)", adv.baseline_step_ms, res.get("baseline_range_ms"), res["measured_base"],
             res.get("spread_base")),
            (f"{adv.value} (advised)", adv.predicted_step_ms, adv.predicted_range_ms, res["measured_new"],
             res.get("spread_new"))]
    lines = [f"{'layers per stage':<22} {'predicted ms':>12} {'band':>10} {'measured ms':>12} {'error':>8} "
             f"{'meas. var':>9}"]
    for name, p, rng, m, var in rows:
        band = f"{rng[0]:.0f}-{rng[1]:.0f}" if rng else "-"
        v = f"{var:.1f}%" if var is not None else "-"
        lines.append(f"{name:<22} {p:>12.1f} {band:>10} {m:>12.1f} {100 * (p - m) / m:>+7.1f}% {v:>9}")
    lines.append(f"traced run: {res['report'].noise.describe()}")
    gain = 1 - res["measured_new"] / res["measured_base"]
    lines.append(f"advised split measured {100 * gain:.1f}% faster than the traced one")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--split", default="7,1")
    args = ap.parse_args()
    res = proof([int(x) for x in args.split.split(",")], args.reps)
    if res["advice"] is None:
        print("no partition advice was given")
        return 1
    print(table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
