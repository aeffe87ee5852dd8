"""The pipeline in the report: the stages table (terminal and HTML) and ``pipeline`` in summary.json."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from ...analysis.analyze import Report
from ..fmt import num as _f
from ..fmt import num as _n
from ..fmt import size as _fmt_bytes
from ..safe import html_text as h
from ..tables import HTML_END, html_head, html_row, table


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def as_json(rep: Report) -> dict[str, Any]:
    return {"pipeline": _pipeline(rep)}


def _pipeline(rep: Report) -> dict[str, Any] | None:
    p = rep.pipeline
    if p is None:
        return None

    def part(q) -> dict[str, Any] | None:
        if q is None:
            return None
        return {"split": list(q.split), "slowest_stage_ms": _r(q.slowest_stage_ms), "step_ms": _r(q.step_ms)}

    return {
        "layers": [{"name": lay.name, "stage": lay.stage, "fwd_ms": _r(lay.fwd_ms), "bwd_ms": _r(lay.bwd_ms),
                    "out_bytes": lay.out_bytes} for lay in p.layers],
        "stages": [{"rank": s.rank, "layers": s.layers, "compute_ms": _r(s.compute_ms), "bubble_ms": _r(s.bubble_ms),
                    "microbatches": s.microbatches, "sent_bytes_per_microbatch": s.sent_bytes,
                    "transfer_ms_per_microbatch": _r(s.transfer_ms)} for s in p.stages],
        "current": part(p.current), "advised": part(p.best),
        "link_gbps": _r(p.link_bps / 1e9) if p.link_bps else None,
    }


def text(con: Console, rep: Report, s: dict[str, Any]) -> None:
    if not s["pipeline"]:
        return
    t = table("Pipeline stages (per step; transfers per micro-batch)", ("stage (rank)", "layers", "compute ms",
                                                                         "bubble ms", "micro-batches", "sent / mb",
                                                                         "xfer ms/mb"))
    for st in s["pipeline"]["stages"]:
        t.add_row(str(st["rank"]), str(st["layers"]), _f(st["compute_ms"]), _f(st["bubble_ms"]),
                  str(st["microbatches"]), _fmt_bytes(st["sent_bytes_per_microbatch"]),
                  _f(st["transfer_ms_per_microbatch"]))
    con.print(t)
    con.print()


def html(rep: Report, s: dict[str, Any], plots: dict[str, bytes]) -> list[str]:
    if not s["pipeline"]:
        return []
    parts = ["<h2>Pipeline stages</h2>" + html_head(("stage (rank)", "layers", "compute ms/step", "bubble ms/step",
                                                 "micro-batches", "sent per micro-batch",
                                                 "transfer ms per micro-batch"))]
    for st in s["pipeline"]["stages"]:
        parts.append(html_row((st["rank"], st["layers"], _n(st["compute_ms"]), _n(st["bubble_ms"]), st["microbatches"],
                           h(_fmt_bytes(st["sent_bytes_per_microbatch"])), _n(st["transfer_ms_per_microbatch"]))))
    parts.append(HTML_END)
    return parts
