"""The memory of a data-parallel model's state per rank: parameters, gradients, optimizer state and DDP's
buckets, under DDP (every rank holds all of it) and under FSDP2's ``fully_shard`` (each rank holds a shard).

- Optimizer state per parameter byte, by the optimizer the trace's ``Optimizer.step#<Name>.step`` names: Adam,
  AdamW, Adamax, NAdam, RAdam, Adadelta, Rprop: 2 (two moments, or their equivalents); Adagrad, RMSprop: 1; SGD: 0
  (its momentum buffer, when momentum is set, is not visible in a trace: stated as assumed).  Without an
  optimizer step in the trace, Adam is assumed (stated).
- FSDP2 shards each parameter on its first dimension, padded to a multiple of the world size: a rank holds
  ceil(dim0 / world) rows of it; its gradient shard and optimizer state follow the parameter's.
- Units: the modules a user would wrap, one per top-level child module of the model (the first component of the
  parameter's name, after DDP's ``module.``); parameters registered on the model itself stay in the root.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ...model import ParamInfo, RankTrace
from ...model.alloc import OPTIMIZER_STEP
from ...units import param_bytes

STATE_PER_PARAM_BYTE = {"Adam": 2, "AdamW": 2, "Adamax": 2, "NAdam": 2, "RAdam": 2, "Adadelta": 2, "Rprop": 2,
                        "SparseAdam": 2, "Adagrad": 1, "RMSprop": 1, "SGD": 0}
ASSUMED_OPTIMIZER = "Adam"


@dataclass(frozen=True, slots=True, kw_only=True)
class StateMemory:
    params_bytes: int
    grads_bytes: int
    optimizer_bytes: int
    buckets_bytes: int = 0  # DDP's bucket buffers when they copy the gradients

    @property
    def total(self) -> int:
        return self.params_bytes + self.grads_bytes + self.optimizer_bytes + self.buckets_bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Unit:
    name: str  # "" the root
    params: tuple[ParamInfo, ...]
    unsharded_bytes: int  # padded to the world size, as FSDP2 all-gathers it
    shard_bytes: int  # one rank's shard


def optimizer(rt: RankTrace) -> tuple[str, int, bool]:
    """(name, state bytes per parameter byte, assumed): from the trace's optimizer step, else Adam (assumed).
    SGD's momentum is never visible: counted as none, and marked assumed."""
    names = [m.detail for m in rt.marks if m.kind == OPTIMIZER_STEP]
    if not names:
        return ASSUMED_OPTIMIZER, STATE_PER_PARAM_BYTE[ASSUMED_OPTIMIZER], True
    name = max(set(names), key=names.count)
    base = name[1:] if name.startswith("_") else name
    factor = STATE_PER_PARAM_BYTE.get(base)
    if factor is None:
        return name, STATE_PER_PARAM_BYTE[ASSUMED_OPTIMIZER], True
    return name, factor, base == "SGD"


def shard_bytes(p: ParamInfo, world: int) -> int:
    """One rank's shard of ``p`` under fully_shard: ceil(dim0 / world) rows."""
    if p.shape:
        rows = math.ceil(p.shape[0] / world)
        rest = p.numel // p.shape[0] if p.shape[0] else 0
        return param_bytes(rows * rest, p.dtype)
    return param_bytes(math.ceil(p.numel / world), p.dtype)


def units_of(params: Sequence[ParamInfo], world: int) -> list[Unit]:
    """Top-level child modules, in parameter order, the root (parameters on the model itself) first."""
    groups: dict[str, list[ParamInfo]] = {"": []}
    for p in params:
        name = p.name[len("module."):] if p.name.startswith("module.") else p.name
        head, _, rest = name.partition(".")
        groups.setdefault(head if rest else "", []).append(p)
    out = []
    for name, ps in groups.items():
        if ps or name == "":
            shard = sum(shard_bytes(p, world) for p in ps)
            out.append(Unit(name=name, params=tuple(ps), unsharded_bytes=shard * world, shard_bytes=shard))
    return out


def ddp_state(params: Sequence[ParamInfo], factor: int, bucket_copy: bool) -> StateMemory:
    nbytes = sum(p.bytes for p in params)
    return StateMemory(params_bytes=nbytes, grads_bytes=nbytes, optimizer_bytes=factor * nbytes,
                       buckets_bytes=nbytes if bucket_copy else 0)


def fsdp_state(units: Sequence[Unit], factor: int) -> StateMemory:
    shard = sum(u.shard_bytes for u in units)
    return StateMemory(params_bytes=shard, grads_bytes=shard, optimizer_bytes=factor * shard)
