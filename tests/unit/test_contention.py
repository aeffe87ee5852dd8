"""Gradient accumulation where gloo's transfers share the ranks' cores (``analysis.ddp.contention``).

Measured on the README's demo (2 ranks on 2 cores, loopback gloo; docs/advisor.md): micro-batches under no_sync()
took 33 ms where the traced backward ended at 40-45 ms, slowed by the all-reduces beside it; the prediction from
the traced backward missed 7 of 8 accumulation runs (k = 2, 4) below its band.  The band now reaches down to the
backward at the rate of its part before the first bucket's launch, which ran alone."""

from __future__ import annotations

import numpy as np
import pytest

from commprof.analysis.ddp.advice import WhatIf, _accumulation
from commprof.analysis.ddp.contention import alone_ready_ns
from commprof.analysis.ddp.rates import ASSUMED, OpRates
from commprof.analysis.ddp.whatif import Prediction, Scenario
from commprof.units import MiB

RATES = OpRates("cpu", 4e9, 4e9, sources={"pass": ASSUMED, "fresh": ASSUMED, "products": ASSUMED})
MB4 = 4 * MiB


def _scenario(ready_ms: list[float], host: str | None = "vm", cap: int = 2 * MB4, optimizer_ms: float = 0.0,
              backend: str = "gloo") -> Scenario:
    """Gradients of 4 MiB each, ready at ``ready_ms``; buckets of two."""
    n = len(ready_ms)
    return Scenario(rank=0, names=tuple(f"p{i}" for i in range(n)), sizes=np.full(n, MB4, dtype=float),
                    ready_ns=np.array(ready_ms) * 1e6, tail_ns=8_000_000, profiled_step_ns=60_000_000,
                    unprofiled_step_ns=None, cap_bytes=cap, first_bucket_bytes=None, alpha_s=1e-4, beta_bps=1e9,
                    rates=RATES, world_size=2, backend=backend, one_stack_host=host,
                    optimizer_ns=int(optimizer_ms * 1e6))


def test_the_rest_of_the_backward_at_the_rate_of_its_part_before_the_first_launch():
    # bucket 0 = p0, p1: p1 took 3 ms after p0; p2..p5 were slowed to 6 ms each by the transfers beside them
    sc = _scenario([10.0, 13.0, 19.0, 25.0, 31.0, 37.0])
    assert alone_ready_ns(sc) == pytest.approx((13.0 + 4 * 3.0) * 1e6)


def test_no_estimate_without_a_part_to_take_a_rate_from_or_when_not_shorter():
    assert alone_ready_ns(_scenario([10.0, 13.0, 19.0], cap=MB4)) is None  # bucket 0 holds one gradient
    assert alone_ready_ns(_scenario([10.0, 13.0])) is None  # nothing after bucket 0
    assert alone_ready_ns(_scenario([10.0, 13.0, 15.0, 17.0])) is None  # the rest ran faster: no slowdown to undo
    assert alone_ready_ns(_scenario([10.0, 10.0, 19.0, 25.0])) is None  # no time between the first two


def _whatifs(sc: Scenario) -> list[WhatIf]:
    ref = Prediction(sc.cap_bytes / MiB, None, 60e6, 50e6, float(sc.ready_ns.max()), 3)
    whatifs: list[WhatIf] = []
    _accumulation([sc], {0: 1.0}, ref, ref, sc.cap_bytes / MiB, whatifs, [], margin=0.05)
    return whatifs


def test_on_one_stack_the_band_reaches_down_to_the_backward_alone():
    sc = _scenario([10.0, 13.0, 19.0, 25.0, 31.0, 37.0], optimizer_ms=5.0)
    ws = {w.value: w for w in _whatifs(sc)}
    # a micro-batch under no_sync(): backward done at 37 ms, the tail less the optimizer's step (8 - 5 ms)
    assert ws[4].step_ms == pytest.approx((3 * 40.0 + 60.0) / 4)
    assert ws[4].alt_ms == pytest.approx((3 * 28.0 + 60.0) / 4)  # the backward alone: done at 25 ms
    assert ws[2].alt_ms == pytest.approx((28.0 + 60.0) / 2)
    # over a link (another namespace, another host) or on NCCL the transfers take no core from the backward
    for other in (_scenario([10.0, 13.0, 19.0, 25.0, 31.0, 37.0], host=None, optimizer_ms=5.0),
                  _scenario([10.0, 13.0, 19.0, 25.0, 31.0, 37.0], backend="nccl", optimizer_ms=5.0)):
        assert all(w.alt_ms is None for w in _whatifs(other))
