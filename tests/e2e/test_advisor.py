"""The advisor: DDP re-bucketing, the replay, advice only where there is something to gain."""

from __future__ import annotations

import numpy as np
import pytest

import commprof
from commprof.analysis.advice import advise
from commprof.analysis.whatif import Scenario, calibrate, rebucket, replay
from commprof.units import MiB


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
def test_replay_of_the_traced_settings_lands_near_the_profiled_step(tmp_path):
    """A check of the model itself, on its own run: the demo's workload (about 60 ms steps), six profiled steps.

    The shared small run (4-13 ms steps, three profiled) is too noisy for it: on two shared cores its steps vary
    by 4x within one run, and CI once measured 7.3 ms against a median of 11.6.  Here 12 runs, half of them
    beside a busy process, gave 0.87-0.97 (the model ignores that gloo's threads slow compute on two shared
    cores; calibration absorbs it)."""
    from commprof.workloads.demo import launch

    launch(tmp_path, nproc=2, steps=10, active=6)
    rep = commprof.analyze(commprof.load(tmp_path))
    assert rep.advisor.model_step_ms == pytest.approx(rep.advisor.profiled_step_ms, rel=0.35)


@pytest.mark.slow
def test_hidden_communication_gives_no_advice(gloo_run):
    run = commprof.load(gloo_run)
    rep = commprof.analyze(run)
    # the run on an infinitely fast network: nothing to gain
    from commprof.analysis.bandwidth import Bandwidth, Fit
    fast = Bandwidth((), (Fit("all_reduce", "0", 2, 10, 1.0, 1e6, None, None, None, None),), {})
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
    from conftest import real
    rep = commprof.analyze(commprof.load(real("dlrm_8gpu_v100")))
    assert rep.advice == () and rep.advisor.whatifs == ()


# ---- PowerSGD ---------------------------------------------------------------------------------------


def _psgd_scenario(shapes, beta_bps: float = 1e8, backend: str = "gloo") -> Scenario:
    sizes = np.array([4.0 * int(np.prod(s)) for s in shapes])
    n = len(shapes)
    return Scenario(rank=0, names=tuple(f"p{i}" for i in range(n)), sizes=sizes,
                    ready_ns=np.linspace(10e6, 40e6, n), tail_ns=5_000_000, profiled_step_ns=60_000_000,
                    unprofiled_step_ns=None, cap_bytes=25 * MiB, first_bucket_bytes=None, alpha_s=1e-4,
                    beta_bps=beta_bps, cast_bps=5e9, world_size=2, shapes=tuple(tuple(s) for s in shapes),
                    backend=backend)


def test_powersgd_split_follows_torchs_compression_rule():
    """Which gradients PowerSGD compresses, and the P / Q sizes, agree with torch's own _should_compress."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook import _should_compress

    from commprof.analysis.whatif import powersgd_split

    shape_st = st.lists(st.integers(1, 300), min_size=1, max_size=4)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(shape_st, min_size=1, max_size=6), st.integers(1, 8))
    def check(shapes, rank):
        sc = _psgd_scenario(shapes)
        unc, pb, qb, cb, mats = powersgd_split(sc, list(range(len(shapes))), rank)
        want_unc = want_p = want_q = want_mats = 0
        for s in shapes:
            numel = int(np.prod(s))
            if len(s) < 2:
                want_unc += 4 * numel
                continue
            n, m = s[0], numel // s[0]
            r = min(n, m, rank)
            if _should_compress(n, m, r, 2)[0]:
                want_p, want_q, want_mats = want_p + 4 * n * r, want_q + 4 * m * r, want_mats + 1
            else:
                want_unc += 4 * numel
        assert (unc, pb, qb, mats) == (want_unc, want_p, want_q, want_mats)
        assert unc + cb == sc.sizes.sum()

    check()


def test_powersgd_replay_sends_less_but_pays_its_matrix_work():
    shapes = [(1024, 1024)] * 8 + [(1024,)] * 8
    slow = _psgd_scenario(shapes, beta_bps=6e7)  # ~500 Mbit/s: the wire dominates
    plain = replay(slow, 200 * MiB)
    psgd = replay(slow, 200 * MiB, "powersgd:4")
    assert psgd.compression == "powersgd:4" and psgd.buckets == 1
    assert psgd.step_ns < 0.5 * plain.step_ns
    # its backward ends later: error feedback, the bucket's copy and P = MQ run on the backward side
    assert psgd.backward_done_ns > plain.backward_done_ns
    fast = _psgd_scenario(shapes, beta_bps=1e12)  # an infinitely fast link: only the matrix work is left
    assert replay(fast, 200 * MiB, "powersgd:4").step_ns > replay(fast, 200 * MiB).step_ns
    # nothing worth compressing (vectors only): three all-reduces of the same bytes, no gain
    vec = _psgd_scenario([(4096,)] * 8, beta_bps=6e7)
    assert replay(vec, 200 * MiB, "powersgd:4").step_ns >= replay(vec, 200 * MiB).step_ns


def test_powersgd_advice_on_a_slow_gloo_link_uses_one_bucket():
    """The advisor's PowerSGD what-if on gloo keeps every gradient in one bucket (torch's chained all-reduces
    can be issued in different orders on different ranks otherwise) and says so."""
    from commprof.analysis.advice import _powersgd
    from commprof.analysis.findings import powersgd_name
    sc = _psgd_scenario([(1024, 1024)] * 8 + [(1024,)] * 8, beta_bps=6e7)
    used = []

    def predict(cap, comp):
        used.append((cap, comp))
        return replay(sc, cap, comp)

    whatifs, advice, findings = [], [], []
    base = replay(sc, 25 * MiB)
    _powersgd([sc], predict, 25, base, base.step_ns / 1e6, whatifs, advice, findings)
    assert {c for c, _ in used} == {34 * MiB}  # 32.03 MiB of gradients -> one bucket
    assert [w.value for w in whatifs] == [powersgd_name(r) for r in (1, 2, 4)]
    assert len(advice) == 1 and advice[0].knob == "comm_hook" and "one bucket" in advice[0].why
    assert "lossy" in advice[0].why and advice[0].predicted_step_ms < 0.5 * advice[0].baseline_step_ms
    # NCCL: no such constraint; older sidecars without shapes: no prediction, and the report says why
    nccl = Scenario(**{**{f: getattr(sc, f) for f in sc.__dataclass_fields__}, "backend": "nccl"})
    used.clear()
    _powersgd([nccl], lambda c, k: (used.append((c, k)), replay(nccl, c, k))[1], 25, base, 1.0, [], [], [])
    assert {c for c, _ in used} == {25 * MiB}
    old = Scenario(**{**{f: getattr(sc, f) for f in sc.__dataclass_fields__}, "shapes": ()})
    findings = []
    _powersgd([old], predict, 25, base, 1.0, [], [], findings)
    assert findings and "lacks parameter shapes" in findings[0].text
