"""A CPU rank's collective as the rank saw it end.  gloo completes the work's future (waking the waiting training
thread) before its worker thread's record ends; on busy cores the woken thread runs first.  A user's DDP job (rank 0
sleeping 30 ms per step, one 4 MB bucket) had its all-reduce recorded to end 2-3 ms after its ranks resumed, past
their step ends: no collective gated a step end, every step's critical path was one rank's own work, and the root
cause was counted in 2 of 3 steps with a "0.00-32.02 ms" gain range."""

from __future__ import annotations

from builders import collective, lane, rank_trace, run

from commprof.analysis.crossrank.critpath import COMM, OWN
from commprof.analysis.crossrank.matching import cross_rank
from commprof.analysis.crossrank.rootcause import critical

MS = 1_000_000


def _job(overshoot_ms: float, blip: bool):
    """Rank 0 sleeps 30 ms, computes 10 ms, issues the all-reduce at 40 ms (the last arrival), waits; rank 1 computes
    10 ms, issues at 10 ms, waits.  Both wake at 44 ms, compute 1 ms, end the step at 45 ms; the records end
    ``overshoot_ms`` after the wake-up.  ``blip``: rank 0's issuing operator ends 1 ms into the wait (a 20 µs
    piece of work splits it)."""
    end = int((44 + overshoot_ms) * MS)
    comp0 = [(30 * MS, 40 * MS)] + ([(41 * MS, 41 * MS + 20_000)] if blip else []) + [(44 * MS, 45 * MS)]
    r0 = rank_trace(0, steps=((0, 0, 45 * MS),), device_kind="cpu", compute=lane(comp0),
                    collectives=[collective(40 * MS, end, seq=0)])
    r1 = rank_trace(1, steps=((0, 0, 45 * MS),), device_kind="cpu", compute=lane([(0, 10 * MS), (44 * MS, 45 * MS)]),
                    collectives=[collective(10 * MS, end, seq=0)])
    return run(r0, r1)


def test_the_path_crosses_an_all_reduce_recorded_to_end_after_its_ranks_resumed():
    for overshoot, blip in ((0.0, False), (3.4, False), (3.4, True), (0.5, True)):
        rn = _job(overshoot, blip)
        crit = critical(rn.ranks, cross_rank(rn.ranks))
        assert crit is not None
        (path,) = crit.paths
        kinds = [(s.rank, s.kind) for s in path.segments]
        assert kinds == [(0, OWN), (0, COMM), (0, OWN)] or kinds == [(0, OWN), (1, COMM), (1, OWN)], \
            (overshoot, blip, kinds)
        comm = next(s for s in path.segments if s.kind == COMM)
        assert (comm.start_ns, comm.end_ns) == (40 * MS, 44 * MS), (overshoot, blip)  # released at 40, woken at 44
        assert crit.cause.ranks == (0,) and crit.cause.what == "idle before collectives"
        # one step: one replay, no range (it read [x, x] beside the gain, as if certain)
        assert crit.cause.predicted_gain_ms and crit.cause.predicted_range_ms is None


def test_a_gpu_rank_keeps_its_recorded_ends():
    """NCCL kernels end where the device says: a wake-up on a GPU rank's compute lane moves nothing."""
    rn = _job(3.4, False)
    gpu = run(*(rank_trace(rt.rank, steps=((0, 0, 45 * MS),), device_kind="cuda", compute=rt.compute,
                           collectives=rt.collectives) for rt in rn.ranks))
    crit = critical(gpu.ranks, cross_rank(gpu.ranks))
    assert crit is not None
    comm = next(s for s in crit.paths[0].segments if s.kind == COMM)
    assert comm.end_ns == int(47.4 * MS)  # the kernel's own end, not the wake-up at 44 ms


def test_exposed_communication_that_is_mostly_waiting_is_not_high():
    """Rank 1 waits 30 ms of its 34 ms all-reduce for rank 0's sleep: 76% of the step exposed, but the network is not
    what the step waits for (the root cause names rank 0); the finding's severity counts the transfer part."""
    from commprof.analysis import findings
    from commprof.analysis.analyze import analyze

    rn = _job(0.0, False)
    rep = analyze(rn)
    (f,) = findings.overview(rep.overlaps, rep.cross)
    assert f.text.startswith("Exposed communication: 34.00 ms of a 45.00 ms step (76%) on rank 1")
    assert "30.00 ms per step is waiting" in f.text and "not for the network" in f.text
    assert f.severity == "medium"  # by its 4 ms of transfer (9% of the step), not its 76% exposed
