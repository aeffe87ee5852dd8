"""FSDP2 -> DDP (``analysis/memory/fsdp2ddp.py``): does DDP's predicted step band hold the step DDP measures, quiet
and disturbed?

Each repetition traces each model's FSDP2 job (2 ranks, gloo on this host, profile_memory=True, as
tests/e2e/test_fsdp2ddp_jobs.py; every ``--busy-every``-th repetition traced beside a busy process pinned to core 0),
reads the what-if's DDP step (gradient_as_bucket_view=False, DDP's default) and band, then trains the same model
under DDP without the profiler: the slower rank's median step after two start-up steps.  Prints each row (with
the compute scale and where it came from) and, per model and condition, how often the measured step fell inside
its band (``bandcheck.summary``).

    python benchmarks/bench_fsdp2ddp_bands.py [--reps 4] [--busy-every 2]   (MODELS: FSDP2DDP_MODELS=mlp,transformer)
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bandcheck import Row  # noqa: E402 (after the path)

from commprof.workloads.fsdpdemo import PARALLEL_COMMON as COMMON  # noqa: E402 (the e2e proof's models)
from commprof.workloads.fsdpdemo import PARALLEL_MODELS as MODELS  # noqa: E402


def measured_ddp(cfg: dict) -> tuple[float, float | None]:
    """DDP without the profiler: the slower rank's median step (ms) after 2 start-up steps, and their variation."""
    from commprof.analysis.uncertainty.maths import variation_pct
    from commprof.workloads.fsdpdemo import launch

    d = tempfile.mkdtemp(prefix="commprof-f2d-")
    launch(d, nproc=2, **{**COMMON, **cfg}, parallel="ddp", trace=False, steps=12, times=d)
    ts = [json.loads((Path(d) / f"times{r}.json").read_text())[2:] for r in (0, 1)]
    return max(statistics.median(t) for t in ts) / 1e6, variation_pct([v / 1e6 for t in ts for v in t])


def one(loud: bool) -> list[tuple[str, Row]]:
    from bandcheck import busy

    import commprof
    from commprof.workloads.fsdpdemo import launch

    names = os.environ.get("FSDP2DDP_MODELS", "mlp,transformer").split(",")
    rows = []
    for name in names:
        cfg = MODELS[name]
        d = tempfile.mkdtemp(prefix="commprof-f2d-")
        with busy(loud):
            launch(d, nproc=2, **{**COMMON, **cfg}, parallel="fsdp", steps=10, profile_memory=True)
        rep = commprof.analyze(commprof.load(d), whatif=("ddp",))
        a = rep.parallel
        if a is None or not a.whatifs:
            print(f"{'busy ' if loud else 'quiet'} {name}: no FSDP2 -> DDP what-if", flush=True)
            continue
        w = a.whatifs[0]
        step, spread = measured_ddp(cfg)
        lo, hi = w.predicted_range_ms
        print(f"{'busy ' if loud else 'quiet'} {name:<24} predicted {w.predicted_step_ms:6.1f} band "
              f"{lo:6.1f}-{hi:6.1f} measured {step:6.1f} ({100 * (w.predicted_step_ms / step - 1):+.1f}%)"
              f"{'' if lo <= step <= hi else '  OUTSIDE'}; scale {a.compute_scale or 1:.3f} "
              f"({a.compute_scale_source}); traced run: {rep.noise.describe()}", flush=True)
        rows.append((f"{name} ddp", Row(f"{name} ddp", w.predicted_step_ms, w.predicted_range_ms, step, spread)))
    return rows


def main() -> int:
    from bandcheck import repeat

    return repeat(one, 4)


if __name__ == "__main__":
    sys.exit(main())
