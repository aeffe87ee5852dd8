"""A monitored job in the report: the hang verdict (first, in the terminal and the HTML), slow ranks as step
ranges, and a plot of each rank's lateness over the steps.  Also the report of a folder that holds only the
monitor's files (``python -m commprof report monitor/``)."""

from __future__ import annotations

from typing import Any

import orjson

from ..._version import __version__
from ...analysis.crossrank.environment import apart_sentence
from ...analysis.production.diagnosis import MonitorReport
from ...analysis.production.hang import Hang, place
from ...analysis.production.slowdown import MAX_GAP, MIN_STEPS, SlowRange
from ...formats.files import SUMMARY_SCHEMA as SCHEMA
from ...model import FREntry
from ...numlist import number_list
from ..plot.figure import EXPOSED, new_figure, to_png
from ..safe import WHOLE, plain
from ..safe import html_text as h


def _entry(e: FREntry | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {"seq": e.seq, "op": e.op, "process_group": e.pg, "input_sizes": [list(s) for s in e.input_sizes],
            "input_dtypes": list(e.input_dtypes), "call": e.signature()}


def hang_dict(hang: Hang | None) -> dict[str, Any] | None:
    if hang is None:
        return None
    return {"culprit_ranks": list(hang.culprit_ranks), "text": hang.text, "kind": hang.kind,
            "collective": _entry(hang.collective),
            "ranks": [{"rank": s.rank, "status": s.status, "reason": s.reason, "step": s.step,
                       "last_completed": _entry(s.last_completed), "pending": _entry(s.pending),
                       "where": place(s.where) if s.where is not None else None,
                       **({"env": dict(s.env)} if s.env is not None else {})} for s in hang.ranks]}


def monitor_dict(m: MonitorReport) -> dict[str, Any]:
    sd = m.slowdown
    return {"ranks": [{"rank": r.rank, "steps": len(r.steps), "first_step": r.steps[0][0] if r.steps else None,
                       "last_step": r.steps[-1][0] if r.steps else None, "flight_recorder_lost": r.lost,
                       **({"env": dict(r.env)} if r.env is not None else {})}
                      for r in m.run.ranks],
            "stragglers": [] if sd is None else [{"rank": x.rank, "first_step": x.first_step,
                                                  "last_step": x.last_step, "mean_late_ms": round(x.mean_late_ms, 3),
                                                  "slow_steps": x.slow_steps, "stall": x.stall,
                                                  "period_steps": x.period}
                                                 for x in sd.ranges],
            "threshold_ms": None if sd is None else round(sd.threshold_ms, 3),
            "reference_rank": None if sd is None else sd.reference_rank,
            "clock_offsets_ms": {} if sd is None else {str(k): round(v / 1e6, 3) for k, v in sd.offsets_ns.items()},
            "collective_instances": 0 if sd is None else sd.instances,
            "warnings": list(m.run.warnings)}


def _range_text(x: SlowRange, threshold_ms: float) -> str:
    if x.period is not None:
        stalls = " (stalls: over 3 median steps and 1 s late)" if x.stall else ""
        return (f"was late every {x.period} steps, {x.slow_steps} times (steps {number_list(x.steps, limit=6)}"
                f"){stalls}: it issued its collectives {x.mean_late_ms:.1f} ms after the first rank on average in "
                f"those: work it does every {x.period} steps that the others wait for (a checkpoint, an evaluation, "
                "logging): make it asynchronous, spread it over the ranks, or do it less often.")
    if x.stall:
        at = f"step {x.first_step}" if x.first_step == x.last_step else f"steps {x.first_step}-{x.last_step}"
        return (f"stalled at {at}: it issued its collectives {x.mean_late_ms:.1f} ms after the first rank"
                + ("." if x.first_step == x.last_step else " on average in those."))
    return (f"was slow in {x.slow_steps} of steps {x.first_step}-{x.last_step}: it issued its collectives "
            f"{x.mean_late_ms:.1f} ms after the first rank on average in those (threshold {threshold_ms:.1f} ms).")


def lines(m: MonitorReport) -> list[str]:
    """The terminal's lines: the hang verdict first, then slow ranks."""
    out: list[str] = []
    if m.hang is not None:
        culprits = ", ".join(map(str, m.hang.culprit_ranks)) or "none named"
        head = "STALL" if m.hang.kind == "stall" else f"HANG ({m.hang.kind};"
        head = f"{head} (culprit ranks: {culprits})" if m.hang.kind == "stall" else f"{head} culprit ranks: {culprits})"
        out += [f" !! {head}: {plain(m.hang.text, WHOLE)}"]
        for s in m.hang.ranks:
            pend = f", pending {s.pending.signature()} #{s.pending.seq}" if s.pending is not None else ""
            where = f", {place(s.where)}" if s.where is not None else ""
            out.append(f"    rank {s.rank}: {s.status}{(' (' + plain(s.reason, 120) + ')') if s.reason else ''}"
                       f"{pend}{plain(where, 200)}")
    sd = m.slowdown
    if sd is not None and m.run.ranks:
        steps = sum(len(r.steps) for r in m.run.ranks) // max(len(m.run.ranks), 1)
        if sd.ranges:
            envs = {r.rank: r.env for r in m.run.ranks if r.env is not None}
            for x in sd.ranges:
                out.append(f" !  Rank {x.rank} {_range_text(x, sd.threshold_ms)}"
                           f"{plain(apart_sentence(x.rank, envs), 1000)}")
        else:
            out.append(f"    No rank was slow over the {steps} monitored steps (lateness above {sd.threshold_ms:.1f} "
                       f"ms in {MIN_STEPS} steps or more, at most {MAX_GAP} apart, adding up to a median step; or "
                       "one stall).")
    out += [f"    warning: {plain(w, WHOLE)}" for w in m.run.warnings]
    return out


STALL_SCALE = 50.0  # lateness this many times the threshold flattens every other step on a linear axis


def lateness_plot(m: MonitorReport) -> bytes | None:
    sd = m.slowdown
    if sd is None or not sd.series:
        return None
    from ..plot.scale import PLOT_RANKS_MAX, lateness_many

    if len(sd.series) > PLOT_RANKS_MAX:  # a line and a legend entry per rank: a band for most of them
        return lateness_many(sd)
    plt, fig, ax = new_figure(10, 3.4)
    for s in sd.series:
        ax.plot(s.steps, s.late_ms, lw=1, label=f"rank {s.rank}")
    for a, b in (span for x in sd.ranges for span in x.spans()):
        ax.axvspan(a, b, color=EXPOSED, alpha=0.12)
    ax.axhline(sd.threshold_ms, color="#444", lw=0.8, ls="--", label="threshold")
    ax.set_xlabel("step")
    ax.set_ylabel("late (ms)")
    top = max((max(s.late_ms, default=0.0) for s in sd.series), default=0.0)
    if top > STALL_SCALE * max(sd.threshold_ms, 1.0):  # a 10 s stall beside ms of lateness: log above the threshold
        ax.set_yscale("symlog", linthresh=max(sd.threshold_ms, 1.0))
        ax.set_ylim(bottom=0.0)  # lateness is never negative
        ax.set_ylabel(f"late (ms; log above {max(sd.threshold_ms, 1.0):.3g})")
    ax.set_title("How late each rank issued its collectives (shaded: slow ranges)", fontsize=9)
    ax.legend(fontsize=7, ncol=min(len(sd.series) + 1, 6))
    return to_png(plt, fig)


def html_section(m: MonitorReport, png: bytes | None) -> list[str]:
    import base64

    parts = ["<h2 id='hang'>Production monitor</h2>"]
    if m.hang is not None:
        what = "<b>Stall</b>" if m.hang.kind == "stall" else f"<b>Hang</b> ({h(m.hang.kind)})"
        parts.append(f"<div class='finding sev-high'>{what}: {h(m.hang.text, WHOLE)}</div>")
        parts.append("<table><tr><th>rank</th><th>status</th><th>pending</th><th>last completed</th>"
                     "<th>where</th></tr>")
        for s in m.hang.ranks:
            pend = f"{s.pending.signature()} #{s.pending.seq}" if s.pending is not None else "-"
            last = f"{s.last_completed.op} #{s.last_completed.seq}" if s.last_completed is not None else "-"
            parts.append(f"<tr><td>{s.rank}</td><td>{h(s.status)}</td><td>{h(pend)}</td><td>{h(last)}</td>"
                         f"<td>{h(place(s.where) if s.where else '-', 600)}</td></tr>")
        parts.append("</table>")
    for line in lines(m):
        if not line.startswith((" !! HANG", " !! STALL", "    rank")):  # the verdict and its table are above
            parts.append(f"<div class='finding sev-medium'>{h(line.strip().lstrip('! '), 1000)}</div>")
    if png is not None:
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<img id="plot-lateness" alt="lateness per rank and step" src="data:image/png;base64,{data}">')
    return parts


def summary_only(m: MonitorReport) -> dict[str, Any]:
    """summary.json of a folder with the monitor's files only (the stable keys, empty where traces would fill them)."""
    backends = sorted({r.backend for r in m.run.ranks if r.backend})
    return {"schema": SCHEMA, "commprof_version": __version__, "trace_dir": m.run.path,
            "world_size": m.run.world_size, "backend": ",".join(backends) or "unknown", "ranks": [],
            "collectives": [], "buckets": [], "stragglers": [], "advice": [], "hang": hang_dict(m.hang),
            "monitor": monitor_dict(m), "warnings": list(m.run.warnings)}


def json_only(m: MonitorReport) -> bytes:
    return orjson.dumps(summary_only(m), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)


def text_only(m: MonitorReport, written: list[str]) -> str:
    head = [f"commprof  {plain(m.run.path, 4000)}",
            f"monitor files of {len(m.run.ranks)} rank(s), {len(m.run.hangs)} hang dump(s), "
            f"{len(m.run.crashes)} crash record(s); world size {m.run.world_size}", ""]
    import textwrap

    tail = ["", f"wrote {', '.join(written)}"] if written else []
    body = [textwrap.fill(line, 100, subsequent_indent="      ", break_long_words=False, break_on_hyphens=False)
            for line in lines(m)]
    return "\n".join(head + body + tail) + "\n"


def html_only(m: MonitorReport, png: bytes | None) -> str:
    from ..style import CSS

    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>commprof report: {h(m.run.path)}</title><style>{CSS}</style></head><body><main>",
             f"<h1>commprof report</h1><div class='sub'>{h(m.run.path)} · monitor files</div>"]
    parts += html_section(m, png)
    parts.append(f"<p class='sub'>commprof {h(__version__)}</p></main></body></html>")
    return "\n".join(parts)


# ---- the view's hooks (render/views.py) ----------------------------------------------------------------------


def report_json(rep: Any) -> dict[str, Any]:
    m = rep.monitor
    return {"hang": hang_dict(m.hang) if m is not None else None, "monitor": monitor_dict(m) if m is not None else None}


def lead_text(rep: Any, sec: Any) -> list[str]:
    """A hang is the first thing to say."""
    return lines(sec.detail)


def lead_html(rep: Any, sec: Any, plots: dict[str, bytes]) -> list[str]:
    return html_section(sec.detail, plots.get("lateness"))


def plots(rep: Any, sec: Any) -> dict[str, bytes]:
    png = lateness_plot(sec.detail)
    return {} if png is None else {"lateness": png}
