"""Gradient accumulation that synchronizes every micro-batch: does the advice's band (``gradient_syncs_per_step =
1``) hold the step measured with the gradients synchronized once per step?

Each repetition traces 2-rank gloo jobs on one host with 4 micro-batches per step, each synchronizing the gradients
(DDP: ``micro_batches=4, no_sync=False``, the demo's MLP and a quarter of it where the transfers weigh more; FSDP2:
``fsdpdemo``, ``sync_last_only=False``), every ``--busy-every``-th traced beside a busy process pinned to core 0;
reads the accumulation's advice (``analysis/ddp/nosync.py``), then measures each job without the profiler as traced
and synchronizing after the last micro-batch only (``no_sync()`` / ``set_requires_gradient_sync(False)`` on the
first 3): the mean step (the slower rank per step) after SKIP steps.  Prints each row and, per job and condition,
how often the measured step fell inside its band (``bandcheck.summary``).  python benchmarks/bench_no_sync.py
[--reps 6]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bandcheck import Row  # noqa: E402 (after the path)

SKIP = 3  # start-up steps left out of a measurement
STEPS = 12  # steps of a measurement; a traced run's: the profiled 2-4, then steps outside the profiler
# label -> (workload, its settings): the demo's DDP MLP, a quarter of it, and FSDP2 (fully_shard per layer)
SIZES = {"DDP demo MLP (6 x 1024, batch 64)": ("ddp", {}),
         "DDP small MLP (4 x 512, batch 32)": ("ddp", {"width": 512, "layers": 4, "batch": 32}),
         "FSDP2 MLP (4 x 1024, batch 32)": ("fsdp", {"width": 1024, "layers": 4, "batch": 32})}
SYNC_ONCE = {"ddp": {"no_sync": True}, "fsdp": {"sync_last_only": True}}
SYNC_EVERY = {"ddp": {"no_sync": False}, "fsdp": {"sync_last_only": False}}


def _launch(kind: str):
    from commprof.workloads import demo, fsdpdemo

    return demo.launch if kind == "ddp" else fsdpdemo.launch


def untraced(kind: str, cfg: dict) -> tuple[float, float | None]:
    """Mean step (ms, the slower rank per step) over the steps after SKIP, and their variation (%)."""
    from commprof.analysis.uncertainty.maths import variation_pct

    d = tempfile.mkdtemp(prefix="commprof-nosync-")
    _launch(kind)(d, nproc=2, steps=STEPS, trace=False, times=d, micro_batches=4, **cfg)
    ts = [json.loads((Path(d) / f"times{r}.json").read_text()) for r in (0, 1)]
    per = [max(a, b) / 1e6 for a, b in zip(*ts, strict=True)][SKIP:]
    return statistics.mean(per), variation_pct(per)


def one(label: str, kind: str, size: dict, loud: bool) -> Row | None:
    from bandcheck import busy

    import commprof

    d = tempfile.mkdtemp(prefix="commprof-nosync-")
    with busy(loud):
        _launch(kind)(d, nproc=2, steps=STEPS, micro_batches=4, **SYNC_EVERY[kind], **size)
    rep = commprof.analyze(commprof.load(d))
    acc = rep.ddp.accumulation
    tag = "busy " if loud else "quiet"
    if acc is None or acc.advice is None:
        print(f"{tag} {label:<32} no advice: {acc}", flush=True)
        return None
    a = acc.advice
    advised = any(x.knob == a.knob for x in rep.advice)
    now, _ = untraced(kind, {**size, **SYNC_EVERY[kind]})
    after, spread = untraced(kind, {**size, **SYNC_ONCE[kind]})
    lo, hi = a.predicted_range_ms or (a.predicted_step_ms, a.predicted_step_ms)
    print(f"{tag} {label:<32} step {a.baseline_step_ms:6.1f} (measured {now:6.1f})  "
          f"predicted {a.predicted_step_ms:6.1f} band {lo:6.1f}-{hi:6.1f}  measured {after:6.1f} "
          f"({100 * (a.predicted_step_ms / after - 1):+.0f}%)"
          f"{'' if lo <= after <= hi else '  OUTSIDE'}{'' if advised else '  (withheld)'}", flush=True)
    return Row(label, a.predicted_step_ms, a.predicted_range_ms, after, spread)


def main() -> int:
    from bandcheck import repeat

    def rep(loud: bool) -> list[tuple[str, Row]]:
        rows = [(label, one(label, kind, size, loud)) for label, (kind, size) in SIZES.items()]
        return [(label, r) for label, r in rows if r is not None]
    return repeat(rep, 6)


if __name__ == "__main__":
    sys.exit(main())
