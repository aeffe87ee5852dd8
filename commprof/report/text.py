"""Terminal summary: findings first, then per-rank, collective and bucket tables; fits 100 columns."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..analysis.report import Report
from .jsonout import summary
from .safe import plain

WIDTH = 100
MAX_ROWS = 12


def _fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:.0f} B"


def _f(x: float | None, nd: int = 2) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def render(rep: Report, written: Sequence[str] = (), color: bool = False) -> str:
    s = summary(rep)
    buf = io.StringIO()
    con = Console(file=buf, width=WIDTH, force_terminal=color, no_color=not color, highlight=False,
                  emoji=False)
    head = Text()
    head.append("commprof", style="bold")
    head.append(f"  {plain(rep.run.path, 4000)}\n")
    head.append(f"world size {s['world_size']} · backend {plain(s['backend'])} · "
                f"{len(s['ranks_loaded'])} rank(s) loaded · steps {_steps(s['steps_analyzed'])} · "
                f"devices: {plain(', '.join(s['devices']) or '-', 50)}")
    con.print(head, overflow="fold")
    con.print()
    if rep.findings or rep.advice:
        con.print(Text("Findings", style="bold"))
        for f in rep.findings:
            mark = {"high": "!!", "medium": "! ", "info": "  "}.get(f.severity, "  ")
            con.print(Text(f" {mark} {plain(f.text, 400)}"))
        for a in rep.advice:
            con.print(Text(f" -> set {a.knob} = {plain(a.value)}: {a.baseline_step_ms:.1f} ms -> "
                           f"{a.predicted_step_ms:.1f} ms per step. {plain(a.why, 300)}"))
        con.print()

    t = Table(title="Per rank (median per step)", title_justify="left", width=WIDTH)
    for col in ("rank", "step ms", "compute", "comm", "overlap", "exposed", "other", "overlap %", "wait",
                "bytes/step"):
        t.add_column(col, justify="right", no_wrap=True)
    for r in s["ranks"][:MAX_ROWS * 2]:
        t.add_row(str(r["rank"]), _f(r["step_ms"]), _f(r["compute_ms"]), _f(r["comm_ms"]),
                  _f(r["overlapped_ms"]), _f(r["exposed_comm_ms"]), _f(r["other_ms"]), _f(r["overlap_pct"], 1),
                  _f(r["wait_ms"]), _fmt_bytes(r["comm_bytes_per_step"]))
    con.print(t)
    if len(s["ranks"]) > MAX_ROWS * 2:
        con.print(f"  … {len(s['ranks']) - MAX_ROWS * 2} more ranks in summary.json")
    unprof = [r for r in s["ranks"] if r["step_ms_unprofiled"] is not None]
    if unprof:
        r0 = unprof[0]
        con.print(Text(f"  step time outside the profiler (rank {r0['rank']}): {r0['step_ms_unprofiled']:.2f} ms "
                       f"vs {r0['step_ms']:.2f} ms while profiled"))
    con.print()

    if s["collectives"]:
        t = Table(title="Collectives (per step, per rank)", title_justify="left", width=WIDTH)
        for col in ("op", "group", "n", "dtype", "count", "bytes", "time ms", "algbw GB/s", "busbw GB/s"):
            t.add_column(col, justify="right" if col not in ("op", "dtype", "group") else "left", no_wrap=True)
        for c in s["collectives"][:MAX_ROWS]:
            t.add_row(plain(c["op"], 16), plain(c["process_group"], 12), str(c["group_size"]),
                      plain(c["dtype"], 10), _f(c["count"], 1), _fmt_bytes(c["bytes"]), _f(c["time_ms"]),
                      _f(c["algbw_gbps"]), _f(c["busbw_gbps"]))
        con.print(t)
        if len(s["collectives"]) > MAX_ROWS:
            con.print(f"  … {len(s['collectives']) - MAX_ROWS} more rows in summary.json")
        con.print()
    if s["bandwidth_model"]:
        t = Table(title="Latency-bandwidth model t = α + bytes/β (transfer time, waits removed)",
                  title_justify="left", width=WIDTH)
        for col in ("op", "group", "n", "points", "α µs", "β GB/s", "busbw GB/s", "peak GB/s", "% of peak"):
            t.add_column(col, justify="left" if col in ("op", "group") else "right", no_wrap=True)
        for f in s["bandwidth_model"][:MAX_ROWS]:
            t.add_row(plain(f["op"], 16), plain(f["process_group"], 12), str(f["group_size"]), str(f["points"]),
                      _f(f["alpha_us"], 1), _f(f["beta_gbps"]), _f(f["busbw_gbps"]), _f(f["peak_gbps"], 0),
                      _f(f["pct_of_peak"], 1))
        con.print(t)
        peaks = {f["peak_source"] for f in s["bandwidth_model"] if f["peak_source"]}
        if peaks and "given with --link-gbps" not in peaks:
            con.print(Text(f"  peak: {', '.join(sorted(peaks))}; set your own with --link-gbps (GB/s)"))
        con.print()
    if s["buckets"]:
        t = Table(title="DDP buckets (ms from step start, median)", title_justify="left", width=WIDTH)
        for col in ("bucket", "bytes", "params", "ready", "launch", "comm ms", "exposed ms"):
            t.add_column(col, justify="right", no_wrap=True)
        for b in s["buckets"][:MAX_ROWS]:
            t.add_row(str(b["index"]), _fmt_bytes(b["bytes"]), str(b["params"]), _f(b["ready_ms"]),
                      _f(b["launch_ms"]), _f(b["comm_ms"]), _f(b["exposed_ms"]))
        con.print(t)
        con.print()
    if s["pipeline"]:
        p = s["pipeline"]
        t = Table(title="Pipeline stages (per step; transfers per micro-batch)", title_justify="left", width=WIDTH)
        for col in ("stage (rank)", "layers", "compute ms", "bubble ms", "micro-batches", "sent / mb", "xfer ms/mb"):
            t.add_column(col, justify="right", no_wrap=True)
        for st in p["stages"]:
            t.add_row(str(st["rank"]), str(st["layers"]), _f(st["compute_ms"]), _f(st["bubble_ms"]),
                      str(st["microbatches"]), _fmt_bytes(st["sent_bytes_per_microbatch"]),
                      _f(st["transfer_ms_per_microbatch"]))
        con.print(t)
        con.print()
    if s["stragglers"]:
        con.print(Text(f"Stragglers (late = last to arrive, > {s['straggler_threshold_ms']:.2f} ms after the first)",
                       style="bold"))
        for st in s["stragglers"][:5]:
            con.print(Text(f"  rank {st['rank']}: late at {st['late_count']} of {st['instances']} collectives, "
                           f"by {st['mean_late_ms']:.2f} ms on average; meanwhile it computed "
                           f"{st['late_compute_ms']:.2f} ms, communicated {st['late_comm_ms']:.2f} ms, "
                           f"idled {st['late_idle_ms']:.2f} ms"))
        con.print()
    if s["warnings"]:
        con.print(Text(f"Warnings ({len(s['warnings'])})", style="bold"))
        for w in s["warnings"][:8]:
            con.print(Text(f"  - {plain(w, 300)}"))
        if len(s["warnings"]) > 8:
            con.print(f"  … {len(s['warnings']) - 8} more in summary.json")
        con.print()
    if written:
        folders = sorted({str(Path(p).parent) for p in written})
        for folder in folders:
            con.print(Text(f"wrote {plain(folder, 4000)}/", overflow="fold"))
            names = [Path(p).name for p in written if str(Path(p).parent) == folder]
            con.print(Text("  " + "  ".join(plain(n) for n in names), overflow="fold"))
    return buf.getvalue()


def _steps(nums: list[int]) -> str:
    if not nums:
        return "none"
    if nums == list(range(nums[0], nums[-1] + 1)) and len(nums) > 1:
        return f"{nums[0]}-{nums[-1]}"
    return ",".join(map(str, nums[:8])) + ("…" if len(nums) > 8 else "")
