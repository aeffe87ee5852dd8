"""PNG plots from a Report (matplotlib, Agg).  Each function returns PNG bytes, or None when the run
has nothing to show for it.  One palette for compute / comm / exposed across every plot."""

from __future__ import annotations

import numpy as np

from ...analysis.analyze import Report
from ...analysis.spans import lane_span, rank_spans
from ...ops import bus_factor
from ..safe import plain
from .figure import COMM, COMPUTE, EXPOSED, MAX_TIMELINE_RANKS, MEMCPY, OTHER, SERIES, new_figure, to_png
from .scale import (
    PLOT_RANKS_MAX,
    bandwidth_many,
    breakdown_many,
    finish_bandwidth,
    fit_curve,
    stragglers_many,
    timeline_ranks,
)


def breakdown(rep: Report) -> bytes | None:
    """Per rank: compute only / overlapped / exposed comm / other, ms per step.

    Means over the analyzed steps (means add up to the mean step time; medians would not).  The same
    numbers are in summary.json under ``ranks[*].mean``.
    """
    ovs = [o for o in rep.overlaps if o.steps]
    if not ovs:
        return None
    if len(ovs) > PLOT_RANKS_MAX:
        return breakdown_many(rep)
    ranks = [o.rank for o in ovs]

    def mean(attr: str) -> np.ndarray:
        return np.array([(o.mean(attr) or 0.0) / 1e6 for o in ovs])

    comp, over, expo, other = mean("compute_ns"), mean("overlapped_ns"), mean("exposed_ns"), mean("other_ns")
    plt, fig, ax = new_figure(8, max(2.4, 0.35 * len(ranks) + 1.6))
    y = np.arange(len(ranks))
    left = np.zeros(len(ranks))
    for vals, color, label in ((comp - over, COMPUTE, "compute only"), (over, COMM, "comm hidden by compute"),
                               (expo, EXPOSED, "exposed comm"), (other, OTHER, "other (idle, host, memcpy)")):
        ax.barh(y, vals, left=left, color=color, label=label, height=0.7)
        left += vals
    ax.set_yticks(y, [f"rank {r}" for r in ranks])
    ax.invert_yaxis()
    ax.set_xlabel("time per step (ms, mean over analyzed steps)")
    ax.set_title("Where each rank's step goes", pad=24)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, fontsize=8, frameon=False)
    return to_png(plt, fig)


def _pick_step(rep: Report) -> int | None:
    counts: dict[int, list[int]] = {}
    for o in rep.overlaps:
        for s in o.steps:
            counts.setdefault(s.step, []).append(s.step_ns)
    if not counts:
        return None
    most = max(len(v) for v in counts.values())
    cands = sorted((n for n, v in counts.items() if len(v) == most))
    durs = [float(np.median(counts[n])) for n in cands]
    med = float(np.median(durs))
    return cands[int(np.argmin([abs(d - med) for d in durs]))]


def timeline(rep: Report, step: int | None = None) -> bytes | None:
    """One step on every rank (aligned clocks): compute, comm (exposed part in red), memcpy lanes,
    and DDP buckets from ready to done."""
    step = _pick_step(rep) if step is None else step
    if step is None:
        return None
    run = rep.run
    having = [rt for rt in run.ranks if any(s.number == step for s in rt.steps)]
    drawn = set(timeline_ranks(rep, [rt.rank for rt in having], MAX_TIMELINE_RANKS))
    ranks = [rt for rt in having if rt.rank in drawn]
    if not ranks:
        return None
    off = rep.cross.offsets_ns

    def shift(rt) -> int:
        return rt.base_time_ns + off.get(rt.rank, 0)

    ref = ranks[0]
    ref_step = next(s for s in ref.steps if s.number == step)
    t0 = ref_step.start_ns + shift(ref)
    plt, fig, ax = new_figure(11, 0.9 * len(ranks) + 1.6)
    yticks, ylabels = [], []
    for i, rt in enumerate(ranks):
        base = i * 4
        _timeline_rank(ax, rep, rt, step, base, shift(rt) - t0)
        yticks += [base + 2, base + 1]
        ylabels += [f"r{rt.rank} compute", f"r{rt.rank} comm"]
        if len(rt.memcpy):
            yticks.append(base)
            ylabels.append(f"r{rt.rank} memcpy")
    ax.set_yticks(yticks, ylabels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(f"ms since rank {ref.rank}'s ProfilerStep#{step} began (clocks aligned across ranks)")
    which = (f"\n{len(ranks)} of {len(having)} ranks drawn: those that caused the most wait, then ranks spread evenly"
             if len(ranks) < len(having) else "")
    ax.set_title(f"Step {step}: compute, communication (red = exposed) and memcpy per rank"
                 + "; grey bar = the rank's ProfilerStep on the CPU"
                 + ("\nDDP buckets: ▼ ready, | launched, line until done" if rep.bucket_rows else "") + which,
                 fontsize=9, pad=22)
    from matplotlib.patches import Patch

    # above the plot, under the title: below it the legend collided with the axis label on short figures
    ax.legend(handles=[Patch(color=COMPUTE, label="compute"), Patch(color=COMM, label="comm (hidden)"),
                       Patch(color=EXPOSED, label="comm (exposed)"), Patch(color=MEMCPY, label="memcpy/memset")],
              loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, fontsize=8, frameon=False)
    return to_png(plt, fig)


def _timeline_rank(ax, rep: Report, rt, step: int, base: int, sh: int) -> None:
    """One rank's rows of the timeline, shifted by ``sh`` ns onto the reference clock."""
    sp = rank_spans(rt, step)
    for (s, e), y, color in ((sp.compute, base + 2, COMPUTE), (sp.comm, base + 1, COMM),
                             (sp.exposed, base + 1, EXPOSED), (lane_span(rt.memcpy, step), base, MEMCPY)):
        if s.size:
            xs = (s + sh) / 1e6
            ws = (e - s) / 1e6
            ax.broken_barh(list(zip(xs, ws, strict=True)), (y - 0.4, 0.8), facecolors=color)
    st = next(s for s in rt.steps if s.number == step)
    ax.plot([(st.start_ns + sh) / 1e6, (st.end_ns + sh) / 1e6], [base + 2.75] * 2, color="#999999", lw=2,
            solid_capstyle="butt")
    for b in rep.bucket_rows:
        if b.rank == rt.rank and b.step == step:
            s0 = st.start_ns + sh
            ax.plot([(s0 + b.ready_ns) / 1e6], [base + 1.55], marker="v", color="#333333", ms=4)
            ax.plot([(s0 + b.launch_ns) / 1e6], [base + 1.55], marker="|", color="#333333", ms=7)
            if b.end_ns is not None:
                ax.plot([(s0 + b.ready_ns) / 1e6, (s0 + b.end_ns) / 1e6], [base + 1.55] * 2,
                        color="#333333", lw=0.8)


def bandwidth(rep: Report) -> bytes | None:
    """Achieved bus bandwidth vs message size per collective (log axes), each transfer a dot, with the
    fitted latency-bandwidth line and the link's peak."""
    bw = rep.bandwidth
    keys = [k for k, (x, _t) in bw.samples.items() if x.size >= 2]
    if not keys:
        return None
    if len(keys) > len(SERIES):  # more series than colours: one per op and size
        return bandwidth_many(rep, keys)
    plt, fig, ax = new_figure(8, 4.2)
    colors = SERIES  # not the activity colours: a colour here names a collective
    peak = None
    for i, key in enumerate(sorted(keys)):
        op, pg, n = key
        x, t = bw.samples[key]
        f = bus_factor(op, n) or 1.0
        ok = t > 0
        x, t = x[ok], t[ok]
        if x.size == 0:
            continue
        c = colors[i % len(colors)]
        ax.scatter(x, x / t * f, s=10, alpha=0.5, color=c, label=f"{plain(op, 20)} (group {plain(pg, 10)}, n={n})")
        fit = next((ft for ft in bw.fits if (ft.op, ft.process_group, ft.group_size) == key), None)
        if fit is not None and fit.beta_gbps:
            # over a single message size the fit cannot separate latency from bandwidth: α is assumed, say so
            assumed = " (α assumed: sizes spread too little to fit it)" if fit.alpha_assumed else ""
            fit_curve(ax, x, fit, f, c, f"fit: α={fit.alpha_us or 0:.0f} µs, β={fit.beta_gbps:.2f} GB/s{assumed}")
        if fit is not None and fit.peak_gbps:
            peak = (fit.peak_gbps, fit.peak_source)
    finish_bandwidth(ax, peak, loc="lower right")
    return to_png(plt, fig)


def stragglers(rep: Report) -> bytes | None:
    """Wait per rank and collective instance (ms): who waits for whom, for the largest process group."""
    groups = [g for g in rep.cross.groups if len(g.ranks) >= 2 and g.arrival_ns.shape[0] >= 1]
    if not groups:
        return None
    g = max(groups, key=lambda g: (len(g.ranks), g.arrival_ns.shape[0]))
    if len(g.ranks) > PLOT_RANKS_MAX:
        return stragglers_many(rep, g)
    wait = g.wait_ns.T / 1e6  # ranks x instances
    plt, fig, ax = new_figure(9, max(2.4, 0.3 * len(g.ranks) + 1.6))
    im = ax.imshow(wait, aspect="auto", cmap="Reds", interpolation="nearest")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # instances are whole numbers
    ax.set_yticks(range(len(g.ranks)), [f"rank {r}" for r in g.ranks], fontsize=7)
    ax.set_xlabel(f"collective instance in process group {plain(g.process_group, 20)} (issue order)")
    ax.set_title("Wait for the last rank to arrive (ms; per collective, also while the rank computed beside it):\n"
                 "a pale row is the rank the others wait for", fontsize=9)
    cb = fig.colorbar(im, ax=ax)
    cb.set_label("wait (ms)")
    return to_png(plt, fig)


# the order the plots are written and listed in; a family's plots not named here come last
ORDER = ("breakdown", "timeline", "buckets", "bandwidth", "stragglers", "whatif", "fsdp", "lateness")


def all_plots(rep: Report) -> dict[str, bytes]:
    from ..views import shown
    from .whatif import whatif

    out = {}
    for name, fn in (("breakdown", breakdown), ("timeline", timeline), ("bandwidth", bandwidth),
                     ("stragglers", stragglers), ("whatif", whatif)):
        png = fn(rep)
        if png is not None:
            out[name] = png
    for draw, sec in shown(rep, "plots"):  # each family's own: DDP buckets, FSDP2 timeline, lateness
        out.update(draw(rep, sec))
    rank = {n: i for i, n in enumerate(ORDER)}
    return dict(sorted(out.items(), key=lambda kv: rank.get(kv[0], len(ORDER))))


__all__ = ["all_plots", "bandwidth", "breakdown", "stragglers", "timeline"]
