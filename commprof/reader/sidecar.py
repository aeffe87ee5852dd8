"""Reader of ``rank{R}.commprof.json`` (schema ``commprof.sidecar/1``).

The sidecar stores Unix nanoseconds; the reader converts them to the trace clock
(``unix - baseTimeNanoseconds``) so that sidecar and trace times compare directly.
A sidecar only enriches a trace: a broken one is reported and ignored, never fatal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from ..errors import InputError
from ..model import BucketEvent, BucketLayout, ModuleCall, Sidecar, StepTime

SCHEMA = "commprof.sidecar/1"
SCHEMA_PREFIX = "commprof.sidecar/"
MAX_SIDECAR_BYTES = 512 * 1024**2


def read_raw(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            raise InputError(path, f"sidecar larger than {MAX_SIDECAR_BYTES:,} bytes")
        doc = orjson.loads(path.read_bytes())
    except OSError as e:
        raise InputError(path, f"cannot be read ({e.strerror or e})") from None
    except orjson.JSONDecodeError:
        raise InputError(path, "sidecar is not valid JSON") from None
    if not isinstance(doc, dict):
        raise InputError(path, "sidecar is not a JSON object")
    schema = doc.get("schema")
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_PREFIX):
        raise InputError(path, f"not a commprof sidecar (schema {schema!r})")
    try:
        version = int(schema[len(SCHEMA_PREFIX):])
    except ValueError:
        raise InputError(path, f"unreadable sidecar schema {schema!r}") from None
    if version > 1:
        raise InputError(path, f"sidecar schema {schema} is newer than this commprof understands "
                               f"({SCHEMA}); upgrade commprof")
    if not isinstance(doc.get("rank"), int):
        raise InputError(path, "sidecar has no integer 'rank'")
    return doc


def _i(x: Any, default: int = 0) -> int:
    return x if isinstance(x, int) and not isinstance(x, bool) else default


def parse(path: Path, doc: dict[str, Any], base_time_ns: int) -> Sidecar:
    """Build a ``Sidecar`` with times on the trace clock of a trace whose base is ``base_time_ns``."""

    def clk(x: Any) -> int | None:
        return x - base_time_ns if isinstance(x, int) and not isinstance(x, bool) else None

    layouts = []
    for lay in doc.get("layouts") or []:
        if not isinstance(lay, dict):
            continue
        per_bucket = tuple(tuple((str(p[0]), _i(p[1])) for p in b if isinstance(p, list) and len(p) >= 2)
                           for b in lay.get("buckets") or [] if isinstance(b, list))
        layouts.append(BucketLayout(_i(lay.get("id")), per_bucket))
    buckets: list[BucketEvent] = []
    for b in doc.get("buckets") or []:
        if not isinstance(b, dict):
            continue
        hook = clk(b.get("hook_unix_ns"))
        launch = clk(b.get("launch_unix_ns"))
        if hook is None or launch is None:
            continue
        buckets.append(BucketEvent(step=_i(b.get("step"), -1), index=_i(b.get("index")), numel=_i(b.get("numel")),
                                   bytes=_i(b.get("bytes")), dtype=str(b.get("dtype", "unknown")),
                                   is_last=bool(b.get("is_last")), layout_id=_i(b.get("layout")),
                                   ready_ns=clk(b.get("ready_unix_ns")), hook_ns=hook, launch_ns=launch,
                                   observed=bool(b.get("observed"))))
    steps = []
    for s in doc.get("steps") or []:
        if isinstance(s, dict):
            a, z = clk(s.get("start_unix_ns")), clk(s.get("end_unix_ns"))
            if a is not None and z is not None and z >= a:
                steps.append(StepTime(_i(s.get("step")), a, z, bool(s.get("profiled"))))
    param_ready: dict[int, dict[str, int]] = {}
    pr = doc.get("param_ready")
    if isinstance(pr, dict):
        for k, v in pr.items():
            if isinstance(v, dict) and str(k).lstrip("-").isdigit():
                param_ready[int(k)] = {str(n): t for n, t in ((n, clk(t)) for n, t in v.items()) if t is not None}
    calls = []
    for m in doc.get("modules") or []:
        if not isinstance(m, dict):
            continue
        fs, fe = clk(m.get("fwd_start")), clk(m.get("fwd_end"))
        if fs is None or fe is None or fe < fs:
            continue
        bs, be = clk(m.get("bwd_start")), clk(m.get("bwd_end"))
        if bs is None or be is None or be < bs:
            bs = be = None
        calls.append(ModuleCall(_i(m.get("step"), -1), str(m.get("name", "")), fs, fe, bs, be, _i(m.get("out_bytes"))))
    order = tuple(str(n) for n in doc.get("module_order") or [])
    ddp = doc.get("ddp") if isinstance(doc.get("ddp"), dict) else None
    versions: dict[str, Any] = doc["versions"] if isinstance(doc.get("versions"), dict) else {}
    return Sidecar(path=str(path), schema=str(doc.get("schema")), run_id=str(doc.get("run_id", "")),
                   rank=_i(doc.get("rank")), world_size=_i(doc.get("world_size"), 1),
                   backend=doc.get("backend") if isinstance(doc.get("backend"), str) else None,
                   versions=versions, device=str(doc.get("device", "")), ddp=ddp, layouts=tuple(layouts),
                   buckets=tuple(buckets), step_times=tuple(steps), param_ready=param_ready,
                   warnings=tuple(str(w) for w in doc.get("warnings") or []), module_order=order,
                   module_calls=tuple(calls))
