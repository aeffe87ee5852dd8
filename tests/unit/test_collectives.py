"""Collectives named by the torch call the user made, on every backend, with bytes = max(in, out) x element size;
event lists built as torch.profiler writes them (shapes and names as in the real traces of tests/data/real)."""

from __future__ import annotations

from builders import parse


def _ev(name, ts, dur, cat="cpu_op", tid=1, args=None):
    return {"ph": "X", "cat": cat, "name": name, "pid": 1, "tid": tid, "ts": ts, "dur": dur, "args": args or {}}


def _doc(events, backend="gloo", world=2):
    steps = [_ev("ProfilerStep#1", 0, 10_000, cat="user_annotation")]
    threads = [{"ph": "M", "name": "thread_name", "pid": 1, "tid": 9, "args": {"name": "pt_gloo_runloop"}}]
    return {"traceEvents": steps + threads + events,
            "distributedInfo": {"backend": backend, "rank": 0, "world_size": world}}


def test_gloo_reduce_scatter_run_as_an_all_reduce_is_named_by_the_call():
    """FSDP2 on gloo: c10d::_reduce_scatter_base_(output shard, input) runs as gloo:all_reduce of the input."""
    rt = parse(_doc([
        _ev("c10d::_allgather_base_", 100, 50, args={"Input Dims": [[2570], [1285], [], [], []],
                                                     "Input type": ["float", "float", "", "Scalar", "Scalar"]}),
        _ev("gloo:all_gather", 160, 300, tid=9, args={"Input Dims": [[1285]], "Input type": ["float"]}),
        _ev("c10d::_reduce_scatter_base_", 1000, 50, args={
            "Input Dims": [[32896], [65792], [], [], [], []],
            "Input type": ["float", "float", "", "", "Scalar", "Scalar"]}),
        _ev("gloo:all_reduce", 1060, 400, tid=9, args={"Input Dims": [[65792]], "Input type": ["float"]}),
    ]))
    ag, rs = rt.collectives
    assert (ag.op, ag.bytes, ag.start_ns, ag.end_ns) == ("all_gather_into_tensor", 2570 * 4, 160_000, 460_000)
    assert (rs.op, rs.bytes, rs.start_ns, rs.end_ns) == ("reduce_scatter_tensor", 65792 * 4, 1_060_000, 1_460_000)
    assert len(rt.comm) == 2 and all(c.size_known for c in rt.collectives)


def test_a_call_run_as_several_transfers_gets_them_all():
    """reduce_scatter of a list on gloo: one all-reduce per output, all belonging to the one call."""
    rt = parse(_doc([
        _ev("c10d::reduce_scatter_", 100, 50, args={"Input Dims": [[[1000]], [[[1000], [1000]]], [], [], []],
                                                    "Input type": ["TensorList", "GenericList", "", "", ""]}),
        _ev("gloo:all_reduce", 200, 100, tid=9), _ev("gloo:all_reduce", 320, 100, tid=9),
    ]))
    (c,) = rt.collectives
    assert c.op == "reduce_scatter" and (c.start_ns, c.end_ns) == (200_000, 420_000)


def test_nccl_call_with_record_param_comms_sizes():
    """NCCL: the kernel launched inside the call; the outer c10d op names it, record_param_comms sizes it."""
    rpc = {"Collective name": "_allgather_base", "In msg nelems": 1024, "Out msg nelems": 8192, "Group size": 8,
           "dtype": "BFloat16", "Process Group Name": "3", "Seq": 7}
    rt = parse(_doc([
        _ev("_c10d_functional::all_gather_into_tensor", 100, 80),
        _ev("record_param_comms", 110, 60, args=rpc),
        _ev("cudaLaunchKernel", 120, 10, cat="cuda_runtime", args={"correlation": 5}),
        {"ph": "X", "cat": "kernel", "name": "ncclDevKernel_AllGather_RING_LL(x)", "pid": 0, "tid": 7, "ts": 150,
         "dur": 500, "args": {"correlation": 5, "stream": 7}},
    ], backend="nccl", world=8))
    (c,) = rt.collectives
    assert (c.op, c.bytes, c.dtype, c.group_size, c.process_group, c.seq) == (
        "all_gather_into_tensor", 8192 * 2, "bfloat16", 8, "3", 7)
    assert (c.start_ns, c.end_ns, c.algorithm, c.protocol) == (150_000, 650_000, "RING", "LL")


def test_sizes_beyond_any_message_are_left_out_with_a_warning():
    rpc = {"Collective name": "allreduce", "In msg nelems": 2**65, "Out msg nelems": 2**65, "dtype": "Float"}
    rt = parse(_doc([_ev("record_param_comms", 100, 50, args=rpc)], backend="nccl"))
    (c,) = rt.collectives
    assert c.op == "all_reduce" and c.bytes == 0 and not c.size_known
    assert any("beyond 281,474,976,710,656 bytes" in w for w in rt.warnings)


def test_a_barrier_moves_no_bytes_and_is_not_unknown():
    rt = parse(_doc([_ev("c10d::barrier", 100, 50), _ev("gloo:barrier", 160, 30, tid=9)]))
    (c,) = rt.collectives
    assert (c.op, c.bytes, c.size_known) == ("barrier", 0, True)


def test_without_shapes_bytes_are_unknown_and_said_once():
    from builders import run

    from commprof.analysis.analyze import analyze

    ranks = [parse({**_doc([_ev("c10d::allreduce_", 100 + k, 50), _ev("gloo:all_reduce", 200, 100, tid=9)]),
                    "distributedInfo": {"backend": "gloo", "rank": r, "world_size": 2}}, f"rank{r}.json")
             for r in (0, 1) for k in (0,)]
    rep = analyze(run(*ranks))
    said = [w for w in rep.warnings if "are unknown" in w]
    assert len(said) == 1 and "record_shapes=True" in said[0] and "ranks 0, 1" in said[0]
    assert rep.collectives[0].op == "all_reduce" and rep.collectives[0].algbw_gbps is None


def test_a_zero_dimensional_tensor_all_reduced_is_one_element_not_unknown():
    # a loss all-reduced for logging: Input Dims [[]] with a dtype (the Megatron trace's nccl:all_reduce of one float,
    # a user's metric on gloo); bytes 4, known: no "record_shapes=True" advice for a run that recorded them
    rt = parse(_doc([
        _ev("c10d::allreduce_", 100, 50, args={"Input Dims": [[], [], []], "Input type": ["float", "", "Scalar"]}),
        _ev("gloo:all_reduce", 160, 30, tid=9, args={"Input Dims": [[]], "Input type": ["float"]}),
    ]))
    (c,) = rt.collectives
    assert (c.op, c.bytes, c.size_known) == ("all_reduce", 4, True)
    # an empty entry of no dtype (a tensor list, a scalar argument) stays unknown
    rt2 = parse(_doc([_ev("c10d::allreduce_", 100, 50, args={"Input Dims": [[]], "Input type": ["TensorList"]}),
                      _ev("gloo:all_reduce", 160, 30, tid=9)]))
    assert not rt2.collectives[0].size_known


def test_members_that_record_different_bytes_for_an_all_reduce_disagree():
    """PowerSGD on gloo: one rank's later all-reduces ran inside its first's record, 32.8 kB per step beside its
    peer's 125.7 kB for the same group's all-reduces; all-to-alls may split unevenly and are not judged."""
    from builders import collective, rank_trace

    from commprof.analysis.volume import collective_stats

    def ranks(op: str, b0: int, b1: int):
        return [rank_trace(0, collectives=[collective(0, 10, op=op, nbytes=b0)]),
                rank_trace(1, collectives=[collective(0, 10, op=op, nbytes=b1)])]

    (odd,) = collective_stats(ranks("all_reduce", 32_800, 125_700))
    assert odd.rank_bytes == (32_800, 125_700) and odd.ranks_disagree
    (same,) = collective_stats(ranks("all_reduce", 125_700, 125_700))
    assert not same.ranks_disagree
    (uneven,) = collective_stats(ranks("all_to_all_single", 32_800, 125_700))
    assert not uneven.ranks_disagree
