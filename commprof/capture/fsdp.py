"""FSDP2 (``fully_shard``) settings, read from the model when the trace session writes its sidecar.

Nothing is registered on the model and nothing changes what it computes: the units, their parameter sizes
(sharded and unsharded, in the dtype they are all-gathered in), ``reshard_after_forward``, explicit prefetch
targets, the mixed-precision policy and the device mesh are read from FSDP2's state (private attributes, read
behind a check: a failure leaves the settings out with a warning).  Per-unit times come from the trace: FSDP2
records ``FSDP::pre_forward (unit)``, ``FSDP::all_gather (unit)``, ``FSDP::post_backward_reduce (unit)``, ...
"""

from __future__ import annotations

from typing import Any

from ..formats import sidecar as F
from .groups import group_ranks


def is_fsdp2(model: Any) -> bool:
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:
        return False
    return isinstance(model, FSDPModule)


def _dtype(d: Any) -> str | None:
    return None if d is None else str(d).replace("torch.", "")


def settings(root: Any) -> dict[str, Any]:
    """The sidecar's ``fsdp`` object."""
    import torch
    from torch.distributed.fsdp import FSDPModule

    units: list[dict[str, Any]] = []
    mp: dict[str, Any] = {}
    mesh: dict[str, Any] = {}
    names: dict[int, str] = {}
    for _name, m in root.named_modules():
        if isinstance(m, FSDPModule):
            pg = m._get_fsdp_state()._fsdp_param_group
            if pg is not None:
                names[id(m._get_fsdp_state())] = str(pg._module_fqn)
    for _name, m in root.named_modules():
        if not isinstance(m, FSDPModule):
            continue
        state = m._get_fsdp_state()
        pg = state._fsdp_param_group
        if pg is None:
            continue
        policy = pg.mp_policy
        numel = sharded = unsharded = 0
        dtypes = set()
        for fp in pg.fsdp_params:
            n = int(torch.Size(fp._orig_size).numel())
            dt = policy.param_dtype or fp.sharded_param.dtype
            size = torch.empty(0, dtype=dt).element_size()
            numel += n
            unsharded += n * size
            local = fp.sharded_param.to_local() if hasattr(fp.sharded_param, "to_local") else fp.sharded_param
            sharded += int(local.numel()) * local.element_size()
            dtypes.add(_dtype(dt))
        units.append({F.U_NAME: str(pg._module_fqn), F.U_PARAMS: len(pg.fsdp_params), F.U_NUMEL: numel,
                      F.U_UNSHARDED_BYTES: unsharded, F.U_SHARDED_BYTES: sharded, F.U_DTYPES: sorted(dtypes),
                      F.U_RESHARD: pg.post_forward_mesh_info is not None,
                      F.U_FWD_PREFETCH: [names.get(id(s), "?") for s in state._states_to_forward_prefetch],
                      F.U_BWD_PREFETCH: [names.get(id(s), "?") for s in state._states_to_backward_prefetch]})
        if not mp:
            mp = {"param_dtype": _dtype(policy.param_dtype), "reduce_dtype": _dtype(policy.reduce_dtype),
                  "output_dtype": _dtype(policy.output_dtype)}
        if not mesh:
            dm = pg.mesh_info.mesh
            mesh = {"shape": list(dm.shape), "dim_names": list(dm.mesh_dim_names or ()),
                    "hsdp": getattr(pg.mesh_info, "replicate_mesh_dim", None) is not None,
                    F.MESH_SHARD_RANKS: group_ranks(getattr(pg.mesh_info, "shard_process_group", None)),
                    F.MESH_REPLICATE_RANKS: group_ranks(getattr(pg.mesh_info, "replicate_process_group", None))}
    return {F.FSDP_UNITS: units, F.FSDP_MP: mp, F.FSDP_MESH: mesh}
