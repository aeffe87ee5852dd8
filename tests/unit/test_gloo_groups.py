"""gloo collectives get their process group from the worker threads that ran them (reader/comm/gloo_groups):
event lists shaped as torch 2.13 writes them for a 4-rank job with new_group subgroups (no record_param_comms;
each group's pool of worker threads created with the group, so its thread ids follow the groups' creation)."""

from __future__ import annotations

from builders import parse

from commprof.model import ProcessGroup
from commprof.reader.comm.gloo_groups import GROUPS_UNTOLD, tid_ranges, transfer_groups
from commprof.reader.scan import CpuRec

WORLD = {"pg_name": "0", "pg_desc": "default_pg", "pg_size": 4, "ranks": [0, 1, 2, 3]}
PAIR01 = {"pg_name": "1", "pg_desc": "undefined", "pg_size": 2, "ranks": [0, 1]}
PAIR23 = {"pg_name": "2", "pg_desc": "undefined", "pg_size": 2, "ranks": [2, 3]}


def _ev(name, ts, dur, cat="cpu_op", tid=1):
    return {"ph": "X", "cat": cat, "name": name, "pid": 1, "tid": tid, "ts": ts, "dur": dur,
            "args": {"Input Dims": [[1000]], "Input type": ["float"]}}


def _doc(events, pg_config, rank=0):
    steps = [_ev("ProfilerStep#1", 0, 100_000, cat="user_annotation")]
    return {"traceEvents": steps + events,
            "distributedInfo": {"backend": "gloo", "rank": rank, "world_size": 4, "pg_config": pg_config}}


def _job(world_tids=(30, 31), sub_tids=(44, 45), n=3, extra=()):
    """n layers of (subgroup all-reduce, world all-reduce), each transfer on one of its group's pool threads in
    turn; one more world transfer no call claims (the profiler window cut its call off) at the end."""
    evs, t = [], 100
    for k in range(n):
        for tids in (sub_tids, world_tids):
            evs += [_ev("c10d::allreduce_", t, 20), _ev("gloo:all_reduce", t + 30, 100, "user_annotation",
                                                         tids[k % len(tids)])]
            t += 200
    evs.append(_ev("gloo:barrier", t + 30, 10, "user_annotation", world_tids[0]))
    return evs + list(extra)


def _groups(rt):
    return [(c.process_group, c.group_size) for c in rt.collectives]


def test_subgroup_and_world_collectives_are_told_apart_by_their_threads():
    rt = parse(_doc(_job(), [WORLD, PAIR01]))
    assert _groups(rt) == [("1", 2), ("0", 4)] * 3 + [("0", 4)]
    # rank 2's subgroup is named "2"; a group listed without this rank in it is not one of its groups
    # (ids of the ranks' threads interleave: the pools' gaps may be as wide as the gap between them)
    rt2 = parse(_doc(_job(world_tids=(63, 67), sub_tids=(71, 74)), [WORLD, PAIR01, PAIR23], rank=2))
    assert _groups(rt2) == [("2", 2), ("0", 4)] * 3 + [("0", 4)]


def test_threads_that_do_not_tell_the_groups_apart_leave_everything_in_the_default_group():
    # as many thread ranges as groups is required: a third group with no transfer in the window
    third = {"pg_name": "3", "pg_desc": "undefined", "pg_size": 2, "ranks": [0, 2]}
    assert {g for g, _ in _groups(parse(_doc(_job(), [WORLD, PAIR01, third])))} == {"0"}
    # a pool of one thread beside a pool of two: not equal pools, the cut is not known
    assert {g for g, _ in _groups(parse(_doc(_job(sub_tids=(44,)), [WORLD, PAIR01])))} == {"0"}
    # every thread of two pools of gloo's 2, a narrower gap between the pools than inside the first (the ranks'
    # interleaved ids): the pools in creation order all the same
    apart = _groups(parse(_doc(_job(world_tids=(30, 40), sub_tids=(41, 42)), [WORLD, PAIR01])))
    assert apart == [("1", 2), ("0", 4)] * 3 + [("0", 4)]
    # one group only: nothing to tell apart, as before
    assert {g for g, _ in _groups(parse(_doc(_job(sub_tids=(30, 31)), [WORLD])))} == {"0"}


def test_transfers_on_the_calling_thread_are_not_a_group():
    """gloo's send/recv run on the training thread: its transfers are no worker pool."""
    p2p = [_ev("c10d::send", 5000, 50), _ev("gloo:send", 5010, 30, "user_annotation", 1)]
    rt = parse(_doc(_job(extra=p2p), [WORLD, PAIR01]))
    assert _groups(rt)[:6] == [("1", 2), ("0", 4)] * 3


def test_ranges_are_equal_pools_in_id_order():
    assert tid_ranges([45, 30, 31, 44, 31], 2) == [[30, 31], [44, 45]]
    assert tid_ranges([6963, 6967, 6971, 6974], 2) == [[6963, 6967], [6971, 6974]]  # measured: ties are fine
    assert tid_ranges([30, 32, 40, 41, 60, 61], 3) == [[30, 32], [40, 41], [60, 61]]
    assert tid_ranges([30, 31, 40], 2) is None  # not equal pools
    # pools of gloo's 2 threads, all seen: in creation order whatever the gaps (other ranks' ids interleave)
    assert tid_ranges([100, 109, 111, 112], 2) == [[100, 109], [111, 112]]
    assert tid_ranges([100, 109, 111, 112, 113, 150], 2) is None  # pools of 3: cut narrower than a gap inside
    assert tid_ranges([30], 2) is None
    assert tid_ranges([30, 31], 1) == [[30, 31]]


def test_one_instant_on_threads_of_two_groups_is_not_told_apart():
    groups = (ProcessGroup("0", "default_pg", (0, 1, 2, 3)), ProcessGroup("1", "", (0, 1)))
    same = [CpuRec(10, 20, 30, "gloo:all_reduce", {}), CpuRec(10, 20, 50, "gloo:all_reduce", {})]
    assert transfer_groups(same, groups, 0, {1}) == {}
    apart = [same[0], CpuRec(15, 25, 31, "gloo:all_reduce", {}), CpuRec(40, 50, 50, "gloo:all_reduce", {}),
             CpuRec(45, 55, 51, "gloo:all_reduce", {})]
    assert [g.name for g in transfer_groups(apart, groups, 0, {1}).values()] == ["0", "0", "1", "1"]


def test_a_one_rank_group_that_ran_nothing_takes_no_pool():
    # HSDP on a (2, 1) mesh: the default group (2 ranks) runs every all-reduce on its 2 pool threads; the 1-rank
    # shard group runs nothing.  Cut over both groups, the pools would be 1 thread each (gloo's hold 2): half the
    # 2-rank all-reduces landed in the 1-rank group
    groups = (ProcessGroup("0", "default_pg", (0, 1)), ProcessGroup("1", "mesh_shard", (0,)))
    two_threads = [CpuRec(10 * i, 10 * i + 5, 30 + i % 2, "gloo:all_reduce", {}) for i in range(6)]
    assert transfer_groups(two_threads, groups, 0, {1}) == {}  # one group left: nothing to tell apart
    # the same 1-rank group beside a 2-rank subgroup: the two pools of 2 threads still go to those two groups
    three = (*groups, ProcessGroup("2", "", (0, 1)))
    four = [CpuRec(10 * i, 10 * i + 5, (30, 31, 44, 45)[i % 4], "gloo:all_reduce", {}) for i in range(8)]
    got = transfer_groups(four, three, 0, {1})
    assert {v.name for v in got.values()} == {"0", "2"}
    # where the 1-rank group did run transfers (4 threads: two pools of 2), it keeps its pool
    ran = transfer_groups(four, groups, 0, {1})
    assert sorted({v.name for v in ran.values()}) == ["0", "1"]


def test_groups_the_threads_do_not_tell_apart_are_said_so_and_one_thread_is_no_pool():
    """A 2-stage x 2-replica job: the world group's send/recv run on the calling thread, the replicas' all-reduces on
    their group's pool of 2; cut over both groups, the pools were 1 thread each and half of the replicas'
    all-reduces read as the world's.  HSDP on a 2 x 2 mesh: 2 pools seen among 3 groups (the world group ran
    nothing).  Neither is told apart: every collective stays in the default group, and the rank says so."""
    one_pool = parse(_doc(_job(world_tids=(44,), sub_tids=(45,)), [WORLD, PAIR01]))
    assert {g for g, _ in _groups(one_pool)} == {"0"}
    assert any(GROUPS_UNTOLD in w and "0, 1" in w for w in one_pool.warnings)
    third = {"pg_name": "3", "pg_desc": "mesh_shard", "pg_size": 2, "ranks": [0, 2]}
    hsdp = parse(_doc(_job(), [WORLD, PAIR01, third]))
    assert {g for g, _ in _groups(hsdp)} == {"0"} and any(GROUPS_UNTOLD in w for w in hsdp.warnings)
    # told apart, or one group of several ranks: nothing to say
    assert not any(GROUPS_UNTOLD in w for w in parse(_doc(_job(), [WORLD, PAIR01])).warnings)
    assert not any(GROUPS_UNTOLD in w for w in parse(_doc(_job(sub_tids=(30, 31)), [WORLD])).warnings)


def test_a_pool_whose_transfers_no_call_issued_is_no_group_and_nothing_is_assigned():
    """TORCH_DISTRIBUTED_DEBUG=DETAIL wraps each group with a gloo pool of its own for its checks' all-gathers,
    which no c10d call of the trace issues.  The world group idle, its subgroup's all-reduces on 2 threads and the
    wrapper's all-gathers on 2 more: 4 threads for 2 groups, cut by creation order into the subgroup's pool (read
    as the world's) and the wrapper's (read as the subgroup's).  A group given only transfers no call issued is
    no group: nothing is assigned, and the rank says so."""
    evs, t = [], 100
    for k in range(3):
        evs += [_ev("c10d::allreduce_", t, 20), _ev("gloo:all_reduce", t + 30, 100, "user_annotation", (30, 31)[k % 2]),
                _ev("gloo:all_gather", t + 140, 10, "user_annotation", (44, 45)[k % 2])]
        t += 200
    rt = parse(_doc(evs, [WORLD, PAIR01]))
    assert {g for g, _ in _groups(rt)} == {"0"}
    assert any(GROUPS_UNTOLD in w for w in rt.warnings)
