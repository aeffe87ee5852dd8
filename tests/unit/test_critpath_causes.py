"""The root cause's kinds beyond own work, and its strength: a slow link (transfers longer than the peers' on the
same collectives, waits removed) named as such, waiting never called a slow link, and a verdict resting on one
analyzed step, or on a count of steps jitter alone gives, marked as weaker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
from builders import collective, lane, rank_trace, run
from test_critpath import US, lockstep

from commprof.analysis.crossrank.chance import chance_p, one, steps_needed, weak
from commprof.analysis.crossrank.critfindings import root_cause_finding
from commprof.analysis.crossrank.matching import cross_rank
from commprof.analysis.crossrank.rootcause import COMPUTE, IDLE, SLOW_LINK, critical
from commprof.model import Run


def _crit(rn: Run):
    crit = critical(rn.ranks, cross_rank(rn.ranks))
    assert crit is not None
    return crit


def _jit(rng: np.random.Generator) -> int:
    return int(1_000 * US * rng.uniform(0.99, 1.01))


def mesh(steps: int, rng: np.random.Generator, *, slow: Callable[[int], int | None] = lambda s: None,
         xfer_jitter: float = 0.03, sleep: Callable[[int], int] = lambda r: 0, n: int = 8, tp: int = 4,
         layers: int = 6, slow_kinds: tuple[str, ...] = ("tp", "dp")) -> Run:
    """``n`` ranks in a tensor x data parallel mesh: tensor-parallel groups of ``tp`` consecutive ranks, data-parallel
    groups strided by ``tp``.  Per step ``layers`` layers (each rank computes ~1 ms, sleeps ``sleep(rank)``, then
    joins its TP group's all-reduce), then two DP all-reduces.  A collective ends on every member at once, 200 us
    (+- ``xfer_jitter``) after its last arrival; 1.8x that in every group holding the rank ``slow(step)``."""
    tps = [list(range(i, i + tp)) for i in range(0, n, tp)]
    dps = [list(range(j, n, tp)) for j in range(tp)]
    phases = [("tp", tps)] * layers + [("dp", dps)] * 2
    colls: dict[int, list] = {r: [] for r in range(n)}
    work: dict[int, list[tuple[int, int, int]]] = {r: [] for r in range(n)}
    spans = []
    ready = np.zeros(n, dtype=np.int64)
    for s in range(steps):
        t0 = int(ready.max())
        ready[:] = t0
        for kind, groups in phases:
            for gi, members in enumerate(groups):
                arr = {}
                for r in members:
                    d = _jit(rng)
                    work[r].append((int(ready[r]), int(ready[r]) + d, s))
                    arr[r] = int(ready[r]) + d + sleep(r)
                factor = 1.8 if slow(s) in members and kind in slow_kinds else 1.0
                x = 200 * US * rng.uniform(1 - xfer_jitter, 1 + xfer_jitter) * factor
                end = max(arr.values()) + int(x)
                for r in members:
                    colls[r].append(collective(arr[r], end, step=s, group=f"{kind}{gi}", group_size=len(members)))
                    ready[r] = end
        spans.append((s, t0, int(ready.max()) + 10 * US))
    return run(*(rank_trace(r, steps=spans, compute=lane([(a, b) for a, b, _ in work[r]], [st for *_, st in work[r]]),
                            collectives=colls[r], world_size=n) for r in range(n)))


def test_a_rank_with_a_slow_link_is_named_for_it():
    """Rank 3's link slows its TP group's and its DP group's collectives (for every member: they end together);
    the one rank the two slow groups share is named."""
    crit = _crit(mesh(4, np.random.default_rng(20), slow=lambda s: 3))
    c = crit.cause
    assert c.rank == 3 and c.what == SLOW_LINK, c.text
    assert c.ratio == pytest.approx(1.8, rel=0.1)
    assert "a slow link, its all_reduce transfers take 1.8x its peers'" in c.text and "tp0, dp3" in c.text
    assert c.steps_on_path >= 3
    # per step 6 TP and 1 of 2 DP all-reduces 0.8 x 200 us longer on the path
    assert c.predicted_gain_ms == pytest.approx(7 * 0.16, rel=0.3)
    assert "network path" in root_cause_finding(crit).text


def test_waiting_is_not_a_slow_link():
    """A rank that arrives late (a sleep before every collective) makes the others wait; no transfer is longer:
    idle, never a slow link."""
    c = _crit(mesh(4, np.random.default_rng(21), sleep=lambda r: 300 * US if r == 5 else 0)).cause
    assert c.rank == 5 and c.what == IDLE, c.text


def test_transfer_jitter_names_no_slow_link():
    c = _crit(mesh(5, np.random.default_rng(22), xfer_jitter=0.3)).cause
    assert c.rank is None and c.what is None, c.text


def test_a_slow_link_in_one_step_only_is_not_named():
    c = _crit(mesh(5, np.random.default_rng(23), slow=lambda s: 3 if s == 2 else None)).cause
    assert c.what != SLOW_LINK, c.text


def test_a_slow_group_that_no_other_group_narrows_down_names_no_rank():
    """Only rank 3's TP group is slower (its DP group is not): the link is one of four ranks', no single rank."""
    c = _crit(mesh(4, np.random.default_rng(25), slow=lambda s: 3, slow_kinds=("tp",))).cause
    assert c.what != SLOW_LINK and c.rank is None, c.text


def test_a_verdict_on_one_step_says_so_and_is_weaker():
    rng = np.random.default_rng(24)
    rn = lockstep(8, 6, 1, lambda r, s, layer: int(_jit(rng) * (1.3 if r == 6 else 1.0)))
    crit = _crit(rn)
    c = crit.cause
    assert c.rank == 6 and c.what == COMPUTE and c.steps == 1
    assert "in 1 of 1 steps: trace more steps to confirm" in c.text
    assert root_cause_finding(crit).severity == "medium"  # 1.8 ms of a ~7 ms step: "high" with more steps
    more = _crit(lockstep(8, 6, 3, lambda r, s, layer: int(_jit(rng) * (1.3 if r == 6 else 1.0))))
    assert "trace more steps" not in more.cause.text and root_cause_finding(more).severity == "high"


def test_top_ops_are_the_innermost_operators_of_its_own_work_on_the_path():
    """CPU: each instant belongs to the innermost operator on its thread (aten::addmm inside aten::linear); only the
    rank's own-work windows on the path count."""
    from commprof.analysis.crossrank.critpath import OWN, Segment, StepPath
    from commprof.analysis.crossrank.topops import short_name, top_ops
    from commprof.model import OpNames

    on = OpNames(("aten::linear", "aten::addmm", "aten::relu", "aten::copy_"),
                 np.array([[0, 1, 2, 3], [0, 10, 100, 500], [100, 90, 140, 600], [0, 0, 0, 0]], dtype=np.int64))
    rt = rank_trace(2, op_names=on)
    path = StepPath(step=0, length_ns=200, segments=(Segment(rank=2, kind=OWN, start_ns=1_000, end_ns=1_150),))
    top = top_ops(rt, [path], shift_ns=1_000)  # the window is [0, 150) on the rank's clock: copy_ is off the path
    assert [(t.name, round(t.share_pct)) for t in top] == [("aten::addmm", 57), ("aten::relu", 29),
                                                            ("aten::linear", 14)]
    assert top[0].ms == pytest.approx(80e-6)
    assert short_name("void at::native::foo<float, 4>(int, float*)") == "at::native::foo"
    assert short_name("void cutlass::Kernel2<cutlass_80_gemm_128x128>(Params)") == "cutlass_80_gemm_128x128"


def test_a_count_of_steps_jitter_alone_gives_is_weaker():
    """Two ranks take turns under jitter: one of them holds 3 of 3 steps a quarter of the time, so a verdict on 3
    steps of 2 ranks says so and is weaker; on 8 steps it is not.  Of eight ranks, 3 of 3 is beyond chance."""
    rng = np.random.default_rng(31)
    slow = lambda r, s, layer: int(_jit(rng) * (1.3 if r == 1 else 1.0))  # noqa: E731
    few = _crit(lockstep(2, 6, 3, slow))
    assert few.cause.rank == 1 and few.cause.steps_on_path == 3 and few.cause.contenders == 2
    assert chance_p(few.cause) == pytest.approx(0.25)
    assert ("3 of 3 steps (a count chance alone gives among 2 ranks, p = 0.25: trace at least 6 steps, the profiler "
            "schedule's active=, to confirm)") in few.cause.text
    assert root_cause_finding(few).severity == "medium"
    many = _crit(lockstep(2, 6, 8, slow))
    assert many.cause.rank == 1 and chance_p(many.cause) < 0.01 and "trace more steps" not in many.cause.text
    assert root_cause_finding(many).severity == "high"
    assert chance_p(replace(few.cause, contenders=8)) == pytest.approx(8 / 8 ** 3)
    assert chance_p(replace(few.cause, steps_on_path=2)) == 1.0  # of two ranks one always holds 2 of 3
    # two ranks named together of eight: one of the 28 pairs holds a step with chance 1/4, 3 of 3 steps is chance
    pair = replace(few.cause, rank=None, ranks=(1, 5), contenders=8)
    assert chance_p(pair) == pytest.approx(28 / 4 ** 3) and weak(pair) and steps_needed(pair) == 5
    assert not weak(replace(pair, steps=5, steps_on_path=5)) and weak(replace(pair, steps=4, steps_on_path=4))
    # exact at the threshold: one of twenty ranks holding 2 of 2 steps is p = 0.05, not over it
    assert not weak(replace(few.cause, contenders=20, steps=2, steps_on_path=2))
    # held in 5 of 6 steps, as many as confirm 6 of 6: the count at that share, not "at least 6" again
    five = replace(few.cause, steps=6, steps_on_path=5)
    assert weak(five) and steps_needed(five) == 6
    hint = one(five)
    assert "trace at least" not in hint and "at that share of steps, about 9 steps would confirm it" in hint, hint
    assert chance_p(replace(five, steps=9, steps_on_path=8)) <= 0.05 < chance_p(replace(five, steps=8, steps_on_path=7))
    # 2 of 3 among 2 ranks is what chance always gives; 3 of 6 never beats it
    two_of_three = one(replace(few.cause, steps_on_path=2))  # not "trace at least 6": 4 of 6 would not do
    assert "what chance alone gives among 2 ranks" in two_of_three and "about 35 steps" in two_of_three
    assert "more steps would not confirm it" in one(replace(five, steps_on_path=3))


def test_a_slow_rank_whose_thread_waited_for_a_cpu_is_said_to_share_its_cpus():
    """The root cause's evidence for contention on its host: the named rank's loop thread waited for a CPU 10 points
    more than its peers' (median); ranks that waited alike, or on GPUs a kernel or link cause, say nothing."""
    rng = np.random.default_rng(31)
    slow = lambda r, s, layer: int(_jit(rng) * (1.3 if r == 1 else 1.0))  # noqa: E731
    crit = _crit(lockstep(2, 6, 8, slow))
    assert crit.cause.rank == 1 and crit.cause.what == COMPUTE
    text = root_cause_finding(crit, {0: 9.0, 1: 56.0}).text
    assert "Its training thread waited for a CPU 56% of the time it was ready to run, its peers' 9% (median)" in text
    for waits in ({0: 45.0, 1: 47.0}, {1: 56.0}, {}, {0: 50.0, 1: 20.0}):  # alike, no peer, unknown, the peer waited
        assert "waited for a CPU" not in root_cause_finding(crit, waits).text
    # on CPU runs any cause can be the CPUs': idle gaps (a thread waiting for a CPU is idle there), gloo's transfers
    for what in (IDLE, SLOW_LINK):
        assert "waited for a CPU 56%" in root_cause_finding(replace(crit, cause=replace(crit.cause, what=what)),
                                                           {0: 9.0, 1: 56.0}).text
    # no rank named: the rank with the largest share of the path gets the lead, the verdict unchanged
    none = replace(crit, cause=replace(crit.cause, rank=None, ranks=(), what=None, spread=((1, 69.0), (0, 4.0)),
                                       text="No single rank holds the job back: ..."))
    lead = root_cause_finding(none, {0: 4.0, 1: 56.0})
    assert lead.severity == "info" and lead.text.startswith("No single rank holds the job back")
    assert "A lead: rank 1, with the largest share of the path (69%), waited for a CPU 56%" in lead.text
    assert "A lead" not in root_cause_finding(none, {0: 50.0, 1: 56.0}).text
    assert "A lead" not in root_cause_finding(none, {0: 4.0, 1: 56.0}, gpu=True).text  # host-bound? nothing says
    # two ranks named together, a third their peer: the sentence in the plural, with the larger wait
    pair = replace(crit, cause=replace(crit.cause, rank=None, ranks=(0, 1)))
    assert ("Their training threads waited for a CPU up to 56% of the time they were ready to run, their peers' 9% "
            "(median): their CPUs") in root_cause_finding(pair, {0: 50.0, 1: 56.0, 2: 9.0}).text
    # on GPUs a rank's slow kernels or links are not its thread's: only a host-bound cause or idle gaps take it
    assert "waited for a CPU" not in root_cause_finding(crit, {0: 9.0, 1: 56.0}, gpu=True).text
    assert "waited for a CPU" not in root_cause_finding(replace(crit, cause=replace(crit.cause, what=SLOW_LINK)),
                                                        {0: 9.0, 1: 56.0}, gpu=True).text
    host = replace(crit, cause=replace(crit.cause, what="launch/host"))
    assert "Its training thread waited for a CPU 56%" in root_cause_finding(host, {0: 9.0, 1: 56.0}, gpu=True).text


def test_a_named_rank_whose_environment_differs_from_all_its_peers_says_so():
    """The rank named for a slow link (rank 3 of 8) recorded NCCL_SOCKET_IFNAME=eth0 where its seven peers all
    recorded ib0: the finding says so, as evidence to check.  Peers that disagree among themselves, fewer than two
    peers with a record, or no record of the named rank's own: nothing."""
    crit = _crit(mesh(4, np.random.default_rng(20), slow=lambda s: 3))
    assert crit.cause.rank == 3
    envs = {r: {"NCCL_SOCKET_IFNAME": "ib0", "OMP_NUM_THREADS": "8"} for r in range(8)}
    envs[3] = {"NCCL_SOCKET_IFNAME": "eth0", "OMP_NUM_THREADS": "8", "MALLOC_ARENA_MAX": "2"}
    text = root_cause_finding(crit, envs=envs).text
    assert ("Its environment differs from all 7 peers': MALLOC_ARENA_MAX=2 (theirs unset), NCCL_SOCKET_IFNAME=eth0 "
            "(theirs ib0); check whether that was meant") in text
    assert "OMP_NUM_THREADS" not in text
    split = {**envs, 5: {"NCCL_SOCKET_IFNAME": "eth0", "OMP_NUM_THREADS": "8"}}  # the peers disagree on the NIC
    assert "NCCL_SOCKET_IFNAME" not in root_cause_finding(crit, envs=split).text
    for few in ({3: envs[3], 0: envs[0]}, {r: e for r, e in envs.items() if r != 3}, {}):
        assert "environment differs" not in root_cause_finding(crit, envs=few).text
