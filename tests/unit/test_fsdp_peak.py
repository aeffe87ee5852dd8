"""The FSDP advisor's predicted peak memory: a median over the traced passes with their range, so that one pass
holding a reduce-scatter staging copy or two more than the next (gloo's thread drains them when it can) does not
move the prediction (CI: one pass predicted 52.1 MiB where the setting measured 44.1 MiB)."""

from __future__ import annotations

from commprof.analysis.fsdp.advice import FSDPWhatIf, _high, _peak, _peak_text
from commprof.units import MiB

STAGING = 4 * MiB  # one Linear(1024, 1024)'s gradient in fp32


def test_the_prediction_is_the_median_pass_and_the_range_spans_every_pass():
    others = [{"forward": 30 * MiB, "backward": 36 * MiB},
              {"forward": 30 * MiB, "backward": 36 * MiB + 2 * STAGING},  # two staging copies still held
              {"forward": 30 * MiB, "backward": 36 * MiB}]
    held = {"forward": 4 * MiB, "backward": 8 * MiB}
    peak, rng = _peak(others, held)
    assert peak == 44 * MiB
    assert rng == (44 * MiB, 52 * MiB)


def test_a_phase_the_setting_holds_more_in_can_set_the_peak():
    peak, rng = _peak([{"forward": 40 * MiB, "backward": 36 * MiB}], {"forward": 0, "backward": 10 * MiB})
    assert (peak, rng) == (46 * MiB, (46 * MiB, 46 * MiB))


def test_no_timeline_no_prediction():
    assert _peak([], {"forward": MiB}) == (None, None)


def test_the_memory_limit_is_checked_against_the_top_of_the_range_and_the_text_shows_it():
    w = FSDPWhatIf(knob="reshard_after_forward", value=False, step_ms=1.0, peak_unsharded_bytes=0,
                   peak_memory_bytes=44 * MiB, peak_memory_range_bytes=(44 * MiB, 52 * MiB))
    assert _high(w) == 52 * MiB
    assert _peak_text(w) == "44 MiB (44-52 MiB over the traced passes)"
    flat = FSDPWhatIf(knob="reshard_after_forward", value=False, step_ms=1.0, peak_unsharded_bytes=0,
                      peak_memory_bytes=44 * MiB, peak_memory_range_bytes=(44 * MiB, 44 * MiB))
    assert _peak_text(flat) == "44 MiB"
