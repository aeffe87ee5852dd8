from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import commprof
from commprof.analysis.bandwidth import fit_alpha_beta, link_peak, shared_time
from commprof.ops import bus_factor
from conftest import ROOT, real


def test_fit_recovers_alpha_and_beta():
    x = np.array([1e3, 1e4, 1e5, 1e6, 1e7, 1e8])
    t_ns = (20e-6 + x / 50e9) * 1e9
    alpha, beta = fit_alpha_beta(x.astype(np.int64), t_ns.astype(np.int64))
    assert alpha == pytest.approx(20e-6, rel=0.02)
    assert beta == pytest.approx(50e9, rel=0.02)


def _shared_time_by_definition(starts, ends):
    """The channel's time between consecutive boundaries, split evenly among the intervals active on it."""
    b = sorted(set(starts) | set(ends))
    out = [0.0] * len(starts)
    for lo, hi in zip(b, b[1:], strict=False):
        active = [i for i, (s, e) in enumerate(zip(starts, ends, strict=True)) if s <= lo < e]
        for i in active:
            out[i] += (hi - lo) / len(active)
    return out


def test_shared_time_splits_the_channel_among_overlapping_intervals():
    # two collectives share [5, 10): each gets half of it
    assert shared_time(np.array([0, 5]), np.array([10, 20])).tolist() == [7.5, 12.5]
    rng = np.random.default_rng(7)
    for _ in range(100):
        k = int(rng.integers(1, 40))
        s = rng.integers(0, 1000, k)
        e = s + rng.integers(0, 300, k)
        got = shared_time(s, e)
        assert got == pytest.approx(_shared_time_by_definition(s.tolist(), e.tolist()), abs=1e-6)
        # the shares add up to the time the channel was busy
        busy = sum(hi - lo for lo, hi in zip(*_merged(s, e), strict=True))
        assert got.sum() == pytest.approx(busy)
    # long runs are no special case (the dense version gave up above 4,000 collectives)
    s = np.arange(0, 200_000, 10)
    got = shared_time(s, s + 15)
    assert got[1:-1] == pytest.approx(np.full(got.size - 2, 10.0))


def _merged(s, e):
    order = np.argsort(s)
    lo, hi = [], []
    for a, b in zip(s[order], e[order], strict=True):
        if b <= a:
            continue
        if hi and a <= hi[-1]:
            hi[-1] = max(hi[-1], b)
        else:
            lo.append(a)
            hi.append(b)
    return lo, hi


def test_fit_with_too_few_sizes_uses_the_default_latency():
    alpha, beta = fit_alpha_beta(np.array([1000, 1000]), np.array([1000, 1000]))
    assert alpha is None and beta == pytest.approx(1e9)
    # two sizes cannot separate latency from bandwidth: alpha is assumed, beta is what remains
    alpha, beta = fit_alpha_beta(np.array([4_000_000, 30_000_000]), np.array([26_000_000, 126_000_000]), 5e-4)
    assert alpha == 5e-4 and beta == pytest.approx(34e6 / (0.152 - 2 * 5e-4))


def test_nccl_tests_bus_factors():
    assert bus_factor("all_reduce", 8) == pytest.approx(2 * 7 / 8)
    assert bus_factor("all_gather", 4) == pytest.approx(3 / 4)
    assert bus_factor("all_to_all", 8) == pytest.approx(7 / 8)
    assert bus_factor("broadcast", 8) == 1.0 and bus_factor("barrier", 8) is None


def test_link_peaks_of_known_gpus():
    assert link_peak(["NVIDIA A100-SXM4-80GB"]) == (300.0, "NVLink 3 (A100 SXM)")
    assert link_peak(["Tesla V100-SXM2-32GB"])[0] == 150.0
    assert link_peak(["NVIDIA H100 80GB HBM3"])[0] == 450.0
    assert link_peak(["CPU"]) is None


def test_megatron_bandwidth_model_is_plausible():
    rep = commprof.analyze(commprof.load(real("megatron_tp8_a100")))
    (fit,) = [f for f in rep.bandwidth.fits if f.op == "all_reduce" and f.group_size == 8]
    assert fit.points == 84 * 8
    assert 0 < fit.alpha_us < 200
    assert 50 < fit.busbw_gbps < 300 and fit.peak_gbps == 300.0  # below the A100's NVLink
    assert fit.pct_of_peak == pytest.approx(100 * fit.busbw_gbps / 300.0)
    # transfer times exclude the wait for late ranks, so they are shorter than kernel times
    kernel_busbw = next(c.busbw_gbps for c in rep.collectives if c.op == "all_reduce" and c.dtype == "float16")
    assert fit.busbw_gbps > kernel_busbw
    bins = [b for b in rep.bandwidth.bins if b.op == "all_reduce"]
    assert sum(b.count for b in bins) == 84 * 8
    assert all(b.lo_bytes * 2 == b.hi_bytes for b in bins)


def test_link_gbps_option_sets_the_peak(tmp_path):
    res = subprocess.run([sys.executable, "-m", "commprof", "report", str(real("dlrm_8gpu_v100")), "-o",
                          str(tmp_path), "--format", "json", "--link-gbps", "25"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    s = json.loads((tmp_path / "summary.json").read_text())
    assert {f["peak_gbps"] for f in s["bandwidth_model"]} == {25.0}
    assert {f["op"] for f in s["bandwidth_model"]} == {"all_reduce", "all_to_all_single"}
    assert s["bandwidth_bins"] and s["clock_offsets_ms"].keys() == {str(r) for r in range(8)}


def test_transfers_of_no_measurable_time_are_left_out_of_busbw():
    """HTA's trace_filter (128 ranks, 2 loaded): half its all-reduce samples end with their last arrival; their bytes
    in the bins put busbw (25.2 GB/s, algbw 12.6) above the fitted beta (6.36 GB/s) the same samples allow."""
    rep = commprof.analyze(commprof.load(real("hta/tests/data/trace_filter")))
    (fit,) = [f for f in rep.bandwidth.fits if f.op == "all_reduce"]
    assert fit.untimed == 2 and fit.points == 2
    factor = bus_factor("all_reduce", fit.group_size)
    assert factor is not None and fit.busbw_gbps is not None and fit.beta_gbps is not None
    assert fit.busbw_gbps / factor <= fit.beta_gbps * 1.05  # achieved algbw within the fitted line's
    # the bins count every transfer (what moved per step); their bandwidth is the timed ones'
    bins = [b for b in rep.bandwidth.bins if b.op == "all_reduce"]
    assert sum(b.count for b in bins) == fit.points + fit.untimed and sum(b.untimed for b in bins) == fit.untimed
    assert all(b.busbw_gbps is None or b.busbw_gbps / factor <= fit.beta_gbps * 1.05 for b in bins)


def test_the_volume_by_size_counts_transfers_whatever_their_time():
    """compare's "changed nothing the runs can see" reads what moved, by size: a size whose every transfer took no
    measurable time has no bandwidth bin, but its transfers and bytes count the same as timed ones."""
    from commprof.analysis.bandwidth import Bandwidth
    nbytes = np.array([100, 120, 5000, 5000, 70_000], dtype=np.int64)
    timed = Bandwidth(bins=(), fits=(), samples={("all_reduce", "0", 2): (nbytes, np.full(5, 1000, np.int64)),
                                                 ("broadcast", "1", 2): (nbytes[:1], np.ones(1, np.int64))})
    untimed = Bandwidth(bins=(), fits=(), samples={("all_reduce", "7", 2): (nbytes, np.array([0, 0, 9, 9, 0])),
                                                   ("broadcast", "1", 2): (nbytes[:1], np.zeros(1, np.int64))})
    got = timed.volume_by_size()
    assert got == untimed.volume_by_size()
    assert got == {("all_reduce", 6): (2, 220), ("all_reduce", 12): (2, 10_000), ("all_reduce", 16): (1, 70_000),
                   ("broadcast", 6): (1, 100)}
