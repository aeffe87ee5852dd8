"""DDP in the report: the buckets table (terminal and HTML), the buckets plot, the advisor's model check beside
the findings, and ``buckets``, ``whatif``, ``advisor`` in summary.json."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from ...analysis.analyze import Report
from ...analysis.section import Section
from ..fmt import model_check_text
from ..fmt import num as _f
from ..fmt import num as _n
from ..fmt import size as _fmt_bytes
from ..safe import html_text as h
from ..tables import HTML_END, MAX_ROWS, html_head, html_img, html_row, table


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def range_ms(rng: tuple[float, float] | None) -> list[float | None] | None:
    return [_r(rng[0]), _r(rng[1])] if rng is not None else None


def traced_hook(rep: Report) -> str | None:
    """The comm hook the traced run registered (its sidecar's; None: DDP's built-in all-reduce, or not recorded)."""
    for rt in rep.run.ranks:
        d = rt.sidecar.ddp if rt.sidecar is not None else None
        if d is not None and d.hook and not d.hook.startswith("allreduce"):
            return d.hook + (f"(matrix_approximation_rank={d.hook_matrix_rank})" if d.hook_matrix_rank else "")
    return None


def as_json(rep: Report) -> dict[str, Any]:
    return {
        "buckets": [{"index": b.index, "bytes": b.bytes, "params": b.params, "ready_ms": _r(b.ready_ms),
                     "launch_ms": _r(b.launch_ms), "comm_ms": _r(b.comm_ms), "exposed_ms": _r(b.exposed_ms),
                     "ends_last_share": _r(b.ends_last)}
                    for b in rep.buckets],
        "whatif": [{"knob": w.knob, "value": w.value, "predicted_step_ms": _r(w.step_ms),
                    "predicted_range_ms": range_ms(w.range_ms), "predicted_exposed_ms": _r(w.exposed_ms),
                    "assumed": list(w.assumed)}
                   for w in rep.advisor.whatifs],
        "advisor": _advisor(rep),
        "accumulation": _accumulation(rep),
    }


def _accumulation(rep: Report) -> dict[str, Any] | None:
    """The micro-batches of a step (``analysis/ddp/accumulation.py``), None where no rank calls DDP's forward more
    than once per step."""
    acc = rep.ddp.accumulation
    if acc is None:
        return None
    return {"micro_batches_per_step": acc.per_step, "gradient_syncs_per_step": acc.synced, "wasted": acc.wasted,
            "ranks": [{"rank": m.rank, "micro_batches": m.per_step, "synced": m.synced, "steps": m.steps,
                       "step_ms": _r(m.step_ms), "early_exposed_ms": _r(m.early_exposed_ms)} for m in acc.ranks]}


def note(rep: Report, sec: Section) -> str | None:
    """The model check, said after the advice."""
    c = rep.advisor.check
    return None if c is None else model_check_text(c, rep.advisor.rates)


def plots(rep: Report, sec: Section) -> dict[str, bytes]:
    png = buckets_plot(rep)
    return {} if png is None else {"buckets": png}


def _advisor(rep: Report) -> dict[str, Any]:
    a = rep.advisor
    c = a.check
    return {"traced_comm_hook": traced_hook(rep),
            "baseline_step_ms": _r(a.baseline_step_ms), "model_profiled_step_ms": _r(a.model_step_ms),
            "measured_profiled_step_ms": _r(a.profiled_step_ms),
            "compute_scale": {str(k): _r(v, 4) for k, v in a.scale.items()},
            "model_check": None if c is None else {
                "rank": c.rank, "step_model_ms": _r(c.step_model_ms), "step_measured_ms": _r(c.step_measured_ms),
                "error_pct": _r(c.error_pct, 1), "within_tolerance": c.ok,
                "exposed_model_ms": _r(c.exposed_model_ms), "exposed_measured_ms": _r(c.exposed_measured_ms),
                "source": c.source, "notes": list(c.notes)},
            "rates": None if a.rates is None else {
                "pass_gbps": _r(a.rates.pass_bps / 1e9), "fresh_gbps": _r(a.rates.fresh_bps / 1e9),
                "products_measured": len(a.rates.products), "sources": dict(sorted(a.rates.sources.items()))}}


def text(con: Console, rep: Report, s: dict[str, Any]) -> None:
    if not s["buckets"]:
        return
    t = table("DDP buckets (ms from step start, median)", ("bucket", "bytes", "params", "ready", "launch",
                                                            "comm ms", "exposed ms"))
    for b in s["buckets"][:MAX_ROWS]:
        t.add_row(str(b["index"]), _fmt_bytes(b["bytes"]), str(b["params"]), _f(b["ready_ms"]),
                  _f(b["launch_ms"]), _f(b["comm_ms"]), _f(b["exposed_ms"]))
    con.print(t)
    hook = traced_hook(rep)
    if hook is not None:
        con.print(f"  bytes: the bucket's gradients; the traced comm hook, {hook}, sends what it makes of them (the "
                  "collectives table's bytes)")
    if len(s["buckets"]) > 1:
        con.print("  exposed ms: each bucket's own collective not covered by compute; collectives that run at once "
                  "(gloo's worker threads, NCCL's streams) each count in full, so the sum can exceed the rank's "
                  "exposed communication, their union")
    con.print()


def html(rep: Report, s: dict[str, Any], plots: dict[str, bytes]) -> list[str]:
    if not s["buckets"]:
        return []
    parts = ["<h2>DDP buckets</h2>"]
    if "buckets" in plots:
        parts.append(html_img("buckets", plots["buckets"], "bucket sizes and exposure"))
    parts.append(html_head(("bucket", "bytes", "params", "ready ms", "launch ms", "comm ms", "exposed ms"),
                           name="buckets"))
    for b in s["buckets"]:
        parts.append(html_row((b["index"], h(_fmt_bytes(b["bytes"])), b["params"], _n(b["ready_ms"]),
                           _n(b["launch_ms"]), _n(b["comm_ms"]), _n(b["exposed_ms"]))))
    parts.append(HTML_END)
    return parts


def buckets_plot(rep: Report) -> bytes | None:
    """Size and exposure of each DDP bucket, in launch order."""
    bs = rep.buckets
    if not bs:
        return None
    import numpy as np

    from ..plot.figure import COMM, EXPOSED, new_figure, to_png

    plt, fig, ax = new_figure(8, 3.2)
    x = np.array([b.index for b in bs])
    comm = np.array([b.comm_ms or 0.0 for b in bs])
    expo = np.array([b.exposed_ms or 0.0 for b in bs])
    ax.bar(x, comm - expo, color=COMM, label="comm hidden by compute")
    ax.bar(x, expo, bottom=comm - expo, color=EXPOSED, label="exposed comm")
    ax.set_xlabel("DDP bucket index (launch order: 0 first)")
    ax.set_ylabel("ms per step (median)")
    ax2 = ax.twinx()
    ax2.plot(x, [b.bytes / 1e6 for b in bs], color="#333333", marker="o", lw=1, label="bucket size")
    ax2.set_ylabel("bucket size (MB)")
    ax2.set_ylim(0, max(b.bytes for b in bs) / 1e6 * 1.3)
    ax.set_title("DDP buckets: communication time and exposure")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.set_ylim(0, max(float(comm.max()), 1e-3) * 1.3)
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left", ncol=3, frameon=False)
    ax.set_xticks(x)
    return to_png(plt, fig)
