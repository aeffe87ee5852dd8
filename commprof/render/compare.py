"""``commprof compare``'s outputs: the terminal text, ``compare.json`` and a self-contained ``compare.html``."""

from __future__ import annotations

from typing import Any

import orjson

from ..analysis.compare import ENV_PREFIX, RANK_FIGURES, Comparison, step_pair
from ..analysis.crossrank.environment import shown
from ..analysis.uncertainty.maths import fmt_band
from ..analysis.uncertainty.verdict import NO_CHANGE, drift_half_pct
from .fmt import num as _n
from .fmt import size as _size
from .safe import WHOLE, plain
from .safe import html_text as h

SCHEMA = "commprof.compare/1"


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def _side(s: Any) -> dict[str, Any]:
    return {"path": s.path, "world_size": s.world_size, "ranks": list(s.ranks), "step_ms": _r(s.step_ms),
            "untraced_step_ms": _r(s.untraced_step_ms), "exposed_comm_ms": _r(s.exposed_comm_ms),
            "exposed_rank": s.exposed_rank, "cycle": s.cycle or None,
            "compute_ms": _r(s.compute_ms)}


def _coll(t: Any) -> dict[str, Any] | None:
    return None if t is None else {"count": _r(t[0]), "bytes": _r(t[1], 0), "time_ms": _r(t[2]),
                                   "busbw_gbps": _r(t[3])}


def as_dict(c: Comparison) -> dict[str, Any]:
    """compare.json's content."""
    return {
        "schema": SCHEMA,
        "before": _side(c.before), "after": _side(c.after), "step_ms_delta": _r(c.step_ms_delta),
        "ranks": [{"rank": r.rank, "before": {k: _r(r.before.get(k)) for k in RANK_FIGURES},
                   "after": {k: _r(r.after.get(k)) for k in RANK_FIGURES}} for r in c.ranks],
        "collectives": [{"op": x.op, "process_group": x.process_group, "lo_bytes": x.lo_bytes, "hi_bytes": x.hi_bytes,
                         "before": _coll(x.before), "after": _coll(x.after)} for x in c.collectives],
        "buckets": [{"index": b.index,
                     "before": None if b.before is None else {"bytes": b.before[0], "comm_ms": _r(b.before[1]),
                                                              "exposed_ms": _r(b.before[2])},
                     "after": None if b.after is None else {"bytes": b.after[0], "comm_ms": _r(b.after[1]),
                                                            "exposed_ms": _r(b.after[2])}} for b in c.buckets],
        "stragglers": [{"rank": s.rank, "status": s.status, "before_mean_late_ms": _r(s.before_late_ms),
                        "after_mean_late_ms": _r(s.after_late_ms),
                        "before_caused_wait_ms": _r(s.before_caused_ms),
                        "after_caused_wait_ms": _r(s.after_caused_ms)} for s in c.stragglers],
        "fsdp_units": [{"unit": u.unit, "before_exposed_ms": u.before, "after_exposed_ms": u.after}
                       for u in c.fsdp_units],
        "settings_changed": [{"name": s.name, "before": s.before, "after": s.after} for s in c.settings_changed],
        "advice_check": [{"knob": a.knob, "value": a.value, "applied": a.applied,
                          "predicted_step_ms": _r(a.predicted_step_ms),
                          "predicted_range_ms": [_r(x) for x in a.predicted_range_ms] if a.predicted_range_ms else None,
                          "inside_range": a.inside, "measured_step_ms": _r(a.measured_step_ms),
                          "error_pct": _r(a.error_pct, 1), "note": a.note} for a in c.advice_check],
        "verdict": _verdict(c),
        "settings_without_visible_effect": list(c.no_effect),
        "notes": list(c.notes),
        "disturbed": [{"side": side.lower(), "noise": how} for side, how in c.disturbed],
    }


def _verdict(c: Comparison) -> dict[str, Any] | None:
    v = c.verdict
    if v is None:
        return None
    return {"change": v.change, "delta_ms": _r(v.delta_ms), "ci_ms": [_r(v.ci_ms[0]), _r(v.ci_ms[1])] if v.ci_ms
            else None, "basis": v.basis, "confidence": v.confidence,
            "runs": {"before": v.runs[0], "after": v.runs[1]}, "drift_sd_pct_assumed": v.drift_sd_pct}


def verdict_line(c: Comparison) -> str | None:
    """The answer in one line: "faster by 12.3 ms (95% interval 8.1 to 16.5 ms)"."""
    v = c.verdict
    if v is None:
        return None
    if v.delta_ms is None:
        return f"Verdict: {v.change} ({v.basis})"
    if v.ci_ms is None:  # no interval: the move cannot be told from noise (compare.json: change as documented)
        return (f"Verdict: none: the mean step moved {v.delta_ms:+.1f} ms after - before, with no interval to judge "
                f"it by ({v.basis})")
    ci = f" ({v.confidence * 100:g}% interval {v.ci_ms[0]:+.1f} to {v.ci_ms[1]:+.1f} ms)" if v.ci_ms else ""
    runs = f", {v.runs[0]} runs before and {v.runs[1]} after" if v.runs != (1, 1) else ""
    line = f"Verdict: {v.change}: mean step {v.delta_ms:+.1f} ms after - before{ci}{runs}"
    if v.drift_sd_pct and v.change == NO_CHANGE:
        floor = drift_half_pct(v.drift_sd_pct, v.confidence)
        ref = c.before.untraced_step_ms or c.before.step_ms
        half = 100.0 * (v.ci_ms[1] - v.ci_ms[0]) / 2 / ref if ref else floor  # this pair's own interval
        spread = " and the runs' own step-to-step spread" if half > 1.2 * floor else ""
        line += (f"; this pair tells only a change beyond ~{max(half, floor):.0f}% of the step (an assumed drift of "
                 f"{v.drift_sd_pct:g}% between runs, --drift-pct{spread}): repeat each setting (--also-before / "
                 "--also-after) to measure the drift and tell smaller changes")
    if c.no_effect:
        line += f"; {', '.join(c.no_effect)} changed nothing the runs can see"
        if v.change != NO_CHANGE:  # then the difference is the runs' own: drift beyond the one assumed or measured
            drift = (f"the {v.drift_sd_pct:g}% drift between runs assumed: repeat each setting (--also-before / "
                     "--also-after) to measure it, or set --drift-pct" if v.runs == (1, 1) else
                     "the drift the repeats measured: repeat each setting more times")
            line += (", so this difference is how far runs of this job land apart here, not the setting's effect, "
                     f"and more than {drift}")
    for side, how in c.disturbed:  # its report's warning: load that stayed through a run moves its mean step
        line += (f"; {side} was disturbed ({how}): a change may be that disturbance's, not the setting's (compare "
                 "runs on a quiet machine, or repeat each setting)")
    return line


def to_json(c: Comparison) -> bytes:
    return orjson.dumps(as_dict(c), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f} ms"


def _ms_of(x: float | None, rank: int | None) -> str:
    return _ms(x) + (f" (rank {rank})" if x is not None and rank is not None else "")


def _straggler(s: Any) -> str:
    """"still there: caused 10.20 -> 2.29 ms of wait per step (late 10.85 -> 2.88 ms)": the amounts beside the
    status (a status alone read "still there" for a rank whose lateness fell to a quarter)."""
    def two(b: float | None, a: float | None) -> str:
        return " -> ".join("-" if x is None else f"{x:.2f}" for x in (b, a))
    return (f"{s.status}: caused {two(s.before_caused_ms, s.after_caused_ms)} ms of wait per step "
            f"(late {two(s.before_late_ms, s.after_late_ms)} ms)")


def _delta(b: float | None, a: float | None, unit: str = " ms") -> str:
    if b is None or a is None:
        return "-"
    pct = f" ({100 * (a - b) / b:+.0f}%)" if b else ""
    return f"{a - b:+.2f}{unit}{pct}"


def headline(c: Comparison) -> list[str]:
    """The answer first: the step before and after, and each advice item's check."""
    where, b, a = step_pair(c.before, c.after)
    lines = [line for line in (verdict_line(c),) if line]
    which = "slowest rank's median" if where == "outside the profiler" else "slowest rank's mean"
    if where == "outside the profiler" and None in (c.before.untraced_steps, c.after.untraced_steps):
        which = "as given with --step-ms" if c.before.untraced_steps is None and c.after.untraced_steps is None \
            else "given with --step-ms on one side, the slowest rank's median on the other"
    lines.append(f"Step ({where}, {which}): {_ms(b)} -> {_ms(a)}, {_delta(b, a)}")
    lines.append("Exposed communication (the most exposed rank's mean step): "
                 f"{_ms_of(c.before.exposed_comm_ms, c.before.exposed_rank)} -> "
                 f"{_ms_of(c.after.exposed_comm_ms, c.after.exposed_rank)}")
    for x in c.advice_check:
        if x.applied:
            err = f", error {x.error_pct:+.1f}%" if x.error_pct is not None else ""
            if x.inside is not None:
                err += ", inside its band" if x.inside else ", OUTSIDE its band"
            lines.append(f"Advice {x.knob} = {plain(x.value)}: applied; predicted "
                         f"{fmt_band(x.predicted_step_ms, x.predicted_range_ms)}, "
                         f"measured {_ms(x.measured_step_ms)}{err}" + (f" ({plain(x.note, WHOLE)})" if x.note else ""))
        else:
            state = "not applied" if x.applied is False else "cannot tell"
            note = f" ({plain(x.note, WHOLE)})" if x.note else ""
            lines.append(f"Advice {x.knob} = {plain(x.value)}: {state}{note}")
    return lines


def _value(name: str, v: object) -> object:
    """A setting's value as shown: an environment variable not set reads "unset" (``crossrank.environment.shown``)."""
    return shown(v) if name.startswith(ENV_PREFIX) and (v is None or isinstance(v, str)) else v


def text(c: Comparison, written: list[str] | None = None) -> str:
    out = ["commprof compare"] + [f"  {k} {plain(x.path)} (world size {x.world_size}{'; ' * bool(x.cycle)}{x.cycle})"
                                  for k, x in (("before:", c.before), ("after: ", c.after))] + [""]
    out += [" " + line for line in headline(c)]
    if c.settings_changed:
        out += ["", "Settings that differ"]
        out += [f"  {s.name}: {plain(_value(s.name, s.before))} -> {plain(_value(s.name, s.after))}"
                for s in c.settings_changed]
    out += ["", "Per rank (the mean of its profiled steps)"]
    labels = {"step_ms": "step", "compute_ms": "compute", "exposed_comm_ms": "exposed comm", "overlap_pct": "overlap %",
              "wait_ms": "wait"}
    for r in c.ranks:
        cells = []
        for k in RANK_FIGURES:
            bv, av = r.before.get(k), r.after.get(k)
            pct = f" ({100 * (av - bv) / bv:+.0f}%)" if k == "step_ms" and bv and av is not None else ""
            cells.append(f"{labels[k]} {_n(bv, 1)} -> {_n(av, 1)}{pct}")
        out.append(f"  rank {r.rank}: " + ", ".join(cells) + " (ms, %)")
    out += ["", "Collectives per rank and step (largest changes in time first)"]
    for x in _largest(c)[:12]:
        bt = x.before[2] if x.before else 0.0
        at = x.after[2] if x.after else 0.0
        out.append(f"  {x.op} pg {plain(x.process_group, 20)} [{_size(x.lo_bytes)}, {_size(x.hi_bytes)}): "
                   f"count {_n(x.before[0] if x.before else None)} -> {_n(x.after[0] if x.after else None)}, "
                   f"time {bt:.2f} -> {at:.2f} ms")
    if c.buckets:
        out += ["", "DDP buckets (bytes, comm ms, exposed ms)"]
        out += [f"  bucket {b.index}: {_bucket(b.before)} -> {_bucket(b.after)}" for b in c.buckets]
    if c.fsdp_units:
        out += ["", "FSDP units: exposed ms per phase, before -> after"]
        for u in c.fsdp_units:
            phases = sorted(set(u.before or {}) | set(u.after or {}))
            cells = [f"{ph} {_n((u.before or {}).get(ph))} -> {_n((u.after or {}).get(ph))}" for ph in phases]
            out.append(f"  {plain(u.unit or '(root)', 30)}: " + "; ".join(cells))
    if c.stragglers:
        out += ["", "Stragglers (as the report's table: the wait each caused per step; late = where it arrived "
                "last, its mean lead on the first rank)"]
        out += [f"  rank {s.rank}: {_straggler(s)}" for s in c.stragglers]
    if c.notes:
        out += ["", "Notes"] + [f"  {plain(n, WHOLE)}" for n in c.notes]
    if written:
        out += ["", f"wrote {', '.join(written)}"]
    return "\n".join(out) + "\n"


def _bucket(t: Any) -> str:
    return "-" if t is None else f"{_size(t[0])}, {_n(t[1])}, {_n(t[2])}"


def _largest(c: Comparison) -> list[Any]:
    return sorted(c.collectives, key=lambda x: -abs((x.after[2] if x.after else 0.0)
                                                    - (x.before[2] if x.before else 0.0)))


def plots(c: Comparison) -> dict[str, bytes]:
    """The two breakdowns side by side, and the largest collective time changes."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    from .plot.figure import COMPUTE, EXPOSED, LESS, MORE, OTHER, to_png
    from .plot.scale import PLOT_RANKS_MAX, rank_areas

    out: dict[str, bytes] = {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110, sharey=True, sharex=True)
    for ax, which, title in ((axes[0], "before", "before"), (axes[1], "after", "after")):
        rows = [(r.rank, getattr(r, which)) for r in c.ranks if getattr(r, which).get("step_ms") is not None]
        if len(rows) > PLOT_RANKS_MAX:  # a few areas, not three bars per rank
            parts = np.array([[f["compute_ms"] or 0.0, f["exposed_comm_ms"] or 0.0, f["step_ms"] or 0.0]
                              for _r, f in rows])
            other = np.maximum(parts[:, 2] - parts[:, 0] - parts[:, 1], 0.0)
            rank_areas(ax, [r for r, _f in rows], ((parts[:, 0], COMPUTE), (parts[:, 1], EXPOSED), (other, OTHER)))
            ax.set_title(title)
            ax.set_xlabel("ms (mean step)")
            continue
        for i, (_rank, f) in enumerate(rows):
            # step = compute (overlapped included) + exposed communication + other
            comp, exp, step = f["compute_ms"] or 0.0, f["exposed_comm_ms"] or 0.0, f["step_ms"] or 0.0
            left = 0.0
            for width, color in ((comp, COMPUTE), (exp, EXPOSED), (max(step - comp - exp, 0.0), OTHER)):
                ax.barh(i, width, left=left, color=color)
                left += width
        ax.set_yticks(range(len(rows)), [f"rank {r}" for r, _ in rows])
        if ax is axes[0]:
            ax.invert_yaxis()  # rank 0 at the top, as in the report (the axes are shared)
        ax.set_title(title)
        ax.set_xlabel("ms (mean step)")
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=COMPUTE, label="compute"), Patch(color=EXPOSED, label="exposed comm"),
                        Patch(color=OTHER, label="other")], loc="lower center", ncol=3, fontsize=8, frameon=False)
    out["compare_breakdown"] = to_png(plt, fig, (0, 0.07, 1, 1))
    top = _largest(c)[:10]
    if top:
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(top) + 1.2), dpi=110)
        deltas = [(x.after[2] if x.after else 0.0) - (x.before[2] if x.before else 0.0) for x in top]
        labels = [f"{x.op} [{_size(x.lo_bytes)}, {_size(x.hi_bytes)})" for x in top]
        ax.barh(range(len(top)), deltas, color=[MORE if d > 0 else LESS for d in deltas])
        ax.set_yticks(range(len(top)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0, color="#444", lw=0.8)
        ax.set_xlabel("time per rank and step, after − before (ms)")
        ax.set_title("Largest changes in collective time (brown: more, teal: less)", fontsize=9)
        out["compare_collectives"] = to_png(plt, fig)
    return out


def html(c: Comparison, pngs: dict[str, bytes]) -> str:
    import base64

    from .style import CSS

    d = as_dict(c)
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>commprof compare</title><style>{CSS}</style></head><body><main>",
             "<h1>commprof compare</h1>",
             f"<div class='sub'>before: {h(c.before.path)} {h(c.before.cycle)} · after: {h(c.after.path)} "
             f"{h(c.after.cycle)}</div>",
             "<h2>Did it help?</h2>"]
    parts += [f"<div class='finding sev-info'>{h(line, WHOLE)}</div>" for line in headline(c)]  # never cut a verdict
    if c.settings_changed:
        parts.append("<h2>Settings that differ</h2><table><tr><th>setting</th><th>before</th><th>after</th></tr>")
        parts += [f"<tr><td>{h(s.name)}</td><td>{h(_value(s.name, s.before))}</td>"
                  f"<td>{h(_value(s.name, s.after))}</td></tr>" for s in c.settings_changed]
        parts.append("</table>")
    parts.append("<h2>Plots</h2>")
    for name, png in pngs.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<img id="plot-{name}" alt="{h(name)}" src="data:image/png;base64,{data}">')
    parts.append("<h2>Per rank (mean step)</h2><table><tr><th>rank</th>"
                 + "".join(f"<th>{h(k)} before</th><th>after</th>" for k in RANK_FIGURES) + "</tr>")
    for r in d["ranks"]:
        parts.append(f"<tr><td>{r['rank']}</td>" + "".join(
            f"<td class='n'>{_n(r['before'][k])}</td><td class='n'>{_n(r['after'][k])}</td>" for k in RANK_FIGURES)
            + "</tr>")
    parts.append("</table><h2>Collectives (per rank and step)</h2><table><tr><th>op</th><th>group</th><th>bin</th>"
                 "<th>count before</th><th>after</th><th>ms before</th><th>after</th><th>busbw before</th>"
                 "<th>after</th></tr>")
    for x in d["collectives"]:
        b, a = x["before"] or {}, x["after"] or {}
        parts.append(f"<tr><td>{h(x['op'])}</td><td>{h(x['process_group'])}</td>"
                     f"<td>[{_size(x['lo_bytes'])}, {_size(x['hi_bytes'])})</td>"
                     + "".join(f"<td class='n'>{_n(v.get(k))}</td>" for k in ("count", "time_ms", "busbw_gbps")
                               for v in (b, a)) + "</tr>")
    parts.append("</table>")
    parts += _buckets_html(d["buckets"])
    if c.notes:
        parts.append("<h2>Notes</h2><ul class='warn'>" + "".join(f"<li>{h(n, WHOLE)}</li>" for n in c.notes)
                     + "</ul>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _buckets_html(rows: list[dict[str, Any]]) -> list[str]:
    """The DDP buckets before and after (bytes, comm ms, exposed ms), in launch order."""
    if not rows:
        return []
    parts = ["<h2>DDP buckets (launch order)</h2><table data-commprof='table-buckets'><thead><tr><th>bucket</th>"
             "<th>bytes before</th><th>after</th><th>comm ms before</th><th>after</th><th>exposed ms before</th>"
             "<th>after</th></tr></thead><tbody>"]
    for b in rows:
        bf, af = b["before"] or {}, b["after"] or {}
        parts.append(f"<tr><td class='n'>{b['index']}</td>"
                     f"<td class='n'>{_size(bf.get('bytes'))}</td><td class='n'>{_size(af.get('bytes'))}</td>"
                     + "".join(f"<td class='n'>{_n(v.get(k))}</td>" for k in ("comm_ms", "exposed_ms")
                               for v in (bf, af)) + "</tr>")
    parts.append("</tbody></table>")
    return parts
