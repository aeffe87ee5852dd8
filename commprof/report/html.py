"""A self-contained ``report.html``: inline CSS, plots embedded as data URIs, no network access.
Every string that comes from a trace goes through ``html_text``."""

from __future__ import annotations

import base64

from ..analysis.report import Report
from .jsonout import summary
from .safe import html_text as h
from .text import _fmt_bytes

GLOSSARY = [
    ("compute", "GPU traces: kernels that are not communication, union over all streams. CPU-only (gloo) "
                "traces: CPU operators on the training threads, minus collective bookkeeping (c10d::*, "
                "record_param_comms) and blocking waits."),
    ("comm", "GPU: NCCL/RCCL kernels (ncclKernel_*, ncclDevKernel_*), union over all streams. gloo: the "
             "transfer events (gloo:*) on the backend's worker threads."),
    ("overlapped", "|comm ∩ compute|: communication hidden behind compute."),
    ("overlap %", "overlapped / comm, over the whole analyzed window (HTA's and TensorBoard's definition)."),
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
    ("per step", "ms values are medians over the analyzed ProfilerStep#N spans; GPU work belongs to the "
                 "step whose CPU side launched it."),
]

CSS = """
body{font:14px/1.45 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:20px 28px}
h1{font-size:22px;margin:4px 0}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd}
.sub{color:#666}.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{background:#fff;border:1px solid #e2e2e2;border-radius:6px;padding:8px 14px;min-width:130px}
.card b{display:block;font-size:20px}.card span{color:#666;font-size:12px}
.sev-high{border-left:5px solid #D1495B}.sev-medium{border-left:5px solid #EDA247}.sev-info{border-left:5px solid #8aa}
.finding{background:#fff;padding:8px 12px;margin:6px 0;border-radius:4px}
table{border-collapse:collapse;background:#fff;font-size:13px}th,td{padding:4px 9px;border-bottom:1px solid #eee}
th{background:#f0f0f0;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;background:#fff;border:1px solid #e2e2e2;margin:6px 0}
dl dt{font-weight:600;margin-top:6px}dl dd{margin-left:18px;color:#444}
.warn li{color:#7a4a00}
"""


def _img(name: str, png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img id="plot-{name}" alt="{h(alt)}" src="data:image/png;base64,{data}">'


def _n(x, nd: int = 2) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def render(rep: Report, plots: dict[str, bytes]) -> str:
    s = summary(rep)
    ranks = s["ranks"]
    step_ms = _median([r["step_ms"] for r in ranks])
    exposed = _median([r["exposed_comm_ms"] for r in ranks])
    overlap = _median([r["overlap_pct"] for r in ranks])
    nbytes = _median([r["comm_bytes_per_step"] for r in ranks])
    share = 100 * exposed / step_ms if step_ms else 0.0
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
             f"<title>commprof report: {h(rep.run.path)}</title><style>{CSS}</style></head><body><main>",
             f"<h1>commprof report</h1><div class='sub'>{h(rep.run.path)} · world size {s['world_size']} · "
             f"backend {h(s['backend'])} · devices: {h(', '.join(s['devices']) or '-')}</div>",
             "<div class='cards'>",
             _card(f"{step_ms:.2f} ms", "step time (median)"),
             _card(f"{exposed:.2f} ms", f"exposed comm per step ({share:.0f}%)"),
             _card(f"{overlap:.1f}%", "comm overlapped by compute"),
             _card(_fmt_bytes(nbytes), "communicated per step per rank"),
             _card(str(len(ranks)), "ranks analyzed"),
             "</div>"]
    parts.append("<h2>Findings and advice</h2>")
    if not rep.findings and not rep.advice:
        parts.append("<p>Nothing stands out.</p>")
    for f in rep.findings:
        parts.append(f"<div class='finding sev-{h(f.severity)}'>{h(f.text, 1000)}</div>")
    for a in rep.advice:
        parts.append(f"<div class='finding sev-high'><b>Set {h(a.knob)} = {h(a.value)}</b>: "
                     f"{a.baseline_step_ms:.1f} → {a.predicted_step_ms:.1f} ms per step. {h(a.why, 1000)}</div>")
    if "breakdown" in plots:
        parts.append("<h2>Per-rank breakdown</h2>" + _img("breakdown", plots["breakdown"],
                                                          "stacked bars of compute, overlapped, exposed, other"))
    if "timeline" in plots:
        parts.append("<h2>One step, every rank</h2>" + _img("timeline", plots["timeline"], "timeline of one step"))
    if "stragglers" in plots:
        parts.append("<h2>Who waits for whom</h2>" + _img("stragglers", plots["stragglers"],
                                                        "heatmap of wait per rank and collective"))
    parts.append("<h2>Per rank (median per step, ms)</h2><table><tr><th>rank</th><th>step</th><th>compute</th>"
                 "<th>comm</th><th>overlapped</th><th>exposed</th><th>other</th><th>overlap %</th><th>wait</th>"
                 "<th>bytes/step</th><th>unprofiled step</th></tr>")
    for r in ranks:
        parts.append("<tr>" + "".join(f"<td class='n'>{v}</td>" for v in (
            r["rank"], _n(r["step_ms"]), _n(r["compute_ms"]), _n(r["comm_ms"]), _n(r["overlapped_ms"]),
            _n(r["exposed_comm_ms"]), _n(r["other_ms"]), _n(r["overlap_pct"], 1), _n(r["wait_ms"]),
            h(_fmt_bytes(r["comm_bytes_per_step"])), _n(r["step_ms_unprofiled"]))) + "</tr>")
    parts.append("</table>")
    if s["collectives"]:
        parts.append("<h2>Collectives (per step, per rank)</h2><table><tr><th>op</th><th>group</th><th>n</th>"
                     "<th>dtype</th><th>count</th><th>bytes</th><th>time ms</th><th>algbw GB/s</th>"
                     "<th>busbw GB/s</th></tr>")
        for c in s["collectives"]:
            parts.append(f"<tr><td>{h(c['op'])}</td><td>{h(c['process_group'])}</td><td class='n'>{c['group_size']}"
                         f"</td><td>{h(c['dtype'])}</td><td class='n'>{_n(c['count'], 1)}</td>"
                         f"<td class='n'>{h(_fmt_bytes(c['bytes']))}</td><td class='n'>{_n(c['time_ms'])}</td>"
                         f"<td class='n'>{_n(c['algbw_gbps'])}</td><td class='n'>{_n(c['busbw_gbps'])}</td></tr>")
        parts.append("</table>")
    if s["bandwidth_model"]:
        img = _img("bandwidth", plots["bandwidth"], "bus bandwidth vs message size") if "bandwidth" in plots else ""
        parts.append("<h2>Latency-bandwidth model</h2>" + img + "<p>t = α + bytes/β fitted to the run's own "
                     "collectives, on transfer times (from the moment every rank had started to the end: waits "
                     "removed; overlapping transfers share the link). NCCL kernel "
                     "names say which algorithm and protocol a kernel was compiled for; NCCL may choose "
                     "differently at run time.</p><table><tr><th>op</th><th>group</th><th>n</th><th>points</th>"
                     "<th>α µs</th><th>β GB/s</th><th>busbw GB/s</th><th>peak GB/s</th><th>% of peak</th>"
                     "<th>peak from</th></tr>")
        for f in s["bandwidth_model"]:
            parts.append(f"<tr><td>{h(f['op'])}</td><td>{h(f['process_group'])}</td><td class='n'>{f['group_size']}"
                         f"</td><td class='n'>{f['points']}</td><td class='n'>{_n(f['alpha_us'], 1)}</td>"
                         f"<td class='n'>{_n(f['beta_gbps'])}</td><td class='n'>{_n(f['busbw_gbps'])}</td>"
                         f"<td class='n'>{_n(f['peak_gbps'], 0)}</td><td class='n'>{_n(f['pct_of_peak'], 1)}</td>"
                         f"<td>{h(f['peak_source'] or '-')}</td></tr>")
        parts.append("</table>")
    if s["buckets"]:
        parts.append("<h2>DDP buckets</h2>")
        if "buckets" in plots:
            parts.append(_img("buckets", plots["buckets"], "bucket sizes and exposure"))
        parts.append("<table><tr><th>bucket</th><th>bytes</th><th>params</th><th>ready ms</th><th>launch ms</th>"
                     "<th>comm ms</th><th>exposed ms</th></tr>")
        for b in s["buckets"]:
            parts.append("<tr>" + "".join(f"<td class='n'>{v}</td>" for v in (
                b["index"], h(_fmt_bytes(b["bytes"])), b["params"], _n(b["ready_ms"]), _n(b["launch_ms"]),
                _n(b["comm_ms"]), _n(b["exposed_ms"]))) + "</tr>")
        parts.append("</table>")
    if s["pipeline"]:
        p = s["pipeline"]
        parts.append("<h2>Pipeline stages</h2><table><tr><th>stage (rank)</th><th>layers</th><th>compute ms/step</th>"
                     "<th>bubble ms/step</th><th>micro-batches</th><th>sent per micro-batch</th>"
                     "<th>transfer ms per micro-batch</th></tr>")
        for st in p["stages"]:
            parts.append("<tr>" + "".join(f"<td class='n'>{v}</td>" for v in (
                st["rank"], st["layers"], _n(st["compute_ms"]), _n(st["bubble_ms"]), st["microbatches"],
                h(_fmt_bytes(st["sent_bytes_per_microbatch"])), _n(st["transfer_ms_per_microbatch"]))) + "</tr>")
        parts.append("</table>")
    for d in s.get("dataparallel") or []:
        est = d["ddp_estimate_step_ms"]
        parts.append(f"<h2>nn.DataParallel (rank {d['rank']}, devices {h(', '.join(map(str, d['devices'])))})</h2>"
                     f"<p>{_n(d['overhead_ms'])} ms of a {_n(d['step_ms'])} ms step moves data through the first "
                     "device"
                     + (f"; DistributedDataParallel estimate: {_n(est)} ms per step" if est is not None else "")
                     + ".</p><table><tr><th>phase</th><th>calls/step</th><th>bytes/step</th><th>copied bytes</th>"
                     "<th>host ms</th><th>GPU ms</th><th>busy ms</th></tr>")
        for p in d["phases"]:
            parts.append(f"<tr><td>{h(p['name'])}</td>" + "".join(f"<td class='n'>{h(str(v))}</td>" for v in (
                p["calls_per_step"], _fmt_bytes(p["bytes_per_step"]), _fmt_bytes(p["copied_bytes_per_step"]),
                _n(p["host_ms"]), _n(p["gpu_ms"]), _n(p["busy_ms"]))) + "</tr>")
        parts.append("</table>")
    if s.get("memory"):
        parts.append("<h2>Memory (profile_memory=True)</h2><table><tr><th>rank</th><th>device</th>"
                     "<th>peak allocated</th><th>peak reserved</th><th>% of device</th><th>DDP buckets</th>"
                     "<th>comm hook buffers (kept / in flight)</th></tr>")
        for m in s["memory"]:
            buckets = _fmt_bytes(m["ddp_bucket_bytes"]) + (" (a copy)" if m["ddp_buckets_are_a_copy"] else "")
            hook = (f"{_fmt_bytes(m['compression_persistent_bytes'])} / {_fmt_bytes(m['compression_transient_bytes'])}"
                    if m["compression_persistent_bytes"] or m["compression_transient_bytes"] else "–")
            parts.append("<tr>" + "".join(f"<td class='n'>{h(str(v))}</td>" for v in (
                m["rank"], m["device"], _fmt_bytes(m["peak_allocated_bytes"]), _fmt_bytes(m["peak_reserved_bytes"]),
                "–" if m["pct_of_device"] is None else m["pct_of_device"], buckets, hook)) + "</tr>")
        parts.append("</table>")
    if s["stragglers"]:
        parts.append(f"<h2>Stragglers</h2><p>Late = last to arrive, more than {s['straggler_threshold_ms']:.2f} ms "
                     "after the first rank. While the others waited, the late rank was computing, communicating "
                     "or idle (no operator or kernel ran: data loading, host-side stalls).</p>"
                     "<table><tr><th>rank</th><th>late at</th><th>of</th><th>mean lateness ms</th>"
                     "<th>computing</th><th>communicating</th><th>idle</th></tr>")
        for st in s["stragglers"]:
            parts.append(f"<tr><td class='n'>{st['rank']}</td><td class='n'>{st['late_count']}</td>"
                         f"<td class='n'>{st['instances']}</td><td class='n'>{_n(st['mean_late_ms'])}</td>"
                         f"<td class='n'>{_n(st['late_compute_ms'])}</td><td class='n'>{_n(st['late_comm_ms'])}</td>"
                         f"<td class='n'>{_n(st['late_idle_ms'])}</td></tr>")
        parts.append("</table>")
    if s["warnings"]:
        parts.append("<h2>Warnings</h2><ul class='warn'>" +
                     "".join(f"<li>{h(w, 600)}</li>" for w in s["warnings"]) + "</ul>")
    parts.append("<h2>Glossary</h2><dl>" + "".join(f"<dt>{h(k)}</dt><dd>{h(v, 2000)}</dd>" for k, v in GLOSSARY)
                 + "</dl>")
    parts.append(f"<p class='sub'>commprof {h(s['commprof_version'])}</p></main></body></html>")
    return "\n".join(parts)


def _card(big: str, small: str) -> str:
    return f"<div class='card'><b>{h(big)}</b><span>{h(small)}</span></div>"


def _median(vals) -> float:
    v = sorted(x for x in vals if x is not None)
    if not v:
        return 0.0
    m = len(v) // 2
    return float(v[m]) if len(v) % 2 else (v[m - 1] + v[m]) / 2
