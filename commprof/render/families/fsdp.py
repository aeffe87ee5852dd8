"""FSDP2 in the report: ``fsdp`` in summary.json, a units table in the terminal and the HTML report, and a per-unit
timeline of one step (``fsdp.png``)."""

from __future__ import annotations

from typing import Any

from ...analysis.fsdp.advice import FSDPAnalysis
from ...analysis.fsdp.units import AG, AR, BWD_AG, RS, phase_windows
from ..fmt import num as _n
from ..fmt import size as _size
from ..plot.figure import COMM, COMPUTE, EXPOSED, new_figure, to_png
from ..safe import html_text as h
from ..safe import plain

PHASES = (AG, BWD_AG, RS, AR)


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def as_dict(f: FSDPAnalysis | None) -> dict[str, Any] | None:
    if f is None:
        return None
    r = f.report
    return {
        "rank": r.rank, "source": "sidecar" if r.settings is not None else "trace",
        "passes_per_step": r.passes_per_step,
        "units": [{"unit": u.unit, "unsharded_bytes": u.unsharded_bytes,
                   "reshard_after_forward": u.reshard_after_forward, "fwd_compute_ms": _r(u.fwd_compute_ms),
                   "bwd_compute_ms": _r(u.bwd_compute_ms),
                   "copy_out_ms": _r(u.copy_out_ms),
                   "phases": {ph: {"bytes": p.bytes, "ms": _r(p.transfer_ms), "exposed_ms": _r(p.exposed_ms),
                                   "hidden_by": p.hidden_by} for ph, p in u.phases.items()}} for u in r.units],
        "first_allgather_exposed_ms": _r(r.first_exposed_ms), "reduce_scatter_queued_ms": _r(r.rs_queued_ms),
        "peak_unsharded_bytes": r.peak_unsharded_bytes, "measured_peak_bytes": f.measured_peak_bytes,
        "measured_max_bytes": f.measured_max_bytes,
        "model_check": None if f.step_model_ms is None else {
            "step_model_ms": _r(f.step_model_ms), "step_measured_ms": _r(f.step_measured_ms),
            "error_pct": _r(f.error_pct, 1)},
        "baseline_step_ms": _r(f.baseline_step_ms), "step_now_ms": _r(f.step_now_ms),
        "whatif": [{"knob": w.knob, "value": w.value, "predicted_step_ms": _r(w.step_ms),
                    "predicted_range_ms": [_r(w.range_ms[0]), _r(w.range_ms[1])] if w.range_ms else None,
                    "predicted_peak_unsharded_bytes": w.peak_unsharded_bytes,
                    "predicted_peak_memory_bytes": w.peak_memory_bytes,
                    "predicted_peak_memory_range_bytes": list(w.peak_memory_range_bytes)
                    if w.peak_memory_range_bytes else None} for w in f.whatifs],
        "notes": list(r.notes),
    }


def _cell(u: Any, ph: str) -> str:
    if ph not in u.phases:
        return "-"
    p = u.phases[ph]
    return f"{p.transfer_ms:.1f} ({p.exposed_ms:.1f})"


def _phases(f: FSDPAnalysis) -> list[str]:
    return [ph for ph in PHASES if any(ph in u.phases for u in f.report.units)]


def head(f: FSDPAnalysis) -> list[str]:
    short = {AG: "AG fwd", BWD_AG: "AG bwd", RS: "RS", AR: "AR (HSDP)"}
    return ["unit", "unsharded", "reshard", "fwd ms", "bwd ms"] + [short[p] for p in _phases(f)]


def rows(f: FSDPAnalysis) -> list[list[str]]:
    """Per unit: name, unsharded size, forward / backward compute, each phase's transfer (exposed) in ms."""
    return [[plain(u.unit or "(root)", 30), _size(u.unsharded_bytes), "yes" if u.reshard_after_forward else "no",
             _n(u.fwd_compute_ms, 1), _n(u.bwd_compute_ms, 1)] + [_cell(u, ph) for ph in _phases(f)]
            for u in f.report.units]


def check_text(f: FSDPAnalysis) -> str:
    if f.error_pct is None:
        return ""
    one = "step" if f.report.passes_per_step == 1 else "micro-batch"
    what = one if one == "step" else "micro-batch (forward/backward pass)"
    return (f"FSDP model check (rank {f.report.rank}): replaying the traced settings gives {f.step_model_ms:.1f} ms "
            f"on the profiled {what} nearest the mean against {f.step_measured_ms:.1f} ms measured that {one} "
            f"({f.error_pct:+.1f}%).")


def timeline(f: FSDPAnalysis, rt: Any) -> bytes | None:
    """One step (the median one) of the modeled rank: per unit its forward and backward windows, its collectives'
    flights, and in red the part of each that no compute hid."""
    steps = sorted(f.report.steps, key=lambda s: s.end_ns - s.start_ns)
    if not steps:
        return None
    s = steps[(len(steps) - 1) // 2]
    wins = phase_windows(rt.fsdp, s.start_ns, s.end_ns)
    names = [u.unit for u in s.units]
    plt, fig, ax = new_figure(10, 0.38 * len(names) + 1.6)
    for i, u in enumerate(s.units):
        for key in (f"fwd:{u.unit}", f"bwd:{u.unit}"):
            if key in wins:
                a, b = wins[key]
                ax.barh(i, (b - a) / 1e6, left=(a - s.start_ns) / 1e6, height=0.8, color=COMPUTE, alpha=0.35)
        for p in u.phases:
            ax.barh(i, (p.end_ns - p.issue_ns) / 1e6, left=(p.issue_ns - s.start_ns) / 1e6, height=0.4, color=COMM)
            if p.exposed_ns:
                ax.barh(i, p.exposed_ns / 1e6, left=(p.end_ns - p.exposed_ns - s.start_ns) / 1e6, height=0.4,
                        color=EXPOSED)
    ax.set_yticks(range(len(names)), [n or "(root)" for n in names], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(f"ms from the start of step {s.step} (rank {f.report.rank})")
    ax.set_title("FSDP units: forward / backward (light), collectives issue to end (orange), exposed (red)",
                 fontsize=9)
    return to_png(plt, fig)


def html_section(f: FSDPAnalysis, png: bytes | None) -> list[str]:
    import base64

    parts = ["<h2 id='fsdp'>FSDP2 units</h2>", "<table data-commprof='table-fsdp'><thead><tr>"
             + "".join(f"<th>{c}</th>" for c in head(f)) + "</tr></thead><tbody>"]
    for row in rows(f):
        parts.append("<tr>" + "".join(f"<td class='n'>{h(c)}</td>" for c in row) + "</tr>")
    parts.append("</tbody></table><p class='sub'>Each collective: transfer ms (exposed ms), median over the profiled "
                 f"steps of rank {f.report.rank}. Peak unsharded parameters: "
                 + (f"{_size(f.report.peak_unsharded_bytes)}.</p>" if f.report.gathered
                    else "not measured (no all-gather matched in the profiled steps).</p>"))
    if check_text(f):
        parts.append(f"<div class='finding sev-info'>{h(check_text(f), 600)}</div>")
    if f.whatifs:
        parts.append("<table><tr><th>what-if</th><th>predicted step ms</th><th>peak unsharded</th>"
                     "<th>predicted peak memory</th></tr>")
        parts += [f"<tr><td>{h(w.knob)} = {h(w.value)}</td><td class='n'>{w.step_ms:.1f}</td>"
                  f"<td class='n'>{_size(w.peak_unsharded_bytes)}</td><td class='n'>"
                  f"{_size(w.peak_memory_bytes) if w.peak_memory_bytes else '-'}</td></tr>" for w in f.whatifs]
        parts.append("</table>")
    if png is not None:
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<img id="plot-fsdp" alt="FSDP units over one step" src="data:image/png;base64,{data}">')
    return parts


# ---- the view's hooks (render/views.py) ----------------------------------------------------------------------


def report_json(rep: Any) -> dict[str, Any]:
    return {"fsdp": as_dict(rep.fsdp)}


def text(con: Any, rep: Any, s: dict[str, Any]) -> None:
    from rich.text import Text

    from ..tables import MAX_ROWS, table

    f = rep.fsdp
    per = "" if f.report.passes_per_step == 1 else f", per micro-batch: {f.report.passes_per_step} per step"
    t = table(f"FSDP2 units (rank {f.report.rank}; collectives: transfer ms (exposed ms), median{per})", head(f),
              left=("unit",))
    for row in rows(f)[:MAX_ROWS * 2]:
        t.add_row(*row)
    con.print(t)
    if check_text(f):
        con.print(Text(f"    {check_text(f)}"))
    con.print()


def html(rep: Any, s: dict[str, Any], plots: dict[str, bytes]) -> list[str]:
    return html_section(rep.fsdp, plots.get("fsdp"))


def plots(rep: Any, sec: Any) -> dict[str, bytes]:
    rt = next(r for r in rep.run.ranks if r.rank == rep.fsdp.report.rank)
    png = timeline(rep.fsdp, rt)
    return {} if png is None else {"fsdp": png}
