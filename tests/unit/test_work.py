"""The work each rank was given (``reader.matmuls``, ``crossrank.work``): the matrix products' floating-point
operations from their recorded shapes, counted once per product, per profiled step; a rank given more work than its
peers told from one slower on the same work, in the root cause's sentence and its lead."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from builders import rank_trace
from test_critpath import lockstep

import commprof
from commprof.analysis.crossrank.critfindings import root_cause_finding
from commprof.analysis.crossrank.matching import cross_rank
from commprof.analysis.crossrank.pgkind import DATA, PIPELINE, TENSOR, GroupKind
from commprof.analysis.crossrank.rootcause import COMPUTE, IDLE, SLOW_LINK, critical
from commprof.analysis.crossrank.work import WorkGap, most_work, peers_of, work_by_rank, work_gap
from commprof.formats import keys as K
from commprof.reader.matmuls import counted, flops, per_step
from conftest import ROOT

NETNS = ROOT / "tests" / "data" / "real" / "netns_500mbit_amd_epyc"


def _dims(*d) -> dict:
    return {K.A_INPUT_DIMS: list(d)}


def test_the_flops_of_each_product_from_its_shapes():
    assert flops("aten::mm", _dims([128, 1024], [1024, 10])) == 2 * 128 * 1024 * 10
    # the bias / accumulator first, then the two matrices (and the scalars)
    assert flops("aten::addmm", _dims([10], [128, 1024], [1024, 10], [], [])) == 2 * 128 * 1024 * 10
    assert flops("aten::addmm", _dims([128, 128], [128, 64], [64, 128], [], [])) == 2 * 128 * 64 * 128
    assert flops("aten::bmm", _dims([4, 32, 64], [4, 64, 16])) == 2 * 4 * 32 * 64 * 16
    assert flops("aten::baddbmm", _dims([4, 32, 16], [4, 32, 64], [4, 64, 16], [], [])) == 2 * 4 * 32 * 64 * 16
    # addbmm(self [m, n], batch1 [b, m, k], batch2 [b, k, n]): the batch's products summed into one matrix
    assert flops("aten::addbmm", _dims([32, 16], [4, 32, 64], [4, 64, 16], [], [])) == 2 * 4 * 32 * 64 * 16
    assert flops("aten::_addmm_activation", _dims([10], [128, 1024], [1024, 10], [], [], [])) == 2 * 128 * 1024 * 10
    # _scaled_mm(self, mat2, scale_a, scale_b, ...): fp8 products, the matrices first
    assert flops("aten::_scaled_mm", _dims([128, 256], [256, 64], [], [], [], [], [], [])) == 2 * 128 * 256 * 64
    # shapes that make no product, none recorded, or an operator not counted
    for name, args in (("aten::mm", _dims([128, 1024], [512, 10])), ("aten::mm", {}), ("aten::mm", _dims([3])),
                       ("aten::bmm", _dims([4, 32, 64], [2, 64, 16])), ("aten::addmm", _dims([128, 64], [64, 8])),
                       ("aten::matmul", _dims([128, 64], [64, 8])), ("aten::mm", _dims([128, True], [True, 8]))):
        assert flops(name, args) is None, (name, args)


def test_a_product_inside_another_on_its_thread_is_counted_once_and_steps_are_summed():
    mm = _dims([10, 10], [10, 10])  # 2000 FLOPs
    recs = [(0, 100, 1, "aten::addmm"), (10, 50, 1, "aten::mm"),  # nested: once
            (20, 60, 2, "aten::mm"),  # another thread (the backward's): counted
            (200, 300, 1, "aten::mm"), (250, 260, 1, "aten::bmm"),  # its shapes make no product: not counted
            (900, 950, 1, "aten::mm")]  # outside every step
    shapes = [_dims([10], [10, 10], [10, 10]), mm, mm, mm, _dims([1, 2, 3]), mm]
    prods = counted(recs, shapes)
    assert len(prods) == 5
    step_of = lambda t: 1 if t < 150 else 2 if t < 400 else -1  # noqa: E731
    assert per_step(prods, step_of) == ((1, 4000.0), (2, 2000.0))
    assert per_step([], step_of) == ()


def test_a_real_traces_matrix_work_is_its_models_count():
    """8 x Linear(1024, 1024) + Linear(1024, 10), batch 128 (the folder's README): the forward's products, the
    weights' gradients, and the inputs' gradients of every layer but the first = 6.18 GFLOP per step, on each rank
    and each profiled step; PowerSGD's hook adds its own products.  The H200 check's DDP trace: 197.6 GFLOP."""
    b, w, layers, head = 128, 1024, 8, 10
    model = 2 * b * w * w * (layers + layers + layers - 1) + 3 * 2 * b * w * head
    run = commprof.load(NETNS / "traced_default_bucket25")
    for rt in run.ranks:
        assert len(rt.matrix_flops) == 3
        for _step, f in rt.matrix_flops:
            assert f == pytest.approx(model, rel=1e-9)
    psgd = commprof.load(NETNS / "traced_powersgd4_bucket200")
    assert all(model < f < 1.05 * model for rt in psgd.ranks for _s, f in rt.matrix_flops)
    # a GPU trace (H200, CUDA kernels; the CPU operators that launched them carry the shapes): the demo model at
    # width 4096, 8 layers, batch 256 (tests/data/real/h200-gpu-check/README.md)
    b, w = 256, 4096
    model = 2 * b * w * w * (layers + layers + layers - 1) + 3 * 2 * b * w * head
    gpu = commprof.load(ROOT / "tests" / "data" / "real" / "h200-gpu-check" / "ddp-world1")
    assert gpu.ranks[0].device_kind == "cuda" and len(gpu.ranks[0].matrix_flops) == 3
    assert all(f == pytest.approx(model, rel=1e-9) for _s, f in gpu.ranks[0].matrix_flops)


def _works(**per_rank: float) -> dict[int, dict[int, float]]:
    return {int(r[1:]): {s: v * 1e9 for s in (1, 2, 3)} for r, v in per_rank.items()}


def test_work_gap_against_the_peers_median_over_the_steps_each_shares():
    ranks = [rank_trace(0, matrix_flops=((1, 3e9), (2, 3e9), (3, 5e5))), rank_trace(1, matrix_flops=((1, 2e9),)),
             rank_trace(2)]
    works = work_by_rank(ranks)
    assert works == {0: {1: 3e9, 2: 3e9}, 1: {1: 2e9}}  # a step under MIN_FLOPS says nothing; rank 2 recorded none
    gap = work_gap((0,), works)  # rank 2 (no shapes) is no peer; rank 1 shares step 1 with rank 0
    assert gap is not None and gap.steps == 2 and gap.peers == 1 and gap.ratio == pytest.approx(1.5) and gap.more
    assert work_by_rank(ranks, steps={2}) == {0: {2: 3e9}}
    assert work_gap((2,), works) is None and work_gap((0,), {0: works[0]}) is None and work_gap((), works) is None
    assert work_gap((0,), {0: {2: 3e9}, 1: {1: 2e9}}) is None  # no step in common
    # a peer missing a step is compared on the steps it has: the ratio is each peer's on its own steps
    uneven = {0: {1: 4e9, 2: 2e9}, 1: {1: 4e9, 2: 2e9}, 2: {2: 1e9}}
    g = work_gap((0,), uneven)
    assert g is not None and g.peers == 2 and g.ratio == pytest.approx(1.5)  # median of 1.0 and 2.0
    four = _works(r0=10.0, r1=8.0, r2=8.1, r3=7.9)
    lead = most_work(four, {})
    assert lead is not None and lead.rank == 0 and lead.ratio == pytest.approx(10 / 8)
    assert most_work(_works(r0=8.0, r1=8.1, r2=7.9), {}) is None
    same = work_gap((1,), four)
    assert same is not None and same.no_more and not same.more
    less = work_gap((3,), four)
    assert less is not None and less.no_more  # less work than its peers: no more, either


def test_the_peers_are_the_named_ranks_replicas_where_groups_say():
    """A pipeline of 2 stages x 2 data-parallel replicas: stage 1 (ranks 2, 3) runs twice stage 0's products by
    design.  Rank 2 against its data-parallel replica (rank 3) runs the same work; against every rank it would read
    more work.  Tensor-parallel peers stand in where no data-parallel group holds the rank; none: every other rank."""
    def gk(name: str, kind: str, ranks: tuple[int, ...]) -> GroupKind:
        return GroupKind(group=name, kind=kind, source="membership", ranks=ranks)

    kinds = {"dp0": gk("dp0", DATA, (0, 1)), "dp1": gk("dp1", DATA, (2, 3)), "pp0": gk("pp0", PIPELINE, (0, 2)),
             "pp1": gk("pp1", PIPELINE, (1, 3))}
    works = _works(r0=1.0, r1=1.0, r2=2.0, r3=2.0)
    peers, kind = peers_of((2,), kinds)
    assert list(peers or []) == [3] and kind == DATA
    gap = work_gap((2,), works, peers, kind)
    assert gap is not None and gap.no_more and gap.kind == DATA
    assert work_gap((2,), works).ratio == pytest.approx(2.0)  # type: ignore[union-attr]  # every rank: the stage's
    tp = {"tp": gk("tp", TENSOR, (0, 1, 2, 3))}
    assert peers_of((1,), tp) == ([0, 2, 3], TENSOR)
    assert peers_of((1,), {k: v for k, v in kinds.items() if v.kind == PIPELINE}) == (None, None)
    assert most_work(works, kinds) is None  # each stage's replicas run the same work
    assert most_work(works, {}).rank in (2, 3)  # type: ignore[union-attr]  # against every rank: the heavier stage


def _named():
    rng = np.random.default_rng(31)
    crit = critical(*(lambda rn: (rn.ranks, cross_rank(rn.ranks)))(lockstep(
        2, 6, 8, lambda r, s, layer: int(rng.integers(900, 1100) * 1000 * (1.3 if r == 1 else 1.0)))))
    assert crit is not None and crit.cause.rank == 1 and crit.cause.what == COMPUTE
    return crit


def test_the_root_cause_says_more_work_or_slower_on_no_more_work():
    crit = _named()
    more = WorkGap(ranks_gflop=12.6, peers_gflop=8.4, ratio=1.5, steps=3, peers=1, kind=DATA)
    text = root_cause_finding(replace(crit, cause=replace(crit.cause, work=more))).text
    assert ("It was given more work than its DP peers: its matrix products come to 12.60 GFLOP per step "
            "against its DP peers' 8.40 GFLOP (median; 1.50x, from the operators' recorded shapes over 3 steps); an "
            "uneven batch, sequence length or image size sets it apart: check that DistributedSampler gives every "
            "rank equal shards") in text
    assert "a slower or throttled" not in text and "more work assigned to it, or" not in text
    # its compute took far more than its extra work: slower too
    slower = root_cause_finding(replace(crit, cause=replace(crit.cause, work=more, ratio=2.4))).text
    assert ("(median; 1.50x, from the operators' recorded shapes over 3 steps), yet its compute took 2.4x theirs, "
            "more than the extra products explain: work the count leaves out (products fused into custom or "
            "generated kernels, convolutions without recorded strides) grew more, or it is also slower (a slower or "
            "throttled GPU/CPU") in slower
    assert "also slower" in slower and "It was given more work than its DP peers: its matrix" in slower
    # peers with no compute at all (an infinite ratio): no figure to set beside the work's
    endless = root_cause_finding(replace(crit, cause=replace(crit.cause, work=more, ratio=float("inf")))).text
    assert "inf" not in endless and "It was given more work than its DP peers: its matrix" in endless
    # idle or host gaps: the extra work is told beside them, not as their cause
    for what in (IDLE, "launch/host"):
        told = root_cause_finding(replace(crit, cause=replace(crit.cause, work=more, what=what))).text
        assert "It was also given more work than its DP peers: its matrix products" in told
    # a slow link is its transfers', not its work
    assert "given more work" not in root_cause_finding(replace(crit, cause=replace(crit.cause, work=more,
                                                                                   what=SLOW_LINK))).text
    # peers of no data- or tensor-parallel group: every other rank, and the partition or routing named too
    anyone = root_cause_finding(replace(crit, cause=replace(crit.cause, work=replace(more, kind=None)))).text
    assert "given more work than its peers: its matrix" in anyone and "the stages' partition" in anyone
    same = WorkGap(ranks_gflop=0.05, peers_gflop=0.05, ratio=1.0, steps=3, peers=1, kind=DATA)
    text = root_cause_finding(replace(crit, cause=replace(crit.cause, work=same))).text
    assert ("It is slower than its DP peers on no more work (its matrix products come to 50.0 MFLOP per step against "
            "its DP peers' 50.0 MFLOP (median; 1.00x, from the operators' recorded shapes over 3 steps)): a slower or "
            "throttled GPU/CPU, or a noisy neighbour on its host, unless work the count leaves out (products fused "
            "into custom or generated kernels, convolutions without recorded strides) differs") in text
    assert "more work assigned" not in text
    less = root_cause_finding(replace(crit, cause=replace(crit.cause, work=replace(same, ratio=0.7)))).text
    assert "slower than its DP peers on no more work" in less  # less work, yet slower: no "more work" among causes
    # between the two (5% more), or idle on no more work: the sentence as without shapes
    plain = root_cause_finding(crit).text
    assert root_cause_finding(replace(crit, cause=replace(crit.cause, work=replace(same, ratio=1.05)))).text == plain
    idle = replace(crit, cause=replace(crit.cause, what=IDLE))
    assert root_cause_finding(replace(idle, cause=replace(idle.cause, work=same))).text == root_cause_finding(idle).text
    pair = replace(crit, cause=replace(crit.cause, rank=None, ranks=(0, 1), work=more))
    assert ("They were given more work than their DP peers: their matrix products come to up to 12.60 "
            "GFLOP") in root_cause_finding(pair).text


def test_no_single_rank_gets_the_lead_of_the_rank_given_more_work():
    crit = _named()
    none = replace(crit, cause=replace(crit.cause, rank=None, ranks=(), what=None, spread=((1, 69.0), (0, 4.0)),
                                       text="No single rank holds the job back: ...",
                                       work=WorkGap(ranks_gflop=2.0, peers_gflop=1.0, ratio=2.0, steps=3, peers=1,
                                                    rank=1)))
    text = root_cause_finding(none).text
    assert text.startswith("No single rank holds the job back: ...")
    assert ("A lead: rank 1, with 69% of the path, was given more work than its peers: its matrix products come to "
            "2.00 GFLOP per step against its peers' 1.00 GFLOP (median; 2.00x, from the operators' recorded shapes "
            "over 3 steps); an uneven batch") in text
    assert text.endswith("What it costs hides in this run's jitter (trace more steps to tell).")
    assert "A lead" not in root_cause_finding(replace(none, cause=replace(none.cause, work=None))).text
    off_path = replace(none, cause=replace(none.cause, work=replace(none.cause.work, rank=7)))  # a rank not on the path
    assert " A lead: rank 7 was given more work than its peers" in root_cause_finding(off_path).text


def _group(name: str, ranks: tuple[int, ...]):
    from commprof.analysis.crossrank.matching import GroupMatch

    z = np.zeros((2, len(ranks)), dtype=np.int64)
    return GroupMatch(process_group=name, ranks=ranks, ops=("all_reduce",) * 2, steps=np.array([1, 1]), arrival_ns=z,
                      end_ns=z, nbytes=np.array([1 << 20] * 2), group_sizes=np.array([len(ranks)] * 2), issue_ns=z,
                      start_ns=z)


def test_ddps_own_groups_are_data_parallel_whatever_their_rank_numbers():
    """An outside tester's 4 ranks: DDP over {0, 1} and over {2, 3} (different models), a world all-reduce of the
    loss. By membership alone the DDP groups (contiguous ranks) read tensor-parallel, and rank 0's work was compared
    with every rank's (6.37x where its replica's gave 2.00x); the sidecars say DDP ran over groups of 2."""
    from commprof.analysis.crossrank.pgkind import DDP_GROUP, group_kinds
    from commprof.model import Sidecar
    from commprof.model.sidecar import DDPSettings

    def ranked(r: int, size: int | None):
        ddp = DDPSettings(bucket_cap_mb=25.0, bucket_bytes_cap=None, first_bucket_bytes=None,
                          gradient_as_bucket_view=False, static_graph=False, find_unused_parameters=False,
                          broadcast_buffers=True, hook="allreduce", hook_matrix_rank=None, hook_registered=False,
                          recording="", process_group_size=size, params=())
        side = Sidecar(path="s", schema="commprof.sidecar/1", run_id="r", rank=r, world_size=4, backend="gloo",
                       versions={}, device="cpu", ddp=ddp, layouts=(), buckets=(), step_times=())
        return rank_trace(r, world_size=4, sidecar=side)

    groups = [_group("1", (0, 1)), _group("2", (2, 3)), _group("0", (0, 1, 2, 3))]
    kinds = group_kinds([ranked(r, 2) for r in range(4)], groups)
    assert [(kinds[g].kind, kinds[g].source) for g in ("1", "2")] == [(DATA, DDP_GROUP)] * 2
    assert kinds["0"].kind == DATA
    assert peers_of((0,), kinds) == ([1], DATA)
    # without the sidecars' word, membership: contiguous ranks read tensor-parallel
    assert group_kinds([rank_trace(r, world_size=4) for r in range(4)], groups)["1"].kind == TENSOR
    # tensor- and data-parallel groups of one size (2 x 2): which one is DDP's is not told, membership stands
    mesh = [_group("tp0", (0, 1)), _group("tp1", (2, 3)), _group("dp0", (0, 2)), _group("dp1", (1, 3))]
    kinds = group_kinds([ranked(r, 2) for r in range(4)], mesh)
    assert [kinds[g].kind for g in ("tp0", "tp1", "dp0", "dp1")] == [TENSOR, TENSOR, DATA, DATA]


def test_the_lead_is_found_among_many_heavier_ranks():
    """Two pipeline stages of 10 data-parallel replicas each, the second running 3x the first's products by design:
    rank 0 of the lighter stage, given a 1.5x batch, is the lead (the ranks with the most work in absolute terms are
    the heavier stage's, each like its replicas)."""
    kinds = {f"dp{s}": GroupKind(group=f"dp{s}", kind=DATA, source="membership",
                                 ranks=tuple(range(10 * s, 10 * s + 10)))
             for s in (0, 1)}
    works = {r: {1: 3e9 if r >= 10 else 1.5e9 if r == 0 else 1e9} for r in range(20)}
    lead = most_work(works, kinds)
    assert lead is not None and lead.rank == 0 and lead.ratio == pytest.approx(1.5) and lead.kind == DATA
