"""The global ranks of the process group a data-parallel wrapper runs over (DDP's ``process_group``, FSDP2's shard
and replicate groups), written to the sidecar: the analysis then knows which matched group holds the replicas
whatever the ranks' numbering, where sizes alone cannot tell (a 2 x 2 tensor x data mesh: both groups of two)."""

from __future__ import annotations

from typing import Any


def group_ranks(pg: Any) -> list[int] | None:
    """The group's members as global ranks; None where torch cannot say (no group, or not initialized)."""
    if pg is None:
        return None
    try:
        import torch.distributed as dist

        return [int(r) for r in dist.get_process_group_ranks(pg)]
    except Exception:  # an older torch, a fake group in a test, a destroyed group: the sidecar leaves it out
        return None


def group_size(pg: Any) -> int | None:
    """The group's size; None where torch cannot say (a group destroyed before the sidecar is written)."""
    try:
        return int(pg.size()) if pg is not None else None
    except Exception:
        return None
