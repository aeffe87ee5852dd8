"""Proof of the FSDP advisor on an emulated network: FSDP2 (fully_shard) over gloo, 2 ranks in two Linux network
namespaces joined by a 2 Gbit/s veth pair (the setup of bench_advisor_netns.py).

Traced at FSDP's defaults with commprof.trace (profile_memory=True), then every setting the advisor predicts
measured without the profiler (alternating runs, medians of the per-step medians), and the advised setting traced
again with profile_memory=True to measure its peak memory.  Two models: 8 x (Linear(1024, 1024) + ReLU) + a head,
batch 128; and 4 pre-norm transformer blocks of width 256 over 64 tokens, batch 16.

    python benchmarks/bench_fsdp_netns.py [--reps 3] [--model mlp|transformer|both]
"""

from __future__ import annotations

import argparse
import json
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
          "transformer": {"model": "transformer", "width": 256, "layers": 4, "batch": 16, "seq": 64, "heads": 4}}
STEPS = 9  # untraced runs: the median of steps 2-8
TRACED_STEPS = 20  # traced runs: steps 2-4 profiled, the 15 after them measure the step outside the profiler


@dataclass
class Row:
    model: str
    setting: str
    predicted_ms: float
    measured_ms: float
    advised: bool = False
    band_ms: tuple[float, float] | None = None  # the report's predicted_range_ms
    spread_pct: float | None = None  # step-to-step variation of the measurement runs (all their steps pooled)

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.predicted_ms - self.measured_ms) / self.measured_ms

    @property
    def inside(self) -> bool:
        return self.band_ms is not None and self.band_ms[0] <= self.measured_ms <= self.band_ms[1]


def _run(net: TwoHosts, out: str, cfg: dict) -> None:
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    net.launch(lambda i, port: [sys.executable, "-m", "commprof.workloads.fsdpdemo", str(i), "2", ADDR[0], str(port),
                                out, json.dumps(cfg)], env=env)


def settings_of(knob: str, value) -> dict:
    """The workload's settings for one of the advisor's what-ifs."""
    if knob == "reshard_after_forward":
        return {"reshard_after_forward": bool(value)}
    if knob == "fsdp_prefetch":
        return {"prefetch": int(value)}
    return {"reshard_after_forward": bool(value["reshard_after_forward"]), "prefetch": int(value["fsdp_prefetch"])}


def trace(net: TwoHosts, model: dict, extra: dict | None = None):
    import commprof

    d = tempfile.mkdtemp(prefix="commprof-fsdp-")
    _run(net, d, {**model, **(extra or {}), "steps": TRACED_STEPS, "trace": True, "profile_memory": True, "wait": 1,
                  "warmup": 1, "active": 3})
    return commprof.analyze(commprof.load(d))


LAST_SPREAD: list[float | None] = []  # the step-to-step variation (%) of the last measure()'s settings


def measure(net: TwoHosts, model: dict, settings: list[dict], reps: int) -> list[float]:
    from commprof.analysis.uncertainty.maths import variation_pct

    per: list[list[float]] = [[] for _ in settings]
    pooled: list[list[float]] = [[] for _ in settings]
    for _ in range(reps):
        for k, s in enumerate(settings):
            d = tempfile.mkdtemp(prefix="commprof-fsdp-")
            _run(net, d, {**model, **s, "steps": STEPS, "trace": False, "times": d})
            times = [json.loads((Path(d) / f"times{r}.json").read_text()) for r in (0, 1)]
            per[k].append(max(statistics.median(t[2:]) for t in times) / 1e6)
            pooled[k].extend(t / 1e6 for t in times[0][2:])
    LAST_SPREAD[:] = [variation_pct(p) for p in pooled]
    return [statistics.median(v) for v in per]


def proof(net: TwoHosts, name: str, reps: int, every_setting: bool = True,
          disturb: bool = False) -> tuple[list[Row], dict]:
    """Trace at the defaults (beside a busy process with ``disturb``), measure the settings (all the what-ifs, or
    the defaults and the advice only), and trace the advised setting for its peak memory."""
    from bandcheck import busy

    model = MODELS[name]
    with busy(disturb):
        rep = trace(net, model)
    f = rep.fsdp
    assert f is not None, "no FSDP analysis"
    adv = f.advice[0] if f.advice else None
    rows_in = [("defaults", {}, f.baseline_step_ms, False, f.baseline_range_ms)]
    rows_in += [(f"{w.knob}={w.value}", settings_of(w.knob, w.value), w.step_ms,
                 adv is not None and (w.knob, str(w.value)) == (adv.knob, str(adv.value)), w.range_ms)
                for w in f.whatifs]
    if not every_setting:
        rows_in = [r for r in rows_in if r[0] == "defaults" or r[3]]
    if adv is None and not every_setting:
        return [], {"report": rep, "advice": None}
    meas = measure(net, model, [r[1] for r in rows_in], reps)
    rows = [Row(name, label, pred, m, advised, rng, var) for (label, _s, pred, advised, rng), m, var
            in zip(rows_in, meas, LAST_SPREAD, strict=True)]
    info: dict = {"report": rep, "advice": adv}
    if adv is not None:
        after = trace(net, model, settings_of(adv.knob, adv.value))
        w = next(w for w in f.whatifs if (w.knob, str(w.value)) == (adv.knob, str(adv.value)))
        info["memory"] = (w.peak_memory_bytes, after.fsdp.measured_peak_bytes if after.fsdp else None)
        info["memory_range"] = w.peak_memory_range_bytes
    return rows, info


def table(rows: list[Row]) -> str:
    lines = [f"{'model':<12} {'setting':<62} {'predicted ms':>12} {'band':>10} {'measured ms':>12} {'error':>8} "
             f"{'inside':>6} {'meas. var':>9}"]
    for r in rows:
        band = f"{r.band_ms[0]:.0f}-{r.band_ms[1]:.0f}" if r.band_ms else "-"
        var = f"{r.spread_pct:.1f}%" if r.spread_pct is not None else "-"
        lines.append(f"{r.model:<12} {(r.setting + (' (advised)' if r.advised else '')):<62} {r.predicted_ms:>12.1f} "
                     f"{band:>10} {r.measured_ms:>12.1f} {r.error_pct:>+7.1f}% {'yes' if r.inside else 'NO':>6} "
                     f"{var:>9}")
    return "\n".join(lines)


def bands(n: int, reps: int, names: list[str], first: int = 0) -> int:
    """Each proof ``n`` times, every other one traced beside a busy process: how often each measured step fell
    inside its band (every what-if measured, advised or not)."""
    from bandcheck import cpu_model, summary

    results: list = []
    with TwoHosts(rate="2gbit") as net:
        for i in range(first, first + n):
            loud = i % 2 == 1
            for name in names:
                rows, info = proof(net, name, reps, every_setting=True, disturb=loud)
                print(table(rows), f"\n{name}: traced run {info['report'].noise.describe()}", flush=True)
                results += [(f"{name} {r.setting}", loud, r) for r in rows]
    print(f"# {cpu_model()}; {n} repetitions, every other traced beside a busy process pinned to core 0")
    print(summary(results))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--model", default="both", choices=["mlp", "transformer", "both"])
    ap.add_argument("--bands", type=int, default=0, help="repeat the proof this many times (see bands())")
    ap.add_argument("--first", type=int, default=0, help="with --bands: the first repetition's index (odd: busy)")
    args = ap.parse_args()
    names = list(MODELS) if args.model == "both" else [args.model]
    if args.bands:
        return bands(args.bands, args.reps, names, args.first)
    with TwoHosts(rate="2gbit") as net:
        for name in names:
            rows, info = proof(net, name, args.reps)
            print(table(rows))
            f = info["report"].fsdp
            print(f"{name}: model error on the traced run {f.error_pct:+.1f}%")
            if info.get("memory"):
                pred, meas = info["memory"]
                if pred and meas:
                    lo, hi = info.get("memory_range") or (pred, pred)
                    print(f"{name}: advised setting's peak memory predicted {pred / 2**20:.1f} MiB (traced passes "
                          f"{lo / 2**20:.1f}-{hi / 2**20:.1f}), measured {meas / 2**20:.1f} MiB "
                          f"({100 * (pred - meas) / meas:+.1f}%)")
            base = rows[0].measured_ms
            for r in rows[1:]:
                if r.advised:
                    print(f"{name}: advised {r.setting}: measured {100 * (1 - r.measured_ms / base):.1f}% faster "
                          f"than the defaults")
    return 0


if __name__ == "__main__":
    sys.exit(main())
