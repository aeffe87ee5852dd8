"""Gradient accumulation where gloo's transfers share the ranks' cores (``analysis.ddp.contention``).

Measured on the README's demo (2 ranks on 2 cores, loopback gloo; docs/advisor.md): micro-batches under no_sync()
took 33 ms where the traced backward ended at 40-45 ms, slowed by the all-reduces beside it; the prediction from
the traced backward missed 7 of 8 accumulation runs (k = 2, 4) below its band.  The band now reaches down to the
backward at the rate of its part before the first bucket's launch, which ran alone."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

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


def test_the_calibration_only_ever_shortens_a_micro_batch():
    """A factor above 1 holds the wait for late peers (a disturbed run's fast rank measured 1.9), which no
    micro-batch under no_sync() has; a factor below 1 (the profiler's slowdown) applies."""
    sc = _scenario([10.0, 13.0, 19.0, 25.0, 31.0, 37.0], host=None)
    ref = Prediction(sc.cap_bytes / MiB, None, 60e6, 50e6, float(sc.ready_ns.max()), 3)

    def k4(factor: float) -> float:
        whatifs: list[WhatIf] = []
        _accumulation([sc], {0: factor}, ref, ref, sc.cap_bytes / MiB, whatifs, [], margin=0.05)
        return next(w.step_ms for w in whatifs if w.value == 4)
    assert k4(1.9) == k4(1.0) == pytest.approx((3 * 45.0 + 60.0) / 4)
    assert k4(0.8) == pytest.approx((3 * 45.0 * 0.8 + 60.0) / 4)


def test_no_lower_end_when_the_rank_that_sets_the_step_has_no_estimate():
    fast = _scenario([10.0, 13.0, 19.0, 25.0, 31.0, 37.0])  # an estimate: 25 ms
    slow = replace(_scenario([10.0, 13.0, 15.0, 17.0, 19.0, 60.0], cap=MB4), rank=1)  # none (one gradient in
    # its first bucket: no rate), and its micro-batch the longer one
    ws = _whatifs_of([fast, slow])
    assert all(w.alt_ms is None for w in ws) and ws[-1].step_ms == pytest.approx((3 * 68.0 + 60.0) / 4)


def _whatifs_of(scs: list[Scenario]) -> list[WhatIf]:
    ref = Prediction(scs[0].cap_bytes / MiB, None, 60e6, 50e6, 60e6, 3)
    whatifs: list[WhatIf] = []
    _accumulation(scs, {sc.rank: 1.0 for sc in scs}, ref, ref, scs[0].cap_bytes / MiB, whatifs, [], margin=0.05)
    return [w for w in whatifs if w.knob == "gradient_accumulation"]


def test_the_optimizer_steps_in_the_tail_are_summed():
    from types import SimpleNamespace

    from commprof.analysis.ddp.whatif import _optimizer_ns
    from commprof.model.alloc import EMPTY_CACHE, OPTIMIZER_STEP, Mark
    def mark(kind: str, start: int, end: int) -> Mark:
        return Mark(kind=kind, detail="SGD", start_ns=start, end_ns=end)
    rt: Any = SimpleNamespace(marks=(mark(OPTIMIZER_STEP, 100, 130), mark(OPTIMIZER_STEP, 140, 150),
                                     mark(EMPTY_CACHE, 150, 190), mark(OPTIMIZER_STEP, 90, 99)))
    assert _optimizer_ns(rt, 100, 200) == 40  # the two that began in the tail; not the cache, not the earlier one
    assert _optimizer_ns(rt, 200, 300) == 0
