"""The cross-rank critical path and the root cause on hand-built runs: a lockstep group with one slow member, a
pipeline with a slow stage, pure jitter, a rank idle before collectives."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from builders import collective, lane, rank_trace, run

from commprof.analysis.analyze import analyze
from commprof.analysis.crossrank.chance import weak
from commprof.analysis.crossrank.critpath import COMM, OWN
from commprof.analysis.crossrank.matching import cross_rank
from commprof.analysis.crossrank.rootcause import COMPUTE, IDLE, critical
from commprof.analysis.uncertainty.periodic import Periodic
from commprof.model import Run

US = 1_000


def lockstep(n: int, layers: int, steps: int, comp: Callable[[int, int, int], int], *, xfer: int = 50 * US,
             sleep: Callable[[int], int] = lambda r: 0, group: int | None = None, shift_ns: int = 0,
             link: Callable[[int, int], float] = lambda r, s: 1.0) -> Run:
    """Groups of ``group`` consecutive ranks (default: all) in lockstep: per layer each rank computes ``comp(rank,
    step, layer)`` ns, sleeps ``sleep(rank)`` ns, then joins its group's all-reduce; every step ends with an
    all-reduce of every rank.  Rank r's clock is shifted by ``r * shift_ns``; its transfers take ``link(rank, step)``
    times ``xfer`` after the last arrival."""
    group = group or n
    work: dict[int, tuple[list, list, list]] = {r: ([], [], []) for r in range(n)}
    ready = np.zeros(n, dtype=np.int64)
    spans = []
    seq = 0
    for s in range(steps):
        t0 = int(ready.max())
        ready[:] = t0
        for layer in range(layers):
            arr = np.zeros(n, dtype=np.int64)
            for r in range(n):
                d = comp(r, s, layer)
                work[r][0].append((int(ready[r]), int(ready[r]) + d))
                work[r][2].append(s)
                arr[r] = ready[r] + d + sleep(r)
            last = arr.reshape(-1, group).max(axis=1).repeat(group)
            mine = np.array([int(xfer * link(r, s)) for r in range(n)], dtype=np.int64)
            for r in range(n):
                work[r][1].append(collective(int(arr[r]), int(last[r] + mine[r]), step=s, group=f"g{r // group}",
                                             group_size=group, seq=seq))
            ready = last + mine
            seq += 1
        last_all = int(ready.max())
        mine = np.array([int(xfer * link(r, s)) for r in range(n)], dtype=np.int64)
        for r in range(n):
            work[r][1].append(collective(int(ready[r]), last_all + int(mine[r]), step=s, group="world", group_size=n,
                                         seq=seq))
        seq += 1
        ready[:] = last_all + mine
        spans.append((s, t0, last_all + int(mine.max()) + 10 * US))
    ranks = []
    for r in range(n):
        sh = r * shift_ns
        colls = [collective((c.start_ns or 0) + sh, (c.end_ns or 0) + sh, step=c.step, group=c.process_group,
                            group_size=c.group_size, seq=c.seq) for c in work[r][1]]
        ranks.append(rank_trace(r, steps=[(s, a + sh, b + sh) for s, a, b in spans],
                                compute=lane([(a + sh, b + sh) for a, b in work[r][0]], work[r][2]),
                                collectives=colls, world_size=n))
    return run(*ranks)


def _cause(rn: Run):
    crit = critical(rn.ranks, cross_rank(rn.ranks))
    assert crit is not None
    return crit


def test_lockstep_group_names_its_slow_member_not_a_peer():
    rng = np.random.default_rng(0)
    rn = lockstep(16, 6, 3, lambda r, s, layer: int(1_000 * US * (1.3 if r == 13 else 1.0) * rng.uniform(0.99, 1.01)),
                  group=8, shift_ns=2_000_000_000)
    crit = _cause(rn)
    c = crit.cause
    assert c.rank == 13 and c.ranks == (13,) and c.what == COMPUTE
    assert c.steps_on_path == 3 and c.share_pct is not None and c.share_pct > 60
    assert c.ratio == pytest.approx(1.3, rel=0.05)
    # at its peers' speed every layer takes 1 ms instead of 1.3 ms: 6 x 0.3 ms per step
    assert c.predicted_gain_ms == pytest.approx(1.8, rel=0.1)
    assert c.predicted_step_ms == pytest.approx(c.step_ms - c.predicted_gain_ms, abs=1e-6)
    assert not weak(c) and "Rank 13 holds the job back" in c.text and "3 of 3 steps" in c.text  # of many ranks: p small
    # every ns of each path is one rank's own work or one transfer, back to back
    for p in crit.paths:
        segs = p.segments
        assert all(a.end_ns == b.start_ns for a, b in zip(segs, segs[1:], strict=False))
        assert sum(s.duration_ns for s in segs) == pytest.approx(p.length_ns, rel=0.02)
        own = [s for s in segs if s.kind == OWN]
        assert all(s.compute_ns + s.host_ns + s.idle_ns == s.duration_ns for s in own)
        assert {s.kind for s in segs} == {OWN, COMM}


def test_the_straggler_table_ranks_by_caused_wait_under_any_threshold():
    rng = np.random.default_rng(1)
    rn = lockstep(8, 6, 3, lambda r, s, layer: int(1_000 * US * (1.3 if r == 5 else 1.0) * rng.uniform(0.99, 1.01)))
    top = cross_rank(rn.ranks).stragglers[0]
    assert top.rank == 5 and top.late_count == 0  # late by 0.3 ms, under the 1 ms threshold
    assert top.caused_wait_ms == pytest.approx(6 * 0.3, rel=0.15)


def test_pure_jitter_names_no_rank():
    rng = np.random.default_rng(2)
    rn = lockstep(8, 6, 5, lambda r, s, layer: int(1_000 * US * rng.uniform(0.9, 1.1)))
    c = _cause(rn).cause
    assert c.rank is None and c.ranks == () and c.predicted_gain_ms is None
    assert c.text.startswith("No single rank holds the job back") and len(c.spread) >= 2


def test_two_ranks_taking_turns_name_no_rank():
    """The demo's case: two ranks alternate in arriving last."""
    rn = lockstep(2, 6, 4, lambda r, s, layer: 1_000 * US + (150 * US if (layer + s) % 2 == r else 0))
    assert _cause(rn).cause.rank is None


def test_two_ranks_taking_turns_step_by_step_name_no_rank():
    """Rank 0 slow in steps 0 and 2, rank 1 in step 1: the majority alone would name rank 0; its gain does not
    stand out from what rank 1's slowness cost."""
    rng = np.random.default_rng(6)
    rn = lockstep(2, 6, 3, lambda r, s, layer: int(1_000 * US * (1.3 if s % 2 == r else 1.0) * rng.uniform(0.99, 1.01)))
    c = _cause(rn).cause
    assert c.rank is None and c.ranks == () and c.jitter_ms > 0


def test_two_slow_ranks_of_a_group_are_named_together():
    """Ranks 1 and 5 of a lockstep group of 8 are both 30% slower: each alone gains little (the other is as slow),
    together they hold the job back."""
    rng = np.random.default_rng(7)
    rn = lockstep(8, 6, 3, lambda r, s, layer: int(1_000 * US * (1.3 if r in (1, 5) else 1.0)
                                                   * rng.uniform(0.98, 1.02)))
    c = _cause(rn).cause
    assert c.rank is None and c.ranks == (1, 5) and c.what == COMPUTE, c.text
    assert c.predicted_gain_ms == pytest.approx(6 * 0.3, rel=0.2)
    assert weak(c) and c.text.startswith("Ranks 1 and 5 may hold the job back together")  # p = 0.44 in 3 steps


def test_one_outlier_step_of_another_rank_does_not_hide_the_cause():
    """Rank 3 sleeps before every collective; rank 0 stalls once (one step): rank 3 is still named."""
    rng = np.random.default_rng(8)
    rn = lockstep(4, 5, 5, lambda r, s, layer: int(1_000 * US * rng.uniform(0.99, 1.01)
                                                   + (2_000 * US if (r, s, layer) == (0, 2, 1) else 0)),
                  sleep=lambda r: 400 * US if r == 3 else 0)
    c = _cause(rn).cause
    assert c.rank == 3 and c.what == IDLE and c.steps_on_path >= 4, c.text


def test_rank_idle_before_collectives_is_named_as_idle():
    rng = np.random.default_rng(3)
    rn = lockstep(4, 5, 3, lambda r, s, layer: int(1_000 * US * rng.uniform(0.99, 1.01)),
                  sleep=lambda r: 400 * US if r == 2 else 0)
    c = _cause(rn).cause
    assert c.rank == 2 and c.what == IDLE
    assert c.predicted_gain_ms == pytest.approx(5 * 0.4, rel=0.1)


def test_pipeline_slow_stage_is_named():
    """Two stages joined by a 2-rank collective per micro-batch (the stage boundary): stage 1 twice as slow."""
    rng = np.random.default_rng(4)
    rn = lockstep(2, 8, 3, lambda r, s, layer: int(1_000 * US * (2.0 if r == 1 else 1.0) * rng.uniform(0.99, 1.01)))
    c = _cause(rn).cause
    assert c.rank == 1 and c.what == COMPUTE


def test_the_report_leads_with_the_root_cause():
    rng = np.random.default_rng(5)
    rn = lockstep(8, 4, 3, lambda r, s, layer: int(1_000 * US * (1.3 if r == 6 else 1.0) * rng.uniform(0.99, 1.01)))
    rep = analyze(rn)
    assert rep.findings[0].text.startswith("Rank 6 holds the job back")
    assert rep.critical is not None and rep.critical.comm


def test_a_rank_slow_in_the_steps_it_holds_is_named_though_faster_in_another():
    """Rank 0 works 8 ms more before the last collective of steps 1, 2, 4 and 5 (a checkpoint), and in step 3 runs
    20% faster than rank 1: at the collectives it is longer no more often than chance, and in step 3 its total is
    shorter; yet in every step it stands out in, it is slower in total by its whole gain.  It was "not slower than
    its peers beyond chance"."""
    rng = np.random.default_rng(9)

    def comp(r: int, s: int, layer: int) -> int:
        base = 1_000 * US * (0.8 if (r, s) == (0, 3) else 1.0) * rng.uniform(0.99, 1.01)
        return int(base + (8_000 * US if r == 0 and s in (1, 2, 4, 5) and layer == 5 else 0))

    c = _cause(lockstep(2, 6, 6, comp)).cause
    assert c.ranks == (0,) and c.steps_on_path >= 4, c.text
    assert c.predicted_gain_ms is not None and 7.0 < c.predicted_gain_ms < 9.0


def test_a_rank_with_periodic_work_is_judged_in_the_steps_it_delays():
    """Rank 0 works 8 ms more in steps 0, 3 and 6 of 9 (every third step): over every step it holds a third of them,
    no rank named; where its slow steps are known to recur (``uncertainty.periodic``), the verdict in those steps
    names it, with the steps."""
    rng = np.random.default_rng(10)
    rn = lockstep(2, 6, 9, lambda r, s, layer: int(1_000 * US * rng.uniform(0.99, 1.01)
                                                   + (8_000 * US if r == 0 and s % 3 == 0 and layer == 5 else 0)))
    assert _cause(rn).cause.ranks == ()
    recur = Periodic(period=3, ranks=(0,), steps=(0, 3, 6), low_ms=14.0, high_ms=14.0, factor=2.3,
                     left_out=((0, 0), (0, 3), (0, 6)))
    crit = critical(rn.ranks, cross_rank(rn.ranks), periodic=(recur,))
    assert crit is not None
    c = crit.cause
    assert c.ranks == (0,) and c.regime == (0, 3, 6) and c.predicted_gain_ms is not None, c.text
    assert 7.0 < c.predicted_gain_ms < 9.0
    assert c.text.startswith("In the steps its periodic work delays (0, 3, 6: 3 of 9 analyzed steps), rank 0 may hold")
    # a pattern the analyzed steps do not hold (found among later steps outside the profiler) is no evidence in them
    later = recur._replace(steps=(30, 33, 36), left_out=((0, 30), (0, 33), (0, 36)))
    crit = critical(rn.ranks, cross_rank(rn.ranks), periodic=(later,))
    assert crit is not None and crit.cause.ranks == ()
