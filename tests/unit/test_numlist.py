"""One formatter for lists of step and rank numbers (``commprof.numlist``), used by the noise's stalls, the cycle
and coherence messages and the text report's header."""

from __future__ import annotations

from commprof.engine.cycles import span
from commprof.numlist import number_list, ranks_text


def test_runs_of_three_or_more_become_ranges_the_rest_are_listed():
    assert number_list([0, 1, 2, 5, 7, 8, 9]) == "0-2, 5, 7-9"
    assert number_list([9, 2, 3, 2, 4]) == "2-4, 9"  # sorted, each once
    assert number_list([1, 2]) == "1, 2" and number_list([3]) == "3" and number_list([]) == "none"
    assert number_list(range(2, 5)) == "2-4"


def test_a_limit_counts_items_and_says_more_follow():
    assert number_list(range(0, 40, 2), limit=8) == "0, 2, 4, 6, 8, 10, 12, 14 …"
    assert number_list([*range(0, 10), 20, 22], limit=2) == "0-9, 20 …"
    assert number_list([1, 3], limit=2) == "1, 3"


def test_steps_are_windows_ranks_are_sets():
    nums = [0, 1, 2, 3, 6, 9, 10]
    assert span(nums) == number_list(nums, min_run=2) == "0-3, 6, 9-10"  # a window of steps: "steps 2-3"
    assert ranks_text(nums) == "ranks 0-3, 6, 9, 10" and ranks_text([4]) == "rank 4"  # a set: "ranks 0, 1"
    assert ranks_text([3, 3]) == "rank 3" and number_list([1, 2], limit=0) == "1, 2"
