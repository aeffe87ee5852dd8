"""compare's verdict on repeated real runs: how often two runs of the same setting are called "no detectable
change" (its false-positive rate: a verdict of "faster" or "slower" between runs that differ by nothing but
chance), and how often a small real change is detected (its power).

Every run is the same 2-rank gloo DDP job (tests/e2e/test_verdict.py's, traced with commprof.trace), ``--runs``
times as it is, and ``--slow-runs`` times with rank 1 sleeping ``--slow-ms`` per step (a real straggler: the step
is that much slower, less what the sleep overlaps).  Every pair of same-setting runs is compared in both orders'
place once (``commprof.analysis.uncertainty.verdict``), every (same, slow) pair once.  The pairs share runs, so
they are not independent trials: the rates are what this set of runs gives, with the runs' own step spread beside
them.

    python benchmarks/bench_compare_verdict.py [--runs 8] [--slow-runs 3] [--slow-ms 8] [--pin] [--repeats 2]

With ``--repeats K`` the same runs are also judged K per side (``compare --also-before / --also-after``), where the
test is on the runs' mean steps and their spread measures the drift between runs.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

JOB = {"nproc": 2, "steps": 14, "width": 256, "layers": 2, "batch": 2048, "bucket_cap_mb": 25}


def one(extra: dict) -> str:
    from commprof.workloads.demo import launch

    d = tempfile.mkdtemp(prefix="commprof-verdict-")
    launch(d, **{**JOB, **extra})
    return d


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--slow-runs", type=int, default=3)
    ap.add_argument("--slow-ms", type=float, default=8.0)
    ap.add_argument("--pin", action="store_true", help="each rank pinned to a CPU of its own")
    ap.add_argument("--repeats", type=int, default=2, help="runs per side for the repeated runs' test (0: none)")
    args = ap.parse_args()
    JOB["pin"] = args.pin
    from bandcheck import cpu_model

    import commprof
    from commprof.analysis.uncertainty.verdict import FASTER, NO_CHANGE, SLOWER, step_samples, verdict

    same = [commprof.load(one({})) for _ in range(args.runs)]
    slow = [commprof.load(one({"slow_rank": 1, "slow_ms": args.slow_ms})) for _ in range(args.slow_runs)]
    print(f"# {cpu_model()}; job {JOB}; {args.runs} runs as they are, {args.slow_runs} with rank 1 sleeping "
          f"{args.slow_ms:g} ms per step")
    for i, r in enumerate(same + slow):
        vals, _src = step_samples(r)
        tag = f"same #{i}" if i < len(same) else f"slow #{i - len(same)}"
        print(f"{tag:<8} mean step {statistics.mean(vals):7.2f} ms, median {statistics.median(vals):7.2f}, "
              f"spread (stdev) {statistics.stdev(vals):5.2f} ms over {len(vals)} steps")
    fp: Counter[str] = Counter()
    deltas = []
    for a, b in itertools.combinations(same, 2):
        v = verdict(a, b)
        fp[v.change] += 1
        if v.delta_ms is not None:
            deltas.append(v.delta_ms)
    n = sum(fp.values())
    print(f"same setting, {n} pairs: no detectable change {fp[NO_CHANGE]}/{n}, faster {fp[FASTER]}, slower "
          f"{fp[SLOWER]} (false-positive rate {100 * (n - fp[NO_CHANGE]) / n:.0f}%); |delta| median "
          f"{statistics.median(abs(d) for d in deltas):.2f} ms, max {max(abs(d) for d in deltas):.2f} ms")
    det: Counter[str] = Counter()
    got = []
    for a, b in itertools.product(same, slow):
        v = verdict(a, b)
        det[v.change] += 1
        if v.delta_ms is not None:
            got.append(v.delta_ms)
    m = sum(det.values())
    if m:
        print(f"rank 1 sleeping {args.slow_ms:g} ms per step, {m} pairs: slower {det[SLOWER]}/{m}, no detectable "
              f"change {det[NO_CHANGE]}, faster {det[FASTER]}; delta median {statistics.median(got):+.2f} ms")
    drifts(same, slow, args.slow_ms)
    if args.repeats > 1:
        repeated(same, slow, args.repeats, args.slow_ms)
    return 0


def drifts(same: list, slow: list, slow_ms: float) -> None:
    """The single-run verdict on the same pairs under other assumed drifts (the standard deviation of a run's mean
    step from run to run, % of the step): what each would have given on these runs."""
    from commprof.analysis.uncertainty.maths import RUN_DRIFT_SD_PCT
    from commprof.analysis.uncertainty.verdict import NO_CHANGE, SLOWER, verdict

    for d in sorted({1.1, 2.0, 3.0, 4.0, 5.0, 6.0, RUN_DRIFT_SD_PCT}):
        pairs = list(itertools.combinations(same, 2))
        fp = sum(verdict(a, b, drift_sd_pct=d).change != NO_CHANGE for a, b in pairs)
        det = sum(verdict(a, b, drift_sd_pct=d).change == SLOWER for a in same for b in slow)
        tag = " (the default)" if d == RUN_DRIFT_SD_PCT else ""
        print(f"assumed drift sd {d:3.1f}%{tag}: false positives {fp}/{len(pairs)} ({100 * fp / len(pairs):.0f}%)"
              + (f", rank 1 sleeping {slow_ms:g} ms: slower {det}/{len(same) * len(slow)}" if slow else ""))


def repeated(same: list, slow: list, k: int, slow_ms: float) -> None:
    """The same runs in consecutive groups of ``k`` per side (``compare --also-before/--also-after``): every pair of
    same-setting groups, and every (same, slow) pair of groups."""
    from commprof.analysis.uncertainty.repeats import judge
    from commprof.analysis.uncertainty.verdict import NO_CHANGE, SLOWER

    groups = [same[i:i + k] for i in range(0, len(same) - k + 1, k)]
    slows = [slow[i:i + k] for i in range(0, len(slow) - k + 1, k)]
    pairs = list(itertools.combinations(groups, 2))
    fp = sum(judge(a, b).change != NO_CHANGE for a, b in pairs)
    print(f"{k} runs per side, same setting, {len(pairs)} pairs of groups: {len(pairs) - fp}/{len(pairs)} no "
          f"detectable change (false-positive rate {100 * fp / max(len(pairs), 1):.0f}%)")
    if slows:
        det = sum(judge(a, b).change == SLOWER for a in groups for b in slows)
        print(f"{k} runs per side, rank 1 sleeping {slow_ms:g} ms per step: slower {det}/{len(groups) * len(slows)}")


if __name__ == "__main__":
    sys.exit(main())
