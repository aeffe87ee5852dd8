"""A self-contained ``report.html``: inline CSS, plots embedded as data URIs, no network access.
Every string that comes from a trace goes through ``html_text``."""

from __future__ import annotations

from typing import Any

from ..analysis.analyze import Report
from ..analysis.overlap import most_exposed
from ..analysis.uncertainty.maths import fmt_band
from .fmt import first_warnings, step_now_note
from .fmt import num as _n
from .fmt import size as _fmt_bytes
from .safe import WHOLE
from .safe import html_text as h
from .style import CSS
from .summary import summary
from .tables import HTML_END as _END
from .tables import SUMMED_NOTE
from .tables import html_head as _head
from .tables import html_img as _img
from .tables import html_row as _row
from .views import shown

GLOSSARY = [
    ("compute", "GPU traces: kernels that are not communication, union over all streams. CPU-only (gloo) "
                "traces: CPU operators on the training threads, minus collective bookkeeping (c10d::*, "
                "record_param_comms) and blocking waits."),
    ("comm", "GPU: kernels that move data between ranks, union over all streams: NCCL/RCCL/MSCCL and the libraries "
             "that bypass NCCL (DeepEP, NVSHMEM, symmetric memory, custom all-reduce kernels, userbuffers, MSCCL++, "
             "oneCCL), and any given with --comm-kernel; 'via' in the collectives table names the rule that matched. "
             "gloo: the transfer events (gloo:*) on the backend's worker threads."),
    ("overlapped", "|comm ∩ compute|: communication hidden behind compute."),
    ("overlap %", "overlapped / comm (HTA's and TensorBoard's definition); summary.json also gives it over the whole "
                  "analyzed window (window.overlap_pct) and over HTA's window (overlap_pct_hta_window)."),
    ("exposed comm", "comm − overlapped: communication time that nothing hides; the step waits for it."),
    ("other", "step time − |compute ∪ comm|: idle, host overhead, data loading, memcpy."),
    ("bytes", "max(input, output elements) × element size of each collective (record_param_comms, else "
              "Input Dims × dtype)."),
    ("algbw / busbw", "algbw = bytes / kernel time; busbw = algbw × nccl-tests factor (all-reduce 2(n−1)/n; "
                      "all-gather, reduce-scatter, all-to-all (n−1)/n; others 1). Kernel time includes "
                      "waiting for late ranks, so these are lower bounds."),
    ("wait", "per rank and step: the union over collectives of [this rank's arrival, last rank's arrival] "
             "(arrival: NCCL kernel start, or the CPU call for gloo), on clocks aligned by the collectives' "
             "common end times."),
    ("transfer time, α, β", "from the moment every rank had started a collective to its end (waits removed; "
                            "overlapping transfers share the link); t = α + bytes/β fitted per op and group."),
    ("advice", "predicted by replaying the backward pass: DDP's re-bucketing in gradient-ready order, one "
               "collective at a time on the channel, the run's own α and β; compute-side times calibrated to the "
               "step time measured outside the profiler."),
    ("straggler", "a rank that arrives last at a collective, more than the threshold after the first."),
    ("per step", "each rank's figures are the mean over its analyzed steps, outlier steps (a one-off stall) left out "
                 "and named, with the median and range beside them; means add up: comm = overlapped + exposed, step = "
                 "compute only + overlapped + exposed + other, overlap % = overlapped / comm. A step's window runs "
                 "from where the previous one ended to where its own work ended (its ProfilerStep's end, or later "
                 "where GPU work it launched ran past it); the windows tile the timeline. Counts and bytes belong to "
                 "the step whose CPU side issued them. summary.json's step_spread gives each rank's median and range. "
                 "A last step cut by the end of the recording is left out."),
]




def render(rep: Report, plots: dict[str, bytes] | None = None, merged_name: str | None = None) -> str:
    """The page; ``plots``: the PNGs by name (``plots.all_plots``), drawn here when not given; ``merged_name``: the
    merged Perfetto trace written beside it, linked from the timeline."""
    from .timeline.page import css, table_script, timeline_section

    if plots is None:
        from .plot.plots import all_plots

        plots = all_plots(rep)
    s = summary(rep)
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
             f"<title>commprof report: {h(rep.run.path)}</title><style>{CSS}{css()}</style></head><body><main>",
             f"<h1>commprof report</h1><div class='sub'>{h(rep.run.path)} · world size {s['world_size']} · "
             f"backend {h(s['backend'])} · devices: {h(', '.join(s['devices']) or '-')}</div>",
             *(f"<div class='sub note'>{h(n, WHOLE)}</div>" for n in s["notes"]),
             # a disturbed traced run, a profiler that slowed its steps: first, as in the text (also under Warnings)
             *(f"<div class='sub note first'>!! {h(w, WHOLE)}</div>" for w in first_warnings(rep.warnings))]
    for lead, sec in shown(rep, "lead_html"):  # a hang is the first thing to say
        parts.extend(lead(rep, sec, plots))
    for part in (_cards, _findings):
        parts.extend(part(rep, s, plots))
    parts.extend(timeline_section(rep, merged_name))
    for part in (_plots, _ranks, _collectives, _bandwidth):
        parts.extend(part(rep, s, plots))
    for draw, _sec in shown(rep, "html"):
        parts.extend(draw(rep, s, plots))
    for part in (_stragglers, _warnings):
        parts.extend(part(rep, s, plots))
    parts.append("<h2>Glossary</h2><dl>" + "".join(f"<dt>{h(k)}</dt><dd>{h(v, 2000)}</dd>" for k, v in GLOSSARY)
                 + "</dl>")
    parts.append(f"<p class='sub'>commprof {h(s['commprof_version'])}</p></main>{table_script()}</body></html>")
    return "\n".join(parts)


def _cards(rep: Report, s: dict[str, Any], plots: dict[str, bytes]) -> list[str]:
    """One rank's mean step, so that the cards add up: the most exposed rank, as the text's exposed-communication
    finding (the middle rank's figures beside the text's read as two answers: Megatron's rank 7 against rank 4),
    chosen from the same unrounded figures."""
    ranks = [r for r in s["ranks"] if r["median_step"] is not None]
    if not ranks:
        return ["<div class='cards'>", _card(str(len(s["ranks"])), "ranks analyzed"), "</div>"]
    by_rank = {r["rank"]: r for r in ranks}
    exact = {o.rank: o.representative.exposed_ns for o in rep.overlaps if o.representative is not None}
    r = by_rank[most_exposed({k: exact.get(k, v["exposed_comm_ms"] * 1e6) for k, v in by_rank.items()})]
    share = 100 * r["exposed_comm_ms"] / r["step_ms"] if r["step_ms"] else 0.0
    sp = r.get("step_spread") or {}
    n = sp.get("steps", r["steps"])
    where = (f"rank {r['rank']}, the mean of {n} steps; median {sp.get('median_ms', 0):.2f}, range "
             f"{sp.get('min_ms', 0):.2f}-{sp.get('max_ms', 0):.2f}" if n > 1 else f"rank {r['rank']}, one step")
    # the most exposed rank is often the one that waits for a slow rank: said where waits are most of it
    wait = r.get("wait_ms") or 0.0
    waits = (f"; {wait:.2f} ms of its comm waits for later ranks: see who holds the job back"
             if wait >= 0.5 * r["exposed_comm_ms"] > 0 else "")
    return ["<div class='cards'>",
            _card(f"{r['step_ms']:.2f} ms", f"step time ({where})"),
            _card(f"{r['exposed_comm_ms']:.2f} ms",
                  f"exposed comm (rank {r['rank']}, {share:.0f}% of its step{waits})"),
            _card(f"{r['overlap_pct']:.1f}%", f"of rank {r['rank']}'s {r['comm_ms']:.2f} ms comm overlapped"),
            _card(_fmt_bytes(r["comm_bytes_per_step"]), f"communicated by rank {r['rank']} in a step"),
            _card(str(len(s["ranks"])), "ranks analyzed"),
            "</div>"]


def _findings(rep: Report, s: dict[str, Any], plots: dict[str, bytes]) -> list[str]:
    parts = ["<h2>Findings and advice</h2>"]
    if not rep.findings and not rep.advice:
        parts.append("<p>Nothing stands out.</p>")
    for f in rep.findings:
        parts.append(f"<div class='finding sev-{h(f.severity)}'>{h(f.text, WHOLE)}</div>")
    for a in rep.advice:
        parts.append(f"<div class='finding sev-high'><b>Set {h(a.setting())}</b>: "
                     f"{a.baseline_step_ms:.1f} → {h(fmt_band(a.predicted_step_ms, a.predicted_range_ms))} per step. "
                     f"{h(a.why, WHOLE)}</div>")
    for note, sec in shown(rep, "note"):
        text = note(rep, sec)
        if text:
            parts.append(f"<div class='finding sev-info' id='model-check'>{h(text, WHOLE)}</div>")
    return parts


def _plots(rep: Report, s: dict[str, Any], plots: dict[str, bytes]) -> list[str]:
    parts = []
    if "breakdown" in plots:
        parts.append("<h2>Per-rank breakdown</h2>" + _img("breakdown", plots["breakdown"],
                                                          "stacked bars of compute, overlapped, exposed, other"))
    if "timeline" in plots:
        parts.append("<h2>One step, every rank</h2>" + _img("timeline", plots["timeline"], "timeline of one step"))
    if "stragglers" in plots:
        parts.append("<h2>Who waits for whom</h2>" + _img("stragglers", plots["stragglers"],
                                                        "heatmap of wait per rank and collective"))
    if "whatif" in plots:
        parts.append("<h2>What-if predictions</h2>" + _img("whatif", plots["whatif"],
                                                         "predicted step time for each candidate setting")
                     + f"<p class='note'>{h(WHATIF_NOTE)}</p>")
    return parts


WHATIF_NOTE = ("Each band: where the measured step of that setting should fall. The traced setting's band is "
               "the same job measured again, so it carries the drift between runs (assumed: --drift-pct); a "
               "changed setting's carries the model's error, measured on runs that drift little, so it can be the "
               "narrower of the two (docs/advisor.md, 'The traced settings' band against the others').")


def _ranks(rep: Report, s: dict[str, Any], plots: dict[str, bytes]) -> list[str]:
    parts = ["<h2>Per rank: the mean of its analyzed steps, ms</h2>" + _head(
        ("rank", "step", "compute", "comm", "overlapped", "exposed", "other", "overlap %", "wait", "bytes/step",
         "unprofiled step"), name="ranks")]
    from .spreads import KEYS, cell, rank_spreads

    spreads = {o.rank: rank_spreads(o) for o in rep.overlaps}
    for r in s["ranks"]:
        sp = spreads.get(r["rank"], {})
        figs = "".join(cell(r[key], sp.get(col)) for col, key in KEYS.items() if col != "overlap %")
        pct = cell(r["overlap_pct"], sp.get("overlap %"), nd=1, unit="%")
        rest = "".join(f"<td class='n'>{v}</td>" for v in (_n(r["wait_ms"]), h(_fmt_bytes(r["comm_bytes_per_step"])),
                                                           _n(r["step_ms_unprofiled"])))
        parts.append(f"<tr><td class='n'>{r['rank']}</td>{figs}{pct}{rest}</tr>")
    note = step_now_note(s["ranks"])
    parts.append(_END + "<p class='note'>Each figure: the mean of the rank's analyzed steps; ±: half the range of "
                 "those steps, in % of the mean (overlap %: in points); hover a figure for its median and range."
                 + (f" Unprofiled step: the steps outside the profiler (median); {h(note)}." if note else "")
                 + "</p>")
    return parts


def _collectives(rep: Report, s: dict[str, Any], plots: dict[str, bytes]) -> list[str]:
    if not s["collectives"]:
        return []
    parts = ["<h2>Collectives (per step, per rank)</h2>" + _head(
        ("op", "via", "group", "n", "dtype", "count", "bytes", "sum ms", "algbw GB/s", "busbw GB/s"),
        name="collectives")]
    for c in s["collectives"]:
        parts.append(f"<tr><td>{h(c['op'])}</td><td>{h(c['via'] or '-')}</td><td>{h(c['process_group'])}</td>"
                     f"<td class='n'>{c['group_size']}"
                     f"</td><td>{h(c['dtype'])}</td><td class='n'>{_n(c['count'], 1)}</td>"
                     f"<td class='n'>{h(_fmt_bytes(c['bytes']))}</td><td class='n'>{_n(c['time_ms'])}</td>"
                     f"<td class='n'>{_n(c['algbw_gbps'])}</td><td class='n'>{_n(c['busbw_gbps'])}</td></tr>")
    parts.append(_END + f"<p class='note'>{h(SUMMED_NOTE)}</p>")
    return parts


def _bandwidth(rep: Report, s: dict[str, Any], plots: dict[str, bytes]) -> list[str]:
    if not s["bandwidth_model"]:
        return []
    img = _img("bandwidth", plots["bandwidth"], "bus bandwidth vs message size") if "bandwidth" in plots else ""
    parts = ["<h2>Latency-bandwidth model</h2>" + img + "<p>t = α + bytes/β fitted to the run's own "
             "collectives, on transfer times (from the moment every rank had started to the end: waits "
             "removed; overlapping transfers share the link). NCCL kernel "
             "names say which algorithm and protocol a kernel was compiled for; NCCL may choose "
             "differently at run time.</p>" + _head(("op", "group", "n", "points", "α µs", "β GB/s", "busbw GB/s",
                                                     "peak GB/s", "% of peak", "peak from"))]
    for f in s["bandwidth_model"]:
        parts.append(f"<tr><td>{h(f['op'])}</td><td>{h(f['process_group'])}</td><td class='n'>{f['group_size']}"
                     f"</td><td class='n'>{f['points']}</td><td class='n'>{_n(f['alpha_us'], 1)}</td>"
                     f"<td class='n'>{_n(f['beta_gbps'])}</td><td class='n'>{_n(f['busbw_gbps'])}</td>"
                     f"<td class='n'>{_n(f['peak_gbps'], 0)}</td><td class='n'>{_n(f['pct_of_peak'], 1)}</td>"
                     f"<td>{h(f['peak_source'] or '-')}</td></tr>")
    parts.append(_END)
    return parts


def _stragglers(rep: Report, s: dict[str, Any], plots: dict[str, bytes]) -> list[str]:
    if not s["stragglers"]:
        return []
    parts = [f"<h2>Stragglers</h2><p>By the wait each rank caused per step (when it arrived last, its lead on "
             f"the next-to-last rank). Late = last to arrive, more than {s['straggler_threshold_ms']:.2f} ms "
             "after the first rank. While the others waited, the late rank was computing, communicating "
             "or idle (no operator or kernel ran: data loading, host-side stalls).</p>"
             + _head(("rank", "caused wait ms/step", "late at", "of", "mean lateness ms", "computing",
                      "communicating", "idle"), name="stragglers")]
    for st in s["stragglers"][:50]:
        parts.append(_row((st["rank"], _n(st["caused_wait_ms"]), st["late_count"], st["instances"],
                           _n(st["mean_late_ms"]),
                           _n(st["late_compute_ms"]), _n(st["late_comm_ms"]), _n(st["late_idle_ms"]))))
    parts.append(_END)
    return parts


def _warnings(rep: Report, s: dict[str, Any], plots: dict[str, bytes]) -> list[str]:
    if not s["warnings"]:
        return []
    return ["<h2>Warnings</h2><ul class='warn'>" + "".join(f"<li>{h(w, WHOLE)}</li>" for w in s["warnings"])
            + "</ul>"]


def _card(big: str, small: str) -> str:
    return f"<div class='card'><b>{h(big)}</b><span>{h(small)}</span></div>"


