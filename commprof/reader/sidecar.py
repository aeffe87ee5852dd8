"""Reader of ``rank{R}.commprof.json`` (its schema: ``commprof.formats.sidecar``).

The sidecar stores Unix nanoseconds; the reader converts them to the trace clock
(``unix - baseTimeNanoseconds``) so that sidecar and trace times compare directly.
A sidecar only enriches a trace: a broken one is reported and ignored, never fatal; a malformed entry
inside it is skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from ..errors import InputError, read_bounded
from ..formats import sidecar as F
from ..model import (
    PRODUCT_KINDS,
    BucketEvent,
    BucketLayout,
    DDPSettings,
    FSDPSettings,
    FSDPUnit,
    ModuleCall,
    Orthogonalization,
    ParamInfo,
    ProbeRates,
    Sidecar,
    StepTime,
    ThinProduct,
)


def read_raw(path: Path) -> dict[str, Any]:
    raw = read_bounded(path, F.MAX_BYTES, "sidecar")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InputError(path, "sidecar is not valid JSON") from None
    if not isinstance(doc, dict):
        raise InputError(path, "sidecar is not a JSON object")
    schema = doc.get(F.SCHEMA_KEY)
    if not isinstance(schema, str) or not schema.startswith(F.SCHEMA_PREFIX):
        raise InputError(path, f"not a commprof sidecar (schema {schema!r})")
    try:
        version = int(schema[len(F.SCHEMA_PREFIX):])
    except ValueError:
        raise InputError(path, f"unreadable sidecar schema {schema!r}") from None
    if version > F.VERSION:
        raise InputError(path, f"sidecar schema {schema} is newer than this commprof understands "
                               f"({F.SCHEMA}); upgrade commprof")
    if not isinstance(doc.get(F.RANK), int):
        raise InputError(path, "sidecar has no integer 'rank'")
    return doc


def _i(x: Any, default: int = 0) -> int:
    return x if isinstance(x, int) and not isinstance(x, bool) else default


def _opt_int(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) else None


def _rank_list(x: Any) -> tuple[int, ...]:
    """A process group's global ranks: distinct non-negative integers (anything else: unknown, empty)."""
    if not isinstance(x, list) or len(x) > 1 << 20:
        return ()
    got = tuple(r for r in x if isinstance(r, int) and not isinstance(r, bool) and r >= 0)
    return got if len(got) == len(x) and len(set(got)) == len(got) else ()


def _counter(x: Any) -> int | None:
    """A CPU-time counter's delta: a non-negative integer, else unknown."""
    v = _opt_int(x)
    return v if v is not None and v >= 0 else None


def _cpus(x: Any) -> tuple[int, ...] | None:
    if not isinstance(x, list) or not x or not all(isinstance(c, int) and not isinstance(c, bool) for c in x):
        return None
    return tuple(sorted(set(x)))


def _opt_bool(x: Any) -> bool | None:
    return x if isinstance(x, bool) else None


def _shape(v: object) -> tuple[int, ...] | None:
    if isinstance(v, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in v):
        return tuple(v)
    return None


def ddp_settings(raw: Any) -> DDPSettings | None:
    """The ``ddp`` object; None when absent or empty."""
    if not isinstance(raw, dict) or not raw:
        return None
    params = tuple(ParamInfo(str(p[0]), int(p[1]), str(p[2]), _shape(p[3]) if len(p) >= 4 else None)
                   for p in raw.get(F.PARAMS) or []
                   if isinstance(p, list) and len(p) >= 3 and isinstance(p[1], int) and not isinstance(p[1], bool))
    cap_mb = raw.get(F.BUCKET_CAP_MB)
    rank = _opt_int(raw.get(F.HOOK_MATRIX_RANK))
    return DDPSettings(
        bucket_cap_mb=float(cap_mb) if isinstance(cap_mb, (int, float)) and not isinstance(cap_mb, bool) else None,
        bucket_bytes_cap=_opt_int(raw.get(F.BUCKET_BYTES_CAP)),
        first_bucket_bytes=_opt_int(raw.get(F.FIRST_BUCKET_BYTES)),
        gradient_as_bucket_view=_opt_bool(raw.get(F.GRADIENT_AS_BUCKET_VIEW)),
        static_graph=_opt_bool(raw.get(F.STATIC_GRAPH)),
        find_unused_parameters=_opt_bool(raw.get(F.FIND_UNUSED_PARAMETERS)),
        broadcast_buffers=_opt_bool(raw.get(F.BROADCAST_BUFFERS)),
        hook=str(raw.get(F.HOOK) or ""),
        hook_matrix_rank=rank if rank is not None and rank > 0 else None,
        hook_registered=_opt_bool(raw.get(F.HOOK_REGISTERED)),
        recording=str(raw.get(F.RECORDING) or ""),
        process_group_size=_opt_int(raw.get(F.PROCESS_GROUP_SIZE)),
        params=params, process_group_ranks=_rank_list(raw.get(F.PROCESS_GROUP_RANKS)))


def parse(path: Path, doc: dict[str, Any], base_time_ns: int) -> Sidecar:
    """Build a ``Sidecar`` with times on the trace clock of a trace whose base is ``base_time_ns``."""

    def clk(x: Any) -> int | None:
        return x - base_time_ns if isinstance(x, int) and not isinstance(x, bool) else None

    layouts = []
    for lay in doc.get(F.LAYOUTS) or []:
        if not isinstance(lay, dict):
            continue
        per_bucket = tuple(tuple((str(p[0]), _i(p[1])) for p in b if isinstance(p, list) and len(p) >= 2)
                           for b in lay.get(F.LAYOUT_BUCKETS) or [] if isinstance(b, list))
        layouts.append(BucketLayout(_i(lay.get(F.LAYOUT_ID)), per_bucket))
    buckets: list[BucketEvent] = []
    for b in doc.get(F.BUCKETS) or []:
        if not isinstance(b, dict):
            continue
        hook = clk(b.get(F.B_HOOK))
        launch = clk(b.get(F.B_LAUNCH))
        if hook is None or launch is None:
            continue
        buckets.append(BucketEvent(step=_i(b.get(F.B_STEP), -1), index=_i(b.get(F.B_INDEX)),
                                   numel=_i(b.get(F.B_NUMEL)), bytes=_i(b.get(F.B_BYTES)),
                                   dtype=str(b.get(F.B_DTYPE, "unknown")), is_last=bool(b.get(F.B_IS_LAST)),
                                   layout_id=_i(b.get(F.B_LAYOUT)), ready_ns=clk(b.get(F.B_READY)), hook_ns=hook,
                                   launch_ns=launch, observed=bool(b.get(F.B_OBSERVED))))
    steps = []
    for s in doc.get(F.STEPS) or []:
        if isinstance(s, dict):
            a, z = clk(s.get(F.S_START)), clk(s.get(F.S_END))
            if a is not None and z is not None and z >= a:
                steps.append(StepTime(_i(s.get(F.S_STEP)), a, z, bool(s.get(F.S_PROFILED)),
                                      _counter(s.get(F.S_HOST_BUSY_NS)), _counter(s.get(F.S_CPU_NS)),
                                      _counter(s.get(F.S_SCHED_RUN_NS)), _counter(s.get(F.S_SCHED_WAIT_NS)),
                                      input_elems=_counter(s.get(F.S_INPUT_ELEMS))))
    param_ready: dict[int, dict[str, int]] = {}
    pr = doc.get(F.PARAM_READY)
    if isinstance(pr, dict):
        for k, v in pr.items():
            if isinstance(v, dict) and str(k).lstrip("-").isdigit():
                param_ready[int(k)] = {str(n): t for n, t in ((n, clk(t)) for n, t in v.items()) if t is not None}
    return Sidecar(path=str(path), schema=str(doc.get(F.SCHEMA_KEY)), run_id=str(doc.get(F.RUN_ID, "")),
                   rank=_i(doc.get(F.RANK)), world_size=_i(doc.get(F.WORLD_SIZE), 1),
                   backend=doc.get(F.BACKEND) if isinstance(doc.get(F.BACKEND), str) else None,
                   versions=doc[F.VERSIONS] if isinstance(doc.get(F.VERSIONS), dict) else {},
                   device=str(doc.get(F.DEVICE, "")), ddp=ddp_settings(doc.get(F.DDP)), layouts=tuple(layouts),
                   buckets=tuple(buckets), step_times=tuple(steps), param_ready=param_ready,
                   warnings=tuple(str(w) for w in doc.get(F.WARNINGS) or []),
                   module_order=tuple(str(n) for n in doc.get(F.MODULE_ORDER) or []),
                   module_calls=_module_calls(doc.get(F.MODULES), clk), rates=probe_rates(doc.get(F.RATES)),
                   fsdp=fsdp_settings(doc.get(F.FSDP)), exports=_exports(doc.get(F.EXPORTS), clk),
                   host=doc.get(F.HOST) if isinstance(doc.get(F.HOST), str) else None, cpus=_cpus(doc.get(F.CPUS)),
                   net_ns=doc.get(F.NET_NS) if isinstance(doc.get(F.NET_NS), str) else None,
                   env=env_record(doc.get(F.ENV)))


def env_record(raw: Any) -> dict[str, str] | None:
    """A recorded environment (``env``: the sidecar's, a monitor rollup's); None where absent or not an object."""
    if not isinstance(raw, dict):
        return None
    return {str(k): str(v) for k, v in raw.items() if isinstance(v, str | int | float)}


def _exports(raw: Any, clk) -> tuple[tuple[int, int], ...]:
    out = []
    for x in raw if isinstance(raw, list) else []:
        if isinstance(x, list) and len(x) == 2:
            a, b = clk(x[0]), clk(x[1])
            if a is not None and b is not None and b >= a:
                out.append((a, b))
    return tuple(out)


def _names(v: Any) -> tuple[str, ...]:
    return tuple(str(x)[:200] for x in v) if isinstance(v, list) else ()


def fsdp_settings(raw: Any) -> FSDPSettings | None:
    """The ``fsdp`` object; malformed units are skipped."""
    if not isinstance(raw, dict):
        return None
    units = []
    for u in raw.get(F.FSDP_UNITS) or []:
        if not isinstance(u, dict) or not isinstance(u.get(F.U_NAME), str):
            continue
        units.append(FSDPUnit(name=u[F.U_NAME][:200], params=_i(u.get(F.U_PARAMS)), numel=_i(u.get(F.U_NUMEL)),
                              unsharded_bytes=_i(u.get(F.U_UNSHARDED_BYTES)),
                              sharded_bytes=_i(u.get(F.U_SHARDED_BYTES)), dtypes=_names(u.get(F.U_DTYPES)),
                              reshard_after_forward=bool(u.get(F.U_RESHARD)),
                              forward_prefetch=_names(u.get(F.U_FWD_PREFETCH)),
                              backward_prefetch=_names(u.get(F.U_BWD_PREFETCH))))
    mp: dict[str, Any] = raw[F.FSDP_MP] if isinstance(raw.get(F.FSDP_MP), dict) else {}
    mesh: dict[str, Any] = raw[F.FSDP_MESH] if isinstance(raw.get(F.FSDP_MESH), dict) else {}
    shape = tuple(d for d in mesh.get("shape") or [] if isinstance(d, int) and not isinstance(d, bool))
    return FSDPSettings(tuple(units), mp.get("param_dtype") if isinstance(mp.get("param_dtype"), str) else None,
                        mp.get("reduce_dtype") if isinstance(mp.get("reduce_dtype"), str) else None, shape,
                        bool(mesh.get("hsdp")), _rank_list(mesh.get(F.MESH_SHARD_RANKS)),
                        _rank_list(mesh.get(F.MESH_REPLICATE_RANKS)))


def _pos(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x < float("inf") else None


def _ints(row: list[Any]) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in row)


def probe_rates(raw: Any) -> ProbeRates | None:
    """The ``rates`` object of the capture probe; malformed rows are skipped."""
    if not isinstance(raw, dict):
        return None
    products = tuple(ThinProduct(p[0], p[1], p[2], p[3], float(p[4])) for p in raw.get(F.R_PRODUCTS) or []
                     if isinstance(p, list) and len(p) == 5 and p[0] in PRODUCT_KINDS and _ints(p[1:4])
                     and _pos(p[4]) is not None)
    orth = tuple(Orthogonalization(o[0], o[1], float(o[2])) for o in raw.get(F.R_ORTHOGONALIZE) or []
                 if isinstance(o, list) and len(o) == 3 and _ints(o[:2]) and _pos(o[2]) is not None)
    return ProbeRates(str(raw.get(F.R_DEVICE) or "cpu"), _i(raw.get(F.R_BUFFER_BYTES)), _pos(raw.get(F.R_PASS_BPS)),
                      _pos(raw.get(F.R_FRESH_BPS)), products, orth, _pos(raw.get(F.R_WALL_MS)) or 0.0)


def _module_calls(raw: Any, clk) -> tuple[ModuleCall, ...]:
    calls = []
    for m in raw or []:
        if not isinstance(m, dict):
            continue
        fs, fe = clk(m.get(F.M_FWD_START)), clk(m.get(F.M_FWD_END))
        if fs is None or fe is None or fe < fs:
            continue
        bs, be = clk(m.get(F.M_BWD_START)), clk(m.get(F.M_BWD_END))
        if bs is None or be is None or be < bs:
            bs = be = None
        calls.append(ModuleCall(_i(m.get(F.M_STEP), -1), str(m.get(F.M_NAME, "")), fs, fe, bs, be,
                                _i(m.get(F.M_OUT_BYTES))))
    return tuple(calls)
