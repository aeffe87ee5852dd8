"""Memory in the report: the memory table (HTML) and ``memory`` in summary.json."""

from __future__ import annotations

from typing import Any

from ...analysis.analyze import Report
from ...analysis.memory.peak import Memory
from ..fmt import size as _fmt_bytes
from ..safe import html_text as h
from ..tables import HTML_END, html_head, html_row


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def as_json(rep: Report) -> dict[str, Any]:
    return {"memory": [_memory(m) for m in rep.memory]}


def _memory(m: Memory) -> dict[str, Any]:
    return {"rank": m.rank, "device": m.device, "peak_allocated_bytes": m.peak_allocated,
            "peak_reserved_bytes": m.peak_reserved, "device_total_bytes": m.total, "pct_of_device": _r(m.pct, 1),
            "ddp_bucket_bytes": m.bucket_bytes, "ddp_buckets_are_a_copy": m.bucket_copy,
            "compression_persistent_bytes": m.compression_persistent,
            "compression_transient_bytes": m.compression_transient}


def html(rep: Report, s: dict[str, Any], plots: dict[str, bytes]) -> list[str]:
    if not s.get("memory"):
        return []
    parts = ["<h2>Memory (profile_memory=True)</h2>" + html_head(
        "rank", "device", "peak allocated", "peak reserved", "% of device", "DDP buckets",
        "comm hook buffers (kept / in flight)")]
    for m in s["memory"]:
        buckets = _fmt_bytes(m["ddp_bucket_bytes"]) + (" (a copy)" if m["ddp_buckets_are_a_copy"] else "")
        hook = (f"{_fmt_bytes(m['compression_persistent_bytes'])} / {_fmt_bytes(m['compression_transient_bytes'])}"
                if m["compression_persistent_bytes"] or m["compression_transient_bytes"] else "–")
        parts.append(html_row(h(str(v)) for v in (
            m["rank"], m["device"], _fmt_bytes(m["peak_allocated_bytes"]), _fmt_bytes(m["peak_reserved_bytes"]),
            "–" if m["pct_of_device"] is None else m["pct_of_device"], buckets, hook)))
    parts.append(HTML_END)
    return parts
