"""The what-if curves: the advisor's predicted step for every candidate it replayed, each with its band
(``predicted_range_ms``: shaded along the bucket sizes, whiskers on the bars; the traced settings' band a shaded
span behind the bars), the traced setting marked and the model's error on the traced run in the title, drawn
whether or not any advice passed.  Advice stands only where a band lies wholly below the step as it is now: the
lower of the traced settings' prediction (the dashed line) and the traced run's measured step."""

from __future__ import annotations

from collections.abc import Sequence

from ...analysis.analyze import Report
from ..safe import plain
from .figure import ASSUMED, MEASURED, PREDICTED, new_figure, to_png


def whatif(rep: Report) -> bytes | None:
    """Left: step time against ``bucket_cap_mb`` (log scale); right: each comm hook and gradient accumulation,
    at the cap it was predicted with.  None when the run has no what-if."""
    rows = rep.advisor.whatifs
    if not rows:
        return _fsdp(rep)
    caps = [w for w in rows if w.knob == "bucket_cap_mb"]
    others = [w for w in rows if w.knob != "bucket_cap_mb"]
    plt, fig, ax = new_figure(10, 3.6)
    ax.remove()
    left = fig.add_subplot(1, 2, 1)
    right = fig.add_subplot(1, 2, 2)
    if caps:
        traced = caps[0]
        pts = sorted((float(str(w.value)), w.step_ms) for w in caps)
        left.plot([p[0] for p in pts], [p[1] for p in pts], "-o", color=PREDICTED, ms=4, label="predicted step")
        # the traced cap's band spans the drift between runs as well (maths.base_floor_pct): its own whisker
        banded = sorted((float(str(w.value)), *w.range_ms) for w in caps[1:] if w.range_ms is not None)
        if banded:
            left.fill_between([b[0] for b in banded], [b[1] for b in banded], [b[2] for b in banded],
                              color=PREDICTED, alpha=0.18, lw=0, label="band")
        left.errorbar([float(str(traced.value))], [traced.step_ms], yerr=_whisker([traced]), fmt="s",
                      color=MEASURED, ms=9, capsize=3, label=f"traced ({traced.value} MB)")
        left.set_xscale("log")
        left.set_xlabel("bucket_cap_mb")
        left.set_ylabel("predicted step (ms)")
        left.legend(fontsize=8)
    labels = [_label(w.knob, w.value) + (" *" if w.assumed else "") for w in others]
    if others:
        right.barh(range(len(others)), [w.step_ms for w in others],
                   color=[ASSUMED if w.assumed else PREDICTED for w in others],
                   xerr=_whisker(others), error_kw={"ecolor": MEASURED, "capsize": 3, "lw": 1})
        right.set_yticks(range(len(others)), labels, fontsize=7)
        right.invert_yaxis()
        if caps:
            right.axvline(caps[0].step_ms, color=MEASURED, lw=1, ls="--", label="traced setting")
            if caps[0].range_ms is not None:
                right.axvspan(*caps[0].range_ms, color=MEASURED, alpha=0.08, lw=0, label="its band")
            right.legend(fontsize=8)
        right.set_xlabel("predicted step (ms); whiskers: each band")
        if any(w.assumed for w in others):
            right.set_title("* rests on costs not measured on this machine: not advised", fontsize=8)
    c = rep.advisor.check
    err = (f"model error on the traced run {c.error_pct:+.1f}% (rank {c.rank})" if c is not None
           else "model not checked on the traced run")
    fig.suptitle(f"What-if predictions, slowest rank; {err}", fontsize=9)
    return to_png(plt, fig)


def _whisker(rows: Sequence) -> list[list[float]]:
    """Matplotlib's asymmetric error lengths [[below], [above]] from each row's band (0 where it has none)."""
    lo = [w.step_ms - w.range_ms[0] if w.range_ms is not None else 0.0 for w in rows]
    hi = [w.range_ms[1] - w.step_ms if w.range_ms is not None else 0.0 for w in rows]
    return [[max(x, 0.0) for x in lo], [max(x, 0.0) for x in hi]]


def _label(knob: str, value: object) -> str:
    v = str(value)
    if v.startswith("powerSGD_hook(matrix_approximation_rank="):
        return f"PowerSGD rank-{v.rsplit('=', 1)[1].rstrip(')')} approximation"
    return f"{knob} = {plain(v, 30)}"


def _fsdp(rep: Report) -> bytes | None:
    """FSDP2's what-ifs: the predicted step of each setting against the traced one, and its predicted peak."""
    f = rep.fsdp
    if f is None or not f.whatifs or f.baseline_step_ms is None:
        return None
    plt, fig, ax = new_figure(9, 0.45 * len(f.whatifs) + 1.8)
    labels = [f"{w.knob} = {plain(w.value, 60)}" for w in f.whatifs]
    ax.barh(range(len(f.whatifs)), [w.step_ms for w in f.whatifs], color=PREDICTED, xerr=_whisker(f.whatifs),
            error_kw={"ecolor": MEASURED, "capsize": 3, "lw": 1})
    for i, w in enumerate(f.whatifs):
        peak = f"peak {w.peak_memory_bytes / 2**20:.0f} MiB, " if w.peak_memory_bytes else ""
        x = w.range_ms[1] if w.range_ms is not None else w.step_ms
        ax.text(x, i, f"  {peak}{w.peak_unsharded_bytes / 2**20:.1f} MiB unsharded", va="center", fontsize=7)
    ax.axvline(f.baseline_step_ms, color=MEASURED, lw=1, ls="--")
    if f.baseline_range_ms is not None:
        ax.axvspan(*f.baseline_range_ms, color=MEASURED, alpha=0.08, lw=0)
    ax.set_yticks(range(len(f.whatifs)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(f"predicted step (ms), whiskers: bands; dashed, shaded: the traced settings "
                  f"({f.baseline_step_ms:.1f} ms), their band", fontsize=8)
    err = f"model error on the traced run {f.error_pct:+.1f}%" if f.error_pct is not None else "model not checked"
    ax.set_title(f"FSDP2 what-if predictions, rank {f.report.rank}; {err}", fontsize=9)
    return to_png(plt, fig)
