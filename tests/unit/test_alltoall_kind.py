"""What a group of all-to-alls serves: sharded embedding tables or experts.  The 8-GPU DLRM trace and HTA's
TorchRec trace ran their all-to-alls for embedding tables (fbgemm's table-batched lookups) and were labelled
"expert-parallel" by membership, with DeepEP named first as the remedy."""

from __future__ import annotations

import numpy as np
from builders import rank_trace

from commprof.analysis.crossrank.critfindings import _HOW
from commprof.analysis.crossrank.matching import GroupMatch
from commprof.analysis.crossrank.pgkind import EMBEDDING, EXPERT, group_kinds
from commprof.model import EMBEDDING_TABLES, EXPERTS
from commprof.reader.comm.classify import model_parts

# kernel / operator names as the real traces spell them
DLRM = ("void split_embedding_codegen_forward_unweighted_kernel<float, float, float, false, long, 1ul>(...)",
        "fbgemm::split_embedding_codegen_lookup_adagrad_function", "ampere_sgemm_128x64_tn")
MOE = ("aten::_grouped_mm", "MoE.router", "aten::topk", "void indexSelectLargeIndex<float, long>(...)")
TRANSFORMER = ("aten::embedding", "void at::native::embedding_backward_feature_kernel<float>(...)", "aten::mm")


def _all_to_all_group() -> GroupMatch:
    z = np.zeros((2, 2), dtype=np.int64)
    return GroupMatch(process_group="0", ranks=(0, 1), ops=("all_to_all_single",) * 2, steps=np.array([1, 1]),
                      arrival_ns=z, end_ns=z, nbytes=np.array([1 << 20] * 2), group_sizes=np.array([2, 2]),
                      issue_ns=z, start_ns=z)


def test_names_show_embedding_tables_or_experts_and_a_token_embedding_is_neither():
    assert model_parts(DLRM) == {EMBEDDING_TABLES}
    assert model_parts(MOE) == {EXPERTS}
    assert model_parts(TRANSFORMER) == frozenset()  # every transformer embeds its tokens: no tables
    assert model_parts(("aten::embedding_bag", "aten::_embedding_bag_backward")) == {EMBEDDING_TABLES}


def test_all_to_alls_beside_embedding_tables_are_sharded_embeddings_else_experts():
    g = _all_to_all_group()
    ranks = [rank_trace(r, model_parts=model_parts(DLRM)) for r in (0, 1)]
    kind = group_kinds(ranks, [g])["0"]
    assert (kind.kind, kind.source) == (EMBEDDING, "operators")
    assert "TrainPipelineSparseDist" in _HOW[EMBEDDING] and "DeepEP" not in _HOW[EMBEDDING]
    for parts in (MOE, (), DLRM + MOE):  # experts, nothing shown, or both: expert parallel, the remedy names both
        ranks = [rank_trace(r, model_parts=model_parts(parts)) for r in (0, 1)]
        kind = group_kinds(ranks, [g])["0"]
        assert (kind.kind, kind.source) == (EXPERT, "membership")
    assert "DeepEP" in _HOW[EXPERT] and "TrainPipelineSparseDist" in _HOW[EXPERT]


def test_a_group_keeps_its_recorded_size_beside_its_loaded_members():
    """HTA's trace_filter: 2 of a 128-rank group's members loaded, said as "(2 ranks)" beside a table's n = 128."""
    from dataclasses import replace

    g = replace(_all_to_all_group(), group_sizes=np.array([128, 128]))
    kind = group_kinds([rank_trace(r) for r in (0, 1)], [g])["0"]
    assert kind.size == 128 and kind.ranks == (0, 1)
