"""A lasting change mid-run (``uncertainty.changepoint``) and a rank slow at its step's end: each regime judged on its
own, the slowness at a step's end carried into the next step's wait (``critgraph.carried_start``), and a slowdown
that lasted never left out as a one-off stall."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest
from builders import collective, lane, rank_trace, run

from commprof.analysis.crossrank.matching import cross_rank
from commprof.analysis.crossrank.rootcause import IDLE, critical
from commprof.analysis.uncertainty.changepoint import MIN_STEPS, change_point, change_points, size_episode
from commprof.analysis.uncertainty.spread import spread
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
    assert cp is not None and cp.lasting and cp.at == 6 and (cp.start, cp.stop) == (0, 6)
    assert cp.inside == pytest.approx(20) and cp.outside == pytest.approx(45.5) and cp.p <= 0.02
    assert cp.changed == (6, 12, pytest.approx(45.5)) and cp.others == pytest.approx(20)
    down = change_point([45, 46, 44, 47, 45, 20, 21, 19, 20, 22])  # faster from the sixth step: a change too
    assert down is not None and down.at == 5 and down.p <= 0.05
    # located where the steps change, not at the most balanced split; one stall beside the change moves nothing
    rng = np.random.default_rng(4)
    late = change_point(list(rng.normal(20, 1, size=100)) + [40.0] * 20)
    assert late is not None and late.at == 100
    assert (s := change_point([20.0] * 6 + [45.0] * 5 + [2000.0])) is not None and s.at == 6
    # an episode in the middle: a segment that is neither the first nor the last step
    ep = change_point(list(rng.normal(20, 1, size=10)) + [40.0] * 6 + list(rng.normal(20, 1, size=10)))
    assert ep is not None and not ep.lasting and (ep.start, ep.stop) == (10, 16) and ep.inside == pytest.approx(40)
    assert ep.changed == (10, 16, pytest.approx(40))
    # series of the same steps tested together: the one that changed is named
    both = change_points([list(rng.normal(20, 1, size=12)), [1.0] * 6 + [30.0] * 6])
    assert both is not None and both.series == 1 and both.at == 6
    # three slow steps among twelve: no order test tells them from chance (3 steps at one of 10 places)
    assert change_point([20, 21, 19, 20, 45, 46, 44, 20, 22, 21, 19, 20]) is None
    assert change_point([20, 45] * 6) is None  # alternating: no lasting change
    assert change_point([20, 21, 19, 20, 22, 20, 21, 19, 20, 90, 21, 20]) is None  # one stall is not a regime
    assert change_point([20, 21, 19, 20, 45, 46]) is None  # two steps after: too few for a regime
    assert change_point([20.0, 21, 20, 22, 23, 24, 23, 24]) is None  # beyond chance but under MIN_SHIFT_PCT
    rng = np.random.default_rng(5)  # noise alone: at most the test's level, whatever the distribution
    found = sum(change_point(rng.lognormal(3, 0.3, size=12)) is not None for _ in range(200))
    found += sum(change_points([rng.normal(20, 3, size=24) for _ in range(3)]) is not None for _ in range(100)) * 2
    assert found <= 0.05 * 400 * 1.5
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
    # by step number where steps are apart (--steps 1-6,100-105): steps 6 and 100 are not in a row
    gap = [20.0] * 4 + [45.0, 57.0] + [44.0] + [20.0] * 5
    numbers = [1, 2, 3, 4, 5, 6, 100, 101, 102, 103, 104, 105]
    assert spread(gap, [str(n) for n in numbers]).outliers == ()  # type: ignore[union-attr]
    s5 = spread(gap, [str(n) for n in numbers], numbers)
    assert s5 is not None and [o.label for o in s5.outliers] == ["5", "6", "100"]
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
    assert c.ranks == (1,) and c.what == IDLE and c.regime == tuple(range(6, 12)), c.text
    assert c.change is not None and c.change.lasting and c.steps == 6 and c.change_steps == (6, 11)
    assert c.change_of == "The job's step" and "The job's step changed for good at step 6" in c.text
    assert c.predicted_gain_ms == pytest.approx(8.0, rel=0.25), c.text
    assert c.text.startswith("From step 6 on (6 of 12 analyzed steps), rank 1 holds the job back")
    assert "before it no single rank held the job back" in c.text


def test_a_rank_fast_again_from_mid_run_is_judged_until_then():
    rn = ddp(2, 12, np.random.default_rng(3), tail=lambda r, s: 8 * MS if r == 0 and s < 6 else 0)
    c = _cause(rn)
    # its last slow step end is waited for in step 6: the job's step 6 was slow too
    assert c.ranks == (0,) and c.regime in (tuple(range(6)), tuple(range(7))), c.text
    assert c.text.startswith(f"Until step {c.regime[-1]} ({c.regime[-1] + 1} of 12 analyzed steps), rank 0 holds")
    assert "after it no single rank held the job back" in c.text
    assert c.predicted_gain_ms == pytest.approx(8.0, rel=0.25), c.text


@pytest.mark.parametrize("seed", range(4))
def test_jitter_alone_with_ranks_own_step_windows_names_no_rank(seed: int):
    rn = ddp(4, 10, np.random.default_rng(10 + seed), jitter=0.15)
    c = _cause(rn)
    assert c.rank is None and c.ranks == () and c.regime is None, c.text


def test_one_rank_slow_then_another_is_told_by_halves():
    """The job's step does not change, only who sets it: rank 0 idles 8 ms at its step end in the first six steps,
    rank 1 in the last six; over all twelve each holds half the steps and neither stands out."""
    rn = ddp(2, 12, np.random.default_rng(6), tail=lambda r, s: 8 * MS if (r == 0) == (s < 6) else 0)
    c = _cause(rn)
    assert c.ranks in ((0,), (1,)) and c.change is not None and c.change.lasting, c.text
    assert c.change_of is not None and c.change_of.endswith("own work on the critical path")
    other = 1 - c.ranks[0]
    assert f"rank {other} held the job back" in c.text and c.predicted_gain_ms == pytest.approx(8.0, rel=0.25)


def test_a_rank_slow_in_an_episode_mid_run_is_judged_in_its_steps():
    rn = ddp(2, 24, np.random.default_rng(7), tail=lambda r, s: 8 * MS if r == 1 and 9 <= s < 16 else 0)
    c = _cause(rn)
    assert c.ranks == (1,) and c.change is not None and not c.change.lasting, c.text
    assert c.change_steps is not None and abs(c.change_steps[0] - 9) <= 1 and abs(c.change_steps[1] - 15) <= 1
    assert c.text.startswith(f"In steps {c.change_steps[0]}-{c.change_steps[1]} (")
    assert "in the other steps no single rank held the job back" in c.text
    assert c.predicted_gain_ms == pytest.approx(8.0, rel=0.25), c.text


def test_the_disturbed_line_says_the_variation_holds_the_change():
    """"profiled steps vary by 49.7%" beside a rank slow from step 12 on read as a noisy run: the line says which part
    of the variation is the change the root cause was judged by."""
    from types import SimpleNamespace

    from commprof.analysis.uncertainty.bands import _change, disturbed_warning
    from commprof.analysis.uncertainty.maths import Noise

    rn = ddp(2, 12, np.random.default_rng(2), tail=lambda r, s: 8 * MS if r == 1 and s >= 6 else 0)
    crit = critical(rn.ranks, cross_rank(rn.ranks))
    sections = [SimpleNamespace(family="crossrank", detail=SimpleNamespace(critical=crit))]
    change, episode = _change(sections)  # type: ignore[arg-type]
    assert change == "the job's step changed for good at step 6 (see who holds the job back)" and episode is None
    w = disturbed_warning(Noise(profiled_pct=49.7, steps_profiled=12), change)
    assert w is not None and "step 6 (see who holds the job back): part of the steps' variation is that change" in w
    assert _change([]) == (None, None)


def test_a_part_whose_count_chance_gives_does_not_stand():
    """A quiet run's first 4 profiled steps (slower: the profiler's start) named a rank in 3 of them (p = 0.62) over
    the whole run's "no single rank": a part's ranks stand only where its count is beyond chance or held in every
    one of its steps."""
    from types import SimpleNamespace

    from commprof.analysis.uncertainty.regimes import by_regime

    lengths = [30.0] * 4 + [20.0, 21.0, 19.0, 20.0, 22.0, 20.0, 21.0, 19.0]
    paths = [SimpleNamespace(step=i, length_ns=int(v * MS), own_ns=lambda: {}) for i, v in enumerate(lengths)]

    def verdict(held: int):
        def told(_graphs, ps):
            first = ps[0].step == 0
            return SimpleNamespace(ranks=(1,) if first else (), predicted_gain_ms=1.4 if first else None,
                                   text="Rank 1 may hold the job back." if first else "No single rank ...",
                                   steps=len(ps), steps_on_path=held if first else 0)
        return told

    whole = SimpleNamespace(ranks=(), predicted_gain_ms=None, text="No single rank ...")
    strict = lambda v: v.steps_on_path == v.steps  # noqa: E731
    assert by_regime(paths, paths, verdict(3), whole, strict) is None  # 3 of its 4 steps: does not stand
    reg = by_regime(paths, paths, verdict(4), whole, strict)  # held in all 4: stands, told with its steps
    assert reg is not None and reg.steps == (0, 1, 2, 3) and reg.text.startswith("Until step 3 (4 of 12")


def test_an_episode_too_short_for_the_order_tests_is_told_by_its_size():
    """Three slow steps among twelve hold the three slowest places with chance 10/220 by order alone; by size they
    stand out: each slower than every other step and far above the others' spread, the job's step too."""
    three = [20, 21, 19, 20, 45, 46, 44, 20, 22, 21, 19, 20]
    ep = size_episode([three])
    assert ep is not None and (ep.start, ep.stop) == (4, 7) and ep.p is None and not ep.lasting
    assert ep.inside == pytest.approx(45) and ep.outside == pytest.approx(20) and ep.sds is not None and ep.sds > 5
    # a rank's own work on the path, 33-35 ms in its episode and 17-20 ms or nothing elsewhere: the three, not four
    own = [1.0, 0, 19.6, 0, 1.3, 20.0, 34.2, 33.1, 35.0, 0, 17.7, 17.4]
    step = [27.1, 27.7, 24.5, 31.3, 24.8, 29.2, 38.1, 39.8, 47.8, 26.7, 30.0, 28.0]
    found = size_episode([step, own])
    assert found is not None and (found.start, found.stop) == (6, 9)
    assert size_episode([[45, 46, 44] + [20] * 9]) is None  # at the start: a regime or a warm-up, not an episode
    assert size_episode([[20, 21, 19, 20, 30, 31, 29, 20, 22, 21, 19, 20, 40]]) is None  # a slower step outside it
    assert size_episode([[20, 21, 19, 20, 45, 46, 20, 22, 21, 19, 20, 21]]) is None  # two steps: stalls, not this
    # the path changing hands (rank 0 on it in steps 4-6, rank 1 elsewhere) with the job's step unchanged
    flat = [20.0, 21, 19, 20, 21, 20, 19, 20, 22, 21, 19, 20]
    r0 = [0.2, 0.1, 0.3, 0.2, 16, 17, 16, 0.1, 0.2, 0.3, 0.1, 0.2]
    assert size_episode([flat, r0, [16 - x if x < 1 else 0.2 for x in r0]]) is None
    # noise alone: at most 1% of seeded runs, whatever the distribution, with the ranks taking turns on the path
    hits = 0
    for n in (12, 24):
        for seed in range(200):
            rng = np.random.default_rng(seed)
            job = 20 * (rng.lognormal(0, 0.3, n) if seed % 2 else 1 + 0.3 * rng.pareto(3.0, n))
            on = rng.random(n) < 0.5
            hits += size_episode([job, np.where(on, 0.8 * job, 0.5 * rng.random(n)),
                                  np.where(on, 0.5 * rng.random(n), 0.8 * job)]) is not None
    assert hits <= 2  # 1 measured


def test_a_rank_slow_in_three_steps_of_twelve_is_named_in_them():
    """A rank slow in steps 5-7 of 12 (a checkpoint, a neighbour's burst) read "compute 1.2x, -1.19 ms" or "no
    single rank": too few steps for a regime, and no one-off either."""
    rn = ddp(2, 12, np.random.default_rng(3), tail=lambda r, s: 8 * MS if r == 1 and 5 <= s < 8 else 0)
    c = _cause(rn)
    # its last sleep, at step 7's end, is its peer's wait in step 8's first all-reduce: step 8 is slow too
    assert c.ranks == (1,) and c.change is not None and c.change.p is None, c.text
    assert c.change_steps is not None and c.change_steps[0] == 5 and c.change_steps[1] in (7, 8)
    first, last = c.change_steps
    assert c.regime == tuple(range(first, last + 1))
    assert c.text.startswith(f"In steps {first}-{last} ({last - first + 1} of 12 analyzed steps), rank 1 may hold")
    assert "in an episode too short for its count to tell" in c.text and "trace at least" not in c.text
    assert re.search(r"told by its size: each of its steps \d+\.\d\d ms or more above every other step and \d+ robust "
                     r"deviations or more above their median\)", c.text), c.text
    assert c.predicted_gain_ms == pytest.approx(8.0, rel=0.25), c.text
    # its slow steps are the episode, not one-off stalls, in the report's disturbed line
    from types import SimpleNamespace

    from commprof.analysis.uncertainty.bands import noise_warning
    from commprof.analysis.uncertainty.maths import Noise
    from commprof.analysis.uncertainty.stalls import Stall

    crit = SimpleNamespace(cause=c)
    sections = [SimpleNamespace(family="crossrank", detail=SimpleNamespace(critical=crit), whatifs=(1,), advice=(),
                                findings=())]
    stalls = (Stall(6, (1,), 40.0, 40.0, 3.1, True), Stall(10, (0,), 44.0, 44.0, 4.5, True))
    (w,) = noise_warning(Noise(profiled_pct=60.0, steps_profiled=12, left_out=stalls), sections)  # type: ignore[arg-type]
    assert "profiled step 10 on rank 0" in w and "step 6" not in w and f"changed in steps {first}-{last}" in w


def test_an_episode_is_found_beside_a_change_that_named_no_rank():
    """The job faster in its last steps (every rank alike: a neighbour gone) is the order tests' change, and neither
    of its parts names a rank; rank 1's six slow steps mid-run, which that scan passed over, are told by size."""
    def tail(r: int, s: int) -> int:
        return (4 * MS if s < 14 else 0) + (8 * MS if r == 1 and 6 <= s < 12 else 0)

    rn = ddp(2, 20, np.random.default_rng(8), tail=tail)
    paths = critical(rn.ranks, cross_rank(rn.ranks)).paths  # type: ignore[union-attr]
    lasting = change_points([[float(p.length_ns) for p in paths]])
    assert lasting is not None and lasting.lasting and lasting.p is not None  # the order tests' change: from 13 or 14
    c = _cause(rn)
    assert c.ranks == (1,) and c.change is not None and c.change.p is None, c.text
    assert f"Also, the job's step changed for good at step {paths[lasting.at].step}" in c.text  # the other change
    assert c.change_steps is not None and c.change_steps[0] == 6 and c.change_steps[1] in (11, 12), c.text
    assert c.predicted_gain_ms == pytest.approx(8.0, rel=0.25), c.text


def test_an_episode_told_by_size_says_so_where_its_other_steps_do_not_vary():
    """A rank's own work on the path is 0 in most steps (the MAD is 0): the sentence gives the gap to every other step,
    not a count of deviations (it read "which hardly vary" beside other steps of 0-9 ms)."""
    from commprof.analysis.uncertainty.regimes import told

    step = [20.0, 22, 21, 20, 22, 41, 42, 43, 20, 21, 22, 20]
    own = [0.0, 9, 0, 8, 0, 30, 31, 32, 0, 0, 9, 0]
    cp = size_episode([[v * MS for v in step], [v * MS for v in own]])
    assert cp is not None and (cp.start, cp.stop) == (5, 8) and cp.sds == float("inf")
    text = told(cp, "Rank 1's own work on the critical path", list(range(12)))
    assert cp.series == 1 and cp.gap == pytest.approx(21 * MS)  # 30 ms against the other steps' 9 ms at most
    assert "changed in steps 5-7" in text and "each of its steps 21.00 ms or more above every other step)" in text
    assert "robust deviations" not in text and "hardly" not in text
    # the job's step must be slower by as much: a step 0.1 ms over the others' slowest is no episode of the job
    barely = [20, 21, 19, 20, 22.1, 35, 35, 20, 22, 21, 19, 20]
    assert size_episode([barely, [0, 0, 0, 0, 8, 8, 8, 0, 0, 0, 0, 0]]) is None


def test_the_part_outside_an_episode_may_be_the_one_that_stands():
    """Where the steps outside an episode name a rank that costs more over the run than the episode's, that part's
    verdict stands, told with its steps; the change is still the episode."""
    from types import SimpleNamespace

    from commprof.analysis.uncertainty.regimes import by_regime

    lengths = [20.0, 21, 19, 20, 45, 46, 44, 20, 22, 21, 19, 20]
    paths = [SimpleNamespace(step=10 + i, length_ns=int(v * MS), own_ns=lambda: {}) for i, v in enumerate(lengths)]

    def verdict(_graphs, ps):
        inside = ps[0].step == 14
        return SimpleNamespace(ranks=(1,) if inside else (0,), predicted_gain_ms=5.0 if inside else 3.0,
                               text=f"Rank {1 if inside else 0} holds the job back.")

    whole = SimpleNamespace(ranks=(), predicted_gain_ms=None, text="No single rank ...")
    reg = by_regime(paths, paths, verdict, whole)
    assert reg is not None and reg.verdict.ranks == (0,) and reg.change_steps == (14, 16)  # 3 x 3 ms < 9 x 3 ms
    assert reg.steps == (10, 11, 12, 13, 17, 18, 19, 20, 21) and reg.indices == [0, 1, 2, 3, 7, 8, 9, 10, 11]
    assert reg.text.startswith("Outside steps 14-16 (9 of 12 analyzed steps), rank 0 holds the job back.")
    assert "in those steps rank 1 held the job back (-5.00 ms a step)" in reg.text


def test_a_one_off_stall_does_not_hide_a_change():
    """Six fast steps, one of them a stall slower than the slow regime, then six slow: the order test on every step
    read p = 0.2; the job's one-off stalls are left out of the search and the change is mapped back onto all steps."""
    from types import SimpleNamespace

    from commprof.analysis.uncertainty.regimes import _changes

    lengths = [20, 21, 19, 90, 20, 22, 45, 46, 44, 47, 45, 48]
    assert change_points([lengths]) is None  # the premise: the stall hides it from the order test
    paths = [SimpleNamespace(step=2 + i, length_ns=int(v * MS), own_ns=lambda: {}) for i, v in enumerate(lengths)]
    ((cp, what),) = _changes(paths)
    assert what == "The job's step" and cp.lasting and (cp.start, cp.stop, cp.n) == (0, 6, 12) and cp.at == 6
    assert cp.inside == pytest.approx(20 * MS) and cp.outside == pytest.approx(45.5 * MS)


def test_an_episode_whose_first_step_reads_as_a_stall_is_still_found():
    """A real run (rank 1 asleep 25 ms in steps 8-10 of 2-17): step 8's 40 ms was a one-off stall beside the others'
    median of 9 ms while 32 and 34 ms were not, and without it the episode had two steps.  The slow steps, in a row,
    are no one-off stalls (``spread``), and the search on every step counts beside the one without stalls."""
    from types import SimpleNamespace

    from commprof.analysis.uncertainty.regimes import _changes

    step = [12.1, 15.4, 3.8, 7.9, 3.8, 9.4, 40.3, 31.7, 34.0, 5.8, 8.1, 8.3, 11.2, 15.3, 6.7, 12.8]
    one = [1.4, 1.2, 0.5, 0, 0, 0, 28.7, 28.8, 27.4, 1.2, 2.6, 2.1, 0.8, 0, 1.0, 0.9]
    zero = [3.2, 1.8, 2.9, 4.2, 3.3, 2.5, 0, 0, 3.5, 1.9, 0, 1.5, 2.2, 3.0, 2.3, 4.1]
    assert spread(step, [str(i) for i in range(16)]).outliers == ()  # type: ignore[union-attr]
    paths = [SimpleNamespace(step=2 + i, length_ns=int(v * MS), own_ns=lambda i=i: {0: int(zero[i] * MS),
                                                                                     1: int(one[i] * MS)})
             for i, v in enumerate(step)]
    sized = [(cp, what) for cp, what in _changes(paths) if cp.p is None]
    assert [(cp.start, cp.stop) for cp, _ in sized] == [(6, 9)] and sized[0][1].startswith("Rank 1's own work")


def test_two_episodes_are_told_together():
    """Rank 1 asleep in steps 4-6 and 11-13: each episode's steps are not slower than the other's, so neither stood
    out alone ("No single rank", or "in 9 of 14 steps ... -4.03 ms"); the slowest steps in two runs of three do."""
    two = [20, 21, 19, 20, 45, 46, 44, 20, 22, 21, 19, 45, 47, 44, 20, 21]
    ep = size_episode([two])
    assert ep is not None and ep.segments == ((4, 7), (11, 14)) and ep.members == (4, 5, 6, 11, 12, 13)
    assert (ep.start, ep.stop) == (4, 14) and ep.inside == pytest.approx(45) and ep.outside == pytest.approx(20)
    assert size_episode([[20, 21, 19, 20, 45, 46, 44, 20, 22, 21, 19, 45, 47, 20, 21, 20]]) is None  # a run of 2
    asleep = {3, 4, 5, 11, 12, 13}
    rn = ddp(2, 18, np.random.default_rng(9), tail=lambda r, s: 8 * MS if r == 1 and s in asleep else 0)
    c = _cause(rn)
    assert c.ranks == (1,) and c.change is not None and len(c.change.segments) == 2, c.text
    assert c.regime is not None and asleep <= set(c.regime) and len(c.regime) <= 8
    assert re.match(r"In steps 3-[56], 11-1[34] \(\d of 18 analyzed steps\), rank 1 holds the job back", c.text)
    assert c.predicted_gain_ms == pytest.approx(8.0, rel=0.25), c.text


def test_the_slowest_step_of_a_slow_half_is_no_one_off_stall():
    """Rank 1 asleep in the last 6 of 12 steps (38-45 ms beside 6-17 ms): only its slowest step, 47 ms, cleared the
    outlier bar against the others' median and spread, and was left out as a "one-off stall" (1 of 12 real runs);
    the slow steps are counted from halfway between the median and it."""
    half = [15.2, 14.3, 15.9, 20.8, 8.9, 20.1, 38.0, 39.5, 38.8, 40.3, 39.7, 47.1]
    s = spread(half, [f"step {i}" for i in range(12)])
    assert s is not None and s.outliers == () and s.mean == pytest.approx(float(np.mean(half)))
    stall = [15.2, 14.3, 15.9, 20.8, 8.9, 20.1, 16.0, 95.0, 14.8, 15.3, 17.7, 16.1]  # one stall: still left out
    one = spread(stall, [f"step {i}" for i in range(12)])
    assert one is not None and [o.label for o in one.outliers] == ["step 7"]
