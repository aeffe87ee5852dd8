"""The advisor: DDP re-bucketing, the replay, advice only where there is something to gain."""

from __future__ import annotations

import numpy as np
import pytest

import commprof
from commprof.analysis.ddp.advice import advise
from commprof.analysis.ddp.rates import ASSUMED, PROBE, OpRates
from commprof.analysis.ddp.whatif import Scenario, calibrate, rebucket, replay
from commprof.units import MiB

ASSUMED_RATES = OpRates("cpu", 4e9, 4e9, sources={"pass": ASSUMED, "fresh": ASSUMED, "products": ASSUMED})


def _measured_rates(pass_bps: float = 5e9, fresh_bps: float = 2e9, mtp_factor: float = 1.0) -> OpRates:
    """Rates as the probe records them for 1024 x 1024 matrices: P = M Q reads the matrix once at the pass rate."""
    mq = 1024 * 1024 * 4 / pass_bps * 1e9
    products = {(k, 1024, 1024, r): mq * (mtp_factor if k == "mtp" else 1.0) for k in ("mq", "mtp", "pqt")
                for r in (1, 2, 4)}
    return OpRates("cpu", pass_bps, fresh_bps, products, {}, {"pass": PROBE, "fresh": PROBE, "products": PROBE})


def test_rebucket_closes_a_bucket_once_it_reaches_its_limit():
    sizes = np.array([40, 4_000_000, 4_000_000, 4_000_000, 100])
    assert rebucket(sizes, 1 * MiB, 6 * MiB) == [[0, 1], [2, 3], [4]]
    assert rebucket(sizes, 6 * MiB, 6 * MiB) == [[0, 1, 2], [3, 4]]


def _scenario(beta_bps: float, alpha_s: float = 1e-4) -> Scenario:
    n = 8
    return Scenario(rank=0, names=tuple(f"p{i}" for i in range(n)), sizes=np.full(n, 4 * MiB, dtype=float),
                    ready_ns=np.linspace(10e6, 40e6, n), tail_ns=5_000_000, profiled_step_ns=60_000_000,
                    unprofiled_step_ns=None, cap_bytes=25 * MiB, first_bucket_bytes=None, alpha_s=alpha_s,
                    beta_bps=beta_bps, rates=ASSUMED_RATES, world_size=2)


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
    # two ranks of one host over loopback gloo: fp16's cost is CPU work the trace cannot show (measured 4-21% slower
    # in 9 of 10 pairs, docs/advisor.md): not predicted, and a finding says why wherever communication is exposed
    # (every run of this job, not only where the link model's point estimate would gain 5%); accumulation's band
    # reaches down to the backward alone where the run gives an estimate of it
    assert not any(w.value == "fp16_compress_hook" for w in rep.advisor.whatifs)
    fp16 = [f.text for f in rep.findings if "fp16_compress_hook" in f.text]
    hidden = any(f.text.startswith("Communication is already hidden") for f in rep.findings)
    assert (len(fp16) == 1 or hidden) and all("is not predicted: every rank shares one network stack" in t
                                              for t in fp16)
    acc = next(w for w in rep.advisor.whatifs if w.knob == "gradient_accumulation" and w.value == 4)
    if acc.alt_ms is not None:
        assert acc.range_ms is not None and acc.range_ms[0] < acc.alt_ms < acc.step_ms < acc.range_ms[1]
    assert not any(a.value == "fp16_compress_hook" for a in rep.advice)


@pytest.mark.slow
def test_hidden_communication_gives_no_advice(gloo_run):
    run = commprof.load(gloo_run)
    rep = commprof.analyze(run)
    # the run on an infinitely fast network: nothing to gain
    from commprof.analysis.bandwidth import Bandwidth, Fit
    fast = Bandwidth((), (Fit(op="all_reduce", process_group="0", group_size=2, points=10, alpha_us=1.0, beta_gbps=1e6,
                              busbw_gbps=None, peak_gbps=None, peak_source=None, pct_of_peak=None),), {})
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


def test_a_trace_whose_buckets_are_not_its_gradients_says_why_there_is_no_what_if():
    from conftest import real
    rep = commprof.analyze(commprof.load(real("dlrm_8gpu_v100")))
    assert rep.advice == () and rep.advisor.whatifs == ()
    assert any("No what-if prediction: the backward pass's 3 all-reduces" in f.text for f in rep.findings)


# ---- PowerSGD ---------------------------------------------------------------------------------------


def _psgd_scenario(shapes, beta_bps: float = 1e8, backend: str = "gloo", rates: OpRates | None = None) -> Scenario:
    sizes = np.array([4.0 * int(np.prod(s)) for s in shapes])
    n = len(shapes)
    return Scenario(rank=0, names=tuple(f"p{i}" for i in range(n)), sizes=sizes,
                    ready_ns=np.linspace(10e6, 40e6, n), tail_ns=5_000_000, profiled_step_ns=60_000_000,
                    unprofiled_step_ns=None, cap_bytes=25 * MiB, first_bucket_bytes=None, alpha_s=1e-4,
                    beta_bps=beta_bps, rates=rates or _measured_rates(), world_size=2,
                    shapes=tuple(tuple(s) for s in shapes),
                    backend=backend)


def test_powersgd_split_follows_torchs_compression_rule():
    """Which gradients PowerSGD compresses, and the P / Q sizes, agree with torch's own _should_compress."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook import _should_compress

    from commprof.analysis.ddp.whatif import powersgd_split

    shape_st = st.lists(st.integers(1, 300), min_size=1, max_size=4)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(shape_st, min_size=1, max_size=6), st.integers(1, 8))
    def check(shapes, rank):
        sc = _psgd_scenario(shapes)
        part = powersgd_split(sc, list(range(len(shapes))), rank)
        unc, pb, qb, cb, mats = part.unc_bytes, part.p_bytes, part.q_bytes, part.compressed_bytes, len(part.matrices)
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
    from commprof.analysis.ddp.advice import _powersgd
    from commprof.analysis.findings import powersgd_name
    sc = _psgd_scenario([(1024, 1024)] * 8 + [(1024,)] * 8, beta_bps=6e7)
    used = []

    def predict(cap, comp):
        used.append((cap, comp))
        return replay(sc, cap, comp)

    whatifs, advice, findings = [], [], []
    base = replay(sc, 25 * MiB)
    _powersgd([sc], predict, 25, base, base.step_ns / 1e6, whatifs, advice, findings, margin=0.05)
    assert {c for c, _ in used} == {34 * MiB}  # 32.03 MiB of gradients -> one bucket
    assert [w.value for w in whatifs] == [powersgd_name(r) for r in (1, 2, 4)]
    assert len(advice) == 1 and advice[0].knob == "comm_hook" and "one bucket" in advice[0].why
    assert "lossy" in advice[0].why and advice[0].predicted_step_ms < 0.5 * advice[0].baseline_step_ms
    # NCCL: no such constraint; older sidecars without shapes: no prediction, and the report says why
    nccl = Scenario(**{**{f: getattr(sc, f) for f in sc.__dataclass_fields__}, "backend": "nccl"})
    used.clear()
    _powersgd([nccl], lambda c, k: (used.append((c, k)), replay(nccl, c, k))[1], 25, base, 1.0, [], [], [], margin=0.05)
    assert {c for c, _ in used} == {25 * MiB}
    old = Scenario(**{**{f: getattr(sc, f) for f in sc.__dataclass_fields__}, "shapes": ()})
    findings = []
    _powersgd([old], predict, 25, base, 1.0, [], [], findings, margin=0.05)
    assert findings and "lacks the gradients' shapes" in findings[0].text


def test_powersgd_is_not_advised_on_costs_nothing_measured():
    """The same slow link, the same PowerSGD prediction, but its matrix products only assumed: what-ifs with the
    assumption named, no advice, and a finding that says how to have them measured."""
    from commprof.analysis.ddp.advice import _powersgd
    shapes = [(1024, 1024)] * 8 + [(1024,)] * 8
    sc = _psgd_scenario(shapes, beta_bps=6e7, rates=ASSUMED_RATES)
    base = replay(sc, 25 * MiB)
    whatifs, advice, findings = [], [], []
    _powersgd([sc], lambda c, k: replay(sc, c, k), 25, base, base.step_ns / 1e6, whatifs, advice, findings, margin=0.05)
    assert advice == [] and len(whatifs) == 3
    assert all("the products Q = Mᵀ P" in w.assumed for w in whatifs)
    assert len(findings) == 1 and "not advised" in findings[0].text and "probe" in findings[0].text


def test_a_slow_transposed_product_is_paid_in_full():
    """The AMD case: Q = Mᵀ P four times as slow as P = M Q.  The replay charges each product its own measured
    cost, so the slower machine's PowerSGD step is longer by the difference, 8 matrices x 3 x the P = M Q time."""
    shapes = [(1024, 1024)] * 8 + [(1024,)] * 8
    even = replay(_psgd_scenario(shapes, beta_bps=6e7), 200 * MiB, "powersgd:4")
    slow = replay(_psgd_scenario(shapes, beta_bps=6e7, rates=_measured_rates(mtp_factor=4.0)), 200 * MiB,
                  "powersgd:4")
    mq_ns = 1024 * 1024 * 4 / 5e9 * 1e9
    assert slow.step_ns - even.step_ns == pytest.approx(8 * 3 * mq_ns, rel=1e-6)


def test_the_amd_runs_replayed_offline():
    """../shared's runs on an AMD EPYC (2 vCPUs, 500 Mbit/s, see tests/data/real/netns_500mbit_amd_epyc): from the
    default run's trace, the advised fp16 hook is predicted within 15% of its measured median, and PowerSGD, whose
    matrix products that run did not measure (traced before the probe), is not advised (measured: 371 ms, slower
    than fp16's 352).  The model's error on each traced run is within 10%, except on the PowerSGD run, whose gloo
    all-reduce records hold PowerSGD's callbacks: its what-ifs are shown without advice, and the report says why."""
    import json

    from conftest import real
    root = real("netns_500mbit_amd_epyc")
    measured = {k: v["median"] for k, v in json.loads((root / "untraced_medians_ms.json").read_text()).items()}
    rep = commprof.analyze(commprof.load(root / "traced_default_bucket25"))
    adv = {a.knob: a for a in rep.advice}
    assert adv["comm_hook"].value == "fp16_compress_hook"
    assert adv["bucket_cap_mb"].value == 4  # the fp16 prediction below is for bucket_cap_mb=4 + fp16
    fp16 = adv["comm_hook"].predicted_step_ms
    assert abs(fp16 - measured["fp16_bucket4"]) <= 0.15 * measured["fp16_bucket4"], fp16
    assert abs(adv["comm_hook"].baseline_step_ms - measured["default_bucket25"]) <= 0.15 * measured["default_bucket25"]
    assert not any(str(a.value).startswith("powerSGD") for a in rep.advice)
    assert any("powerSGD_hook(matrix_approximation_rank=4) is predicted" in f.text and "not advised" in f.text
               for f in rep.findings)
    assert abs(rep.advisor.check.error_pct) <= 10
    fp16_run = commprof.analyze(commprof.load(root / "traced_fp16_bucket4"))
    assert abs(fp16_run.advisor.check.error_pct) <= 10
    psgd_run = commprof.analyze(commprof.load(root / "traced_powersgd4_bucket200"))
    assert not psgd_run.advisor.check.ok and psgd_run.advice == ()
    assert any("inside the record of the bucket's first all-reduce" in n for n in psgd_run.advisor.check.notes)


@pytest.mark.slow
def test_sidecar_and_trace_alone_give_the_same_replay(gloo_run, tmp_path):
    """The same run read with its sidecars and from its Kineto traces alone (as a plain torch.profiler user has
    it): the same bucket layout, and the replays of the traced settings and of every candidate within 5%.  (The
    sidecars' step times outside the profiler are left out, so that both replays are uncalibrated.)"""
    import json
    import shutil
    alone_dir, side_dir = tmp_path / "alone", tmp_path / "sidecar"
    alone_dir.mkdir()
    side_dir.mkdir()
    for f in gloo_run.glob("*.pt.trace.json*"):
        shutil.copy(f, alone_dir / f.name)
        shutil.copy(f, side_dir / f.name)
    for f in gloo_run.glob("*.commprof.json"):
        doc = json.loads(f.read_text())
        doc["steps"] = [s for s in doc["steps"] if s["profiled"]]
        (side_dir / f.name).write_text(json.dumps(doc))
    with_sidecar = commprof.analyze(commprof.load(side_dir)).advisor
    alone = commprof.analyze(commprof.load(alone_dir)).advisor
    assert with_sidecar.check.source == "sidecar" and alone.check.source == "trace"
    assert alone.check.step_model_ms == pytest.approx(with_sidecar.check.step_model_ms, rel=0.05)
    assert alone.check.exposed_model_ms == pytest.approx(with_sidecar.check.exposed_model_ms, rel=0.05, abs=0.5)
    caps_s = {w.value: w for w in with_sidecar.whatifs if w.knob == "bucket_cap_mb"}
    caps_t = {w.value: w for w in alone.whatifs if w.knob == "bucket_cap_mb"}
    assert alone.whatifs[0].value == pytest.approx(0.25) or any("inferred" in n for n in alone.check.notes)
    for mb in (0.5, 1, 4, 25):
        assert caps_t[mb].step_ms == pytest.approx(caps_s[mb].step_ms, rel=0.05), mb
