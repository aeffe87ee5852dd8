"""The uncertainty maths on hand-built numbers: spread and outliers, the even-count centre, noise, bands."""

from __future__ import annotations

from dataclasses import replace

import pytest

from commprof.analysis.uncertainty.maths import (
    DISTURBED_PCT,
    MODEL_FLOOR_PCT,
    RATES_REPEAT_PCT,
    RUN_DRIFT_SD_PCT,
    Noise,
    Z,
    band,
    below,
    calibration_pct,
    disagreement_pct,
    fmt_band,
    median_variation_pct,
    noise,
    spread,
    variation_low_pct,
    variation_pct,
)


def test_the_centre_of_an_even_count_is_the_mean_not_the_lower_middle():
    s = spread([155.0, 199.0])  # two steps: the mean, never the faster one
    assert s is not None and s.mean == pytest.approx(177.0) and s.median == pytest.approx(177.0)
    assert (s.low, s.high, s.outliers) == (155.0, 199.0, ())


def test_a_one_off_stall_is_named_and_left_out_of_the_mean():
    s = spread([100.0, 102.0, 98.0, 20_000.0, 101.0], [f"step {i}" for i in range(5)])
    assert s is not None and s.mean == pytest.approx(100.25)
    assert s.median == 101.0 and s.high == 20_000.0 and s.n == 5 and s.kept == 4
    ((label, value, why),) = s.outliers
    assert label == "step 3" and value == 20_000.0 and "x the median" in why


def test_two_steps_are_never_called_outliers():
    s = spread([10.0, 100.0])
    assert s is not None and s.outliers == () and s.mean == 55.0


def test_variation_and_noise():
    assert variation_pct([1.0]) is None
    assert variation_pct([90.0, 110.0]) == pytest.approx(14.142, rel=1e-3)
    n = noise([[100.0, 100.0, 100.0], [100.0, 110.0]], [[50.0, 50.0, 50.0, 50.0]])
    assert n.profiled_pct == pytest.approx(variation_pct([100.0, 110.0]))
    assert n.unprofiled_pct == 0.0 and n.step_pct == 0.0 and not n.disturbed  # unprofiled steps decide
    assert noise([[100.0, 130.0]], []).disturbed  # only profiled steps: they decide
    assert "vary by" in n.describe() and Noise().describe() == "no repeated steps to measure its noise"
    assert disagreement_pct([[1.0, 1.0], [1.0, 3.0], [5.0]]) == pytest.approx(variation_pct([1.0, 3.0]) / 2)


def test_disturbed_beyond_what_its_steps_show_by_chance():
    """A variation over a few steps is itself uncertain: the run is called disturbed where its lower 90% confidence
    bound is over DISTURBED_PCT (the chi-square tables: sqrt(k / chi2_0.9(k)) = 0.608 for k = 1, 0.736 for k = 5,
    0.806 for k = 14).  The README demo's steps outside the profiler read 6-10% over 6 steps in most runs, and
    were called disturbed or quiet by that chance alone."""
    for steps, table in ((2, 0.608), (6, 0.736), (15, 0.806)):
        assert variation_low_pct(10.0, steps) == pytest.approx(10.0 * table, rel=0.02)
    assert variation_low_pct(10.0, 1) == 10.0 and variation_low_pct(10.0, 0) == 10.0  # count unknown: the figure
    assert not Noise(unprofiled_pct=11.0, steps_unprofiled=6).disturbed  # 11% over 6 steps: a true 8% reads so
    assert Noise(unprofiled_pct=14.0, steps_unprofiled=6).disturbed
    assert Noise(unprofiled_pct=11.0, steps_unprofiled=300).disturbed  # many steps: the figure is the truth
    assert not Noise(unprofiled_pct=11.0, steps_unprofiled=6, profiled_pct=30.0, steps_profiled=3).disturbed
    demo = [63.8, 70.1, 61.2, 66.0, 71.5, 60.9]  # six steps of a demo run, varying by 6.8%
    louder = [65.6 + 1.6 * (v - 65.6) for v in demo]  # the same run 1.6x as loud: 10.9%, still not beyond chance
    alternating = [v * (1.5 if i % 2 else 1.0) for i, v in enumerate(demo)]  # 23%: disturbed
    assert variation_pct(louder) == pytest.approx(10.9, abs=0.1)
    assert [noise([], [x]).disturbed for x in (demo, louder, alternating)] == [False, False, True]


def test_a_one_off_stall_is_named_and_left_out_of_the_noise():
    steady = [150.0, 152.0, 149.0, 151.0, 150.5]
    # both ranks of the job: rank 1 stalled at step 3, rank 0 waited as long in its collectives
    ids = [[(r, n) for n in range(6)] for r in (0, 1)]
    series = [steady[:3] + [2150.0] + steady[3:], steady[:3] + [2151.0] + steady[3:]]
    n = noise([[150.0, 151.0, 150.0]], series, unprofiled_ids=ids)
    assert n.unprofiled_pct == pytest.approx(variation_pct(steady)) and not n.disturbed  # not 164% and disturbed
    assert n.steps_unprofiled == 5  # the steps its variation is over
    (stall,) = n.left_out  # one stall, named once with the ranks it showed on
    assert (stall.step, stall.ranks, stall.low_ms, stall.high_ms, stall.profiled) == (3, (0, 1), 2150.0, 2151.0, False)
    assert stall.factor == pytest.approx(2150.0 / 150.5)
    assert "one-off stalls left out: step 3 on ranks 0, 1 (2150-2151 ms, 14.3x the median" in n.describe()
    # steady noise is not a stall: a run that varies throughout keeps its variation
    noisy = [100.0, 180.0, 110.0, 170.0, 105.0, 175.0]
    m = noise([], [noisy])
    assert m.left_out == () and m.unprofiled_pct == pytest.approx(variation_pct(noisy)) and m.disturbed
    # labels by position: two steps with the same number do not drop an ordinary step with the stall
    same = noise([], [series[0]], unprofiled_ids=[[(0, 0)] * 6])
    assert same.unprofiled_pct == pytest.approx(variation_pct(steady))
    with pytest.raises(ValueError):
        noise([], [series[0]], unprofiled_ids=[[(0, 0)] * 5])


def test_stalls_on_many_ranks_are_one_sentence_of_a_few():
    from commprof.analysis.uncertainty.stalls import SHOWN, Stall, describe, group
    from commprof.numlist import ranks_text

    found = [(r, s, 1000.0 + r, 10.0, False) for s in (4, 9, 12, 20) for r in range(64)]
    stalls = group(found)
    assert [s.step for s in stalls] == [4, 9, 12, 20] and stalls[0].ranks == tuple(range(64))
    text = describe(stalls)
    assert text.startswith("step 4 on ranks 0-63 (1000-1063 ms, 10.0x the median of the other steps)")
    assert text.count("step ") == SHOWN and text.endswith("and 1 more (summary.json noise.stalls_left_out)")
    assert ranks_text((0, 1, 2, 5, 7, 8)) == "ranks 0-2, 5, 7, 8" and ranks_text((3,)) == "rank 3"
    assert describe((Stall(2, (1,), 80.0, 80.0, 3.0, True),)) == (
        "profiled step 2 on rank 1 (80 ms, 3.0x the median of the other steps)")


def test_quiet_bands_are_tight_and_disturbed_ones_wide():
    quiet = Noise(unprofiled_pct=2.0)
    lo, hi = band(200.0, quiet, 1.0)
    h = (MODEL_FLOOR_PCT ** 2 + 1.0 + (Z * 2.0) ** 2) ** 0.5 / 100
    assert (lo, hi) == pytest.approx((200 * (1 - h), 200 * (1 + h)))
    assert hi - 200 <= 0.15 * 200  # no wider than ±15% on a quiet run
    # the traced settings measured in another run: two runs' drift (Z x sqrt 2 x the drift's sd), the same drift
    # compare's verdict assumes; a platform that drifts less (report --drift-pct) gets a tighter band
    base = band(200.0, quiet, None, changed=False)
    floor = Z * 2 ** 0.5 * RUN_DRIFT_SD_PCT
    assert base[1] - 200 == pytest.approx(200 * ((floor ** 2 + 16) ** 0.5) / 100)
    steady = band(200.0, Noise(unprofiled_pct=2.0, drift_sd_pct=1.0), None, changed=False)
    assert steady[1] - 200 == pytest.approx(200 * (((Z * 2 ** 0.5) ** 2 + 16) ** 0.5) / 100) and steady[1] < base[1]
    loud = Noise(unprofiled_pct=DISTURBED_PCT + 5)
    assert loud.disturbed and band(200.0, loud, 1.0)[1] > 200 * 1.3
    rates = Noise(unprofiled_pct=2.0, rates_pct=20.0)
    assert band(200.0, rates, 1.0, uses_rates=True)[1] > band(200.0, rates, 1.0)[1]
    # ranks that agree on the probed costs do not make a probe-based band as tight as a measured one: the probe
    # varies from run to run by RATES_REPEAT_PCT, which one run cannot see
    agree = Noise(unprofiled_pct=2.0, rates_pct=1.0)
    h = (MODEL_FLOOR_PCT ** 2 + 1.0 + (Z * 2.0) ** 2 + (Z * RATES_REPEAT_PCT) ** 2) ** 0.5 / 100
    assert band(200.0, agree, 1.0, uses_rates=True)[1] == pytest.approx(200 * (1 + h))


def test_a_prediction_carries_the_calibrations_error_as_far_as_it_rests_on_it():
    """The step a replay is calibrated on (the median of 4 steps outside the profiler varying by 4%) has a standard
    error of 1.2533 x 4 / 2 = 2.5%; a prediction with gain 3 (compute-bound, calibrated on a step that is mostly
    wire) carries 3 times it; gain 0 (the family does not say) adds nothing; without steps outside the profiler
    nothing was calibrated."""
    nz = Noise(unprofiled_pct=4.0, steps_unprofiled=4)
    assert calibration_pct(nz) == pytest.approx(1.2533 * 4.0 / 2)
    h0 = (MODEL_FLOOR_PCT ** 2 + 1.0 + (Z * 4.0) ** 2) ** 0.5
    h3 = (h0 ** 2 + (Z * 3 * calibration_pct(nz)) ** 2) ** 0.5
    assert band(200.0, nz, 1.0)[1] == pytest.approx(200 * (1 + h0 / 100))
    assert band(200.0, nz, 1.0, gain=3.0)[1] == pytest.approx(200 * (1 + h3 / 100))
    assert calibration_pct(Noise(profiled_pct=4.0, steps_profiled=4)) == 0.0
    assert calibration_pct(Noise(unprofiled_pct=4.0, steps_unprofiled=1)) == 0.0


def test_the_calibrations_error_is_what_the_median_moves_with():
    """A traced run of the 500 Mbit/s netns job (2026-12-06, run t00): its 7 steps outside the profiler hold one slow
    step (the link, 12% over the others; under the stall rule's 2x) that puts their variation at 4.6% while the
    median the replays are calibrated on does not move with it: its standard error takes the variation of the
    others (1.3%), not 4.6%; under 5 steps the plain variation stands (a median absolute deviation of 3 or 4 steps
    says little)."""
    steps = [663.4, 647.8, 668.0, 650.1, 735.7, 657.0, 650.3]
    assert variation_pct(steps) == pytest.approx(4.64, abs=0.01)
    about = median_variation_pct(steps)
    assert about == pytest.approx(variation_pct([x for x in steps if x != 735.7]))
    assert 1.0 < about < 1.5
    nz = noise([[650.0, 652.0, 655.0]], [steps, [x + 1.0 for x in steps]])
    assert nz.unprofiled_pct == pytest.approx(4.64, abs=0.02)
    assert nz.unprofiled_median_pct == pytest.approx(about, abs=0.01)
    assert calibration_pct(nz) == pytest.approx(1.2533 * about / 7 ** 0.5)
    # steady steps lose nothing: none is over 3 robust deviations from the median
    steady = [650.0, 655.0, 648.0, 652.0, 657.0, 651.0]
    assert median_variation_pct(steady) == pytest.approx(variation_pct(steady))
    assert median_variation_pct(steps[:4]) is None
    few = noise([], [[650.0, 700.0, 655.0, 652.0]])
    assert few.unprofiled_median_pct is None and calibration_pct(few) == pytest.approx(1.2533 * few.unprofiled_pct / 2)


def test_a_probe_based_prediction_counts_the_calibration_and_the_probes_repeat_once():
    """PowerSGD's run-to-run term (RATES_REPEAT_PCT: its prediction's variation over 25 traced runs, the
    calibration's part in it) and the run's own calibration error are one term, the larger: a small calibration
    error adds nothing to it; a large one replaces it (with the ranks' disagreement on the probe)."""
    quiet = Noise(unprofiled_pct=2.0, unprofiled_median_pct=2.0, steps_unprofiled=7, rates_pct=1.0)
    small = 1.2533 * 2.0 / 7 ** 0.5 * 3.0  # gain 3: 2.8%, under RATES_REPEAT_PCT
    base = (MODEL_FLOOR_PCT ** 2 + 1.0 + (Z * 2.0) ** 2) ** 0.5
    assert small < RATES_REPEAT_PCT
    h = (base ** 2 + (Z * RATES_REPEAT_PCT) ** 2) ** 0.5
    assert band(200.0, quiet, 1.0, uses_rates=True, gain=3.0)[1] == pytest.approx(200 * (1 + h / 100))
    loud = replace(quiet, unprofiled_median_pct=8.0)
    large = 1.2533 * 8.0 / 7 ** 0.5 * 3.0  # 11.4%
    h = (base ** 2 + (Z * (large ** 2 + 1.0) ** 0.5) ** 2) ** 0.5
    assert band(200.0, loud, 1.0, uses_rates=True, gain=3.0)[1] == pytest.approx(200 * (1 + h / 100))
    # a prediction without the probe carries the calibration's error on its own
    h = (base ** 2 + (Z * large) ** 2) ** 0.5
    assert band(200.0, loud, 1.0, gain=3.0)[1] == pytest.approx(200 * (1 + h / 100))


def test_advice_only_when_the_whole_band_is_below_the_current_step():
    assert below((150.0, 190.0), 200.0)
    assert not below((150.0, 210.0), 200.0)
    assert fmt_band(184.0, (175.2, 195.4)) == "184 ms (175-195)"
    assert fmt_band(18.4, (17.52, 19.54)) == "18.4 ms (17.5-19.5)"
    assert fmt_band(264.0, (0.0, 548.3)) == "264 ms (up to 548)"  # no step takes 0 ms: the band has no low end


def test_withheld_advice_says_its_band_carries_the_calibration():
    """An advice item without a band takes its gain into the band it gets; withheld, its finding says why the band is
    wide where the calibration's part is large (gain >= 1.5 and >= 5%), and not where it is small."""
    from commprof.analysis.section import Advice
    from commprof.analysis.uncertainty.bands import NOT_ADVISED, banded_advice

    nz = Noise(unprofiled_pct=4.0, steps_unprofiled=4)  # calibration 2.5%: x gain 4 x Z = 20% of the band
    a = Advice(knob="comm_hook", value="x", baseline_step_ms=100.0, predicted_step_ms=85.0, why="",
               calibration_gain=4.0)
    kept, withheld = banded_advice([a], nz, 1.0)
    assert kept == () and withheld[0].text.startswith(NOT_ADVISED)
    text = withheld[0].text
    assert text.endswith("(more steps outside the profiler narrow it).") and "±20% from the calibration" in text
    assert f"{band(85.0, nz, 1.0, gain=4.0)[1]:.1f})" in withheld[0].text  # the band it carries is the one it names
    kept, _ = banded_advice([replace(a, calibration_gain=1.0)], nz, 1.0)  # the traced step's own error: it stands
    assert [k.predicted_range_ms for k in kept] == [band(85.0, nz, 1.0, gain=1.0)]
    kept, withheld = banded_advice([replace(a, predicted_step_ms=95.0, calibration_gain=1.0)], nz, 1.0)
    assert kept == () and "from the calibration" not in withheld[0].text  # withheld for the noise, not the gain


def test_t_quantiles_match_the_tables():
    from commprof.analysis.uncertainty.verdict import t_quantile

    for df, t in ((1, 12.706), (2, 4.303), (5, 2.571), (10, 2.228), (30, 2.042)):
        assert t_quantile(0.975, df) == pytest.approx(t, abs=2e-3)


def test_welch_interval_and_verdicts_on_hand_built_steps():
    from commprof.analysis.uncertainty.verdict import welch

    delta, ci = welch([100.0, 101.0, 99.0, 100.0], [90.0, 91.0, 89.0, 90.0])
    # s² = 2/3 on both sides, n = 4: se = sqrt(1/3), df = 6, t = 2.447
    assert delta == -10.0 and ci == pytest.approx((-10 - 2.447 * 3 ** -0.5, -10 + 2.447 * 3 ** -0.5), abs=2e-3)
    # a drift of sd 2% per run: two runs differ by z x sqrt(2) x 2 ms = 5.54 ms of it, in quadrature
    _d, wide = welch([100.0, 101.0, 99.0, 100.0], [90.0, 91.0, 89.0, 90.0], drift_sd_pct=2.0)
    half = ((2.447 * 3 ** -0.5) ** 2 + (1.95996 * 2 ** 0.5 * 2.0) ** 2) ** 0.5
    assert wide == pytest.approx((-10 - half, -10 + half), abs=2e-3) and wide[1] < 0  # still faster beyond it
    _d, drifted = welch([100.0, 101.0, 99.0, 100.0], [90.0, 91.0, 89.0, 90.0], drift_sd_pct=5.0)
    assert drifted[0] < 0 < drifted[1]  # 10% is within what a 5% drift per run makes of two runs
    _d, same = welch([100.0, 110.0, 95.0], [104.0, 98.0, 101.0], drift_sd_pct=3.0)
    assert same[0] < 0 < same[1]
    assert welch([100.0], [90.0, 91.0])[1] is None


def test_the_partition_band_carries_the_stages_contention():
    from commprof.analysis.pipeline.family import STRUCTURE_PCT, band

    lo, hi = band(100.0, Noise())
    h = (8.0**2 + STRUCTURE_PCT**2) ** 0.5  # the replays' floor on a changed setting, the contention term
    assert (lo, hi) == pytest.approx((100 - h, 100 + h))
    # the quiet CI run's miss (+12.1%: 379.3 predicted, 338.4 measured) lies inside it
    lo, hi = band(379.3, Noise(unprofiled_pct=1.4, steps_unprofiled=6))
    assert lo < 338.4 < hi
