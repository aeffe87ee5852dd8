"""Who holds the job back, in the report: ``root_cause``, ``critical_path`` and ``critical_comm`` in
summary.json, the communication on the path by process group in the terminal, and a section in the HTML report
(the verdict, the ranks' shares of the path, the communication on it).  The timeline and the merged trace draw
``report.critical_path`` themselves."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console

from ...analysis.analyze import Report
from ...analysis.crossrank.chance import chance_p, weak
from ...analysis.crossrank.critpath import OWN
from ...analysis.crossrank.rootcause import RootCause
from ..fmt import num as _n
from ..safe import WHOLE, plain
from ..safe import html_text as h
from ..tables import HTML_END, html_head, html_row, table


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def as_json(rep: Report) -> dict[str, Any]:
    return {"root_cause": root_cause(rep), "critical_path": critical_path(rep), "critical_comm": critical_comm(rep)}


def root_cause(rep: Report) -> dict[str, Any] | None:
    crit = rep.critical
    if crit is None:
        return None
    c = crit.cause
    return {"rank": c.rank, "ranks": list(c.ranks), "what": c.what, "share_pct": _r(c.share_pct, 1),
            "steps_on_path": c.steps_on_path, "steps": c.steps,
            # how often jitter alone gives as many steps held among the job's ranks; weak: one step or over 5%
            "chance_p": _r(chance_p(c), 4) if c.ranks else None, "weak": weak(c) if c.ranks else None,
            "step_ms": _r(c.step_ms), "noise_ms": _r(c.noise_ms),
            "jitter_ms": _r(c.jitter_ms),
            "predicted_step_ms": _r(c.predicted_step_ms), "predicted_gain_ms": _r(c.predicted_gain_ms),
            "predicted_range_ms": None if c.predicted_range_ms is None else [_r(v) for v in c.predicted_range_ms],
            "gain_range_ms": None if c.gain_range_ms is None else [_r(v) for v in c.gain_range_ms],
            "ratio_to_peers": None if c.ratio is None or c.ratio == float("inf") else _r(c.ratio, 3),
            "peers": c.peers or None, "spread": [{"rank": r, "share_pct": _r(s, 1)} for r, s in c.spread],
            "text": c.text, "regime": _regime(c),
            # the steps a rank's periodic work delays, where the verdict was judged in them alone (regimes.in_steps)
            "periodic_steps": list(c.regime) if c.regime is not None and c.change is None else None,
            # the named ranks' (else the lead's) matrix work per step against their peers' (crossrank.work)
            "work": None if c.work is None else {"gflop_per_step": _r(c.work.ranks_gflop), "peers_gflop_per_step":
                                                 _r(c.work.peers_gflop), "ratio": _r(c.work.ratio, 3),
                                                 "steps": c.work.steps, "peers": c.work.peers, "rank": c.work.rank,
                                                 "peers_kind": c.work.kind},
            "top_ops": [{"name": t.name, "ms": _r(t.ms), "share_pct": _r(t.share_pct, 1)} for t in c.top_ops]}


def _regime(c: RootCause) -> dict[str, Any] | None:
    """The steps a verdict holds in where a figure changed mid-run and held (``uncertainty.regimes``)."""
    if c.regime is None or c.change is None or c.change_steps is None:
        return None
    return {"steps": list(c.regime), "changed": c.change_of,
            "change_first_step": c.change_steps[0], "change_last_step": c.change_steps[1],
            "lasting": c.change.lasting, "change_ms": _r(c.change.changed[2] / 1e6),
            "others_ms": _r(c.change.others / 1e6), "p": _r(c.change.p, 4),
            "told_by": "order" if c.change.p is not None else "size",
            "changed_steps": list(c.changed_steps or ()),  # every step that changed (episodes in several runs too)
            "gap_ms": None if c.change.gap is None else _r(c.change.gap / 1e6),
            # rounded down, as the text's "N robust deviations or more"
            "robust_sds": math.floor(c.change.sds * 10) / 10 if c.change.sds is not None and math.isfinite(
                c.change.sds) else None}


def critical_path(rep: Report) -> list[dict[str, Any]]:
    """Per analyzed step: its length and its segments (times in ms from the path's start, on the reference
    clock); own-work segments carry their compute / host / idle split, transfers their process group and op."""
    crit = rep.critical
    if crit is None:
        return []
    out = []
    for p in crit.paths:
        t0 = p.segments[0].start_ns if p.segments else 0
        segs = []
        for s in p.segments:
            d: dict[str, Any] = {"rank": s.rank, "kind": s.kind, "start_ms": _r((s.start_ns - t0) / 1e6),
                                 "ms": _r(s.duration_ns / 1e6)}
            if s.kind == OWN:
                d.update(compute_ms=_r(s.compute_ns / 1e6), host_ms=_r(s.host_ns / 1e6), idle_ms=_r(s.idle_ns / 1e6))
            else:
                d.update(process_group=s.group, op=s.op)
            segs.append(d)
        out.append({"step": p.step, "length_ms": _r(p.length_ns / 1e6), "segments": segs})
    return out


def critical_comm(rep: Report) -> list[dict[str, Any]]:
    crit = rep.critical
    if crit is None:
        return []
    return [{"process_group": g.group, "kind": g.kind, "kind_from": g.source, "ranks": g.ranks, "group_size": g.size,
             "on_path_ms": _r(g.on_path_ms), "share_pct": _r(g.share_pct, 1), "overlap_saves_at_most_ms":
             _r(crit.saves_at_most_ms(g.on_path_ms))} for g in crit.comm]


def text(con: Console, rep: Report, s: dict[str, Any]) -> None:
    """Communication on the critical path by process group (the verdict itself is the first finding)."""
    comm = s["critical_comm"]
    if not comm:
        return
    t = table("Communication on the critical path (per step)", ("process group", "kind", "ranks", "on path ms",
                                                                 "% of step"), left=("process group", "kind"))
    for g in comm[:10]:
        t.add_row(plain(g["process_group"]), f"{g['kind']} ({g['kind_from']})", str(g["ranks"]), _n(g["on_path_ms"]),
                  f"{g['share_pct']:.1f}")
    con.print(t)
    con.print()


def html(rep: Report, s: dict[str, Any], plots: dict[str, bytes]) -> list[str]:
    rc = s["root_cause"]
    if rc is None:
        return []
    parts = ["<h2>Who holds the job back</h2>", f"<p>{h(rc['text'], WHOLE)}</p>"]
    if rc.get("top_ops"):
        parts.append(html_head(("its compute on the path: kernel / operator", "ms per step", "%"), name="critical-ops"))
        parts.extend(html_row((h(x["name"]), _n(x["ms"]), f"{x['share_pct']:.1f}")) for x in rc["top_ops"])
        parts.append(HTML_END)
    if rc["spread"]:
        parts.append(html_head(("rank", "own work on the critical path, % of the step"), name="critical-spread"))
        parts.extend(html_row((x["rank"], f"{x['share_pct']:.1f}")) for x in rc["spread"])
        parts.append(HTML_END)
    if s["critical_comm"]:
        parts.append("<p>Communication on the critical path, per process group: overlapping it with compute could "
                     "save at most its time on the path.</p>")
        parts.append(html_head(("process group", "kind", "ranks", "on path ms", "% of step"), name="critical-comm"))
        parts.extend(html_row((h(g["process_group"]), h(f"{g['kind']} ({g['kind_from']})"), g["ranks"],
                               _n(g["on_path_ms"]), f"{g['share_pct']:.1f}")) for g in s["critical_comm"])
        parts.append(HTML_END)
    return parts
