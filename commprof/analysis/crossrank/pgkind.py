"""What parallelism a process group serves: tensor, data, pipeline or expert parallel, or sharded embeddings.

From the group's description where the trace records one (torch's ``pg_desc``, Megatron's group names: words such
as "tensor", "tp", "data", "dp", "pipeline", "pp", "expert", "ep", "moe"); else from what it runs and its members:
all-to-all -> sharded embeddings where the trace's operators / kernels show embedding tables and no experts
(TorchRec's table-batched lookups: DLRM), else expert parallel (the remedy then names both: the members cannot tell
them apart); point-to-point only -> pipeline; a group of consecutive ranks smaller than the job
-> tensor parallel (Megatron and torch's DeviceMesh put the innermost dimension on consecutive ranks); a strided
group or one spanning the job beside smaller groups -> data parallel.  A lone group spanning the job is tensor
parallel when it repeats one message size many times per step (activations of the same shape, layer after layer)
and neither DDP / FSDP settings nor FSDP2's record functions were recorded, else data parallel.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ... import ops
from ...model import EMBEDDING_TABLES, EXPERTS, RankTrace
from ...model.alloc import DDP_FORWARD, DDP_REDUCER
from .matching import GroupMatch

TENSOR, DATA, PIPELINE, EXPERT, EMBEDDING = "tensor", "data", "pipeline", "expert", "embedding"
NAMES = {TENSOR: "tensor-parallel", DATA: "data-parallel", PIPELINE: "pipeline-parallel", EXPERT: "expert-parallel",
         EMBEDDING: "sharded-embedding"}
DDP_GROUP = "ddp"  # a GroupKind's source: the group DDP wrapped the model over (the sidecars' process_group_size)
FSDP_GROUP = "fsdp"  # a GroupKind's source: FSDP2's shard or replicate group (the sidecars' mesh ranks)
BESIDE = "beside"  # a GroupKind's source: across the data-parallel groups the sidecars name (tensor-parallel)
SHORT = {TENSOR: "TP", DATA: "DP", PIPELINE: "PP", EXPERT: "EP", EMBEDDING: "EMB"}
_WORDS = ((EXPERT, ("expert", "ep", "moe", "etp", "edp")), (PIPELINE, ("pipeline", "pp", "pipe", "stage")),
          (TENSOR, ("tensor", "tp", "tensor_model", "mp", "model", "sp", "cp", "context")),
          (DATA, ("data", "dp", "ddp", "fsdp", "shard", "replicate", "hsdp", "default_pg")))
MIN_REPEATS_PER_STEP = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupKind:
    group: str
    kind: str  # TENSOR, DATA, PIPELINE, EXPERT or EMBEDDING
    source: str  # "description", "membership", "ddp" (DDP's process group, the sidecars), "fsdp" (FSDP2's mesh
    # groups, the sidecars), "beside" (across those groups) or "operators" (all-to-alls)
    ranks: tuple[int, ...]  # its members among the loaded ranks
    size: int = 0  # its size as the collectives record it (a job's 128 where 2 ranks are loaded)


def _from_description(desc: str) -> str | None:
    words = set(re.split(r"[^a-z]+", desc.lower()))
    for kind, keys in _WORDS:
        if words & set(keys):
            return kind
    return None


def _lone_world_kind(g: GroupMatch, ranks: Sequence[RankTrace]) -> str:
    """The whole world's one group: data-parallel where the ranks run a data-parallel wrapper (FSDP2's records, a
    sidecar's DDP or FSDP settings, or DDP's own operators in a plain trace: a plain torch.profiler DDP job's
    equal-sized buckets read as one message size repeated, tensor-parallel), else by its message sizes."""
    if any(rt.fsdp or (rt.sidecar is not None and (rt.sidecar.ddp is not None or rt.sidecar.fsdp is not None))
           or any(m.kind in (DDP_FORWARD, DDP_REDUCER) for m in rt.marks) for rt in ranks):
        return DATA
    n_steps = max(len(set(g.steps.tolist())), 1)
    sizes = Counter(g.nbytes.tolist())
    if not sizes:
        return DATA
    size, count = sizes.most_common(1)[0]
    repeated = count / n_steps >= MIN_REPEATS_PER_STEP and count >= 0.5 * len(g.nbytes) and size > 0
    return TENSOR if repeated else DATA


def group_kinds(ranks: Sequence[RankTrace], groups: Sequence[GroupMatch]) -> dict[str, GroupKind]:
    """The kind of every matched process group."""
    desc: dict[str, str] = {}
    for rt in ranks[:64]:  # descriptions are the same on every rank of a group; a few ranks name them all
        for pg in rt.process_groups:
            if pg.description and pg.name not in desc:
                desc[pg.name] = pg.description
    world = {r for g in groups for r in g.ranks} | {rt.rank for rt in ranks}
    smaller = any(len(g.ranks) < len(world) for g in groups)
    ddp_sizes = {rt.rank: rt.sidecar.ddp.process_group_size for rt in ranks
                 if rt.sidecar is not None and rt.sidecar.ddp is not None}
    replicas = _replica_groups(ranks)
    out: dict[str, GroupKind] = {}
    for g in groups:
        kind = _from_description(desc.get(g.process_group, ""))
        source = "description"
        if kind is None:  # the operators first: send/recv or all-to-alls are no wrapper's replicas, whoever runs them
            kind = _membership(g, ranks, world, smaller)
            source = "operators" if kind == EMBEDDING else "membership"
            if kind in (TENSOR, DATA):
                if (told := _recorded(g, replicas)) is not None:
                    kind, source = DATA, told
                elif _ddp_group(g, groups, ddp_sizes, world):
                    kind, source = DATA, DDP_GROUP
                elif _crosses(g, replicas, world):
                    kind, source = TENSOR, BESIDE
        out[g.process_group] = GroupKind(group=g.process_group, kind=kind, source=source, ranks=g.ranks,
                                         size=_size(g))
    return out


def _size(g: GroupMatch) -> int:
    """The group's size as its collectives record it, at least its loaded members."""
    return max(int(g.group_sizes.max()) if g.group_sizes.size else 0, len(g.ranks))


def _replica_groups(ranks: Sequence[RankTrace]) -> dict[int, list[tuple[frozenset[int], str]]]:
    """Per rank, the data-parallel groups its sidecar names by their global ranks: DDP's process group, FSDP2's
    shard group and (HSDP) replicate group."""
    out: dict[int, list[tuple[frozenset[int], str]]] = {}
    for rt in ranks:
        sc = rt.sidecar
        if sc is None:
            continue
        got = [(frozenset(sc.ddp.process_group_ranks), DDP_GROUP)] if sc.ddp is not None else []
        if sc.fsdp is not None:
            got += [(frozenset(sc.fsdp.shard_ranks), FSDP_GROUP), (frozenset(sc.fsdp.replicate_ranks), FSDP_GROUP)]
        if kept := [(m, src) for m, src in got if len(m) > 1 and rt.rank in m]:
            out[rt.rank] = kept
    return out


def _recorded(g: GroupMatch, replicas: Mapping[int, list[tuple[frozenset[int], str]]]) -> str | None:
    """Which wrapper's group ``g`` is, where every loaded member's sidecar names one data-parallel group holding
    them all and of ``g``'s size (its members as global ranks: told whatever the numbering or the sizes of the
    other groups); None where a member names none."""
    size = _size(g)
    members = set(g.ranks)
    sources = set()
    for r in g.ranks:
        src = next((s for m, s in replicas.get(r, ()) if members <= m and len(m) == size), None)
        if src is None:
            return None
        sources.add(src)
    return min(sources) if sources else None


def _crosses(g: GroupMatch, replicas: Mapping[int, list[tuple[frozenset[int], str]]], world: set[int]) -> bool:
    """A group across the replicas: every loaded member's sidecar names its data-parallel groups, and ``g`` meets each
    of them in that member alone (``_recorded`` said it is none of them): the mesh's other dimension, tensor-parallel
    whatever its numbering (a 2 x 2 mesh with DDP over {0, 1} and {2, 3}: {0, 2} and {1, 3})."""
    members = set(g.ranks)
    return 1 < len(members) < len(world) and all(
        r in replicas and all(members & m == {r} for m, _s in replicas[r]) for r in members)


def _ddp_group(g: GroupMatch, groups: Sequence[GroupMatch], ddp_sizes: Mapping[int, int | None],
               world: set[int]) -> bool:
    """A group smaller than the world whose every member wrapped its model in DDP over a process group of exactly its
    size (the sidecar's ``process_group_size``), and is in no other group of that size (else which one is DDP's is
    not told: tensor- and data-parallel groups of one size): DDP's own replicas, data-parallel whatever their rank
    numbers (two DDP groups {0, 1} and {2, 3} read as tensor-parallel by membership, contiguous ranks)."""
    size = len(g.ranks)
    if size >= len(world) or not all(ddp_sizes.get(r) == size for r in g.ranks):
        return False
    return all(sum(1 for o in groups if len(o.ranks) == size and r in o.ranks) == 1 for r in g.ranks)


def _membership(g: GroupMatch, ranks: Sequence[RankTrace], world: set[int], smaller: bool) -> str:
    if g.ops and sum(1 for op in g.ops if "all_to_all" in op) >= 0.5 * len(g.ops):
        parts = frozenset().union(*(rt.model_parts for rt in ranks[:64]))
        return EMBEDDING if EMBEDDING_TABLES in parts and EXPERTS not in parts else EXPERT
    if g.ops and all(ops.is_p2p(op) for op in g.ops):
        return PIPELINE
    rk = np.asarray(g.ranks)
    if len(rk) < len(world):
        return TENSOR if int(rk.max() - rk.min()) + 1 == len(rk) else DATA
    return DATA if smaller else _lone_world_kind(g, ranks)
