"""FSDP2's units as the trace records them (``FSDP::...`` record functions) and as the sidecar describes them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FSDPEvent:
    """One ``FSDP::<phase> (<unit>)`` record function on a rank's main thread.  ``unit`` is the module's name
    relative to the root ("" for the root); ``phase`` e.g. "pre_forward", "all_gather", "all_gather_copy_out",
    "post_forward", "pre_backward", "backward_prefetch", "post_backward_reduce", "post_backward_rs_wait"."""

    phase: str
    unit: str
    start_ns: int
    end_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FSDPUnit:
    name: str
    params: int
    numel: int
    unsharded_bytes: int  # in the dtype the parameters are all-gathered in
    sharded_bytes: int  # this rank's shard
    dtypes: tuple[str, ...]
    reshard_after_forward: bool
    forward_prefetch: tuple[str, ...]
    backward_prefetch: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FSDPSettings:
    units: tuple[FSDPUnit, ...]  # in named_modules() order: the root first
    param_dtype: str | None
    reduce_dtype: str | None
    mesh_shape: tuple[int, ...]
    hsdp: bool
    # the global ranks of this rank's shard group and, with HSDP, its replicate group (older sidecars: empty)
    shard_ranks: tuple[int, ...] = ()
    replicate_ranks: tuple[int, ...] = ()
