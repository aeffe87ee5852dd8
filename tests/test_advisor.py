"""The advisor: DDP re-bucketing, the replay, advice only where there is something to gain."""

from __future__ import annotations

import numpy as np
import pytest

import commprof
from commprof.analysis.advice import advise
from commprof.analysis.whatif import MiB, Scenario, calibrate, rebucket, replay


def test_rebucket_closes_a_bucket_once_it_reaches_its_limit():
    sizes = np.array([40, 4_000_000, 4_000_000, 4_000_000, 100])
    assert rebucket(sizes, 1 * MiB, 6 * MiB) == [[0, 1], [2, 3], [4]]
    assert rebucket(sizes, 6 * MiB, 6 * MiB) == [[0, 1, 2], [3, 4]]


def _scenario(beta_bps: float, alpha_s: float = 1e-4) -> Scenario:
    n = 8
    return Scenario(rank=0, names=tuple(f"p{i}" for i in range(n)), sizes=np.full(n, 4 * MiB, dtype=float),
                    ready_ns=np.linspace(10e6, 40e6, n), tail_ns=5_000_000, profiled_step_ns=60_000_000,
                    unprofiled_step_ns=None, cap_bytes=25 * MiB, first_bucket_bytes=None, alpha_s=alpha_s,
                    beta_bps=beta_bps, cast_bps=4e9, world_size=2)


def test_replay_overlaps_small_buckets_with_backward():
    sc = _scenario(beta_bps=1e9)  # 32 MiB at 1 GB/s = 33.5 ms of communication
    big = replay(sc, 25 * MiB)
    small = replay(sc, 4 * MiB)
    assert big.buckets == 2 and small.buckets == 8
    assert small.step_ns < big.step_ns
    assert small.comm_done_ns >= small.backward_done_ns
    # fp16 compression halves the bytes on the wire
    comp = replay(sc, 25 * MiB, "fp16")
    assert comp.comm_done_ns - comp.backward_done_ns < big.comm_done_ns - big.backward_done_ns


def test_calibration_reproduces_the_unprofiled_step():
    sc = _scenario(beta_bps=1e9)
    target = replay(sc, sc.cap_bytes).step_ns * 0.7
    sc2 = Scenario(**{**{f: getattr(sc, f) for f in sc.__dataclass_fields__}, "unprofiled_step_ns": int(target)})
    s = calibrate(sc2)
    assert replay(sc2, sc2.cap_bytes, None, s).step_ns == pytest.approx(target, rel=1e-3)


@pytest.mark.slow
def test_hidden_communication_gives_no_advice(gloo_run):
    run = commprof.load(gloo_run)
    rep = commprof.analyze(run)
    # the replay of the traced settings lands near the profiled step (a check of the model itself; on
    # two shared cores the gloo threads slow compute, which the model ignores and calibration absorbs)
    assert rep.advisor.model_step_ms == pytest.approx(rep.advisor.profiled_step_ms, rel=0.35)
    # the same run on an infinitely fast network: nothing to gain
    from commprof.analysis.bandwidth import Bandwidth, Fit
    fast = Bandwidth((), (Fit("allreduce", "0", 2, 10, 1.0, 1e6, None, None, None, None),), {})
    adv = advise(run, rep.bucket_rows, rep.buckets, fast, rep.unprofiled_step_ms)
    assert adv.advice == ()
    assert any("nothing to gain" in f.text for f in adv.findings)


@pytest.mark.slow
def test_whatif_reproduces_the_recorded_layout(gloo_run):
    rep = commprof.analyze(commprof.load(gloo_run))
    caps = [w for w in rep.advisor.whatifs if w.knob == "bucket_cap_mb"]
    assert caps[0].value == pytest.approx(0.25) and len(caps) == 12
    assert {w.knob for w in rep.advisor.whatifs} >= {"bucket_cap_mb", "comm_hook", "gradient_accumulation"}
    assert any("gradient_as_bucket_view=False" in f.text for f in rep.findings)


def test_traces_without_sidecars_get_no_what_if():
    from conftest import shared
    rep = commprof.analyze(commprof.load(shared("dlrm_8gpu_v100")))
    assert rep.advice == () and rep.advisor.whatifs == ()
