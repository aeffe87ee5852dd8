"""Terminal summary: findings first, then per-rank, collective and bucket tables; fits 100 columns."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.padding import Padding
from rich.text import Text

from ..analysis.analyze import Report
from ..analysis.uncertainty.maths import fmt_band
from ..numlist import number_list
from .fmt import first_warnings, step_now_note
from .fmt import num as _f
from .fmt import size as _fmt_bytes
from .safe import WHOLE, plain
from .spreads import rank_spreads, row_beside
from .summary import summary
from .tables import MAX_ROWS, SUMMED_NOTE, WIDTH
from .tables import table as _table
from .views import shown


def render(rep: Report, written: Sequence[str] = (), color: bool = False) -> str:
    s = summary(rep)
    buf = io.StringIO()
    con = Console(file=buf, width=WIDTH, force_terminal=color, no_color=not color, highlight=False,
                  emoji=False)
    head = Text()
    head.append("commprof", style="bold")
    head.append(f"  {plain(rep.run.path, 4000)}\n")
    head.append(f"world size {s['world_size']} · backend {plain(s['backend'])} · "
                f"{len(s['ranks_loaded'])} rank(s) loaded · {len(s['steps_analyzed'])} step(s) analyzed: "
                f"{_steps(s['steps_analyzed'])} · "
                f"devices: {plain(', '.join(s['devices']) or '-', 50)}")
    for note in s["notes"]:  # which cycle, ranks present of the world, ranks skipped, per-rank figures only
        head.append(f"\n{plain(note, WHOLE)}", style="bold yellow")
    con.print(head, overflow="fold")
    for w in first_warnings(rep.warnings):  # in the first lines, not only at the end
        con.print(Text(f"!! {plain(w, WHOLE)}"), overflow="fold")
    con.print()
    for lead, sec in shown(rep, "lead_text"):  # a hang is the first thing to say
        for line in lead(rep, sec):
            con.print(Text(line), overflow="fold")
        con.print()
    for part in (_findings, _ranks, _collectives, _bandwidth):
        part(con, rep, s)
    for draw, _sec in shown(rep, "text"):
        draw(con, rep, s)
    for part in (_stragglers, _warnings):
        part(con, rep, s)
    _written(con, written)
    return buf.getvalue()


def _findings(con: Console, rep: Report, s: dict[str, Any]) -> None:
    if not (rep.findings or rep.advice):
        return
    con.print(Text("Findings", style="bold"))
    for f in rep.findings:
        mark = {"high": "!!", "medium": "! ", "info": "  "}.get(f.severity, "  ")
        con.print(Text(f" {mark} {plain(f.text, WHOLE)}"), overflow="fold")  # never cut: wrapped
    for a in rep.advice:
        con.print(Text(f" -> set {a.setting(plain)}: {a.baseline_step_ms:.1f} ms -> "
                       f"{fmt_band(a.predicted_step_ms, a.predicted_range_ms)} per step. {plain(a.why, WHOLE)}"),
                  overflow="fold")  # never cut: a warning or the code to apply it may come last (wrapped instead)
    for note, sec in shown(rep, "note"):
        line = note(rep, sec)
        if line:
            con.print(Text(f"    {line}"))
    con.print()


def _ranks(con: Console, rep: Report, s: dict[str, Any]) -> None:
    t = _table("Per rank: the mean of its analyzed steps (ms; the parts add up to the step)",
               ("rank", "step ms", "compute", "comm", "overlap", "exposed", "other", "overlap %", "wait", "bytes/step"))
    shown_ranks = {r["rank"] for r in s["ranks"][:MAX_ROWS * 2]}
    sps = {o.rank: rank_spreads(o) for o in rep.overlaps if o.rank in shown_ranks}  # the HTML's ± (render/spreads.py)
    any_pm = False
    for r in s["ranks"][:MAX_ROWS * 2]:
        t.add_row(*(str(r["rank"]), _f(r["step_ms"]), _f(r["compute_ms"]), _f(r["comm_ms"]),
                    _f(r["overlapped_ms"]), _f(r["exposed_comm_ms"]), _f(r["other_ms"]), _f(r["overlap_pct"], 1),
                    _f(r["wait_ms"]), _fmt_bytes(r["comm_bytes_per_step"])))
        pm = row_beside(r, sps.get(r["rank"], {}))
        if any(pm):  # under each figure its spread over the steps its mean is over
            t.add_row("", *pm, "", "", style="dim")
            any_pm = True
    con.print(t)
    if any_pm:
        con.print(Text("  ±: half the range of the steps each mean is over, in % of the mean "
                       "(overlap %: in points)"), overflow="fold")
    if len(s["ranks"]) > MAX_ROWS * 2:
        con.print(f"  … {len(s['ranks']) - MAX_ROWS * 2} more ranks in summary.json")
    for r in s["ranks"][:MAX_ROWS * 2]:
        sp = r.get("step_spread")
        if sp and sp["steps"] > 1:
            left = "".join(f"; step #{x['step']} left out ({x['step_ms']:.2f} ms, {plain(x['why'], 120)})"
                           for x in sp["outliers"])
            kept = sp["steps"] - len(sp["outliers"])
            con.print(Text(f"  rank {r['rank']}: step {sp['mean_ms']:.2f} ms mean over {kept}"
                           f" steps, median {sp['median_ms']:.2f}, range {sp['min_ms']:.2f}-{sp['max_ms']:.2f}{left}"),
                     overflow="fold")
    unprof = [r for r in s["ranks"] if r["step_ms_unprofiled"] is not None]
    if unprof:  # every rank's (advice quotes its own rank's: one rank's alone read as a different figure)
        out, prof = [r["step_ms_unprofiled"] for r in unprof], [r["step_ms"] for r in unprof]
        each = (", ".join(f"rank {r['rank']} {r['step_ms_unprofiled']:.2f} ms" for r in unprof) if len(unprof) <= 4
                else f"{min(out):.2f}-{max(out):.2f} ms over {len(unprof)} ranks")
        con.print(Text(f"  step time outside the profiler: {each}; {min(prof):.2f}-{max(prof):.2f} ms while profiled"
                       if len(unprof) > 1 else f"  step time outside the profiler (rank {unprof[0]['rank']}): "
                       f"{out[0]:.2f} ms vs {prof[0]:.2f} ms while profiled"), overflow="fold")
    if note := step_now_note(s["ranks"]):  # the step advice is measured against is not the figure above
        con.print(Text(f"  {note}"), overflow="fold")
    con.print()


def _collectives(con: Console, rep: Report, s: dict[str, Any]) -> None:
    if not s["collectives"]:
        return
    t = _table("Collectives (per step, per rank)", ("op", "via", "group", "n", "dtype", "count", "bytes", "sum ms",
                                                    "algbw GB/s", "busbw GB/s"), left=("op", "via", "dtype", "group"))
    for c in s["collectives"][:MAX_ROWS]:
        t.add_row(*(plain(c["op"], 24), plain(c["via"] or "-", 14), plain(c["process_group"], 12),
                    str(c["group_size"]), plain(c["dtype"], 10), _f(c["count"], 1), _fmt_bytes(c["bytes"]),
                    _f(c["time_ms"]), _f(c["algbw_gbps"]), _f(c["busbw_gbps"])))
    con.print(t)
    con.print(Padding(Text(SUMMED_NOTE), (0, 0, 0, 2)))
    for c in [c for c in s["collectives"] if c.get("ranks_disagree")][:3]:
        lo, hi = c["rank_bytes_range"]
        con.print(Padding(Text(f"{c['op']} in group {plain(c['process_group'], 12)}: its members recorded "
                               f"{_fmt_bytes(lo)} to {_fmt_bytes(hi)} per step, where every member moves the same "
                               "bytes: their traces disagree (a collective recorded on some ranks only, or inside "
                               "another's record), so its per-rank figures do not compare"), (0, 0, 0, 2)))
    if len(s["collectives"]) > MAX_ROWS:
        con.print(f"  … {len(s['collectives']) - MAX_ROWS} more rows in summary.json")
    con.print()


def _bandwidth(con: Console, rep: Report, s: dict[str, Any]) -> None:
    if not s["bandwidth_model"]:
        return
    t = _table("Latency-bandwidth model t = α + bytes/β (transfer time, waits removed)",
               ("op", "group", "n", "points", "α µs", "β GB/s", "busbw GB/s", "peak GB/s", "% of peak"),
               left=("op", "group"))
    for f in s["bandwidth_model"][:MAX_ROWS]:
        t.add_row(*(plain(f["op"], 24), plain(f["process_group"], 12), str(f["group_size"]), str(f["points"]),
                    _f(f["alpha_us"], 1), _f(f["beta_gbps"]), _f(f["busbw_gbps"]), _f(f["peak_gbps"], 0),
                    _f(f["pct_of_peak"], 1)))
    con.print(t)
    untimed = [f for f in s["bandwidth_model"] if f.get("untimed")]
    if untimed:
        con.print(Text("  left out, no measurable transfer time (ended with the last arrival): " + ", ".join(
            f"{f['untimed']} {plain(f['op'], 24)} in group {plain(f['process_group'], 12)}" for f in untimed[:4])),
            overflow="fold")
    peaks = {f["peak_source"] for f in s["bandwidth_model"] if f["peak_source"]}
    if peaks and "given with --link-gbps" not in peaks:
        con.print(Text(f"  peak: {', '.join(sorted(peaks))}; set your own with --link-gbps (GB/s)"))
    con.print()


def _stragglers(con: Console, rep: Report, s: dict[str, Any]) -> None:
    if not s["stragglers"]:
        return
    con.print(Text(f"Stragglers (by the wait they caused per step; late = last to arrive, "
                   f"> {s['straggler_threshold_ms']:.2f} ms after the first)", style="bold"))
    for st in s["stragglers"][:5]:
        con.print(Text(f"  rank {st['rank']}: caused {st['caused_wait_ms']:.2f} ms of wait per step; late at "
                       f"{st['late_count']} of {st['instances']} collectives"
                       + (f", by {st['mean_late_ms']:.2f} ms on average; meanwhile it computed "
                          f"{st['late_compute_ms']:.2f} ms, communicated {st['late_comm_ms']:.2f} ms, "
                          f"idled {st['late_idle_ms']:.2f} ms" if st["late_count"] else "")))
    con.print()


def _warnings(con: Console, rep: Report, s: dict[str, Any]) -> None:
    if not s["warnings"]:
        return
    con.print(Text(f"Warnings ({len(s['warnings'])})", style="bold"))
    for w in s["warnings"][:8]:
        con.print(Text(f"  - {plain(w, WHOLE)}"))
    if len(s["warnings"]) > 8:
        con.print(f"  … {len(s['warnings']) - 8} more in summary.json")
    con.print()


def _written(con: Console, written: Sequence[str]) -> None:
    folders = sorted({str(Path(p).parent) for p in written})
    for folder in folders:
        con.print(Text(f"wrote {plain(folder, 4000)}/", overflow="fold"))
        names = [Path(p).name for p in written if str(Path(p).parent) == folder]
        con.print(Text("  " + "  ".join(plain(n) for n in names), overflow="fold"))


def _steps(nums: list[int]) -> str:
    return number_list(nums, limit=8, min_run=2)
