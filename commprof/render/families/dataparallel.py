"""nn.DataParallel in the report: a table per process (HTML) and ``dataparallel`` in summary.json."""

from __future__ import annotations

from typing import Any

from ...analysis.analyze import Report
from ...analysis.dataparallel import DataParallelStat
from ..fmt import num as _n
from ..fmt import size as _fmt_bytes
from ..safe import html_text as h
from ..tables import HTML_END, html_head


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def as_json(rep: Report) -> dict[str, Any]:
    return {"dataparallel": [_dataparallel(d) for d in rep.dataparallel]}


def _dataparallel(d: DataParallelStat) -> dict[str, Any]:
    return {"rank": d.rank, "devices": list(d.devices), "steps": d.steps, "step_ms": _r(d.step_ms),
            "overhead_ms": _r(d.overhead_ms), "grad_bytes": d.grad_bytes,
            "device_busy_ms": {str(k): _r(v) for k, v in d.device_busy_ms.items()},
            "ddp_estimate_step_ms": _r(d.ddp_step_ms), "ddp_allreduce_ms": _r(d.ddp_allreduce_ms),
            "ddp_exposed_ms": _r(d.ddp_exposed_ms),
            "phases": [{"name": p.name, "calls_per_step": _r(p.calls_per_step, 1), "bytes_per_step": p.bytes_per_step,
                        "copied_bytes_per_step": p.copied_bytes_per_step, "host_ms": _r(p.host_ms),
                        "gpu_ms": _r(p.gpu_ms), "busy_ms": _r(p.busy_ms)} for p in d.phases]}


def html(rep: Report, s: dict[str, Any], plots: dict[str, bytes]) -> list[str]:
    parts = []
    for d in s.get("dataparallel") or []:
        est = d["ddp_estimate_step_ms"]
        parts.append(f"<h2>nn.DataParallel (rank {d['rank']}, devices {h(', '.join(map(str, d['devices'])))})</h2>"
                     f"<p>{_n(d['overhead_ms'])} ms of a {_n(d['step_ms'])} ms step moves data through the first "
                     "device"
                     + (f"; DistributedDataParallel estimate: {_n(est)} ms per step" if est is not None else "")
                     + ".</p>" + html_head(("phase", "calls/step", "bytes/step", "copied bytes", "host ms", "GPU ms",
                                        "busy ms")))
        for p in d["phases"]:
            parts.append(f"<tr><td>{h(p['name'])}</td>" + "".join(f"<td class='n'>{h(str(v))}</td>" for v in (
                p["calls_per_step"], _fmt_bytes(p["bytes_per_step"]), _fmt_bytes(p["copied_bytes_per_step"]),
                _n(p["host_ms"]), _n(p["gpu_ms"]), _n(p["busy_ms"]))) + "</tr>")
        parts.append(HTML_END)
    return parts
