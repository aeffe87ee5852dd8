"""Proof of the DDP -> FSDP2 what-if on an emulated network: 2 ranks in two Linux network namespaces joined by a
2 Gbit/s veth pair (benchmarks/netns.py), gloo on CPU.

Each model is traced under DDP with commprof.trace (profile_memory=True); the what-if predicts FSDP2's step and
peak memory per rank (fully_shard per top-level module, reshard_after_forward True and False).  The same model is
then trained with fully_shard for real: its step measured without the profiler (median of the per-step medians of
``reps`` runs), and its peak memory measured by tracing it with profile_memory=True: the median step peak of the
live tensor bytes (reader/memline.py) plus the parameters and optimizer state the workload counts on its tensors
(allocated before profiling started, so not in the timeline).

    python benchmarks/bench_ddp2fsdp_netns.py [--reps 2] [--model mlp|transformer|both|all]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from netns import ADDR, TwoHosts  # noqa: E402

MODELS = {"mlp": {"model": "mlp", "width": 1024, "layers": 8, "batch": 128},
          "transformer": {"model": "transformer", "width": 256, "layers": 4, "batch": 16, "seq": 64, "heads": 4},
          # held-out shapes: another width and depth, and Adam
          "mlp-wide": {"model": "mlp", "width": 1536, "layers": 4, "batch": 64, "optimizer": "adam"},
          "transformer-deep": {"model": "transformer", "width": 192, "layers": 6, "batch": 16, "seq": 64,
                               "heads": 4}}
STEPS = 9
TRACED_STEPS = 20


@dataclass
class Row:
    model: str
    raf: bool
    predicted_ms: float
    low_ms: float
    high_ms: float
    measured_ms: float
    predicted_peak: int | None
    measured_peak: int | None
    spread_pct: float | None = None  # the measured runs' steps, pooled: their variation (a disturbance shows there)

    @property
    def setting(self) -> str:
        return f"{self.model} fsdp2 reshard_after_forward={self.raf}"

    @property
    def band_ms(self) -> tuple[float, float]:
        return self.low_ms, self.high_ms

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.predicted_ms - self.measured_ms) / self.measured_ms

    @property
    def peak_error_pct(self) -> float | None:
        if not self.predicted_peak or not self.measured_peak:
            return None
        return 100.0 * (self.predicted_peak - self.measured_peak) / self.measured_peak

    @property
    def in_band(self) -> bool:
        return self.low_ms <= self.measured_ms <= self.high_ms


def _run(net: TwoHosts, out: str, cfg: dict) -> None:
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    net.launch(lambda i, port: [sys.executable, "-m", "commprof.workloads.fsdpdemo", str(i), "2", ADDR[0], str(port),
                                out, json.dumps(cfg)], env=env)


def _traced(net: TwoHosts, model: dict, extra: dict) -> tuple[str, str]:
    d, t = tempfile.mkdtemp(prefix="commprof-d2f-"), tempfile.mkdtemp(prefix="commprof-d2f-")
    _run(net, d, {**model, **extra, "steps": TRACED_STEPS, "trace": True, "profile_memory": True, "wait": 1,
                  "warmup": 1, "active": 3, "times": t})
    return d, t


def _measured_step(net: TwoHosts, model: dict, raf: bool, reps: int) -> tuple[float, float | None]:
    """The median over ``reps`` runs of the slower rank's median step (ms), and the variation (%) of the steps of
    every run and rank pooled."""
    from commprof.analysis.uncertainty.maths import variation_pct

    vals, pooled = [], []
    for _ in range(reps):
        d = tempfile.mkdtemp(prefix="commprof-d2f-")
        _run(net, d, {**model, "parallel": "fsdp", "wrap": "children", "reshard_after_forward": raf,
                      "steps": STEPS, "trace": False, "times": d})
        times = [json.loads((Path(d) / f"times{r}.json").read_text()) for r in (0, 1)]
        vals.append(max(statistics.median(t[2:]) for t in times) / 1e6)
        pooled.extend(v / 1e6 for t in times for v in t[2:])
    return statistics.median(vals), variation_pct(pooled)


def _measured_peak(net: TwoHosts, model: dict, raf: bool) -> int | None:
    import commprof

    d, t = _traced(net, model, {"parallel": "fsdp", "wrap": "children", "reshard_after_forward": raf})
    rep = commprof.analyze(commprof.load(d))
    if rep.fsdp is None or rep.fsdp.measured_peak_bytes is None:
        return None
    state = max(sum(json.loads((Path(t) / f"state{r}.json").read_text()).values()) for r in (0, 1))
    return rep.fsdp.measured_peak_bytes + state


def proof(net: TwoHosts, name: str, reps: int) -> tuple[list[Row], dict]:
    """Rows per reshard_after_forward, and ``{"report": the traced DDP run's report}`` (tests/e2e/proofs.py)."""
    import commprof

    model = MODELS[name]
    d, _t = _traced(net, model, {"parallel": "ddp"})
    rep = commprof.analyze(commprof.load(d), whatif=("fsdp",))
    a = rep.parallel
    assert a is not None, "no DDP -> FSDP2 what-if"
    rows = []
    for w in a.whatifs:
        raf = bool(w.reshard_after_forward)
        step, spread = _measured_step(net, model, raf, reps)
        rows.append(Row(name, raf, w.predicted_step_ms, *w.predicted_range_ms, step, w.predicted_peak_bytes,
                        _measured_peak(net, model, raf), spread))
    return rows, {"report": rep}


def table(rows: list[Row]) -> str:
    mib = 2**20
    out = [f"{'model':<17} {'raf':<6} {'pred ms':>8} {'band ms':>17} {'meas ms':>8} {'err':>7} {'in band':>7} "
           f"{'pred MiB':>9} {'meas MiB':>9} {'err':>7} {'spread':>7}"]
    for r in rows:
        pe = r.peak_error_pct
        out.append(f"{r.model:<17} {str(r.raf):<6} {r.predicted_ms:>8.1f} {f'[{r.low_ms:.0f}, {r.high_ms:.0f}]':>17} "
                   f"{r.measured_ms:>8.1f} {r.error_pct:>+6.1f}% {str(r.in_band):>7} "
                   f"{(r.predicted_peak or 0) / mib:>9.1f} {(r.measured_peak or 0) / mib:>9.1f} "
                   f"{(f'{pe:+.1f}%' if pe is not None else '-'):>7} "
                   f"{(f'{r.spread_pct:.1f}%' if r.spread_pct is not None else '-'):>7}")
    return "\n".join(out)


def _cpu() -> str:
    """The CPU model (/proc/cpuinfo) and its cores."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        name = next(x.split(":", 1)[1].strip() for x in lines if x.startswith("model name"))
        return f"{name} x {sum(x.startswith('processor') for x in lines)}"
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--model", default="both", choices=[*MODELS, "both", "all"])
    args = ap.parse_args()
    names = ["mlp", "transformer"] if args.model == "both" else list(MODELS) if args.model == "all" else [args.model]
    print(f"machine: {_cpu()}, {platform.node()}; 2 ranks, gloo, 2 Gbit/s netns")
    with TwoHosts(rate="2gbit") as net:
        for name in names:
            rows, info = proof(net, name, args.reps)
            print(table(rows), flush=True)
            print(f"  traced DDP run: {info['report'].noise.describe()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
