"""Whether ranks can have run together (engine/coherence), and which profiler cycle a folder's traces hold
(engine/cycles): hand-built ranks, every rule and its tolerance."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from builders import collective, rank_trace

from commprof.engine.coherence import SAME_HOST_SKEW_NS, SKEW_NS, coherence
from commprof.engine.cycles import choose, cycles, span
from commprof.errors import InputError
from commprof.model import ProcessGroup

UNIX = 1_700_000_000_000_000_000
MS = 1_000_000


def _rank(r: int, steps=(2, 3, 4), base: int = UNIX, sizes=(1 << 20, 1 << 20, 1 << 20), host: str | None = None,
          seq: bool = False, **more):
    """Steps of 10 ms; one all_reduce per step ending at the same moment on every rank (its own clock)."""
    st = [(n, k * 10 * MS, (k + 1) * 10 * MS) for k, n in enumerate(steps)]
    colls = [collective(k * 10 * MS + 5 * MS, k * 10 * MS + 8 * MS, step=n, nbytes=sizes[k % len(sizes)],
                        seq=k if seq else None) for k, n in enumerate(steps)]
    return rank_trace(r, steps=st, collectives=colls, base_time_ns=base, host=host, **more)


def test_one_run_is_coherent():
    assert coherence([_rank(0), _rank(1)]).problem is None
    assert coherence([_rank(0)]).problem is None


def test_clocks_of_different_hosts_seconds_apart_are_absorbed():
    assert coherence([_rank(0, host="a"), _rank(1, base=UNIX + 30 * 10**9, host="b")]).problem is None
    assert coherence([_rank(0), _rank(1, base=UNIX - 30 * 10**9)]).problem is None


@pytest.mark.parametrize("gap_s", [61, 100, 3600])
def test_ranks_a_minute_or_more_apart_did_not_run_together(gap_s):
    p = coherence([_rank(0), _rank(1, base=UNIX + gap_s * 10**9)]).problem
    assert p is not None and "did not run together" in p and "rank1.json" in p and "rank0.json" in p


def test_one_host_one_clock():
    gap = SAME_HOST_SKEW_NS + 10**9
    p = coherence([_rank(0, host="n1"), _rank(1, base=UNIX + gap, host="n1")]).problem
    assert p is not None and "one host (n1)" in p
    assert SAME_HOST_SKEW_NS < SKEW_NS


def test_relative_clocks_are_not_judged_by_time():
    """Traces whose times are not Unix times (no baseTimeNanoseconds, relative ts): no wall-clock verdict."""
    assert coherence([_rank(0, base=0), _rank(1, base=10**15)]).problem is None


def test_disjoint_steps_are_different_cycles():
    p = coherence([_rank(0, steps=(2, 3, 4)), _rank(1, steps=(7, 8, 9))]).problem
    assert p == ("rank 0 (rank0.json) has steps 2-4, rank 1 (rank1.json) steps 7-9: different profiler cycles or "
                 "runs, never one window")


def test_partly_shared_steps_warn():
    c = coherence([_rank(0, steps=(2, 3, 4)), _rank(1, steps=(3, 4, 5))])
    assert c.problem is None and any("steps 2-4, rank 1 steps 3-5" in w for w in c.warnings)


def test_collectives_that_disagree_are_different_jobs():
    p = coherence([_rank(0), _rank(1, sizes=(4 << 20,))]).problem
    assert p is not None and "disagree on 3 of 3 collectives of process group 0" in p
    # by sequence number, instance by instance
    p = coherence([_rank(0, seq=True), _rank(1, seq=True, sizes=(4 << 20,))]).problem
    assert p is not None and "#0: all_reduce float32 1,048,576 bytes" in p


def test_a_minority_of_disagreeing_collectives_is_tolerated():
    """Real runs have a few (a trace starting inside a collective): 1 of 3 is not a different job."""
    assert coherence([_rank(0), _rank(1, sizes=(1 << 20, 1 << 20, 2 << 20))]).problem is None


def test_issue_order_does_not_matter_without_sequence_numbers():
    a = _rank(0, sizes=(1 << 20, 2 << 20, 3 << 20))
    b = _rank(1, sizes=(3 << 20, 2 << 20, 1 << 20))
    assert coherence([a, b]).problem is None


def test_collectives_one_rank_lacks_are_missing_data_not_another_job():
    """A real PowerSGD run over gloo: one rank's trace lacked the P and Q all-reduces its completion callbacks
    issued (rank 0: 3 all-reduces, rank 1: those 3 and 4 more).  Collectives of one rank that are all among the
    other's are no conflict; two jobs each issue collectives the other lacks (the test above)."""
    psgd = [collective(k * MS, k * MS + MS // 2, step=2 + k // 3, nbytes=b)
            for k, b in enumerate((8232, 16464, 20480, 8232, 8232, 16464, 20480))]
    few = [c for c in psgd if c.bytes == 8232]
    a = rank_trace(0, steps=[(2, 0, 3 * MS), (3, 3 * MS, 6 * MS), (4, 6 * MS, 9 * MS)], collectives=few,
                   base_time_ns=UNIX)
    b = replace(a, rank=1, collectives=tuple(psgd))
    assert coherence([a, b]).problem is None


def test_distributed_info_disagreement():
    p = coherence([_rank(0, nccl_version="2.18.1"), _rank(1, nccl_version="2.21.5")]).problem
    assert p is not None and "NCCL 2.18.1" in p and "NCCL 2.21.5" in p
    a = replace(_rank(0), process_groups=(ProcessGroup("1", "", (0, 1)),))
    b = replace(_rank(1), process_groups=(ProcessGroup("1", "", (1, 2)),))
    p = coherence([a, b]).problem
    assert p is not None and "process group 1 has ranks [0, 1]" in p


def test_stepless_ranks_are_not_judged_by_steps():
    """A trace without ProfilerStep has no step numbers to compare: its collectives and clock still are."""
    assert coherence([_rank(0, steps=(0, 1, 2), stepless=True), _rank(1, steps=(7, 8, 9))]).problem is None
    p = coherence([_rank(0, steps=(0, 1, 2), stepless=True), _rank(1, steps=(7, 8, 9), base=UNIX + SKEW_NS * 2)])
    assert p.problem is not None and "did not run together" in p.problem


def test_span():
    assert span([2, 3, 4]) == "2-4" and span([5]) == "5" and span([2, 4]) == "2, 4" and span([]) == "none"
    assert span(range(10, 20)) == "10-19"


def _cyc(r: int, steps, i: int = 0):
    return replace(_rank(r, steps=steps), path=f"r{r}c{i}.json")


def test_cycles_group_by_overlapping_steps():
    ts = [_cyc(0, (2, 3, 4)), _cyc(1, (2, 3, 4)), _cyc(0, (7, 8, 9), 1), _cyc(1, (7, 8, 9), 1)]
    cs = cycles(ts)
    assert [c.steps for c in cs] == [(2, 3, 4), (7, 8, 9)]
    assert [sorted(c.members) for c in cs] == [[0, 1], [2, 3]]


def test_the_last_complete_cycle_by_default():
    ts = [_cyc(0, (2, 3, 4)), _cyc(1, (2, 3, 4)), _cyc(0, (7, 8, 9), 1), _cyc(1, (7, 8), 1)]  # cut last cycle
    ch = choose(Path("d"), ts)
    assert sorted(ch.members) == [0, 1] and ch.note is not None and "cycle 1 of 2 (steps 2-4" in ch.note
    ch = choose(Path("d"), ts, cycle=2)
    assert sorted(ch.members) == [2, 3] and "picked" in str(ch.note)
    ch = choose(Path("d"), ts, steps=range(7, 9))
    assert sorted(ch.members) == [2, 3]
    with pytest.raises(InputError, match="cycle=3: the traces hold 2 profiler cycle"):
        choose(Path("d"), ts, cycle=3)
    with pytest.raises(InputError, match="span profiler cycles 1, 2"):
        choose(Path("d"), ts, steps=range(2, 10))
    with pytest.raises(InputError, match="requested steps 20-29 select nothing"):
        choose(Path("d"), ts, steps=range(20, 30))


def test_one_rank_twice_in_one_cycle_is_two_runs():
    with pytest.raises(InputError, match="claims rank 0, as does r0c0.json, for the same steps"):
        choose(Path("d"), [_cyc(0, (2, 3)), _cyc(0, (2, 3), 1)])


def test_a_single_cycle_is_left_alone():
    ts = [_cyc(0, (2, 3)), _cyc(1, (2, 3))]
    ch = choose(Path("d"), ts)
    assert ch.members == (0, 1) and ch.note is None


def test_ranks_whose_groups_are_not_told_apart_are_read_per_rank_not_refused():
    """Their collectives all read as the default group's, so ranks of one job disagree there (HSDP's shard and
    replicate collectives as one 4-rank group): not another job, but no cross-rank figure either."""
    from commprof.engine.together import Together, judge
    from commprof.model import Run
    from commprof.reader.comm.gloo_groups import GROUPS_UNTOLD

    untold = f"rank0.json: {GROUPS_UNTOLD} 0, 1 (...)"
    a, b = _rank(0), _rank(1, sizes=(4 << 20,))
    a = replace(a, warnings=(untold,))
    run = Run(path="job", ranks=(a, b), world_size=2, run_id=None, missing_ranks=(), warnings=(), notes=(),
              per_rank_only=False)
    with pytest.raises(InputError):  # told apart, the same disagreement is another job
        judge(replace(run, ranks=(replace(a, warnings=()), b)), Together(), None)
    out = judge(run, Together(), None)
    assert out.per_rank_only and len(out.notes) == 1
    assert out.notes[0].startswith("per-rank figures only, no cross-rank figure: on rank 0 the gloo trace")
