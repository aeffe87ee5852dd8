"""A lasting change mid-run (``uncertainty.changepoint``) and a rank slow at its step's end: each regime judged on its
own, the slowness at a step's end carried into the next step's wait (``critgraph.carried_start``), and a slowdown
that lasted never left out as a one-off stall."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from builders import collective, lane, rank_trace, run

from commprof.analysis.crossrank.matching import cross_rank
from commprof.analysis.crossrank.rootcause import IDLE, critical
from commprof.analysis.uncertainty.changepoint import MIN_STEPS, change_point
from commprof.analysis.uncertainty.maths import spread
from commprof.model import Run

US = 1_000
MS = 1_000_000


def ddp(n: int, steps: int, rng: np.random.Generator, *, tail: Callable[[int, int], int] = lambda r, s: 0,
        jitter: float = 0.05) -> Run:
    """``n`` CPU ranks, each with its own step window (from the end of its last step to its own end): backward
    compute (~4 ms +- ``jitter``) split by two bucket all-reduces (each ends 300 us after its last arrival), the
    optimizer (~1 ms), then ``tail(rank, step)`` ns of nothing (a sleep, logging, a host stall) before the step
    ends: the slowness of a rank's step end shows as its peers' wait in the next step's first all-reduce."""
    ready = np.zeros(n, dtype=np.int64)
    work: dict[int, list[tuple[int, int, int]]] = {r: [] for r in range(n)}
    colls: dict[int, list] = {r: [] for r in range(n)}
    spans: dict[int, list[tuple[int, int, int]]] = {r: [] for r in range(n)}
    seq = 0
    for s in range(steps):
        start = ready.copy()
        for _bucket in range(2):
            arr = np.zeros(n, dtype=np.int64)
            for r in range(n):
                d = int(2 * MS * rng.uniform(1 - jitter, 1 + jitter))
                work[r].append((int(ready[r]), int(ready[r]) + d, s))
                arr[r] = ready[r] + d
            end = int(arr.max()) + 300 * US
            for r in range(n):
                colls[r].append(collective(int(arr[r]), end, step=s, group="0", group_size=n, seq=seq))
            ready[:] = end
            seq += 1
        for r in range(n):
            d = int(1 * MS * rng.uniform(1 - jitter, 1 + jitter))
            work[r].append((int(ready[r]), int(ready[r]) + d, s))
            ready[r] += d + tail(r, s) + 20 * US
            spans[r].append((s, int(start[r]), int(ready[r])))
    return run(*[rank_trace(r, steps=spans[r], compute=lane([(a, b) for a, b, _ in work[r]], [s for *_, s in work[r]]),
                            collectives=colls[r], world_size=n) for r in range(n)])


def _cause(rn: Run):
    crit = critical(rn.ranks, cross_rank(rn.ranks))
    assert crit is not None
    return crit.cause


def test_a_lasting_change_is_found_at_its_step_and_noise_or_alternation_is_not():
    cp = change_point([20, 21, 19, 20, 22, 20, 45, 46, 44, 47, 45, 48])
    assert cp is not None and cp.at == 6 and cp.before == pytest.approx(20) and cp.after == pytest.approx(45.5)
    assert cp.p <= 0.01
    down = change_point([45, 46, 44, 47, 45, 20, 21, 19, 20, 22])  # faster from the sixth step: a change too
    assert down is not None and down.at == 5
    assert change_point([20, 45] * 6) is None  # alternating: no lasting change
    assert change_point([20, 21, 19, 20, 22, 20, 21, 19, 20, 90, 21, 20]) is None  # one stall is not a regime
    assert change_point([20, 21, 19, 20, 45, 46]) is None  # two steps after: too few for a regime
    assert change_point([20.0, 21, 20, 22, 23, 24, 23, 24]) is None  # beyond chance but under MIN_SHIFT_PCT
    rng = np.random.default_rng(5)  # noise alone: at most the test's level, whatever the distribution
    found = sum(change_point(rng.lognormal(3, 0.3, size=12)) is not None for _ in range(200))
    assert found <= 0.05 * 200 * 1.5
    assert change_point([1.0] * (2 * MIN_STEPS)) is None


def test_a_slowdown_that_lasted_is_not_left_out_as_one_off_stalls():
    slow_half = [20.0] * 7 + [45.0, 57.0, 44.0, 48.0, 46.0]
    s = spread(slow_half, [f"step {i}" for i in range(12)])
    assert s is not None and s.outliers == () and s.mean == pytest.approx(float(np.mean(slow_half)))
    last_three = [20.0] * 9 + [45.0, 57.0, 44.0]  # slow from the tenth step on: a quarter, but in a row
    s3 = spread(last_three, [f"step {i}" for i in range(12)])
    assert s3 is not None and s3.outliers == ()
    apart = [20.0, 45.0] + [20.0] * 4 + [57.0] + [20.0] * 4 + [44.0]
    s4 = spread(apart, [f"step {i}" for i in range(12)])
    assert s4 is not None and [o.label for o in s4.outliers] == ["step 1", "step 6", "step 11"]
    one = [20.0] * 11 + [57.0]
    s1 = spread(one, [f"step {i}" for i in range(12)])
    assert s1 is not None and [o.label for o in s1.outliers] == ["step 11"]


def test_a_rank_slow_at_its_step_end_is_named_with_its_whole_cost():
    """Rank 1 idles 6 ms after its optimizer in every step: its peers wait for it in the next step's first
    all-reduce, outside the step it idled in; the gain carries over (replayed one step at a time from the measured
    starts, a slow step end cost almost nothing in the steps where another rank's window was the longer)."""
    rn = ddp(3, 10, np.random.default_rng(1), tail=lambda r, s: 6 * MS if r == 1 else 0)
    c = _cause(rn)
    assert c.ranks == (1,) and c.what == IDLE, c.text
    assert c.predicted_gain_ms == pytest.approx(6.0, rel=0.25), c.text
    assert c.regime is None and "From step" not in c.text


def test_a_rank_slow_from_mid_run_is_judged_in_its_regime():
    rn = ddp(2, 12, np.random.default_rng(2), tail=lambda r, s: 8 * MS if r == 1 and s >= 6 else 0)
    c = _cause(rn)
    assert c.ranks == (1,) and c.what == IDLE and c.regime == (6, 11), c.text
    assert c.change is not None and c.steps == 6
    assert c.predicted_gain_ms == pytest.approx(8.0, rel=0.25), c.text
    assert c.text.startswith("From step 6 on (6 of 12 analyzed steps), rank 1 holds the job back")
    assert "before it no single rank held the job back" in c.text


def test_a_rank_fast_again_from_mid_run_is_judged_until_then():
    rn = ddp(2, 12, np.random.default_rng(3), tail=lambda r, s: 8 * MS if r == 0 and s < 6 else 0)
    c = _cause(rn)
    # its last slow step end is waited for in step 6: the job's step 6 was slow too
    assert c.ranks == (0,) and c.regime in ((0, 5), (0, 6)), c.text
    assert c.text.startswith(f"Until step {c.regime[1]} ({c.regime[1] + 1} of 12 analyzed steps), rank 0 holds")
    assert "after it no single rank held the job back" in c.text
    assert c.predicted_gain_ms == pytest.approx(8.0, rel=0.25), c.text


@pytest.mark.parametrize("seed", range(4))
def test_jitter_alone_with_ranks_own_step_windows_names_no_rank(seed: int):
    rn = ddp(4, 10, np.random.default_rng(10 + seed), jitter=0.15)
    c = _cause(rn)
    assert c.rank is None and c.ranks == () and c.regime is None, c.text
