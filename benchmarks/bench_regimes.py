"""The root cause on repeated real runs with a rank slow for part of the run: how often the regime verdict names the
right rank, its steps and its cost, and how often a run with nothing injected is given a regime or a rank at all.

Every run is the same 2-rank gloo DDP job (``commprof.workloads.demo``, traced with commprof.trace, 16 profiled
steps: ``wait=0, warmup=2, active=16``), in four kinds, ``--runs`` times each:

- ``quiet``: nothing injected (false claims: a rank named, a regime found);
- ``from``: rank 1 sleeps ``--slow-ms`` before every backward pass from step 10 on (8 of 16 profiled steps);
- ``swap``: rank 0 sleeps in steps before 10, rank 1 from step 10 on (the job's step does not change);
- ``episode``: rank 1 sleeps in steps 7-12 only (6 of 16);
- ``short``: rank 1 sleeps in steps 8-10 only (3 of 16: too few for an order test, told by its size).

A verdict is *right* where it names the slow rank of the regime it reports, that regime overlaps the injected steps
by at least half its steps, and its predicted gain lies within 0.5-1.6x the sleep; *whole* where it names the slow
rank over the whole run instead (no regime).

    python benchmarks/bench_regimes.py [--runs 4] [--slow-ms 25] [--kinds quiet short]
    python benchmarks/bench_regimes.py --read /tmp/commprof-regime-*   # run folders of an earlier run, read again
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

JOB = {"nproc": 2, "steps": 20, "width": 256, "layers": 4, "batch": 32, "bucket_cap_mb": 0.25, "wait": 0,
       "warmup": 2, "active": 16}
FIRST, LAST = 2, 17  # the profiled steps
KINDS = ("quiet", "from", "swap", "episode", "short")


def _slow_steps(kind: str) -> dict[int, set[int]]:
    """Per rank, the steps it sleeps in."""
    every = set(range(FIRST, LAST + 1))
    return {"quiet": {}, "from": {1: {s for s in every if s >= 10}},
            "swap": {0: {s for s in every if s < 10}, 1: {s for s in every if s >= 10}},
            "episode": {1: set(range(7, 13))}, "short": {1: {8, 9, 10}}}[kind]


def _run(kind: str, slow_ms: float) -> str:
    from commprof.workloads.demo import launch

    d = tempfile.mkdtemp(prefix=f"commprof-regime-{kind}-")
    plan = {r: [min(v), max(v)] for r, v in _slow_steps(kind).items()}
    launch(d, **JOB, slow_ms=slow_ms if plan else 0.0, slow_plan=plan or None)
    return d


def _judge(kind: str, c, slow_ms: float) -> str:
    slow = _slow_steps(kind)
    if not c.ranks:
        return "none"
    if kind == "quiet":
        return "false rank" + (" (regime)" if c.regime else "")
    if len(c.ranks) != 1 or c.ranks[0] not in slow:
        return "wrong rank"
    gain_ok = 0.5 * slow_ms <= (c.predicted_gain_ms or 0) <= 1.6 * slow_ms
    if c.regime is None:
        return "whole" + ("" if gain_ok else " (gain off)")
    held = set(c.regime)
    overlap = len(held & slow[c.ranks[0]]) / len(held)
    return ("right" if overlap >= 0.5 and gain_ok else f"regime off (overlap {overlap:.0%}, gain "
            f"{c.predicted_gain_ms or 0:.1f} ms)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--slow-ms", type=float, default=25.0)
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    ap.add_argument("--read", nargs="+", type=Path, help="run folders made by this benchmark (commprof-regime-KIND-*)")
    args = ap.parse_args()
    from bandcheck import cpu_model

    import commprof

    print(f"# {cpu_model()}; job {JOB}; rank sleeps {args.slow_ms:g} ms before the backward pass in its slow steps")
    bad = [d for d in args.read or () if len(d.name.split("-")) < 4 or d.name.split("-")[2] not in KINDS]
    if bad:
        print(f"{bad[0]}: not a folder this benchmark made (commprof-regime-KIND-*)", file=sys.stderr)
        return 2
    jobs = ([(d.name.split("-")[2], i, d) for i, d in enumerate(sorted(args.read))] if args.read else
            [(kind, i, None) for i in range(args.runs) for kind in args.kinds])
    tally: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
    for kind, i, folder in jobs:
        rep = commprof.analyze(commprof.load(folder or _run(kind, args.slow_ms)))
        c = rep.critical.cause if rep.critical is not None else None
        got = "no path" if c is None else _judge(kind, c, args.slow_ms)
        tally[kind][got] += 1
        where = "" if c is None or c.regime is None else f" steps {c.regime[0]}-{c.regime[-1]}"
        gain = "" if c is None or c.predicted_gain_ms is None else f" gain {c.predicted_gain_ms:.1f} ms"
        print(f"run {i} {kind:<8} {got:<12} ranks {list(c.ranks) if c else '-'}{where}{gain}", flush=True)
    for kind in KINDS:
        if tally[kind]:
            runs = sum(tally[kind].values())
            print(f"{kind:<8} " + ", ".join(f"{k} {v}/{runs}" for k, v in tally[kind].most_common()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
