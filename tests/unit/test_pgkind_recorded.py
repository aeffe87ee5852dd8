"""Which process group holds the replicas, from the sidecars' own word (``pgkind._recorded``): DDP's process group
and FSDP2's shard and replicate groups written as global ranks, so a 2 x 2 tensor x data mesh (both groups of two,
where sizes cannot tell) is told whatever the ranks' numbering; the reader keeps only a valid rank list."""

from __future__ import annotations

import numpy as np
from builders import rank_trace

from commprof.analysis.crossrank.matching import GroupMatch
from commprof.analysis.crossrank.pgkind import BESIDE, DATA, DDP_GROUP, FSDP_GROUP, PIPELINE, TENSOR, group_kinds
from commprof.analysis.crossrank.work import peers_of
from commprof.model import Sidecar
from commprof.model.fsdp import FSDPSettings
from commprof.model.sidecar import DDPSettings
from commprof.reader.sidecar import _rank_list


def _group(name: str, ranks: tuple[int, ...], size: int | None = None, op: str = "all_reduce") -> GroupMatch:
    z = np.zeros((2, len(ranks)), dtype=np.int64)
    return GroupMatch(process_group=name, ranks=ranks, ops=(op,) * 2, steps=np.array([1, 1]), arrival_ns=z,
                      end_ns=z, nbytes=np.array([1 << 20] * 2), group_sizes=np.array([size or len(ranks)] * 2),
                      issue_ns=z, start_ns=z)


def _ddp(r: int, replicas: tuple[int, ...], world: int = 4):
    ddp = DDPSettings(bucket_cap_mb=25.0, bucket_bytes_cap=None, first_bucket_bytes=None,
                      gradient_as_bucket_view=False, static_graph=False, find_unused_parameters=False,
                      broadcast_buffers=True, hook="allreduce", hook_matrix_rank=None, hook_registered=False,
                      recording="", process_group_size=len(replicas), params=(), process_group_ranks=replicas)
    side = Sidecar(path="s", schema="commprof.sidecar/1", run_id="r", rank=r, world_size=world, backend="gloo",
                   versions={}, device="cpu", ddp=ddp, layouts=(), buckets=(), step_times=())
    return rank_trace(r, world_size=world, sidecar=side)


def _fsdp(r: int, shard: tuple[int, ...], replicate: tuple[int, ...] = (), world: int = 4):
    fsdp = FSDPSettings((), None, None, (len(shard),), bool(replicate), shard_ranks=shard, replicate_ranks=replicate)
    side = Sidecar(path="s", schema="commprof.sidecar/1", run_id="r", rank=r, world_size=world, backend="gloo",
                   versions={}, device="cpu", ddp=None, layouts=(), buckets=(), step_times=(), fsdp=fsdp)
    return rank_trace(r, world_size=world, sidecar=side)


MESH = [_group("a0", (0, 1)), _group("a1", (2, 3)), _group("b0", (0, 2)), _group("b1", (1, 3))]


def test_a_2x2_mesh_whose_replicas_are_contiguous_reads_them_data_parallel():
    """DDP over {0, 1} and {2, 3}: membership alone says contiguous groups are tensor-parallel (and the strided ones
    data-parallel); the recorded ranks say the opposite, and the work's peers follow them."""
    ranks = [_ddp(r, (0, 1) if r < 2 else (2, 3)) for r in range(4)]
    kinds = group_kinds(ranks, MESH)
    assert [(kinds[g].kind, kinds[g].source) for g in ("a0", "a1")] == [(DATA, DDP_GROUP)] * 2
    assert [(kinds[g].kind, kinds[g].source) for g in ("b0", "b1")] == [(TENSOR, BESIDE)] * 2
    assert peers_of((0,), kinds) == ([1], DATA)


def test_a_2x2_mesh_whose_replicas_are_strided_agrees_with_membership():
    ranks = [_ddp(r, (r % 2, r % 2 + 2)) for r in range(4)]
    kinds = group_kinds(ranks, MESH)
    assert [kinds[g].kind for g in ("a0", "a1", "b0", "b1")] == [TENSOR, TENSOR, DATA, DATA]
    assert kinds["b0"].source == DDP_GROUP and kinds["a0"].source == BESIDE
    assert peers_of((0,), kinds) == ([2], DATA)


def test_fsdp2s_shard_and_replicate_groups_are_data_parallel():
    """HSDP on 4 ranks: shard over {0, 1} / {2, 3}, replicate over {0, 2} / {1, 3}: both dimensions hold replicas."""
    ranks = [_fsdp(r, (0, 1) if r < 2 else (2, 3), (r % 2, r % 2 + 2)) for r in range(4)]
    kinds = group_kinds(ranks, MESH)
    assert all((kinds[g].kind, kinds[g].source) == (DATA, FSDP_GROUP) for g in ("a0", "a1", "b0", "b1"))


def test_fsdp2_with_tensor_parallel_strided_names_the_replicas_not_the_smaller_group():
    """8 ranks, FSDP2 over 4 consecutive ranks and tensor-parallel pairs {r, r + 4}: membership alone reads {0, 4}
    data-parallel (strided), and the work's peers were the smaller data-parallel group, rank 0's shard."""
    ranks = [_fsdp(r, tuple(range(0, 4)) if r < 4 else tuple(range(4, 8)), world=8) for r in range(8)]
    groups = [_group("dp0", (0, 1, 2, 3)), _group("dp1", (4, 5, 6, 7))] + [_group(f"tp{r}", (r, r + 4))
                                                                          for r in range(4)]
    kinds = group_kinds(ranks, groups)
    assert all((kinds[f"tp{r}"].kind, kinds[f"tp{r}"].source) == (TENSOR, BESIDE) for r in range(4))
    assert (kinds["dp0"].kind, kinds["dp0"].source) == (DATA, FSDP_GROUP)
    assert peers_of((0,), kinds) == ([1, 2, 3], DATA)


def test_send_recv_between_the_same_two_ranks_stays_a_pipeline():
    """FSDP2's shard group {0, 1} and a send/recv pair group on the same ranks: the operators say pipeline."""
    ranks = [_fsdp(r, (0, 1), world=2) for r in (0, 1)]
    kinds = group_kinds(ranks, [_group("p2p", (0, 1), op="send"), _group("0", (0, 1))])
    assert kinds["p2p"].kind == PIPELINE and (kinds["0"].kind, kinds["0"].source) == (DATA, FSDP_GROUP)


def test_a_flattened_data_parallel_group_loaded_in_part_stays_data_parallel():
    """16 ranks, tensor-parallel pairs, FSDP2 shard {0, 2} and HSDP replicas of 4; only ranks 0-3 loaded: the
    flattened data-parallel group (8 ranks) is loaded as {0, 2}, which is no recorded group's size and crosses
    none of them: membership stands (data-parallel), never tensor-parallel."""
    ranks = [_fsdp(r, (r - r % 4 + r % 2, r - r % 4 + r % 2 + 2), (r % 4, r % 4 + 4, r % 4 + 8, r % 4 + 12),
                   world=16) for r in range(4)]
    groups = [_group("dp", (0, 2), size=8), _group("tp0", (0, 1)), _group("tp1", (2, 3))]
    kinds = group_kinds(ranks, groups)
    assert kinds["dp"].kind == DATA
    assert kinds["tp0"].kind == TENSOR


def test_a_job_loaded_in_part_is_told_by_the_groups_recorded_size():
    """Two ranks of an 8-rank job whose DDP group is all 8: the matched group holds the two loaded ranks, its
    collectives say 8."""
    ranks = [_ddp(r, tuple(range(8)), world=8) for r in (0, 1)]
    kinds = group_kinds(ranks, [_group("0", (0, 1), size=8)])
    assert (kinds["0"].kind, kinds["0"].source) == (DATA, DDP_GROUP)


def test_older_sidecars_leave_the_mesh_to_membership():
    ranks = [_ddp(r, ()) for r in range(4)]
    kinds = group_kinds(ranks, MESH)
    assert [kinds[g].kind for g in ("a0", "a1", "b0", "b1")] == [TENSOR, TENSOR, DATA, DATA]


def test_the_reader_keeps_only_a_list_of_distinct_non_negative_ranks():
    assert _rank_list([0, 2, 4]) == (0, 2, 4)
    for bad in ([0, 0], [0, -1], [0, True], [0, "1"], "0,1", None, {"0": 1}):
        assert _rank_list(bad) == ()
