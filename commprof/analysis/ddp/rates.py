"""Operation costs for the what-if replays, measured on the run itself.

Three sources, best first: the trace's own operators (what the run really did: large element-wise operators
on CPU traces; thin ``bmm`` products where PowerSGD ran), the capture's rate probe (``commprof.capture.probe``,
in the sidecar: the operations the run did not do), and, where neither measured a rate, an assumed value that
is named as such: what-ifs that rest on an assumed rate
are shown without advice (``advice``).  Rates are pooled over the run's ranks (median), as the ranks of one
job run the same hardware and software.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ...model import Run, ThinProduct

MIN_SAMPLES = 3
# bytes/s of one element-wise pass when nothing measured it (CPU: one core's memory bandwidth; GPU: a fraction
# of HBM's); named "assumed" wherever used
ASSUMED_PASS_BPS = {"cpu": 4e9, "cuda": 500e9}
ASSUMED_OP_NS = 60e3 / 2  # host cost of one small operator group (views, norms) when nothing measured it
PROBE, TRACE, ASSUMED = "probe", "trace", "assumed"


@dataclass(frozen=True, slots=True)
class OpRates:
    """The replay's per-operation costs, each with where it came from."""

    device: str
    pass_bps: float  # in-place element-wise pass, bytes of the tensor per second
    fresh_bps: float  # element-wise operator writing a fresh tensor (clone, a - b)
    products: dict[tuple[str, int, int, int], float] = field(default_factory=dict)  # (kind, n, m, r) -> ns
    orthogonalize: dict[tuple[int, int], float] = field(default_factory=dict)  # (rows, r) -> ns
    sources: dict[str, str] = field(default_factory=dict)  # "pass", "fresh", "products" -> PROBE/TRACE/ASSUMED

    def product_ns(self, kind: str, n: int, m: int, r: int, elem_bytes: int = 4) -> tuple[float, bool]:
        """The time of one thin product, and whether it rests on a measurement: the measured shape, else the
        nearest measured shape of the same kind scaled by matrix size, else a memory pass over the matrix."""
        exact = self.products.get((kind, n, m, r))
        if exact is not None:
            return exact, True
        same = [k for k in self.products if k[0] == kind and k[3] == r] or [k for k in self.products if k[0] == kind]
        if same:
            k = min(same, key=lambda k: (abs(math.log(k[1] * k[2]) - math.log(n * m)), abs(k[3] - r)))
            return self.products[k] * (n * m) / (k[1] * k[2]), True
        return n * m * elem_bytes / self.pass_bps * 1e9 + ASSUMED_OP_NS, False

    def orthogonalize_ns(self, rows: int, r: int) -> float:
        exact = self.orthogonalize.get((rows, r))
        if exact is not None:
            return exact
        if self.orthogonalize:
            k = min(self.orthogonalize, key=lambda k: (abs(math.log(k[0] * k[1]) - math.log(rows * r))))
            return self.orthogonalize[k] * max(rows * r / (k[0] * k[1]), 1.0)
        return ASSUMED_OP_NS

    def measured(self, what: str) -> bool:
        return self.sources.get(what, ASSUMED) != ASSUMED


def op_rates(run: Run) -> OpRates:
    """The run's operation costs, pooled over its ranks."""
    device = run.ranks[0].device_kind if run.ranks else "cpu"
    probes = [rt.sidecar.rates for rt in run.ranks if rt.sidecar is not None and rt.sidecar.rates is not None]
    inplace: list[float] = []
    fresh: list[float] = []
    traced: list[ThinProduct] = []
    for rt in run.ranks:
        ew = rt.elementwise
        if rt.device_kind == "cpu" and ew is not None and ew.shape[0] >= 2:  # a CPU op's duration is its work
            flags = ew[2].tolist() if ew.shape[0] >= 3 else [0] * ew.shape[1]
            for nb, ns, f in zip(ew[0].tolist(), ew[1].tolist(), flags, strict=True):
                if ns > 0:
                    (fresh if f else inplace).append(nb / ns * 1e9)
        if rt.device_kind == "cpu":
            traced.extend(rt.products)
    sources: dict[str, str] = {}
    # the run's own operators first (what the run really did), then the probe, then an assumption
    pass_bps, sources["pass"] = _pick(inplace if len(inplace) >= MIN_SAMPLES else [],
                                      [p.pass_bps for p in probes if p.pass_bps])
    pass_bps = pass_bps or ASSUMED_PASS_BPS.get(device, 4e9)
    fresh_bps, sources["fresh"] = _pick(fresh, [p.fresh_bps for p in probes if p.fresh_bps])
    fresh_bps = fresh_bps or pass_bps
    from_trace = _by_key(traced)
    from_probe = _by_key([t for p in probes for t in p.products])
    products = {**from_probe, **from_trace}  # the run's own products first, the probe's for the others
    sources["products"] = (f"{TRACE} and {PROBE}" if from_trace and from_probe else TRACE if from_trace
                           else PROBE if from_probe else ASSUMED)
    orth: dict[tuple[int, int], list[float]] = defaultdict(list)
    for p in probes:
        for rows, r, ns in p.orthogonalize:
            orth[(rows, r)].append(ns)
    return OpRates(device, float(pass_bps), float(fresh_bps), products,
                   {k: float(np.median(v)) for k, v in orth.items()}, sources)


def _pick(from_trace: list[float], from_probe: list[float]) -> tuple[float | None, str]:
    if from_trace:
        return float(np.median(from_trace)), TRACE
    if from_probe:
        return float(np.median(from_probe)), PROBE
    return None, ASSUMED


def _by_key(products: list[ThinProduct]) -> dict[tuple[str, int, int, int], float]:
    per: dict[tuple[str, int, int, int], list[float]] = defaultdict(list)
    for t in products:
        per[(t.kind, t.n, t.m, t.r)].append(t.ns)
    return {k: float(np.median(v)) for k, v in per.items()}
