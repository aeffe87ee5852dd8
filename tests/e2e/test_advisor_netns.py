"""The advisor proven on an emulated slow network: two ranks in two network namespaces joined by a
veth pair limited with tc tbf (see benchmarks/bench_advisor_netns.py).  Skips where ip netns fails."""

from __future__ import annotations

import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_advisor_netns as bench
from proofs import attempt, check_bands, quiet, withheld_honestly

from commprof.analysis.uncertainty.bands import NOT_ADVISED

pytestmark = pytest.mark.slow


def _check(rows, info, reps: int) -> None:
    """The advice's band lies under the current step (the report's rule), and every measured setting lies in its
    band; without advice, the report must have said that the traced run was disturbed."""
    if info["advice"] is None:
        assert withheld_honestly(info), f"no advice from a traced run the report calls quiet: {info['report'].noise}"
        print(f"\nno advice: {info['report'].noise.describe()} (said in the report's warnings)")
        return
    default, advised = rows[:2]
    print("\n" + bench.table(rows))
    check = info["report"].advisor.check
    print(f"model error on the traced run: {check.error_pct:+.1f}% ({check.source}); noise: "
          f"{info['report'].noise.describe()}")
    a = info["advice"]
    assert a.predicted_range_ms[1] < a.baseline_step_ms  # the report's rule, as the advice was given
    # the rows' band against the baseline of the same report: a plain trace's rows come from the report calibrated on
    # the measured default step (--step-ms), its advice from the uncalibrated one (their ratio was 1.11 in one CI
    # run: 245 ms, the calibrated band's top, against 234 ms, the uncalibrated baseline, a mismatch, not a miss).
    # Calibrated on a shorter measured step, the report may withhold what the profiled steps let the plain report
    # advise: then it must say so by its own rule (CI 105: a noisy traced run, profiled steps 12% apart, the advised
    # cap's band top 252.4 ms against the measured default's 248.7)
    rep = info["report"]
    if "uncalibrated" in info and not any(x.knob == a.knob and x.value == a.value for x in rep.advice):
        told = f"{NOT_ADVISED}{a.knob} = {a.value} "
        assert any(f.text.startswith(told) and "band that reaches the current step" in f.text for f in rep.findings), \
            [f.text for f in rep.findings]
        assert advised.band_ms[1] >= default.predicted_ms  # withheld by the rule, not for another reason
    else:
        assert advised.band_ms[1] < default.predicted_ms
    if quiet(advised) and quiet(default):
        assert advised.measured_ms < default.measured_ms, "the advice did not pay"
    check_bands(rows, reps)


def test_bucket_cap_advice_on_2gbit(net):
    rows, info = attempt(lambda: bench.bucket_proof(net, reps=2))
    _check(rows, info, 2)


def test_bucket_cap_advice_from_a_plain_torch_profiler_trace(net):
    """The same job traced with torch.profiler(record_shapes=True) and no commprof: the what-ifs come from the
    trace alone (AccumulateGrad events, the bucket all-reduces, the cap inferred from their sizes)."""
    rows, info = attempt(lambda: bench.bucket_proof(net, reps=2, plain=True))
    assert info["report"].advisor.check.source == "trace"
    _check(rows, info, 2)


def test_compression_advice_on_500mbit(net):
    # PowerSGD's prediction rests on CPU rates measured in the traced run (the probe, the trace's own operators):
    # its band widens by how far the ranks' measurements of the same operations disagree
    rows, info = attempt(lambda: bench.compression_proof(net, reps=3))
    _check(rows, info, 3)  # fp16 advised, its band holds; PowerSGD's band holds too (the third row)
    if info["advice"] is None:
        return
    assert len(rows) == 3 and rows[2].setting.startswith("bucket_cap_mb=200 + PowerSGD")
    if info["powersgd_advice"] is not None and quiet(rows[2]) and quiet(rows[0]):  # advised: it must also pay
        assert rows[2].measured_ms < rows[0].measured_ms


def test_a_plain_traces_advice_withheld_once_calibrated_is_checked_by_its_own_rule():
    """CI 105's case, replayed on its numbers without a network: the plain report advised bucket_cap_mb=4 against
    its profiled baseline; calibrated on the measured default step (248.7 ms) the advised cap's band reached 252.4
    ms, so that report withholds it, saying why.  The proof accepts that and nothing else (a silent drop fails)."""
    from types import SimpleNamespace

    from commprof.analysis.findings import Advice, Finding

    adv = Advice(knob="bucket_cap_mb", value=4.0, baseline_step_ms=262.0, predicted_step_ms=212.0, why="",
                 predicted_range_ms=(160.0, 258.0))
    rows = [bench.Row("2 Gbit/s", "bucket_cap_mb=25 (default) [plain torch.profiler]", 248.7, 248.7, (179.2, 318.3),
                      3.8),
            bench.Row("2 Gbit/s", "bucket_cap_mb=4 (advised) [plain torch.profiler]", 201.2, 197.4, (150.0, 252.4),
                      4.2)]
    said = Finding("info", f"{NOT_ADVISED}bucket_cap_mb = 4.0 is predicted at 201 ms (150-252), a band that reaches "
                           "the current step (248.7 ms): the gain is not beyond this run's uncertainty (...).")
    noise = SimpleNamespace(describe=lambda: "profiled steps vary by 12.1% (3 steps)")
    report = SimpleNamespace(advice=(), findings=(said,), noise=noise,
                             advisor=SimpleNamespace(check=SimpleNamespace(error_pct=0.5, source="trace")))
    info = {"advice": adv, "report": report, "uncalibrated": (262.0, 212.0)}
    _check(rows, info, 2)
    with pytest.raises(AssertionError):  # withheld without a word
        _check(rows, {**info, "report": SimpleNamespace(**{**vars(report), "findings": ()})}, 2)
